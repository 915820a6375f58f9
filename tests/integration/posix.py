#!/usr/bin/env python3
"""POSIX behaviour of a mounted casfs, compared with a native directory.

Usage: posix.py [--tag TAG] [--only NAME,...] [--skip NAME,...] MOUNT_DIR NATIVE_DIR

Every check runs the same sequence of real system calls (os module, ctypes
for renameat2/utimensat/getxattr/fallocate/getdents64) twice: once below
NATIVE_DIR and once below MOUNT_DIR, each time in a fresh sub-directory named
after the check, and compares the (normalised) results, errno names
included.  A few checks also assert absolute expectations (e.g. EEXIST for
O_EXCL) so that a broken native file system does not hide a bug.

Prints `ok NAME` or `FAIL NAME: detail` per check and finally exactly
`N passed, N failed`; exits 1 when anything failed.

Runs as root (all checks) or as an unprivileged user on a mount made by that
user (chown to other uids and mknod of devices are skipped).

Python 3.11, standard library only.
"""

import argparse
import ctypes
import errno
import fcntl
import mmap
import os
import random
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback

J = os.path.join
libc = ctypes.CDLL(None, use_errno=True)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
SEEK_DATA = getattr(os, "SEEK_DATA", 3)
SEEK_HOLE = getattr(os, "SEEK_HOLE", 4)
DT_NAMES = {0: "UNKNOWN", 1: "FIFO", 2: "CHR", 4: "DIR", 6: "BLK", 8: "REG",
            10: "LNK", 12: "SOCK", 14: "WHT"}

libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                           ctypes.c_char_p, ctypes.c_uint]
libc.renameat2.restype = ctypes.c_int


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p,
                           ctypes.POINTER(Timespec), ctypes.c_int]
libc.utimensat.restype = ctypes.c_int
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                          ctypes.c_size_t]
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.listxattr.restype = ctypes.c_ssize_t
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong,
                           ctypes.c_longlong]
libc.fallocate.restype = ctypes.c_int
libc.getdents64.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.getdents64.restype = ctypes.c_ssize_t


def _raise_errno(what):
    e = ctypes.get_errno()
    raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def renameat2(old, new, flags):
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        _raise_errno("renameat2")


def utimensat(path, atime, mtime, flags=0):
    """atime/mtime: (sec, nsec) tuples or UTIME_NOW / UTIME_OMIT; None both -> NULL."""
    if atime is None and mtime is None:
        times = None
    else:
        def ts(v):
            if isinstance(v, tuple):
                return Timespec(v[0], v[1])
            return Timespec(0, v)
        arr = (Timespec * 2)(ts(atime), ts(mtime))
        times = arr
    if libc.utimensat(AT_FDCWD, os.fsencode(path), times, flags) != 0:
        _raise_errno("utimensat")


def getxattr_size(path, name):
    n = libc.getxattr(os.fsencode(path), name.encode(), None, 0)
    if n < 0:
        _raise_errno("getxattr")
    return n


def getxattr_buf(path, name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.getxattr(os.fsencode(path), name.encode(), buf, size)
    if n < 0:
        _raise_errno("getxattr")
    return buf.raw[:n]


def listxattr_size(path):
    n = libc.listxattr(os.fsencode(path), None, 0)
    if n < 0:
        _raise_errno("listxattr")
    return n


def listxattr_buf(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.listxattr(os.fsencode(path), buf, size)
    if n < 0:
        _raise_errno("listxattr")
    return buf.raw[:n]


def user_xattrs(names):
    """Sorted user.* names, without casfs's virtual user.casfs.* attributes
    (documented in docs/DIGESTS.md)."""
    out = []
    for n in names:
        s = os.fsdecode(n) if isinstance(n, bytes) else n
        if s.startswith("user.") and not s.startswith("user.casfs."):
            out.append(s)
    return sorted(out)


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        _raise_errno("fallocate")


def getdents(path, bufsize=32768):
    """Raw directory entries: list of (name, d_ino, d_type, d_off)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return getdents_fd(fd, bufsize)
    finally:
        os.close(fd)


def getdents_fd(fd, bufsize=32768, max_calls=None):
    out = []
    buf = ctypes.create_string_buffer(bufsize)
    calls = 0
    while max_calls is None or calls < max_calls:
        n = libc.getdents64(fd, buf, bufsize)
        calls += 1
        if n < 0:
            _raise_errno("getdents64")
        if n == 0:
            break
        raw = buf.raw[:n]
        pos = 0
        while pos < n:
            d_ino, d_off, reclen, d_type = struct.unpack_from("=QqHB", raw, pos)
            name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
            out.append((os.fsdecode(name), d_ino, d_type, d_off))
            pos += reclen
    return out


# ----------------------------------------------------------------- helpers --

def E(fn, *a, **kw):
    """Call fn; return its result, or 'E<ERRNO>' when it raises OSError."""
    try:
        return fn(*a, **kw)
    except OSError as e:
        return errno.errorcode.get(e.errno, "E%d" % e.errno)


def open_close(path, flags, mode=0o644):
    fd = os.open(path, flags, mode)
    os.close(fd)
    return "ok"


def write_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def read_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def ftype(mode):
    for test, name in ((stat.S_ISREG, "reg"), (stat.S_ISDIR, "dir"),
                       (stat.S_ISLNK, "lnk"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "sock"), (stat.S_ISCHR, "chr"),
                       (stat.S_ISBLK, "blk")):
        if test(mode):
            return name
    return "?"


def mode_of(path, follow=True):
    st = os.stat(path) if follow else os.lstat(path)
    return "%s:%04o" % (ftype(st.st_mode), stat.S_IMODE(st.st_mode))


def rbytes(seed, n):
    return random.Random(seed).randbytes(n)


IS_ROOT = os.geteuid() == 0
UID = os.geteuid()
GID = os.getegid()


class Skip(Exception):
    pass


# ------------------------------------------------------------------ checks --
# Each check is a function f(d, ctx) run in a fresh directory d; it returns a
# comparable value.  Registered with @check(name) or @check(name, root=True).

CHECKS = []


def check(name, root=False, expect=None):
    def deco(fn):
        CHECKS.append((name, fn, root, expect))
        return fn
    return deco


@check("open_excl_eexist", expect=("ok", "EEXIST"))
def _(d, ctx):
    p = J(d, "f")
    open_close(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    return E(open_close, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)


@check("open_flags")
def _(d, ctx):
    p = J(d, "f")
    r = []
    fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o640)
    os.write(fd, b"hello world")
    os.close(fd)
    r.append(mode_of(p))
    r.append(os.stat(p).st_size)
    # O_CREAT without O_EXCL on an existing file: no truncation
    r.append(E(open_close, p, os.O_CREAT | os.O_WRONLY))
    r.append(os.stat(p).st_size)
    # O_TRUNC
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    r.append(os.fstat(fd).st_size)
    os.write(fd, b"abc")
    os.close(fd)
    r.append(read_file(p))
    # O_APPEND: writes go to the end even after lseek(0)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"XYZ")
    r.append(os.lseek(fd, 0, os.SEEK_CUR))
    os.write(fd, b"123")
    os.close(fd)
    r.append(read_file(p))
    # O_APPEND | O_RDWR: read from the start, write at the end
    fd = os.open(p, os.O_RDWR | os.O_APPEND)
    r.append(os.read(fd, 3))
    os.write(fd, b"!")
    r.append(os.pread(fd, 100, 0))
    os.close(fd)
    # O_RDWR | O_CREAT | O_TRUNC on existing content
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    r.append(os.fstat(fd).st_size)
    r.append(mode_of(p))          # mode of an existing file is not changed
    os.close(fd)
    # error cases
    r.append(E(open_close, J(d, "missing"), os.O_RDONLY))
    r.append(E(open_close, J(d, "nodir", "x"), os.O_CREAT | os.O_WRONLY))
    r.append(E(open_close, J(p, "x"), os.O_CREAT | os.O_WRONLY))
    r.append(E(open_close, p, os.O_RDONLY | os.O_DIRECTORY))
    os.mkdir(J(d, "dir"))
    r.append(E(open_close, J(d, "dir"), os.O_WRONLY))
    r.append(E(open_close, J(d, "dir"), os.O_RDWR))
    r.append(E(open_close, J(d, "dir"), os.O_RDONLY))
    r.append(E(open_close, J(d, "dir"), os.O_RDONLY | os.O_DIRECTORY))
    # symlinks: O_NOFOLLOW, O_CREAT through a dangling link, O_EXCL on a link
    os.symlink("target", J(d, "lnk"))
    r.append(E(open_close, J(d, "lnk"), os.O_RDONLY | os.O_NOFOLLOW))
    r.append(E(open_close, J(d, "lnk"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    r.append(E(open_close, J(d, "lnk"), os.O_CREAT | os.O_WRONLY, 0o600))
    r.append(E(mode_of, J(d, "target"), False))
    # O_RDONLY fd refuses writes, O_WRONLY fd refuses reads
    fd = os.open(p, os.O_RDONLY)
    r.append(E(os.write, fd, b"x"))
    os.close(fd)
    fd = os.open(p, os.O_WRONLY)
    r.append(E(os.read, fd, 1))
    os.close(fd)
    return r


@check("umask_honored")
def _(d, ctx):
    r = []
    old = os.umask(0)
    try:
        open_close(J(d, "f0"), os.O_CREAT | os.O_WRONLY, 0o666)
        os.mkdir(J(d, "d0"), 0o777)
        os.mkfifo(J(d, "p0"), 0o666)
        os.umask(0o077)
        open_close(J(d, "f77"), os.O_CREAT | os.O_WRONLY, 0o666)
        os.mkdir(J(d, "d77"), 0o777)
        os.umask(0o022)
        os.mkdir(J(d, "sticky"), 0o1777)
    finally:
        os.umask(old)
    for n in ("f0", "d0", "p0", "f77", "d77", "sticky"):
        r.append((n, mode_of(J(d, n))))
    return r


@check("read_write_pwrite")
def _(d, ctx):
    p = J(d, "f")
    data = rbytes(1, 300000)
    r = []
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    pos = 0
    for size in (1, 4095, 4097, 65536, 100000, 300000):
        chunk = data[pos:pos + size]
        if not chunk:
            break
        os.write(fd, chunk)
        pos += len(chunk)
    r.append(os.fstat(fd).st_size)
    os.lseek(fd, 0, os.SEEK_SET)
    back = b""
    while True:
        b = os.read(fd, 70000)
        if not b:
            break
        back += b
    r.append(back == data)
    r.append(os.pread(fd, 10, 299995) == data[299995:])
    r.append(os.pread(fd, 10, 300000))       # EOF -> b''
    r.append(os.pread(fd, 10, 10 ** 7))       # far beyond EOF -> b''
    os.pwrite(fd, b"PWRITE", 4094)            # across a page boundary
    r.append(os.pread(fd, 10, 4092) == data[4092:4094] + b"PWRITE" + data[4100:4102])
    os.pwrite(fd, b"tail", 400000)            # extend with a hole
    r.append(os.fstat(fd).st_size)
    r.append(os.pread(fd, 8, 300000) == b"\0" * 8)
    r.append(os.pread(fd, 100, 399998))
    os.fsync(fd)
    os.close(fd)
    r.append(os.stat(p).st_size)
    whole = read_file(p)
    r.append(len(whole))
    r.append(whole[:4094] == data[:4094])
    # a second descriptor sees writes of the first immediately
    fd1 = os.open(p, os.O_WRONLY)
    fd2 = os.open(p, os.O_RDONLY)
    os.pwrite(fd1, b"coherent", 1000)
    r.append(os.pread(fd2, 8, 1000))
    os.pwrite(fd1, b"grow", 500000)
    r.append(os.fstat(fd2).st_size)
    r.append(os.stat(p).st_size)
    os.close(fd1)
    os.close(fd2)
    # large offsets (> 4 GiB)
    fd = os.open(J(d, "big"), os.O_CREAT | os.O_RDWR, 0o644)
    big = 5 * 1024 ** 3 + 7
    os.pwrite(fd, b"far", big)
    r.append(os.fstat(fd).st_size)
    r.append(os.pread(fd, 3, big))
    r.append(os.pread(fd, 4, 1024 ** 3))
    os.close(fd)
    r.append(os.stat(J(d, "big")).st_size)
    return r


@check("mmap_shared")
def _(d, ctx):
    p = J(d, "f")
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.ftruncate(fd, 3 * 4096)
    m = mmap.mmap(fd, 3 * 4096)
    m[0:5] = b"hello"
    m[4096:4101] = b"world"
    m.flush()
    r = [os.pread(fd, 5, 0), os.pread(fd, 5, 4096)]
    os.pwrite(fd, b"viawrite", 8192)
    r.append(m[8192:8200])
    m.close()
    os.close(fd)
    data = read_file(p)
    r += [len(data), data[:5], data[4096:4101], data[8192:8200]]
    return r


@check("truncate")
def _(d, ctx):
    p = J(d, "f")
    data = rbytes(2, 10000)
    write_file(p, data)
    r = []
    os.truncate(p, 5000)
    r.append(os.stat(p).st_size)
    r.append(read_file(p) == data[:5000])
    os.truncate(p, 20000)
    r.append(os.stat(p).st_size)
    got = read_file(p)
    r.append(got[:5000] == data[:5000] and got[5000:] == b"\0" * 15000)
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, 100)
    r.append(os.fstat(fd).st_size)
    r.append(os.pread(fd, 200, 0) == data[:100])
    os.ftruncate(fd, 8192)
    r.append(os.pread(fd, 10, 8000))
    os.ftruncate(fd, 0)
    r.append(os.fstat(fd).st_size)
    r.append(os.pread(fd, 10, 0))
    r.append(E(os.ftruncate, fd, -1))
    os.close(fd)
    r.append(os.stat(p).st_size)
    os.mkdir(J(d, "dir"))
    r.append(E(os.truncate, J(d, "dir"), 0))
    r.append(E(os.truncate, J(d, "missing"), 0))
    fd = os.open(p, os.O_RDONLY)
    r.append(E(os.ftruncate, fd, 10))
    os.close(fd)
    # truncate extends, then writes in the hole
    os.truncate(p, 1 << 20)
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b"mid", 500000)
    os.close(fd)
    got = read_file(p)
    r.append((len(got), got[499999:500004]))
    return r


@check("unlink_rmdir")
def _(d, ctx):
    r = []
    os.mkdir(J(d, "a"))
    write_file(J(d, "a", "f"), b"x")
    r.append(E(os.rmdir, J(d, "a")))
    r.append(E(os.rmdir, J(d, "a", "f")))
    r.append(E(os.unlink, J(d, "a")))
    r.append(E(os.rmdir, J(d, "a", "f", "x")))
    r.append(E(os.unlink, J(d, "a", "f", "x")))
    r.append(E(os.rmdir, J(d, "a", ".")))
    r.append(E(os.unlink, J(d, "a", "f")))
    r.append(E(os.unlink, J(d, "a", "f")))
    r.append(E(os.stat, J(d, "a", "f")))
    r.append(E(os.rmdir, J(d, "a")))
    r.append(E(os.rmdir, J(d, "a")))
    r.append(E(os.stat, J(d, "a")))
    r.append(sorted(os.listdir(d)))
    # unlink a symlink removes the link, not the target
    write_file(J(d, "t"), b"t")
    os.symlink("t", J(d, "l"))
    r.append(E(os.unlink, J(d, "l")))
    r.append(E(read_file, J(d, "t")))
    # rmdir a symlink to a directory
    os.mkdir(J(d, "dd"))
    os.symlink("dd", J(d, "ldd"))
    r.append(E(os.rmdir, J(d, "ldd")))
    r.append(E(os.unlink, J(d, "ldd")))
    r.append(sorted(os.listdir(d)))
    return r


@check("rmdir_enotempty", expect=("ok", "ENOTEMPTY"))
def _(d, ctx):
    os.mkdir(J(d, "a"))
    write_file(J(d, "a", "f"), b"")
    return E(os.rmdir, J(d, "a"))


@check("mkdir")
def _(d, ctx):
    r = []
    r.append(E(os.mkdir, J(d, "a"), 0o750))
    r.append(mode_of(J(d, "a")))
    r.append(E(os.mkdir, J(d, "a")))
    write_file(J(d, "f"), b"")
    r.append(E(os.mkdir, J(d, "f")))
    os.symlink("nowhere", J(d, "dangling"))
    r.append(E(os.mkdir, J(d, "dangling")))
    r.append(E(os.mkdir, J(d, "missing", "x")))
    r.append(E(os.mkdir, J(d, "f", "x")))
    r.append(E(os.mkdir, J(d, "a", "b")))
    r.append(E(os.makedirs, J(d, "p", "q", "r", "s")))
    r.append(os.path.isdir(J(d, "p", "q", "r", "s")))
    return r


@check("mkdir_eexist", expect=("ok", "EEXIST"))
def _(d, ctx):
    os.mkdir(J(d, "a"))
    return E(os.mkdir, J(d, "a"))


@check("symlink_readlink")
def _(d, ctx):
    r = []
    os.symlink("does/not/exist", J(d, "dangling"))
    st = os.lstat(J(d, "dangling"))
    r.append((ftype(st.st_mode), st.st_size))
    r.append(os.readlink(J(d, "dangling")))
    r.append(E(os.stat, J(d, "dangling")))
    long_target = "x" * 1000 + "/" + "y" * 2000
    os.symlink(long_target, J(d, "long"))
    r.append(os.readlink(J(d, "long")) == long_target)
    r.append(os.lstat(J(d, "long")).st_size)
    max_target = "m" * 4095
    r.append(E(os.symlink, max_target, J(d, "max")))
    r.append(E(lambda: os.readlink(J(d, "max")) == max_target))
    r.append(E(os.symlink, "m" * 4096, J(d, "toolong")))
    r.append(E(os.symlink, "x", J(d, "dangling")))
    write_file(J(d, "file"), b"content")
    r.append(E(os.readlink, J(d, "file")))
    os.symlink("file", J(d, "tofile"))
    r.append(read_file(J(d, "tofile")))
    os.mkdir(J(d, "dir"))
    write_file(J(d, "dir", "inner"), b"inner")
    os.symlink("dir", J(d, "todir"))
    r.append(sorted(os.listdir(J(d, "todir"))))
    r.append(read_file(J(d, "todir", "inner")))
    os.symlink("/", J(d, "abs"))
    r.append(os.readlink(J(d, "abs")))
    # symlink loops
    os.symlink("loop2", J(d, "loop1"))
    os.symlink("loop1", J(d, "loop2"))
    r.append(E(os.stat, J(d, "loop1")))
    # relative link through ..
    os.symlink("../file", J(d, "dir", "up"))
    r.append(read_file(J(d, "dir", "up")))
    r.append(sorted((n, ftype(os.lstat(J(d, n)).st_mode)) for n in os.listdir(d)))
    return r


@check("mkfifo")
def _(d, ctx):
    r = []
    p = J(d, "fifo")
    os.mkfifo(p, 0o640)
    r.append(mode_of(p, False))
    r.append(E(os.mkfifo, p))
    rfd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
    os.write(wfd, b"through the pipe")
    r.append(os.read(rfd, 100))
    os.close(wfd)
    os.close(rfd)
    r.append(os.lstat(p).st_size)
    # a unix socket node
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        r.append(E(s.bind, J(d, "sock")))
    finally:
        s.close()
    r.append(E(mode_of, J(d, "sock"), False))
    os.mknod(J(d, "sock2"), stat.S_IFSOCK | 0o600)
    r.append(mode_of(J(d, "sock2"), False))
    os.mknod(J(d, "reg"), stat.S_IFREG | 0o600)
    r.append(mode_of(J(d, "reg"), False))
    return r


@check("mknod_devices", root=True)
def _(d, ctx):
    r = []
    os.mknod(J(d, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    st = os.lstat(J(d, "null"))
    r.append((ftype(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)))
    os.mknod(J(d, "blk"), stat.S_IFBLK | 0o600, os.makedev(7, 200))
    st = os.lstat(J(d, "blk"))
    r.append((ftype(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)))
    return r


@check("rename")
def _(d, ctx):
    r = []
    write_file(J(d, "a"), b"A")
    ino = os.stat(J(d, "a")).st_ino
    r.append(E(os.rename, J(d, "a"), J(d, "b")))
    r.append(E(os.stat, J(d, "a")))
    r.append(read_file(J(d, "b")))
    r.append(os.stat(J(d, "b")).st_ino == ino)
    # replace an existing file; an fd open on the replaced file stays valid
    write_file(J(d, "c"), b"C")
    cfd = os.open(J(d, "c"), os.O_RDONLY)
    r.append(E(os.rename, J(d, "b"), J(d, "c")))
    r.append(read_file(J(d, "c")))
    r.append(os.pread(cfd, 10, 0))
    r.append(os.fstat(cfd).st_nlink)
    os.close(cfd)
    # an fd opened before the rename follows the file
    fd = os.open(J(d, "c"), os.O_RDWR)
    os.rename(J(d, "c"), J(d, "c2"))
    os.pwrite(fd, b"Z", 1)
    os.close(fd)
    r.append(read_file(J(d, "c2")))
    # directories
    os.mkdir(J(d, "x"))
    write_file(J(d, "x", "in"), b"in")
    os.mkdir(J(d, "y"))
    r.append(E(os.rename, J(d, "x"), J(d, "y")))
    r.append(read_file(J(d, "y", "in")))
    os.mkdir(J(d, "z"))
    write_file(J(d, "z", "zz"), b"")
    r.append(E(os.rename, J(d, "y"), J(d, "z")))
    r.append(E(os.rename, J(d, "c2"), J(d, "z")))
    r.append(E(os.rename, J(d, "z"), J(d, "c2")))
    r.append(E(os.rename, J(d, "z"), J(d, "z", "sub")))
    r.append(E(os.rename, J(d, "c2"), J(d, "c2")))
    r.append(E(os.rename, J(d, "missing"), J(d, "m2")))
    r.append(E(os.rename, J(d, "c2"), J(d, "nodir", "c2")))
    # across directories, then back
    r.append(E(os.rename, J(d, "c2"), J(d, "z", "moved")))
    r.append(read_file(J(d, "z", "moved")))
    r.append(E(os.rename, J(d, "z"), J(d, "y", "zdir")))
    r.append(read_file(J(d, "y", "zdir", "moved")))
    # renaming one hard link onto another link of the same inode is a no-op
    write_file(J(d, "h1"), b"h")
    os.link(J(d, "h1"), J(d, "h2"))
    r.append(E(os.rename, J(d, "h1"), J(d, "h2")))
    r.append(sorted(n for n in os.listdir(d) if n.startswith("h")))
    r.append(os.stat(J(d, "h2")).st_nlink)
    # symlink rename keeps the link (not the target)
    os.symlink("h2", J(d, "s"))
    os.rename(J(d, "s"), J(d, "s2"))
    r.append((ftype(os.lstat(J(d, "s2")).st_mode), os.readlink(J(d, "s2"))))
    r.append(sorted(os.listdir(d)))
    # many renames in a row; the name space stays consistent
    write_file(J(d, "r0"), b"r")
    for i in range(50):
        os.rename(J(d, "r%d" % i), J(d, "r%d" % (i + 1)))
    r.append([n for n in sorted(os.listdir(d)) if n.startswith("r")])
    r.append(read_file(J(d, "r50")))
    return r


@check("rename_noreplace")
def _(d, ctx):
    r = []
    write_file(J(d, "a"), b"A")
    write_file(J(d, "b"), b"B")
    r.append(E(renameat2, J(d, "a"), J(d, "b"), RENAME_NOREPLACE))
    r.append((read_file(J(d, "a")), read_file(J(d, "b"))))
    r.append(E(renameat2, J(d, "a"), J(d, "c"), RENAME_NOREPLACE))
    r.append(sorted(os.listdir(d)))
    r.append(read_file(J(d, "c")))
    os.mkdir(J(d, "dir"))
    r.append(E(renameat2, J(d, "c"), J(d, "dir"), RENAME_NOREPLACE))
    return r


@check("rename_noreplace_eexist", expect=("ok", "EEXIST"))
def _(d, ctx):
    write_file(J(d, "a"), b"A")
    write_file(J(d, "b"), b"B")
    return E(renameat2, J(d, "a"), J(d, "b"), RENAME_NOREPLACE)


@check("rename_exchange")
def _(d, ctx):
    r = []
    write_file(J(d, "f"), b"F")
    os.mkdir(J(d, "D"))
    write_file(J(d, "D", "inner"), b"I")
    fino = os.stat(J(d, "f")).st_ino
    r.append(E(renameat2, J(d, "f"), J(d, "D"), RENAME_EXCHANGE))
    r.append((mode_of(J(d, "f")), mode_of(J(d, "D"))))
    r.append(E(read_file, J(d, "D")))
    r.append(E(read_file, J(d, "f", "inner")))
    r.append(os.stat(J(d, "D")).st_ino == fino)
    # file <-> file
    write_file(J(d, "x"), b"X")
    write_file(J(d, "y"), b"Y")
    r.append(E(renameat2, J(d, "x"), J(d, "y"), RENAME_EXCHANGE))
    r.append((read_file(J(d, "x")), read_file(J(d, "y"))))
    # exchange across directories
    r.append(E(renameat2, J(d, "x"), J(d, "f", "inner"), RENAME_EXCHANGE))
    r.append((read_file(J(d, "x")), read_file(J(d, "f", "inner"))))
    # missing target
    r.append(E(renameat2, J(d, "x"), J(d, "missing"), RENAME_EXCHANGE))
    r.append(E(renameat2, J(d, "x"), J(d, "y"), RENAME_EXCHANGE | RENAME_NOREPLACE))
    r.append(sorted(os.listdir(d)))
    return r


@check("hardlinks")
def _(d, ctx):
    r = []
    a, b = J(d, "a"), J(d, "b")
    write_file(a, b"data")
    os.link(a, b)
    sa, sb = os.stat(a), os.stat(b)
    r.append(("same_ino", sa.st_ino == sb.st_ino))
    r.append(("nlink", sa.st_nlink, sb.st_nlink))
    # attributes changed through one name are seen through the other (stat b
    # first so that b's attributes are cached)
    os.stat(b)
    os.chmod(a, 0o600)
    r.append(("chmod", mode_of(b)))
    os.chmod(b, 0o751)
    r.append(("chmod2", mode_of(a)))
    os.stat(b)
    fd = os.open(a, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"+more")
    os.close(fd)
    r.append(("size", os.stat(b).st_size, read_file(b)))
    os.truncate(b, 2)
    r.append(("trunc", os.stat(a).st_size, read_file(a)))
    os.utime(a, ns=(1_000_000_000_000_000_000, 1_200_000_000_000_000_000))
    r.append(("utime", os.stat(b).st_mtime_ns))
    if IS_ROOT:
        os.chown(a, 1234, 5678)
        sb = os.stat(b)
        r.append(("chown", sb.st_uid, sb.st_gid))
    os.mkdir(J(d, "sub"))
    os.link(b, J(d, "sub", "c"))
    r.append(("nlink3", os.stat(a).st_nlink, os.stat(b).st_nlink,
              os.stat(J(d, "sub", "c")).st_nlink))
    r.append(("ino3", os.stat(J(d, "sub", "c")).st_ino == sa.st_ino))
    os.unlink(a)
    r.append(("after_unlink", os.stat(b).st_nlink, os.stat(J(d, "sub", "c")).st_nlink))
    r.append(("link_dir", E(os.link, J(d, "sub"), J(d, "sub2"))))
    r.append(("link_exists", E(os.link, b, J(d, "sub", "c"))))
    r.append(("link_missing", E(os.link, J(d, "missing"), J(d, "x"))))
    # hard link to a symlink (linkat without AT_SYMLINK_FOLLOW)
    os.symlink("b", J(d, "sl"))
    r.append(("link_symlink", E(os.link, J(d, "sl"), J(d, "sl2"), follow_symlinks=False)))
    r.append(("sl2", E(lambda: ftype(os.lstat(J(d, "sl2")).st_mode))))
    # many links
    for i in range(20):
        os.link(b, J(d, "m%d" % i))
    r.append(("many", os.stat(b).st_nlink,
              len({os.stat(J(d, "m%d" % i)).st_ino for i in range(20)})))
    # open fd through one name, unlink other names
    fd = os.open(J(d, "m3"), os.O_RDWR)
    for i in range(20):
        os.unlink(J(d, "m%d" % i))
    os.unlink(J(d, "sub", "c"))
    r.append(("fd_nlink", os.fstat(fd).st_nlink, os.stat(b).st_nlink))
    os.close(fd)
    r.append(("listing", sorted(os.listdir(d))))
    return r


@check("chmod_chown")
def _(d, ctx):
    r = []
    p = J(d, "f")
    write_file(p, b"x")
    for m in (0o000, 0o777, 0o4755, 0o2755, 0o1755, 0o644):
        os.chmod(p, m)
        r.append(mode_of(p))
    os.mkdir(J(d, "dir"))
    os.chmod(J(d, "dir"), 0o2775)
    r.append(mode_of(J(d, "dir")))
    os.symlink("f", J(d, "l"))
    os.chmod(J(d, "l"), 0o640)        # follows the link
    r.append(mode_of(p))
    fd = os.open(p, os.O_RDONLY)
    os.fchmod(fd, 0o604)
    r.append(mode_of(p))
    os.close(fd)
    # chown to ourselves / no-op
    r.append(E(os.chown, p, -1, -1))
    r.append(E(os.chown, p, UID, GID))
    st = os.stat(p)
    r.append((st.st_uid == UID, st.st_gid == GID))
    if IS_ROOT:
        os.chown(p, 4242, 4343)
        st = os.stat(p)
        r.append((st.st_uid, st.st_gid))
        os.chown(p, -1, 4444)
        st = os.stat(p)
        r.append((st.st_uid, st.st_gid))
        # chown of a symlink itself
        os.chown(J(d, "l"), 1111, 2222, follow_symlinks=False)
        st = os.lstat(J(d, "l"))
        r.append((st.st_uid, st.st_gid, os.stat(p).st_uid))
        # chown clears set-user-ID / set-group-ID on regular files
        os.chmod(p, 0o6755)
        os.chown(p, 5555, 5555)
        r.append(mode_of(p))
        fd = os.open(p, os.O_RDONLY)
        os.fchown(fd, 0, 0)
        os.close(fd)
        st = os.stat(p)
        r.append((st.st_uid, st.st_gid))
    else:
        r.append(E(os.chown, p, 0, -1))
    r.append(E(os.chmod, J(d, "missing"), 0o644))
    return r


@check("utimensat")
def _(d, ctx):
    r = []
    p = J(d, "f")
    write_file(p, b"x")
    os.utime(p, ns=(1_000_000_000_123_456_789, 1_100_000_000_987_654_321))
    st = os.stat(p)
    r.append(("set", st.st_atime_ns, st.st_mtime_ns))
    # UTIME_OMIT for atime, explicit mtime
    utimensat(p, UTIME_OMIT, (1_200_000_000, 5))
    st = os.stat(p)
    r.append(("omit_atime", st.st_atime_ns, st.st_mtime_ns))
    # UTIME_NOW for mtime, UTIME_OMIT for atime
    t0 = time.time()
    utimensat(p, UTIME_OMIT, UTIME_NOW)
    t1 = time.time()
    st = os.stat(p)
    r.append(("now_mtime", st.st_atime_ns, t0 - 2 <= st.st_mtime <= t1 + 2))
    # UTIME_NOW for atime, UTIME_OMIT for mtime
    utimensat(p, (1_300_000_000, 0), (1_300_000_000, 0))
    utimensat(p, UTIME_NOW, UTIME_OMIT)
    st = os.stat(p)
    r.append(("now_atime", t0 - 2 <= st.st_atime <= time.time() + 2, st.st_mtime_ns))
    # both omitted: nothing changes
    utimensat(p, UTIME_OMIT, UTIME_OMIT)
    st2 = os.stat(p)
    r.append(("omit_both", st2.st_atime_ns == st.st_atime_ns, st2.st_mtime_ns))
    # NULL times: both now
    utimensat(p, None, None)
    st = os.stat(p)
    r.append(("null", t0 - 2 <= st.st_atime <= time.time() + 2,
              t0 - 2 <= st.st_mtime <= time.time() + 2))
    # old dates and the far future
    os.utime(p, (0, 4102444800))
    st = os.stat(p)
    r.append(("extreme", st.st_atime_ns, st.st_mtime_ns))
    # AT_SYMLINK_NOFOLLOW changes the link, not the target
    os.symlink("f", J(d, "l"))
    before = os.stat(p).st_mtime_ns
    r.append(E(utimensat, J(d, "l"), (1_400_000_000, 0), (1_400_000_001, 0), AT_SYMLINK_NOFOLLOW))
    lst = os.lstat(J(d, "l"))
    r.append(("symlink", lst.st_mtime_ns, os.stat(p).st_mtime_ns == before))
    # directories
    os.mkdir(J(d, "dir"))
    os.utime(J(d, "dir"), ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_002))
    st = os.stat(J(d, "dir"))
    r.append(("dir", st.st_atime_ns, st.st_mtime_ns))
    # futimens through an fd
    fd = os.open(p, os.O_RDONLY)
    os.utime(fd, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    os.close(fd)
    r.append(("futimens", os.stat(p).st_mtime_ns))
    r.append(E(utimensat, J(d, "missing"), UTIME_NOW, UTIME_NOW))
    return r


@check("timestamps_update")
def _(d, ctx):
    """ctime/mtime changes caused by operations (compared as booleans)."""
    r = []
    p = J(d, "f")
    write_file(p, b"x")

    def changed(op):
        s1 = os.stat(p)
        time.sleep(0.02)
        op()
        s2 = os.stat(p)
        return (s2.st_ctime_ns > s1.st_ctime_ns, s2.st_mtime_ns > s1.st_mtime_ns)

    r.append(("chmod", changed(lambda: os.chmod(p, 0o600))))
    r.append(("chown", changed(lambda: os.chown(p, -1, GID))))
    r.append(("utime", changed(lambda: os.utime(p, (1, 1)))))

    def wr():
        fd = os.open(p, os.O_WRONLY)
        os.write(fd, b"more")
        os.close(fd)
    r.append(("write", changed(wr)))
    r.append(("truncate", changed(lambda: os.truncate(p, 1))))
    r.append(("link", changed(lambda: os.link(p, J(d, "g")))))
    r.append(("unlink_other", changed(lambda: os.unlink(J(d, "g")))))
    r.append(("rename", changed(lambda: os.rename(p, J(d, "f2")) or os.rename(J(d, "f2"), p))))
    r.append(("setxattr", changed(lambda: os.setxattr(p, "user.t", b"1"))))
    r.append(("read", changed(lambda: read_file(p))))
    # directory timestamps change when entries are added/removed
    dd = J(d, "dir")
    os.mkdir(dd)

    def dchanged(op):
        s1 = os.stat(dd)
        time.sleep(0.02)
        op()
        s2 = os.stat(dd)
        return (s2.st_ctime_ns > s1.st_ctime_ns, s2.st_mtime_ns > s1.st_mtime_ns)
    r.append(("dir_create", dchanged(lambda: write_file(J(dd, "n"), b""))))
    r.append(("dir_unlink", dchanged(lambda: os.unlink(J(dd, "n")))))
    r.append(("dir_mkdir", dchanged(lambda: os.mkdir(J(dd, "s")))))
    r.append(("dir_rename_in", dchanged(lambda: os.rename(J(dd, "s"), J(dd, "t")))))
    r.append(("dir_symlink", dchanged(lambda: os.symlink("x", J(dd, "sl")))))
    return r


@check("ctime_chmod", expect=("ok", True))
def _(d, ctx):
    p = J(d, "f")
    write_file(p, b"x")
    c1 = os.stat(p).st_ctime_ns
    time.sleep(0.05)
    os.chmod(p, 0o640)
    return os.stat(p).st_ctime_ns > c1


@check("nlink_counts")
def _(d, ctx):
    r = []
    os.mkdir(J(d, "a"))
    r.append(os.stat(J(d, "a")).st_nlink)
    os.mkdir(J(d, "a", "s1"))
    os.mkdir(J(d, "a", "s2"))
    write_file(J(d, "a", "f"), b"")
    r.append(os.stat(J(d, "a")).st_nlink)
    os.rmdir(J(d, "a", "s1"))
    r.append(os.stat(J(d, "a")).st_nlink)
    os.rename(J(d, "a", "s2"), J(d, "s2"))
    r.append((os.stat(J(d, "a")).st_nlink, os.stat(d).st_nlink))
    r.append(os.stat(J(d, "a", "f")).st_nlink)
    os.symlink("x", J(d, "l"))
    r.append(os.lstat(J(d, "l")).st_nlink)
    return r


@check("name_too_long")
def _(d, ctx):
    r = []
    n255, n256 = "n" * 255, "n" * 256
    r.append(E(open_close, J(d, n255), os.O_CREAT | os.O_WRONLY))
    r.append(E(open_close, J(d, n256), os.O_CREAT | os.O_WRONLY))
    r.append(E(os.stat, J(d, n256)))
    r.append(E(os.mkdir, J(d, n256)))
    r.append(E(os.symlink, "x", J(d, n256)))
    r.append(E(os.rename, J(d, n255), J(d, n256)))
    r.append(E(os.link, J(d, n255), J(d, n256)))
    r.append(E(os.mkfifo, J(d, n256)))
    r.append(E(os.mkdir, J(d, "d" * 255)))
    r.append(E(os.stat, J(d, "d" * 255, "x" * 256)))
    r.append(sorted(len(n) for n in os.listdir(d)))
    return r


@check("name_too_long_enametoolong", expect=("ok", "ENAMETOOLONG"))
def _(d, ctx):
    return E(open_close, J(d, "n" * 256), os.O_CREAT | os.O_WRONLY)


@check("odd_names")
def _(d, ctx):
    names = ["with space", "tab\there", "newline\nname", "ünïcødé-✓", "-dash",
             ".hidden", "..dots", "...", "a" * 255, "\x01ctrl", "semi;colon",
             "back\\slash", "quote'\"", "*?[glob]"]
    r = []
    for i, n in enumerate(names):
        r.append(E(write_file, J(d, n), n.encode()))
    r.append(sorted(os.listdir(d)) == sorted(names))
    r.append(all(read_file(J(d, n)) == n.encode() for n in names))
    # byte names that are not valid UTF-8
    bname = os.fsencode(d) + b"/\xff\xfe-latin1-\xe9"
    fd = os.open(bname, os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    r.append(b"\xff\xfe-latin1-\xe9" in os.listdir(os.fsencode(d)))
    return r


def _deep_levels(ctx):
    # the deeper of the two test dirs decides, so both sides do the same work
    longest = max(len(ctx["roots"][0]), len(ctx["roots"][1])) + 40
    return (4096 - 250 - longest) // 201


@check("deep_path_near_path_max")
def _(d, ctx):
    r = []
    levels = _deep_levels(ctx)
    name = "D" * 200
    saved = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(d)
        for _i in range(levels):
            os.mkdir(name)
            os.chdir(name)
        cwd = os.getcwd()
        r.append(("abs_len_ok", 3500 < len(cwd) < 4096))
        write_file("file", b"deep")
        r.append(read_file("file"))
        os.mkdir("sub")
        os.symlink("file", "link")
        r.append(os.readlink("link"))
        os.rename("file", "sub/file2")
        r.append(sorted(os.listdir(".")))
        r.append(read_file("sub/file2"))
        os.link("sub/file2", "hard")
        r.append(os.stat("hard").st_nlink)
        os.setxattr("hard", "user.deep", b"v")
        r.append(os.getxattr("hard", "user.deep"))
        # the full absolute path still works (it is < PATH_MAX)
        absf = J(cwd, "hard")
        r.append(("abs_path_len", len(absf) < 4096))
        r.append(E(read_file, absf))
        r.append(E(lambda: os.stat(absf).st_size))
        # a relative path from the top spanning all levels
        os.fchdir(saved)
        os.chdir(d)
        rel = "/".join([name] * levels) + "/hard"
        r.append(E(read_file, rel))
        # walk back up and remove everything
        os.chdir(cwd)
        os.unlink("hard")
        os.unlink("link")
        os.unlink("sub/file2")
        os.rmdir("sub")
        for _i in range(levels):
            os.chdir("..")
            os.rmdir(name)
        r.append(os.listdir("."))
    finally:
        os.fchdir(saved)
        os.close(saved)
    return r


@check("deep_path_beyond_path_max")
def _(d, ctx):
    """Directories deeper than PATH_MAX reached with relative paths only."""
    r = []
    levels = _deep_levels(ctx) + 6
    name = "E" * 200
    saved = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(d)
        for i in range(levels):
            os.mkdir(name)
            os.chdir(name)
        write_file("file", b"deeper")
        r.append(read_file("file"))
        r.append(os.stat("file").st_size)
        os.mkdir("x")
        r.append(sorted(os.listdir(".")))
        os.rename("file", "x/f")
        r.append(read_file("x/f"))
        os.unlink("x/f")
        os.rmdir("x")
        for i in range(levels):
            os.chdir("..")
            os.rmdir(name)
        r.append(os.listdir("."))
    finally:
        os.fchdir(saved)
        os.close(saved)
    return r


@check("unlinked_open_file")
def _(d, ctx):
    r = []
    p = J(d, "f")
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"abc")
    os.unlink(p)
    st = os.fstat(fd)
    r.append(("nlink_after_unlink", st.st_nlink))
    r.append(("size", st.st_size))
    r.append(("stat_path", E(os.stat, p)))
    r.append(("listed", "f" in os.listdir(d)))
    os.write(fd, b"def")
    r.append(("read", os.pread(fd, 100, 0)))
    # a new file with the same name is a different file
    write_file(p, b"NEW")
    r.append(("old_fd", os.pread(fd, 100, 0)))
    r.append(("new_file", read_file(p)))
    os.pwrite(fd, b"X", 10)
    r.append(("old_fd2", os.pread(fd, 100, 0), os.fstat(fd).st_size))
    r.append(("new_file2", read_file(p)))
    os.ftruncate(fd, 2)
    os.fchmod(fd, 0o600)
    st = os.fstat(fd)
    r.append(("fattr", st.st_size, stat.S_IMODE(st.st_mode), st.st_nlink))
    os.fsync(fd)
    os.close(fd)
    # unlink of a file held open by a second descriptor, reopened by /proc
    q = J(d, "g")
    write_file(q, b"proc")
    fd = os.open(q, os.O_RDONLY)
    os.unlink(q)
    r.append(("proc_reopen", E(read_file, "/proc/self/fd/%d" % fd)))
    os.close(fd)
    r.append(("left", sorted(os.listdir(d))))
    return r


@check("unlinked_open_file_nlink0", expect=("ok", 0))
def _(d, ctx):
    p = J(d, "f")
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.unlink(p)
        return os.fstat(fd).st_nlink
    finally:
        os.close(fd)


@check("xattr_user")
def _(d, ctx):
    r = []
    p = J(d, "f")
    write_file(p, b"x")
    os.setxattr(p, "user.a", b"1")
    os.setxattr(p, "user.bb", b"value-two")
    os.setxattr(p, "user.empty", b"")
    big = rbytes(3, 4000)
    os.setxattr(p, "user.big", big)
    r.append(os.getxattr(p, "user.a"))
    r.append(os.getxattr(p, "user.empty"))
    r.append(os.getxattr(p, "user.big") == big)
    r.append(user_xattrs(os.listxattr(p)))
    r.append(E(os.setxattr, p, "user.a", b"2", os.XATTR_CREATE))
    r.append(E(os.setxattr, p, "user.new", b"2", os.XATTR_REPLACE))
    r.append(E(os.setxattr, p, "user.a", b"replaced", os.XATTR_REPLACE))
    r.append(os.getxattr(p, "user.a"))
    r.append(E(os.getxattr, p, "user.missing"))
    # size probe and ERANGE
    r.append(E(getxattr_size, p, "user.bb"))
    r.append(E(getxattr_buf, p, "user.bb", 9))
    r.append(E(getxattr_buf, p, "user.bb", 3))
    r.append(E(getxattr_size, p, "user.missing"))
    n = listxattr_size(p)
    names = listxattr_buf(p, n)
    r.append(user_xattrs(names.split(b"\0")))
    r.append(E(listxattr_buf, p, 2))
    r.append(E(os.removexattr, p, "user.a"))
    r.append(E(os.removexattr, p, "user.a"))
    r.append(E(os.getxattr, p, "user.a"))
    r.append(user_xattrs(os.listxattr(p)))
    # directories, fds, hard links
    os.mkdir(J(d, "dir"))
    os.setxattr(J(d, "dir"), "user.d", b"dir")
    r.append(os.getxattr(J(d, "dir"), "user.d"))
    fd = os.open(p, os.O_RDONLY)
    os.setxattr(fd, "user.fd", b"viafd")
    r.append(os.getxattr(fd, "user.fd"))
    os.close(fd)
    os.link(p, J(d, "hl"))
    r.append(os.getxattr(J(d, "hl"), "user.fd"))
    # user.* on a symlink itself is not allowed; through the link it is
    os.symlink("f", J(d, "l"))
    r.append(E(os.setxattr, J(d, "l"), "user.l", b"x", follow_symlinks=False))
    r.append(E(os.setxattr, J(d, "l"), "user.l", b"x"))
    r.append(os.getxattr(p, "user.l"))
    # bad namespace / missing file
    r.append(E(os.setxattr, p, "bogus.ns", b"x"))
    r.append(E(os.getxattr, J(d, "missing"), "user.a"))
    # xattrs survive rename
    os.rename(p, J(d, "renamed"))
    r.append(os.getxattr(J(d, "renamed"), "user.bb"))
    return r


@check("xattr_erange", expect=("ok", "ERANGE"))
def _(d, ctx):
    p = J(d, "f")
    write_file(p, b"")
    os.setxattr(p, "user.k", b"0123456789")
    if getxattr_size(p, "user.k") != 10:
        return "size probe wrong"
    return E(getxattr_buf, p, "user.k", 5)


@check("fallocate")
def _(d, ctx):
    r = []
    p = J(d, "f")
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        r.append(("mode0", E(fallocate, fd, 0, 0, 1 << 20)))
        st = os.fstat(fd)
        r.append(("size", st.st_size, st.st_blocks * 512 >= 1 << 20))
        r.append(("zeros", os.pread(fd, 16, 4096)))
        r.append(("keep_size", E(fallocate, fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20)))
        st = os.fstat(fd)
        r.append(("size2", st.st_size, st.st_blocks * 512 >= 2 << 20))
        os.pwrite(fd, b"\xaa" * 65536, 0)
        os.fsync(fd)
        r.append(("punch", E(fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)))
        r.append(("punched", os.pread(fd, 4, 4094), os.pread(fd, 4, 12286), os.fstat(fd).st_size))
        r.append(("punch_nokeep", E(fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)))
        r.append(("zero_range", E(fallocate, fd, FALLOC_FL_ZERO_RANGE, 16384, 4096)))
        r.append(("zeroed", os.pread(fd, 4, 16382)))
        r.append(("posix_fallocate", E(os.posix_fallocate, fd, 0, 3 << 20)))
        r.append(("size3", os.fstat(fd).st_size))
    finally:
        os.close(fd)
    r.append(("stat", os.stat(p).st_size))
    r.append(("content", read_file(p)[:8]))
    return r


@check("copy_file_range")
def _(d, ctx):
    r = []
    data = rbytes(4, 200000)
    write_file(J(d, "src"), data)
    write_file(J(d, "dst"), b"")
    sfd = os.open(J(d, "src"), os.O_RDONLY)
    dfd = os.open(J(d, "dst"), os.O_WRONLY)
    total = 0
    while total < 150000:
        n = os.copy_file_range(sfd, dfd, 150000 - total, 1000 + total, total)
        if n == 0:
            break
        total += n
    r.append(total)
    # offset-less variant uses and advances the file positions
    os.lseek(sfd, 0, os.SEEK_SET)
    os.lseek(dfd, 150000, os.SEEK_SET)
    n = os.copy_file_range(sfd, dfd, 10)
    r.append((n, os.lseek(sfd, 0, os.SEEK_CUR), os.lseek(dfd, 0, os.SEEK_CUR)))
    # beyond EOF of the source: 0
    r.append(os.copy_file_range(sfd, dfd, 100, 300000, 0))
    os.close(sfd)
    os.close(dfd)
    got = read_file(J(d, "dst"))
    r.append((len(got), got[:150000] == data[1000:151000], got[150000:] == data[:10]))
    # same file, overlapping ranges are EINVAL
    fd = os.open(J(d, "src"), os.O_RDWR)
    r.append(E(os.copy_file_range, fd, fd, 1000, 0, 500))
    os.close(fd)
    return r


@check("seek_data_hole")
def _(d, ctx):
    r = []
    p = J(d, "sparse")
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.pwrite(fd, b"a" * 4096, 0)
        os.pwrite(fd, b"b" * 4096, 1 << 20)
        os.ftruncate(fd, 2 << 20)
        os.fsync(fd)
        r.append(E(os.lseek, fd, 0, SEEK_DATA))
        r.append(E(os.lseek, fd, 0, SEEK_HOLE))
        r.append(E(os.lseek, fd, 4096, SEEK_DATA))
        r.append(E(os.lseek, fd, (1 << 20) + 10, SEEK_DATA))
        r.append(E(os.lseek, fd, (1 << 20) + 10, SEEK_HOLE))
        r.append(E(os.lseek, fd, (1 << 20) + 4096, SEEK_DATA))
        r.append(E(os.lseek, fd, (1 << 20) + 4096, SEEK_HOLE))
        r.append(E(os.lseek, fd, 3 << 20, SEEK_DATA))
        r.append(E(os.lseek, fd, 3 << 20, SEEK_HOLE))
        # the file position is what lseek returned
        os.lseek(fd, 5, SEEK_DATA)
        r.append(os.lseek(fd, 0, os.SEEK_CUR))
        r.append(E(os.lseek, fd, -1, os.SEEK_SET))
        r.append(os.lseek(fd, -10, os.SEEK_END))
    finally:
        os.close(fd)
    return r


FLOCK_FMT = "hhqqi4x"   # struct flock on x86_64/aarch64 (32 bytes)


def getlk(fd, ltype, start, length):
    arg = struct.pack(FLOCK_FMT, ltype, os.SEEK_SET, start, length, 0)
    res = fcntl.fcntl(fd, fcntl.F_GETLK, arg)
    return struct.unpack(FLOCK_FMT, res)


def setlk(fd, ltype, start, length, wait=False):
    arg = struct.pack(FLOCK_FMT, ltype, os.SEEK_SET, start, length, 0)
    fcntl.fcntl(fd, fcntl.F_SETLKW if wait else fcntl.F_SETLK, arg)
    return "ok"


def in_child(path, action):
    """Fork a child that opens path, runs action(fd), signals readiness and
    holds its locks until told to exit.  Returns (pid, release_fn)."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r1)
            os.close(w2)
            fd = os.open(path, os.O_RDWR)
            action(fd)
            os.write(w1, b"R")
            os.read(r2, 1)
            os._exit(0)
        except BaseException:
            try:
                os.write(w1, b"E")
            except OSError:
                pass
            os._exit(1)
    os.close(w1)
    os.close(r2)
    state = os.read(r1, 1)
    os.close(r1)
    if state != b"R":
        os.waitpid(pid, 0)
        raise RuntimeError("lock child failed")

    def release():
        os.write(w2, b"x")
        os.close(w2)
        os.waitpid(pid, 0)
    return pid, release


@check("fcntl_locks")
def _(d, ctx):
    r = []
    p = J(d, "f")
    write_file(p, b"0" * 1000)
    pid, release = in_child(p, lambda fd: setlk(fd, fcntl.F_WRLCK, 0, 100))
    try:
        fd = os.open(p, os.O_RDWR)
        lt, wh, start, length, lpid = getlk(fd, fcntl.F_WRLCK, 0, 0)
        r.append(("getlk", lt == fcntl.F_WRLCK, start, length, lpid == pid))
        lt, wh, start, length, lpid = getlk(fd, fcntl.F_RDLCK, 100, 50)
        r.append(("getlk_free", lt == fcntl.F_UNLCK))
        r.append(("setlk_conflict", E(setlk, fd, fcntl.F_WRLCK, 50, 10)))
        r.append(("setlk_rd_conflict", E(setlk, fd, fcntl.F_RDLCK, 0, 1)))
        r.append(("setlk_free", E(setlk, fd, fcntl.F_WRLCK, 200, 10)))
    finally:
        release()
    r.append(("after_exit", E(setlk, fd, fcntl.F_WRLCK, 0, 100)))
    # shared read locks coexist
    setlk(fd, fcntl.F_UNLCK, 0, 0)
    pid, release = in_child(p, lambda cfd: setlk(cfd, fcntl.F_RDLCK, 0, 0))
    try:
        r.append(("rd_shared", E(setlk, fd, fcntl.F_RDLCK, 0, 0)))
        r.append(("wr_vs_rd", E(setlk, fd, fcntl.F_WRLCK, 0, 0)))
    finally:
        release()
    # blocking lock becomes available when the holder exits
    setlk(fd, fcntl.F_UNLCK, 0, 0)
    pid, release = in_child(p, lambda cfd: setlk(cfd, fcntl.F_WRLCK, 0, 0))
    t = threading.Timer(0.3, release)
    t.start()
    r.append(("setlkw", E(setlk, fd, fcntl.F_WRLCK, 0, 0, True)))
    t.join()
    os.close(fd)
    return r


@check("flock")
def _(d, ctx):
    r = []
    p = J(d, "f")
    write_file(p, b"x")
    fd1 = os.open(p, os.O_RDONLY)
    fd2 = os.open(p, os.O_RDONLY)
    r.append(E(fcntl.flock, fd1, fcntl.LOCK_EX))
    r.append(E(fcntl.flock, fd2, fcntl.LOCK_EX | fcntl.LOCK_NB))
    r.append(E(fcntl.flock, fd2, fcntl.LOCK_SH | fcntl.LOCK_NB))
    fcntl.flock(fd1, fcntl.LOCK_UN)
    r.append(E(fcntl.flock, fd2, fcntl.LOCK_SH | fcntl.LOCK_NB))
    r.append(E(fcntl.flock, fd1, fcntl.LOCK_SH | fcntl.LOCK_NB))
    r.append(E(fcntl.flock, fd1, fcntl.LOCK_EX | fcntl.LOCK_NB))
    os.close(fd2)        # closing releases
    r.append(E(fcntl.flock, fd1, fcntl.LOCK_EX | fcntl.LOCK_NB))
    fcntl.flock(fd1, fcntl.LOCK_UN)   # (the child inherits fd1)
    # a lock held by another process
    pid, release = in_child(p, lambda cfd: fcntl.flock(cfd, fcntl.LOCK_EX))
    try:
        fd3 = os.open(p, os.O_RDONLY)
        r.append(E(fcntl.flock, fd3, fcntl.LOCK_EX | fcntl.LOCK_NB))
    finally:
        release()
    r.append(E(fcntl.flock, fd3, fcntl.LOCK_EX | fcntl.LOCK_NB))
    os.close(fd3)
    os.close(fd1)
    return r


@check("statvfs")
def _(d, ctx):
    s = os.statvfs(d)
    fd = os.open(d, os.O_RDONLY)
    fs = os.fstatvfs(fd)
    os.close(fd)
    return [s.f_bsize > 0, s.f_frsize > 0, s.f_blocks > 0,
            0 <= s.f_bavail <= s.f_bfree <= s.f_blocks, s.f_files >= s.f_ffree,
            s.f_namemax, fs.f_namemax, fs.f_blocks == s.f_blocks]


@check("access")
def _(d, ctx):
    r = []
    for m in (0o000, 0o400, 0o200, 0o100, 0o500, 0o644, 0o755, 0o777, 0o004, 0o040):
        p = J(d, "f%03o" % m)
        write_file(p, b"")
        os.chmod(p, m)
        r.append((oct(m), os.access(p, os.F_OK), os.access(p, os.R_OK),
                  os.access(p, os.W_OK), os.access(p, os.X_OK),
                  os.access(p, os.R_OK | os.W_OK)))
    os.mkdir(J(d, "dir"), 0o755)
    r.append(("dir", os.access(J(d, "dir"), os.X_OK), os.access(J(d, "dir"), os.W_OK)))
    os.mkdir(J(d, "locked"), 0o000)
    r.append(("locked", os.access(J(d, "locked"), os.R_OK), os.access(J(d, "locked"), os.X_OK)))
    os.chmod(J(d, "locked"), 0o755)
    r.append(("missing", os.access(J(d, "missing"), os.F_OK)))
    r.append(("eaccess", os.access(J(d, "f644"), os.W_OK, effective_ids=True)))
    return r


def _make_all_types(d):
    write_file(J(d, "file"), b"x")
    os.mkdir(J(d, "dir"))
    os.symlink("file", J(d, "link_file"))
    os.symlink("dir", J(d, "link_dir"))
    os.symlink("nowhere", J(d, "link_dangling"))
    os.mkfifo(J(d, "fifo"))
    os.mknod(J(d, "sock"), stat.S_IFSOCK | 0o600)
    if IS_ROOT:
        os.mknod(J(d, "chr"), stat.S_IFCHR | 0o600, os.makedev(1, 3))


DT_OF = {"reg": 8, "dir": 4, "lnk": 10, "fifo": 1, "sock": 12, "chr": 2, "blk": 6}


def churn(d, n=64):
    """Touch n other files so that a small fd cache evicts earlier entries."""
    cd = J(d, ".churn")
    if not os.path.isdir(cd):
        os.mkdir(cd)
    for i in range(n):
        p = J(cd, "c%03d" % i)
        fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
        os.close(fd)
        os.stat(p)


@check("inode_reuse")
def _(d, ctx):
    """ext4 reuses inode numbers at once: a new file must not inherit
    anything from a removed one."""
    r = []
    for i in range(40):
        p = J(d, "f%d" % (i % 3))
        write_file(p, b"x" * i, 0o600 + (i % 8))
        os.setxattr(p, "user.gen", str(i).encode())
        st = os.stat(p)
        r.append((i, st.st_size, mode_of(p), os.getxattr(p, "user.gen"), st.st_nlink))
        if i % 2:
            os.unlink(p)
        else:
            os.rename(p, J(d, "victim"))
            os.unlink(J(d, "victim"))
        r.append(E(os.stat, p))
        if i % 5 == 0:
            os.mkdir(J(d, "dir%d" % i), 0o700)
            r.append(mode_of(J(d, "dir%d" % i)))
            os.rmdir(J(d, "dir%d" % i))
    # rename over the last link of a file whose number gets reused
    write_file(J(d, "a"), b"A")
    write_file(J(d, "b"), b"B")
    os.rename(J(d, "a"), J(d, "b"))
    write_file(J(d, "c"), b"C-new")
    r.append((read_file(J(d, "b")), read_file(J(d, "c")), os.stat(J(d, "c")).st_nlink))
    r.append(sorted(os.listdir(d)))
    return r


@check("rename_parent_then_access")
def _(d, ctx):
    r = []
    os.makedirs(J(d, "a", "b", "c"))
    write_file(J(d, "a", "b", "c", "f"), b"deep file")
    write_file(J(d, "a", "b", "g"), b"g")
    os.stat(J(d, "a", "b", "c", "f"))
    os.rename(J(d, "a"), J(d, "z"))
    churn(d)
    r.append(E(read_file, J(d, "z", "b", "c", "f")))
    r.append(E(os.stat, J(d, "a", "b", "c", "f")))
    os.rename(J(d, "z", "b"), J(d, "moved"))
    churn(d)
    r.append(E(read_file, J(d, "moved", "c", "f")))
    r.append(E(read_file, J(d, "moved", "g")))
    write_file(J(d, "moved", "c", "new"), b"new")
    os.chmod(J(d, "moved", "c", "f"), 0o600)
    r.append(mode_of(J(d, "moved", "c", "f")))
    os.setxattr(J(d, "moved", "c", "f"), "user.k", b"v")
    churn(d)
    r.append(os.getxattr(J(d, "moved", "c", "f"), "user.k"))
    # swap two directories and use both
    os.mkdir(J(d, "p"))
    write_file(J(d, "p", "inp"), b"in p")
    renameat2(J(d, "p"), J(d, "moved"), RENAME_EXCHANGE)
    churn(d)
    r.append((E(read_file, J(d, "moved", "inp")), E(read_file, J(d, "p", "g"))))
    r.append(sorted(os.listdir(J(d, "p"))))
    return r


@check("rename_dir_with_open_fd")
def _(d, ctx):
    r = []
    os.mkdir(J(d, "dir"))
    fd = os.open(J(d, "dir", "f"), os.O_CREAT | os.O_RDWR, 0o644)
    dfd = os.open(J(d, "dir"), os.O_RDONLY | os.O_DIRECTORY)
    os.write(fd, b"before")
    os.rename(J(d, "dir"), J(d, "renamed"))
    churn(d)
    os.write(fd, b"+after")
    r.append(os.pread(fd, 100, 0))
    r.append(os.fstat(fd).st_size)
    r.append(read_file(J(d, "renamed", "f")))
    # *at() calls relative to the renamed directory's fd
    fd2 = os.open("g", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dfd)
    os.write(fd2, b"via dirfd")
    os.close(fd2)
    r.append(read_file(J(d, "renamed", "g")))
    r.append(sorted(os.listdir(dfd)))
    os.mkdir("sub", dir_fd=dfd)
    os.rename("g", "sub/g2", src_dir_fd=dfd, dst_dir_fd=dfd)
    r.append(sorted(os.listdir(J(d, "renamed", "sub"))))
    os.close(dfd)
    os.close(fd)
    return r


@check("hardlink_first_name_gone")
def _(d, ctx):
    """The name a file was first seen under disappears; the other names keep
    working (also when the fd cache has to reopen the file)."""
    r = []
    os.mkdir(J(d, "d1"))
    os.mkdir(J(d, "d2"))
    write_file(J(d, "d1", "orig"), b"linked")
    os.stat(J(d, "d1", "orig"))
    os.link(J(d, "d1", "orig"), J(d, "d2", "other"))
    os.unlink(J(d, "d1", "orig"))
    os.rmdir(J(d, "d1"))
    churn(d)
    r.append(E(read_file, J(d, "d2", "other")))
    os.chmod(J(d, "d2", "other"), 0o640)
    os.setxattr(J(d, "d2", "other"), "user.x", b"1")
    churn(d)
    r.append((mode_of(J(d, "d2", "other")), os.stat(J(d, "d2", "other")).st_nlink))
    fd = os.open(J(d, "d2", "other"), os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"+more")
    os.close(fd)
    r.append(read_file(J(d, "d2", "other")))
    # rename the remaining name away, then back through another link
    os.link(J(d, "d2", "other"), J(d, "third"))
    os.rename(J(d, "d2", "other"), J(d, "fourth"))
    os.unlink(J(d, "third"))
    churn(d)
    r.append((E(read_file, J(d, "fourth")), os.stat(J(d, "fourth")).st_nlink,
              E(os.getxattr, J(d, "fourth"), "user.x")))
    return r


@check("o_direct")
def _(d, ctx):
    r = []
    p = J(d, "f")
    buf = mmap.mmap(-1, 8192)
    buf.write(rbytes(5, 8192))
    try:
        fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
    except OSError as e:
        return ["open", errno.errorcode.get(e.errno)]
    try:
        r.append(E(os.write, fd, buf))
        rb = mmap.mmap(-1, 8192)
        r.append(E(os.preadv, fd, [rb], 0))
        r.append(rb[:] == buf[:])
        r.append(os.fstat(fd).st_size)
    finally:
        os.close(fd)
    r.append(read_file(p) == buf[:])
    return r


@check("sendfile_splice")
def _(d, ctx):
    r = []
    data = rbytes(6, 300000)
    write_file(J(d, "src"), data)
    sfd = os.open(J(d, "src"), os.O_RDONLY)
    dfd = os.open(J(d, "dst"), os.O_CREAT | os.O_WRONLY, 0o644)
    total = 0
    while total < len(data):
        n = os.sendfile(dfd, sfd, total, len(data) - total)
        if n == 0:
            break
        total += n
    os.close(dfd)
    r.append((total, read_file(J(d, "dst")) == data))
    # splice through a pipe into a file on the same mount
    pr, pw = os.pipe()
    dfd = os.open(J(d, "spliced"), os.O_CREAT | os.O_WRONLY, 0o644)
    got = 0
    while got < 100000:
        n = os.splice(sfd, pw, min(65536, 100000 - got), offset_src=got)
        if n == 0:
            break
        m = 0
        while m < n:
            m += os.splice(pr, dfd, n - m)
        got += n
    os.close(dfd)
    os.close(pr)
    os.close(pw)
    os.close(sfd)
    r.append((got, read_file(J(d, "spliced")) == data[:100000]))
    return r


@check("readdir_unlink_while_iterating")
def _(d, ctx):
    """What rm -rf does: remove entries while reading the directory."""
    n = 1500
    for i in range(n):
        fd = os.open(J(d, "u%04d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
    seen = []
    passes = 0
    while True:
        passes += 1
        removed = 0
        with os.scandir(d) as it:
            for e in it:
                seen.append(e.name)
                os.unlink(e.path)
                removed += 1
        if removed == 0 or passes > 5:
            break
    return [len(seen), len(set(seen)), passes, os.listdir(d)]


@check("negative_entries")
def _(d, ctx):
    r = []
    for make in ("file", "mkdir", "symlink", "fifo", "link", "rename", "exchange_dir"):
        p = J(d, "n_" + make)
        r.append(E(os.stat, p))            # cache a negative entry
        r.append(E(os.lstat, p))
        if make == "file":
            write_file(p, b"f")
        elif make == "mkdir":
            os.mkdir(p)
        elif make == "symlink":
            os.symlink("n_file", p)
        elif make == "fifo":
            os.mkfifo(p)
        elif make == "link":
            os.link(J(d, "n_file"), p)
        elif make == "rename":
            write_file(J(d, "tmp"), b"renamed")
            os.rename(J(d, "tmp"), p)
        r.append((make, E(mode_of, p, False)))
    # and back: removed entries disappear
    os.unlink(J(d, "n_file"))
    r.append(E(os.stat, J(d, "n_file")))
    r.append(E(os.stat, J(d, "n_symlink")))
    r.append(E(read_file, J(d, "n_link")))
    return r


@check("fsync_variants")
def _(d, ctx):
    r = []
    write_file(J(d, "f"), b"sync me")
    fd = os.open(J(d, "f"), os.O_RDWR)
    r.append(E(os.fsync, fd))
    r.append(E(os.fdatasync, fd))
    os.close(fd)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    r.append(E(os.fsync, dfd))
    os.close(dfd)
    fd = os.open(J(d, "g"), os.O_CREAT | os.O_WRONLY | os.O_SYNC, 0o644)
    r.append(E(os.write, fd, b"o_sync"))
    os.close(fd)
    fd = os.open(J(d, "h"), os.O_CREAT | os.O_WRONLY | os.O_DSYNC, 0o644)
    r.append(E(os.write, fd, b"o_dsync"))
    os.close(fd)
    r.append((read_file(J(d, "g")), read_file(J(d, "h"))))
    r.append(E(os.sync))
    return r


@check("append_concurrent")
def _(d, ctx):
    """4 threads append 400 records each through their own O_APPEND fds."""
    p = J(d, "log")
    write_file(p, b"")
    rec = 100
    errors = []

    def writer(t):
        try:
            fd = os.open(p, os.O_WRONLY | os.O_APPEND)
            for i in range(400):
                line = ("t%d-%04d-" % (t, i)).encode()
                os.write(fd, line + b"." * (rec - len(line) - 1) + b"\n")
            os.close(fd)
        except Exception as e:
            errors.append(repr(e))
    ths = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    data = read_file(p)
    lines = data.split(b"\n")[:-1]
    good = all(len(x) == rec - 1 for x in lines)
    per = sorted(sum(1 for x in lines if x.startswith(b"t%d-" % t)) for t in range(4))
    return [errors, len(data), os.stat(p).st_size, len(lines), good, per,
            len(set(lines)) == len(lines)]


@check("parallel_create_unlink")
def _(d, ctx):
    """8 threads create 300 files each in one directory and remove every
    other one; stat, listing and link counts agree afterwards."""
    errors = []

    def worker(t):
        try:
            for i in range(300):
                p = J(d, "w%d-%03d" % (t, i))
                fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                os.write(fd, b"%d" % i)
                os.close(fd)
                if i % 2:
                    os.unlink(p)
            os.mkdir(J(d, "dir%d" % t))
        except Exception as e:
            errors.append(repr(e))
    ths = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    names = os.listdir(d)
    files = [n for n in names if n.startswith("w")]
    ok_stat = all(os.stat(J(d, n)).st_size == len(n.split("-")[1].lstrip("0") or "0") for n in files)
    return [errors, len(names), len(files), len(set(names)), ok_stat,
            os.stat(d).st_nlink]


@check("removed_dir_still_open")
def _(d, ctx):
    r = []
    g = J(d, "gone")
    os.mkdir(g)
    for i in range(3):
        write_file(J(g, "f%d" % i), b"")
    fd = os.open(g, os.O_RDONLY | os.O_DIRECTORY)
    saved = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        r.append(sorted(os.listdir(fd)))
        for i in range(3):
            os.unlink(J(g, "f%d" % i))
        os.rmdir(g)
        r.append(E(os.listdir, fd))
        r.append(E(lambda: os.fstat(fd).st_nlink))
        r.append(E(lambda: os.close(os.open("new", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))))
        os.fchdir(fd)
        r.append(E(os.listdir, "."))
        r.append(E(lambda: os.stat(".").st_nlink))
        r.append(E(os.getcwd))
        os.fchdir(saved)
        # a directory replaced by rename while open
        os.mkdir(J(d, "a"))
        os.mkdir(J(d, "b"))
        write_file(J(d, "a", "x"), b"")
        fd2 = os.open(J(d, "b"), os.O_RDONLY | os.O_DIRECTORY)
        os.rename(J(d, "a"), J(d, "b"))
        r.append(E(os.listdir, fd2))
        r.append(E(lambda: os.fstat(fd2).st_nlink))
        r.append(sorted(os.listdir(J(d, "b"))))
        os.close(fd2)
    finally:
        os.fchdir(saved)
        os.close(saved)
        os.close(fd)
    return r


@check("readdir_dtype_raw")
def _(d, ctx):
    """d_type from raw getdents64: never DT_UNKNOWN, matches lstat."""
    _make_all_types(d)
    ents = getdents(d)
    r = []
    names = [e[0] for e in ents]
    r.append(("dot", names.count("."), names.count("..")))
    for name, ino, dtype, off in sorted(ents):
        if name in (".", ".."):
            continue
        st = os.lstat(J(d, name))
        r.append((name, DT_NAMES.get(dtype, dtype),
                  dtype == DT_OF[ftype(st.st_mode)], ino == st.st_ino))
    return r


@check("readdir_never_dt_unknown", expect=("ok", []))
def _(d, ctx):
    _make_all_types(d)
    for i in range(50):
        write_file(J(d, "f%d" % i), b"")
    return [e[0] for e in getdents(d) if e[2] == 0]


@check("readdir_scandir")
def _(d, ctx):
    _make_all_types(d)
    r = []
    with os.scandir(d) as it:
        for e in sorted(it, key=lambda e: e.name):
            st = os.lstat(e.path)
            r.append((e.name,
                      e.is_dir(follow_symlinks=False) == stat.S_ISDIR(st.st_mode),
                      e.is_file(follow_symlinks=False) == stat.S_ISREG(st.st_mode),
                      e.is_symlink() == stat.S_ISLNK(st.st_mode),
                      e.inode() == st.st_ino,
                      e.is_dir(), e.is_file()))
    return r


@check("readdir_offsets")
def _(d, ctx):
    """Small getdents64 buffers and lseek to returned d_off cookies."""
    n = 600
    for i in range(n):
        write_file(J(d, "e%04d" % i), b"")
    full = getdents(d, 32768)
    small = getdents(d, 512)
    r = [len(full), sorted(e[0] for e in full) == sorted(e[0] for e in small),
         len(small)]
    # read a prefix, remember a cookie, seek back to it and read the rest
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = getdents_fd(fd, 1024, max_calls=3)
        k = len(first) // 2
        os.lseek(fd, first[k][3], os.SEEK_SET)
        rest = getdents_fd(fd, 4096)
        names = [e[0] for e in first[:k + 1]] + [e[0] for e in rest]
        r.append((len(names), len(set(names)), sorted(names) == sorted(e[0] for e in full)))
        # rewind
        os.lseek(fd, 0, os.SEEK_SET)
        again = getdents_fd(fd, 8192)
        r.append(sorted(e[0] for e in again) == sorted(e[0] for e in full))
    finally:
        os.close(fd)
    return r


@check("readdir_5000_concurrent")
def _(d, ctx):
    """List a 5000-entry directory repeatedly while another thread creates and
    unlinks other files in it: each stable entry appears exactly once per
    listing, no name appears twice."""
    n = 5000
    stable = {"s%05d" % i for i in range(n)}
    for name in stable:
        fd = os.open(J(d, name), os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
    stop = threading.Event()
    errors = []
    churn = [0]

    def mutator():
        i = 0
        try:
            while not stop.is_set():
                fd = os.open(J(d, "tmp%d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
                os.close(fd)
                if i >= 20:
                    os.unlink(J(d, "tmp%d" % (i - 20)))
                i += 1
                churn[0] = i
        except Exception as e:       # report, do not hang the lister
            errors.append(repr(e))

    th = threading.Thread(target=mutator, daemon=True)
    th.start()
    problems = []
    listings = 0
    start = time.monotonic()
    try:
        # 12 listings or more, during 5 s of churn or more (20 files made at
        # least), however long that takes: the caller's timeout bounds it
        while listings < 12 or time.monotonic() < start + 5 or (churn[0] < 20 and th.is_alive()):
            for variant in ("listdir", "getdents_small"):
                if variant == "listdir":
                    names = os.listdir(d)
                else:
                    names = [e[0] for e in getdents(d, 2048) if e[0] not in (".", "..")]
                listings += 1
                seen = {}
                for x in names:
                    seen[x] = seen.get(x, 0) + 1
                dups = sorted(x for x, c in seen.items() if c > 1)
                missing = sorted(stable - seen.keys())
                strange = sorted(x for x in seen if x not in stable and not x.startswith("tmp"))
                if dups or missing or strange:
                    problems.append("%s#%d: dups=%s missing=%s strange=%s" % (
                        variant, listings, dups[:5], missing[:5], strange[:5]))
    finally:
        stop.set()
        th.join(30)
    if errors:
        problems.append("mutator: " + errors[0])
    if churn[0] < 20:
        problems.append("mutator made only %d files" % churn[0])
    return problems[:3]


# --------------------------------------------------------------- framework --

class Runner:
    def __init__(self, mnt, native, tag, only, skip):
        self.mnt = os.path.realpath(mnt)
        self.native = os.path.realpath(native)
        self.prefix = (tag + "/") if tag else ""
        self.only = only
        self.skip = skip
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.base = "posix-%d" % os.getpid()

    def ok(self, name):
        self.passed += 1
        print("ok %s%s" % (self.prefix, name), flush=True)

    def fail(self, name, detail):
        self.failed += 1
        detail = detail.replace("\n", " ")
        if len(detail) > 1500:
            detail = detail[:1500] + "..."
        print("FAIL %s%s: %s" % (self.prefix, name, detail), flush=True)

    def outcome(self, fn, d, ctx):
        def on_alarm(signum, frame):
            raise TimeoutError("check took more than 180 s")
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(180)
        try:
            return ("ok", fn(d, ctx))
        except OSError as e:
            return ("raised", errno.errorcode.get(e.errno, str(e.errno)),
                    "%s" % e, traceback.extract_tb(e.__traceback__)[-1].lineno)
        except Exception as e:
            return ("exception", repr(e), traceback.extract_tb(e.__traceback__)[-1].lineno)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)

    def run(self):
        for root in (self.mnt, self.native):
            if not os.path.isdir(root):
                self.fail("setup", "%s is not a directory" % root)
                return
        try:
            os.mkdir(J(self.native, self.base))
            os.mkdir(J(self.mnt, self.base))
        except OSError as e:
            self.fail("setup", "cannot create the test base dirs: %s" % e)
            return
        for name, fn, root_only, expect in CHECKS:
            if self.only and name not in self.only:
                continue
            if name in self.skip:
                continue
            if root_only and not IS_ROOT:
                # not a gap: the root runs (test_posix.sh) check these
                self.skipped += 1
                print("SKIP (optional) %s%s: needs root (the root runs check it)" % (self.prefix, name),
                      flush=True)
                continue
            dn = J(self.native, self.base, name)
            dm = J(self.mnt, self.base, name)
            ctx = {"roots": (dn, dm)}
            results = []
            for dd in (dn, dm):
                try:
                    os.mkdir(dd)
                except OSError as e:
                    results.append(("setup", str(e)))
                    continue
                results.append(self.outcome(fn, dd, ctx))
            if len(results) != 2 or results[0][0] == "setup":
                self.fail(name, "could not create test dirs: %r" % (results,))
                continue
            rn, rm = results
            if rn != rm:
                self.fail(name, "native=%s casfs=%s%s" % (
                    _short(rn), _short(rm), _diff(rn, rm)))
            elif expect is not None and rn != expect:
                self.fail(name, "expected %r, got %r (on both)" % (expect, rn))
            elif rn[0] != "ok":
                self.fail(name, "raised on both native and casfs: %r" % (rn,))
            else:
                self.ok(name)

    def summary(self):
        print("%d passed, %d failed, %d skipped" % (self.passed, self.failed, self.skipped), flush=True)
        return 1 if self.failed else 0


def _short(v):
    s = repr(v)
    return s if len(s) <= 600 else s[:600] + "..."


def _diff(a, b):
    """First differing element of two ('ok', list) results."""
    if a[0] == b[0] == "ok" and isinstance(a[1], list) and isinstance(b[1], list):
        for i, (x, y) in enumerate(zip(a[1], b[1])):
            if x != y:
                return " | first difference at step %d: native=%r casfs=%r" % (i, x, y)
        if len(a[1]) != len(b[1]):
            return " | lengths differ: %d vs %d" % (len(a[1]), len(b[1]))
    return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mount_dir", nargs="?")
    ap.add_argument("native_dir", nargs="?")
    ap.add_argument("--tag", default="")
    ap.add_argument("--only", default="")
    ap.add_argument("--skip", default="")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for name, _fn, root_only, _e in CHECKS:
            print(name + (" (root)" if root_only else ""))
        return 0
    if not a.mount_dir or not a.native_dir:
        ap.error("MOUNT_DIR and NATIVE_DIR are required")
    os.umask(0o022)
    only = set(filter(None, a.only.split(",")))
    skip = set(filter(None, a.skip.split(",")))
    unknown = (only | skip) - {c[0] for c in CHECKS}
    run = Runner(a.mount_dir, a.native_dir, a.tag, only, skip)
    if unknown:
        run.fail("arguments", "unknown check names: %s" % ", ".join(sorted(unknown)))
    try:
        run.run()
    except Exception:
        run.fail("internal", traceback.format_exc())
    return run.summary()


if __name__ == "__main__":
    sys.exit(main())
