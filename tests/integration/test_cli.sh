#!/bin/bash
# The casfs command line: error cases (one "casfs: " line on stderr, exit 2
# for usage errors of every command and 1 for failures, nothing mounted),
# SIGTERM to a foreground daemon, status, stats --json, -o ro, CASFS_STORE,
# the mount.casfs helper, the digest xattr, the kernel's generic mount
# options (dev, suid, exec, atime, sync, lazytime, remount) and the mount's
# source (the backing directory: findmnt -S, df, umount).
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-240}
. "$(dirname "$0")/lib.sh"

FGPID=""
BUSYPID=""
casfs_extra_cleanup() {
    [ -n "$FGPID" ] && kill_job "$FGPID"
    [ -n "$BUSYPID" ] && kill_job "$BUSYPID"
}

casfs_setup

our_mounts() {
    mount_points | grep -F -- "$T/" | LC_ALL=C sort
}

# expect_error NAME RC CMD...: CMD exits with status RC (1: failure, 2:
# usage error) and exactly one stderr line starting "casfs: " (for RC 2
# ending with "(see 'casfs ...')"), and changes no mount below $T.
expect_error() {
    local name=$1 want=$2
    shift 2
    local before after rc nlines first
    before=$(our_mounts)
    timeout 30 "$@" >"$T/err.stdout" 2>"$T/err.stderr"
    rc=$?
    after=$(our_mounts)
    nlines=$(wc -l <"$T/err.stderr")
    first=$(head -n 1 "$T/err.stderr")
    if [ $rc -eq 124 ]; then
        fail "$name: timed out"
    elif [ $rc -ne "$want" ]; then
        fail "$name: exited $rc, expected $want (stderr: $(tr '\n' '|' <"$T/err.stderr"))"
    elif [ "$want" -eq 2 ] && ! [[ "$first" =~ \(see\ \'casfs\ ([a-z]+\ --help|help)\'\)$ ]]; then
        fail "$name: a usage error does not point to the help: $first"
    elif [ "$nlines" -ne 1 ]; then
        fail "$name: expected one stderr line, got $nlines: $(head -c 300 "$T/err.stderr" | tr '\n' '|')"
    elif [ "${first#casfs: }" = "$first" ]; then
        fail "$name: stderr does not start with 'casfs: ': $first"
    else
        ok "$name (rc=$rc: $first)"
    fi
    if [ "$before" != "$after" ]; then
        fail "$name/nothing_mounted: mounts below $T changed: before=[$before] after=[$after]"
    else
        ok "$name/nothing_mounted"
    fi
}

# ---------------------------------------------------------- error cases ---
mkdir -p "$T/plain"
touch "$T/afile"
expect_error "mount_no_mountpoint" 2 "$CASFS" mount --store "$STORE"
# "" ("$UNSET") is no mount point: not the current directory
expect_error "usage_mount_empty_mountpoint" 2 env -C "$T/plain" "$CASFS" mount --store "$STORE" ""
is_mounted "$T/plain" && "$CASFS" umount "$T/plain"
expect_error "usage_umount_empty_mountpoint" 2 env -C "$T/plain" "$CASFS" umount ""
expect_error "mount_two_mountpoints" 2 "$CASFS" mount --store "$STORE" "$T/plain" "$T/plain"
expect_error "mount_missing_mountpoint" 1 "$CASFS" mount --store "$STORE" "$T/does-not-exist"
expect_error "mount_mountpoint_is_file" 1 "$CASFS" mount --store "$STORE" "$T/afile"
expect_error "mount_unknown_o_option" 2 "$CASFS" mount --store "$STORE" -o bogus_option "$T/plain"
expect_error "mount_unknown_o_option_in_list" 2 "$CASFS" mount --store "$STORE" -o ro,nonsense=3 "$T/plain"
expect_error "mount_o_missing_value" 2 "$CASFS" mount --store "$STORE" "$T/plain" -o
expect_error "mount_bad_ingest" 2 "$CASFS" mount --store "$STORE" --ingest=some "$T/plain"
expect_error "mount_bad_timeout" 2 "$CASFS" mount --store "$STORE" -o timeout=soon "$T/plain"
expect_error "mount_kernel_option" 2 "$CASFS" mount --store "$STORE" -o user_id=0 "$T/plain"
expect_error "mount_missing_backing" 1 "$CASFS" mount --store "$STORE" --backing "$T/no-backing" "$T/plain"
expect_error "unknown_subcommand" 2 "$CASFS" frobnicate
expect_error "no_command" 2 "$CASFS"
expect_error "help_with_argument" 2 "$CASFS" help mount
expect_error "umount_not_mounted" 1 "$CASFS" umount "$T/plain"
expect_error "umount_no_mountpoint" 2 "$CASFS" umount
expect_error "remount_not_mounted" 1 "$CASFS" mount -o remount,ro "$T/plain"
expect_error "stats_not_a_mount" 1 "$CASFS" stats "$T/plain"
expect_error "status_argument" 2 "$CASFS" status "$T/plain"
expect_error "hash_missing_file_first" 1 "$CASFS" hash "$T/no-such-file"
expect_error "helper_no_mountpoint" 2 "$CASFS_BINDIR/mount.casfs" "$T/plain"
expect_error "helper_relative_source" 2 "$CASFS_BINDIR/mount.casfs" plain "$T/plain" -o "store=$STORE"
expect_error "helper_word_casfs" 2 "$CASFS_BINDIR/mount.casfs" casfs "$T/plain" -o "store=$STORE"
expect_error "fuse3_convention_word_casfs" 2 "$CASFS" casfs "$T/plain" -o "store=$STORE"
# every command: an unknown option is a usage error (exit 2, one line that
# points to the command's --help)
for cmd in mount umount stats hash put get gc fsck store; do
    expect_error "usage_$cmd" 2 "$CASFS" "$cmd" --no-such-option
done
expect_error "usage_status" 2 "$CASFS" status --no-such-option
# a short option in a group is named alone
expect_error "usage_mount_short_group" 2 "$CASFS" mount -fx "$T/plain"
check "usage_mount_short_group/names_it" grep -q "unknown option '-x' for mount" "$T/err.stderr"
expect_error "usage_mount_missing_value" 2 "$CASFS" mount -o
check "usage_mount_missing_value/names_it" grep -q "option '-o' needs a value" "$T/err.stderr"
expect_error "usage_hash_no_file" 2 "$CASFS" hash
expect_error "usage_put_no_file" 2 "$CASFS" put --store "$STORE"
expect_error "usage_get_one_arg" 2 "$CASFS" get --store "$STORE" 0123456789abcdef0123456789abcdef
expect_error "usage_get_bad_hex" 2 "$CASFS" get --store "$STORE" 0123456789abcdef0123456789abcdeX "$T/x"
expect_error "usage_gc_argument" 2 "$CASFS" gc --store "$STORE" extra
expect_error "usage_fsck_argument" 2 "$CASFS" fsck --store "$STORE" extra
expect_error "usage_store_argument" 2 "$CASFS" store "$STORE"
for cmd in mount umount status stats hash put get gc fsck store; do
    if timeout 10 "$CASFS" "$cmd" --help >"$T/h.out" 2>"$T/h.err" && grep -q "^usage: casfs $cmd" "$T/h.out" &&
        grep -q "^Exit status: 0 " "$T/h.out" && [ ! -s "$T/h.err" ]; then
        ok "help_$cmd (usage and exit status on stdout, exit 0)"
    else
        fail "help_$cmd: $(head -c 300 "$T/h.out" "$T/h.err" | tr '\n' '|')"
    fi
done
if timeout 10 "$CASFS" help >"$T/h.out" && grep -q "^  2  usage error" "$T/h.out" && grep -q "^  1  failure" "$T/h.out"; then
    ok "help_documents_exit_status"
else
    fail "help_documents_exit_status: $(grep -i exit "$T/h.out" | tr '\n' '|')"
fi
if [ -e "$T/afile" ] && [ -f "$T/afile" ]; then ok "file_untouched"; else fail "file_untouched: $T/afile changed"; fi

# already a casfs mount
if casfs_mount; then
    ok "mount"
    expect_error "mount_already_mounted" 1 "$CASFS" mount --store "$STORE" "$MNT"
    check_eq "already_mounted_single_mount" 1 "$(mount_count "$MNT")"
    if echo hi >"$MNT/still-works" && [ "$(cat "$MNT/still-works")" = hi ]; then
        ok "first_mount_still_works"
    else
        fail "first_mount_still_works"
    fi
else
    fail "mount: casfs mount failed"
fi

# ---------------------------------------------------------------- status ---
PID=$(casfs_recorded_pid "$MNT")
line=$(timeout 20 "$CASFS" status | awk -v m="$MNT" '$1 == m')
want="$MNT  backing=$MNT  store=$STORE  pid=$PID"
if [ -n "$PID" ] && [ "$line" = "$want" ]; then
    ok "status_line ($line)"
else
    fail "status_line: expected '$want', got '$line'"
fi
if [ -n "$PID" ] && [ "$(cat "/proc/$PID/comm" 2>/dev/null)" != "" ]; then ok "status_pid_alive"; else fail "status_pid_alive: pid '$PID'"; fi

# ----------------------------------------------------------------- stats ---
# a directory and a file that exist in the backing dir before mounting, so
# reading them needs READ/READDIR requests (not the page cache)
B2=$T/b2
M2=$T/m2
mkdir -p "$B2/dir" "$M2"
for i in $(seq 50); do echo "entry $i" >"$B2/dir/e$i"; done
head -c 3000000 /dev/urandom >"$B2/blob"
# below kernel passthrough's size: its reads reach the daemon as READs
head -c 200000 /dev/urandom >"$B2/small"
if casfs_mount_at "$M2" --backing "$B2"; then
    ok "mount_with_backing"
    line=$(timeout 20 "$CASFS" status | awk -v m="$M2" '$1 == m')
    case "$line" in
        "$M2  backing=$B2  store=$STORE  pid="[0-9]*) ok "status_backing ($line)" ;;
        *) fail "status_backing: got '$line'" ;;
    esac
    if timeout 20 "$CASFS" stats --json "$M2" >"$T/s1.json" 2>"$T/stats.err" &&
        "$PYTHON" -m json.tool "$T/s1.json" >/dev/null 2>&1; then
        ok "stats_json_valid"
    else
        fail "stats_json_valid: $(head -c 300 "$T/s1.json" "$T/stats.err" | tr '\n' ' ')"
    fi
    # work: lookups, readdir, reads, writes
    ls -l "$M2/dir" >/dev/null
    cmp -s "$B2/blob" "$M2/blob" || true
    cat "$M2/blob" "$M2/small" >/dev/null
    head -c 2000000 /dev/urandom >"$M2/written"
    sync "$M2/written"
    timeout 20 "$CASFS" stats --json "$M2" >"$T/s2.json"
    check "stats_json_valid_after_work" "$PYTHON" -m json.tool "$T/s2.json"
    out=$("$PYTHON" - "$T/s1.json" "$T/s2.json" "$M2" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
mnt = sys.argv[3]
def find(doc):
    ms = [m for m in doc.get("mounts", []) if m.get("mountpoint") == mnt]
    if len(ms) != 1:
        raise SystemExit("FAIL stats_has_mount: %d entries for %s in %r" % (len(ms), mnt, doc)[:300])
    return ms[0]
ma, mb = find(a), find(b)
print("ok stats_has_mount")
need = ["lookup", "getattr", "readdir", "readdirplus", "open", "read", "write",
        "bytes_read", "bytes_written", "nodes", "fd_cache_open", "fd_cache_hits",
        "fd_cache_misses"]
missing = [k for k in need if not isinstance(mb.get("counters", {}).get(k), int)]
print("FAIL stats_counter_keys: missing/non-integer %s" % missing if missing else "ok stats_counter_keys")
print("ok stats_pid" if isinstance(mb.get("pid"), int) and mb["pid"] > 0 else "FAIL stats_pid: %r" % mb.get("pid"))
ca, cb = ma.get("counters", {}), mb.get("counters", {})
for k in ["lookup", "open", "read", "write", "bytes_read", "bytes_written"]:
    if isinstance(ca.get(k), int) and isinstance(cb.get(k), int) and cb[k] > ca[k]:
        print("ok stats_grew_%s (%d -> %d)" % (k, ca[k], cb[k]))
    else:
        print("FAIL stats_grew_%s: %r -> %r" % (k, ca.get(k), cb.get(k)))
rd = lambda c: (c.get("readdir") or 0) + (c.get("readdirplus") or 0)
print("ok stats_grew_readdir" if rd(cb) > rd(ca) else "FAIL stats_grew_readdir: %d -> %d" % (rd(ca), rd(cb)))
if cb.get("bytes_written", 0) - ca.get("bytes_written", 0) >= 2000000:
    print("ok stats_bytes_written_amount")
else:
    print("FAIL stats_bytes_written_amount: grew by %d, wrote 2000000" % (cb.get("bytes_written", 0) - ca.get("bytes_written", 0)))
PY
)
    echo "$out" | while IFS= read -r l; do echo "$l"; done
    PASS=$((PASS + $(echo "$out" | grep -c '^ok ')))
    FAILS=$((FAILS + $(echo "$out" | grep -c '^FAIL ')))
    # all mounts (no MOUNTPOINT): judged in a throwaway mount namespace
    # where the machine's other casfs mounts (other users', other versions',
    # ones going away) are detached, so exactly ours are listed, with exit 0
    only_ours() {
        unshare --mount --propagation private sh -c '
            t=$1; shift
            for m in $("$CASFS_BIN" status | awk "{ print \$1 }"); do
                case "$m" in "$t"/*) ;; *) umount -l "$m" 2>/dev/null ;; esac
            done
            exec "$@"' sh "$T" "$@"
    }
    export CASFS_BIN=$CASFS
    if only_ours timeout 20 "$CASFS" stats >"$T/stats.txt" 2>&1 && grep -qF "$MNT  (pid " "$T/stats.txt" &&
        grep -qF "$M2  (pid " "$T/stats.txt"; then
        ok "stats_text"
    else
        fail "stats_text: $(head -c 300 "$T/stats.txt")"
    fi
    only_ours timeout 20 "$CASFS" stats --json >"$T/all.json" 2>"$T/all.err"
    rc=$?
    if [ $rc -eq 0 ] && "$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ms = [m["mountpoint"] for m in d["mounts"]]
sys.exit(0 if sorted(ms) == sorted(sys.argv[2:]) else 1)' "$T/all.json" "$MNT" "$M2"; then
        ok "stats_json_all_mounts"
    else
        fail "stats_json_all_mounts: rc=$rc: $(head -c 300 "$T/all.json" "$T/all.err" | tr '\n' '|')"
    fi

    # digest xattr (docs/DIGESTS.md)
    want=$(xxh128sum "$M2/written" 2>/dev/null | cut -d' ' -f1)
    got=$(getfattr --absolute-names --only-values -n user.casfs.xxh128 "$M2/written" 2>&1)
    check_eq "digest_xattr_written_file" "$want" "$got"
    want=$(xxh128sum "$B2/blob" 2>/dev/null | cut -d' ' -f1)
    got=$(getfattr --absolute-names --only-values -n user.casfs.xxh128 "$M2/blob" 2>&1)
    check_eq "digest_xattr_preexisting_file" "$want" "$got"
    printf 'changed' | dd of="$M2/written" bs=1 seek=1000 conv=notrunc status=none
    want=$(xxh128sum "$M2/written" 2>/dev/null | cut -d' ' -f1)
    got=$(getfattr --absolute-names --only-values -n user.casfs.xxh128 "$M2/written" 2>&1)
    check_eq "digest_xattr_after_overwrite" "$want" "$got"

    if casfs_umount "$M2"; then ok "umount_m2"; else fail "umount_m2"; fi
    [ -s "$B2/written" ] && ok "backing_got_written_file" || fail "backing_got_written_file"
    if [ "$(find "$M2" -mindepth 1 | wc -l)" = 0 ]; then ok "mountpoint_untouched"; else fail "mountpoint_untouched: $M2 not empty"; fi
else
    fail "mount_with_backing: casfs mount --backing failed"
fi

# --------------------------------------------------------------- -o ro ---
M3=$T/m3
mkdir -p "$M3"
echo "ro data" >"$M3/existing"
if casfs_mount_at "$M3" -o ro; then
    ok "mount_ro"
    err=$(sh -c "echo x > '$M3/new'" 2>&1)
    case "$err" in *"Read-only file system"*) ok "ro_create_erofs" ;; *) fail "ro_create_erofs: $err" ;; esac
    err=$(sh -c "echo x >> '$M3/existing'" 2>&1)
    case "$err" in *"Read-only file system"*) ok "ro_write_erofs" ;; *) fail "ro_write_erofs: $err" ;; esac
    check_eq "ro_read" "ro data" "$(cat "$M3/existing")"
    casfs_umount "$M3" || fail "umount_ro"
    [ ! -e "$M3/new" ] && ok "ro_nothing_created" || fail "ro_nothing_created"
else
    fail "mount_ro: casfs mount -o ro failed"
fi

# --------------------------------------------------------- CASFS_STORE ---
M4=$T/m4
S4=$T/store4
mkdir -p "$M4" "$S4"
if CASFS_STORE=$S4 timeout 60 "$CASFS" mount "$M4"; then
    _casfs_register "$M4" ""
    line=$(timeout 20 "$CASFS" status | awk -v m="$M4" '$1 == m')
    case "$line" in *"store=$S4 "*) ok "casfs_store_env ($line)" ;; *) fail "casfs_store_env: $line" ;; esac
    casfs_umount "$M4" || fail "umount_m4"
else
    fail "casfs_store_env: mount with CASFS_STORE failed"
fi

# ------------------------------------------------------- lazy umount ---
M5=$T/m5
mkdir -p "$M5"
if casfs_mount_at "$M5"; then
    P5=$(casfs_recorded_pid "$M5")
    if timeout 60 "$CASFS" umount --lazy "$M5" && ! is_mounted "$M5"; then
        ok "umount_lazy"
        casfs_forget "$M5"
    else
        fail "umount_lazy"
    fi
    if [ -n "$P5" ] && wait_pid_gone "$P5"; then ok "umount_lazy_daemon_exits"; else fail "umount_lazy_daemon_exits: pid $P5"; fi
else
    fail "umount_lazy: casfs mount $M5 failed"
fi

# ------------------------------------------- a daemon's fatal signal ---
# (its own store, outside $T's stores: the crash report of lib.sh would
# take this deliberate one for a failure; the log is checked, then removed)
M9=$T/m9
CS=$T/crashlog/store
mkdir -p "$M9" "$CS"
if casfs_mount_at "$M9" --store "$CS"; then
    P9=$(casfs_recorded_pid "$M9")
    # no core file from this one (the daemon's working directory is /)
    [ -n "$P9" ] && prlimit --pid "$P9" --core=0:0
    if [ -n "$P9" ] && kill -SEGV "$P9" && wait_pid_gone "$P9"; then
        log9=$(cat "$CS/casfsd.log")
        case "$log9" in
            *"daemon $P9: fatal signal 11 (SIGSEGV)"*"casfs("*) ok "a daemon's fatal signal: named in casfsd.log with its stack" ;;
            *) fail "a daemon's fatal signal: casfsd.log says: $(echo "$log9" | tail -n 3 | tr '\n' ' ')" ;;
        esac
    else
        fail "a daemon's fatal signal: no daemon pid, or it survived SIGSEGV"
    fi
    check "a daemon's fatal signal: casfs umount clears the stale mount" casfs_umount "$M9"
    rm -f "$CS/casfsd.log"
else
    fail "a daemon's fatal signal: casfs mount $M9 failed"
fi

# ------------------------------------------------ SIGTERM, foreground ---
M6=$T/m6
mkdir -p "$M6"
"$CASFS" mount -f --store "$STORE" "$M6" >"$T/fg.out" 2>&1 &
FGPID=$!
fg_up() { is_mounted "$M6" || ! kill -0 "$FGPID" 2>/dev/null; }
wait_for "the foreground mount" fg_up
if is_mounted "$M6"; then
    ok "foreground_mounted"
    _casfs_register "$M6" ""
    check_eq "foreground_status_pid" "$FGPID" "$(casfs_recorded_pid "$M6")"
    echo "fg data" >"$M6/f" && ok "foreground_write" || fail "foreground_write"
    kill -TERM "$FGPID"
    if ! wait_pid_gone "$FGPID"; then
        fail "sigterm_exits: foreground daemon still running long after SIGTERM"
    else
        wait "$FGPID"
        rc=$?
        FGPID=""
        # SIGTERM is how a foreground daemon is told to stop: it unmounts
        # and exits 0 (fs_run turns libfuse's signal number into success)
        check_eq "sigterm_exit_status_0 ($(tail -n 2 "$T/fg.out" | tr '\n' ' '))" 0 "$rc"
    fi
    if is_mounted "$M6"; then
        fail "sigterm_unmounts: still mounted"
    else
        ok "sigterm_unmounts"
        casfs_forget "$M6"
        check_eq "sigterm_data_in_backing" "fg data" "$(cat "$M6/f" 2>&1)"
    fi
else
    fail "foreground_mounted: casfs mount -f did not mount within 10 s: $(tail -n 3 "$T/fg.out" | tr '\n' ' ')"
fi

# ------------------------------------------------------- mount.casfs ---
HELPER=$CASFS_BINDIR/mount.casfs
M7=$T/m7
B7=$T/b7
S7=$T/store7
mkdir -p "$M7" "$B7" "$S7"
echo "helper" >"$B7/h"
if [ -x "$HELPER" ]; then
    if timeout 60 "$HELPER" "$B7" "$M7" -o "store=$S7"; then
        if is_mounted "$M7"; then ok "mount_casfs_helper"; else fail "mount_casfs_helper: exited 0 but nothing mounted"; fi
        _casfs_register "$M7" ""
        check_eq "helper_sees_backing" "helper" "$(cat "$M7/h" 2>&1)"
        line=$(timeout 20 "$CASFS" status | awk -v m="$M7" '$1 == m')
        case "$line" in
            "$M7  backing=$B7  store=$S7  pid="[0-9]*) ok "helper_status ($line)" ;;
            *) fail "helper_status: got '$line'" ;;
        esac
        check_eq "helper_fstype" "fuse.casfs" "$(awk -v m="$M7" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }' /proc/self/mountinfo)"
        casfs_umount "$M7" && ok "helper_umount" || fail "helper_umount"
    else
        fail "mount_casfs_helper: $HELPER exited non-zero"
    fi
else
    fail "mount_casfs_helper: $HELPER missing"
fi
HELPER2=$CASFS_BINDIR/mount.fuse.casfs
if [ -x "$HELPER2" ]; then
    if timeout 60 "$HELPER2" "$B7" "$M7" -o "store=$S7,ro" && is_mounted "$M7"; then
        ok "mount_fuse_casfs_helper_ro"
        _casfs_register "$M7" ""
        if sh -c "echo x > '$M7/new'" 2>/dev/null; then fail "helper_ro_option: write succeeded"; else ok "helper_ro_option"; fi
        casfs_umount "$M7" || fail "helper2_umount"
    else
        fail "mount_fuse_casfs_helper_ro"
    fi
else
    fail "mount_fuse_casfs_helper: $HELPER2 missing"
fi

# ----------------------------------------- umount while files are open ---
M8=$T/m8
mkdir -p "$M8"
if casfs_mount_at "$M8"; then
    echo "busy" >"$M8/held"
    sleep 300 <"$M8/held" &
    BUSYPID=$!
    holding() { [ "$(readlink "/proc/$BUSYPID/fd/0" 2>/dev/null)" = "$M8/held" ]; }
    wait_for "the holder to open $M8/held" holding
    out=$(timeout 60 "$CASFS" umount "$M8" 2>&1)
    rc=$?
    # a root umount of a busy mount is refused (EBUSY, never detached behind
    # the caller's back): one error line naming --lazy, exit 1, and the
    # mount keeps working
    if [ $rc -eq 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && [ "${out#casfs: }" != "$out" ] &&
        [[ "$out" == *"is busy"*"--lazy"* ]] && is_mounted "$M8" && [ "$(cat "$M8/held" 2>&1)" = busy ]; then
        ok "umount_busy_refused_cleanly ($out)"
    else
        fail "umount_busy_refused_cleanly: rc=$rc out='$out' mounted=$(is_mounted "$M8" && echo yes || echo no)"
    fi
    kill "$BUSYPID" 2>/dev/null
    wait "$BUSYPID" 2>/dev/null
    BUSYPID=""
    if is_mounted "$M8"; then
        if casfs_umount "$M8"; then ok "umount_after_busy"; else fail "umount_after_busy"; fi
    else
        casfs_forget "$M8"
    fi
else
    fail "umount_busy: casfs mount $M8 failed"
fi

# ------------------------------------------------ ENOSPC in the backing ---
M9=$T/m9
B9=$T/b9
mkdir -p "$M9" "$B9"
if mount -t tmpfs -o size=1m casfs-test-tmpfs "$B9"; then
    if casfs_mount_at "$M9" --backing "$B9"; then
        P9=$(casfs_recorded_pid "$M9")
        err=$(dd if=/dev/zero of="$M9/fill" bs=64k count=48 conv=fsync 2>&1)
        rc=$?
        case "$err" in
            *"No space left on device"*) ok "enospc_reported (dd rc=$rc)" ;;
            *) fail "enospc_reported: dd rc=$rc: $(echo "$err" | tail -n 2 | tr '\n' ' ')" ;;
        esac
        [ -d "/proc/$P9" ] && ok "enospc_daemon_alive" || fail "enospc_daemon_alive: daemon died"
        rm -f "$M9/fill"
        # the daemon closes its descriptor of the removed file when the
        # kernel's asynchronous RELEASE arrives
        space_back() { [ "$(stat -f -c %f "$B9")" -gt 100 ]; }
        wait_for "the removed file's space" space_back
        if echo "after enospc" >"$M9/small" && [ "$(cat "$M9/small")" = "after enospc" ]; then
            ok "enospc_recovers"
        else
            fail "enospc_recovers"
        fi
        bs=$(stat -f -c '%S %b' "$M9")
        total=$(( ${bs% *} * ${bs#* } ))
        if [ "$total" -ge 900000 ] && [ "$total" -le 1100000 ]; then
            ok "statfs_reports_backing ($total bytes)"
        else
            fail "statfs_reports_backing: total $total bytes, backing is a 1 MiB tmpfs"
        fi
        casfs_umount "$M9" || fail "umount_m9"
    else
        fail "enospc: casfs mount --backing tmpfs failed"
    fi
    umount "$B9" || umount -l "$B9"
elif [ "$(id -u)" = 0 ]; then
    fail "enospc: root cannot mount a 1 MiB tmpfs as the backing directory"
else
    skip "enospc" "needs root to mount a 1 MiB tmpfs as the backing directory"
fi

# ------------------------------------- the kernel's generic mount options ---
# mount_field MNT N: field N of MNT's /proc/self/mountinfo line (6: the
# mount's options; after " - ": type, source, superblock options)
mnt_opts() { awk -v m="$1" '$5 == m { print $6 }' /proc/self/mountinfo; }
sb_opts() { awk -v m="$1" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 3); exit } }' /proc/self/mountinfo; }
mnt_source() { findmnt -n -o SOURCE --mountpoint "$1"; }
has_opt() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }
# expect_opts NAME OPTS HAVE... : every HAVE (or !NOTHAVE) holds in OPTS
expect_opts() {
    local name=$1 opts=$2 o bad=""
    shift 2
    for o in "$@"; do
        case "$o" in
            !*) has_opt "$opts" "${o#!}" && bad="$bad $o" ;;
            *) has_opt "$opts" "$o" || bad="$bad $o" ;;
        esac
    done
    if [ -z "$bad" ]; then ok "$name ($opts)"; else fail "$name: $opts lacks:$bad"; fi
}
GO=$T/go
mkdir -p "$GO"
chmod 755 "$T"
# a device node (like /dev/null), a set-user-ID copy of id(1) and a script
mknod "$GO/null" c 1 3 && chmod 666 "$GO/null"
cp /usr/bin/id "$GO/id-suid" && chown root:root "$GO/id-suid" && chmod 4755 "$GO/id-suid"
printf '#!/bin/sh\necho ran\n' >"$GO/script" && chmod 755 "$GO/script"
NOBODY_UID=$(id -u nobody)

# casfs mount's default: nosuid,nodev, exec
if casfs_mount_at "$GO" -o allow_other; then
    expect_opts "default_mount_nosuid_nodev" "$(mnt_opts "$GO")" nosuid nodev '!noexec'
    err=$(sh -c "echo x > '$GO/null'" 2>&1)
    case "$err" in *"Permission denied"*) ok "default_nodev_refuses_device" ;; *) fail "default_nodev_refuses_device: $err" ;; esac
    check_eq "default_nosuid_ignores_setuid" "$NOBODY_UID" "$(runuser -u nobody -- "$GO/id-suid" -u 2>&1)"
    check_eq "default_exec" "ran" "$("$GO/script" 2>&1)"
    casfs_umount "$GO" || fail "umount_go_default"
else
    fail "mount_go_default"
fi
# dev, suid: root mounts honour them
if casfs_mount_at "$GO" -o allow_other,dev,suid; then
    expect_opts "dev_suid_in_mountinfo" "$(mnt_opts "$GO")" '!nosuid' '!nodev' '!noexec'
    if sh -c "echo x > '$GO/null'" 2>"$T/dev.err" && [ -c "$GO/null" ]; then
        ok "dev_opens_device (wrote to the mount's null device)"
    else
        fail "dev_opens_device: $(cat "$T/dev.err")"
    fi
    check_eq "suid_runs_setuid_as_owner" 0 "$(runuser -u nobody -- "$GO/id-suid" -u 2>&1)"
    casfs_umount "$GO" || fail "umount_go_dev"
else
    fail "mount_go_dev_suid"
fi
if casfs_mount_at "$GO" -o noexec; then
    expect_opts "noexec_in_mountinfo" "$(mnt_opts "$GO")" noexec
    err=$("$GO/script" 2>&1)
    case "$err" in *"Permission denied"*) ok "noexec_refuses_exec" ;; *) fail "noexec_refuses_exec: $err" ;; esac
    casfs_umount "$GO" || fail "umount_go_noexec"
else
    fail "mount_go_noexec"
fi
# atime settings, sync, dirsync, lazytime: on the mount and its superblock
for variant in "noatime,nodiratime:noatime nodiratime:" "strictatime,nodiratime:!relatime !noatime nodiratime:" \
    "relatime:relatime !noatime:" "sync,dirsync,lazytime::sync dirsync lazytime" \
    "defaults,noatime,nodiratime,nofail,_netdev,x-systemd.automount:noatime nodiratime:"; do
    o=${variant%%:*}
    rest=${variant#*:}
    want_mnt=${rest%%:*}
    want_sb=${rest#*:}
    if casfs_mount_at "$GO" -o "$o"; then
        # shellcheck disable=SC2086
        expect_opts "generic_$o/mount" "$(mnt_opts "$GO")" $want_mnt
        # shellcheck disable=SC2086
        [ -n "$want_sb" ] && expect_opts "generic_$o/superblock" "$(sb_opts "$GO")" $want_sb
        echo data >"$GO/written" && check_eq "generic_$o/works" data "$(cat "$GO/written")"
        casfs_umount "$GO" || fail "generic_$o/umount"
    else
        fail "generic_$o: casfs mount -o $o failed"
    fi
done
# remount: the generic options change on a live mount, casfs's stay
if casfs_mount_at "$GO"; then
    GOPID=$(casfs_recorded_pid "$GO")
    echo before >"$GO/remount-file"
    check "remount_ro" timeout 30 "$CASFS" mount -o remount,ro "$GO"
    expect_opts "remount_ro/mountinfo" "$(mnt_opts "$GO")" ro nosuid nodev
    err=$(sh -c "echo x >> '$GO/remount-file'" 2>&1)
    case "$err" in *"Read-only file system"*) ok "remount_ro/erofs" ;; *) fail "remount_ro/erofs: $err" ;; esac
    check_eq "remount_ro/same_daemon" "$GOPID" "$(casfs_pid_of "$GO")"
    check "remount_rw_noatime" timeout 30 "$CASFS" mount -o remount,rw,noatime "$GO"
    expect_opts "remount_rw/mountinfo" "$(mnt_opts "$GO")" rw noatime nosuid nodev
    echo after >>"$GO/remount-file" && check_eq "remount_rw/writes" "before after" "$(tr '\n' ' ' <"$GO/remount-file" | sed 's/ $//')"
    expect_error "remount_dirsync_refused" 1 "$CASFS" mount -o remount,dirsync "$GO"
    casfs_umount "$GO" || fail "umount_go_remount"
else
    fail "mount_go_remount"
fi
# what an unprivileged mount cannot honour is refused before anything else
NOBODY_CASFS=$(casfs_for_user nobody)
for o in dev suid strictatime lazytime nodiratime; do
    expect_error "unprivileged_refuses_$o" 1 runuser -u nobody -- "$NOBODY_CASFS" mount --store "$T/nobody-store" -o "$o" "$GO"
done

# --------------------------------------- the mount's source: the backing ---
# (spaces and commas in the path: libfuse's fsname escaping)
SB="$T/back dir,with comma"
SM="$T/src-mnt"
mkdir -p "$SB" "$SM"
echo "from the backing" >"$SB/marker"
if casfs_mount_at "$SM" --backing "$SB"; then
    check_eq "source_is_backing" "$SB" "$(mnt_source "$SM")"
    check_eq "findmnt_S_backing" "$SM" "$(findmnt -n -o TARGET -S "$SB")"
    check_eq "df_shows_backing" "$SB" "$(df --output=source "$SM" | tail -n 1)"
    line=$(timeout 20 "$CASFS" status | awk -v m="$SM" '$1 == m')
    case "$line" in "$SM  backing=$SB  store=$STORE  pid="[0-9]*) ok "source_status ($line)" ;; *) fail "source_status: '$line'" ;; esac
    check_eq "source_serves_backing" "from the backing" "$(cat "$SM/marker")"
    # util-linux 2.38's umount takes an existing directory for a mount
    # point unless told not to canonicalize: -c finds the mount by source
    if umount -c "$SB" && ! is_mounted "$SM"; then ok "umount_c_backing"; casfs_forget "$SM"; else fail "umount_c_backing"; fi
else
    fail "mount_with_spaced_backing"
fi
# the default backing (the mount point itself): umount BACKING
SD="$T/self dir,x"
mkdir -p "$SD"
echo self >"$SD/marker"
if casfs_mount_at "$SD"; then
    check_eq "self_source_is_mountpoint" "$SD" "$(mnt_source "$SD")"
    check_eq "self_findmnt_S" "$SD" "$(findmnt -n -o TARGET -S "$SD")"
    check_eq "self_serves" self "$(cat "$SD/marker")"
    check "self_casfs_stats" timeout 20 "$CASFS" stats "$SD"
    if umount "$SD" && ! is_mounted "$SD"; then ok "umount_backing"; casfs_forget "$SD"; else fail "umount_backing"; fi
else
    fail "mount_self_with_spaces"
fi

# .casfs is reserved in every directory (casfs's namespace answers there):
# creating, replacing or renaming it fails.
mkdir -p "$MNT/rsv"
: > "$MNT/rsv/x"
for step in "mkdir $MNT/.casfs" "touch $MNT/rsv/.casfs" "mv $MNT/rsv/x $MNT/rsv/.casfs" "ln -s x $MNT/rsv/.casfs" \
            "rmdir $MNT/rsv/.casfs" "mv $MNT/rsv/.casfs $MNT/rsv/y"; do
    out=$($step 2>&1) && fail "reserved: '$step' succeeded" || {
        echo "$out" | grep -Eq "Operation not permitted|File exists|Is a directory" && ok "reserved: $step refused" ||
            fail "reserved: $step: $out"; }
done
[ -e "$MNT/rsv/x" ] && ok "reserved: the file meant to replace .casfs is still there" || fail "reserved: x vanished"
rm -rf "$MNT/rsv"

if casfs_umount "$MNT"; then ok "umount"; else fail "umount"; fi
check_eq "no_mounts_left" "" "$(our_mounts)"
casfs_finish
