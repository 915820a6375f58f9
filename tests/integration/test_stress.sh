#!/bin/bash
# Concurrent metadata stress (stress.py): 8 processes x 6000 random
# operations over small name spaces, on casfs and natively; per-operation
# results and the final trees must be identical.  With the default options
# and with a tiny fd cache (so removed inodes are freed, and their numbers
# reused, at once) in handle mode, path mode and with -o writeback.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-540}
. "$(dirname "$0")/lib.sh"

casfs_setup
cp "$TESTDIR/stress.py" "$T/stress.py"
for variant in default fd_cache=8 no_handles,fd_cache=8 writeback,fd_cache=8; do
    opts=()
    [ "$variant" != default ] && opts=(-o "$variant")
    v=${variant//,/+}
    if ! casfs_mount "${opts[@]}"; then
        fail "$v/mount: casfs mount ${opts[*]} failed"
        continue
    fi
    ok "$v/mount"
    pid=$(casfs_recorded_pid "$MNT")
    mkdir -p "$NATIVE/$v" "$MNT/$v"
    run_sub "stress.py $v" timeout 240 "$PYTHON" "$T/stress.py" --ops 6000 --tag "$v" "$MNT/$v" "$NATIVE/$v"
    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then ok "$v/daemon_alive"; else fail "$v/daemon_alive: daemon $pid died"; fi
    log "$v counters: $(timeout 20 "$CASFS" stats --json "$MNT" 2>/dev/null | "$PYTHON" -c '
import json, sys
c = json.load(sys.stdin)["mounts"][0]["counters"]
print(" ".join("%s=%s" % (k, v) for k, v in sorted(c.items())
               if any(w in k for w in ("stale", "reopen", "evict", "nodes"))))' 2>&1)"
    if casfs_umount "$MNT"; then ok "$v/umount"; else fail "$v/umount"; fi
    # the backing tree equals what was seen through the mount
    if ! is_mounted "$MNT"; then
        check "$v/backing_equals_native" diff -r --no-dereference -x "stress-*-logs" "$NATIVE/$v" "$MNT/$v"
    fi
done
casfs_finish
