#!/usr/bin/env bash
# Bazel on casfs: Debian's bazel-bootstrap (Bazel 4.2.3) made offline by
# tools/bazel-offline builds tests/sample as a Bazel workspace (three
# cc_library, a cc_binary, a host tool run by a genrule, a shell genrule, a
# cc_test) with linux-sandbox, inside a network namespace that has only a
# loopback interface:
#   - natively (output user root and sandbox base on the temp dir's disk),
#   - on casfs with --ingest=all -o fast_sandboxes, output user root,
#     sandbox base and disk cache all on the mount: the same outputs byte for
#     byte, every digest in Bazel's execution log equal to sha256sum of the
#     file, outputs moved out of the sandbox by rename (no cross-device copy
#     by Bazel: the daemon moves them off the sandboxes' tmpfs), no sandbox
#     left and every sandbox tmpfs let go, the disk cache's blobs all in the
#     casfs store, and a clean rebuild served entirely by the disk cache,
#   - on a second mount of the same store (its sandboxes on the disk): an
#     identical disk cache whose blobs add nothing to the store,
#   - on a mount with -o sha256: Bazel started with
#     --unix_digest_hash_attribute_name=user.casfs.sha256 takes every
#     digest from casfs (all equal to sha256sum) and reads no output to
#     digest it,
#   - a genrule running a make-based C build with CC="casfs exec -- gcc"
#     in its sandbox hits the action cache on its second clean build, in
#     another sandbox directory, with the output of a plain build.
# Every Bazel server is shut down (by the output user root it used) and
# every mount unmounted, also when the test fails; nothing of it survives.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-840}
. "$(dirname "$0")/lib.sh"
casfs_setup
chmod 755 "$T"

CHECK=("$PYTHON" "$TESTDIR/bazel_check.py")
for p in bazel unshare nsenter ip sha256sum xxh128sum; do
    if ! command -v "$p" >/dev/null; then
        fail "setup: $p is not installed (tools/install-deps --bazel installs it)"
        casfs_finish
    fi
done

# ---- Bazel servers: every one is shut down by the cleanup ------------------
WS=$T/ws
NETNS_PID=""
BZ_ROOTS=()            # output user roots used, in order
declare -A BZ_STARTUP  # root -> extra startup options (one word or empty)

# bz ROOT CMD ARGS...: bazel in the workspace, in the network namespace.
bz() {
    local root=$1 r known=""
    shift
    for r in "${BZ_ROOTS[@]}"; do [ "$r" = "$root" ] && known=1; done
    [ -n "$known" ] || BZ_ROOTS+=("$root")
    local startup=()
    [ -n "${BZ_STARTUP[$root]:-}" ] && startup=("${BZ_STARTUP[$root]}")
    (cd "$WS" && nsenter -t "$NETNS_PID" -n timeout 600 \
        bazel --output_user_root="$root" "${startup[@]}" "$@")
}

# The server pid of output user root $1 (empty when none).
bz_server_pid() {
    local f
    for f in "$1"/*/server/server.pid.txt; do
        [ -f "$f" ] && cat "$f"
    done 2>/dev/null | head -n 1
}

bz_shutdown_all() {
    local root pid
    for root in "${BZ_ROOTS[@]}"; do
        pid=$(bz_server_pid "$root")
        [ -n "$pid" ] || continue
        [ -n "$NETNS_PID" ] && [ -d "/proc/$NETNS_PID" ] && bz "$root" shutdown >/dev/null 2>&1
        if [ -d "/proc/$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$root"; then
            echo "# cleanup: the Bazel server $pid of $root survived bazel shutdown, killing it" >&2
            kill -TERM "$pid" 2>/dev/null
            wait_pid_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
        fi
    done
}

casfs_extra_cleanup() {
    bz_shutdown_all
    if [ -n "$NETNS_PID" ]; then
        kill_job "$NETNS_PID"
        wait "$NETNS_PID" 2>/dev/null
        NETNS_PID=""
    fi
}

# ---- a network namespace with nothing but loopback (Bazel's client talks
# to its server over 127.0.0.1); every bazel command enters it ---------------
unshare -n sleep "$CASFS_TEST_TIMEOUT" &
NETNS_PID=$!
own_netns() {
    local ns
    ns=$(readlink "/proc/$NETNS_PID/ns/net" 2>/dev/null) && [ "$ns" != "$(readlink /proc/self/ns/net)" ]
}
netns_settled() { own_netns || [ ! -d "/proc/$NETNS_PID" ]; }
wait_for "unshare -n to enter its network namespace" netns_settled
if ! own_netns ||
    ! nsenter -t "$NETNS_PID" -n ip link set lo up; then
    fail "setup: no network namespace (unshare -n / ip link set lo up)"
    casfs_finish
fi
check_eq "network namespace: loopback only" "lo" \
    "$(nsenter -t "$NETNS_PID" -n ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ' | sed 's/ $//')"

# ---- the workspace --------------------------------------------------------
OFF=$T/offline
"$CASFS_SRC/tools/bazel-offline" "$OFF" >/dev/null || { fail "setup: tools/bazel-offline"; casfs_finish; }
mkdir -p "$WS"
cp -R "$CASFS_SRC/tests/sample/." "$WS/"
rm -rf "$WS/Makefile" "$WS/build"
echo 'workspace(name = "sample")' >"$WS/WORKSPACE"
cat >"$WS/.bazelrc" <<EOF
import $OFF/bazelrc
startup --max_idle_secs=$CASFS_TEST_TIMEOUT
build --spawn_strategy=linux-sandbox
build --symlink_prefix=/
build --incompatible_strict_action_env
build --color=no --curses=no --noshow_progress
EOF
cat >"$WS/BUILD" <<'EOF'
load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")

exports_files(["VERSION"])

C11 = ["-std=c11"]

cc_library(
    name = "core",
    srcs = ["lib/hash.c", "lib/list.c", "lib/rng.c", "lib/sort.c", "lib/strbuf.c", "lib/vec.c"],
    hdrs = ["include/sample/hash.h", "include/sample/list.h", "include/sample/rng.h",
            "include/sample/sort.h", "include/sample/strbuf.h", "include/sample/vec.h"],
    copts = C11,
    strip_include_prefix = "include",
)

cc_library(
    name = "text",
    srcs = ["lib/base64.c", "lib/json.c", "lib/parse.c", "lib/utf8.c"],
    hdrs = ["include/sample/base64.h", "include/sample/json.h", "include/sample/parse.h",
            "include/sample/utf8.h"],
    copts = C11,
    strip_include_prefix = "include",
    deps = [":core"],
)

cc_library(
    name = "tables",
    srcs = ["lib/crc32.c", "lib/map.c"],
    hdrs = ["include/sample/crc32.h", "include/sample/map.h"],
    copts = C11,
    strip_include_prefix = "include",
    deps = [":core", "//gen:crc32_table"],
)

cc_binary(
    name = "sample",
    srcs = ["src/main.c"],
    copts = C11,
    deps = [":tables", ":text", "//gen:version"],
)

cc_test(
    name = "selftest",
    srcs = ["src/main.c"],
    args = ["--selftest"],
    copts = C11,
    deps = [":tables", ":text", "//gen:version"],
)
EOF
cat >"$WS/gen/BUILD" <<'EOF'
load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library")

cc_binary(
    name = "mkcrc",
    srcs = ["mkcrc.c"],
)

genrule(
    name = "crc32_table_h",
    outs = ["crc32_table.h"],
    cmd = "$(location :mkcrc) > $@",
    tools = [":mkcrc"],
)

genrule(
    name = "version_h",
    srcs = ["//:VERSION", "version.sh"],
    outs = ["version.h"],
    cmd = "sh $(location version.sh) $(location //:VERSION) > $@",
)

cc_library(
    name = "crc32_table",
    hdrs = ["crc32_table.h"],
    includes = ["."],
    visibility = ["//visibility:public"],
)

cc_library(
    name = "version",
    hdrs = ["version.h"],
    includes = ["."],
    visibility = ["//visibility:public"],
)
EOF

# ---- helpers ----------------------------------------------------------------
# execroot ROOT: the execution root below output user root ROOT
execroot() { echo "$1"/*/execroot/sample; }

# build_side NAME ROOT SANDBOX_BASE [build args...]: build //... (execution
# log in $T/NAME.log) and run the test; leaves Bazel's output in
# $T/NAME.build and $T/NAME.test.
build_side() {
    local name=$1 root=$2 sb=$3
    shift 3
    mkdir -p "$sb"
    if bz "$root" build --sandbox_base="$sb" "$@" --execution_log_json_file="$T/$name.log" \
        //... >"$T/$name.build" 2>&1; then
        ok "$name: bazel build //... ($(grep -o '[0-9]* processes:.*' "$T/$name.build" | head -n 1))"
    else
        fail "$name: bazel build failed: $(grep -E 'ERROR|error' "$T/$name.build" | head -n 3 | tr '\n' ' ')"
        return 1
    fi
    if bz "$root" test --sandbox_base="$sb" "$@" //:selftest >"$T/$name.test" 2>&1 &&
        grep -q '//:selftest .*PASSED' "$T/$name.test"; then
        ok "$name: bazel test //:selftest passed"
    else
        fail "$name: bazel test //:selftest: $(grep -E 'ERROR|FAILED|error' "$T/$name.test" | head -n 3 | tr '\n' ' ')"
    fi
    local er
    er=$(execroot "$root")
    if "$er/bazel-out/k8-fastbuild/bin/sample" --selftest >"$T/$name.selftest" 2>&1 &&
        cmp -s "$T/$name.selftest" "$WS/expected.out"; then
        ok "$name: sample --selftest prints expected.out"
    else
        fail "$name: sample --selftest differs from expected.out: $(head -n 3 "$T/$name.selftest" | tr '\n' ' ')"
    fi
}

# same_outputs NAME ROOT: ROOT's bin and host/bin trees equal the native ones
# (at least 40 and 3 byte-identical files: objects, archives, libraries,
# binaries, generated headers; the host tree holds the genrule's tool)
same_outputs() {
    local name=$1 root=$2 cfg min out
    for cfg in k8-fastbuild:40 host:3; do
        min=${cfg#*:}
        cfg=${cfg%:*}
        if out=$("${CHECK[@]}" outputs "$(execroot "$NROOT")/bazel-out/$cfg/bin" "$NROOT" \
            "$(execroot "$root")/bazel-out/$cfg/bin" "$root" 2>&1); then
            local n=${out%% *}
            if [ "$n" -ge "$min" ]; then ok "$name: $cfg outputs as native ($out)"; else fail "$name: $cfg outputs: only $n identical files"; fi
        else
            fail "$name: $cfg outputs differ from native: $out"
        fi
    done
}

counters_json() { timeout 20 "$CASFS" stats --json "$1"; }
# delta FILE_BEFORE FILE_AFTER NAME: counter NAME grew by
delta() {
    "$PYTHON" -c 'import json,sys
a, b = (json.load(open(f))["mounts"][0]["counters"] for f in sys.argv[1:3])
print(b.get(sys.argv[3], 0) - a.get(sys.argv[3], 0))' "$1" "$2" "$3"
}
blob_of() { echo "$STORE/objects/${1:0:2}/$1"; }

# ---- native ----------------------------------------------------------------
NROOT=$T/native/out
build_side native "$NROOT" "$T/native/sb"

# ---- casfs: output user root, sandbox base and disk cache on one mount -----
if ! casfs_mount --ingest=all -o fast_sandboxes; then
    fail "mount $MNT --ingest=all -o fast_sandboxes"
    casfs_finish
fi
CROOT=$MNT/out
counters_json "$MNT" >"$T/c0.json"
build_side casfs "$CROOT" "$MNT/sb" --disk_cache="$MNT/dc"
counters_json "$MNT" >"$T/c1.json"
same_outputs casfs "$CROOT"

if out=$("${CHECK[@]}" execlog "$T/casfs.log" "$(execroot "$CROOT")" bazel-out/ 2>&1); then
    read -r nall nmnt <<<"$out"
    if [ "$nmnt" -ge 40 ]; then
        ok "casfs: Bazel's SHA-256 of $nall files ($nmnt outputs on the mount) equal sha256sum"
    else
        fail "casfs: execution log names only $nmnt outputs on the mount"
    fi
else
    fail "casfs: execution log digests: $out"
fi

read -r spawns outs <<<"$("${CHECK[@]}" spawns "$T/casfs.log")"
renames=$(delta "$T/c0.json" "$T/c1.json" rename)
if [ "$spawns" -ge 20 ] && [ "$renames" -ge "$outs" ]; then
    ok "casfs: outputs left the sandbox by rename ($renames renames for $outs outputs of $spawns sandboxed spawns)"
else
    fail "casfs: $renames renames for $outs outputs of $spawns sandboxed spawns (cross-device copies?)"
fi
check_eq "casfs: no hard links made" 0 "$(delta "$T/c0.json" "$T/c1.json" link)"
check_eq "casfs: sandbox base empty after the build" "" "$(find "$MNT/sb" -mindepth 1 -maxdepth 1)"
across=$(delta "$T/c0.json" "$T/c1.json" renames_across)
nfast=$(delta "$T/c0.json" "$T/c1.json" fast_sandboxes)
if [ "$nfast" -ge 1 ] && [ "$across" -ge "$outs" ] &&
    [ "$(delta "$T/c0.json" "$T/c1.json" fast_sandboxes_removed)" = "$nfast" ]; then
    ok "casfs: sandboxes on $nfast tmpfs, all let go; $across outputs renamed off them by the daemon"
else
    fail "casfs: $nfast sandbox tmpfs ($(delta "$T/c0.json" "$T/c1.json" fast_sandboxes_removed) let go), $across renames across for $outs outputs"
fi
for c in ingest_errors index_errors; do
    check_eq "casfs: $c" 0 "$(delta "$T/c0.json" "$T/c1.json" "$c")"
done

# ---- the disk cache on the mount --------------------------------------------
check "casfs: ingest settles" ingest_settle "$MNT"
ndc=0
bad=""
while IFS= read -r -d '' f; do
    ndc=$((ndc + 1))
    case $f in
    "$MNT"/dc/cas/*) [ "$(sha256sum <"$f" | cut -c1-64)" = "${f##*/}" ] || bad="$bad ${f#"$MNT"/}(sha256)" ;;
    esac
    h=$(xxh128sum "$f" 2>/dev/null | cut -d" " -f1)
    rm -f "$T/got"
    if ! [ -f "$(blob_of "$h")" ] || ! "$CASFS" get --store "$STORE" "$h" "$T/got" >/dev/null 2>&1 ||
        ! cmp -s "$f" "$T/got"; then
        bad="$bad ${f#"$MNT"/}(not stored)"
    fi
done < <(find "$MNT/dc" -type f -print0)
nac=$(find "$MNT/dc/ac" -type f | wc -l)
if [ -z "$bad" ] && [ "$nac" -ge "$spawns" ]; then
    ok "disk cache: $ndc files ($nac action results), every blob in the casfs store"
else
    fail "disk cache: $ndc files, $nac action results for $spawns spawns; wrong:${bad:- none}"
fi

bz "$CROOT" clean >/dev/null 2>&1 || fail "casfs: bazel clean"
if bz "$CROOT" build --sandbox_base="$MNT/sb" --disk_cache="$MNT/dc" //... >"$T/casfs2.build" 2>&1; then
    line=$(grep -o '[0-9]* processes:.*' "$T/casfs2.build" | head -n 1)
    hits=$(echo "$line" | grep -o '[0-9]* remote cache hit' | cut -d' ' -f1)
    if [ "${hits:-0}" -eq "$spawns" ] && ! echo "$line" | grep -q linux-sandbox; then
        ok "disk cache: clean rebuild served from the mount's disk cache ($line)"
    else
        fail "disk cache: clean rebuild: $line (want $spawns remote cache hits, nothing run)"
    fi
    same_outputs "casfs from disk cache" "$CROOT"
else
    fail "disk cache: clean rebuild failed: $(grep ERROR "$T/casfs2.build" | head -n 3 | tr '\n' ' ')"
fi

# ---- a second mount of the same store: an identical disk cache adds nothing
M2=$T/mnt2
mkdir -p "$M2"
if casfs_mount_at "$M2" --ingest=all; then
    (cd "$STORE/objects" && find . -type f | sort) >"$T/blobs.before"
    mkdir -p "$M2/sb"
    if bz "$M2/out" build --sandbox_base="$M2/sb" --disk_cache="$M2/dc" //... >"$T/m2.build" 2>&1; then
        ok "second mount: bazel build"
    else
        fail "second mount: bazel build: $(grep ERROR "$T/m2.build" | head -n 3 | tr '\n' ' ')"
    fi
    check "second mount: ingest settles" ingest_settle "$M2"
    # the first disk cache also holds the test's results
    differ=$(cd "$M2/dc" && find . -type f -print0 | while IFS= read -r -d '' f; do
        cmp -s "$f" "$MNT/dc/$f" || echo "$f"
    done | head -n 3)
    check_eq "second mount: every disk-cache file equals the first mount's" "" "$differ"
    (cd "$STORE/objects" && find . -type f | sort) >"$T/blobs.after"
    comm -13 "$T/blobs.before" "$T/blobs.after" | sed 's|.*/||' >"$T/blobs.new"
    find "$M2/dc" -type f -print0 | xargs -0 xxh128sum 2>/dev/null | cut -d' ' -f1 | sort -u >"$T/dc2.digests"
    again=$(grep -c -F -x -f "$T/blobs.new" "$T/dc2.digests")
    ndc2=$(find "$M2/dc" -type f | wc -l)
    if [ "$ndc2" -ge "$spawns" ] && [ "$again" -eq 0 ]; then
        ok "second mount: its disk cache ($ndc2 files, $(wc -l <"$T/dc2.digests") contents) stored nothing again ($(wc -l <"$T/blobs.new") new blobs, from other files)"
    else
        fail "second mount: disk cache of $ndc2 files for $spawns spawns, $again of its contents stored again"
    fi
else
    fail "mount $M2 --ingest=all on the same store"
fi

# ============================================================================
# Mount option sha256: user.casfs.sha256 is the raw 32-byte SHA-256, right
# after writes, rewrites, truncation and a remount; Bazel started with
# --unix_digest_hash_attribute_name=user.casfs.sha256 records digests equal
# to sha256sum, builds what the native build built, and reads no output to
# digest it (one open per output fewer than the same build without the
# attribute).
check_sha256() {
    local M3=$T/mnt3 f want
    mkdir -p "$M3"
    if ! casfs_mount_at "$M3" -o sha256; then
        fail "sha256: mount -o sha256"
        return
    fi
    raw_sha() { "$PYTHON" -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.casfs.sha256").hex())' "$1" 2>&1; }
    f=$M3/f
    head -c 300000 /dev/urandom >"$f"
    check_eq "sha256: xattr after a write" "$(sha256sum <"$f" | cut -c1-64)" "$(raw_sha "$f")"
    check_eq "sha256: xattr is 32 bytes" 32 \
        "$("$PYTHON" -c 'import os,sys; print(len(os.getxattr(sys.argv[1], "user.casfs.sha256")))' "$f" 2>&1)"
    printf 'x' | dd of="$f" bs=1 seek=1000 conv=notrunc status=none
    check_eq "sha256: xattr after an overwrite" "$(sha256sum <"$f" | cut -c1-64)" "$(raw_sha "$f")"
    truncate -s 777 "$f"
    check_eq "sha256: xattr after truncate" "$(sha256sum <"$f" | cut -c1-64)" "$(raw_sha "$f")"
    want=$(sha256sum <"$f" | cut -c1-64)
    casfs_umount "$M3" && casfs_mount_at "$M3" -o sha256
    check_eq "sha256: xattr after a remount" "$want" "$(raw_sha "$f")"

    local plain=$M3/plain attr=$M3/attr
    mkdir -p "$M3/sb"
    BZ_STARTUP[$attr]=--unix_digest_hash_attribute_name=user.casfs.sha256
    local r
    declare -A opens
    for r in "$plain" "$attr"; do
        bz "$r" build --sandbox_base="$M3/sb" //... >/dev/null 2>&1
        bz "$r" clean >/dev/null 2>&1
        counters_json "$M3" >"$T/s0.json"
        if bz "$r" build --sandbox_base="$M3/sb" --execution_log_json_file="$T/sha.${r##*/}.log" \
            //... >"$T/sha.build" 2>&1; then
            ok "sha256: clean build (${r##*/})"
        else
            fail "sha256: clean build (${r##*/}): $(grep ERROR "$T/sha.build" | head -n 3 | tr '\n' ' ')"
        fi
        counters_json "$M3" >"$T/s1.json"
        opens[$r]=$(delta "$T/s0.json" "$T/s1.json" open)
    done
    # the attr build's counters: every SHA-256 Bazel asked for was streamed
    # while the output was written, or computed by the one read of an
    # output written out of order (at its close, or at Bazel's request when
    # that came first): no file was read twice, none to answer Bazel alone
    local streamed reread sharead demand
    streamed=$(delta "$T/s0.json" "$T/s1.json" sha256_streamed)
    reread=$(delta "$T/s0.json" "$T/s1.json" files_hashed_by_reread)
    sharead=$(delta "$T/s0.json" "$T/s1.json" sha256_by_read)
    demand=$(delta "$T/s0.json" "$T/s1.json" files_hashed_on_demand)
    same_outputs "sha256" "$attr"
    local out
    if out=$("${CHECK[@]}" execlog "$T/sha.attr.log" "$(execroot "$attr")" bazel-out/ 2>&1); then
        ok "sha256: every digest Bazel took from user.casfs.sha256 equals sha256sum ($out)"
    else
        fail "sha256: Bazel recorded wrong digests: $out"
    fi
    read -r _ outs <<<"$("${CHECK[@]}" spawns "$T/sha.attr.log")"
    if [ $((opens[$plain] - opens[$attr])) -ge "$outs" ]; then
        ok "sha256: Bazel opened no output to digest it (${opens[$attr]} opens with the attribute, ${opens[$plain]} without, $outs outputs)"
    else
        fail "sha256: ${opens[$attr]} opens with the attribute, ${opens[$plain]} without, for $outs outputs: Bazel still reads outputs"
    fi
    if [ "$sharead" -eq $((reread + demand)) ] && [ "$streamed" -ge $((outs - reread - demand)) ]; then
        ok "sha256: no file read for Bazel's digests but outputs written out of order, once ($streamed SHA-256 streamed, $reread re-read at close, $demand at Bazel's request, $outs outputs)"
    else
        fail "sha256: $sharead SHA-256 computed by reading for $reread re-reads at close and $demand files hashed on request; $streamed streamed, for $outs outputs"
    fi
}

# casfs exec inside Bazel sandboxes: a genrule runs a make-based C build
# (tests/sample) with CC="casfs exec -- gcc" in its sandbox on the mount;
# after bazel clean the same genrule runs in another sandbox directory and
# every compile is an action-cache hit, with the output byte-identical to a
# plain build.  (EXEC_CC=gcc runs the same genrule without the cache;
# CASFS_LOG=debug makes casfs exec tell each hit and miss on stderr.)
check_exec_hits() {
    local cc=${EXEC_CC:-$CASFS exec -- gcc}
    mkdir -p "$WS/foreign/proj"
    cp -R "$CASFS_SRC/tests/sample/." "$WS/foreign/proj/"
    rm -rf "$WS/foreign/proj/build"
    cat >"$WS/foreign/BUILD" <<EOF
genrule(
    name = "make_sample",
    srcs = glob(["proj/**"]),
    outs = ["sample.bin", "where.txt"],
    cmd = "cp -RL foreign/proj work && " +
          "CASFS_LOG=debug make -s -C work -j2 CC='$cc' >/dev/null && " +
          "cp work/build/sample \$(location sample.bin) && pwd > \$(location where.txt)",
)
EOF
    local plain=$T/plain
    cp -R "$CASFS_SRC/tests/sample" "$plain" && rm -rf "$plain/build"
    make -s -C "$plain" -j2 >/dev/null 2>&1 || fail "exec: plain make of tests/sample"
    local r=$MNT/out i out
    for i in 1 2; do
        bz "$r" clean >/dev/null 2>&1
        counters_json "$MNT" >"$T/e0.json"
        if bz "$r" build --sandbox_base="$MNT/sb" //foreign:make_sample >"$T/exec$i.build" 2>&1; then
            ok "exec: build $i of //foreign:make_sample"
        else
            fail "exec: build $i: $(grep ERROR "$T/exec$i.build" | head -n 3 | tr '\n' ' ')"
        fi
        counters_json "$MNT" >"$T/e1.json"
        out=$(execroot "$r")/bazel-out/k8-fastbuild/bin/foreign
        cat "$out/where.txt" >"$T/where$i" 2>/dev/null
        check "exec: build $i output equals a plain make" cmp "$out/sample.bin" "$plain/build/sample"
    done
    if [ "$(cat "$T/where1")" != "$(cat "$T/where2")" ]; then
        ok "exec: the two runs had different sandbox directories"
    else
        fail "exec: both runs in $(cat "$T/where1"): not a relocation"
    fi
    local hits misses
    hits=$(delta "$T/e0.json" "$T/e1.json" action_hits)
    misses=$(delta "$T/e0.json" "$T/e1.json" action_misses)
    if [ "$hits" -ge 13 ] && [ "$misses" -eq 0 ]; then
        ok "exec: the second run hit every compile ($hits hits)"
    else
        # (casfs exec says why on stderr, which Bazel shows)
        fail "exec: second run: $hits hits, $misses misses: $(grep -h 'miss:' "$T/exec2.build" | head -n 3 | tr '\n' ' ')"
    fi
}

check_sha256
check_exec_hits

# ---- nothing left behind -------------------------------------------------------
bz_shutdown_all
left=""
for root in "${BZ_ROOTS[@]}"; do
    pid=$(bz_server_pid "$root")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && left="$left $pid"
done
check_eq "every Bazel server shut down (${#BZ_ROOTS[@]} output user roots)" "" "$left"
for m in "${_CASFS_MNTS[@]}"; do   # every mount this script made and still has
    [ -n "$m" ] || continue
    if casfs_umount "$m"; then ok "unmount $m (nothing keeps it busy)"; else fail "unmount $m failed"; fi
done
check_eq "no process still uses $T" "" "$(pgrep -f -- "$T/" | tr '\n' ' ')"
casfs_finish
