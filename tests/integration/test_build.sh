#!/bin/bash
# Build the sample C project (tests/sample) with make -j2 on casfs and in a
# native directory: identical outputs, correct incremental rebuilds (a touched
# source, a touched header, a changed generated-header input), make -q no-op,
# also after a remount.  Once with the default options, once with -o writeback
# (each round is this script run again with BUILD_VARIANT set).
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-300}
. "$(dirname "$0")/lib.sh"

if [ -z "${BUILD_VARIANT:-}" ]; then
    casfs_setup
    for v in default writeback; do
        run_sub "build $v" env BUILD_VARIANT=$v CASFS_NAME_PREFIX="$v/" bash "$0"
    done
    casfs_finish
fi

BUILD_OPTS=()
[ "$BUILD_VARIANT" != default ] && BUILD_OPTS=(-o "$BUILD_VARIANT")
SAMPLE=$CASFS_SRC/tests/sample
casfs_setup
if ! casfs_mount "${BUILD_OPTS[@]}"; then
    fail "mount: casfs mount ${BUILD_OPTS[*]} failed"
    casfs_finish
fi
ok "mount"

N=$NATIVE/sample
C=$MNT/sample
for d in "$N" "$C"; do
    cp -a "$SAMPLE" "$d" && rm -rf "$d/build"
done
check "copy_identical" diff -r "$SAMPLE" "$C"

# make_in DIR ARGS...: run make, print its "  XX  target" lines sorted
make_in() {
    local d=$1
    shift
    timeout 120 make -C "$d" --no-print-directory "$@" >"$T/make.out" 2>&1
    local rc=$?
    sed -n 's/^  \([A-Z]*\) *\(.*\)$/\1 \2/p' "$T/make.out" | LC_ALL=C sort
    return $rc
}

# snapshot DIR: "path mtime" for every file below DIR/build
snapshot() {
    (cd "$1" && find build -type f -printf '%p %T@\n' | LC_ALL=C sort)
}

# changed_files BEFORE AFTER: paths whose mtime changed (or that appeared)
changed_files() {
    join -a 2 "$1" "$2" | awk 'NF != 3 || $2 != $3 { print $1 }' | LC_ALL=C sort
}

compare_outputs() {
    local name=$1 bad="" f
    local ln lc
    ln=$(cd "$N" && find build -type f | LC_ALL=C sort)
    lc=$(cd "$C" && find build -type f | LC_ALL=C sort)
    if [ "$ln" != "$lc" ]; then
        fail "$name: file lists differ: $(diff <(echo "$ln") <(echo "$lc") | tr '\n' ' ')"
        return
    fi
    for f in $ln; do
        cmp -s "$N/$f" "$C/$f" || bad="$bad $f"
    done
    if [ -z "$bad" ]; then
        ok "$name ($(echo "$ln" | wc -l) files byte-identical)"
    else
        fail "$name: differ:$bad"
    fi
}

# ---- full build
for side in native casfs; do
    d=$N
    [ $side = casfs ] && d=$C
    if make_in "$d" -j2 >"$T/$side.full"; then
        ok "full_build_$side ($(wc -l <"$T/$side.full") steps)"
    else
        fail "full_build_$side: make failed: $(tail -n 5 "$T/make.out" | tr '\n' ' ')"
    fi
done
check_eq "full_build_same_steps" "$(cat "$T/native.full")" "$(cat "$T/casfs.full")"
compare_outputs "outputs_identical"
for f in build/sample build/libsample.a build/lib/crc32.o build/src/main.o build/lib/strbuf.d; do
    if [ -s "$C/$f" ]; then ok "exists $f"; else fail "exists $f: missing or empty on casfs"; fi
done
if make_in "$C" check >/dev/null && grep -q 'CHECK *ok' "$T/make.out"; then
    ok "make_check_casfs"
else
    fail "make_check_casfs: $(tail -n 5 "$T/make.out" | tr '\n' ' ')"
fi
make_in "$N" check >/dev/null
if (cd "$C" && timeout 60 make -q); then ok "make_q_noop_after_build"; else fail "make_q_noop_after_build: make -q says out of date"; fi

# ---- incremental: step NAME "CHANGE COMMAND" "EXPECTED SORTED LINES" "EXPECTED CHANGED FILES"
step() {
    local name=$1 change=$2 expect=$3 expect_changed=$4 side d got
    sleep 1.1   # one clear second between the last build and the change
    for side in native casfs; do
        d=$N
        [ $side = casfs ] && d=$C
        snapshot "$d" >"$T/before.$side"
        (cd "$d" && eval "$change")
        if got=$(make_in "$d" -j2); then :; else
            fail "${name}_$side: make failed: $(tail -n 5 "$T/make.out" | tr '\n' ' ')"
        fi
        check_eq "${name}_${side}_rebuilt_steps" "$expect" "$got"
        snapshot "$d" >"$T/after.$side"
        check_eq "${name}_${side}_changed_files" "$expect_changed" \
            "$(changed_files "$T/before.$side" "$T/after.$side")"
        if (cd "$d" && timeout 60 make -q); then
            ok "${name}_${side}_make_q_noop"
        else
            fail "${name}_${side}_make_q_noop: make -q says out of date after the rebuild"
        fi
    done
    compare_outputs "${name}_outputs_identical"
}

step touch_source "touch lib/strbuf.c" \
"AR build/libsample.a
CC build/lib/strbuf.o
LD build/sample" \
"build/lib/strbuf.d
build/lib/strbuf.o
build/libsample.a
build/sample"

# strbuf.h is included by strbuf.c, base64.c and json.c (through their
# headers) and by main.c
step touch_header "touch include/sample/strbuf.h" \
"AR build/libsample.a
CC build/lib/base64.o
CC build/lib/json.o
CC build/lib/strbuf.o
CC build/src/main.o
LD build/sample" \
"build/lib/base64.d
build/lib/base64.o
build/lib/json.d
build/lib/json.o
build/lib/strbuf.d
build/lib/strbuf.o
build/libsample.a
build/sample
build/src/main.d
build/src/main.o"

step change_version "echo 2.8.0 > VERSION" \
"CC build/src/main.o
GEN build/gen/version.h
LD build/sample" \
"build/gen/version.h
build/sample
build/src/main.d
build/src/main.o"

if [ "$("$C/build/sample" --selftest | head -n 1)" = "version 2.8.0 (2.8.0)" ]; then
    ok "rebuilt_binary_runs"
else
    fail "rebuilt_binary_runs: $("$C/build/sample" --selftest 2>&1 | head -n 1)"
fi

step edit_source "sed -i 's/0x9e3779b97f4a7c15ull/0x9e3779b97f4a7c17ull/' lib/rng.c" \
"AR build/libsample.a
CC build/lib/rng.o
LD build/sample" \
"build/lib/rng.d
build/lib/rng.o
build/libsample.a
build/sample"

step nothing "true" "" ""

# ---- clean + rebuild (rm -rf of a tree on casfs, then parallel build again)
for side in native casfs; do
    d=$N
    [ $side = casfs ] && d=$C
    make_in "$d" clean >/dev/null
    if [ -e "$d/build" ]; then fail "clean_$side: build/ still exists"; else ok "clean_$side"; fi
    if make_in "$d" -j2 >/dev/null; then ok "rebuild_$side"; else fail "rebuild_$side: $(tail -n 3 "$T/make.out" | tr '\n' ' ')"; fi
done
compare_outputs "rebuild_outputs_identical"
if (cd "$C" && timeout 60 make -q); then ok "rebuild_make_q_noop"; else fail "rebuild_make_q_noop: out of date"; fi
for side in native casfs; do
    d=$N
    [ $side = casfs ] && d=$C
    if make_in "$d" check >/dev/null; then
        fail "make_check_detects_change_$side: make check passed although VERSION changed"
    else
        ok "make_check_detects_change_$side"
    fi
done

# ---- the backing directory holds the same bytes once unmounted
if casfs_umount "$MNT"; then ok "umount"; else fail "umount: casfs umount failed"; fi
if ! is_mounted "$MNT"; then
    compare_outputs "backing_outputs_identical"
    check "backing_sources_identical" diff -r -x build "$N" "$C"
    # the tree is still up to date after a remount (mtimes persisted)
    if casfs_mount "${BUILD_OPTS[@]}"; then
        if (cd "$C" && timeout 60 make -q); then
            ok "remount_make_q_noop"
        else
            fail "remount_make_q_noop: make -q says out of date after a remount: $(cd "$C" && make -n 2>&1 | head -n 3 | tr '\n' '|')"
        fi
        if make_in "$C" -j2 >"$T/remount.steps"; then
            check_eq "remount_nothing_rebuilt" "" "$(cat "$T/remount.steps")"
        else
            fail "remount_make: make failed"
        fi
        casfs_umount "$MNT" || fail "umount_after_remount"
    else
        fail "remount: casfs mount failed"
    fi
fi

casfs_finish
