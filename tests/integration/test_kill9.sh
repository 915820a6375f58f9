#!/bin/bash
# Write and close many files on casfs (one fsync'd and closed, one fsync'd and
# still open), kill -9 the daemon, then: the mount is stale, `casfs status`
# says so, `casfs umount` clears it, every byte is in the backing directory
# (the mount point itself), and a new `casfs mount` shows the same data
# (digests included).  Once with the default options, once with -o writeback.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-300}
. "$(dirname "$0")/lib.sh"

HOLDER=""
casfs_extra_cleanup() {
    [ -n "$HOLDER" ] && kill_job "$HOLDER"
}

casfs_setup

# ---- reference data, generated natively
"$PYTHON" - "$NATIVE/data" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(1234)
sizes = [0, 1, 2, 511, 4095, 4096, 4097, 65535, 65536, 131073, 1 << 20, (1 << 20) + 3, 8 << 20]
os.makedirs(root)
n = 0
for d in range(12):
    dd = os.path.join(root, "dir%02d" % d, "sub%d" % (d % 3))
    os.makedirs(dd)
    for i in range(25):
        size = sizes[n % len(sizes)] if n < 60 else rnd.randrange(0, 70000)
        with open(os.path.join(dd, "f%03d.bin" % i), "wb") as f:
            f.write(rnd.randbytes(size))
        n += 1
os.symlink("dir00/sub0/f000.bin", os.path.join(root, "link"))
os.mkdir(os.path.join(root, "empty"))
PY
log "$(find "$NATIVE/data" -type f | wc -l) reference files, $(du -sh "$NATIVE/data" | cut -f1)"

# write_patterns ROOT: more files written with different patterns
cat >"$T/patterns.py" <<'PY'
import os, random, sys
root = sys.argv[1]
os.makedirs(root)
rnd = random.Random(99)
# 400 small files, each written in several writes and closed
for i in range(400):
    fd = os.open(os.path.join(root, "s%03d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
    for _ in range(3):
        os.write(fd, rnd.randbytes(rnd.randrange(1, 3000)))
    os.close(fd)
# out-of-order pwrites, a hole, a truncate
fd = os.open(os.path.join(root, "scattered"), os.O_CREAT | os.O_RDWR, 0o644)
for off in (5 << 20, 0, 3 << 20, 12345, 1 << 20):
    os.pwrite(fd, rnd.randbytes(100000), off)
os.ftruncate(fd, (5 << 20) + 50000)
os.close(fd)
# appends through O_APPEND
for i in range(20):
    fd = os.open(os.path.join(root, "appended"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    os.write(fd, rnd.randbytes(777))
    os.close(fd)
# renames, links, a rewritten file, a chmod, an xattr
os.rename(os.path.join(root, "s000"), os.path.join(root, "renamed"))
os.link(os.path.join(root, "s001"), os.path.join(root, "hardlink"))
with open(os.path.join(root, "s002"), "wb") as f:
    f.write(b"rewritten")
os.chmod(os.path.join(root, "s003"), 0o751)
os.setxattr(os.path.join(root, "s004"), "user.kept", b"yes")
# one file written and fsync'd (and closed)
fd = os.open(os.path.join(root, "fsynced"), os.O_CREAT | os.O_WRONLY, 0o600)
os.write(fd, rnd.randbytes(3 << 20))
os.fsync(fd)
os.close(fd)
PY
"$PYTHON" "$T/patterns.py" "$NATIVE/more"
"$PYTHON" -c 'import random, sys; open(sys.argv[1], "wb").write(random.Random(7).randbytes(2 << 20))' \
    "$NATIVE/more/fsynced_open"
touch "$NATIVE/more/fsynced_open.ready"
NFILES=$(find "$NATIVE" -type f | wc -l)

# verify_tree NAME DIR: DIR has exactly the reference tree
verify_tree() {
    local name=$1 dir=$2 out
    if out=$(diff -r --no-dereference "$NATIVE" "$dir" 2>&1); then
        ok "$name: tree identical ($NFILES files)"
    else
        fail "$name: $(echo "$out" | head -n 5 | tr '\n' '|')"
    fi
    (cd "$NATIVE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 xxh128sum) >"$T/sums.native" 2>/dev/null
    (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 xxh128sum) >"$T/sums.other" 2>/dev/null
    if cmp -s "$T/sums.native" "$T/sums.other"; then
        ok "$name: xxh128 of every file"
    else
        fail "$name: checksums differ: $(diff "$T/sums.native" "$T/sums.other" | head -n 4 | tr '\n' '|')"
    fi
    check_eq "$name: mode kept" "751" "$(stat -c %a "$dir/more/s003" 2>&1)"
    check_eq "$name: xattr kept" "yes" "$(getfattr --absolute-names --only-values -n user.kept "$dir/more/s004" 2>&1)"
    if [ "$(stat -c %i "$dir/more/s001")" = "$(stat -c %i "$dir/more/hardlink")" ]; then
        ok "$name: hard link kept"
    else
        fail "$name: hard link kept: s001 and hardlink are different inodes"
    fi
}

round() {
    local v=$1
    shift
    rm -rf "${MNT:?}"/* 2>/dev/null
    if ! casfs_mount "$@"; then
        fail "$v/mount: casfs mount $* failed"
        return
    fi
    ok "$v/mount"
    local PID
    PID=$(casfs_recorded_pid "$MNT")
    if [ -n "$PID" ] && [ -d "/proc/$PID" ]; then ok "$v/daemon_pid_from_status ($PID)"; else fail "$v/daemon_pid_from_status: no live pid in casfs status"; fi

    # ---- write everything through casfs
    check "$v/cp_to_casfs" cp -a "$NATIVE/data" "$MNT/data"
    check "$v/patterns_on_casfs" "$PYTHON" "$T/patterns.py" "$MNT/more"
    # one file written, fsync'd and still open when the daemon dies
    "$PYTHON" - "$MNT/more/fsynced_open" <<'PY' &
import os, random, sys, time
data = random.Random(7).randbytes(2 << 20)
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, data)
os.fsync(fd)
open(sys.argv[1] + ".ready", "w").close()
time.sleep(600)
PY
    HOLDER=$!
    wait_for "the fsync'd writer" test -e "$MNT/more/fsynced_open.ready"
    if [ -e "$MNT/more/fsynced_open.ready" ]; then ok "$v/fsync_open_file_written"; else fail "$v/fsync_open_file_written: the writer did not get ready"; fi

    # ---- kill -9
    # Deterministic: wait until every thread of the daemon is gone (its
    # /dev/fuse descriptors closed, the connection aborted), so no request
    # of ours is in flight when the kernel aborts it: a request caught in
    # flight fails with ECONNABORTED, every later one with ENOTCONN.
    if [ -z "$PID" ]; then
        fail "$v/daemon_killed: no daemon pid recorded for $MNT"
    else
        kill -KILL "$PID"
        if wait_pid_gone "$PID"; then ok "$v/daemon_killed"; else fail "$v/daemon_killed: pid $PID still alive"; fi
    fi
    local err st out rc
    err=$(stat "$MNT/data" 2>&1)
    case "$err" in
        *"Transport endpoint is not connected"*) ok "$v/mount_is_stale" ;;
        *) fail "$v/mount_is_stale: stat gave: $err" ;;
    esac
    st=$(timeout 20 "$CASFS" status 2>&1)
    if echo "$st" | awk -v m="$MNT" '$1 == m && /stale/ { f = 1 } END { exit !f }'; then
        ok "$v/status_says_stale"
    else
        fail "$v/status_says_stale: casfs status printed: $(echo "$st" | tr '\n' '|')"
    fi
    kill "$HOLDER" 2>/dev/null
    wait "$HOLDER" 2>/dev/null
    HOLDER=""

    # ---- casfs umount clears the stale mount
    out=$(timeout 60 "$CASFS" umount "$MNT" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && ! is_mounted "$MNT"; then
        ok "$v/umount_stale"
        casfs_forget "$MNT"
    else
        fail "$v/umount_stale: rc=$rc, still mounted: $(is_mounted "$MNT" && echo yes || echo no), output: $out"
        return
    fi
    verify_tree "$v/backing_after_kill" "$MNT"

    # ---- mount again: everything visible, digests right
    if ! casfs_mount "$@"; then
        fail "$v/remount: casfs mount failed after the crash"
        return
    fi
    ok "$v/remount"
    verify_tree "$v/remounted" "$MNT"
    local bad=0 f want got
    for f in "$MNT"/more/fsynced "$MNT"/more/fsynced_open "$MNT"/more/scattered "$MNT"/more/appended \
        "$MNT"/data/dir00/sub0/f00*.bin "$MNT"/more/s01*; do
        want=$(xxh128sum "$f" 2>/dev/null | cut -d' ' -f1)
        got=$(getfattr --absolute-names --only-values -n user.casfs.xxh128 "$f" 2>&1)
        if [ "$want" != "$got" ]; then
            bad=$((bad + 1))
            [ $bad -le 3 ] && log "digest mismatch $f: xxh128sum=$want user.casfs.xxh128=$got"
        fi
    done
    if [ $bad -eq 0 ]; then ok "$v/digests_after_remount"; else fail "$v/digests_after_remount: $bad files have a wrong user.casfs.xxh128"; fi
    echo "after" >"$MNT/new-after-remount"
    check_eq "$v/writable_after_remount" "after" "$(cat "$MNT/new-after-remount")"
    if casfs_umount "$MNT"; then ok "$v/umount_clean"; else fail "$v/umount_clean: casfs umount failed"; fi
    check_eq "$v/backing_has_new_file" "after" "$(cat "$MNT/new-after-remount" 2>&1)"
}

round default
round writeback -o writeback

casfs_finish
