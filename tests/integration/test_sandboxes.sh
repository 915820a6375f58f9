#!/bin/bash
# -o fast_sandboxes: every directory named bazel-sandbox.* is served from a
# tmpfs of its own that only the daemon sees (a private copy of the backing's
# mount tree).  Real mounts, real syscalls, checked against the same
# operations on the native filesystem where there is one:
#   - posix.py (test_posix's checks) inside a sandbox equals native;
#   - with / made shared (as systemd does), no tmpfs shows in the mount
#     table and rm -r of a sandbox works;
#   - mkdir bazel-sandbox.x: a tmpfs in the daemon (its fd there is on a
#     tmpfs), in no mount table, nothing written inside reaches the backing
#     disk; files, symlinks, directories, hard links, renames inside behave
#     as on ext4; inode numbers stay distinct, the root's is its directory's
#     (stat and the parent's listing agree), statfs answers for the mount;
#   - rename of a regular file or symlink out of it and into it: content,
#     mode, owner, times, xattrs, holes, casfs's digest (not recomputed),
#     the source gone, a replaced target, RENAME_NOREPLACE; a file still
#     open, a file with two links, a directory, the sandbox itself: EXDEV,
#     and a hard link across; the action cache records a file renamed out
#     of a sandbox at its new name (a hit restores it);
#   - rmdir of a non-empty sandbox: ENOTEMPTY; rm -r: gone from the mount
#     and the backing; a directory renamed over an empty sandbox;
#   - casfs umount with a sandbox still full, and a daemon killed with
#     SIGKILL: no tmpfs anywhere afterwards, outputs already renamed out
#     are on disk, and the next mount serves the empty directory from a
#     fresh tmpfs again;
#   - a non-empty bazel-sandbox.* on disk at mount time stays on disk;
#   - without root, or as root without CAP_SYS_ADMIN: a clear error.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-300}
. "$(dirname "$0")/lib.sh"

HOLDER=""
casfs_extra_cleanup() {
    [ -n "$HOLDER" ] && kill_job "$HOLDER"
}

casfs_setup
BK=$T/bk # the backing directory, seen directly (casfs serves it at $MNT)
mkdir -p "$BK"

# op.py OP ARGS...: one syscall; prints "ok" or the errno's name
cat >"$T/op.py" <<'PY'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
op, args = sys.argv[1], sys.argv[2:]
try:
    if op == "rename":
        os.rename(args[0], args[1])
    elif op == "noreplace":  # renameat2(RENAME_NOREPLACE)
        if libc.renameat2(-100, args[0].encode(), -100, args[1].encode(), 1) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    elif op == "exchange":  # renameat2(RENAME_EXCHANGE)
        if libc.renameat2(-100, args[0].encode(), -100, args[1].encode(), 2) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    elif op == "rmdir":
        os.rmdir(args[0])
    elif op == "link":
        os.link(args[0], args[1])
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
op() { "$PYTHON" "$T/op.py" "$@"; }

# listing DIR: type, mode, size (not of directories: that is each
# filesystem's own), link target and path of everything below
listing() { (cd "$1" && find . -mindepth 1 \( -type d -printf 'd %m %P\n' \) -o -printf '%y %m %s %l %P\n' | sort); }
counter() { casfs_counter "$MNT" "$1"; }
# the daemon's descriptor on directory PATH of the backing (relative, as
# /proc/PID/fd shows descriptors of its private tree: "/sb/...")
daemon_fd_fstype() {
    local pid=$1 want=$2 fd
    for fd in /proc/"$pid"/fd/*; do
        if [ "$(readlink "$fd" 2>/dev/null)" = "$want" ]; then
            stat -f -L -c %T "$fd" 2>/dev/null
            return
        fi
    done
}
tmpfs_mounts_below() { # number of tmpfs mounts below $T in mount table $1
    awk -v t="$T" '$5 ~ "^"t && $0 ~ / - tmpfs /' "$1" | wc -l
}

# ---- unprivileged: refused with a message --------------------------------
if casfs_add_user; then
    mkdir -p "$T/umnt"
    chown "$CASFS_NEW_USER" "$T/umnt"
    chmod 755 "$T"
    out=$(runuser -u "$CASFS_NEW_USER" -- "$(casfs_for_user "$CASFS_NEW_USER")" mount --store "$T/ustore" \
        -o fast_sandboxes "$T/umnt" 2>&1)
    rc=$?
    if [ $rc = 1 ] && echo "$out" | grep -q '^casfs: -o fast_sandboxes .*only root' && ! is_mounted "$T/umnt"; then
        ok "unprivileged: -o fast_sandboxes refused with a message"
    else
        fail "unprivileged: rc $rc, '$out'"
    fi
else
    skip "unprivileged" "cannot add a user"
fi

# root without CAP_SYS_ADMIN (no tmpfs can be mounted): the daemon says so
mkdir -p "$T/capmnt"
out=$(setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin "$CASFS" mount --store "$T/capstore" \
    -o fast_sandboxes "$T/capmnt" 2>&1)
rc=$?
if [ $rc = 1 ] && echo "$out" | grep -q '^casfs: -o fast_sandboxes: cannot mount a tmpfs .*CAP_SYS_ADMIN' &&
    ! is_mounted "$T/capmnt"; then
    ok "no CAP_SYS_ADMIN: -o fast_sandboxes refused with a message, nothing mounted"
else
    fail "no CAP_SYS_ADMIN: rc $rc, '$out'"
    is_mounted "$T/capmnt" && "$CASFS" umount "$T/capmnt"
fi

# ---- a non-empty bazel-sandbox.* on disk stays on disk ----------------------
mkdir -p "$BK/sb/bazel-sandbox.keep" "$BK/sb/bazel-sandbox.empty"
echo kept >"$BK/sb/bazel-sandbox.keep/old"

if ! casfs_mount --backing "$BK" -o fast_sandboxes; then
    fail "mount -o fast_sandboxes"
    casfs_finish
fi
PID=$(casfs_recorded_pid "$MNT")
SB=$MNT/sb/bazel-sandbox.x

echo new >"$MNT/sb/bazel-sandbox.keep/new"
check_eq "on disk: a non-empty bazel-sandbox.* stays on disk" "kept new" \
    "$(cat "$BK/sb/bazel-sandbox.keep/old" "$BK/sb/bazel-sandbox.keep/new" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
rm -rf "$MNT/sb/bazel-sandbox.keep"

# ---- mkdir: a tmpfs only the daemon sees ------------------------------------
n0=$(counter fast_sandboxes)
mkdir "$SB"
check_eq "mkdir: one tmpfs mounted" $((n0 + 1)) "$(counter fast_sandboxes)"
check_eq "mkdir: the daemon's fd of sb/bazel-sandbox.x is on a tmpfs" tmpfs \
    "$(daemon_fd_fstype "$PID" /sb/bazel-sandbox.x)"
check_eq "mkdir: in no mount table (ours, the daemon's)" "0 0" \
    "$(tmpfs_mounts_below /proc/self/mountinfo) $(tmpfs_mounts_below "/proc/$PID/mountinfo")"
check_eq "mkdir: mode and owner as asked" "750 nobody" "$(mkdir -m 750 "$MNT/sb/bazel-sandbox.m" &&
    chown nobody "$MNT/sb/bazel-sandbox.m" && stat -c '%a %U' "$MNT/sb/bazel-sandbox.m")"
rmdir "$MNT/sb/bazel-sandbox.m"

# ---- inside: as on ext4 ----------------------------------------------------
# build ROOT: a tree with files, symlinks, directories, a hard link, renames
build() {
    local r=$1
    mkdir -p "$r/execroot/ws/bazel-out/bin" "$r/execroot/ws/src/a/b"
    for i in $(seq 1 40); do ln -s "/etc/hostname-$i" "$r/execroot/ws/src/a/b/h$i.h"; done
    printf 'int main(void) { return 0; }\n' >"$r/execroot/ws/src/main.c"
    seq 1 20000 >"$r/execroot/ws/bazel-out/bin/blob"
    seq 1 5000 >"$r/execroot/ws/bazel-out/bin/out.txt"
    chmod 640 "$r/execroot/ws/bazel-out/bin/out.txt"
    truncate -s 1000 "$r/execroot/ws/bazel-out/bin/out.txt"
    echo more >>"$r/execroot/ws/bazel-out/bin/out.txt"
    ln "$r/execroot/ws/src/main.c" "$r/execroot/ws/src/main-link.c"
    mv "$r/execroot/ws/src/a/b/h1.h" "$r/execroot/ws/src/a/first.h"
    mkdir "$r/execroot/ws/gone" && rmdir "$r/execroot/ws/gone"
    touch -d '2021-02-03 04:05:06' "$r/execroot/ws/src/main.c"
}
build "$NATIVE/x"
build "$SB"
check_eq "inside: the tree equals the native one" "$(listing "$NATIVE/x")" "$(listing "$SB")"
check_eq "inside: nothing reached the backing disk" "" "$(ls -A "$BK/sb/bazel-sandbox.x")"
check_eq "inside: hard link count" 2 "$(stat -c %h "$SB/execroot/ws/src/main.c")"

dups=$(find "$MNT" -links 1 -printf '%i\n' | sort | uniq -d | head -n 3 | tr '\n' ' ')
check_eq "inodes: no two files of the mount share a number" "" "$dups"
ino=$(stat -c %i "$SB/execroot/ws/src/main.c")
if [ "${#ino}" -ge 19 ]; then ok "inodes: a tmpfs file's number is above the disk's ($ino)"; else fail "inodes: $ino"; fi
got=$(stat -c %i "$SB")
want=$(stat -c %i "$BK/sb/bazel-sandbox.x")
lsi=$(ls -i "$MNT/sb" | awk '$2 == "bazel-sandbox.x" { print $1 }')
check_eq "inodes: the sandbox root reports its directory's number (stat, parent listing)" "$want $want" "$got $lsi"
check_eq "inodes: '..' in the sandbox root's listing is its parent" "$(stat -c %i "$MNT/sb")" \
    "$(ls -ai "$SB" | awk '$2 == ".." { print $1 }')"
check_eq "statfs: a sandbox answers as the mount" "$(stat -f -c '%t %b %S %c' "$MNT")" \
    "$(stat -f -c '%t %b %S %c' "$SB/execroot/ws/src")"

# posix.py's checks (the syscalls of test_posix) inside a sandbox against
# the native directory: tmpfs answers as the disk (fallocate's ZERO_RANGE)
mkdir -p "$MNT/sb/bazel-sandbox.posix" "$NATIVE/posix"
cp "$TESTDIR/posix.py" "$T/posix.py"
run_sub "posix.py in a sandbox" timeout 240 "$PYTHON" "$T/posix.py" --tag sandbox \
    "$MNT/sb/bazel-sandbox.posix" "$NATIVE/posix"
rm -rf "$MNT/sb/bazel-sandbox.posix"

# ---- renames out of the sandbox and into it ---------------------------------
O=$MNT/out
mkdir -p "$O" "$NATIVE/out"
f=$SB/execroot/ws/bazel-out/bin/obj.o
head -c 300000 /dev/urandom >"$f"
cp "$f" "$T/obj.ref"
chmod 4751 "$f"
chown nobody:nogroup "$f"
setfattr -n user.origin -v sandbox "$f"
touch -d '2020-01-02 03:04:05' "$f"
digest=$(getfattr --absolute-names -n user.casfs.xxh128 --only-values "$f" 2>/dev/null)
before="$(stat -c '%a %U %G %Y %s' "$f")"
h0=$(( $(counter files_hashed_streaming) + $(counter files_hashed_by_reread) + $(counter files_hashed_on_demand) ))
r0=$(counter renames_across)
check_eq "rename out: succeeds" ok "$(op rename "$f" "$O/obj.o")"
check_eq "rename out: one rename across filesystems" $((r0 + 1)) "$(counter renames_across)"
check "rename out: content intact" cmp "$T/obj.ref" "$O/obj.o"
check_eq "rename out: mode, owner, group, mtime, size" "$before" "$(stat -c '%a %U %G %Y %s' "$O/obj.o")"
check_eq "rename out: xattr" sandbox "$(getfattr --absolute-names -n user.origin --only-values "$O/obj.o" 2>&1)"
check_eq "rename out: the source is gone" "no" "$([ -e "$f" ] && echo yes || echo no)"
check_eq "rename out: the digest follows, equal to xxh128sum" "$(xxh128sum <"$T/obj.ref" | cut -d' ' -f1)" \
    "$(getfattr --absolute-names -n user.casfs.xxh128 --only-values "$O/obj.o" 2>&1)"
check_eq "rename out: the digest was known before" "$digest" "$(xxh128sum <"$T/obj.ref" | cut -d' ' -f1)"
h1=$(( $(counter files_hashed_streaming) + $(counter files_hashed_by_reread) + $(counter files_hashed_on_demand) ))
check_eq "rename out: nothing hashed again" "$h0" "$h1"
check_eq "rename out: on the backing disk" "$(stat -c %i "$BK/out/obj.o")" "$(stat -c %i "$O/obj.o")"
check_eq "rename out: a new lookup finds the same file" "$(stat -c '%i %s' "$O/obj.o")" \
    "$(ls -i "$O" | awk '$2 == "obj.o" { print $1 }') $(stat -c %s "$BK/out/obj.o")"

# holes stay holes
truncate -s 20M "$SB/sparse"
printf 'data' | dd of="$SB/sparse" bs=1 seek=10485760 conv=notrunc status=none
op rename "$SB/sparse" "$O/sparse" >/dev/null
blocks=$(stat -c %b "$O/sparse")
if [ "$(stat -c %s "$O/sparse")" = 20971520 ] && [ "$blocks" -lt 256 ]; then
    ok "rename out: a sparse file keeps its holes ($blocks blocks)"
else
    fail "rename out: sparse file: size $(stat -c %s "$O/sparse"), $blocks blocks"
fi

# into a directory with a default ACL: the file keeps its own (none), as a
# rename within ext4 does
mkdir -p "$BK/acl" "$NATIVE/acl"
setfacl -d -m u:nobody:rwx "$BK/acl" "$NATIVE/acl"
echo a >"$SB/noacl" && echo a >"$NATIVE/noacl"
mv "$NATIVE/noacl" "$NATIVE/acl/noacl"
check_eq "rename out: into a directory with a default ACL, no ACL gained (as native)" \
    "$(getfacl --skip-base -p "$NATIVE/acl/noacl" 2>&1 | wc -l) $(stat -c %a "$NATIVE/acl/noacl")" \
    "$(op rename "$SB/noacl" "$MNT/acl/noacl" >/dev/null; getfacl --skip-base -p "$BK/acl/noacl" 2>&1 | wc -l) $(stat -c %a "$MNT/acl/noacl")"

# a symlink, a replaced target, RENAME_NOREPLACE, into the sandbox
ln -s ../target/of/link "$SB/lnk"
check_eq "rename out: a symlink" "ok ../target/of/link" "$(op rename "$SB/lnk" "$O/lnk") $(readlink "$O/lnk")"
echo old >"$O/replaced"
echo new >"$SB/replacing"
check_eq "rename out: over an existing file" "ok new" "$(op rename "$SB/replacing" "$O/replaced") $(cat "$O/replaced")"
echo a >"$SB/nr"
check_eq "rename out: RENAME_NOREPLACE over an existing file" "EEXIST a" \
    "$(op noreplace "$SB/nr" "$O/replaced") $(cat "$SB/nr")"
check_eq "rename out: RENAME_NOREPLACE to a free name" "ok a" "$(op noreplace "$SB/nr" "$O/nr") $(cat "$O/nr")"
check_eq "rename in: a file from the disk into the sandbox" "ok new" \
    "$(op rename "$O/replaced" "$SB/in") $(cat "$SB/in")"
check_eq "rename: no temporary name left in the target directories" "" \
    "$(ls -A "$BK/out" "$SB" | grep -F .casfs-rename)"

# what a copy could not keep: EXDEV, nothing changed
echo held >"$SB/held"
sleep 60 <"$SB/held" &
HOLDER=$!
sleep 0.3
check_eq "rename out: a file still open gets EXDEV" "EXDEV held" "$(op rename "$SB/held" "$O/held") $(cat "$SB/held")"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
HOLDER=""
ln "$SB/in" "$SB/in2"
check_eq "rename out: a file with two links gets EXDEV" EXDEV "$(op rename "$SB/in" "$O/in")"
mkdir -p "$SB/dir/sub" && echo d >"$SB/dir/sub/f"
check_eq "rename out: a directory gets EXDEV" "EXDEV d" "$(op rename "$SB/dir" "$O/dir") $(cat "$SB/dir/sub/f")"
check_eq "rename out: RENAME_EXCHANGE across gets EXDEV" EXDEV "$(op exchange "$SB/in" "$O/obj.o")"
check_eq "link across: EXDEV" EXDEV "$(op link "$O/obj.o" "$SB/hl")"
check_eq "rename of the sandbox itself: EXDEV" EXDEV "$(op rename "$SB" "$MNT/sb/bazel-sandbox.y")"
check_eq "rename out: mv falls back to copying a directory" "d" "$(mv "$SB/dir" "$O/dir" && cat "$O/dir/sub/f")"

# ---- the action cache sees a file renamed out as made at its new name ---------
W=$MNT/work
mkdir -p "$W"
cmd='echo made-in-sandbox > '"$SB"'/tmp.out && mv '"$SB"'/tmp.out result.txt'
if (cd "$W" && "$CASFS" exec -- sh -c "$cmd") 2>"$T/cx.err" && [ "$(cat "$W/result.txt")" = made-in-sandbox ]; then
    hits=$(counter action_hits)
    rm -f "$W/result.txt"
    if (cd "$W" && "$CASFS" exec -- sh -c "$cmd") 2>>"$T/cx.err" &&
        [ "$(counter action_hits)" = $((hits + 1)) ] && [ "$(cat "$W/result.txt" 2>&1)" = made-in-sandbox ] &&
        [ ! -e "$SB/tmp.out" ]; then
        ok "action cache: a hit restores the file renamed out of the sandbox, at its new name"
    else
        fail "action cache: second run: hits $(counter action_hits) (was $hits), result '$(cat "$W/result.txt" 2>&1)': $(tail -n 2 "$T/cx.err")"
    fi
else
    fail "action cache: first run failed: $(tail -n 2 "$T/cx.err")"
fi

# ---- rmdir --------------------------------------------------------------------
check_eq "rmdir: a non-empty sandbox gets ENOTEMPTY" "ENOTEMPTY" "$(op rmdir "$SB")"
check "rmdir: still there, content intact" test -f "$SB/execroot/ws/src/main.c"
d0=$(counter fast_sandboxes_removed)
check "rm -r of the sandbox tree" rm -rf "$SB"
check_eq "rm -r: gone from the mount and the backing" "no no" \
    "$([ -e "$SB" ] && echo yes || echo no) $([ -e "$BK/sb/bazel-sandbox.x" ] && echo yes || echo no)"
check_eq "rm -r: its tmpfs let go" $((d0 + 1)) "$(counter fast_sandboxes_removed)"
mkdir "$SB" "$MNT/sb/plain"
echo p >"$MNT/sb/plain/f"
check_eq "rename over an empty sandbox by a directory" "ok p" \
    "$(op rename "$MNT/sb/plain" "$SB") $(cat "$SB/f" 2>&1)"
check_eq "rename over it: a directory of the disk now" "p" "$(cat "$BK/sb/bazel-sandbox.x/f" 2>&1)"
rm -rf "$SB"
mkdir -p "$SB/x" "$MNT/sb/plain"
check_eq "rename over a non-empty sandbox: ENOTEMPTY" ENOTEMPTY "$(op rename "$MNT/sb/plain" "$SB")"
rmdir "$MNT/sb/plain"
n1=$(counter fast_sandboxes)
mkdir "$SB/x/bazel-sandbox.nested"
check_eq "inside a sandbox, bazel-sandbox.* is a plain directory" "$n1" "$(counter fast_sandboxes)"

# more sandboxes one after the other than the inode table keeps mount fds
# for (64): each one's are let go with it
n0=$(counter fast_sandboxes)
d0=$(counter fast_sandboxes_removed)
bad=""
for i in $(seq 1 70); do
    mkdir "$MNT/sb/bazel-sandbox.loop" && echo "$i" >"$MNT/sb/bazel-sandbox.loop/f" &&
        [ "$(cat "$MNT/sb/bazel-sandbox.loop/f")" = "$i" ] && rm -r "$MNT/sb/bazel-sandbox.loop" || bad="$bad $i"
done
check_eq "70 sandboxes one after the other: each on its own tmpfs, all let go" "70 70" \
    "$(( $(counter fast_sandboxes) - n0 )) $(( $(counter fast_sandboxes_removed) - d0 ))${bad:+ failed at$bad}"

# ---- a shared mount tree: the tmpfs propagate nowhere ---------------------------
# (systemd makes / shared: the daemon's copy of it would be a peer of it)
mkdir -p "$T/sh/bk" "$T/sh/mnt"
cat >"$T/shared.sh" <<'SH'
C=$1 T=$2
trap '"$C" umount "$T/sh/mnt" 2>/dev/null' EXIT
mount --make-rshared / || exit 1
"$C" mount --store "$T/sh/store" --backing "$T/sh/bk" -o fast_sandboxes "$T/sh/mnt" || exit 1
mkdir "$T/sh/mnt/bazel-sandbox.s" && echo x >"$T/sh/mnt/bazel-sandbox.s/f" || exit 1
echo "$(grep -c ' - tmpfs casfs-sandbox ' /proc/self/mountinfo)$(ls -A "$T/sh/bk/bazel-sandbox.s")"
rm -r "$T/sh/mnt/bazel-sandbox.s" && "$C" umount "$T/sh/mnt" && echo gone
SH
check_eq "shared /: no tmpfs in the mount table, nothing on the disk, rm -r and umount work" "0 gone" \
    "$(unshare -m --propagation unchanged bash "$T/shared.sh" "$CASFS" "$T" 2>&1 | tr '\n' ' ' | sed 's/ $//')"

# ---- unmounting with a full sandbox ------------------------------------------
echo lost >"$SB/x/f"
check "umount with a full sandbox" casfs_umount "$MNT"
check_eq "umount: no tmpfs left anywhere, the daemon gone" "0 gone" \
    "$(tmpfs_mounts_below /proc/self/mountinfo) $(pid_gone "$PID" && echo gone)"
check_eq "umount: the directory is on disk, empty" "" "$(ls -A "$BK/sb/bazel-sandbox.x")"
check_eq "umount: what was renamed out is on disk" "$(cat "$T/obj.ref" | xxh128sum)" "$(xxh128sum <"$BK/out/obj.o")"

# ---- after a remount: the empty directory is served from a tmpfs again ------
casfs_mount --backing "$BK" -o fast_sandboxes || fail "remount"
PID=$(casfs_recorded_pid "$MNT")
n0=$(counter fast_sandboxes)
mkdir -p "$SB/out"
head -c 50000 /dev/urandom >"$SB/out/kept.o"
cp "$SB/out/kept.o" "$T/kept.ref"
check_eq "remount: found at lookup, on a tmpfs again" "$((n0 + 1)) tmpfs" \
    "$(counter fast_sandboxes) $(daemon_fd_fstype "$PID" /sb/bazel-sandbox.x)"
check_eq "remount: nothing on the disk" "" "$(ls -A "$BK/sb/bazel-sandbox.x")"
op rename "$SB/out/kept.o" "$O/kept.o" >/dev/null
echo unsaved >"$SB/out/unsaved"

# ---- a daemon killed with SIGKILL ----------------------------------------------
kill -KILL "$PID"
wait_pid_gone "$PID"
check_eq "SIGKILL: no tmpfs left anywhere" 0 "$(tmpfs_mounts_below /proc/self/mountinfo)"
check "SIGKILL: casfs umount clears the stale mount" casfs_umount "$MNT"
check "SIGKILL: the output renamed out before is on disk" cmp "$T/kept.ref" "$BK/out/kept.o"
check_eq "SIGKILL: the sandbox's directory is on disk, empty" "" "$(ls -A "$BK/sb/bazel-sandbox.x")"
casfs_mount --backing "$BK" -o fast_sandboxes || fail "mount after SIGKILL"
PID=$(casfs_recorded_pid "$MNT")
check_eq "SIGKILL: remounted, the sandbox is empty and on a tmpfs" " tmpfs" \
    "$(ls -A "$SB") $(daemon_fd_fstype "$PID" /sb/bazel-sandbox.x)"
check "SIGKILL: remounted, casfs umount" casfs_umount "$MNT"

casfs_finish
