#!/bin/bash
# Edges an external filesystem suite found (issue list: crashes, stale data,
# waits, deleted files).  Each section reproduces the original report.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-300}
. "$(dirname "$0")/lib.sh"

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

casfs_finish
