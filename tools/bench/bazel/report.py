#!/usr/bin/env python3
"""Report of tools/bench/bazel/run.

usage: report.py RESULTS.tsv [--markdown FILE] [--note TEXT]

RESULTS.tsv has one line per timed build: row, round, wall seconds, the
--profile JSON, casfs stats --json before and after ("{}" for other
filesystems), and the CPU seconds of the Bazel server and of the casfs
daemon ("-" for other filesystems) during the build.  Prints, per row: the
clean-build wall time (median of the rounds and, against ext4 in the same
round, the median ratio with its min-max), the mean and median time per
sandboxed action of Bazel's sandbox.createFileSystem, sandbox.delete and
subprocess.run, the CPU medians, and for casfs rows the FUSE requests per
sandboxed action.
"""
import argparse
import collections
import json
import statistics

PHASES = ("sandbox.createFileSystem", "sandbox.delete", "subprocess.run")
# counters of casfs stats --json that are requests (the rest are totals,
# gauges or store figures)
REQUESTS = ("lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir",
            "unlink", "rmdir", "symlink", "rename", "link", "open", "create", "read",
            "write", "flush", "release", "fsync", "opendir", "readdir", "readdirplus",
            "statfs", "setxattr", "getxattr", "listxattr", "removexattr", "access",
            "fallocate", "copy_file_range", "lseek", "ioctl")


def profile_phases(path):
    """phase -> list of durations (ms) of the sandboxed actions"""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    events = d["traceEvents"] if isinstance(d, dict) else d
    out = collections.defaultdict(list)
    for e in events:
        if e.get("name") in PHASES and "dur" in e:
            out[e["name"]].append(e["dur"] / 1000.0)
    return out


def counters(path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    return d["mounts"][0]["counters"] if d.get("mounts") else {}


def med_range(xs):
    """median [min-max], or - for no values"""
    if not xs:
        return "-"
    return f"{statistics.median(xs):.1f} [{min(xs):.1f}-{max(xs):.1f}]"


def spread(xs):
    xs = sorted(xs)
    return f"{statistics.median(xs):.2f}x [{xs[0]:.2f}-{xs[-1]:.2f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--markdown")
    ap.add_argument("--note", default="")
    a = ap.parse_args()

    rows = []
    wall = collections.defaultdict(dict)        # row -> round -> s
    phase = collections.defaultdict(lambda: collections.defaultdict(list))  # row -> phase -> [per-round mean]
    phase_med = collections.defaultdict(lambda: collections.defaultdict(list))
    actions = collections.defaultdict(list)
    fuse = collections.defaultdict(lambda: collections.defaultdict(list))  # row -> req -> [per action]
    cpu = collections.defaultdict(lambda: ([], []))  # row -> ([server s], [daemon s])
    for line in open(a.results, encoding="utf-8"):
        row, rnd, secs, prof, s0, s1, server_cpu, daemon_cpu = line.rstrip("\n").split("\t")
        cpu[row][0].append(float(server_cpu))
        if daemon_cpu != "-":
            cpu[row][1].append(float(daemon_cpu))
        if row not in rows:
            rows.append(row)
        wall[row][rnd] = float(secs)
        ph = profile_phases(prof)
        n = len(ph["sandbox.createFileSystem"])
        actions[row].append(n)
        for p in PHASES:
            if ph[p]:
                phase[row][p].append(sum(ph[p]) / len(ph[p]))
                phase_med[row][p].append(statistics.median(ph[p]))
        c0, c1 = counters(s0), counters(s1)
        if c1 and n:
            for k in REQUESTS:
                fuse[row][k].append((c1.get(k, 0) - c0.get(k, 0)) / n)

    def per_action(row, p):
        if not phase[row][p]:
            return "-"
        return (f"{statistics.median(phase[row][p]):.1f} "
                f"({statistics.median(phase_med[row][p]):.1f})")

    def ratio_to(row, ref, p_list):
        """median over rounds of (row's per-action sum) / (ref's)"""
        if ref not in phase or row == ref:
            return "-"
        rs = []
        for i in range(min(len(phase[row][p_list[0]]), len(phase[ref][p_list[0]]))):
            num = sum(phase[row][p][i] for p in p_list)
            den = sum(phase[ref][p][i] for p in p_list)
            if den > 0:
                rs.append(num / den)
        return spread(rs) if rs else "-"

    head = ["filesystem", "clean build s", "vs ext4", "sandboxed actions",
            "create ms/action", "delete ms/action", "action ms", "create+delete vs tmpfs",
            "create+delete vs ext4", "Bazel server CPU s", "casfs daemon CPU s"]
    table = []
    for row in rows:
        ws = list(wall[row].values())
        ratios = [wall[row][r] / wall["ext4"][r] for r in wall[row] if r in wall.get("ext4", {})]
        table.append([
            row,
            f"{statistics.median(ws):.1f} [{min(ws):.1f}-{max(ws):.1f}]",
            spread(ratios) if row != "ext4" and ratios else "1",
            str(int(statistics.median(actions[row]))),
            per_action(row, "sandbox.createFileSystem"),
            per_action(row, "sandbox.delete"),
            per_action(row, "subprocess.run"),
            ratio_to(row, "tmpfs", ["sandbox.createFileSystem", "sandbox.delete"]),
            ratio_to(row, "ext4", ["sandbox.createFileSystem", "sandbox.delete"]),
            med_range(cpu[row][0]),
            med_range(cpu[row][1]),
        ])
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*head))
    for t in table:
        print(fmt.format(*t))
    print("per action: mean over the build's sandboxed actions (median of the rounds); "
          "in parentheses the median action")

    fuse_lines = []
    for row in rows:
        if not fuse[row]:
            continue
        per = {k: statistics.median(v) for k, v in fuse[row].items()}
        total = sum(per.values())
        top = sorted(((v, k) for k, v in per.items() if v >= 0.5), reverse=True)
        fuse_lines.append(f"{row}: {total:.0f} FUSE requests per sandboxed action: "
                          + ", ".join(f"{k} {v:.1f}" for v, k in top))
    for line in fuse_lines:
        print(line)
    if a.note:
        print(a.note)

    if a.markdown:
        with open(a.markdown, "w", encoding="utf-8") as f:
            f.write("| " + " | ".join(head) + " |\n")
            f.write("|" + "---|" * len(head) + "\n")
            for t in table:
                f.write("| " + " | ".join(t) + " |\n")
            f.write("\n")
            for line in fuse_lines:
                f.write(f"- {line}\n")
            if a.note:
                f.write(f"\n{a.note}\n")


if __name__ == "__main__":
    main()
