#!/usr/bin/env bash
# Hash on write: digests are always right, sequential writes are never
# re-read, and digests survive remounts through the store's index.
CASFS_TEST_TIMEOUT=600
. "$(dirname "$0")/lib.sh"
casfs_setup

BACK=$T/back
mkdir -p "$BACK"
counter() { "$CASFS" stats --json "$MNT" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['mounts'][0]['counters']['$1'])"; }
xattr() { getfattr --only-values -n user.casfs.xxh128 "$1" 2>/dev/null; }
sum_of() { xxh128sum "$1" 2>/dev/null | cut -d" " -f1; }

# The randomized runs print their seed; CASFS_SEED=N replays one.
for opts in no_writeback writeback; do
    casfs_mount --backing "$BACK" -o "$opts" || { fail "mount -o $opts"; casfs_finish; }
    seed=${CASFS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
    log "randomized ops ($opts): seed $seed (replay with CASFS_SEED=$seed)"
    out=$("$PYTHON" "$TESTDIR/hashing.py" "$MNT" "$BACK" 1500 "$seed" 2>&1)
    rc=$?
    echo "$out" | grep -E '^(FAIL|# ops|# seed)' | head -5
    if [ $rc -eq 0 ]; then ok "randomized ops ($opts, seed $seed): $(echo "$out" | tail -n 1)"; else fail "randomized ops ($opts, seed $seed): $(echo "$out" | tail -n 1)"; fi
    casfs_umount "$MNT"
    rm -rf "${BACK:?}"/*
done

# A 1 GiB sequential write is hashed while it streams: no re-read.
casfs_mount --backing "$BACK" || { fail "mount"; casfs_finish; }
before=$(counter files_hashed_by_reread)
dd if=/dev/urandom of="$MNT/rand" bs=1M count=64 status=none
dd if=/dev/zero of="$MNT/big" bs=1M count=1024 status=none
check_eq "1 GiB file: xattr equals xxh128sum" "$(sum_of "$BACK/big")" "$(xattr "$MNT/big")"
check_eq "64 MiB random file: xattr equals xxh128sum" "$(sum_of "$BACK/rand")" "$(xattr "$MNT/rand")"
check_eq "sequential writes re-read nothing" "$before" "$(counter files_hashed_by_reread)"
streamed=$(counter files_hashed_streaming)
[ "$streamed" -ge 2 ] && ok "both files hashed while streaming ($streamed)" || fail "files_hashed_streaming is $streamed, want >= 2"

# Non-sequential writes are re-read once, at the last close.
printf 'hello world' > "$MNT/small"
printf 'J' | dd of="$MNT/small" bs=1 seek=0 conv=notrunc status=none
check_eq "overwrite: digest right" "$(sum_of "$BACK/small")" "$(xattr "$MNT/small")"
[ "$(counter files_hashed_by_reread)" -gt "$before" ] && ok "overwrite re-read counted" || fail "overwrite was not re-read"

# Opened for writing but never written: no re-read, digest unchanged.
xattr "$MNT/small" >/dev/null
before=$(counter files_hashed_by_reread)
"$PYTHON" -c "import sys; open(sys.argv[1], 'r+b').close()" "$MNT/small"
check_eq "open O_RDWR without writing: digest right" "$(sum_of "$BACK/small")" "$(xattr "$MNT/small")"
check_eq "open O_RDWR without writing: nothing re-read" "$before" "$(counter files_hashed_by_reread)"
: > "$MNT/small"   # O_TRUNC without a write changes the content
check_eq "O_TRUNC alone: digest of the empty file" "99aa06d3014798d86001c324468d497f" "$(xattr "$MNT/small")"

# xattr API: listed, size probe, ERANGE, EPERM on set/remove.
"$PYTHON" - "$MNT/small" <<'PY' && ok "xattr API (list, probe, ERANGE, EPERM)" || fail "xattr API"
import errno, os, sys, ctypes
p = sys.argv[1]
assert "user.casfs.xxh128" in os.listxattr(p), os.listxattr(p)
libc = ctypes.CDLL(None, use_errno=True)
assert libc.getxattr(p.encode(), b"user.casfs.xxh128", None, 0) == 32
buf = ctypes.create_string_buffer(8)
assert libc.getxattr(p.encode(), b"user.casfs.xxh128", buf, 8) == -1 and ctypes.get_errno() == errno.ERANGE
for f in (lambda: os.setxattr(p, "user.casfs.xxh128", b"0" * 32), lambda: os.removexattr(p, "user.casfs.xxh128")):
    try:
        f(); raise SystemExit("set/remove allowed")
    except OSError as e:
        assert e.errno == errno.EPERM, e
cur = os.getxattr(p, "user.casfs.xxh128")
os.setxattr(p, "user.casfs.xxh128", cur)          # its own value: a no-op (cp -a back)
assert os.getxattr(p, "user.casfs.xxh128") == cur
d = os.path.dirname(p)
try:
    os.getxattr(d, "user.casfs.xxh128"); raise SystemExit("directory has a digest")
except OSError as e:
    assert e.errno == errno.ENODATA, e
PY

# casfs hash reads the digest from casfs without reading the file.
out=$("$CASFS" hash -v "$MNT/big" 2>&1)
echo "$out" | grep -q "from xattr" && ok "casfs hash uses the xattr on casfs" || fail "casfs hash: $out"
check_eq "casfs hash prints xxh128sum's line" "$(sum_of "$BACK/big")" "$("$CASFS" hash "$MNT/big" | cut -d' ' -f1)"
rm -f "$MNT/big"

# A digest xattr copied off casfs (cp -a) is stale elsewhere: never trusted.
cp -a "$MNT/small" "$T/copied"
getfattr -n user.casfs.xxh128 "$T/copied" >/dev/null 2>&1 && ok "cp -a copies the xattr (test premise)" || fail "cp -a did not copy the xattr (test premise)"
echo "edited elsewhere" >> "$T/copied"
check_eq "casfs hash ignores a stale copied xattr off casfs" "$(sum_of "$T/copied")" "$("$CASFS" hash "$T/copied" | cut -d' ' -f1)"

# casfs hash: content-aware digests and errors (real ar, real cc).
W=$T/work
mkdir -p "$W"
printf 'int a(void) { return 1; }\n' > "$W/a.c"
printf 'int a(void)   {  return 1; } /* note */\n' > "$W/a2.c"
printf 'int a(void) { return 2; }\n' > "$W/a3.c"
check_eq "--c-source: comment/whitespace edit keeps the digest" \
    "$("$CASFS" hash --c-source "$W/a.c" | cut -d' ' -f1)" "$("$CASFS" hash --c-source "$W/a2.c" | cut -d' ' -f1)"
[ "$("$CASFS" hash --c-source "$W/a.c" | cut -d' ' -f1)" != "$("$CASFS" hash --c-source "$W/a3.c" | cut -d' ' -f1)" ] &&
    ok "--c-source: a token change changes the digest" || fail "--c-source: token change kept the digest"
(cd "$W" && cc -c a.c -o a.o && cc -c a3.c -o b.o && ar rcU u.a a.o b.o && sleep 1.1 && touch a.o b.o && ar rcD d.a a.o b.o && cc -c a3.c -o a.o && ar rcD x.a a.o b.o)
cmp -s "$W/u.a" "$W/d.a" && fail "ar rcU and rcD archives are byte-identical (test premise)" || ok "ar rcU and rcD archives differ byte-wise"
check_eq "--archive: member mtimes ignored" \
    "$("$CASFS" hash --archive "$W/u.a" | cut -d' ' -f1)" "$("$CASFS" hash --archive "$W/d.a" | cut -d' ' -f1)"
[ "$("$CASFS" hash --archive "$W/d.a" | cut -d' ' -f1)" != "$("$CASFS" hash --archive "$W/x.a" | cut -d' ' -f1)" ] &&
    ok "--archive: a changed member changes the digest" || fail "--archive: changed member kept the digest"
out=$("$CASFS" hash "$W/a.c" "$W/missing" "$W" "$W/a3.c" 2>"$T/hash.err"); rc=$?
[ $rc -ne 0 ] && ok "casfs hash: bad paths give a non-zero exit" || fail "casfs hash exited 0 with bad paths"
check_eq "casfs hash: the good paths are still printed" 2 "$(echo "$out" | grep -c .)"
grep -q "missing: No such file or directory" "$T/hash.err" && grep -q "is a directory" "$T/hash.err" &&
    ok "casfs hash: one message per bad path" || fail "casfs hash messages: $(cat "$T/hash.err")"
"$CASFS" hash --archive "$W/a.c" 2>/dev/null && fail "--archive accepted a non-archive" || ok "--archive refuses a non-archive"
# a directory or a device as the only (first) argument: no earlier failure
# leaves an errno behind, so each must be recognised on its own
for bad in "$W:is a directory (give regular files)" "/dev/null:not a regular file"; do
    p=${bad%%:*}
    out=$("$CASFS" hash "$p" 2>"$T/hash1.err"); rc=$?
    check_eq "casfs hash $p alone: exit 1" 1 "$rc"
    check_eq "casfs hash $p alone: nothing on stdout" "" "$out"
    check_eq "casfs hash $p alone: one message" "casfs: hash: $p: ${bad#*:}" "$(cat "$T/hash1.err")"
done

# Remount: digests come from the index; a file changed while unmounted gets a fresh digest.
for i in $(seq 1 20); do head -c $((i * 1000)) /dev/urandom > "$MNT/keep$i"; done
casfs_umount "$MNT"
casfs_mount --backing "$BACK" || { fail "remount"; casfs_finish; }
bad=0
for i in $(seq 1 20); do [ "$(xattr "$MNT/keep$i")" = "$(sum_of "$BACK/keep$i")" ] || bad=$((bad + 1)); done
check_eq "digests right after remount" 0 "$bad"
check_eq "remount: 20 digests served by the index" 20 "$(counter digest_index_hits)"
check_eq "remount: nothing re-read" 0 "$(counter files_hashed_on_demand)"
casfs_umount "$MNT"
echo changed >> "$BACK/keep3"
casfs_mount --backing "$BACK" || { fail "remount 2"; casfs_finish; }
check_eq "file changed while unmounted: fresh digest" "$(sum_of "$BACK/keep3")" "$(xattr "$MNT/keep3")"
check_eq "file changed while unmounted: hashed again" 1 "$(counter files_hashed_on_demand)"

# no_xattr: the kernel stops asking, casfs hash still gets the digest (ioctl).
casfs_umount "$MNT"
casfs_mount --backing "$BACK" -o no_xattr || { fail "mount no_xattr"; casfs_finish; }
getfattr -n user.casfs.xxh128 "$MNT/keep1" >/dev/null 2>&1 && fail "no_xattr: xattr still answered" || ok "no_xattr: xattr not answered"
out=$("$CASFS" hash -v "$MNT/keep1" 2>&1)
echo "$out" | grep -q "from ioctl" && ok "no_xattr: casfs hash uses the ioctl" || fail "no_xattr: $out"
check_eq "no_xattr: ioctl digest right" "$(sum_of "$BACK/keep1")" "$("$CASFS" hash "$MNT/keep1" | cut -d' ' -f1)"

casfs_finish
