#!/bin/bash
# 210000 files in 3000 directories (made in the backing directory before
# mounting): `find` and a stat of every entry work, twice, with the right
# counts and sizes, while the daemon's open fd count stays below 20000.
# Then the same with -o no_handles (path-based reopening).
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-900}
. "$(dirname "$0")/lib.sh"

TOP=30
SUB=100
FILES=70
FD_LIMIT=20000
SAMPLER=""
casfs_extra_cleanup() {
    [ -n "$SAMPLER" ] && kill_job "$SAMPLER"
}

casfs_setup
log "creating $((TOP * SUB * FILES)) files in $((TOP * SUB)) directories"
sizes=$("$PYTHON" - "$MNT" $TOP $SUB $FILES <<'PY'
import os, sys
root, top, sub, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
total = 0
for t in range(top):
    td = os.path.join(root, "t%02d" % t)
    os.mkdir(td)
    for s in range(sub):
        sd = os.path.join(td, "d%03d" % s)
        os.mkdir(sd)
        for f in range(files):
            size = (t + s + f) % 13
            fd = os.open(os.path.join(sd, "file-%02d.txt" % f), os.O_CREAT | os.O_WRONLY, 0o644)
            if size:
                os.write(fd, b"x" * size)
            os.close(fd)
            total += size
print(total)
PY
) || { fail "create_tree: generator failed"; casfs_finish; }
ENTRIES=$((1 + TOP + TOP * SUB + TOP * SUB * FILES))
# directory sizes are counted by find -printf too: measure them natively
DIRBYTES=$(find "$MNT" -type d -printf '%s\n' | awk '{ s += $1 } END { print s }')
WANT_BYTES=$((sizes + DIRBYTES))
check_eq "native_count" "$ENTRIES" "$(find "$MNT" | wc -l)"
log "expect $ENTRIES entries, $WANT_BYTES bytes from find -printf %s"

# sample the daemon's fd count while CMD runs; prints the maximum
with_fd_sampler() {
    local pid=$1
    shift
    (
        max=0
        while [ -d "/proc/$pid" ]; do
            n=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
            [ "$n" -gt "$max" ] && { max=$n; echo "$max" >"$T/fdmax"; }
            sleep 0.2
        done
    ) &
    SAMPLER=$!
    echo 0 >"$T/fdmax"
    "$@"
    local rc=$?
    kill "$SAMPLER" 2>/dev/null
    wait "$SAMPLER" 2>/dev/null
    SAMPLER=""
    return $rc
}

run_variant() {
    local variant=$1
    shift
    if ! casfs_mount "$@"; then
        fail "$variant/mount: casfs mount $* failed"
        return
    fi
    ok "$variant/mount"
    local pid
    pid=$(casfs_recorded_pid "$MNT")
    log "$variant: daemon pid $pid, fd limit $(awk '/Max open files/ { print $4 }' "/proc/$pid/limits" 2>/dev/null)"
    local pass count bytes t0 t1 fdmax
    for pass in 1 2; do
        t0=$(date +%s.%N)
        count=$(with_fd_sampler "$pid" timeout 300 find "$MNT" | wc -l)
        local rc=${PIPESTATUS[0]}
        t1=$(date +%s.%N)
        fdmax=$(cat "$T/fdmax")
        log "$variant pass $pass: find listed $count entries in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, max daemon fds $fdmax"
        check_eq "$variant/find_count_pass$pass" "$ENTRIES" "$count"
        if [ "$fdmax" -lt $FD_LIMIT ]; then ok "$variant/fds_below_limit_find_pass$pass ($fdmax)"; else fail "$variant/fds_below_limit_find_pass$pass: $fdmax open fds"; fi

        t0=$(date +%s.%N)
        with_fd_sampler "$pid" timeout 300 find "$MNT" -printf '%s\n' >"$T/sizes" 2>"$T/find.err"
        rc=$?
        t1=$(date +%s.%N)
        fdmax=$(cat "$T/fdmax")
        count=$(wc -l <"$T/sizes")
        bytes=$(awk '{ s += $1 } END { print s + 0 }' "$T/sizes")
        log "$variant pass $pass: stat of all took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, max daemon fds $fdmax"
        if [ $rc -eq 0 ] && [ ! -s "$T/find.err" ]; then
            ok "$variant/stat_all_pass$pass"
        else
            fail "$variant/stat_all_pass$pass: rc=$rc $(head -n 3 "$T/find.err" | tr '\n' '|')"
        fi
        check_eq "$variant/stat_all_count_pass$pass" "$ENTRIES" "$count"
        check_eq "$variant/stat_all_bytes_pass$pass" "$WANT_BYTES" "$bytes"
        if [ "$fdmax" -lt $FD_LIMIT ]; then ok "$variant/fds_below_limit_stat_pass$pass ($fdmax)"; else fail "$variant/fds_below_limit_stat_pass$pass: $fdmax open fds"; fi
    done
    # reading some files from all over the tree
    local bad=0 t s f
    for t in 0 7 29; do
        for s in 0 50 99; do
            for f in 0 33 69; do
                want=$(((t + s + f) % 13))
                got=$(wc -c <"$MNT/t$(printf %02d $t)/d$(printf %03d $s)/file-$(printf %02d $f).txt")
                [ "$got" = "$want" ] || bad=$((bad + 1))
            done
        done
    done
    check_eq "$variant/read_samples" 0 "$bad"
    if [ -d "/proc/$pid" ]; then ok "$variant/daemon_alive"; else fail "$variant/daemon_alive: daemon died"; fi
    if casfs_umount "$MNT"; then ok "$variant/umount"; else fail "$variant/umount"; fi
}

run_variant default
run_variant no_handles -o no_handles
run_variant small_cache_no_timeout -o fd_cache=64,timeout=0

casfs_finish
