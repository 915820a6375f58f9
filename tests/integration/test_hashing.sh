#!/usr/bin/env bash
# Hash on write: digests are always right, sequential writes are never
# re-read, and digests survive remounts through the store's index.  The
# same for SHA-256 (user.casfs.sha256, raw bytes): streamed with -o sha256,
# computed on first request without, right after every kind of change and
# after a remount.
CASFS_TEST_TIMEOUT=600
. "$(dirname "$0")/lib.sh"
casfs_setup

BACK=$T/back
mkdir -p "$BACK"
counter() { "$CASFS" stats --json "$MNT" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['mounts'][0]['counters']['$1'])"; }
xattr() { getfattr --only-values -n user.casfs.xxh128 "$1" 2>/dev/null; }
sum_of() { xxh128sum "$1" 2>/dev/null | cut -d" " -f1; }

# The randomized runs print their seed; CASFS_SEED=N replays one.  Both
# digests are checked after every operation: on demand in the first run,
# streamed (-o sha256) in the second.
for opts in no_writeback writeback,sha256; do
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

# A regular file reports a large I/O size (st_blksize), so stdio writes it
# in BUFSIZ (8 KiB) pieces rather than the backing's 4 KiB: half the WRITEs.
check_eq "st_blksize of a regular file" 131072 "$(stat -c %o "$MNT/rand")"
w=$(counter write)
seq 1 100000 >"$MNT/seq"   # 588,895 bytes through stdio
w=$(($(counter write) - w))
[ "$w" -le 75 ] && ok "588,895 bytes through stdio: $w WRITEs (8 KiB each)" ||
    fail "588,895 bytes through stdio took $w WRITEs, want <= 75 (8 KiB each)"
check_eq "stdio-written file: digest right" "$(sum_of "$BACK/seq")" "$(xattr "$MNT/seq")"

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

# ---- SHA-256 ------------------------------------------------------------------
sha_x() { "$PYTHON" -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.casfs.sha256").hex())' "$1" 2>&1; }
sha_of() { sha256sum "$1" 2>/dev/null | cut -c1-64; }
counters_now() { "$CASFS" stats --json "$MNT" >"$T/c.$1.json"; }
# grew A B NAME: how much counter NAME grew from snapshot A to snapshot B
grew() {
    "$PYTHON" -c 'import json,sys
a, b = (json.load(open(f))["mounts"][0]["counters"] for f in sys.argv[1:3])
print(b.get(sys.argv[3], 0) - a.get(sys.argv[3], 0))' "$T/c.$1.json" "$T/c.$2.json" "$3"
}
# sha_right NAME FILE: user.casfs.sha256 of FILE on the mount equals
# sha256sum of it in the backing, and so does user.casfs.xxh128 xxh128sum's
sha_right() {
    check_eq "$1: user.casfs.sha256 equals sha256sum" "$(sha_of "$SBACK/$2")" "$(sha_x "$MNT/$2")"
    check_eq "$1: user.casfs.xxh128 equals xxh128sum" "$(sum_of "$SBACK/$2")" "$(xattr "$MNT/$2")"
}
# released: every file closed on the mount was released (the kernel sends
# RELEASE after close(2) returns; an answer before it is not remembered)
released() { [ "$(counter open_files)" -eq 0 ]; }
# reread_done: the background re-read of the last out-of-order file is over
reread_done() { [ "$(counter files_hashed_by_reread)" -gt "$rr0" ]; }
pwrite_at() { "$PYTHON" -c 'import os,sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
for off in sys.argv[2:]:
    os.pwrite(fd, os.urandom(100000), int(off))
os.close(fd)' "$@"; }

casfs_umount "$MNT"
SBACK=$T/shaback
mkdir -p "$SBACK"
for mode in sha256 on-demand; do
    CASFS_NAME_PREFIX="$mode/"
    opts=()
    [ "$mode" = sha256 ] && opts=(-o sha256)
    casfs_mount --backing "$SBACK" "${opts[@]}" || { fail "mount ${opts[*]}"; continue; }

    # written sequentially: with -o sha256 streamed, never read
    counters_now 0
    dd if=/dev/urandom of="$MNT/seq" bs=64k count=40 status=none
    wait_for "the release of seq" released
    counters_now 1
    sha_right "sequential write" seq
    counters_now 2
    if [ "$mode" = sha256 ]; then
        [ "$(grew 0 2 sha256_streamed)" -ge 1 ] && ok "sequential write: SHA-256 streamed" ||
            fail "sequential write: sha256_streamed grew $(grew 0 2 sha256_streamed)"
        check_eq "sequential write: SHA-256 needed no read" 0 "$(grew 0 2 sha256_by_read)"
    else
        check_eq "sequential write: nothing streamed without -o sha256" 0 "$(grew 0 2 sha256_streamed)"
        check_eq "sequential write: SHA-256 read once on request" 1 "$(grew 1 2 sha256_by_read)"
    fi
    sha_x "$MNT/seq" >/dev/null
    counters_now 3
    check_eq "sequential write: asked again, no read" 0 "$(grew 2 3 sha256_by_read)"

    # asked while a writer still has it open: from the stream when it covers
    # the file (-o sha256), else by a read; right either way
    counters_now 0
    if out=$("$PYTHON" - "$MNT/open" <<'PY'
import hashlib, os, sys
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
data = b""
for n in (1, 70000, 4096, 300000):
    chunk = os.urandom(n)
    os.write(fd, chunk)
    data += chunk
    got = os.getxattr(p, "user.casfs.sha256")
    if got != hashlib.sha256(data).digest():
        sys.exit(f"after {len(data)} bytes: {got.hex()}")
os.close(fd)
PY
    ); then ok "asked while open for writing: SHA-256 of the bytes written so far"; else fail "asked while open for writing: $out"; fi
    counters_now 1
    if [ "$mode" = sha256 ]; then
        check_eq "asked while open for writing: no read" 0 "$(grew 0 1 sha256_by_read)"
    else
        check_eq "asked while open for writing: read each time" 4 "$(grew 0 1 sha256_by_read)"
    fi

    # out of order: re-read once at the last close (both digests with -o sha256)
    rr0=$(counter files_hashed_by_reread)
    counters_now 0
    pwrite_at "$MNT/ooo" 300000 0 150000
    wait_for "the re-read of ooo" reread_done
    counters_now 1
    sha_right "out-of-order writes" ooo
    counters_now 2
    check_eq "out-of-order writes: one re-read at close" 1 "$(grew 0 2 files_hashed_by_reread)"
    if [ "$mode" = sha256 ]; then
        check_eq "out-of-order writes: SHA-256 from that same read" 1 "$(grew 0 1 sha256_by_read)"
        check_eq "out-of-order writes: no other read for the xattrs" 0 "$(grew 1 2 sha256_by_read)"
    else
        check_eq "out-of-order writes: the re-read computed no SHA-256" 0 "$(grew 0 1 sha256_by_read)"
        check_eq "out-of-order writes: SHA-256 read once on request" 1 "$(grew 1 2 sha256_by_read)"
    fi
    check_eq "out-of-order writes: no file hashed on demand" 0 "$(grew 0 2 files_hashed_on_demand)"

    # every other change: each answer right, never the one before
    truncate -s 777 "$MNT/seq"
    sha_right "truncate to 777" seq
    head -c 5000 /dev/urandom >>"$MNT/seq"
    sha_right "append" seq
    printf 'Z' | dd of="$MNT/seq" bs=1 seek=10 conv=notrunc status=none
    sha_right "overwrite in place" seq
    truncate -s 0 "$MNT/seq"
    check_eq "truncate to 0: SHA-256 of the empty file" \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" "$(sha_x "$MNT/seq")"
    : >"$MNT/seq2" && head -c 70000 /dev/urandom >"$MNT/seq2" && truncate -s 50000000 "$MNT/seq2"
    sha_right "a 50 MB file that is mostly a hole" seq2
    "$PYTHON" -c 'import os,sys; fd = os.open(sys.argv[1], os.O_RDWR); os.posix_fallocate(fd, 0, 60000000); os.close(fd)' "$MNT/seq2"
    sha_right "fallocate beyond the end" seq2
    cp "$MNT/ooo" "$MNT/copy"   # copy_file_range into it, where the kernel passes it
    sha_right "cp" copy

    # a rewrite (O_TRUNC) of a file whose SHA-256 is known, a file renamed
    # over one whose SHA-256 is known, an O_TRUNC by a second writer
    sha_x "$MNT/copy" >/dev/null
    head -c 200000 /dev/urandom >"$MNT/copy"
    sha_right "rewrite (O_TRUNC)" copy
    head -c 123456 /dev/urandom >"$MNT/new"
    sha_x "$MNT/copy" >/dev/null
    mv "$MNT/new" "$MNT/copy"
    sha_right "renamed over" copy
    if out=$("$PYTHON" - "$MNT/two" <<'PY'
import hashlib, os, sys
p, name = sys.argv[1], "user.casfs.sha256"
a, b = os.urandom(100000), os.urandom(5000)
fd1 = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd1, a)
if os.getxattr(p, name) != hashlib.sha256(a).digest():
    sys.exit("first writer's bytes: wrong SHA-256")
fd2 = os.open(p, os.O_WRONLY | os.O_TRUNC)
if os.getxattr(p, name) != hashlib.sha256(b"").digest():
    sys.exit("emptied by a second writer's O_TRUNC: not the empty file's SHA-256")
os.write(fd2, b)
if os.getxattr(p, name) != hashlib.sha256(b).digest():
    sys.exit("second writer's bytes: wrong SHA-256")
os.close(fd2)
os.close(fd1)
PY
    ); then ok "O_TRUNC by a second writer: SHA-256 of what each write left"; else fail "O_TRUNC by a second writer: $out"; fi
    wait_for "the release of two" released
    sha_right "O_TRUNC by a second writer, after both closed" two

    # metadata changes keep the SHA-256: no read
    sha_x "$MNT/ooo" >/dev/null
    counters_now 0
    chmod 600 "$MNT/ooo"
    mv "$MNT/ooo" "$MNT/ooo.moved"
    ln "$MNT/ooo.moved" "$MNT/ooo.link"
    sha_right "chmod, rename, link" ooo.moved
    counters_now 1
    check_eq "chmod, rename, link: SHA-256 still known, no read" 0 "$(grew 0 1 sha256_by_read)"

    # the xattr API: raw 32 bytes, size probe, ERANGE, EPERM, listing
    if "$PYTHON" - "$MNT/ooo.moved" "$mode" <<'PY'; then ok "user.casfs.sha256 API (32 raw bytes, probe, ERANGE, EPERM, same value a no-op, directories ENODATA, listed only with -o sha256)"; else fail "user.casfs.sha256 API"; fi
import ctypes, errno, hashlib, os, sys
p, mode = sys.argv[1], sys.argv[2]
name = "user.casfs.sha256"
v = os.getxattr(p, name)
assert v == hashlib.sha256(open(p, "rb").read()).digest(), v
libc = ctypes.CDLL(None, use_errno=True)
assert libc.getxattr(p.encode(), name.encode(), None, 0) == 32
buf = ctypes.create_string_buffer(31)
assert libc.getxattr(p.encode(), name.encode(), buf, 31) == -1 and ctypes.get_errno() == errno.ERANGE
for f in (lambda: os.setxattr(p, name, bytes(32)), lambda: os.setxattr(p, name, v.hex().encode()),
          lambda: os.setxattr(p, name, v[:31]), lambda: os.removexattr(p, name)):
    try:
        f(); raise SystemExit("set/remove allowed")
    except OSError as e:
        assert e.errno == errno.EPERM, e
os.setxattr(p, name, v)                     # its own value: a no-op (cp -a back)
assert os.getxattr(p, name) == v
try:
    os.getxattr(os.path.dirname(p), name); raise SystemExit("a directory has a SHA-256")
except OSError as e:
    assert e.errno == errno.ENODATA, e
listed = name in os.listxattr(p)
assert listed == (mode == "sha256"), os.listxattr(p)
assert "user.casfs.xxh128" in os.listxattr(p)
PY

    # a remount: SHA-256 from the index, a file changed meanwhile hashed again
    for i in 1 2 3 4 5 6 7 8 9 10; do
        head -c $((i * 3000)) /dev/urandom >"$MNT/keep$i"
        wait_for "the release of keep$i" released
        sha_x "$MNT/keep$i" >/dev/null
    done
    casfs_umount "$MNT"
    echo changed >>"$SBACK/keep3"
    casfs_mount --backing "$SBACK" "${opts[@]}" || { fail "remount"; continue; }
    bad=""
    for i in 1 2 3 4 5 6 7 8 9 10; do
        [ "$(sha_x "$MNT/keep$i")" = "$(sha_of "$SBACK/keep$i")" ] || bad="$bad keep$i"
    done
    check_eq "after a remount: every SHA-256 right" "" "$bad"
    check_eq "after a remount: 9 SHA-256 from the index" 9 "$(counter sha256_index_hits)"
    check_eq "after a remount: only the file changed meanwhile read" 1 "$(counter sha256_by_read)"
    sha_right "after a remount: a file written before it" seq2
    casfs_umount "$MNT"
    rm -rf "${SBACK:?}"/*
done
CASFS_NAME_PREFIX=""

# A store index written without SHA-256 (digests known, SHA-256 never asked)
# is read as before; the SHA-256 is then computed once and kept.
casfs_mount --backing "$SBACK" || { fail "mount"; casfs_finish; }
head -c 100000 /dev/urandom >"$MNT/old"
xattr "$MNT/old" >/dev/null
casfs_umount "$MNT"
casfs_mount --backing "$SBACK" || { fail "remount"; casfs_finish; }
check_eq "index without SHA-256: digest from the index" "$(sum_of "$SBACK/old")" "$(xattr "$MNT/old")"
check_eq "index without SHA-256: digest_index_hits" 1 "$(counter digest_index_hits)"
check_eq "index without SHA-256: SHA-256 right" "$(sha_of "$SBACK/old")" "$(sha_x "$MNT/old")"
check_eq "index without SHA-256: SHA-256 read once" 1 "$(counter sha256_by_read)"
casfs_umount "$MNT"
casfs_mount --backing "$SBACK" || { fail "remount"; casfs_finish; }
check_eq "index without SHA-256: then kept across a remount" "$(sha_of "$SBACK/old")" "$(sha_x "$MNT/old")"
check_eq "index without SHA-256: then from the index" "0 1" "$(counter sha256_by_read) $(counter sha256_index_hits)"
casfs_umount "$MNT"
casfs_mount --backing "$BACK" || { fail "mount"; casfs_finish; }

# no_xattr: the kernel stops asking, casfs hash still gets the digest (ioctl).
casfs_umount "$MNT"
casfs_mount --backing "$BACK" -o no_xattr || { fail "mount no_xattr"; casfs_finish; }
getfattr -n user.casfs.xxh128 "$MNT/keep1" >/dev/null 2>&1 && fail "no_xattr: xattr still answered" || ok "no_xattr: xattr not answered"
out=$("$CASFS" hash -v "$MNT/keep1" 2>&1)
echo "$out" | grep -q "from ioctl" && ok "no_xattr: casfs hash uses the ioctl" || fail "no_xattr: $out"
check_eq "no_xattr: ioctl digest right" "$(sum_of "$BACK/keep1")" "$("$CASFS" hash "$MNT/keep1" | cut -d' ' -f1)"
casfs_umount "$MNT"

# -o sha256 serves an xattr, which -o no_xattr turns off: refused, one line
out=$("$CASFS" mount --store "$STORE" --backing "$BACK" -o sha256,no_xattr "$MNT" 2>&1)
rc=$?
check_eq "sha256 with no_xattr: usage error" 2 "$rc"
check_eq "sha256 with no_xattr: one message naming both" \
    "casfs: -o sha256 serves user.casfs.sha256, which -o no_xattr turns off: drop one of them (see 'casfs mount --help')" "$out"
if is_mounted "$MNT"; then fail "sha256 with no_xattr: mounted anyway"; else ok "sha256 with no_xattr: nothing mounted"; fi

casfs_finish
