#!/usr/bin/env python3
"""Report of tools/bench/actions/run.

usage: report.py --raw RAW.tsv --configs LIST [--latency LAT.tsv
                 --latency-casfs JSON --latency-ccache JSON]
                 [--explain EXPLAIN.tsv --explain-tu FILE] [--header FILE]
                 [--markdown FILE] [--note TEXT]

RAW.tsv has one line per timed build: configuration, repetition, phase
(cold, warm, reloc), wall s, user s, sys s, casfs daemon CPU s (or empty),
make's exit status, hits, misses, dependency files naming another root,
build output lines naming another root, the file of sha256 sums of the
build's objects, archives and shared libraries, the load average, and the
cache's counters (JSON).

Per configuration and phase: median wall and CPU (user+sys of the build,
plus the casfs daemon's) with their min-max, both as ratios to the median of
the uncached native cold build; hits; and whether every output equals the
uncached build of the same filesystem at the same place (the "native" or
"casfs" configuration, same repetition when there is one).  Then the
issue-8 targets, casfs's --explain of one compile before each relocated
build (EXPLAIN.tsv: configuration, repetition, text), and the hit latency
table (LAT.tsv from spawn.py).
"""
import argparse
import collections
import json
import statistics

LABEL = {
    "native": "no cache, ext4",
    "casfs": "no cache, casfs mount",
    "ccache": "ccache (default: direct mode)",
    "ccache-basedir": "ccache base_dir=ROOT, hash_dir=false",
    "casfs-exec": "casfs-exec launcher",
    "casfs-relocate": "casfs exec --relocate launcher",
    "casfs-sh": "make SHELL=casfs-sh",
}
PHASE = {"cold": "cold", "warm": "warm (same dir, after make clean)", "reloc": "relocated (sb/2)"}
FS = {"native": "ext4", "ccache": "ext4", "ccache-basedir": "ext4"}


def fs_of(config):
    return FS.get(config, "casfs")


def load_hashes(path):
    out = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                digest, name = line.rstrip("\n").split("  ", 1)
                out[name] = digest
    except OSError:
        return None
    return out


def spread(xs, fmt="{:.2f}"):
    xs = sorted(xs)
    return (fmt + " [" + fmt + "-" + fmt + "]").format(statistics.median(xs), xs[0], xs[-1])


def ratio(xs, ref):
    xs = sorted(xs)
    return f"{statistics.median(xs) / ref:.2f}x [{xs[0] / ref:.2f}-{xs[-1] / ref:.2f}]"


class Sample:
    def __init__(self, f):
        self.config, self.rep, self.phase = f[0], int(f[1]), f[2]
        self.ok = len(f) >= 15 and f[7] == "0"
        if len(f) < 15:
            return
        self.wall = float(f[3])
        self.daemon = float(f[6]) if f[6] else 0.0
        self.cpu = float(f[4]) + float(f[5]) + self.daemon
        self.hits = int(f[8]) if f[8] else None
        self.misses = int(f[9]) if f[9] else None
        self.stale_d, self.stale_log = int(f[10]), int(f[11])
        self.hashfile = f[12]
        self.counters = json.loads(f[14]) if f[14] else {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--latency")
    ap.add_argument("--latency-casfs")
    ap.add_argument("--latency-ccache")
    ap.add_argument("--explain")
    ap.add_argument("--explain-tu", default="the TU")
    ap.add_argument("--header")
    ap.add_argument("--markdown")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    configs = a.configs.split(",")

    samples = collections.defaultdict(list)   # (config, phase) -> [Sample]
    failed = collections.defaultdict(list)
    with open(a.raw, encoding="utf-8") as f:
        for line in f:
            s = Sample(line.rstrip("\n").split("\t"))
            (samples if s.ok else failed)[(s.config, s.phase)].append(s)

    # the uncached builds' outputs: (fs, place, rep) -> {name: sha256}
    refs = {}
    for ref_cfg in ("native", "casfs"):
        for ph in ("cold", "reloc"):
            for s in samples.get((ref_cfg, ph), []):
                h = load_hashes(s.hashfile)
                if h:
                    refs[(fs_of(ref_cfg), 2 if ph == "reloc" else 1, s.rep)] = h
    notes = []
    # an uncached build must give the same bytes at every place and on both
    # filesystems (-ffile-prefix-map), or the comparison below means nothing
    distinct = {json.dumps(h, sort_keys=True) for h in refs.values()}
    if len(distinct) > 1:
        notes.append(f"WARNING: the uncached builds differ among themselves ({len(distinct)} distinct "
                     "sets of outputs over places, filesystems and repetitions): the build is not "
                     "reproducible, so byte comparisons below are not conclusive")
    elif refs:
        n = len(next(iter(refs.values())))
        notes.append(f"The uncached builds are identical at both places, on both filesystems and in every "
                     f"repetition ({n} objects, archives and shared libraries).")

    def check(s):
        """(identical, total, text) of s's outputs against the uncached build there"""
        place = 2 if s.phase == "reloc" else 1
        fs = fs_of(s.config)
        ref = refs.get((fs, place, s.rep)) or next(
            (h for (f2, p2, _), h in sorted(refs.items()) if f2 == fs and p2 == place), None)
        got = load_hashes(s.hashfile)
        if ref is None or got is None:
            return None, None, "no reference"
        same = sum(1 for k, v in ref.items() if got.get(k) == v)
        differ = sum(1 for k, v in ref.items() if k in got and got[k] != v)
        missing = sum(1 for k in ref if k not in got)
        extra = sum(1 for k in got if k not in ref)
        bad = [f"{differ} DIFFER" if differ else "", f"{missing} missing" if missing else "",
               f"{extra} extra" if extra else ""]
        bad = ", ".join(b for b in bad if b)
        return same, len(ref), (f"{same}/{len(ref)} identical" + (f" ({bad})" if bad else ""))

    def same_as(s, colds):
        """s's outputs equal those of the cold build of the same repetition"""
        cold = next((x for x in colds if x.rep == s.rep), None)
        return cold is not None and load_hashes(cold.hashfile) == load_hashes(s.hashfile)

    if a.explain:
        seen = set()
        try:
            with open(a.explain, encoding="utf-8") as f:
                for line in f:
                    c, rep, text = line.rstrip("\n").split("\t", 2)
                    if (c, text) in seen:
                        continue
                    seen.add((c, text))
                    notes.append(f"casfs exec --explain of the compile of {a.explain_tu} before the "
                                 f"relocated build, {LABEL.get(c, c)} (repetition {rep}): {text.strip()}")
        except OSError:
            pass

    nat = [s for s in samples.get(("native", "cold"), [])]
    if not nat:
        print("no successful uncached native cold build: no ratios")
        return 1
    ref_wall = statistics.median(s.wall for s in nat)
    ref_cpu = statistics.median(s.cpu for s in nat)

    head = ["configuration", "build", "wall s", "wall x native", "CPU s", "CPU x native",
            "casfs daemon CPU s", "hits", "outputs vs uncached build"]
    table = []
    verdict = {}
    for c in configs:
        for ph in ("cold", "warm", "reloc"):
            ss = samples.get((c, ph), [])
            fails = failed.get((c, ph), [])
            if not ss and not fails:
                continue
            if not ss:
                table.append([LABEL[c], PHASE[ph], "FAIL", "", "", "", "", "", ""])
                continue
            walls = [s.wall for s in ss]
            cpus = [s.cpu for s in ss]
            daemon = "-" if fs_of(c) == "ext4" else f"{statistics.median(s.daemon for s in ss):.2f}"
            # the repetition with the median hit count; the range when they differ
            hs = sorted(((s.hits, s.misses) for s in ss if s.hits is not None), key=lambda x: (x[0], x[1]))
            hits = "-"
            if hs:
                h, m = hs[len(hs) // 2]
                if h + m:
                    hits = f"{h}/{h + m} ({100 * h / (h + m):.0f}%)"
                    if hs[0][0] != hs[-1][0]:
                        hits += f" [{hs[0][0]}-{hs[-1][0]}]"
            checks = [check(s) for s in ss]
            texts = sorted({t for _, _, t in checks})
            out = "; ".join(texts)
            same = all(sm is not None and sm == tot for sm, tot, _ in checks)
            own_cold = False
            if ph != "cold" and not same:
                own_cold = all(same_as(s, samples.get((c, "cold"), [])) for s in ss)
                if own_cold:
                    out += "; identical to this configuration's own cold build"
            sd = max(s.stale_d for s in ss)
            sl = max(s.stale_log for s in ss)
            if sd:
                out += f"; {sd} .d files name the other root"
            if sl:
                out += f"; {sl} output lines name the other root"
            if fails:
                out += f"; {len(fails)} FAILED run(s)"
            verdict[(c, ph)] = {
                "cpu": statistics.median(cpus), "wall": statistics.median(walls),
                "hits": hs[len(hs) // 2] if hs else None,
                "correct": (same or own_cold) and not sd and not fails,
                "wrong": ", ".join(x for x in (
                    "" if same or own_cold else "objects differ",
                    f"{sd} .d files name the other root" if sd else "",
                    f"{len(fails)} failed" if fails else "") if x),
                "how": ("" if same else " (equal to its own cold build, not to an uncached compile's)"
                        if own_cold else ""),
                "counters": ss[len(ss) // 2].counters,
            }
            table.append([LABEL[c], PHASE[ph], spread(walls), ratio(walls, ref_wall), spread(cpus),
                          ratio(cpus, ref_cpu), daemon, hits, out])

    lines = []
    if a.header:
        with open(a.header, encoding="utf-8") as f:
            lines += [l.rstrip("\n") for l in f]
        lines.append("")
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines.append(fmt.format(*head))
    for t in table:
        lines.append(fmt.format(*t))
    lines.append("")
    lines.append("Medians [min-max] over the repetitions; ratios against the median uncached native cold "
                 f"build ({ref_wall:.1f} s wall, {ref_cpu:.1f} s CPU).  CPU: user+sys of make and all it "
                 "waited for, plus the casfs daemon's on a casfs mount.  Hits: compiles for ccache, every "
                 "action (recipe lines included for casfs-sh) for casfs.")
    lines += notes

    # the targets
    tg = []

    def tcpu(c):
        v = verdict.get((c, "cold"))
        return None if not v else v["cpu"] / ref_cpu

    for c in ("ccache", "ccache-basedir", "casfs-exec", "casfs-relocate", "casfs-sh"):
        r = tcpu(c)
        if r is None:
            continue
        mark = "" if not c.startswith("casfs") else ("  ok" if r <= 1.05 else "  MISS")
        tg.append(f"cold CPU, {LABEL[c]}: {r:.2f}x the uncached native build (target <= 1.05x){mark}")
    for c in ("ccache", "ccache-basedir", "casfs-exec", "casfs-relocate", "casfs-sh"):
        v = verdict.get((c, "reloc"))
        if not v or not v["hits"]:
            continue
        h, m = v["hits"]
        ok = h == h + m and v["correct"]
        mark = "" if not c.startswith("casfs") else ("  ok" if ok else "  MISS")
        why = ""
        cnt = v["counters"]
        if c.startswith("casfs") and m:
            reasons = {k: n for k, n in cnt.items() if k.startswith("uncacheable_")}
            why = f" (misses {m}" + (", " + ", ".join(f"{k}={n}" for k, n in reasons.items()) if reasons else "") + ")"
        tg.append(f"relocated hits, {LABEL[c]}: {h}/{h + m}, outputs "
                  f"{'correct' + v['how'] if v['correct'] else 'NOT all correct: ' + v['wrong']}{why} (target 100%, correct){mark}")

    # where casfs's time goes: its FUSE requests and action work per build
    req_keys = ("lookup", "getattr", "open", "read", "create", "write", "ioctl", "sessions",
                "action_lookups", "action_outputs_restored")
    req_head = ["configuration", "build", *req_keys]
    req_rows = []
    for c in configs:
        if fs_of(c) != "casfs":
            continue
        for ph in ("cold", "warm", "reloc"):
            ss = samples.get((c, ph), [])
            if not ss:
                continue
            k = ss[len(ss) // 2].counters
            req_rows.append([LABEL[c], PHASE[ph], *(str(k.get(r, 0)) for r in req_keys)])
    if req_rows:
        widths = [max(len(h), *(len(t[i]) for t in req_rows)) for i, h in enumerate(req_head)]
        fmt2 = "  ".join(f"{{:<{w}}}" for w in widths)
        lines += ["", "casfs counters per build (casfs stats --json, one repetition):", fmt2.format(*req_head)]
        lines += [fmt2.format(*t) for t in req_rows]

    lat_lines, lat_md = [], []
    if a.latency:
        lat_lines, lat_md, lat_tg = latency_report(a)
        tg += lat_tg
    if tg:
        lines.append("")
        lines.append("Targets (issue 8):")
        lines += ["  " + t for t in tg]
    lines += lat_lines
    if a.note:
        lines += ["", a.note]
    print("\n".join(lines))

    if a.markdown:
        with open(a.markdown, "w", encoding="utf-8") as f:
            if a.header:
                with open(a.header, encoding="utf-8") as h:
                    f.write("".join(f"{l.rstrip()}  \n" for l in h) + "\n")
            f.write("| " + " | ".join(head) + " |\n")
            f.write("|---|---|" + "---:|" * 5 + "---|---|\n")
            for t in table:
                f.write("| " + " | ".join(t) + " |\n")
            f.write("\n")
            f.write(f"Ratios against the median uncached native cold build ({ref_wall:.1f} s wall, "
                    f"{ref_cpu:.1f} s CPU).\n")
            for n in notes:
                f.write(f"\n{n}\n")
            if tg:
                f.write("\nTargets (issue 8):\n\n" + "".join(f"* {t}\n" for t in tg))
            if req_rows:
                f.write("\ncasfs counters per build (`casfs stats --json`, one repetition):\n\n")
                f.write("| " + " | ".join(req_head) + " |\n|---|---|" + "---:|" * (len(req_head) - 2) + "\n")
                f.write("".join("| " + " | ".join(t) + " |\n" for t in req_rows))
            if lat_md:
                f.write("\n" + "\n".join(lat_md) + "\n")
            if a.note:
                f.write(f"\n{a.note}\n")
    return 0


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def latency_report(a):
    wall = collections.defaultdict(list)
    cpu = collections.defaultdict(list)
    dcpu = collections.defaultdict(float)
    dn = collections.defaultdict(int)
    bad = collections.defaultdict(int)
    order = []
    try:
        f = open(a.latency, encoding="utf-8")
    except OSError:
        return [], [], []
    with f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p[0] == "S":
                if p[1] not in order:
                    order.append(p[1])
                wall[p[1]].append(float(p[3]) / 1000)
                cpu[p[1]].append(float(p[4]) / 1000)
                if p[5] != "0":
                    bad[p[1]] += 1
            elif p[0] == "D":
                dcpu[p[1]] += float(p[4]) / 1000
                dn[p[1]] += int(p[3])
    if "true" not in wall:
        return [], [], []
    floors = {"": (statistics.median(wall["true"]), statistics.median(cpu["true"]))}
    if "rm + true" in wall:  # the floor of the variants run after an rm
        floors["rm + "] = (statistics.median(wall["rm + true"]), statistics.median(cpu["rm + true"]))

    def floor_of(v):
        return floors["rm + "] if v.startswith("rm + ") and "rm + " in floors else floors[""]

    def is_floor(v):
        return v in ("true", "rm + true")
    head = ["command", "spawns", "wall ms median [p10-p90]", "above its floor ms", "CPU ms (client)",
            "casfs daemon CPU ms", "CPU above its floor ms"]
    rows = []
    for v in order:
        w = wall[v]
        d = dcpu[v] / dn[v] if dn[v] else 0.0
        rows.append([v + (f" ({bad[v]} FAILED)" if bad[v] else ""), str(len(w)),
                     f"{statistics.median(w):.2f} [{pct(w, 0.1):.2f}-{pct(w, 0.9):.2f}]",
                     "-" if is_floor(v) else f"{statistics.median(w) - floor_of(v)[0]:+.2f}",
                     f"{statistics.median(cpu[v]):.2f}",
                     f"{d:.2f}" if dn[v] else "-",
                     "-" if is_floor(v) else f"{statistics.median(cpu[v]) + d - floor_of(v)[1]:+.2f}"])
    checks = []
    try:
        with open(a.latency_casfs, encoding="utf-8") as f:
            c = json.load(f)
        n = sum(len(w) for v, w in wall.items() if "(hit" in v and "casfs" in v)
        checks.append(f"casfs: {c.get('action_hits', 0)} hits, {c.get('action_misses', 0)} misses "
                      f"for {n} casfs exec/casfs-exec spawns")
    except (OSError, TypeError, ValueError):
        pass
    try:
        with open(a.latency_ccache, encoding="utf-8") as f:
            c = json.load(f)
        checks.append(f"ccache: {c.get('hits', 0)} hits, {c.get('misses', 0)} misses for "
                      f"{len(wall.get('ccache cc (hit)', []))} ccache spawns")
    except (OSError, TypeError, ValueError):
        pass
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = ["", "Hit latency (one compile, spawned by spawn.py; interleaved rounds):", fmt.format(*head)]
    lines += [fmt.format(*r) for r in rows]
    lines.append("floors: /bin/true; for the rm + rows, sh removing the compile's .o and .d then running /bin/true "
                 "(the hit above its floor then includes the restore of both and the unlinks of the restored ones)")
    lines.append("verified: " + "; ".join(checks))
    md = ["Hit latency (one compile, spawned by spawn.py; interleaved rounds):", "",
          "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", "Floors: /bin/true; for the rm + rows, sh removing the compile's .o and .d then running /bin/true "
           "(the hit above its floor then includes the restore of both and the unlinks of the restored ones).",
           "", "Verified: " + "; ".join(checks) + "."]
    tg = []
    for v, t in (("casfs exec -- cc (hit)", True), ("casfs-exec cc (hit)", True),
                 ("rm + casfs-exec cc (hit, outputs removed)", True), ("ccache cc (hit)", False)):
        if v in wall:
            d = statistics.median(wall[v]) - floor_of(v)[0]
            c = statistics.median(cpu[v]) + (dcpu[v] / dn[v] if dn[v] else 0) - floor_of(v)[1]
            mark = ("  ok" if d <= 1.0 else "  MISS") if t else ""
            tg.append(f"hit above the spawn floor, {v}: {d:.2f} ms wall, {c:.2f} ms CPU"
                      f"{' (client and daemon)' if dn[v] else ''} (target <= 1 ms){mark}")
    return lines, md, tg


if __name__ == "__main__":
    raise SystemExit(main())
