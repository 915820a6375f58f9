# shellcheck shell=bash
# Common helpers for the casfs integration tests.  Source it from a test script:
#
#     CASFS_TEST_TIMEOUT=300      # seconds, optional (default 300)
#     . "$(dirname "$0")/lib.sh"
#     casfs_setup                 # -> $T (temp dir), $MNT, $STORE, $NATIVE
#     casfs_mount [-o OPTS ...]   # mounts $MNT (backing = $MNT itself)
#     ok "name" / fail "name: detail" / check "name" cmd args...
#     casfs_finish                # cleanup, prints "N passed, N failed", exits
#
# Environment: CASFS (absolute path of the casfs binary, required),
# CASFS_SRC (source root; defaults to ../.. of this file).
#
# Whatever happens (failure, `exit`, SIGINT/SIGTERM, the overall timeout), the
# EXIT/INT/TERM trap runs casfs_extra_cleanup (if the test defines it),
# unmounts every mount this script made, kills only the
# daemons this script started (pids recorded from `casfs status`) and removes
# the temp dir.

# ---------------------------------------------------------------- timeout ---
# Re-exec the calling script under timeout(1) once.  Without --foreground,
# timeout signals its whole process group, so a hung child (find, python, ...)
# dies too and the TERM trap below gets to run the cleanup.  The meson timeout
# of every test is larger than its CASFS_TEST_TIMEOUT.
if [ -z "${_CASFS_UNDER_TIMEOUT:-}" ]; then
    export _CASFS_UNDER_TIMEOUT=1
    _fg=()
    if [ -t 0 ] || [ -t 1 ]; then _fg=(--foreground); fi   # keep ^C working
    exec timeout "${_fg[@]}" -k 60 "${CASFS_TEST_TIMEOUT:-300}" bash "$0" "$@"
fi

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
T=""
MNT=""
STORE=""
NATIVE=""
# Parallel arrays: mountpoints we mounted, their daemon pids, and the user the
# mount was made as ("" = the current user, i.e. root).
_CASFS_MNTS=()
_CASFS_PIDS=()
_CASFS_USERS=()
_CASFS_CLEANED=0

log() { echo "# $*"; }
# CASFS_NAME_PREFIX (e.g. "writeback/") is put before every check name.
ok() { echo "ok ${CASFS_NAME_PREFIX:-}$*"; PASS=$((PASS + 1)); }
fail() { echo "FAIL ${CASFS_NAME_PREFIX:-}$*"; FAILS=$((FAILS + 1)); }

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

# Is $1 (absolute, canonical path) a mount point right now?
is_mounted() {
    awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# Number of mount entries on exactly path $1.
mount_count() {
    awk -v m="$1" '$5 == m { n++ } END { print n + 0 }' /proc/self/mountinfo
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

# Is pid $1 (still) a casfs daemon serving mountpoint $2?  Guards against
# killing a recycled pid.
_casfs_pid_is_ours() {
    local pid=$1 mnt=$2 cmd comm
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
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
}

# Record a mount made by this script (mountpoint, user) and its daemon pid.
_casfs_register() {
    local mnt=$1 user=${2:-} pid
    pid=$(casfs_pid_of "$mnt" "$user")
    _CASFS_MNTS+=("$mnt")
    _CASFS_PIDS+=("$pid")
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

# ingest_settle MOUNT: waits (up to 10 s) until MOUNT's ingest queue is empty
# (every queued file stored, found, skipped or failed).
ingest_settle() {
    local m=$1 n=0 q done_
    while [ $n -lt 100 ]; do
        q=$(casfs_counter "$m" ingest_queued)
        done_=$(( $(casfs_counter "$m" ingest_stored) + $(casfs_counter "$m" ingest_existing) + \
                  $(casfs_counter "$m" ingest_skipped) + $(casfs_counter "$m" ingest_errors) ))
        [ "$q" -eq "$done_" ] && return 0
        sleep 0.1
        n=$((n + 1))
    done
    return 1
}

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

# Wait up to $2 seconds (default 10) for pid $1 to exit.
wait_pid_gone() {
    local pid=$1 n=$((${2:-10} * 10))
    while [ $n -gt 0 ]; do
        [ -d "/proc/$pid" ] || return 0
        # a zombie child of ours counts as gone
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# Force-unmount MNT and kill its daemon (pid $2, may be empty; user $3).
_casfs_force_down() {
    local mnt=$1 pid=$2 user=$3
    [ -z "$pid" ] && pid=$(casfs_pid_of "$mnt" "$user")
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
    if [ -n "$pid" ] && _casfs_pid_is_ours "$pid" "$mnt"; then
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
        _casfs_force_down "${_CASFS_MNTS[$i]}" "${_CASFS_PIDS[$i]}" "${_CASFS_USERS[$i]}"
    done
    # any other casfs mount below our temp dir (e.g. made by a test step that
    # failed before registering it)
    if [ -n "$T" ]; then
        local m
        for m in $(awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
            _casfs_force_down "$m" "" ""
        done
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
    "$@" 2>&1 | sed -u -e "s|^\([0-9][0-9]* passed, [0-9][0-9]* failed\)\$|# $name: \1|" | tee "$out"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^ok ' "$out")
    f=$(grep -c '^FAIL ' "$out")
    PASS=$((PASS + p))
    FAILS=$((FAILS + f))
    if ! grep -q "^# $name: [0-9]* passed, [0-9]* failed\$" "$out"; then
        fail "$name: did not finish (exit status $rc, no summary line)"
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "$name: exited $rc without a FAIL line"
    fi
    rm -f "$out"
}

casfs_finish() {
    _casfs_cleanup
    # nothing of ours may stay mounted
    if [ -n "$T" ] && awk -v t="$T/" 'index($5, t) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        fail "cleanup: a mount below $T survived the cleanup"
    fi
    echo "$PASS passed, $FAILS failed"
    [ "$FAILS" -eq 0 ] && [ "$PASS" -gt 0 ]
    exit $?
}
