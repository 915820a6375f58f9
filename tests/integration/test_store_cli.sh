#!/bin/bash
# The content store from the command line, no mount: casfs put / get / gc /
# fsck / store with real files.  put prints what xxh128sum prints; identical
# contents are stored once; get restores byte-identical files with a fresh
# mtime (zstd and uncompressed blobs); a blob corrupted on disk is refused,
# quarantined, and fsck is then clean; fsck finds corrupt, truncated, unknown
# and missing blobs (exit 1) and --repair fixes them; puts killed with
# SIGKILL leave a store that fsck passes and whose every blob restores; gc
# --max-size evicts least recently used first and keeps the limit; and the
# error cases give one "casfs: " line and the documented exit status.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-240}
. "$(dirname "$0")/lib.sh"

BGPID=""
casfs_extra_cleanup() {
    if [ -n "$BGPID" ]; then kill_job "-$BGPID" KILL; fi
}

casfs_setup

C=$CASFS
D=$T/data
mkdir -p "$D" "$T/out"

# json STORE KEY: a field of `casfs store --json`
json() {
    timeout 30 "$C" store --store "$1" --json | "$PYTHON" -c '
import json, sys
v = json.load(sys.stdin)[sys.argv[1]]
print("null" if v is None else str(v).lower() if isinstance(v, bool) else v)' "$2"
}

# nobjects STORE: blob files under objects/
nobjects() { find "$1/objects" -type f | wc -l; }

# blob_path STORE HEX
blob_path() { echo "$1/objects/${2:0:2}/$2"; }

# flip_byte FILE OFFSET: invert the bits of one byte in place
flip_byte() {
    "$PYTHON" - "$1" "$2" <<'PY'
import os, sys
path, off = sys.argv[1], int(sys.argv[2])
os.chmod(path, 0o644)
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xff]))
os.chmod(path, 0o444)
PY
}

digest_of() { xxh128sum "$1" | cut -c1-32; }

# expect_err NAME RC PATTERN CMD...: CMD exits with status RC (1 failure,
# 2 usage error) and its stderr is one line that starts with "casfs: " and
# contains PATTERN.
expect_err() {
    local name=$1 want=$2 pat=$3 rc first n
    shift 3
    timeout 60 "$@" >"$T/e.out" 2>"$T/e.err"
    rc=$?
    first=$(head -n 1 "$T/e.err")
    n=$(wc -l <"$T/e.err")
    if [ "$rc" -ne "$want" ]; then
        fail "$name: exit status $rc, expected $want (stderr: $(head -c 300 "$T/e.err" | tr '\n' '|'))"
    elif [ "${first#casfs: }" = "$first" ]; then
        fail "$name: stderr does not start with 'casfs: ': $first"
    elif [ "$n" -ne 1 ]; then
        fail "$name: expected one stderr line, got $n: $(head -c 300 "$T/e.err" | tr '\n' '|')"
    elif ! grep -qF -- "$pat" <<<"$first"; then
        fail "$name: message lacks '$pat': $first"
    else
        ok "$name ($first)"
    fi
}

# ---------------------------------------------------------------- data ---
"$PYTHON" - "$D" <<'PY'
import os, random, sys
d = sys.argv[1]
rnd = random.Random(42)
def w(name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
w("empty", b"")
w("small.txt", b"hello casfs\n")
w("random-1m", rnd.randbytes(1 << 20))
w("text-3m", b"".join(b"line %d of a compressible file\n" % i for i in range(100000)))
w("with space", rnd.randbytes(5000))
w("text-b", b"".join(b"another %d compressible line\n" % i for i in range(40000)))
w("text-c", b"".join(b"yet another %d line\n" % i for i in range(40000)))
for n in "ABCD":
    w("lru-" + n, rnd.randbytes(100 * 1024))
w("corrupt-raw", rnd.randbytes(200 * 1024))
os.makedirs(os.path.join(d, "kill"))
for i in range(600):
    size = rnd.choice([4096, 65536, 300000, 1 << 20])
    if i % 2:
        data = (b"kill file %d " % i) * (size // 12)
    else:
        data = rnd.randbytes(size)
    w("kill/f%03d" % i, data)
PY

# ------------------------------------------------- put digests, dedup ---
S=$T/s-put
FILES=("$D/empty" "$D/small.txt" "$D/random-1m" "$D/text-3m" "$D/with space")
if timeout 60 "$C" put --store "$S" "${FILES[@]}" >"$T/put.out" 2>"$T/put.err"; then
    ok "put_exit_0"
else
    fail "put_exit_0: $(head -c 300 "$T/put.err")"
fi
xxh128sum "${FILES[@]}" >"$T/xxh.out"
if cmp -s "$T/put.out" "$T/xxh.out"; then
    ok "put_output_is_xxh128sum"
else
    fail "put_output_is_xxh128sum: $(diff "$T/put.out" "$T/xxh.out" | head -5 | tr '\n' '|')"
fi
check_eq "put_blob_count" 5 "$(json "$S" blobs)"
check_eq "put_objects_on_disk" 5 "$(nobjects "$S")"
logical=$(( $(cat "${FILES[@]}" | wc -c) ))
check_eq "put_logical_bytes" "$logical" "$(json "$S" logical)"
check_eq "store_exists" true "$(json "$S" exists)"

# identical contents, twice and under another name: stored once
SD=$T/s-dedup
cp "$D/random-1m" "$D/copy-1m"
o1=$(timeout 60 "$C" put --store "$SD" "$D/random-1m")
o2=$(timeout 60 "$C" put --store "$SD" "$D/copy-1m")
h=$(digest_of "$D/random-1m")
check_eq "dedup_same_digest" "$h  $D/copy-1m" "$o2"
check_eq "dedup_first_digest" "$h  $D/random-1m" "$o1"
check_eq "dedup_one_object" 1 "$(nobjects "$SD")"
check_eq "dedup_blobs" 1 "$(json "$SD" blobs)"
check_eq "dedup_hits" 1 "$(json "$SD" dedup_hits)"
check_eq "dedup_bytes" 1048576 "$(json "$SD" dedup_bytes)"
timeout 60 "$C" put --store "$SD" "$D/random-1m" "$D/copy-1m" >/dev/null
check_eq "dedup_hits_after_two_more" 3 "$(json "$SD" dedup_hits)"
check_eq "dedup_still_one_object" 1 "$(nobjects "$SD")"
if timeout 30 "$C" store --store "$SD" | grep -q '^dedup .*saved by 3 repeated puts$'; then
    ok "store_text_dedup"
else
    fail "store_text_dedup: $(timeout 30 "$C" store --store "$SD" | tr '\n' '|')"
fi

# ------------------------------------------------------------------ get ---
touch -d '2001-01-01 00:00:00' "$D/text-3m"
for f in "${FILES[@]}"; do
    h=$(digest_of "$f")
    out="$T/out/$(basename "$f").restored"
    if timeout 60 "$C" get --store "$S" "$h" "$out" 2>"$T/get.err" && cmp -s "$f" "$out"; then
        ok "get_roundtrip $(basename "$f")"
    else
        fail "get_roundtrip $(basename "$f"): $(head -c 300 "$T/get.err")"
    fi
done
now=$(date +%s)
mt=$(stat -c %Y "$T/out/text-3m.restored")
if [ $((now - mt)) -le 60 ] && [ $((now - mt)) -ge -5 ]; then ok "get_fresh_mtime"; else fail "get_fresh_mtime: mtime $mt, now $now"; fi
check_eq "get_mode_0666_minus_umask" 644 "$(stat -c %a "$T/out/text-3m.restored")"
# into a directory: DEST/HEX; over an existing file: replaced
h=$(digest_of "$D/small.txt")
mkdir -p "$T/out/dir"
timeout 60 "$C" get --store "$S" "$h" "$T/out/dir"
if cmp -s "$D/small.txt" "$T/out/dir/$h"; then ok "get_into_directory"; else fail "get_into_directory: $(ls "$T/out/dir")"; fi
echo "old content" >"$T/out/existing"
timeout 60 "$C" get --store "$S" "$h" "$T/out/existing"
if cmp -s "$D/small.txt" "$T/out/existing"; then ok "get_replaces_existing"; else fail "get_replaces_existing"; fi
H_UPPER=$(echo "$h" | tr a-f A-F)
if timeout 60 "$C" get --store "$S" "$H_UPPER" "$T/out/upper" && cmp -s "$D/small.txt" "$T/out/upper"; then
    ok "get_upper_case_hex"
else
    fail "get_upper_case_hex"
fi

# ------------------------------------------------------ zstd and none ---
SZ=$T/s-modes
hb=$(digest_of "$D/text-b")
hc=$(digest_of "$D/text-c")
timeout 60 "$C" put --store "$SZ" --compression zstd --level 19 "$D/text-b" >/dev/null
timeout 60 "$C" put --store "$SZ" --compression none "$D/text-c" >/dev/null
comp() { od -An -tu1 -j9 -N1 "$1" | tr -d ' '; }
check_eq "zstd_blob_compressed" 1 "$(comp "$(blob_path "$SZ" "$hb")")"
check_eq "none_blob_raw" 0 "$(comp "$(blob_path "$SZ" "$hc")")"
zsize=$(stat -c %s "$(blob_path "$SZ" "$hb")")
bsize=$(stat -c %s "$D/text-b")
if [ "$zsize" -lt $((bsize / 4)) ]; then ok "zstd_blob_smaller ($zsize < $bsize/4)"; else fail "zstd_blob_smaller: $zsize vs $bsize"; fi
check_eq "none_blob_size" $(($(stat -c %s "$D/text-c") + 64)) "$(stat -c %s "$(blob_path "$SZ" "$hc")")"
for p in "text-b $hb" "text-c $hc"; do
    set -- $p
    if timeout 60 "$C" get --store "$SZ" "$2" "$T/out/$1" && cmp -s "$D/$1" "$T/out/$1"; then
        ok "modes_roundtrip $1"
    else
        fail "modes_roundtrip $1"
    fi
done
ratio_ok=$("$PYTHON" -c 'import sys; print(1 if float(sys.argv[1]) > 1.5 else 0)' "$(json "$SZ" compression_ratio)")
check_eq "store_compression_ratio" 1 "$ratio_ok"

# ------------------------------------------- corrupt blob refused by get ---
SC=$T/s-corrupt
hr=$(digest_of "$D/corrupt-raw")
timeout 60 "$C" put --store "$SC" --compression none "$D/corrupt-raw" >/dev/null
timeout 60 "$C" put --store "$SC" --compression zstd "$D/text-b" >/dev/null
flip_byte "$(blob_path "$SC" "$hr")" $((64 + 1000))
expect_err "get_corrupt_raw_refused" 1 "blob $hr failed verification and was quarantined" \
    "$C" get --store "$SC" "$hr" "$T/out/corrupt"
if [ ! -e "$T/out/corrupt" ]; then ok "get_corrupt_wrote_nothing"; else fail "get_corrupt_wrote_nothing"; fi
if [ ! -e "$(blob_path "$SC" "$hr")" ] && [ -n "$(find "$SC/quarantine" -name "$hr.*")" ]; then
    ok "get_corrupt_quarantined"
else
    fail "get_corrupt_quarantined: objects=$(find "$SC/objects" -type f | tr '\n' ' ') quarantine=$(ls "$SC/quarantine" | tr '\n' ' ')"
fi
zp=$(blob_path "$SC" "$hb")
flip_byte "$zp" $(($(stat -c %s "$zp") / 2))
expect_err "get_corrupt_zstd_refused" 1 "blob $hb failed verification and was quarantined" \
    "$C" get --store "$SC" "$hb" "$T/out/corrupt-z"
check_eq "corrupt_counted" 2 "$(json "$SC" corrupt)"
check_eq "corrupt_blobs_left" 0 "$(json "$SC" blobs)"
if timeout 60 "$C" fsck --store "$SC" >"$T/fsck.out" 2>&1; then
    ok "fsck_clean_after_quarantine ($(tail -n 1 "$T/fsck.out"))"
else
    fail "fsck_clean_after_quarantine: $(tr '\n' '|' <"$T/fsck.out")"
fi
# put again: served again
timeout 60 "$C" put --store "$SC" "$D/corrupt-raw" >/dev/null
if timeout 60 "$C" get --store "$SC" "$hr" "$T/out/corrupt" && cmp -s "$D/corrupt-raw" "$T/out/corrupt"; then
    ok "put_again_after_quarantine"
else
    fail "put_again_after_quarantine"
fi

# ---------------------------------------------------- fsck and repair ---
SF=$T/s-fsck
timeout 60 "$C" put --store "$SF" --compression none "$D/lru-A" "$D/lru-B" "$D/lru-C" >/dev/null
timeout 60 "$C" put --store "$SF" "$D/text-b" "$D/text-c" "$D/small.txt" >/dev/null
hA=$(digest_of "$D/lru-A")
hB=$(digest_of "$D/lru-B")
hC=$(digest_of "$D/lru-C")
check "fsck_clean_store" timeout 60 "$C" fsck --store "$SF"
flip_byte "$(blob_path "$SF" "$hA")" 5000             # corrupt payload
truncate -s 1000 "$(blob_path "$SF" "$hB")"            # truncated
rm -f "$(blob_path "$SF" "$hC")"                       # record without blob
echo junk >"$SF/objects/${hA:0:2}/notablob"            # unknown file
timeout 60 "$C" fsck --store "$SF" >"$T/fsck.out" 2>"$T/fsck.err"
rc=$?
check_eq "fsck_problems_exit_1" 1 "$rc"
grep -q "^corrupt objects/${hA:0:2}/$hA: content does not match its digest\$" "$T/fsck.out" &&
    ok "fsck_reports_corrupt" || fail "fsck_reports_corrupt: $(tr '\n' '|' <"$T/fsck.out")"
grep -q "^corrupt objects/${hB:0:2}/$hB: truncated" "$T/fsck.out" &&
    ok "fsck_reports_truncated" || fail "fsck_reports_truncated: $(tr '\n' '|' <"$T/fsck.out")"
grep -q "^missing objects/${hC:0:2}/$hC: " "$T/fsck.out" &&
    ok "fsck_reports_missing" || fail "fsck_reports_missing: $(tr '\n' '|' <"$T/fsck.out")"
grep -q "^unknown objects/${hA:0:2}/notablob: " "$T/fsck.out" &&
    ok "fsck_reports_unknown" || fail "fsck_reports_unknown: $(tr '\n' '|' <"$T/fsck.out")"
grep -q "^fsck: 3 blobs ok, 2 corrupt, 1 unknown files, 1 records without a blob" "$T/fsck.out" &&
    ok "fsck_summary" || fail "fsck_summary: $(tail -n 1 "$T/fsck.out")"
grep -q "^casfs: fsck: 4 problems found: run casfs fsck --repair\$" "$T/fsck.err" &&
    ok "fsck_says_repair" || fail "fsck_says_repair: $(tr '\n' '|' <"$T/fsck.err")"
if timeout 60 "$C" fsck --store "$SF" --repair >"$T/fsck.out" 2>&1; then
    ok "fsck_repair_exit_0 ($(tail -n 1 "$T/fsck.out"))"
else
    fail "fsck_repair_exit_0: $(tr '\n' '|' <"$T/fsck.out")"
fi
if timeout 60 "$C" fsck --store "$SF" >"$T/fsck.out" 2>&1; then
    ok "fsck_clean_after_repair ($(tail -n 1 "$T/fsck.out"))"
else
    fail "fsck_clean_after_repair: $(tr '\n' '|' <"$T/fsck.out")"
fi
check_eq "repair_blobs_match_objects" "$(nobjects "$SF")" "$(json "$SF" blobs)"
check_eq "repair_blobs_left" 3 "$(json "$SF" blobs)"
# a fresh put of the damaged contents is whole again
timeout 60 "$C" put --store "$SF" "$D/lru-A" "$D/lru-B" "$D/lru-C" >/dev/null
if timeout 60 "$C" get --store "$SF" "$hB" "$T/out/B" && cmp -s "$D/lru-B" "$T/out/B"; then
    ok "repaired_store_usable"
else
    fail "repaired_store_usable"
fi

# ------------------------------------------------ kill -9 during puts ---
SK=$T/s-kill
mapfile -t KF < <(ls "$D"/kill/f*)
# round_stored N: more than N blobs in the store, or the round's puts ended
round_stored() { { [ -d "$SK/objects" ] && [ "$(nobjects "$SK")" -gt "$1" ]; } || ! kill -0 "$BGPID" 2>/dev/null; }
for round in 0 1 2 3 4; do
    # 120 files per round, a few per casfs put, in their own process group,
    # killed once the round has stored something, a little later each round
    part=("${KF[@]:$((round * 120)):120}")
    before=$( [ -d "$SK/objects" ] && nobjects "$SK" || echo 0)
    setsid bash -c '
        C=$1; S=$2; shift 2
        mode=(auto zstd none)
        i=0
        while [ $# -gt 0 ]; do
            "$C" put --store "$S" --compression "${mode[$((i % 3))]}" "${@:1:3}" >/dev/null 2>&1
            shift $(($# < 3 ? $# : 3))
            i=$((i + 1))
        done' _ "$C" "$SK" "${part[@]}" &
    BGPID=$!
    wait_for "round $round to store a blob" round_stored "$before"
    sleep "0.$((1 + round))"
    kill -KILL -- "-$BGPID" 2>/dev/null
    wait "$BGPID" 2>/dev/null
    BGPID=""
done
log "after the kills: $(nobjects "$SK") blobs, $(find "$SK" -name '.tmp-*' | wc -l) temp files"
if timeout 120 "$C" fsck --store "$SK" >"$T/fsck.out" 2>&1; then
    ok "kill9_fsck_clean ($(tail -n 1 "$T/fsck.out"))"
else
    fail "kill9_fsck_clean: $(tail -n 5 "$T/fsck.out" | tr '\n' '|')"
fi
n=$(nobjects "$SK")
if [ "$n" -gt 0 ]; then ok "kill9_some_blobs_stored ($n)"; else fail "kill9_some_blobs_stored: none"; fi
check_eq "kill9_records_match_blobs" "$n" "$(json "$SK" blobs)"
bad=0
checked=0
while read -r b; do
    checked=$((checked + 1))
    if ! timeout 60 "$C" get --store "$SK" "$b" "$T/out/k" 2>>"$T/kget.err" ||
        [ "$(digest_of "$T/out/k")" != "$b" ]; then
        bad=$((bad + 1))
    fi
done < <(find "$SK/objects" -type f -printf '%f\n')
check_eq "kill9_every_blob_checked" "$n" "$checked"
check_eq "kill9_every_blob_restores_verified" 0 "$bad"
# the store still takes puts
timeout 60 "$C" put --store "$SK" "$D/text-c" >/dev/null
check "kill9_store_usable" timeout 60 "$C" get --store "$SK" "$(digest_of "$D/text-c")" "$T/out/k"

# ------------------------------------------------------------ gc, LRU ---
SG=$T/s-gc
hA=$(digest_of "$D/lru-A")
hB=$(digest_of "$D/lru-B")
hC=$(digest_of "$D/lru-C")
hD=$(digest_of "$D/lru-D")
timeout 60 "$C" put --store "$SG" --compression none "$D/lru-A" >/dev/null
sleep 1.1
timeout 60 "$C" put --store "$SG" --compression none "$D/lru-B" >/dev/null
sleep 1.1
timeout 60 "$C" put --store "$SG" --compression none "$D/lru-C" >/dev/null
timeout 60 "$C" get --store "$SG" "$hA" "$T/out/A"     # A is now the most recently used
before=$(json "$SG" stored)
check_eq "gc_before" $((3 * (102400 + 64))) "$before"
if timeout 60 "$C" gc --store "$SG" --max-size 250K >"$T/gc.out" 2>"$T/gc.err"; then
    ok "gc_exit_0"
else
    fail "gc_exit_0: $(tr '\n' '|' <"$T/gc.err")"
fi
grep -q '^evicted  1 blob ' "$T/gc.out" && ok "gc_summary_evicted" || fail "gc_summary_evicted: $(tr '\n' '|' <"$T/gc.out")"
grep -q '^limit    250 KiB (256000 bytes), set now$' "$T/gc.out" && ok "gc_summary_limit" ||
    fail "gc_summary_limit: $(tr '\n' '|' <"$T/gc.out")"
if [ -s "$T/gc.err" ]; then fail "gc_no_progress_bar_off_a_terminal: $(head -c 200 "$T/gc.err")"; else ok "gc_no_progress_bar_off_a_terminal"; fi
stored=$(json "$SG" stored)
if [ "$stored" -le 256000 ]; then ok "gc_under_limit ($stored)"; else fail "gc_under_limit: $stored"; fi
present() { [ -e "$(blob_path "$SG" "$1")" ] && echo yes || echo no; }
check_eq "gc_evicted_oldest_B" "no yes yes" "$(present "$hB") $(present "$hA") $(present "$hC")"
check_eq "gc_evictions_counted" 1 "$(json "$SG" evictions)"
check_eq "gc_evicted_bytes" $((102400 + 64)) "$(json "$SG" evicted_bytes)"
check_eq "gc_limit_persistent" 256000 "$(json "$SG" max_size)"
check_eq "gc_limit_not_default" false "$(json "$SG" max_size_default)"
expect_err "get_evicted" 1 "is not in the store" "$C" get --store "$SG" "$hB" "$T/out/B2"
# a put over the limit collects by itself: C (used before A) goes next
sleep 1.1
timeout 60 "$C" put --store "$SG" --compression none "$D/lru-D" >/dev/null
check_eq "put_collects_over_limit" "no yes yes" "$(present "$hC") $(present "$hA") $(present "$hD")"
stored=$(json "$SG" stored)
if [ "$stored" -le 256000 ]; then ok "put_gc_under_limit ($stored)"; else fail "put_gc_under_limit: $stored"; fi
timeout 60 "$C" gc --store "$SG" >"$T/gc.out" 2>&1
check_eq "gc_without_max_size_keeps_limit" 256000 "$(json "$SG" max_size)"
grep -q 'nothing to evict' "$T/gc.out" && ok "gc_nothing_to_evict" || fail "gc_nothing_to_evict: $(tr '\n' '|' <"$T/gc.out")"
check "fsck_after_gc" timeout 60 "$C" fsck --store "$SG"

# sizes
SS=$T/s-sizes
timeout 60 "$C" put --store "$SS" "$D/small.txt" >/dev/null || fail "put_creates_size_store"
for p in "5G 5368709120" "500M 524288000" "1.5GiB 1610612736" "123456 123456" "10KB 10240" "2t 2199023255552" \
    "0.5K 512" "64MiB 67108864"; do
    set -- $p
    timeout 60 "$C" gc --store "$SS" --max-size "$1" >/dev/null 2>&1
    check_eq "size_$1" "$2" "$(json "$SS" max_size)"
done
for s in 12Q "" 0 -5 1.5 5GB5 "5 G" 99999999999999999999 20000000000T 1.5Gi; do
    expect_err "gc_bad_size '$s'" 2 "--max-size" "$C" gc --store "$SS" --max-size "$s"
done
check_eq "bad_size_left_limit" 67108864 "$(json "$SS" max_size)"

# ---------------------------------------------------------------- errors ---
SE=$T/s-err
# only put (and mount) create a store: a mistyped --store is refused by the
# commands that read or check one, and nothing is created there
for cmd in "fsck" "gc" "gc --max-size 1G" "store" "store --json" "get 0123456789abcdef0123456789abcdef $T/out/x"; do
    read -ra args <<<"$cmd"
    expect_err "mistyped_store: $cmd" 1 "store $SE does not exist: check --store" "$C" "${args[0]}" --store "$SE" \
        "${args[@]:1}"
    if [ ! -e "$SE" ]; then ok "mistyped_store: $cmd: nothing created"; else fail "mistyped_store: $cmd created $SE"; rm -rf "$SE"; fi
done
mkdir -p "$T/empty-dir"
for cmd in fsck gc store; do
    expect_err "empty_dir_not_a_store: $cmd" 1 "store $T/empty-dir is not a casfs store (it has no FORMAT file)" \
        "$C" "$cmd" --store "$T/empty-dir"
done
check_eq "empty_dir_untouched" "" "$(ls -A "$T/empty-dir")"
# the digest is checked before the store: a usage error
expect_err "get_malformed_hex" 2 "'xyz' is not a digest: give the 32 hex characters" "$C" get --store "$SE" xyz "$T/out/x"
expect_err "get_hex_31" 2 "is not a digest" "$C" get --store "$SE" 0123456789abcdef0123456789abcde "$T/out/x"
expect_err "get_hex_33" 2 "is not a digest" "$C" get --store "$SE" 0123456789abcdef0123456789abcdef0 "$T/out/x"
expect_err "get_hex_non_hex" 2 "is not a digest" "$C" get --store "$SE" 0123456789abcdef0123456789abcdeg "$T/out/x"
timeout 60 "$C" put --store "$SE" "$D/small.txt" >/dev/null || fail "put_creates_error_store"
check_eq "get_upper_case_hex" "" "$(timeout 60 "$C" get --store "$SE" "$(digest_of "$D/small.txt" | tr a-f A-F)" "$T/out/upper" 2>&1)"
check "get_upper_case_hex_restores" cmp "$D/small.txt" "$T/out/upper"
rm -f "$T/out/upper"
expect_err "get_absent" 1 "0123456789abcdef0123456789abcdef is not in the store" \
    "$C" get --store "$SE" 0123456789abcdef0123456789abcdef "$T/out/x"
expect_err "get_dest_dir_missing" 1 "directory $T/nowhere does not exist" \
    "$C" get --store "$SE" 0123456789abcdef0123456789abcdef "$T/nowhere/x"
if [ ! -e "$T/out/x" ]; then ok "get_errors_wrote_nothing"; else fail "get_errors_wrote_nothing"; fi
expect_err "put_missing_file" 1 "put: $T/no-such-file: no such file" "$C" put --store "$SE" "$T/no-such-file"
expect_err "put_directory" 1 "put: $D/kill: is a directory" "$C" put --store "$SE" "$D/kill"
# per-file errors: the good files are stored all the same
timeout 60 "$C" put --store "$SE" "$T/no-such-file" "$D/small.txt" "$D/kill" "$D/text-c" >"$T/p.out" 2>"$T/p.err"
rc=$?
check_eq "put_partial_exit_1" 1 "$rc"
check_eq "put_partial_stdout" "$(xxh128sum "$D/small.txt" "$D/text-c")" "$(cat "$T/p.out")"
check_eq "put_partial_error_lines" 2 "$(grep -c '^casfs: put: ' "$T/p.err")"
check_eq "put_partial_stored" 2 "$(json "$SE" blobs)"
# an unreadable file, as a user root's permissions do not apply to
chmod 000 "$D/text-b"
chmod 711 "$T"
mkdir -p "$T/s-nobody"
chown nobody "$T/s-nobody"
NOBODY_C=$(casfs_for_user nobody)
expect_err "put_unreadable" 1 "put: $D/text-b: cannot be read (permission denied)" \
    runuser -u nobody -- env HOME=/tmp "$NOBODY_C" put --store "$T/s-nobody" "$D/text-b"
chmod 644 "$D/text-b"
touch "$T/afile"
expect_err "store_is_a_file" 1 "store $T/afile is not a directory: check --store" "$C" put --store "$T/afile" "$D/small.txt"
mkdir -p "$T/newer"
echo "casfs-store 99" >"$T/newer/FORMAT"
expect_err "store_newer_format" 1 "was written by a newer casfs" "$C" put --store "$T/newer" "$D/small.txt"
expect_err "store_newer_format_get" 1 "was written by a newer casfs" "$C" get --store "$T/newer" "$hA" "$T/out/x"
check_eq "newer_store_untouched" "FORMAT" "$(ls "$T/newer")"
mkdir -p "$T/notastore"
echo precious >"$T/notastore/notes.txt"
expect_err "store_non_empty_dir" 1 "not a casfs store" "$C" put --store "$T/notastore" "$D/small.txt"
check_eq "non_empty_dir_untouched" "notes.txt" "$(ls "$T/notastore")"
expect_err "put_unknown_option" 2 "unknown option '--bogus'" "$C" put --store "$SE" --bogus "$D/small.txt"
expect_err "put_bad_compression" 2 "bad value 'lz4' for --compression" "$C" put --store "$SE" --compression lz4 "$D/small.txt"
expect_err "put_bad_level" 2 "bad value '0' for --level" "$C" put --store "$SE" --level 0 "$D/small.txt"
expect_err "put_no_file" 2 "put needs at least one FILE" "$C" put --store "$SE"
expect_err "get_one_arg" 2 "get needs HEX and DEST" "$C" get --store "$SE" "$hA"
expect_err "fsck_unknown_option" 2 "unknown option '--fix'" "$C" fsck --store "$SE" --fix
expect_err "store_missing_value" 2 "option '--store' needs a value" "$C" store --store
expect_err "store_empty_value" 2 "--store needs a directory" "$C" fsck --store ""
for cmd in put get gc fsck store; do
    if timeout 10 "$C" "$cmd" --help >"$T/h.out" 2>"$T/h.err" && grep -q "^usage: casfs $cmd " "$T/h.out" && [ ! -s "$T/h.err" ]; then
        ok "help_$cmd"
    else
        fail "help_$cmd: $(head -c 200 "$T/h.out" "$T/h.err")"
    fi
done
if timeout 10 "$C" help | grep -q '^  put \[--store DIR\]'; then ok "usage_lists_put"; else fail "usage_lists_put"; fi

# casfs store on a user's default store before its first use (no --store,
# no $CASFS_STORE): reported empty, not created
mkdir -p "$T/home"
out=$(env -u CASFS_STORE -u XDG_CACHE_HOME HOME="$T/home" timeout 10 "$C" store --json)
check_eq "store_default_absent" "{\"path\":\"$T/home/.cache/casfs\",\"exists\":false,\"blobs\":0" "${out%%,\"logical\"*}"
if [ ! -e "$T/home/.cache" ]; then ok "store_default_absent_not_created"; else fail "store_default_absent_not_created"; fi
if timeout 10 "$C" store --store "$SG" >"$T/st.out" && grep -q "^limit        250 KiB (256000 bytes), " "$T/st.out" &&
    grep -q "^store        $SG\$" "$T/st.out"; then
    ok "store_text"
else
    fail "store_text: $(tr '\n' '|' <"$T/st.out")"
fi
# CASFS_STORE is the default store
if CASFS_STORE=$SE timeout 10 "$C" store --json | grep -q "\"path\":\"$SE\""; then ok "casfs_store_env"; else fail "casfs_store_env"; fi

# Reflinks: on XFS (a loop-mounted image) put shares the file's blocks with
# the blob (payload at offset 4096) and get shares them again.  Skipped where
# mkfs.xfs or loop mounts are missing.
XFS_IMG=$T/xfs.img XFS_MNT=$T/xfs
casfs_extra_cleanup() {
    if mountpoint -q "$XFS_MNT" 2>/dev/null; then umount "$XFS_MNT" || umount -l "$XFS_MNT"; fi
}
mkdir -p "$XFS_MNT"
if command -v mkfs.xfs >/dev/null && command -v filefrag >/dev/null && truncate -s 400M "$XFS_IMG" &&
    mkfs.xfs -q -m reflink=1 "$XFS_IMG" 2>/dev/null && mount -o loop "$XFS_IMG" "$XFS_MNT" 2>/dev/null; then
    shared() { filefrag -v "$1" 2>/dev/null | grep -q shared; }
    head -c 3000000 /dev/urandom >"$XFS_MNT/src.bin"
    hR=$(digest_of "$XFS_MNT/src.bin")
    check_eq "reflink_put" "$hR  $XFS_MNT/src.bin" "$(timeout 30 "$C" put --store "$XFS_MNT/st" "$XFS_MNT/src.bin")"
    bR="$XFS_MNT/st/objects/${hR:0:2}/$hR"
    check_eq "reflink_payload_aligned" "00100000" "$(od -A n -t x1 -j 12 -N 4 "$bR" | tr -d ' \n')"
    if shared "$bR"; then ok "reflink_blob_shares_blocks"; else fail "reflink_blob_shares_blocks: $(filefrag -v "$bR" | tr '\n' '|')"; fi
    check "reflink_get" timeout 30 "$C" get --store "$XFS_MNT/st" "$hR" "$XFS_MNT/out.bin"
    check "reflink_get_same_bytes" cmp "$XFS_MNT/src.bin" "$XFS_MNT/out.bin"
    if shared "$XFS_MNT/out.bin"; then ok "reflink_restore_shares_blocks"; else fail "reflink_restore_shares_blocks"; fi
    check "reflink_fsck" timeout 30 "$C" fsck --store "$XFS_MNT/st"
    casfs_extra_cleanup
else
    skip_optional "reflink" "no mkfs.xfs/filefrag or no loop mount here"
fi

casfs_finish
