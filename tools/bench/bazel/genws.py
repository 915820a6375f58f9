#!/usr/bin/env python3
"""Writes a Bazel workspace for tools/bench/bazel/run: LIBS cc_library
targets, each with SRCS C sources and HDRS headers, chained (lib N depends
on lib N-1, so a compile in lib N sees the headers of libs 0..N in its
sandbox: up to LIBS x HDRS symlinks), and a cc_binary on the last one.

usage: genws.py DIR [--libs 30] [--srcs 6] [--hdrs 20]

DIR gets WORKSPACE, BUILD (the binary) and lib00/ ... (one package per
library).  The build files load rules_cc, so they need the repositories of
tools/bazel-offline.  Deterministic: the same arguments write the same bytes.
"""
import argparse
import os


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def header(lib, h, hdrs):
    guard = f"LIB{lib:02d}_H{h:02d}_H"
    body = [f"#ifndef {guard}", f"#define {guard}"]
    if h > 0:  # headers of a library include each other, as real ones do
        body.append(f'#include "lib{lib:02d}/h{h - 1:02d}.h"')
    body += [
        f"#define LIB{lib:02d}_K{h:02d} {lib * 1000 + h}",
        f"struct lib{lib:02d}_t{h:02d} {{ int a, b; long c[{h + 1}]; }};",
        f"static inline int lib{lib:02d}_f{h:02d}(int x) {{ return x * {h + 3} + LIB{lib:02d}_K{h:02d}; }}",
        f"#endif",
        "",
    ]
    return "\n".join(body)


def source(lib, s, hdrs):
    lines = [f'#include "lib{lib:02d}/h{hdrs - 1:02d}.h"']
    if lib > 0:
        lines.append(f'#include "lib{lib - 1:02d}/api.h"')
    lines += [
        f'#include "lib{lib:02d}/api.h"',
        "",
        f"int lib{lib:02d}_s{s}(int x)",
        "{",
        "\tint acc = x;",
    ]
    for h in range(hdrs):
        lines.append(f"\tacc ^= lib{lib:02d}_f{h:02d}(acc + {s});")
    if lib > 0:
        lines.append(f"\tacc += lib{lib - 1:02d}_s{s}(acc & 0xff);")
    lines += ["\treturn acc;", "}", ""]
    return "\n".join(lines)


def api(lib, srcs):
    guard = f"LIB{lib:02d}_API_H"
    protos = "\n".join(f"int lib{lib:02d}_s{s}(int x);" for s in range(srcs))
    return f"#ifndef {guard}\n#define {guard}\n{protos}\n#endif\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--libs", type=int, default=30)
    ap.add_argument("--srcs", type=int, default=6)
    ap.add_argument("--hdrs", type=int, default=20)
    a = ap.parse_args()
    if a.libs < 1 or a.srcs < 1 or a.hdrs < 1:
        ap.error("--libs, --srcs and --hdrs must be at least 1")
    d = a.dir
    write(os.path.join(d, "WORKSPACE"), 'workspace(name = "bench")\n')
    for lib in range(a.libs):
        pkg = os.path.join(d, f"lib{lib:02d}")
        for h in range(a.hdrs):
            write(os.path.join(pkg, f"h{h:02d}.h"), header(lib, h, a.hdrs))
        write(os.path.join(pkg, "api.h"), api(lib, a.srcs))
        for s in range(a.srcs):
            write(os.path.join(pkg, f"s{s}.c"), source(lib, s, a.hdrs))
        deps = f'\n    deps = ["//lib{lib - 1:02d}"],' if lib > 0 else ""
        write(os.path.join(pkg, "BUILD"), f"""load("@rules_cc//cc:defs.bzl", "cc_library")

cc_library(
    name = "lib{lib:02d}",
    srcs = glob(["*.c"]),
    hdrs = glob(["*.h"]),
    visibility = ["//visibility:public"],{deps}
)
""")
    last = a.libs - 1
    write(os.path.join(d, "main.c"), f"""#include <stdio.h>
#include "lib{last:02d}/api.h"

int main(void)
{{
\tprintf("%d\\n", lib{last:02d}_s0(1));
\treturn 0;
}}
""")
    write(os.path.join(d, "BUILD"), f"""load("@rules_cc//cc:defs.bzl", "cc_binary")

cc_binary(
    name = "app",
    srcs = ["main.c"],
    deps = ["//lib{last:02d}"],
)
""")


if __name__ == "__main__":
    main()
