#!/usr/bin/env bash
# The shared store seen through mounts: two build directories on one store
# with --ingest=all (identical files stored once), .casfs/cas/<hex> reads
# from live files and from blobs, the reserved name, owner-only access,
# corruption detection, a live file changed under an open cas handle, and
# background gc under a small limit while a mount keeps reading.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-300}
. "$(dirname "$0")/lib.sh"
# (mounts are made in this shell, never inside `check`, whose $(...) would
# lose the record the cleanup needs)
casfs_setup
chmod 755 "$T"

A=$T/a
B=$T/b
mkdir -p "$A" "$B"

counter() { casfs_counter "$@"; }
blob_path() { echo "$STORE/objects/${1:0:2}/$1"; }
digest_of() { xxh128sum "$1" 2>/dev/null | cut -d' ' -f1; }

if casfs_mount_at "$A" --ingest=all; then ok "mount A with --ingest=all"; else fail "mount A with --ingest=all"; fi
if casfs_mount_at "$B" -o ingest=all; then ok "mount B with -o ingest=all"; else fail "mount B with -o ingest=all"; fi

# ---- identical files in two build directories are stored once -------------
head -c 1048576 /dev/urandom >"$T/shared.bin"
printf 'int main(void) { return 0; }\n' >"$T/shared.c"
head -c 300000 /dev/urandom >"$T/only_a.bin"
mkdir -p "$A/out/obj" "$B/out/obj"
cp "$T/shared.bin" "$A/out/obj/shared.o"
cp "$T/shared.c" "$A/main.c"
cp "$T/only_a.bin" "$A/out/only_a.o"
check "A: ingest settles" ingest_settle "$A"
cp "$T/shared.bin" "$B/out/obj/shared.o"
cp "$T/shared.c" "$B/main.c"
check "B: ingest settles" ingest_settle "$B"

HS=$(digest_of "$T/shared.bin")
HC=$(digest_of "$T/shared.c")
HA=$(digest_of "$T/only_a.bin")
for h in "$HS" "$HC" "$HA"; do
    [ -f "$(blob_path "$h")" ] && ok "blob $h stored" || fail "blob $h is not in the store"
done
check_eq "shared content stored once (one blob file)" 1 "$(find "$STORE/objects" -name "$HS" | wc -l)"
check_eq "A stored 3 new contents" 3 "$(counter "$A" ingest_stored)"
check_eq "B stored nothing new: both already there" 0 "$(counter "$B" ingest_stored)"
check_eq "B found 2 contents already stored" 2 "$(counter "$B" ingest_existing)"
store_field() {  # store_field MOUNT FIELD: from casfs stats --json
    "$CASFS" stats --json "$1" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['mounts'][0]['store']['$2'])"
}
# wait_field MOUNT FIELD EXPECTED: the daemons commit records in batches,
# just after their queue runs dry
field_is() { [ "$(store_field "$1" "$2")" = "$3" ]; }
wait_field() {
    wait_for "store field $2 = $3" field_is "$1" "$2" "$3" >&2
    store_field "$1" "$2"
}
check_eq "stats: store blob count = blob files" "$(find "$STORE/objects" -type f | wc -l)" \
    "$(wait_field "$B" blobs "$(find "$STORE/objects" -type f | wc -l)")"
check_eq "stats: dedup hits of B's two repeated contents" 2 "$(wait_field "$B" dedup_hits 2)"
dd=$(( $(stat -c %s "$T/shared.bin") + $(stat -c %s "$T/shared.c") ))
check_eq "stats: dedup bytes" "$dd" "$(wait_field "$A" dedup_bytes "$dd")"

# ---- .casfs is reserved, answers everywhere, is never listed --------------
if ls -a "$A" "$A/out" "$A/out/obj" | grep -qx '.casfs'; then fail "ls -a shows .casfs"; else ok "ls -a never shows .casfs"; fi
if find "$A" -name .casfs | grep -q .; then fail "find sees .casfs"; else ok "find never sees .casfs"; fi
[ -d "$A/.casfs" ] && [ -d "$A/out/obj/.casfs/cas" ] && ok ".casfs/cas answers in every directory" ||
    fail ".casfs/cas does not answer lookup"
check_eq ".casfs lists cas and ctl" "cas ctl" "$(ls "$A/.casfs" | tr "\n" " " | sed "s/ $//")"
if ls "$A/.casfs/cas" >/dev/null 2>&1; then fail ".casfs/cas can be listed"; else ok ".casfs/cas cannot be listed"; fi
if mkdir "$A/.casfs" 2>/dev/null; then fail "mkdir .casfs succeeded"; else ok "mkdir .casfs refused"; fi
if rmdir "$A/.casfs" 2>/dev/null; then fail "rmdir .casfs succeeded"; else ok "rmdir .casfs refused"; fi
if mv "$A/main.c" "$A/out/.casfs" 2>/dev/null; then fail "rename onto .casfs succeeded"; else ok "rename onto .casfs refused"; fi
if touch "$A/.casfs/cas/x" 2>/dev/null; then fail "created a file in .casfs/cas"; else ok "nothing can be created in .casfs/cas"; fi

# ---- content reads ---------------------------------------------------------
check "A: cas/<hex> equals the live file" cmp "$T/shared.bin" "$A/.casfs/cas/$HS"
check "A: cas/<hex>.<ext> under a subdirectory" cmp "$T/shared.c" "$A/out/obj/.casfs/cas/$HC.c"
check "B: content written only in A is read from the store" cmp "$T/only_a.bin" "$B/.casfs/cas/$HA"
[ "$(counter "$B" cas_opens_blob)" -ge 1 ] && ok "B: served from a blob" || fail "B: no blob open counted"
check_eq "xattr of a cas file is its digest" "$HS" "$(getfattr --only-values -n user.casfs.xxh128 "$A/.casfs/cas/$HS")"
check_eq "cas file is read-only 0444" "444" "$(stat -c %a "$A/.casfs/cas/$HS")"
check_eq "casfs hash of a cas file" "$HS" "$("$CASFS" hash "$A/.casfs/cas/$HS" | cut -d' ' -f1)"
check_eq "SEEK_DATA/SEEK_HOLE on a cas file" "100 1048576" "$("$PYTHON" -c "
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.lseek(fd, 100, os.SEEK_DATA), os.lseek(fd, 100, os.SEEK_HOLE))" "$A/.casfs/cas/$HS")"
check_eq "cas file size" "1048576" "$(stat -c %s "$B/.casfs/cas/$HS")"
if echo x >>"$A/.casfs/cas/$HS" 2>/dev/null; then fail "wrote to a cas file"; else ok "cas files cannot be written"; fi
for bad in 0123 "$(echo "$HS" | tr a-f A-F)" "${HS}0" "${HS:0:31}" "${HS}." "${HS:0:31}g" ffffffffffffffffffffffffffffffff; do
    if [ -e "$A/.casfs/cas/$bad" ]; then fail "cas/$bad exists"; fi
done
cat "$A/.casfs/cas/0123" 2>"$T/err"; grep -q "No such file" "$T/err" && ok "unknown/malformed hex: ENOENT" ||
    fail "malformed hex: $(cat "$T/err")"
# a content that appears later is found (absence is not cached)
head -c 5000 /dev/urandom >"$T/late.bin"
HL=$(digest_of "$T/late.bin")
[ -e "$A/.casfs/cas/$HL" ] && fail "late content exists before it was written"
cp "$T/late.bin" "$A/late.bin"
check "content written after a failed lookup is found" cmp "$T/late.bin" "$A/.casfs/cas/$HL"

# ---- only the mount's owner reads through cas/ ----------------------------
chmod 644 "$A/main.c"
if runuser -u nobody -- cat "$A/main.c" >/dev/null 2>&1; then
    fail "mount without allow_other let nobody in"
fi
if casfs_umount "$A"; then ok "remount A with allow_other"; else fail "remount A with allow_other"; fi
if casfs_mount_at "$A" --ingest=all -o allow_other; then ok "mount A -o allow_other"; else fail "mount A -o allow_other"; fi
runuser -u nobody -- cat "$A/main.c" >/dev/null 2>"$T/err" && ok "allow_other: another user reads a 0644 file" ||
    fail "another user cannot read a 0644 file: $(cat "$T/err")"
runuser -u nobody -- cat "$A/.casfs/cas/$HC" >/dev/null 2>"$T/err"
grep -q "Permission denied" "$T/err" && ok "allow_other: another user gets EACCES in .casfs/cas" ||
    fail "another user in .casfs/cas: $(cat "$T/err")"
check "owner still reads .casfs/cas" cmp "$T/shared.c" "$A/.casfs/cas/$HC"

# ---- a corrupted blob is detected, quarantined and never served ------------
head -c 200000 /dev/urandom >"$T/victim.bin"
cp "$T/victim.bin" "$A/victim.bin"
check "A: ingest settles (victim)" ingest_settle "$A"
HV=$(digest_of "$T/victim.bin")
BV=$(blob_path "$HV")
[ -f "$BV" ] && ok "victim blob stored" || fail "victim blob missing"
"$PYTHON" - "$BV" <<'PY'
import os, sys
p = sys.argv[1]
os.chmod(p, 0o644)
with open(p, "r+b") as f:
    f.seek(os.path.getsize(p) - 1000)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x55]))
PY
before=$(counter "$B" cas_corrupt)
if cat "$B/.casfs/cas/$HV" >"$T/got" 2>"$T/err"; then
    fail "corrupt blob was served"
else
    grep -q "Input/output error" "$T/err" && ok "corrupt blob: EIO" || fail "corrupt blob: $(cat "$T/err")"
fi
check_eq "corrupt blob counted" "$((before + 1))" "$(counter "$B" cas_corrupt)"
[ ! -e "$BV" ] && ls "$STORE/quarantine" | grep -q "^$HV" && ok "corrupt blob moved to quarantine/" ||
    fail "corrupt blob not quarantined"
check "the live file is still served on A" cmp "$T/victim.bin" "$A/.casfs/cas/$HV"

# ---- a live file changed under an open cas handle is never served new ------
if casfs_umount "$B"; then ok "umount B"; else fail "umount B"; fi
if casfs_mount_at "$B"; then ok "mount B without ingest"; else fail "mount B without ingest"; fi
head -c 4000000 /dev/urandom >"$T/old.bin"
cp "$T/old.bin" "$B/live.bin"
HO=$(digest_of "$T/old.bin")
"$PYTHON" - "$B" "$HO" "$T/old.bin" <<'PY'
import os, sys
mnt, h, old = sys.argv[1], sys.argv[2], sys.argv[3]
ref = open(old, "rb").read()
fd = os.open(f"{mnt}/.casfs/cas/{h}", os.O_RDONLY)
first = os.pread(fd, 4096, 0)
assert first == ref[:4096], "first page differs"
with open(f"{mnt}/live.bin", "r+b") as f:   # the source changes
    f.seek(3000000)
    f.write(b"N" * 4096)
try:
    got = os.pread(fd, 4096, 3000000)
    if got != ref[3000000:3004096]:
        print("FAIL cas handle served bytes of the changed file")
        sys.exit(1)
    print("ok cas handle kept the old content")
except OSError as e:
    print(f"ok cas handle refused to read the changed file ({e.strerror})")
PY
[ $? -eq 0 ] && PASS=$((PASS + 1)) || FAILS=$((FAILS + 1))
if [ -e "$B/.casfs/cas/$HO" ] && cmp -s "$B/.casfs/cas/$HO" "$B/live.bin"; then
    fail "changed file still answers under its old digest"
else
    ok "changed file no longer answers under its old digest"
fi

# ---- gc under a small limit while a mount keeps reading --------------------
if casfs_umount "$A"; then ok "umount A"; else fail "umount A"; fi
if casfs_mount_at "$A" --ingest=all -o max_size=2M; then ok "mount A with a 2 MiB limit"; else fail "mount A with a 2 MiB limit"; fi
# reader STOP: reads blobs through B while A's ingest and gc run, pass after
# pass, until the file STOP exists; STOP.reading appears once it reads
reader() {
    local stop=$1 f h passes=0
    while [ $passes -eq 0 ] || [ ! -e "$stop" ]; do
        passes=$((passes + 1))
        touch "$stop.reading"
        for f in "$T"/gc*.bin; do
            [ -f "$f" ] || continue
            h=$(basename "$f" .bin); h=${h#gc-}
            if cat "$B/.casfs/cas/$h" >"$T/r.out" 2>/dev/null; then
                cmp -s "$T/r.out" "$f" || echo "WRONG $h"
            fi
        done
    done
    echo "# $passes passes"
}
for i in $(seq 1 10); do
    head -c 524288 /dev/urandom >"$T/gc.tmp"
    h=$(digest_of "$T/gc.tmp")
    mv "$T/gc.tmp" "$T/gc-$h.bin"
done
reader "$T/reader.stop" >"$T/reader.out" &
RPID=$!
casfs_extra_cleanup() { kill_job "$RPID"; wait "$RPID" 2>/dev/null; }
for f in "$T"/gc-*.bin; do cp "$f" "$A/$(basename "$f")"; done
check "A: ingest settles (gc)" ingest_settle "$A"
store_used() { find "$STORE/objects" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
under_2m() { [ "$(store_used)" -le 2097152 ]; }
wait_for "background gc to bring the store under 2 MiB" under_2m
used=$(store_used)
[ "$used" -le 2097152 ] && ok "background gc brought the store under 2 MiB ($used bytes)" ||
    fail "store still holds $used bytes over a 2 MiB limit"
[ "$(counter "$A" gc_runs)" -ge 1 ] && ok "gc ran in the daemon" || fail "no gc run counted"
[ "$(counter "$A" gc_evicted)" -ge 1 ] && ok "gc evicted blobs" || fail "no eviction counted"
touch "$T/reader.stop"
wait "$RPID"
if grep -q WRONG "$T/reader.out"; then fail "a reader got wrong content during gc: $(head -n 3 "$T/reader.out")"; else ok "reads during gc were all correct"; fi
# live files are still whole on the mount, whatever gc removed
bad=0
for f in "$T"/gc-*.bin; do cmp -s "$f" "$A/$(basename "$f")" || bad=1; done
check_eq "files on the mount untouched by gc" 0 "$bad"
for f in "$T"/gc-*.bin; do
    h=$(basename "$f" .bin); h=${h#gc-}
    cmp -s "$f" "$A/.casfs/cas/$h" || bad=1
done
check_eq "evicted contents still served from live files" 0 "$bad"

# ---- casfs gc under a new limit while a mount reads ------------------------
reader "$T/reader2.stop" >"$T/reader2.out" &
RPID=$!
wait_for "the reader to start" test -e "$T/reader2.stop.reading"
check "casfs gc --max-size 600K while B reads" "$CASFS" gc --store "$STORE" --max-size 600K
used=$(find "$STORE/objects" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
[ "$used" -le 614400 ] && ok "casfs gc brought the store under 600 KiB ($used bytes)" ||
    fail "store holds $used bytes after gc to 600 KiB"
touch "$T/reader2.stop"
wait "$RPID"
if grep -q WRONG "$T/reader2.out"; then fail "a reader got wrong content during casfs gc"; else ok "reads during casfs gc were all correct"; fi
check "fsck after gc: clean" "$CASFS" fsck --store "$STORE"

# ---- how a mount stores: compression options, and bad values -------------
mkdir -p "$T/d"
if casfs_mount_at "$T/d" --ingest=all -o compression=zstd,zstd_level=19; then ok "mount D with zstd level 19"; else fail "mount D"; fi
yes 'static int answer(void) { return 42; }' | head -c 200000 >"$T/text.c"
cp "$T/text.c" "$T/d/text.c"
ingest_settle "$T/d"
HT=$(digest_of "$T/text.c")
check_eq "compression=zstd: blob is zstd" "01" "$(od -A n -t x1 -j 9 -N 1 "$(blob_path "$HT")" | tr -d ' ')"
[ "$(stat -c %s "$(blob_path "$HT")")" -lt 20000 ] && ok "zstd level 19 shrinks 200 KB of text" ||
    fail "zstd blob is $(stat -c %s "$(blob_path "$HT")") bytes"
check "zstd blob read through cas" cmp "$T/text.c" "$B/.casfs/cas/$HT.c"
if casfs_umount "$T/d"; then ok "umount D"; else fail "umount D"; fi
if casfs_mount_at "$T/d" --ingest=all -o compression=none; then ok "mount D with compression=none"; else fail "mount D (none)"; fi
yes 'int other(void) { return 7; }' | head -c 100000 >"$T/text2.c"
cp "$T/text2.c" "$T/d/text2.c"
ingest_settle "$T/d"
H2=$(digest_of "$T/text2.c")
check_eq "compression=none: blob is raw" "00" "$(od -A n -t x1 -j 9 -N 1 "$(blob_path "$H2")" | tr -d ' ')"
if casfs_umount "$T/d"; then ok "umount D again"; else fail "umount D again"; fi
for bad in "zstd_level=0" "zstd_level=23" "compression=lz4" "ingest=some" "max_size=12Q" "max_size=0"; do
    if timeout 30 "$CASFS" mount --store "$STORE" -o "$bad" "$T/d" 2>"$T/err"; then
        fail "mount -o $bad was accepted"
        casfs_forget "$T/d"; timeout 30 "$CASFS" umount "$T/d"
    else
        grep -q "^casfs: bad" "$T/err" && ok "mount -o $bad refused: $(head -n 1 "$T/err")" || fail "mount -o $bad: $(cat "$T/err")"
    fi
done
if timeout 30 "$CASFS" mount --store "$STORE" --ingest=maybe "$T/d" 2>"$T/err"; then
    fail "--ingest=maybe accepted"; timeout 30 "$CASFS" umount "$T/d"
else
    grep -q "bad value 'maybe' for --ingest" "$T/err" && ok "--ingest=maybe refused" || fail "--ingest=maybe: $(cat "$T/err")"
fi

# ---- a read through cas/ records the content's use (gc goes by it) --------
# The open does not wait for an index transaction: the use is committed
# with the mount's deferred records (a timer, gc, unmount).  Three contents
# stored a second apart, the oldest read through a mount D that is then
# unmounted: gc down to one of them keeps the one just read.
check "casfs gc --max-size 1G (room again)" "$CASFS" gc --store "$STORE" --max-size 1G
for i in 1 2 3; do
    head -c 400000 /dev/urandom >"$T/lru$i"
    "$CASFS" put --store "$STORE" "$T/lru$i" >/dev/null || fail "put lru$i"
    sleep 1.1
done
L1=$(digest_of "$T/lru1"); L2=$(digest_of "$T/lru2"); L3=$(digest_of "$T/lru3")
if casfs_mount_at "$T/d"; then ok "mount D to read through cas"; else fail "mount D to read through cas"; fi
check "the oldest content read through cas" cmp "$T/lru1" "$T/d/.casfs/cas/$L1"
if casfs_umount "$T/d"; then ok "umount D after the read"; else fail "umount D after the read"; fi
check "casfs gc --max-size 500K" "$CASFS" gc --store "$STORE" --max-size 500K
[ -f "$(blob_path "$L1")" ] && ok "gc kept the content read last" || fail "gc evicted the content just read through cas"
[ ! -f "$(blob_path "$L2")" ] && [ ! -f "$(blob_path "$L3")" ] && ok "gc evicted the two not read since" ||
    fail "gc kept a content used less recently than the one it kept"

# ---- kill -9 of a daemon while it ingests: fsck has nothing to repair ------
check "casfs gc --max-size 1G" "$CASFS" gc --store "$STORE" --max-size 1G
mkdir -p "$T/c"
if casfs_mount_at "$T/c" --ingest=all; then ok "mount C with --ingest=all"; else fail "mount C with --ingest=all"; fi
( for i in $(seq 1 2000); do head -c $(( (i % 50) * 4099 + 1 )) /dev/urandom >"$T/c/f$i" 2>/dev/null || exit 0; done ) &
WPID=$!
ingesting() { [ "$(counter "$T/c" ingest_stored)" -ge 20 ]; }
wait_for "the daemon to ingest its first files" ingesting
CPID=$(casfs_recorded_pid "$T/c")
stored_before=$(counter "$T/c" ingest_stored)
if [ -n "$CPID" ] && kill -9 "$CPID"; then ok "kill -9 the daemon after $stored_before ingested files"; else fail "no daemon pid for $T/c"; fi
wait "$WPID"
if casfs_umount "$T/c"; then ok "umount the dead mount"; else fail "umount the dead mount"; fi
"$CASFS" fsck --store "$STORE" >"$T/fsck.out" 2>&1
rc=$?
check_eq "fsck after kill -9: exit 0" 0 "$rc"
grep -Eq "^(corrupt|missing|mismatch|unknown|totals) " "$T/fsck.out" && fail "fsck found problems: $(head -n 3 "$T/fsck.out")" ||
    ok "fsck after kill -9: no problem (only temp files, if any)"
n=$(find "$STORE/objects" -name '.tmp-*' | wc -l)
check_eq "no temp file left after fsck" 0 "$n"

casfs_finish
