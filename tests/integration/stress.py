#!/usr/bin/env python3
"""Concurrent metadata stress: WORKERS processes each run a deterministic
random sequence of operations (create, write, append, truncate, unlink,
rename, rename over, link, mkdir, rmdir, symlink, chmod, setxattr, exchange)
over a small name space in their own sub-directory, so inode numbers are
freed and reused constantly while the other workers do the same.  The same
sequences run below NATIVE_DIR and below MOUNT_DIR (workers in parallel on
each side) and the final trees must be identical: names, types, sizes,
contents, modes, link counts, xattrs, symlink targets, and each worker's log
of per-operation results (errno names included).

Then the reuse hammer (--hammer N): each worker loops create/stat/link/
read/unlink, mkdir/stat/rmdir and symlink/readlink/unlink in its own
directory; every step has exactly one right answer.

Usage: stress.py [--tag T] [--workers N] [--ops N] [--hammer N] MOUNT_DIR NATIVE_DIR
Prints ok/FAIL lines and `N passed, N failed`.  Python 3.11, stdlib only.
"""

import argparse
import ctypes
import errno
import hashlib
import os
import random
import stat
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                           ctypes.c_char_p, ctypes.c_uint]
AT_FDCWD = -100
RENAME_EXCHANGE = 2
NAMES = ["n%02d" % i for i in range(24)]
DIRS = ["", "da", "db", "da/dc"]


def exchange(a, b):
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def worker(root, seed, nops, logpath):
    rnd = random.Random(seed)
    log = []

    def path():
        return os.path.join(root, rnd.choice(DIRS), rnd.choice(NAMES))

    for i in range(nops):
        op = rnd.choice(["create", "create", "write", "append", "truncate", "unlink",
                         "rename", "rename", "link", "mkdir", "rmdir", "symlink",
                         "chmod", "setxattr", "exchange", "stat", "read", "listdir"])
        a, b = path(), path()
        data = rnd.randbytes(rnd.choice([0, 1, 100, 4096, 5000, 70000]))
        mode = rnd.choice([0o600, 0o644, 0o755, 0o640])
        try:
            if op == "create":
                fd = os.open(a, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
                os.write(fd, data)
                os.close(fd)
                res = "ok"
            elif op == "write":
                fd = os.open(a, os.O_WRONLY)
                os.pwrite(fd, data, rnd.randrange(0, 8000))
                os.close(fd)
                res = "ok"
            elif op == "append":
                fd = os.open(a, os.O_WRONLY | os.O_APPEND)
                os.write(fd, data[:500])
                os.close(fd)
                res = "ok"
            elif op == "truncate":
                os.truncate(a, rnd.randrange(0, 10000))
                res = "ok"
            elif op == "unlink":
                os.unlink(a)
                res = "ok"
            elif op == "rename":
                os.rename(a, b)
                res = "ok"
            elif op == "link":
                os.link(a, b)
                res = "ok"
            elif op == "mkdir":
                os.mkdir(a, mode | 0o700)
                res = "ok"
            elif op == "rmdir":
                os.rmdir(a)
                res = "ok"
            elif op == "symlink":
                os.symlink(os.path.basename(b), a)
                res = "ok"
            elif op == "chmod":
                os.chmod(a, mode)
                res = "ok"
            elif op == "setxattr":
                os.setxattr(a, "user.s", data[:64])
                res = "ok"
            elif op == "exchange":
                exchange(a, b)
                res = "ok"
            elif op == "stat":
                st = os.lstat(a)
                res = (stat.S_IFMT(st.st_mode), st.st_size if stat.S_ISREG(st.st_mode) else 0,
                       st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0)
            elif op == "read":
                fd = os.open(a, os.O_RDONLY)
                h = hashlib.sha1()
                while True:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    h.update(chunk)
                os.close(fd)
                res = h.hexdigest()[:12]
            elif op == "listdir":
                res = sorted(os.listdir(os.path.dirname(a)))
        except OSError as e:
            res = errno.errorcode.get(e.errno, str(e.errno))
        log.append("%d %s %s %s %s" % (i, op, a[len(root):], b[len(root):], res))
    with open(logpath, "w") as f:
        f.write("\n".join(log) + "\n")


def hammer(root, seed, iters, logpath):
    """Tight create/stat/unlink, mkdir/stat/rmdir, symlink/readlink/unlink
    loops: every step has exactly one right answer; inode numbers are freed
    and reused by the other workers all the time."""
    rnd = random.Random(seed)
    bad = []
    for i in range(iters):
        f = os.path.join(root, "f%d" % (i % 5))
        d = os.path.join(root, "d%d" % (i % 5))
        l = os.path.join(root, "l%d" % (i % 5))
        size = rnd.randrange(1, 3000)
        steps = []
        try:
            fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
            os.write(fd, b"x" * size)
            os.close(fd)
            st = os.lstat(f)
            steps.append(("file", stat.S_ISREG(st.st_mode), st.st_size == size,
                          stat.S_IMODE(st.st_mode) == 0o640, st.st_nlink == 1))
            os.mkdir(d, 0o750)
            st = os.lstat(d)
            steps.append(("dir", stat.S_ISDIR(st.st_mode), stat.S_IMODE(st.st_mode) == 0o750,
                          st.st_nlink == 2))
            os.symlink("t%d" % size, l)
            steps.append(("link", os.readlink(l) == "t%d" % size))
            os.link(f, f + "h")
            steps.append(("hard", os.lstat(f + "h").st_nlink == 2, os.lstat(f).st_ino == os.lstat(f + "h").st_ino))
            with open(f + "h", "rb") as fh:
                steps.append(("read", len(fh.read()) == size))
            os.unlink(f + "h")
            os.unlink(f)
            os.rmdir(d)
            os.unlink(l)
            for n in (f, d, l):
                try:
                    os.lstat(n)
                    steps.append(("gone", False))
                except FileNotFoundError:
                    pass
        except OSError as e:
            steps.append(("error", errno.errorcode.get(e.errno, str(e.errno)), str(e)))
            for n in (f + "h", f, l):
                try:
                    os.unlink(n)
                except OSError:
                    pass
            try:
                os.rmdir(d)
            except OSError:
                pass
        wrong = [x for x in steps if x[0] == "error" or not all(x[1:])]
        if wrong:
            bad.append("%d %r" % (i, wrong))
    with open(logpath, "w") as out:
        out.write("\n".join(bad) + ("\n" if bad else ""))


def snapshot(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = p[len(root):]
            kind = stat.S_IFMT(st.st_mode)
            item = [rel, kind, "%o" % stat.S_IMODE(st.st_mode)]
            if stat.S_ISREG(kind):
                with open(p, "rb") as f:
                    item += [st.st_size, st.st_nlink, hashlib.sha1(f.read()).hexdigest()[:16]]
            elif stat.S_ISLNK(kind):
                item += [os.readlink(p)]
            elif stat.S_ISDIR(kind):
                item += [st.st_nlink]
            try:
                item += [sorted(x for x in os.listxattr(p, follow_symlinks=False)
                                if x.startswith("user.") and not x.startswith("user.casfs."))]
                if "user.s" in item[-1]:
                    item += [os.getxattr(p, "user.s", follow_symlinks=False).hex()[:16]]
            except OSError as e:
                item += ["xattr:" + errno.errorcode.get(e.errno, "?")]
            out.append(item)
    return out


def run_hammer(base, workers, iters):
    os.mkdir(base)
    os.mkdir(base + "-logs")
    pids = []
    for w in range(workers):
        root = os.path.join(base, "h%d" % w)
        os.mkdir(root)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                hammer(root, 77 + w, iters, os.path.join(base + "-logs", "bad%d" % w))
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            os._exit(code)
        pids.append(pid)
    crashed = sum(1 for pid in pids if os.waitpid(pid, 0)[1] != 0)
    bad = []
    for w in range(workers):
        try:
            bad += [("w%d " % w) + x for x in open(os.path.join(base + "-logs", "bad%d" % w)).read().splitlines()]
        except OSError as e:
            bad.append("w%d: no log (%s)" % (w, e))
    return crashed, bad


def run_side(base, workers, nops):
    os.mkdir(base)
    os.mkdir(base + "-logs")
    pids = []
    for w in range(workers):
        root = os.path.join(base, "w%d" % w)
        os.mkdir(root)
        for dd in DIRS[1:]:
            os.makedirs(os.path.join(root, dd), exist_ok=True)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker(root, 1000 + w, nops, os.path.join(base + "-logs", "log%d" % w))
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            os._exit(code)
        pids.append(pid)
    bad = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            bad += 1
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mount_dir")
    ap.add_argument("native_dir")
    ap.add_argument("--tag", default="")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--hammer", type=int, default=2000,
                    help="iterations of the reuse hammer per worker (0: skip)")
    a = ap.parse_args()
    prefix = a.tag + "/" if a.tag else ""
    passed = failed = 0

    def ok(name):
        nonlocal passed
        passed += 1
        print("ok %s%s" % (prefix, name), flush=True)

    def fail(name, detail):
        nonlocal failed
        failed += 1
        print("FAIL %s%s: %s" % (prefix, name, detail[:1500]), flush=True)

    tag = "stress-%d" % os.getpid()
    bases = {}
    for side, root in (("native", a.native_dir), ("casfs", a.mount_dir)):
        base = os.path.join(root, tag)
        bases[side] = base
        t0 = time.monotonic()
        bad = run_side(base, a.workers, a.ops)
        print("# %s: %d workers x %d ops in %.1f s" % (side, a.workers, a.ops, time.monotonic() - t0),
              flush=True)
        if bad:
            fail("workers_%s" % side, "%d worker processes failed" % bad)
        else:
            ok("workers_%s" % side)
    for w in range(a.workers):
        ln = open(os.path.join(bases["native"] + "-logs", "log%d" % w)).read().splitlines()
        lc = open(os.path.join(bases["casfs"] + "-logs", "log%d" % w)).read().splitlines()
        diff = [(x, y) for x, y in zip(ln, lc) if x != y]
        if diff or len(ln) != len(lc):
            fail("oplog_w%d" % w, "%d differing results; first: native=%r casfs=%r" % (
                len(diff), diff[0][0] if diff else "", diff[0][1] if diff else ""))
        else:
            ok("oplog_w%d" % w)
    sn = snapshot(bases["native"])
    sc = snapshot(bases["casfs"])
    if sn == sc:
        ok("final_tree (%d entries)" % len(sn))
    else:
        first = next(((x, y) for x, y in zip(sn, sc) if x != y), None)
        fail("final_tree", "%d vs %d entries; first difference native=%r casfs=%r" % (
            len(sn), len(sc), first[0] if first else None, first[1] if first else None))
    if a.hammer:
        for side, root in (("native", a.native_dir), ("casfs", a.mount_dir)):
            t0 = time.monotonic()
            crashed, bad = run_hammer(os.path.join(root, tag + "-hammer"), a.workers, a.hammer)
            print("# hammer %s: %d workers x %d iterations in %.1f s" % (
                side, a.workers, a.hammer, time.monotonic() - t0), flush=True)
            if crashed or bad:
                fail("reuse_hammer_%s" % side, "%d of %d iterations went wrong, %d workers crashed; first: %s" % (
                    len(bad), a.workers * a.hammer, crashed, "; ".join(bad[:3])))
            else:
                ok("reuse_hammer_%s" % side)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
