#!/usr/bin/env python3
"""Randomized hash-on-write test: drives a mounted casfs with mixed
operations and, after every operation, checks that each file's
user.casfs.xxh128 xattr equals xxh128sum and its user.casfs.sha256 xattr
(raw bytes) equals sha256sum of the file in the backing directory.
Usage: hashing.py MOUNT BACKING OPS SEED"""
import ctypes
import errno
import mmap
import os
import random
import subprocess
import sys

mnt, back, nops, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print(f"# seed {seed}", flush=True)
rng = random.Random(seed)
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
NAMES = [f"f{i}" for i in range(8)]
passed = failed = 0
counts = {}


def data(n):
    return rng.randbytes(n)


def backing_digests(tool, names):
    names = [n for n in names if os.path.isfile(os.path.join(back, n))]
    if not names:
        return {}
    out = subprocess.run([tool, "--"] + names, cwd=back, check=True,
                         capture_output=True, text=True).stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def xattr_hex(name, attr):
    try:
        v = os.getxattr(os.path.join(mnt, name), attr)
        return v.decode() if attr == "user.casfs.xxh128" else v.hex()
    except OSError as e:
        return f"error {errno.errorcode.get(e.errno)}"


def check(op):
    global passed, failed
    pairs = [("xxh128sum", "user.casfs.xxh128"), ("sha256sum", "user.casfs.sha256")]
    if rng.random() < 0.5:      # either may be asked first
        pairs.reverse()
    for tool, attr in pairs:
        for name, hexd in backing_digests(tool, NAMES).items():
            got = xattr_hex(name, attr)
            if got != hexd:
                failed += 1
                print(f"FAIL after {op}: {name}: {attr} {got}, {tool} of backing {hexd}")
                return False
    passed += 1
    return True


def path(n):
    return os.path.join(mnt, n)


def op_write(n):
    with open(path(n), "wb") as f:
        for _ in range(rng.randint(0, 6)):
            f.write(data(rng.choice([1, 100, 4096, 65536, 200000])))


def op_pwrite(n):
    fd = os.open(path(n), os.O_WRONLY | os.O_CREAT, 0o644)
    size = os.fstat(fd).st_size
    os.pwrite(fd, data(rng.randint(1, 5000)), rng.randint(0, size + 100))
    os.close(fd)


def op_append(n):
    fd = os.open(path(n), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for _ in range(rng.randint(1, 3)):
        os.write(fd, data(rng.randint(1, 70000)))
    os.close(fd)


def op_truncate(n):
    if os.path.exists(path(n)):
        size = os.stat(path(n)).st_size
        os.truncate(path(n), rng.choice([0, size // 2, size + 5000]))


def op_otrunc(n):
    fd = os.open(path(n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data(rng.randint(0, 100000)))
    os.close(fd)


def op_fallocate(n):
    fd = os.open(path(n), os.O_RDWR | os.O_CREAT, 0o644)
    size = os.fstat(fd).st_size
    if size > 8192 and rng.random() < 0.5:
        # punch a hole: FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
        libc.fallocate(fd, 3, 4096, 4096)
    else:
        os.posix_fallocate(fd, 0, size + rng.randint(1, 10000))
    os.close(fd)


def op_mmap(n):
    fd = os.open(path(n), os.O_RDWR | os.O_CREAT, 0o644)
    size = os.fstat(fd).st_size
    if size == 0:
        os.write(fd, data(5000))
        size = 5000
    m = mmap.mmap(fd, size)
    off = rng.randrange(size)
    chunk = data(min(100, size - off))
    m[off:off + len(chunk)] = chunk
    m.flush()
    m.close()
    os.close(fd)


def op_copy_range(n):
    src = rng.choice(NAMES)
    if not os.path.exists(path(src)):
        return
    fi = os.open(path(src), os.O_RDONLY)
    fo = os.open(path(n), os.O_WRONLY | os.O_CREAT, 0o644)
    size = os.fstat(fi).st_size
    try:
        os.copy_file_range(fi, fo, max(1, size), 0, rng.randint(0, 3000))
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL):
            raise
    os.close(fi)
    os.close(fo)


def op_rename_over(n):
    other = rng.choice(NAMES)
    if os.path.exists(path(other)) and other != n:
        os.rename(path(other), path(n))


def op_link(n):
    if os.path.exists(path(n)):
        tmp = path("link.tmp")
        os.link(path(n), tmp)
        with open(tmp, "ab") as f:      # written through the other name
            f.write(data(rng.randint(1, 3000)))
        os.unlink(tmp)


def op_chmod(n):
    if os.path.exists(path(n)):
        os.chmod(path(n), rng.choice([0o600, 0o644, 0o755]))


def op_two_writers(n):
    a = os.open(path(n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    b = os.open(path(n), os.O_WRONLY)
    off = 0
    for _ in range(rng.randint(2, 8)):
        fd = rng.choice([a, b])
        chunk = data(rng.randint(1, 20000))
        os.pwrite(fd, chunk, off if rng.random() < 0.8 else max(0, off - 10))
        off += len(chunk)
    os.close(a)
    os.close(b)


OPS = [op_write, op_pwrite, op_append, op_truncate, op_otrunc, op_fallocate, op_mmap,
       op_copy_range, op_rename_over, op_link, op_chmod, op_two_writers]

for i in range(nops):
    op = rng.choice(OPS)
    name = rng.choice(NAMES)
    op(name)
    counts[op.__name__] = counts.get(op.__name__, 0) + 1
    if not check(f"op {i} {op.__name__}({name})"):
        break

print("# ops: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
