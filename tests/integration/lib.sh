# shellcheck shell=bash
# Common helpers for the casfs integration tests.  Source it from a test script:
#
#     CASFS_TEST_TIMEOUT=300      # seconds, optional (default 300)
#     . "$(dirname "$0")/lib.sh"
#     casfs_setup                 # -> $T (temp dir), $MNT, $STORE, $NATIVE
#     casfs_mount [-o OPTS ...]   # mounts $MNT (backing = $MNT itself)
#     ok "name" / fail "name: detail" / check "name" cmd args...
#     skip "name" "why"           # a required check that could not run here
#     skip_optional "name" "why"  # a check the suite may lack (e.g. no loop devices)
#     wait_for "what" cmd args... # polls until cmd succeeds (bounded by the timeout)
#     casfs_finish                # cleanup, prints "N passed, N failed, N skipped", exits
#
# A script that mounts casfs as an unprivileged user sets
# CASFS_USER_FUSE=1 before sourcing: where /dev/fuse is not open to other
# users (mode 0600, as in containers without udev), the script then runs in
# a private mount namespace whose /dev/fuse is the same device at Debian's
# mode 0666; the host's device is not touched.  CASFS_MOUNT_NS=1 runs a
# script in a private mount namespace in any case (to lay files over /sbin
# or /etc/fstab there, say).
#
# Environment: CASFS (absolute path of the casfs binary, required),
# CASFS_SRC (source root; defaults to ../.. of this file).
#
# Whatever happens (failure, `exit`, SIGINT/SIGTERM, the overall timeout), the
# EXIT/INT/TERM trap runs casfs_extra_cleanup (if the test defines it),
# unmounts every mount this script made, kills only the
# daemons this script started (pids recorded from `casfs status`), removes
# the users casfs_add_user made and the temp dir.
#
# Skips: every skip is printed ("SKIP NAME: why") and counted in the closing
# line.  With CASFS_REQUIRE_CHECKS=1 (tools/test and CI set it) a script
# that skipped a required check fails.

# ---------------------------------------------------------------- timeout ---
# Re-exec the calling script under timeout(1) once.  Without --foreground,
# timeout signals its whole process group, so a hung child (find, python, ...)
# dies too and the TERM trap below gets to run the cleanup.  The meson timeout
# of every test is larger than its CASFS_TEST_TIMEOUT.
if [ -z "${_CASFS_UNDER_TIMEOUT:-}" ]; then
    export _CASFS_UNDER_TIMEOUT=1
    _fg=()
    if [ -t 0 ] || [ -t 1 ]; then _fg=(--foreground); fi   # keep ^C working
    _ns=()
    if [ "${CASFS_USER_FUSE:-}" = 1 ] && [ -c /dev/fuse ] &&
        [ "$(( $(stat -c '0%a' /dev/fuse) & 6 ))" -ne 6 ] && [ "$(id -u)" = 0 ]; then
        export _CASFS_FUSE_NS=1
        _ns=(unshare --mount --propagation private)
    elif [ "${CASFS_MOUNT_NS:-}" = 1 ]; then
        _ns=(unshare --mount --propagation private)
    fi
    exec timeout "${_fg[@]}" -k 60 "${CASFS_TEST_TIMEOUT:-300}" "${_ns[@]}" bash "$0" "$@"
fi
# seconds since the script started (under timeout): wait_for's bound
_CASFS_DEADLINE=$(( ${CASFS_TEST_TIMEOUT:-300} - 30 ))

set -u
set -o pipefail
export LC_ALL=C
umask 022

if [ -z "${CASFS:-}" ]; then
    echo "FAIL setup: \$CASFS is not set (absolute path of the casfs binary)"
    echo "0 passed, 1 failed"
    exit 1
fi
if [ ! -x "$CASFS" ]; then
    echo "FAIL setup: CASFS=$CASFS is not an executable"
    echo "0 passed, 1 failed"
    exit 1
fi
TESTDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CASFS_SRC=${CASFS_SRC:-$(cd "$TESTDIR/../.." && pwd)}
CASFS_BINDIR=$(dirname "$CASFS")
PYTHON=${PYTHON:-python3}
if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; fi

PASS=0
FAILS=0
SKIPS=0
SKIPS_REQUIRED=0
T=""
MNT=""
STORE=""
NATIVE=""
# Parallel arrays: mountpoints we mounted, their daemon pids, and the user the
# mount was made as ("" = the current user, i.e. root).
_CASFS_MNTS=()
_CASFS_PIDS=()
_CASFS_STARTS=()
_CASFS_USERS=()
_CASFS_CLEANED=0
_CASFS_USERS_MADE=()
_CASFS_FUSE_DEV=""

log() { echo "# $*"; }
# CASFS_NAME_PREFIX (e.g. "writeback/") is put before every check name.
ok() { echo "ok ${CASFS_NAME_PREFIX:-}$*"; PASS=$((PASS + 1)); }
fail() {
    echo "FAIL ${CASFS_NAME_PREFIX:-}$*"
    FAILS=$((FAILS + 1))
    # a daemon that crashed fails every later check: say why once and stop
    # (from the script itself: a subshell's exit would not stop it)
    if [ "$_CASFS_CRASHED" = 0 ] && [ "$BASHPID" = "$$" ] && _casfs_crash_report; then
        casfs_finish
    fi
}
# Daemon logs (casfsd.log of the stores below $T) that name a crash: a fatal
# signal (the daemon's handler) or a sanitizer report.  Prints each such log's
# tail once and returns 0 when there was one.
_CASFS_CRASHED=0
_casfs_crash_report() {
    [ -n "$T" ] && [ -d "$T" ] || return 1
    local f found=1
    while IFS= read -r f; do
        grep -qE 'fatal signal|ERROR: AddressSanitizer|runtime error:' "$f" 2>/dev/null || continue
        echo "# a casfs daemon crashed; the end of $f:"
        tail -n 60 "$f" | sed 's/^/#   /'
        found=0
    done < <(find "$T" -xdev -maxdepth 4 -name casfsd.log 2>/dev/null)
    [ $found = 0 ] && _CASFS_CRASHED=1
    return $found
}
# skip NAME WHY: a check the suite needs could not run here.
skip() {
    echo "SKIP ${CASFS_NAME_PREFIX:-}$1: $2"
    SKIPS=$((SKIPS + 1))
    SKIPS_REQUIRED=$((SKIPS_REQUIRED + 1))
}
# skip_optional NAME WHY: a check that needs what a machine may lack.
skip_optional() {
    echo "SKIP (optional) ${CASFS_NAME_PREFIX:-}$1: $2"
    SKIPS=$((SKIPS + 1))
}

# wait_for WHAT CMD [ARGS...]: runs CMD every 0.1 s until it succeeds.
# Returns 1 (after a comment naming WHAT) only when the script's own
# timeout is 30 s away: a slow machine gets all the time the suite allows.
wait_for() {
    local what=$1
    shift
    until "$@"; do
        if [ "$SECONDS" -ge "$_CASFS_DEADLINE" ]; then
            log "gave up waiting for $what (the script's timeout is near)"
            return 1
        fi
        sleep 0.1
    done
}

# kill_job PID [SIGNAL]: signals PID (or, with a negative PID, its process
# group) only while it is a running background job of this shell: a job
# bash has reaped is left alone, its pid may be another process's by now
# (pid_max is 32768 here; daemons' worker threads take pids too).
kill_job() {
    local pid=$1 sig=${2:-TERM}
    jobs -rp | grep -x -- "${pid#-}" >/dev/null || return 1
    kill -"$sig" -- "$pid" 2>/dev/null
}

# check NAME CMD [ARGS...]: ok if the command succeeds, FAIL otherwise.
check() {
    local name=$1
    shift
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        ok "$name"
    else
        fail "$name: '$*' exited $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
    fi
}

# check_eq NAME EXPECTED GOT
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

# The mount points in /proc/self/mountinfo, one a line, with the kernel's
# escapes of space, tab, newline and backslash undone.
mount_points() {
    awk '{ p = $5; gsub(/\\040/, " ", p); gsub(/\\011/, "\t", p); gsub(/\\134/, "\\", p); print p }' \
        /proc/self/mountinfo
}

# Is $1 (absolute, canonical path) a mount point right now?
is_mounted() {
    mount_points | grep -qxF -- "$1"
}

# Number of mount entries on exactly path $1.
mount_count() {
    mount_points | grep -cxF -- "$1"
}

# Run a command as user $1 ("" = as ourselves).
as_user() {
    local u=$1
    shift
    if [ -n "$u" ]; then
        runuser -u "$u" -- env CASFS="$CASFS" HOME=/tmp "$@"
    else
        "$@"
    fi
}

# Daemon pid of mountpoint $1 according to `casfs status` (run as user $2).
casfs_pid_of() {
    as_user "${2:-}" timeout 20 "$CASFS" status 2>/dev/null |
        awk -v m="$1" '$1 == m { for (i = 2; i <= NF; i++) if ($i ~ /^pid=[0-9]+$/) print substr($i, 5) }' |
        head -n 1
}

# Start time of process $1 (clock ticks since boot, /proc/PID/stat field
# 22), empty when it is gone.
_pid_start() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    st=${st##*) }
    echo "$st" | awk '{print $20}'
}

# Is pid $1 (still) the casfs daemon serving mountpoint $2 that was
# recorded with start time $3 (when given)?  pid_max is 32768 here: a pid
# recorded long ago may be another test's daemon by now, so a recorded pid
# counts only with its recorded start time, and only a process whose
# command line names the mountpoint or whose name is casfs.
_casfs_pid_is_ours() {
    local pid=$1 mnt=$2 start=${3:-} cmd comm
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    if [ -n "$start" ] && [ "$(_pid_start "$pid")" != "$start" ]; then
        return 1
    fi
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
    comm=$(cat "/proc/$pid/comm" 2>/dev/null)
    case "$cmd" in *"$mnt"*) return 0 ;; esac
    case "$comm" in *casfs*) return 0 ;; esac
    return 1
}

casfs_setup() {
    T=$(mktemp -d /tmp/casfs-it.XXXXXXXX) || exit 1
    T=$(realpath "$T")
    mkdir -p "$T/mnt" "$T/store" "$T/native"
    MNT=$T/mnt
    STORE=$T/store
    NATIVE=$T/native
    trap 'fail "interrupted (SIGINT)"; casfs_finish' INT
    trap 'fail "killed by SIGTERM (overall timeout of ${CASFS_TEST_TIMEOUT:-300}s?)"; casfs_finish' TERM
    trap '_casfs_cleanup' EXIT
    log "temp dir $T"
    if [ -n "${_CASFS_FUSE_NS:-}" ]; then
        # in our private mount namespace: the same device, open to users
        local mode major minor
        mode=$(stat -c %a /dev/fuse)
        major=$((16#$(stat -c %t /dev/fuse)))
        minor=$((16#$(stat -c %T /dev/fuse)))
        _CASFS_FUSE_DEV=$T/.fusedev
        mkdir -p "$_CASFS_FUSE_DEV"
        if mount -t tmpfs -o mode=755,size=64k casfs-fusedev "$_CASFS_FUSE_DEV" &&
            mknod -m 0666 "$_CASFS_FUSE_DEV/fuse" c "$major" "$minor" &&
            mount --bind "$_CASFS_FUSE_DEV/fuse" /dev/fuse; then
            log "/dev/fuse is mode $mode here (no udev), closed to users: this script runs in a private" \
                "mount namespace whose /dev/fuse is the same device ($major,$minor) at mode 0666, Debian's default"
        else
            fail "setup: cannot give this script's mount namespace a /dev/fuse open to users"
        fi
    fi
}

# Record a mount made by this script (mountpoint, user) and its daemon pid.
_casfs_register() {
    local mnt=$1 user=${2:-} pid
    pid=$(casfs_pid_of "$mnt" "$user")
    _CASFS_MNTS+=("$mnt")
    _CASFS_PIDS+=("$pid")
    _CASFS_STARTS+=("$([ -n "$pid" ] && _pid_start "$pid")")
    _CASFS_USERS+=("$user")
    log "mounted $mnt (daemon pid ${pid:-unknown}${user:+, user $user})"
}

# casfs_mount_at MNT [mount args...]: mount MNT with --store $STORE (unless
# the args contain --store).  Returns the exit status of casfs mount.
casfs_mount_at() {
    local mnt=$1
    shift
    local user=${CASFS_AS_USER:-} store_args=(--store "$STORE") a
    for a in "$@"; do [ "$a" = --store ] && store_args=(); done
    as_user "$user" timeout 60 "$CASFS" mount "${store_args[@]}" "$@" "$mnt"
    local rc=$?
    if is_mounted "$mnt"; then
        _casfs_register "$mnt" "$user"
    fi
    return $rc
}

# casfs_mount [mount args...]: mount $MNT.
casfs_mount() {
    casfs_mount_at "$MNT" "$@"
}

# casfs_counter MOUNT NAME: one counter of `casfs stats --json` (0 if absent).
casfs_counter() {
    timeout 20 "$CASFS" stats --json "$1" |
        "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['mounts'][0]['counters'].get('$2', 0))"
}

# ingest_idle MOUNT: is MOUNT's ingest queue empty (every queued file stored,
# found, skipped or failed)?
ingest_idle() {
    local m=$1 q done_
    q=$(casfs_counter "$m" ingest_queued)
    done_=$(( $(casfs_counter "$m" ingest_stored) + $(casfs_counter "$m" ingest_existing) + \
              $(casfs_counter "$m" ingest_skipped) + $(casfs_counter "$m" ingest_errors) ))
    [ "$q" -eq "$done_" ]
}
# ingest_settle MOUNT: waits until MOUNT's ingest queue is empty (bounded by
# the script's timeout).
ingest_settle() { wait_for "the ingest queue of $1" ingest_idle "$1"; }

# Forget a mount this script unmounted itself (so cleanup skips it), after
# making sure its daemon is gone.  Prints nothing.
casfs_forget() {
    local mnt=$1 i
    for i in "${!_CASFS_MNTS[@]}"; do
        if [ "${_CASFS_MNTS[$i]}" = "$mnt" ]; then
            _CASFS_MNTS[$i]=""
        fi
    done
}

# Daemon pid recorded for mountpoint $1 at mount time.
casfs_recorded_pid() {
    local i
    for i in "${!_CASFS_MNTS[@]}"; do
        if [ "${_CASFS_MNTS[$i]}" = "$1" ]; then echo "${_CASFS_PIDS[$i]}"; fi
    done | tail -n 1
}

# casfs_umount MNT: clean unmount through the CLI; forgets the mount when it
# is gone.
casfs_umount() {
    local mnt=$1 user=""
    local i
    for i in "${!_CASFS_MNTS[@]}"; do
        [ "${_CASFS_MNTS[$i]}" = "$mnt" ] && user=${_CASFS_USERS[$i]}
    done
    as_user "$user" timeout 60 "$CASFS" umount "$mnt"
    local rc=$?
    if ! is_mounted "$mnt"; then casfs_forget "$mnt"; fi
    return $rc
}

# Has process $1 exited, every thread of it?  A zombie counts as gone once
# its threads are gone too (the leader of a dying multi-threaded daemon is
# a zombie while other threads still hold the /dev/fuse descriptors).
pid_gone() {
    local pid=$1
    [ -d "/proc/$pid" ] || return 0
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] &&
        [ "$(ls "/proc/$pid/task" 2>/dev/null | wc -l)" -le 1 ]
}

# wait_pid_gone PID [SECS]: waits for PID to exit, SECS at most (cleanup
# paths), else as long as the script's timeout allows.
wait_pid_gone() {
    local pid=$1 n
    if [ -z "${2:-}" ]; then
        wait_for "pid $pid to exit" pid_gone "$pid"
        return
    fi
    n=$(($2 * 10))
    while [ $n -gt 0 ]; do
        pid_gone "$pid" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# casfs_add_user [GROUP...]: creates a throwaway system user for this run
# in CASFS_NEW_USER (no home directory; its own group, and the given groups,
# created when missing, as supplementary groups), removed with the groups
# by the cleanup.  Returns non-zero when useradd fails.
casfs_add_user() {
    local u="casfst$$-${#_CASFS_USERS_MADE[@]}" g groups=""
    CASFS_NEW_USER=""
    for g in "$@"; do
        if ! getent group "$g" >/dev/null; then
            groupadd -r "$g" >/dev/null || return 1
            _CASFS_USERS_MADE+=("group:$g")
        fi
        groups="${groups:+$groups,}$g"
    done
    useradd -r -M -d /nonexistent -s /bin/sh -U ${groups:+-G "$groups"} "$u" >/dev/null || return 1
    _CASFS_USERS_MADE+=("$u")
    CASFS_NEW_USER=$u
}

# casfs_for_user USER: a path of the casfs binary USER can execute (a copy
# below $T when the build directory is closed to USER).
casfs_for_user() {
    if runuser -u "$1" -- test -x "$CASFS"; then
        echo "$CASFS"
        return
    fi
    if [ ! -x "$T/bin/casfs" ]; then
        mkdir -p "$T/bin"
        cp "$CASFS" "$T/bin/casfs"
        # the action cache's launcher and shell: the client alone beside it
        # (casfs answers to both names too)
        if [ -f "$(dirname "$CASFS")/casfs-exec" ] && [ ! -L "$(dirname "$CASFS")/casfs-exec" ]; then
            cp "$(dirname "$CASFS")/casfs-exec" "$T/bin/casfs-exec"
            ln -sf casfs-exec "$T/bin/casfs-sh"
        else
            ln -sf casfs "$T/bin/casfs-exec"
            ln -sf casfs "$T/bin/casfs-sh"
        fi
        chmod 755 "$T" "$T/bin" "$T/bin/casfs" "$T/bin/casfs-exec"
    fi
    echo "$T/bin/casfs"
}

# Force-unmount MNT and kill its daemon (pid $2, may be empty; user $3;
# the pid's start time when it was recorded $4).
_casfs_force_down() {
    local mnt=$1 pid=$2 user=$3 start=${4:-}
    if [ -z "$pid" ]; then
        pid=$(casfs_pid_of "$mnt" "$user")
        start=$([ -n "$pid" ] && _pid_start "$pid")
    fi
    if is_mounted "$mnt"; then
        as_user "$user" timeout 30 "$CASFS" umount "$mnt" >/dev/null 2>&1
    fi
    if is_mounted "$mnt"; then
        echo "# cleanup: casfs umount left $mnt mounted, forcing" >&2
        timeout 20 umount -l "$mnt" >/dev/null 2>&1 ||
            timeout 20 fusermount3 -uz "$mnt" >/dev/null 2>&1
    fi
    # stacked mounts (e.g. a failed double-mount test)
    local n=0
    while is_mounted "$mnt" && [ $n -lt 5 ]; do
        timeout 20 umount -l "$mnt" >/dev/null 2>&1 ||
            timeout 20 fusermount3 -uz "$mnt" >/dev/null 2>&1
        n=$((n + 1))
    done
    if [ -n "$pid" ] && _casfs_pid_is_ours "$pid" "$mnt" "$start"; then
        if ! wait_pid_gone "$pid" 5; then
            echo "# cleanup: daemon $pid still alive, killing it" >&2
            kill -TERM "$pid" 2>/dev/null
            wait_pid_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null
        fi
    fi
}

_casfs_cleanup() {
    [ "$_CASFS_CLEANED" = 1 ] && return 0
    _CASFS_CLEANED=1
    trap - EXIT INT TERM
    # helpers of the test (processes holding files open, samplers) first
    if declare -F casfs_extra_cleanup >/dev/null; then casfs_extra_cleanup; fi
    local i
    for i in "${!_CASFS_MNTS[@]}"; do
        [ -n "${_CASFS_MNTS[$i]}" ] || continue
        _casfs_force_down "${_CASFS_MNTS[$i]}" "${_CASFS_PIDS[$i]}" "${_CASFS_USERS[$i]}" "${_CASFS_STARTS[$i]}"
    done
    # any other casfs mount below our temp dir (e.g. made by a test step that
    # failed before registering it)
    if [ -n "$_CASFS_FUSE_DEV" ]; then
        umount /dev/fuse 2>/dev/null
        umount "$_CASFS_FUSE_DEV" 2>/dev/null || umount -l "$_CASFS_FUSE_DEV" 2>/dev/null
    fi
    if [ -n "$T" ]; then
        local m
        while IFS= read -r m; do
            _casfs_force_down "$m" "" ""
        done < <(mount_points | grep -F -- "$T/" | sort -r)
    fi
    # the users this run made (their daemons are gone by now)
    local u
    for u in "${_CASFS_USERS_MADE[@]}"; do
        case "$u" in
            group:*) ;;
            *) userdel "$u" >/dev/null 2>&1 || echo "# cleanup: could not remove user $u" >&2 ;;
        esac
    done
    for u in "${_CASFS_USERS_MADE[@]}"; do
        case "$u" in
            group:*) groupdel "${u#group:}" >/dev/null 2>&1 || echo "# cleanup: could not remove group ${u#group:}" >&2 ;;
        esac
    done
    if [ -n "$T" ]; then
        if [ -n "${CASFS_KEEP_TMP:-}" ]; then
            echo "# keeping $T" >&2
        else
            rm -rf --one-file-system "$T" 2>/dev/null || rm -rf "$T"
        fi
    fi
}

# run_sub NAME CMD...: run a sub-program that prints ok/FAIL lines and its own
# "N passed, N failed" summary; its results are added to ours and its summary
# line is turned into a comment.
run_sub() {
    local name=$1
    shift
    local out=$T/.sub.$$.out rc p f
    "$@" 2>&1 | sed -u -e "s|^\([0-9][0-9]* passed, [0-9][0-9]* failed\(, [0-9][0-9]* skipped\)\{0,1\}\)\$|# $name: \1|" |
        tee "$out"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^ok ' "$out")
    f=$(grep -c '^FAIL ' "$out")
    PASS=$((PASS + p))
    FAILS=$((FAILS + f))
    SKIPS=$((SKIPS + $(grep -c '^SKIP ' "$out")))
    SKIPS_REQUIRED=$((SKIPS_REQUIRED + $(grep '^SKIP ' "$out" | grep -vc '^SKIP (optional) ')))
    if ! grep -q "^# $name: [0-9]* passed, [0-9]* failed\(, [0-9]* skipped\)\{0,1\}\$" "$out"; then
        fail "$name: did not finish (exit status $rc, no summary line)"
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "$name: exited $rc without a FAIL line"
    fi
    rm -f "$out"
}

casfs_finish() {
    # a crash fails the script even where no check noticed it
    if [ "$_CASFS_CRASHED" = 0 ] && _casfs_crash_report; then
        FAILS=$((FAILS + 1))
        echo "FAIL ${CASFS_NAME_PREFIX:-}a casfs daemon crashed (its log above)"
    fi
    _casfs_cleanup
    # nothing of ours may stay mounted
    if [ -n "$T" ] && mount_points | grep -qF -- "$T/"; then
        fail "cleanup: a mount below $T survived the cleanup"
    fi
    if [ "${CASFS_REQUIRE_CHECKS:-}" = 1 ] && [ "$SKIPS_REQUIRED" -gt 0 ]; then
        fail "required checks skipped: $SKIPS_REQUIRED (CASFS_REQUIRE_CHECKS=1; see the SKIP lines)"
    fi
    echo "$PASS passed, $FAILS failed, $SKIPS skipped"
    [ "$FAILS" -eq 0 ] && [ "$PASS" -gt 0 ]
    exit $?
}
