#!/bin/bash
# Edges an external filesystem suite found (issue list: crashes, stale data,
# waits, deleted files).  Each section reproduces the original report.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-300}
. "$(dirname "$0")/lib.sh"

SMALLFS=""
casfs_extra_cleanup() {
    # the small filesystem under a casfs mount: detached lazily, the casfs
    # mount above it is unmounted by the common cleanup
    [ -n "$SMALLFS" ] && umount -l "$SMALLFS" 2>/dev/null
}

casfs_setup
PROBE=${CASFS_PROBE:?CASFS_PROBE is not set (the fsprobe helper binary)}

daemon_alive() {
    local pid
    pid=$(casfs_recorded_pid "$MNT")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# ---- file handles: ids that come back after the kernel forgot the node ----
# (xfstests generic/426 & co.: open_by_handle -c DIR; drop caches; open)
casfs_mount
mkdir "$MNT/h"
if "$PROBE" handles-save "$MNT/h" 300 "$T/handles" >"$T/h.out" 2>&1; then
    ok "handles: 300 handles taken"
else
    fail "handles: save: $(cat "$T/h.out")"
fi
sync
echo 3 >/proc/sys/vm/drop_caches
out=$("$PROBE" handles-open "$MNT/h" "$T/handles" 2>&1)
rc=$?
if [ $rc -eq 0 ] && daemon_alive; then
    ok "handles: opened after drop_caches, daemon alive ($out)"
else
    fail "handles: after drop_caches rc=$rc: $out; daemon alive: $(daemon_alive && echo yes || echo no)"
fi
case "$out" in
    "ok 300 stale 0") ok "handles: every handle opened its own file" ;;
    *) fail "handles: expected all 300 to open, got: $out" ;;
esac
# forgotten and gone: the files removed, caches dropped; ESTALE, no crash
rm -f "$MNT"/h/f1*
echo 3 >/proc/sys/vm/drop_caches
out=$("$PROBE" handles-open "$MNT/h" "$T/handles" 2>&1)
rc=$?
if [ $rc -eq 0 ] && daemon_alive && [ "$out" = "ok 189 stale 111" ]; then
    ok "handles: the 111 removed files give ESTALE, the other 189 open"
else
    fail "handles: after removal rc=$rc: $out (expected ok 189 stale 111)"
fi
# handles of an earlier mount of the same directory: never a wrong file
casfs_umount "$MNT" || fail "handles: umount"
casfs_mount
out=$("$PROBE" handles-open "$MNT/h" "$T/handles" 2>&1)
rc=$?
if [ $rc -eq 0 ] && daemon_alive; then
    ok "handles: handles of the earlier mount are refused or right ($out)"
else
    fail "handles: after remount rc=$rc: $out; daemon alive: $(daemon_alive && echo yes || echo no)"
fi
casfs_umount "$MNT" || fail "umount"
# path mode (no file handles of its own): handles are refused, never crash
casfs_mount -o no_handles
"$PROBE" handles-save "$MNT/h" 50 "$T/handles2" >/dev/null 2>&1 || fail "handles: save (no_handles)"
echo 3 >/proc/sys/vm/drop_caches
out=$("$PROBE" handles-open "$MNT/h" "$T/handles2" 2>&1)
rc=$?
if [ $rc -eq 0 ] && daemon_alive; then
    ok "handles: no_handles mode answers without crashing ($out)"
else
    fail "handles: no_handles rc=$rc: $out; daemon alive: $(daemon_alive && echo yes || echo no)"
fi
casfs_umount "$MNT" || fail "umount"

# ---- asynchronous O_DIRECT writes racing buffered reads (generic/451) ------
for opts in "" "-o writeback"; do
    # shellcheck disable=SC2086
    casfs_mount $opts
    out=$(timeout 120 "$PROBE" dio-race "$MNT/dio" 3000 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        ok "dio-race${opts:+ ($opts)}: $out"
    else
        fail "dio-race${opts:+ ($opts)}: rc=$rc: $out"
    fi
    casfs_umount "$MNT" || fail "umount"
done

# ---- xattrs: ls -l without the per-file tax, ACLs and labels on request ----
counter_of() { # MNT NAME
    "$CASFS" stats --json "$1" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['mounts'][0]['counters']['$2'])"
}
casfs_mount
mkdir "$MNT/many"
(cd "$MNT/many" && seq 1 1000 | xargs touch)
ls -l "$MNT/many" >/dev/null       # entries and attributes cached
g0=$(counter_of "$MNT" getxattr)
ls -l "$MNT/many" >/dev/null
g1=$(counter_of "$MNT" getxattr)
[ $((g1 - g0)) -le 4 ] && ok "xattrs: ls -l of 1000 files: $((g1 - g0)) GETXATTR (once per name and device)" ||
    fail "xattrs: ls -l of 1000 files made $((g1 - g0)) GETXATTR requests"
getfattr -n security.selinux "$MNT/many/1" 2>"$T/gx.err"
grep -q "Operation not supported" "$T/gx.err" && ok "xattrs: security.* answered EOPNOTSUPP by default" ||
    fail "xattrs: security.selinux: $(cat "$T/gx.err")"
[ "$(getfattr --only-values -n user.casfs.xxh128 "$MNT/many/1")" = "$(xxh128sum "$MNT/many/1" | cut -d' ' -f1)" ] &&
    ok "xattrs: user.casfs.xxh128 still answered" || fail "xattrs: the digest xattr is gone"
setfattr -n user.mine -v 7 "$MNT/many/1" && [ "$(getfattr --only-values -n user.mine "$MNT/many/1")" = 7 ] &&
    ok "xattrs: user xattrs still pass through" || fail "xattrs: user.mine"
ln -s target "$MNT/sl"
if setfattr -h -n trusted.t -v 1 "$MNT/sl" && [ "$(getfattr -h --only-values -n trusted.t "$MNT/sl")" = 1 ]; then
    ok "xattrs: trusted.* on a symlink (generic/062)"
else
    fail "xattrs: trusted.* on a symlink"
fi
setfacl -m u:nobody:r "$MNT/many/2" 2>/dev/null && fail "xattrs: an ACL was set without security_xattrs" ||
    ok "xattrs: ACLs refused (EOPNOTSUPP) without security_xattrs"
casfs_umount "$MNT" || fail "umount"
# the backing's ACL, seen through -o security_xattrs; default ACLs and umask
setfacl -m u:nobody:r "$MNT/many/3"
casfs_mount -o security_xattrs
getfacl -p "$MNT/many/3" 2>/dev/null | grep -q "^user:nobody:r--" && ok "security_xattrs: an ACL set on the backing shows" ||
    fail "security_xattrs: the backing's ACL is not seen: $(getfacl -p "$MNT/many/3" 2>&1 | tr '\n' ' ')"
mkdir "$MNT/dacl"
setfacl -d -m u::rwx,g::rwx,o::rwx "$MNT/dacl"
(umask 077 && touch "$MNT/dacl/f" && mkdir "$MNT/dacl/sub" && touch "$MNT/plainf")
[ "$(stat -c %a "$MNT/dacl/f")" = 666 ] && [ "$(stat -c %a "$MNT/dacl/sub")" = 777 ] &&
    ok "security_xattrs: a default ACL, not the umask, gives new entries their mode (generic/099)" ||
    fail "security_xattrs: under a default ACL: f $(stat -c %a "$MNT/dacl/f"), sub $(stat -c %a "$MNT/dacl/sub")"
[ "$(stat -c %a "$MNT/plainf")" = 600 ] && ok "security_xattrs: elsewhere the umask applies" ||
    fail "security_xattrs: umask 077 gave $(stat -c %a "$MNT/plainf")"
touch "$MNT/aclmode"
chmod 600 "$MNT/aclmode"
stat -c %a "$MNT/aclmode" >/dev/null
setfacl -m u::rwx,g::rwx,o::rwx "$MNT/aclmode"
[ "$(stat -c %a "$MNT/aclmode")" = 777 ] && ok "security_xattrs: the mode follows setfacl (generic/375)" ||
    fail "security_xattrs: after setfacl the mode is $(stat -c %a "$MNT/aclmode")"
casfs_umount "$MNT" || fail "umount"

# ---- set-group-id dropped by fallocate, punch hole and zero range by a
# writer outside the file's group, as on ext4 (generic/683, 684, 685)
chmod 711 "$T"   # nobody must reach the mount point
casfs_mount -o allow_other
chmod 777 "$MNT"
touch "$MNT/sgid"
for op in "falloc 0 4096" "fpunch 0 4096" "fzero 0 4096"; do
    chmod 2777 "$MNT/sgid"
    runuser -u nobody -- xfs_io -c "$op" "$MNT/sgid"
    [ "$(stat -c %a "$MNT/sgid")" = 777 ] && ok "setgid: dropped by ${op%% *} as nobody" ||
        fail "setgid: kept by ${op%% *} as nobody ($(stat -c %a "$MNT/sgid"))"
done
chmod 755 "$MNT"
casfs_umount "$MNT" || fail "umount"

# ---- set-user-ID and set-group-ID dropped where ext4 drops them ------------
# casfs negotiates FUSE_HANDLE_KILLPRIV_V2: the kernel stops asking for
# security.capability before every write(2) and leaves the killing to casfs
# (writes, truncation, O_TRUNC opens; fallocate and copy_file_range run as
# the caller on the backing).  Every case runs on the native
# directory and on the mount; the modes must be the same, right after the
# operation (the kernel's cached mode) and after a remount (the backing).
setid_case() { # DIR CASE: prepares DIR/f, runs the case, prints the mode
    local f=$1/f
    rm -f "$f"
    echo abc >"$f"
    chmod 6777 "$f"
    case $2 in
        write) runuser -u nobody -- sh -c "echo x >>'$f'" ;;
        write-root) echo x >>"$f" ;;
        write-dio) runuser -u nobody -- dd if=/dev/zero of="$f" bs=4096 count=1 oflag=direct conv=notrunc status=none ;;
        truncate) runuser -u nobody -- truncate -s 10 "$f" ;;
        truncate-root) truncate -s 10 "$f" ;;
        otrunc) runuser -u nobody -- "$PYTHON" -c "import os; os.close(os.open('$f', os.O_WRONLY | os.O_TRUNC))" ;;
        otrunc-empty) : >"$f"; chmod 6777 "$f"; runuser -u nobody -- sh -c ": >'$f'" ;;
        otrunc-root) "$PYTHON" -c "import os; os.close(os.open('$f', os.O_WRONLY | os.O_TRUNC))" ;;
        sgid-nogx) chmod 6767 "$f"; runuser -u nobody -- sh -c "echo x >>'$f'" ;;
        sgid-ingroup) chgrp nogroup "$f"; chmod 6767 "$f"; runuser -u nobody -- sh -c "echo x >>'$f'" ;;
        sgid-gx) chmod 2777 "$f"; runuser -u nobody -- sh -c "echo x >>'$f'" ;;
        chgrp-outside) chown nobody:root "$f"; chmod 2745 "$f"; runuser -u nobody -- chgrp nogroup "$f" ;;
        copy-range) echo defg >"$1/src"; runuser -u nobody -- xfs_io -c "copy_range -l 4 $1/src" "$f" ;;
        falloc) runuser -u nobody -- xfs_io -c "falloc 0 8192" "$f" ;;
        # chown(f, -1, -1) changes no owner but drops the bits as a chown
        chown-none-root) "$PYTHON" -c "import os; os.chown('$f', -1, -1)" ;;
        chown-none-owner) chown nobody "$f"; chmod 6777 "$f"
            runuser -u nobody -- "$PYTHON" -c "import os; os.chown('$f', -1, -1)" ;;
        chown-none-sgid-nogx) chmod 6767 "$f"; "$PYTHON" -c "import os; os.chown('$f', -1, -1)" ;;
    esac
    stat -c %a "$f"
}
SETID_CASES="write write-root write-dio truncate truncate-root otrunc otrunc-empty otrunc-root sgid-nogx sgid-ingroup sgid-gx chgrp-outside copy-range falloc
    chown-none-root chown-none-owner chown-none-sgid-nogx"
casfs_mount -o allow_other
chmod 777 "$MNT" "$NATIVE"
for c in $SETID_CASES; do
    want=$(setid_case "$NATIVE" "$c")
    got=$(setid_case "$MNT" "$c")
    [ "$got" = "$want" ] && ok "setid: $c leaves mode $got as on the native filesystem" ||
        fail "setid: $c: mode $got on casfs, $want on the native filesystem"
    echo "$c $want" >>"$T/setid.want"
done
# the write by another user really dropped the bit (a test that cannot pass
# by accident: the native answer itself must show the kill)
[ "$(setid_case "$NATIVE" write)" = 777 ] && [ "$(setid_case "$NATIVE" write-root)" = 6777 ] &&
    [ "$(setid_case "$NATIVE" chown-none-root)" = 777 ] ||
    fail "setid: the native filesystem does not drop set-user-ID as expected here"
# chown(-1, -1) also changes the change time, of a file and of a directory
chown_none_ctime() { # DIR: prints, for DIR/ct/f and DIR/ct, 1 if ctime moved
    local p c0
    for p in "$1/ct/f" "$1/ct"; do
        c0=$(stat -c %Z "$p")
        "$PYTHON" -c "import os; os.chown('$p', -1, -1)"
        printf '%s ' "$(($(stat -c %Z "$p") > c0))"
    done
}
for d in "$NATIVE" "$MNT"; do
    rm -rf "$d/ct"; mkdir "$d/ct"; : >"$d/ct/f"
done
sleep 1.1
want=$(chown_none_ctime "$NATIVE")
got=$(chown_none_ctime "$MNT")
[ "$want" = "1 1 " ] && [ "$got" = "$want" ] &&
    ok "setid: chown(-1, -1) changes the change time as on the native filesystem" ||
    fail "setid: chown(-1, -1) moved ctime (file dir): '$got' on casfs, '$want' on the native filesystem"
rm -rf "$NATIVE/ct" "$MNT/ct"
# what the backing holds, seen after a remount (no cached attributes)
for c in $SETID_CASES; do
    setid_case "$MNT" "$c" >/dev/null
    mv "$MNT/f" "$MNT/f-$c"
done
casfs_umount "$MNT" || fail "umount"
casfs_mount -o allow_other
while read -r c want; do
    got=$(stat -c %a "$MNT/f-$c")
    [ "$got" = "$want" ] && ok "setid: $c: the backing holds mode $got" ||
        fail "setid: $c: the backing holds mode $got, want $want"
done <"$T/setid.want"
# no security.capability request per write: one per file at most (the
# kernel asks once, then remembers there is nothing to kill)
g0=$(casfs_counter "$MNT" getxattr)
w0=$(casfs_counter "$MNT" write)
dd if=/dev/zero of="$MNT/seq" bs=1M count=64 status=none
"$PYTHON" -c "
import os
fd = os.open('$MNT/log', os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for i in range(2000):
    os.write(fd, b'%063d\n' % i)
os.close(fd)"
g1=$(casfs_counter "$MNT" getxattr)
w1=$(casfs_counter "$MNT" write)
[ $((w1 - w0)) -eq $((64 + 2000)) ] && ok "killpriv: 64 MiB in 1 MiB writes and 2000 appends: $((w1 - w0)) WRITE requests" ||
    fail "killpriv: expected 2064 WRITE requests, got $((w1 - w0))"
[ $((g1 - g0)) -le 2 ] && ok "killpriv: they made $((g1 - g0)) GETXATTR requests (at most one per file)" ||
    fail "killpriv: $((g1 - g0)) GETXATTR requests for two files written sequentially (security.capability per write?)"
dd if=/dev/zero of="$MNT/seq" bs=1M count=64 conv=notrunc status=none
g2=$(casfs_counter "$MNT" getxattr)
[ $((g2 - g1)) -eq 0 ] && ok "killpriv: rewriting the file made no GETXATTR request" ||
    fail "killpriv: rewriting 64 MiB made $((g2 - g1)) GETXATTR requests"
chmod 755 "$MNT" "$NATIVE"
casfs_umount "$MNT" || fail "umount"

# ---- uncached write-only opens ---------------------------------------------
# A write-only open nobody else has open is answered FOPEN_DIRECT_IO: its
# WRITEs come from the caller's pages, not through the FUSE page cache.
# No page cached by an earlier open or by a reader that comes meanwhile may
# keep the old bytes.
casfs_mount
u0=$(casfs_counter "$MNT" uncached_opens)
r0=$(casfs_counter "$MNT" read)
w0=$(casfs_counter "$MNT" write)
x0=$(casfs_counter "$MNT" files_hashed_by_reread)
head -c 67108864 /dev/urandom >"$T/u.src"
dd if="$T/u.src" of="$MNT/u" bs=1M status=none
[ $(($(casfs_counter "$MNT" uncached_opens) - u0)) -eq 1 ] && [ $(($(casfs_counter "$MNT" write) - w0)) -eq 64 ] &&
    [ $(($(casfs_counter "$MNT" read) - r0)) -eq 0 ] && ok "uncached: dd of 64 MiB: one uncached open, 64 WRITEs, no READ" ||
    fail "uncached: dd of 64 MiB: uncached opens +$(($(casfs_counter "$MNT" uncached_opens) - u0)), WRITEs +$(($(casfs_counter "$MNT" write) - w0)), READs +$(($(casfs_counter "$MNT" read) - r0))"
[ "$(getfattr --only-values -n user.casfs.xxh128 "$MNT/u" 2>/dev/null)" = "$(xxh128sum "$T/u.src" | cut -d' ' -f1)" ] &&
    [ "$(casfs_counter "$MNT" files_hashed_by_reread)" -eq "$x0" ] &&
    ok "uncached: its digest is right, hashed as written (no re-read)" || fail "uncached: the digest of the dd output"
cmp "$T/u.src" "$MNT/u" && ok "uncached: the file reads back whole" || fail "uncached: the file reads back wrong"
# pages an earlier open cached, then a lone writer replaces their bytes
"$PYTHON" -c "import os; fd = os.open('$MNT/uc', os.O_RDWR | os.O_CREAT, 0o644); os.write(fd, b'A' * 4194304); os.lseek(fd, 0, 0); os.read(fd, 4194304); os.close(fd)"
cat "$MNT/uc" >/dev/null
u1=$(casfs_counter "$MNT" uncached_opens)
"$PYTHON" -c "import os; fd = os.open('$MNT/uc', os.O_WRONLY); os.pwrite(fd, b'B' * 8192, 1048576); os.close(fd)"
got=$(dd if="$MNT/uc" bs=4096 skip=257 count=1 status=none | head -c 4)
[ "$(casfs_counter "$MNT" uncached_opens)" -eq $((u1 + 1)) ] && [ "$got" = BBBB ] &&
    ok "uncached: a later reader sees a lone writer's bytes, not the pages an earlier open cached" ||
    fail "uncached: read '$got' where an uncached writer wrote BBBB (uncached opens +$(($(casfs_counter "$MNT" uncached_opens) - u1)))"
# a reader that opens while the uncached writer is open caches pages; each
# later write drops the ones it replaced
u1=$(casfs_counter "$MNT" uncached_opens)
out=$("$PYTHON" - "$MNT/uc" <<'PY'
import os, sys
w = os.open(sys.argv[1], os.O_WRONLY)
r = os.open(sys.argv[1], os.O_RDONLY)
first = os.pread(r, 4194304, 0)        # the reader's pages are cached now
os.pwrite(w, b"C" * 8192, 2097152)
second = os.pread(r, 8, 2097152 + 4096)
os.pwrite(w, b"D" * 100, 3000000)      # a partial page
third = os.pread(r, 104, 2999998)
os.close(w)
os.close(r)
print(first[1048576:1048580].decode(), second.decode(), third.decode())
PY
)
[ "$out" = "BBBB CCCCCCCC AA$(printf 'D%.0s' $(seq 100))AA" ] && [ "$(casfs_counter "$MNT" uncached_opens)" -eq $((u1 + 1)) ] &&
    ok "uncached: a reader open beside the uncached writer sees each write at once" ||
    fail "uncached: a reader beside the uncached writer read: $out (uncached opens +$(($(casfs_counter "$MNT" uncached_opens) - u1)))"
# ... and one that reads all the time, racing each write, never keeps old
# bytes once the write returned
out=$("$PYTHON" - "$MNT/ur" <<'PY'
import os, sys, threading
w = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(w, b"\0" * 1048576, 0)
r = os.open(sys.argv[1], os.O_RDONLY)
stop = False
def hammer():
    while not stop:
        os.pread(r, 1048576, 0)
t = threading.Thread(target=hammer)
t.start()
stale = 0
for i in range(1, 151):
    v = bytes([i])
    os.pwrite(w, v * 1048576, 0)
    if os.pread(r, 1048576, 0) != v * 1048576:
        stale += 1
stop = True
t.join()
print(stale)
PY
)
[ "$out" = 0 ] && ok "uncached: a reader racing 150 writes of 1 MiB never reads old bytes after a write returned" ||
    fail "uncached: a reader racing the uncached writer read old bytes after $out of 150 writes"
digest_ok() { [ "$(getfattr --only-values -n user.casfs.xxh128 "$MNT/$1" 2>/dev/null)" = "$(xxh128sum "$MNT/$1" | cut -d' ' -f1)" ]; }
wait_for "the digest of uc" digest_ok uc
wait_for "the digest of ur" digest_ok ur
digest_ok ur || fail "uncached: stale digest of ur"
digest_ok uc && ok "uncached: the digest follows writes beside a reader" || fail "uncached: stale digest of uc"
# appends, a read-write open, and a second open stay cached
u2=$(casfs_counter "$MNT" uncached_opens)
echo one >>"$MNT/uc"
"$PYTHON" -c "import os; fd = os.open('$MNT/uc', os.O_RDWR); os.pwrite(fd, b'E', 0); os.close(fd)"
exec 5<"$MNT/uc"
"$PYTHON" -c "import os; fd = os.open('$MNT/uc', os.O_WRONLY); os.pwrite(fd, b'F', 1); os.close(fd)"
exec 5<&-
[ "$(casfs_counter "$MNT" uncached_opens)" -eq "$u2" ] && [ "$(head -c 2 "$MNT/uc")" = EF ] &&
    [ "$(tail -c 4 "$MNT/uc")" = "one" ] &&
    ok "uncached: O_APPEND, O_RDWR and a writer beside a reader stay cached, their bytes right" ||
    fail "uncached: uncached opens +$(($(casfs_counter "$MNT" uncached_opens) - u2)), head $(head -c 2 "$MNT/uc"), tail $(tail -c 4 "$MNT/uc")"
casfs_umount "$MNT" || fail "umount"
casfs_mount -o writeback
u3=$(casfs_counter "$MNT" uncached_opens)
dd if=/dev/zero of="$MNT/wb" bs=1M count=4 status=none
[ "$(casfs_counter "$MNT" uncached_opens)" -eq "$u3" ] && ok "uncached: not with -o writeback" ||
    fail "uncached: an uncached open under -o writeback"
casfs_umount "$MNT" || fail "umount"

# ---- kernel passthrough of large read-only opens ---------------------------
# A read-only open of a file of 1 MiB or more that nobody else has open is
# passed through to the backing file in the kernel (root mounts): no READ
# reaches casfs.  Every other open of that inode meanwhile joins it; a
# writer that joins writes past casfs, so its digest is re-read and the
# page cache of earlier cached opens must not serve old bytes afterwards
# (the kernel drops it at every passthrough open: none has keep_cache).
pt_configured() {
    # grep reads it all: under pipefail, grep -q would quit early and zcat's
    # SIGPIPE would fail the pipeline (the config is larger than a pipe)
    [ -r /proc/config.gz ] && zcat /proc/config.gz | grep -x "CONFIG_FUSE_PASSTHROUGH=y" >/dev/null
}
if ! pt_configured; then
    skip "passthrough" "the kernel has no FUSE passthrough (CONFIG_FUSE_PASSTHROUGH) or no /proc/config.gz to say so"
else
    casfs_mount
    head -c 4194304 /dev/urandom >"$T/pt.src"
    cp "$T/pt.src" "$MNT/pt"
    head -c 100000 /dev/urandom >"$MNT/small"
    b0=$(casfs_counter "$MNT" passthrough_backings)
    r0=$(casfs_counter "$MNT" read)
    cmp "$T/pt.src" "$MNT/pt" && ok "passthrough: a 4 MiB file reads back whole" || fail "passthrough: the 4 MiB file reads back wrong"
    b1=$(casfs_counter "$MNT" passthrough_backings)
    r1=$(casfs_counter "$MNT" read)
    [ $((b1 - b0)) -eq 1 ] && [ $((r1 - r0)) -eq 0 ] && ok "passthrough: its read-only open was passed through, no READ request" ||
        fail "passthrough: backings +$((b1 - b0)), READ requests +$((r1 - r0)) for one read of a 4 MiB file"
    cat "$MNT/small" >/dev/null
    [ "$(casfs_counter "$MNT" passthrough_backings)" -eq "$b1" ] && ok "passthrough: a 100 kB file is not passed through" ||
        fail "passthrough: a 100 kB file got a backing file"
    "$PYTHON" - "$MNT/pt" "$T/pt.src" <<'PY' && ok "passthrough: mmap of a passed-through file reads right" || fail "passthrough: mmap read"
import mmap, sys
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "rb") as g:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    sys.exit(0 if m[:] == g.read() else 1)
PY
    # a second reader joins the first one's backing file
    exec 3<"$MNT/pt"
    b2=$(casfs_counter "$MNT" passthrough_backings)
    o2=$(casfs_counter "$MNT" passthrough_opens)
    cmp "$T/pt.src" "$MNT/pt" && [ "$(casfs_counter "$MNT" passthrough_opens)" -eq $((o2 + 1)) ] &&
        [ "$(casfs_counter "$MNT" passthrough_backings)" -eq "$b2" ] &&
        ok "passthrough: a second reader joins the open backing file" || fail "passthrough: second reader"
    # cached first: a writer reads the file, so the page cache holds it
    "$PYTHON" -c "import os; fd = os.open('$MNT/st', os.O_RDWR | os.O_CREAT, 0o644); os.write(fd, b'A' * 4194304); os.lseek(fd, 0, 0); os.read(fd, 4194304); os.close(fd)"
    exec 4<"$MNT/st"          # passthrough now
    "$PYTHON" -c "import os; fd = os.open('$MNT/st', os.O_RDWR); os.pwrite(fd, b'B' * 8192, 1048576); os.close(fd)"
    exec 4<&-
    got=$("$PYTHON" -c "import os; fd = os.open('$MNT/st', os.O_RDWR); print(os.pread(fd, 4, 1048576 + 4096).decode()); os.close(fd)")
    [ "$got" = BBBB ] && ok "passthrough: after a writer joined, a cached open reads its bytes, not the old page cache" ||
        fail "passthrough: a cached open read '$got' where a joined writer wrote BBBB"
    [ "$(dd if="$MNT/st" bs=4096 skip=257 count=1 status=none | head -c 4)" = BBBB ] &&
        ok "passthrough: a passed-through read sees the joined writer's bytes" || fail "passthrough: passed-through read"
    digest_right() { [ "$(getfattr --only-values -n user.casfs.xxh128 "$MNT/st" 2>/dev/null)" = "$(xxh128sum "$MNT/st" | cut -d' ' -f1)" ]; }
    wait_for "the digest of the file a passed-through writer changed" digest_right
    digest_right && ok "passthrough: the digest follows a writer that wrote past casfs" || fail "passthrough: stale digest"
    exec 3<&-
    casfs_umount "$MNT" || fail "umount"
    casfs_mount -o no_passthrough
    cmp "$T/pt.src" "$MNT/pt" && [ "$(casfs_counter "$MNT" passthrough_backings)" -eq 0 ] &&
        [ "$(casfs_counter "$MNT" read)" -gt 0 ] && ok "passthrough: -o no_passthrough reads through casfs" ||
        fail "passthrough: -o no_passthrough"
    casfs_umount "$MNT" || fail "umount"
fi

# ---- hashing never blocks a request (generic/308) ---------------------------
# A 4 KiB write at 200 GiB leaves a file that is almost all hole; its digest
# needs ~200 GiB of zeros hashed (seconds of CPU).  That happens after the
# close, in the background: opening and reading the file must not wait for
# it, so the read returns while the digest is still unknown.
daemon_cpu() { # utime + stime of the daemon, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$(casfs_recorded_pid "$MNT")/stat"
}
casfs_mount
if xfs_io -f -c "pwrite 200g 4096" "$MNT/huge" >/dev/null; then
    if xfs_io -r -c "pread 0 4096" -c "pread 200g 4096" "$MNT/huge" >/dev/null; then
        rr=$(counter_of "$MNT" files_hashed_by_reread)
        [ "$rr" = 0 ] && ok "huge sparse file: opened and read while its hash is still running" ||
            fail "huge sparse file: open and read returned only after the hash ($rr re-read)"
    else
        fail "huge sparse file: open and read failed"
    fi
    sleep 1
    c1=$(daemon_cpu)
    sleep 1
    c2=$(daemon_cpu)
    [ $((c2 - c1)) -gt 10 ] && ok "huge sparse file: hashed in the background ($((c2 - c1)) ticks/s)" ||
        fail "huge sparse file: no background hashing seen ($((c2 - c1)) ticks/s)"
    # deleted: the hash is abandoned at once, nothing more is spent on it
    rm "$MNT/huge"
    sleep 0.5
    c1=$(daemon_cpu)
    sleep 1
    c2=$(daemon_cpu)
    [ $((c2 - c1)) -lt 5 ] && ok "huge sparse file: deleted, its hashing stopped ($((c2 - c1)) ticks in 1 s)" ||
        fail "huge sparse file: still hashing after it was deleted ($((c2 - c1)) ticks in 1 s)"
else
    fail "xfs_io pwrite at 200g failed"
fi
casfs_umount "$MNT" || fail "umount"

# ---- .casfs/cas/HEX: any live file with the content serves it -------------
# Two files held the same content; the one casfs learnt of last changed.
# The other still holds it, with its digest known: cas/HEX is still there.
casfs_mount
printf 'same content\n' >"$MNT/live_a"
HA=$(getfattr --only-values -n user.casfs.xxh128 "$MNT/live_a" 2>/dev/null)
printf 'same content\n' >"$MNT/live_b"
getfattr --only-values -n user.casfs.xxh128 "$MNT/live_b" >/dev/null 2>&1
printf 'other\n' >"$MNT/live_b"
if cmp "$MNT/live_a" "$MNT/.casfs/cas/$HA" >"$T/live.err" 2>&1; then
    ok "cas: a live file's content is served after another file with it changed"
else
    fail "cas: content of live_a not served once live_b changed: $(cat "$T/live.err")"
fi
casfs_umount "$MNT" || fail "umount"

# ---- space of deleted files is released at once (generic/103, 213) --------
# A 48 MiB filesystem: a 32 MiB file written (out of order, so it must be
# re-read for its digest) and closed, removed at once, then 32 MiB written
# again: on ext4 this always succeeds.
SMALLFS=$T/small
mkdir -p "$SMALLFS" "$T/smnt"
mount -t tmpfs -o size=48m tmpfs "$SMALLFS" || fail "tmpfs"
casfs_mount_at "$T/smnt" --backing "$SMALLFS"
for round in 1 2 3; do
    "$PYTHON" - "$T/smnt/a" <<'PY' || fail "deleted space: round $round: writing a failed"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk = os.urandom(1 << 20)
for i in reversed(range(32)):          # back to front: not a stream
    os.pwrite(fd, chunk, i << 20)
os.close(fd)
PY
    rm "$T/smnt/a"
    if dd if=/dev/zero of="$T/smnt/b" bs=1M count=32 conv=fsync status=none 2>"$T/dd.err"; then
        ok "deleted space: round $round: 32 MiB written right after removing 32 MiB"
    else
        fail "deleted space: round $round: $(cat "$T/dd.err")"
    fi
    rm -f "$T/smnt/b"
done
casfs_umount "$T/smnt" || fail "umount small"

# ---- -o writeback on a full disk: the error reaches fsync, or close -------
# With the writeback cache, write(2) returns once the bytes are in the page
# cache; the backing's ENOSPC comes later and must reach the program at its
# fsync, or at its close when it does not fsync.  What the backing holds is
# exactly a prefix of what was written.
casfs_mount_at "$T/smnt" --backing "$SMALLFS" -o writeback
for how in fsync close; do
    "$PYTHON" - "$T/smnt/full" "$how" <<'PY' >"$T/full.out" 2>&1
import errno, os, sys
path, how = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk = b"x" * (1 << 20)
errs = {"write": None, "fsync": None, "close": None}
for i in range(80):                    # 80 MiB into 48 MiB
    try:
        os.write(fd, chunk)
    except OSError as e:
        errs["write"] = e.errno
        break
if how == "fsync":
    try:
        os.fsync(fd)
    except OSError as e:
        errs["fsync"] = e.errno
try:
    os.close(fd)
except OSError as e:
    errs["close"] = e.errno
print(" ".join("%s=%s" % (k, errno.errorcode.get(v, v)) for k, v in errs.items()))
sys.exit(0 if errno.ENOSPC in errs.values() else 1)
PY
    rc=$?
    if [ $rc -eq 0 ]; then
        ok "writeback full disk ($how): ENOSPC reported: $(cat "$T/full.out")"
    else
        fail "writeback full disk ($how): no ENOSPC at write, fsync or close: $(cat "$T/full.out")"
    fi
    if [ -z "$(tr -d x <"$SMALLFS/full" | head -c 1)" ]; then
        ok "writeback full disk ($how): the backing holds a prefix of what was written ($(stat -c %s "$SMALLFS/full") bytes)"
    else
        fail "writeback full disk ($how): the backing holds bytes that were never written"
    fi
    rm -f "$T/smnt/full"
done
# space again: a small write lands whole
echo hello >"$T/smnt/small"
[ "$(cat "$SMALLFS/small")" = hello ] && ok "writeback: after the full disk, a small write reaches the backing" ||
    fail "writeback: after the full disk, the backing holds '$(cat "$SMALLFS/small")'"
casfs_umount "$T/smnt" || fail "umount small"
umount "$SMALLFS" && SMALLFS=""

casfs_finish
