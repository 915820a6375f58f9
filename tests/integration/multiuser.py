#!/usr/bin/env python3
"""Run by test_user.sh as the unprivileged user casfs-test inside a directory
prepared by root (on a root casfs mount with allow_other, and natively):

    DIR/pub          1777 root:root
    DIR/pub/rootowned 0644 root:root   "root data"
    DIR/rootfile     0644 root:root    "root data"
    DIR/secret       0600 root:root    "secret"
    DIR/sg           2777 root:4321
    DIR/grp          0770 root:GROUP   (a supplementary group of the user)
    DIR/grp/grpfile  0660 root:GROUP

Prints one JSON object {step: result}; results are values or errno names.
Python 3.11, standard library only.
"""

import errno
import json
import os
import stat
import sys


def E(fn, *a, **kw):
    try:
        r = fn(*a, **kw)
        return "ok" if r is None else r
    except OSError as e:
        return errno.errorcode.get(e.errno, "E%d" % e.errno)


def write(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(path, flags, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16).decode()
    finally:
        os.close(fd)


def owner(path):
    st = os.lstat(path)
    uid = "me" if st.st_uid == os.getuid() else st.st_uid
    gid = "mine" if st.st_gid == os.getgid() else st.st_gid
    return [uid, gid, "%04o" % stat.S_IMODE(st.st_mode)]


def main():
    d = sys.argv[1]
    j = lambda *p: os.path.join(d, *p)
    r = {}
    os.umask(0o022)
    # creating things in the sticky world-writable dir
    r["create_file"] = E(write, j("pub", "ufile"), b"user data")
    r["mkdir"] = E(os.mkdir, j("pub", "udir"))
    r["symlink"] = E(os.symlink, "ufile", j("pub", "ulink"))
    r["mkfifo"] = E(os.mkfifo, j("pub", "ufifo"))
    r["mknod_sock"] = E(os.mknod, j("pub", "usock"), stat.S_IFSOCK | 0o600)
    r["link_own"] = E(os.link, j("pub", "ufile"), j("pub", "uhard"))
    r["rename_own"] = E(os.rename, j("pub", "uhard"), j("pub", "uhard2"))
    for n in ("ufile", "udir", "ulink", "ufifo", "usock", "uhard2"):
        r["owner_" + n] = E(owner, j("pub", n))
    r["read_own"] = E(read, j("pub", "ufile"))
    r["chmod_own"] = E(os.chmod, j("pub", "ufile"), 0o600)
    r["mode_own"] = E(owner, j("pub", "ufile"))
    r["utime_own"] = E(os.utime, j("pub", "ufile"), (1000, 2000))
    r["setxattr_own"] = E(os.setxattr, j("pub", "ufile"), "user.mine", b"1")
    # permission checks against root's files
    r["read_rootfile"] = E(read, j("rootfile"))
    r["write_rootfile"] = E(write, j("rootfile"), b"x", os.O_WRONLY)
    r["append_rootfile"] = E(write, j("rootfile"), b"x", os.O_WRONLY | os.O_APPEND)
    r["trunc_rootfile"] = E(os.truncate, j("rootfile"), 0)
    r["read_secret"] = E(read, j("secret"))
    r["stat_secret"] = E(lambda: owner(j("secret")))
    r["chmod_rootfile"] = E(os.chmod, j("rootfile"), 0o666)
    r["chown_own_to_root"] = E(os.chown, j("pub", "ufile"), 0, -1)
    r["chown_own_to_grp0"] = E(os.chown, j("pub", "ufile"), -1, 0)
    r["utime_rootfile_explicit"] = E(os.utime, j("rootfile"), (1, 1))
    r["utime_rootfile_now"] = E(os.utime, j("rootfile"), None)
    r["setxattr_rootfile"] = E(os.setxattr, j("rootfile"), "user.x", b"1")
    r["create_in_rootdir"] = E(write, j("newfile"), b"x")
    r["mkdir_in_rootdir"] = E(os.mkdir, j("newdir"))
    r["unlink_rootfile"] = E(os.unlink, j("rootfile"))
    r["unlink_sticky_rootowned"] = E(os.unlink, j("pub", "rootowned"))
    r["rename_sticky_rootowned"] = E(os.rename, j("pub", "rootowned"), j("pub", "stolen"))
    r["rootfile_after"] = E(read, j("rootfile"))
    r["link_rootfile"] = E(os.link, j("rootfile"), j("pub", "hl-root"))
    # set-group-ID directory inheritance
    r["sg_create"] = E(write, j("sg", "f"), b"sg")
    r["sg_mkdir"] = E(os.mkdir, j("sg", "d"))
    r["sg_owner_f"] = E(owner, j("sg", "f"))
    r["sg_owner_d"] = E(owner, j("sg", "d"))
    # set-group-ID bit dropped on chmod when not a member of the file's group
    r["sg_chmod_setgid"] = E(os.chmod, j("sg", "f"), 0o2755)
    r["sg_mode_after_chmod"] = E(owner, j("sg", "f"))
    # supplementary group access
    r["grp_read"] = E(read, j("grp", "grpfile"))
    r["grp_write"] = E(write, j("grp", "grpfile"), b"group write", os.O_WRONLY | os.O_TRUNC)
    r["grp_create"] = E(write, j("grp", "mine"), b"x")
    r["grp_owner_new"] = E(owner, j("grp", "mine"))
    r["grp_list"] = E(lambda: sorted(os.listdir(j("grp"))))
    # listing
    r["pub_list"] = E(lambda: sorted(os.listdir(j("pub"))))
    print(json.dumps(r, sort_keys=True))


if __name__ == "__main__":
    main()
