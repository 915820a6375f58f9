#!/usr/bin/env python3
"""Checks on the results of a Bazel build, for test_bazel.sh.

  bazel_check.py outputs TREE_A ROOT_A TREE_B ROOT_B
      TREE_A and TREE_B (two bazel-out directories) hold the same names;
      every regular file is byte-identical, except that files naming their
      own output tree (runfiles manifests) may differ by ROOT_A vs ROOT_B
      only; symlinks point to the same target up to that substitution.
      Prints "N identical, M equal up to the root"; exit 1 on a difference.

  bazel_check.py execlog LOG EXECROOT PREFIX
      Every input and output digest in an --execution_log_json_file equals
      SHA-256 of the file under EXECROOT (files that no longer exist are
      skipped; an output still there must match).  Prints the number of
      files checked and how many of them are below EXECROOT/PREFIX (on the
      mount); exit 1 on a mismatch.

  bazel_check.py spawns LOG
      Prints "SPAWNS OUTPUTS": the spawns that ran in linux-sandbox and the
      outputs they produced.
"""
import hashlib
import json
import os
import sys


def execlog_entries(path):
    """The spawn records of a JSON execution log (objects written one after
    another, not an array)."""
    text = open(path, encoding="utf-8").read()
    dec = json.JSONDecoder()
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return
        obj, i = dec.raw_decode(text, i)
        yield obj


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verdict(bad, what, ok_line):
    """Prints the first problems (exit status 1) or ok_line (0)."""
    if bad:
        print(f"{len(bad)} {what}: {bad[:5]}")
        return 1
    print(ok_line)
    return 0


def tree(root):
    """relative path -> ('f', path) / ('l', target) / ('d', None)"""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
                if n in dirs:
                    dirs.remove(n)
            elif os.path.isdir(p):
                out[rel] = ("d", None)
            else:
                out[rel] = ("f", p)
    return out


def cmd_outputs(tree_a, root_a, tree_b, root_b):
    a, b = tree(tree_a), tree(tree_b)
    if set(a) != set(b):
        only_a = sorted(set(a) - set(b))[:5]
        only_b = sorted(set(b) - set(a))[:5]
        print(f"different names: only in A {only_a}, only in B {only_b}")
        return 1
    same = subst = 0
    bad = []
    for rel in sorted(a):
        ka, va = a[rel]
        kb, vb = b[rel]
        if ka != kb:
            bad.append(f"{rel}: {ka} vs {kb}")
        elif ka == "l":
            if va == vb:
                same += 1
            elif va.replace(root_a, root_b) == vb:
                subst += 1
            else:
                bad.append(f"{rel}: symlink {va} vs {vb}")
        elif ka == "f":
            da = open(va, "rb").read()
            db = open(vb, "rb").read()
            if da == db:
                same += 1
            elif da.replace(root_a.encode(), root_b.encode()) == db:
                subst += 1
            else:
                bad.append(f"{rel}: contents differ")
    return verdict(bad, "differ", f"{same} identical, {subst} equal up to the root")


def cmd_execlog(log, execroot, prefix):
    seen = {}
    for e in execlog_entries(log):
        for f in e.get("inputs", []) + e.get("actualOutputs", []):
            d = f["digest"]
            if d.get("hashFunctionName", "SHA-256") != "SHA-256":
                print(f"{f['path']}: digest function {d['hashFunctionName']}, not SHA-256")
                return 1
            seen[f["path"]] = (d["hash"], int(d["sizeBytes"]))
    checked = below = 0
    bad = []
    for rel, (h, size) in sorted(seen.items()):
        p = os.path.join(execroot, rel)
        if not os.path.isfile(p):
            continue
        checked += 1
        if rel.startswith(prefix):
            below += 1
        real = sha256_file(p)
        if real != h or os.path.getsize(p) != size:
            bad.append(f"{rel}: Bazel recorded {h} ({size} bytes), sha256sum {real}")
    return verdict(bad, f"of {checked} digests wrong", f"{checked} {below}")


def cmd_spawns(log):
    spawns = outputs = 0
    for e in execlog_entries(log):
        if e.get("runner") == "linux-sandbox":
            spawns += 1
            outputs += len(e.get("actualOutputs", []))
    print(f"{spawns} {outputs}")
    return 0


def main(argv):
    cmds = {"outputs": (cmd_outputs, 4), "execlog": (cmd_execlog, 3), "spawns": (cmd_spawns, 1)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    fn, _ = cmds[argv[1]]
    return fn(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
