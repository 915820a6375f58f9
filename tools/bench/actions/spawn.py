#!/usr/bin/env python3
"""Per-spawn latency of commands, for tools/bench/actions/run.

usage: spawn.py SPEC.json OUT.tsv
       spawn.py --warm-up N SPEC.json

With --warm-up, every variant runs N times in a row (nothing is timed or
written): a cache records there what the timed spawns then hit, in the very
environment of the timed spawns (a PATH changed by a wrapper around python
would otherwise change the actions' keys).

SPEC.json: {"rounds": R, "variants": [{"name": N, "argv": [...], "cwd": DIR,
"env": {NAME: VALUE, ...} (added to this process's environment; PWD is set
to cwd), "per_round": K, "daemon_pid": PID or null}, ...]}.

Each round runs every variant in turn (the order rotates by one each round)
and each variant K times in a row.  Every spawn is os.posix_spawn with
stdin, stdout and stderr on /dev/null, then os.wait4: its wall time is from
just before the spawn to the return of wait4, its CPU time the child's
rusage (user+sys of the child and of every descendant it waited for).  For
a variant with a daemon_pid the daemon's user+sys (all threads, from
/proc/PID/stat, in clock ticks) is read around each batch of K spawns.

OUT.tsv gets one line per spawn:  S  name  round  wall_us  cpu_us  exit
and one per batch with a daemon:  D  name  round  spawns  daemon_cpu_us
Exit status: 0 when every spawn exited 0, 1 otherwise (the lines are
written either way), 2 for a bad spec.
"""
import json
import os
import sys
import time

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def daemon_cpu_us(pid):
    """user+sys of process pid in microseconds (tick resolution), or None"""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(rest[11]) + int(rest[12])) * TICK_US


def spawn_once(v, devnull_actions):
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(v["argv"][0], v["argv"], v["envp"], file_actions=devnull_actions)
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter_ns()
    code = os.waitstatus_to_exitcode(status)
    return (t1 - t0) / 1000.0, (ru.ru_utime + ru.ru_stime) * 1e6, code


def main():
    args = sys.argv[1:]
    warm_up = None
    if len(args) == 3 and args[0] == "--warm-up" and args[1].isdigit():
        warm_up = int(args[1])
        args = args[2:]
    if len(args) != (1 if warm_up is not None else 2):
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        spec = json.load(f)
    variants = spec["variants"]
    for v in variants:
        if not v.get("argv") or not os.path.isabs(v["argv"][0]):
            print(f"spawn.py: variant {v.get('name')}: argv[0] must be an absolute path",
                  file=sys.stderr)
            return 2
        env = dict(os.environ)
        env.update(v.get("env", {}))
        env["PWD"] = v["cwd"]
        v["envp"] = env
    devnull = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]
    failed = False
    if warm_up is not None:
        for v in variants:
            os.chdir(v["cwd"])
            for _ in range(warm_up):
                failed = spawn_once(v, devnull)[2] != 0 or failed
        return 1 if failed else 0
    with open(args[1], "w", encoding="utf-8") as out:
        for rnd in range(spec["rounds"]):
            k = rnd % len(variants)
            for v in variants[k:] + variants[:k]:
                os.chdir(v["cwd"])
                dpid = v.get("daemon_pid")
                d0 = daemon_cpu_us(dpid) if dpid else None
                for _ in range(v["per_round"]):
                    wall, cpu, code = spawn_once(v, devnull)
                    failed = failed or code != 0
                    out.write(f"S\t{v['name']}\t{rnd}\t{wall:.1f}\t{cpu:.1f}\t{code}\n")
                if d0 is not None:
                    d1 = daemon_cpu_us(dpid)
                    if d1 is not None:
                        out.write(f"D\t{v['name']}\t{rnd}\t{v['per_round']}\t{d1 - d0:.0f}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
