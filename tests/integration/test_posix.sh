#!/bin/bash
# POSIX semantics of a root casfs mount compared with a native directory,
# driven by posix.py, with the default options, with -o writeback, with
# -o no_handles (path-based reopening, the unprivileged fallback), and with a
# tiny fd cache (constant reopening) in both modes.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-540}
. "$(dirname "$0")/lib.sh"

casfs_setup
cp "$TESTDIR/posix.py" "$T/posix.py"

for variant in default writeback no_handles no_handles,fd_cache=8 fd_cache=8,timeout=0,writeback; do
    opts=()
    [ "$variant" != default ] && opts=(-o "$variant")
    variant=${variant//,/+}
    mkdir -p "$NATIVE/$variant"
    if ! casfs_mount "${opts[@]}"; then
        fail "$variant/mount: casfs mount ${opts[*]} failed"
        continue
    fi
    ok "$variant/mount"
    mkdir -p "$MNT/$variant"
    run_sub "posix.py $variant" timeout 240 "$PYTHON" "$T/posix.py" --tag "$variant" \
        "$MNT/$variant" "$NATIVE/$variant"
    if casfs_umount "$MNT"; then ok "$variant/umount"; else fail "$variant/umount: casfs umount failed"; fi
    # the backing directory (the mount point itself) holds what was written
    if [ -d "$MNT/$variant" ] && ! is_mounted "$MNT"; then
        ok "$variant/backing_has_tree"
    else
        fail "$variant/backing_has_tree: $MNT/$variant missing after unmount"
    fi
done

casfs_finish
