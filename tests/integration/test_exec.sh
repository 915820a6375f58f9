#!/bin/bash
# casfs exec, the action cache, with real gcc and make on a real mount:
# relocated builds that hit (also once the first sandbox is removed),
# misses for every change a compile can observe (a shadowing header,
# removed and changed headers, an environment variable, another compiler, a
# system header outside the mount), a listed directory,
# make -j2 SHELL=casfs-sh, exact replay of stdout/stderr/exit, parallel
# sessions, gc'd outputs, bad input.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-600}
. "$(dirname "$0")/lib.sh"

MAPPER=
casfs_extra_cleanup() { [ -n "$MAPPER" ] && kill_job "$MAPPER"; }
casfs_setup
X=$CASFS
SH=$CASFS_BINDIR/casfs-sh
LAUNCH=$CASFS_BINDIR/casfs-exec
SAMPLE=$CASFS_SRC/tests/sample
casfs_mount || { fail "mount"; casfs_finish; }

# counter NAME: the mount's counter
counter() {
    "$X" stats --json "$MNT" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['mounts'][0]['counters']['$1'])"
}
# cx DIR ARGS...: casfs exec in DIR, stderr of casfs itself in $T/cx.err
cx() {
    local d=$1
    shift
    (cd "$d" && "$X" exec "$@")
}
explain() {
    local d=$1
    shift
    (cd "$d" && "$X" exec --explain "$@")
}

# ---- relocation: a project built in one sandbox, then in another -------------
R1=$MNT/sb/1/execroot/proj
R2=$MNT/sb/2/execroot/proj
R3=$MNT/sb/3/execroot/proj
mkdir -p "$MNT/sb/1/execroot" "$MNT/sb/2/execroot" "$MNT/sb/3/execroot" "$NATIVE/ref"
for d in "$R1" "$R2" "$R3" "$NATIVE/ref/proj"; do
    cp -a "$SAMPLE" "$d" && rm -rf "$d/build"
done
SRCS=$(cd "$R1" && ls lib/*.c src/*.c)
NSRC=$(echo "$SRCS" | wc -w)
compile_all() { # DIR FLAGS...: every source through casfs exec
    local d=$1 s rc=0
    shift
    for s in $SRCS; do
        cx "$d" -- gcc -std=c11 -O2 -Iinclude -Igen "$@" -c "$s" -o "${s%.c}.o" || rc=1
    done
    return $rc
}
# the generated headers, made once natively
gcc -O2 -o "$T/mkcrc" "$SAMPLE/gen/mkcrc.c" || fail "mkcrc"
for d in "$R1" "$R2" "$R3" "$NATIVE/ref/proj"; do
    "$T/mkcrc" >"$d/gen/crc32_table.h" && (cd "$d" && sh gen/version.sh VERSION >gen/version.h)
done
h0=$(counter action_hits); m0=$(counter action_misses)
sr0=$(counter files_hashed_by_store_read); rr0=$(counter files_hashed_by_reread)
compile_all "$R1" -g "-ffile-prefix-map=$R1=." || fail "relocation: first build failed"
m1=$(counter action_misses)
[ $((m1 - m0)) -eq "$NSRC" ] && ok "relocation: first build: $NSRC misses" || fail "relocation: first build: $((m1 - m0)) misses of $NSRC"
# each object (written out of order by as) is read once after its close:
# storing it gives its digest, no re-read for the digest alone
sr=$(($(counter files_hashed_by_store_read) - sr0)); rr=$(($(counter files_hashed_by_reread) - rr0))
if [ "$sr" -ge "$NSRC" ] && [ "$rr" -eq 0 ]; then
    ok "recorded objects read once: $sr digests from the store's read, $rr re-reads"
else
    fail "recorded objects: $sr digests from the store's read, $rr re-reads for $NSRC objects"
fi
compile_all "$R2" -g "-ffile-prefix-map=$R2=." || fail "relocation: second build failed"
h2=$(counter action_hits); m2=$(counter action_misses)
if [ $((h2 - h0)) -eq "$NSRC" ] && [ "$m2" -eq "$m1" ]; then
    ok "relocation: the same sources at another root: $NSRC of $NSRC hits"
else
    fail "relocation: $((h2 - h0)) hits, $((m2 - m1)) misses of $NSRC at the other root"
fi
# byte-identical to an uncached compile (here, natively at the same path shape)
bad=""
for s in $SRCS; do
    (cd "$NATIVE/ref/proj" && gcc -std=c11 -O2 -Iinclude -Igen -g "-ffile-prefix-map=$NATIVE/ref/proj=." -c "$s" -o "${s%.c}.o")
    cmp -s "$R2/${s%.c}.o" "$NATIVE/ref/proj/${s%.c}.o" || bad="$bad $s"
done
[ -z "$bad" ] && ok "relocation: restored objects equal uncached compiles" || fail "relocation: objects differ:$bad"
# -g without a prefix map: objects hold the root's path: not reused elsewhere
h3=$(counter action_hits)
compile_all "$R1" -g || fail "relocation -g: build 1"
compile_all "$R3" -g || fail "relocation -g: build 3"
h4=$(counter action_hits)
[ "$h4" -eq "$h3" ] && ok "relocation -g: objects holding another root's path are not reused" ||
    fail "relocation -g: $((h4 - h3)) objects holding another root were reused"
grep -q "$R3" "$R3/lib/list.o" && ! grep -q "$R1" "$R3/lib/list.o" && ok "relocation -g: objects hold their own root" ||
    fail "relocation -g: lib/list.o holds the wrong root"
out=$(explain "$R2" -- gcc -std=c11 -O2 -Iinclude -Igen -g -c lib/list.c -o lib/list.o)
case "$out" in *"--relocate"*) ok "explain: names --relocate ($out)" ;; *) fail "explain: $out" ;; esac
rm -f "$R2"/lib/*.o
h5=$(counter action_hits)
for s in $SRCS; do cx "$R2" --relocate -- gcc -std=c11 -O2 -Iinclude -Igen -g -c "$s" -o "${s%.c}.o"; done
[ $(($(counter action_hits) - h5)) -eq "$NSRC" ] && [ "$(counter action_relocated_hits)" -ge "$NSRC" ] &&
    ok "relocation -g: --relocate reuses them (counted)" || fail "relocation -g: --relocate: $(($(counter action_hits) - h5)) hits"

# ---- relocation after the first sandbox is gone (Bazel removes each one) -----
# gcc resolves its input and output from / (realpath), past the root's own
# ancestors sb/<N> and sb/<N>/execroot: those are checked at the same height
# above the current root, not where the recorded run had them.
R4=$MNT/sb/4/execroot/proj
R5=$MNT/sb/5/execroot/proj
R6=$MNT/sb/6/execroot/proj
for d in "$R4" "$R5" "$R6"; do
    mkdir -p "${d%/proj}" && cp -a "$SAMPLE" "$d" && rm -rf "$d/build" && mkdir "$d/build"
done
chmod 0700 "$MNT/sb/6"
mkcrc() { cx "$1" -- gcc -O2 -o build/mkcrc gen/mkcrc.c; }
h=$(counter action_hits)
m=$(counter action_misses)
mkcrc "$R4" || fail "sandbox gone: compile in sb/4"
rm -rf "$MNT/sb/4"
mkcrc "$R5" || fail "sandbox gone: compile in sb/5"
check_eq "sandbox gone: the compile in sb/5 hits the one of the removed sb/4" "1 1" \
    "$(($(counter action_hits) - h)) $(($(counter action_misses) - m))"
(cd "$NATIVE/ref/proj" && gcc -O2 -o "$T/mkcrc.ref" gen/mkcrc.c) || fail "sandbox gone: plain compile"
check "sandbox gone: restored program equals a plain compile" cmp "$R5/build/mkcrc" "$T/mkcrc.ref"
out=$(explain "$R6" -- gcc -O2 -o build/mkcrc gen/mkcrc.c)
case "$out" in
*"miss: <mount>/sb/4 (existing name) differs"*) ok "sandbox gone: a root whose parent has other permission bits misses ($out)" ;;
*) fail "sandbox gone: sb/6 (mode 0700) should miss on the root's parent: $out" ;;
esac

# ---- a compile with absolute paths (as CMake gives them) relocated: its -MD
# dependency file and its warnings name the root; a hit at another root
# gets them as a compile there writes them, without --relocate
for n in 7 8; do
    d=$MNT/sb/$n/execroot/dp
    mkdir -p "$d/inc" "$d/obj"
    printf '#include "w.h"\nint f(void) { int unused; return W; }\n' >"$d/w.c"
    printf '#define W 1\n' >"$d/inc/w.h"
done
dcc() { # DIR [gcc or casfs exec -- gcc] DEPFILE OBJ ERR
    local d=$1 mf=$2 obj=$3 err=$4
    shift 4
    (cd "$d" && "$@" -Wall -O2 -I"$d/inc" "-ffile-prefix-map=$d=." -MD -MT obj/w.o -MF "$mf" -c "$d/w.c" \
        -o "$obj") 2>"$err"
}
D1=$MNT/sb/7/execroot/dp D2=$MNT/sb/8/execroot/dp
h=$(counter action_hits)
dcc "$D1" obj/w.o.d obj/w.o "$T/d1.err" "$X" exec -- gcc || fail "depfile relocation: first compile failed"
grep -q "$D1/inc/w.h" "$D1/obj/w.o.d" && grep -q "$D1/w.c" "$T/d1.err" ||
    fail "depfile relocation: the depfile or the warning does not name the root (the check needs both)"
dcc "$D2" obj/w.o.d obj/w.o "$T/d2.err" "$X" exec -- gcc || fail "depfile relocation: second compile failed"
[ $(($(counter action_hits) - h)) -eq 1 ] && ok "depfile relocation: a hit at the other root without --relocate" ||
    fail "depfile relocation: $(($(counter action_hits) - h)) hits at the other root"
dcc "$D2" "$T/fresh.d" "$T/fresh.o" "$T/fresh.err" gcc || fail "depfile relocation: the plain compile failed"
cmp -s "$D2/obj/w.o.d" "$T/fresh.d" && ok "depfile relocation: the dependency file names the new root as a compile there does" ||
    fail "depfile relocation: restored $(head -c 300 "$D2/obj/w.o.d") against $(head -c 300 "$T/fresh.d")"
cmp -s "$D2/obj/w.o" "$T/fresh.o" && ok "depfile relocation: the object equals a plain compile's" ||
    fail "depfile relocation: the object differs from a plain compile's"
cmp -s "$T/d2.err" "$T/fresh.err" && ok "depfile relocation: the replayed warning names the new root" ||
    fail "depfile relocation: replayed '$(head -c 300 "$T/d2.err")' against '$(head -c 300 "$T/fresh.err")'"
check_eq "depfile relocation: the restored dependency file's digest" "$(xxh128sum <"$D2/obj/w.o.d" | cut -c1-32)" \
    "$("$X" hash "$D2/obj/w.o.d" | cut -c1-32)"

# ---- what a compile can observe: each change misses, and the object is right --
P=$MNT/obs
mkdir -p "$P/inc1" "$P/inc2" "$P/src" "$T/sysinc"
echo '#define V 1' >"$P/inc2/v.h"
echo '#define S 10' >"$T/sysinc/s.h"
echo '#define OPT 7' >"$P/inc2/opt.h"
SRC_F='#include "v.h"\n#include <s.h>\n#if __has_include("opt.h")\n#include "opt.h"\n#else\n#define OPT 1\n#endif\nint f(void) { return V * S * OPT; /* %s */ }\n'
printf "$SRC_F" note >"$P/src/f.c"
CC_ARGS=(-O2 -Iinc1 -Iinc2 -isystem "$T/sysinc" -c src/f.c -o f.o)
value() { # the constant f() returns, from the object
    local hex
    hex=$(objdump -d "$P/f.o" | sed -n 's/.*mov  *\$0x\([0-9a-f]*\),%eax.*/\1/p' | head -n 1)
    [ -n "$hex" ] && echo $((16#$hex))
}
step() { # NAME EXPECT(hit|miss) VALUE: one clean compile (no f.o before), judged
    local name=$1 want=$2 v=$3 h m got
    rm -f "$P/f.o"  # as stats its output first: whether it existed is an input
    h=$(counter action_hits)
    m=$(counter action_misses)
    (cd "$P" && env "${ENVV[@]}" "$X" exec -- "${CC_BIN:-gcc}" "${CC_ARGS[@]}") || fail "$name: compile failed"
    if [ "$(counter action_hits)" -gt "$h" ]; then got=hit; else got=miss; fi
    [ "$got" = "$want" ] && ok "$name: $got" || fail "$name: expected a $want, got a $got"
    [ "$(value)" = "$v" ] && ok "$name: the object returns $v" || fail "$name: the object returns $(value), not $v"
}
ENVV=()
step "first compile" miss 70
step "unchanged" hit 70
echo '#define V 2' >"$P/inc1/v.h"
step "a new header shadows another" miss 140
step "unchanged after shadowing" hit 140
rm "$P/inc1/v.h"
step "the shadowing header removed (the first run's state: its result)" hit 70
rm "$P/inc2/opt.h"
step "a removed header" miss 10
echo '#define V 3' >"$P/inc2/v.h"
step "a changed header" miss 30
echo '#define S 5' >"$T/sysinc/s.h"
step "a changed system header outside the mount" miss 15
printf "$SRC_F" "other note" >"$P/src/f.c"
step "a comment-only edit (plain digests: a miss)" miss 15
ENVV=(CPATH="$T/sysinc")
step "an environment variable of the allowlist" miss 15
ENVV=(CASFS_TEST_IRRELEVANT=1 CPATH="$T/sysinc")
step "a variable outside the allowlist" hit 15
ENVV=()
mkdir -p "$T/cc"
# (a wrapper named as a driver is taken for one; a wrapper named otherwise
# runs uncached: see "a compiler behind a wrapper" below)
printf '#!/bin/sh\nexec /usr/bin/gcc "$@"\n' >"$T/cc/gcc"
chmod +x "$T/cc/gcc"
CC_BIN=$T/cc/gcc
step "another compiler" miss 15
step "the same other compiler" hit 15
printf '#!/bin/sh\n# changed\nexec /usr/bin/gcc "$@"\n' >"$T/cc/gcc"
step "that compiler changed" miss 15
CC_BIN=""

# ---- names found absent are remembered by their directory's stamps
# (action_absent_known): only while the directory is unchanged.  The
# directories are older than the 50 ms the rule needs when the runs look.
P=$MNT/absent
mkdir -p "$P/inc1" "$P/inc2" "$P/src" "$T/abs1" "$T/abs2"
echo '#define V 1' >"$P/inc2/v.h"
echo '#define S 10' >"$T/abs2/s.h"
printf '#include "v.h"\n#include <s.h>\nint f(void) { return V * S; }\n' >"$P/src/f.c"
CC_ARGS=(-O2 -Iinc1 -Iinc2 -isystem "$T/abs1" -isystem "$T/abs2" -c src/f.c -o f.o)
sleep 0.2
step "absences: first compile" miss 10
step "absences: unchanged" hit 10
k=$(counter action_absent_known)
step "absences: unchanged, absences known" hit 10
[ "$(counter action_absent_known)" -gt "$k" ] && ok "absences: the hit took absent names from what it knew" ||
    fail "absences: action_absent_known did not move ($k)"
echo '#define S 3' >"$T/abs1/s.h"
sleep 0.2 # the directory's new stamps are old enough to trust
step "absences: a header made in an earlier -isystem directory outside the mount" miss 3
sleep 0.2
step "absences: unchanged after it" hit 3
step "absences: unchanged after it, absences known" hit 3
echo '#define V 7' >"$P/inc1/v.h"
sleep 0.2
step "absences: a header made in an earlier -I directory" miss 21
rm "$P/inc1/v.h" "$T/abs1/s.h"
step "absences: both removed again (the first run's state)" hit 10
sleep 0.2
step "absences: known again" hit 10
mv "$P/inc2/v.h" "$P/inc1/v.h"
sleep 0.2
step "absences: a header moved to an earlier directory (same content, another path)" miss 10
echo '#define V 5' >"$P/inc1/v.h"
step "absences: then changed in place" miss 50
# a header outside the mount that is a symlink: gcc names a system header
# by its real path when that is shorter, and no directory of the search
# holds that path: not cached (the name the search found, and the absences
# before it, are not known).  (V is 5 here: the object returns 5 * S.)
mkdir -p "$T/sl0" "$T/sl1" "$T/sl2"
echo '#define S 1' >"$T/sl2/s.h"
echo '#define S 2' >"$T/t.h"
CC_ARGS=(-O2 -Iinc1 -Iinc2 -isystem "$T/sl0" -isystem "$T/sl1" -isystem "$T/sl2" -c src/f.c -o f.o)
step "symlinked header: first compile" miss 5
step "symlinked header: unchanged" hit 5
ln -s "$T/t.h" "$T/sl1/s.h"
u=$(counter uncacheable_unknown_input)
step "symlinked header: a symlink that shadows it" miss 10
step "symlinked header: the symlink still there (not cached)" miss 10
[ $(($(counter uncacheable_unknown_input) - u)) -ge 2 ] && ok "symlinked header: its compiles are not cached" ||
    fail "symlinked header: uncacheable_unknown_input moved by $(($(counter uncacheable_unknown_input) - u))"
rm "$T/sl1/s.h"
step "symlinked header: the symlink removed (the first run's state)" hit 5
CC_ARGS=(-O2 -Iinc1 -Iinc2 -isystem "$T/sysinc" -c src/f.c -o f.o)
P=$MNT/obs

# ---- outputs already holding the recorded content keep their file: only
# their mtime moves (action_outputs_in_place); any difference restores them
I=$MNT/inplace
mkdir -p "$I"
echo 'int g(void) { return 4; }' >"$I/g.c"
# (as stats its output first: the first run records it absent, the second
# present, the third is a hit)
for i in 1 2 3; do cx "$I" -- gcc -O2 -c g.c -o g.o || fail "in place: compile $i"; done
cp "$I/g.o" "$T/g.ref"
inplace_hit() { # NAME EXPECT(kept|restored)
    local name=$1 want=$2 h k m0 i0 got
    h=$(counter action_hits) k=$(counter action_outputs_in_place)
    m0=$(date -r "$I/g.o" +%s%N) i0=$(stat -c %i "$I/g.o")
    sleep 0.05
    cx "$I" -- gcc -O2 -c g.c -o g.o || fail "in place: $name: compile"
    [ $(($(counter action_hits) - h)) -eq 1 ] || fail "in place: $name: not a hit"
    if [ $(($(counter action_outputs_in_place) - k)) -eq 1 ]; then got=kept; else got=restored; fi
    [ "$got" = "$want" ] && ok "in place: $name: $got" || fail "in place: $name: expected $want, got $got"
    cmp -s "$I/g.o" "$T/g.ref" && ok "in place: $name: the object is the recorded one" ||
        fail "in place: $name: the object differs from the recorded one"
    [ "$(date -r "$I/g.o" +%s%N)" -gt "$m0" ] && ok "in place: $name: its mtime moved (as the mount shows it)" ||
        fail "in place: $name: mtime $(date -r "$I/g.o" +%s%N) not after $m0"
    [ "$(stat -c %a "$I/g.o")" = 644 ] || fail "in place: $name: mode $(stat -c %a "$I/g.o")"
    if [ "$want" = kept ]; then
        check_eq "in place: $name: the same file" "$(stat -c %i "$I/g.o")" "$i0"
    fi
}
inplace_hit "unchanged object" kept
inplace_hit "unchanged object again" kept
printf 'X' | dd of="$I/g.o" bs=1 seek=64 conv=notrunc status=none
inplace_hit "a byte changed in place (same size)" restored
inplace_hit "unchanged after all that" kept

# ---- gcc's dependency file through the environment (DEPENDENCIES_OUTPUT,
# SUNPRO_DEPENDENCIES): not cached, and the file is gcc's own
for v in DEPENDENCIES_OUTPUT SUNPRO_DEPENDENCIES; do
    u=$(counter uncacheable_unknown_input)
    for i in 1 2; do # (gcc appends to the file)
        rm -f "$I/deps.d"
        (cd "$I" && env "$v=deps.d g.o" "$X" exec -- gcc -O2 -c g.c -o g.o) || fail "$v: compile $i"
    done
    check_eq "$v: not cached" 2 "$(($(counter uncacheable_unknown_input) - u))"
    mv "$I/deps.d" "$T/exec.d"
    (cd "$I" && env "$v=deps.d g.o" gcc -O2 -c g.c -o g.o) || fail "$v: plain compile"
    cmp -s "$I/deps.d" "$T/exec.d" && grep -q '^g.o:' "$T/exec.d" && ok "$v: the dependency file is gcc's own" ||
        fail "$v: deps.d holds '$(cat "$T/exec.d" 2>&1)', gcc alone writes '$(cat "$I/deps.d")'"
done

# ---- a root whose path holds a space: gcc escapes it in the dependency file
# ("sp\ ace"), which casfs cannot move to another root: the result stays
# at its root (the dependency file at the second root names the second)
for r in r1 r2; do
    mkdir -p "$MNT/sp ace/$r"
    printf '#include "h.h"\nint x = H;\n' >"$MNT/sp ace/$r/m.c"
    echo '#define H 1' >"$MNT/sp ace/$r/h.h"
    (cd "$MNT/sp ace/$r" && "$X" exec --root "$MNT/sp ace/$r" -- gcc -c "$MNT/sp ace/$r/m.c" -o m.o -MD -MF m.d) ||
        fail "root with a space: compile at $r"
done
grep -q 'sp\\ ace/r2/h.h' "$MNT/sp ace/r2/m.d" && ! grep -q 'ace/r1' "$MNT/sp ace/r2/m.d" &&
    ok "root with a space: the dependency file at the second root names it" ||
    fail "root with a space: m.d at r2 holds '$(cat "$MNT/sp ace/r2/m.d")'"

# ---- variables a shell line reads without spelling $NAME join its key
mkdir -p "$MNT/shvars"
shvar() { # NAME VAR V1 V2 LINE: recorded with V1, then run with V2 must give a fresh run's result
    local name=$1 var=$2 v1=$3 v2=$4 line=$5 got want
    (cd "$MNT/shvars" && env "$var=$v1" "$X" exec -- sh -c "$line" >/dev/null 2>&1)
    rm -f "$MNT/shvars/o"
    got=$(cd "$MNT/shvars" && env "$var=$v2" "$X" exec -- sh -c "$line" 2>&1; cat o)
    rm -f "$MNT/shvars/o"
    want=$(cd "$MNT/shvars" && env "$var=$v2" sh -c "$line" 2>&1; cat o)
    [ "$got" = "$want" ] && ok "shell line: $name" || fail "shell line: $name: got '$got', a fresh run '$want'"
}
shvar "a name in \$((...))" FOO 1 2 'echo $((FOO + 1)) > o'
shvar "~ (HOME)" HOME /a /b 'echo ~/lib > o'
shvar "set -x (PS4)" PS4 'A ' 'B ' 'set -x; : 2> o'
shvar "set alone prints every variable" CASFS_TEST_ANY 1 2 'set | grep CASFS_TEST_ANY > o'

# ---- the line of a shell given other options too: its variables are keyed,
# and the same line with the same values still hits
for form in "bash --norc -c" "sh -c --" "bash -c -e" "bash -O extglob -c" "bash --rcfile /dev/null -c" "sh -e -c"; do
    h=$(counter action_hits)
    for v in one one two; do
        rm -f "$MNT/shvars/o"
        (cd "$MNT/shvars" && FOO=$v "$X" exec -- $form 'echo "$FOO" > o') || fail "$form: run with $v"
    done
    check_eq "$form LINE: the line's variable is keyed (a changed value: what a fresh run writes)" two \
        "$(cat "$MNT/shvars/o")"
    check_eq "$form LINE: the same value again: a hit" 1 "$(($(counter action_hits) - h))"
done
u=$(counter uncacheable_unknown_input)
(cd "$MNT/shvars" && FOO=1 "$X" exec -- bash --debugger -c 'echo "$FOO" > o' 2>/dev/null) || fail "bash --debugger: run"
check_eq "a shell with an option casfs does not know: uncached" 1 "$(($(counter uncacheable_unknown_input) - u))"

# ---- shell lines: a variable split by a line splice, variables read
# without $ (declare -x, test -v), a program not found until later, a line
# that sets PATH
shrun() { # VAR VALUE LINE: the line through casfs-sh with VAR=VALUE, then o
    (cd "$MNT/shvars" && rm -f o && env "$1=$2" "$SH" -c "$3" && cat o)
}
shrun VERSION 1 $'echo $VER\\\nSION > o' >/dev/null
check_eq "a variable split by a backslash-newline: keyed" 2 "$(shrun VERSION 2 $'echo $VER\\\nSION > o')"
bx() { (cd "$MNT/shvars" && rm -f o && env "$1=$2" "$X" exec -- bash -c "$3" && cat o); }
bx FOO 1 'declare -x > o' >/dev/null
check_eq "bash -c 'declare -x': every variable keyed" 'declare -x FOO="2"' "$(bx FOO 2 'declare -x > o' | grep FOO=)"
shrun FOO 1 'test -v FOO && echo yes > o || echo no > o' >/dev/null
check_eq "test -v NAME: NAME keyed" no \
    "$(cd "$MNT/shvars" && rm -f o && env -u FOO "$SH" -c 'test -v FOO && echo yes > o || echo no > o' && cat o)"
mkdir -p "$T/nb"
nt() { (cd "$MNT/shvars" && rm -f o && PATH="$T/nb:$PATH" "$SH" -c 'ntool > o 2>/dev/null || echo none > o' && cat o); }
nt >/dev/null
printf '#!/bin/sh\necho found\n' >"$T/nb/ntool" && chmod +x "$T/nb/ntool"
check_eq "a program the line names, put on PATH since: what a fresh run gives" found "$(nt)"
u=$(counter uncacheable_unknown_input)
(cd "$MNT/shvars" && "$SH" -c "PATH=$T/nb:\$PATH ntool > o") || fail "a line that sets PATH: run"
check_eq "a line that sets PATH: not cached" 1 "$(($(counter uncacheable_unknown_input) - u))"

# ---- make .ONESHELL through casfs-sh: the inner lines' @, - and + go as for
# sh; chdir is dash's builtin
OS=$MNT/oneshell
mkdir -p "$OS"
printf '.ONESHELL:\nall:\n\t@echo one > o\n\t@echo two \\\n\t  -three >> o\n\t+echo four >> o\n' >"$OS/Makefile"
(cd "$OS" && make -s SHELL="$SH" 2>"$T/os.err") || fail ".ONESHELL: make failed: $(cat "$T/os.err")"
check_eq ".ONESHELL through casfs-sh: what sh gets" "one|two -three|four" "$(tr '\n' '|' <"$OS/o" | sed 's/|$//')"
(cd "$OS" && "$SH" -c 'chdir /') && ok "casfs-sh -c 'chdir /': dash's builtin" || fail "casfs-sh -c 'chdir /' failed"

# ---- an assembler found through -B DIR or COMPILER_PATH is the command's
mkdir -p "$T/btools" "$MNT/btools"
echo 'int b(void) { return 1; }' >"$MNT/btools/b.c"
printf '#!/bin/sh\nexec /usr/bin/as "$@"\n' >"$T/btools/as"
chmod +x "$T/btools/as"
bcc() { (cd "$MNT/btools" && rm -f b.o && "$@" "$X" exec -- gcc -O2 -c b.c -o b.o); }
for how in "-B" "COMPILER_PATH"; do
    if [ "$how" = -B ]; then run=(env); bopt=(-B"$T/btools/"); else run=(env COMPILER_PATH="$T/btools"); bopt=(); fi
    bcc2() { (cd "$MNT/btools" && rm -f b.o && "${run[@]}" "$X" exec -- gcc "${bopt[@]}" -O2 -c b.c -o b.o); }
    printf '#!/bin/sh\n# %s 1\nexec /usr/bin/as "$@"\n' "$how" >"$T/btools/as"
    bcc2 && bcc2 || fail "$how: compiles"
    h=$(counter action_hits)
    printf '#!/bin/sh\n# %s 2\nexec /usr/bin/as "$@"\n' "$how" >"$T/btools/as"
    bcc2 || fail "$how: compile after the assembler changed"
    [ "$(counter action_hits)" -eq "$h" ] && ok "$how: an assembler changed there is a miss" ||
        fail "$how: the changed assembler was a hit"
    bcc2 || fail "$how: compile again"
    [ "$(counter action_hits)" -gt "$h" ] && ok "$how: unchanged again: a hit" || fail "$how: unchanged again missed"
done
# the include search chain is asked once for compiles that differ only in
# macros, optimisation, warnings and debug options (a cc1 found through -B
# logs each query: cc1 -E ... -v); a new -I asks again.  -idirafter of a
# directory of its own keeps the chain apart from the compiles above
printf '#!/bin/sh\ncase " $* " in *" -E "*" -v "*) echo q >>%s/cc1.log;; esac\nexec %s "$@"\n' \
    "$T" "$(gcc -print-prog-name=cc1)" >"$T/btools/cc1"
chmod +x "$T/btools/cc1"
rm -f "$T/cc1.log"
mkdir -p "$T/chainq"
for f in "-DONE=1" "-DONE=2 -O2" "-UTWO -D THREE -Wall -g -O0"; do
    # shellcheck disable=SC2086 # f holds several options
    (cd "$MNT/btools" && rm -f b.o && "$X" exec -- gcc -B"$T/btools/" -idirafter "$T/chainq" $f -c b.c -o b.o) ||
        fail "chain: compile $f"
done
check_eq "the search chain: asked once for compiles differing in -D/-U/-O/-W/-g" 1 "$(wc -l <"$T/cc1.log")"
(cd "$MNT/btools" && rm -f b.o && "$X" exec -- gcc -B"$T/btools/" -idirafter "$T/chainq" -I"$T" -c b.c -o b.o) ||
    fail "chain: compile -I"
check_eq "the search chain: asked again for a new -I" 2 "$(wc -l <"$T/cc1.log")"
rm "$T/btools/cc1"
# a link: the ld found through -B is the command's too
printf 'int b(void);\nint main(void) { return b(); }\n' >"$MNT/btools/m.c"
(cd "$MNT/btools" && gcc -c m.c -o m.o && gcc -c b.c -o b.o) || fail "-B link: objects"
printf '#!/bin/sh\n# 1\nexec /usr/bin/ld "$@"\n' >"$T/btools/ld"
chmod +x "$T/btools/ld"
blink() { (cd "$MNT/btools" && rm -f prog && "$X" exec -- gcc -B"$T/btools/" m.o b.o -o prog); }
blink && blink || fail "-B link: links"
h=$(counter action_hits)
printf '#!/bin/sh\n# 2\nexec /usr/bin/ld "$@"\n' >"$T/btools/ld"
blink || fail "-B link: link after ld changed"
[ "$(counter action_hits)" -eq "$h" ] && ok "-B: a linker changed there is a miss" || fail "-B: the changed linker was a hit"
rm "$T/btools/ld"
# options from a file: on the mount its read is traced, elsewhere not cached
echo '-DV=1' >"$MNT/btools/opts" && echo '-DV=1' >"$T/btools/opts"
echo 'int v(void) { return V; }' >"$MNT/btools/v.c"
u=$(counter uncacheable_unknown_input)
(cd "$MNT/btools" && "$X" exec -- gcc @"$T/btools/opts" -c v.c -o v.o) || fail "@file outside: compile"
check_eq "options from a file outside the mount: not cached" 1 "$(($(counter uncacheable_unknown_input) - u))"
for i in 1 2; do (cd "$MNT/btools" && "$X" exec -- gcc @opts -c v.c -o v.o) || fail "@file: compile $i"; done
h=$(counter action_hits)
echo '-DV=2' >"$MNT/btools/opts"
(cd "$MNT/btools" && "$X" exec -- gcc @opts -c v.c -o v.o) || fail "@file: compile after the change"
[ "$(counter action_hits)" -eq "$h" ] && ok "options from a file on the mount: a change there is a miss" ||
    fail "@file on the mount: the changed options were a hit"
h=$(counter action_hits)
bcc env && bcc env || fail "plain compiles after -B"
[ "$(counter action_hits)" -gt "$h" ] && ok "-B: the driver's own programs are still its own afterwards" ||
    fail "-B: plain compiles after it did not hit"

# ---- an executable script without #!: run by /bin/sh, as execvp and make do
mkdir -p "$MNT/noshebang"
printf 'echo generated > out.txt\n' >"$MNT/noshebang/gen"
chmod +x "$MNT/noshebang/gen"
h=$(counter action_hits)
for i in 1 2; do
    rm -f "$MNT/noshebang/out.txt"
    (cd "$MNT/noshebang" && "$X" exec -- ./gen) || fail "a script without #!: casfs exec, run $i"
    [ "$(cat "$MNT/noshebang/out.txt" 2>&1)" = generated ] || fail "a script without #!: run $i made no out.txt"
done
rm -f "$MNT/noshebang/out.txt"
(cd "$MNT/noshebang" && "$SH" -c ./gen) && [ "$(cat "$MNT/noshebang/out.txt" 2>&1)" = generated ] &&
    ok "a script without #!: runs under casfs exec and casfs-sh" || fail "a script without #!: casfs-sh"
[ $(($(counter action_hits) - h)) -ge 1 ] && ok "a script without #!: cached" || fail "a script without #!: no hit"

# ---- a script named by a relative path runs by that name ($0), as from a
# shell; the interpreter its #! names is in the key
mkdir -p "$MNT/scripts/sub" "$T/interp"
printf '#!/bin/sh\necho "$0" > zero.txt\n' >"$MNT/scripts/sub/x.sh"
chmod +x "$MNT/scripts/sub/x.sh"
(cd "$MNT/scripts" && "$X" exec -- ./sub/x.sh) &&
    check_eq "a script by a relative path: its \$0" ./sub/x.sh "$(cat "$MNT/scripts/zero.txt")"
printf '#!/bin/sh\n# 1\nexec /bin/sh "$@"\n' >"$T/interp/run"
chmod +x "$T/interp/run"
printf '#!%s\necho generated > gen.txt\n' "$T/interp/run" >"$MNT/scripts/gen"
chmod +x "$MNT/scripts/gen"
for i in 1 2; do (cd "$MNT/scripts" && rm -f gen.txt && "$X" exec -- ./gen) || fail "#! interpreter: run $i"; done
h=$(counter action_hits)
printf '#!/bin/sh\n# 2\nexec /bin/sh "$@"\n' >"$T/interp/run"
(cd "$MNT/scripts" && rm -f gen.txt && "$X" exec -- ./gen) || fail "#! interpreter: run after it changed"
[ "$(counter action_hits)" -eq "$h" ] && ok "#! interpreter outside the mount: a change there is a miss" ||
    fail "#! interpreter outside the mount: the changed interpreter was a hit"

# ---- a directory renamed over an empty one, names that change type: a hit
# leaves what a fresh run leaves (each case: record, hit, fresh run, compare)
W=$MNT/retype
tree_of() { (cd "$1" && find . -mindepth 1 -printf '%p %y %m %s\n' | sort && find . -type f -exec cat {} + | md5sum); }
retype() { # NAME SETUP CMD
    local name=$1 setup=$2 cmd=$3 h hit fresh
    rm -rf "$W" && mkdir -p "$W" && (cd "$W" && sh -c "$setup") && cx "$W" -- sh -c "$cmd" ||
        fail "$name: recording run"
    rm -rf "$W" && mkdir -p "$W" && (cd "$W" && sh -c "$setup")
    h=$(counter action_hits)
    cx "$W" -- sh -c "$cmd" || fail "$name: the hit failed"
    [ "$(counter action_hits)" -gt "$h" ] || fail "$name: not a hit"
    hit=$(tree_of "$W")
    rm -rf "$W" && mkdir -p "$W" && (cd "$W" && sh -c "$setup" && sh -c "$cmd")
    fresh=$(tree_of "$W")
    [ "$hit" = "$fresh" ] && ok "$name: the hit leaves what a fresh run does" ||
        fail "$name: hit '$(echo $hit)' fresh '$(echo $fresh)'"
}
retype "a directory renamed over an empty one" 'mkdir e' 'mkdir d && echo 1 > d/x && mv -T d e'
# recorded over an empty directory, run where it is not: mv fails as it would
rm -rf "$W" && mkdir -p "$W/e" && cx "$W" -- sh -c 'mkdir d && echo 1 > d/x && mv -T d e' || fail "mv -T: record"
rm -rf "$W" && mkdir -p "$W/e" && touch "$W/e/keep"
cx "$W" -- sh -c 'mkdir d && echo 1 > d/x && mv -T d e' 2>/dev/null
rc=$?
[ $rc -ne 0 ] && [ -e "$W/e/keep" ] && [ ! -e "$W/e/x" ] &&
    ok "a directory renamed over one that is no longer empty: fails as a fresh run does" ||
    fail "a directory renamed over one that is no longer empty: exit $rc, $(cd "$W" && find . | sort | tr '\n' ' ')"
# rmdir recorded on an empty directory, run where it is not: a miss (the
# run fails as a fresh one does), and --explain says so
rm -rf "$W" && mkdir -p "$W/e" && cx "$W" -- sh -c 'rmdir e && echo done > r.txt' || fail "rmdir: record"
rm -rf "$W" && mkdir -p "$W/e" && touch "$W/e/keep"
out=$(explain "$W" -- sh -c 'rmdir e && echo done > r.txt' 2>&1)
case "$out" in miss*) ok "rmdir of a directory no longer empty: --explain says miss" ;;
*) fail "rmdir of a directory no longer empty: --explain says '$out'" ;; esac
retype "a build directory replaced whole" 'mkdir -p out/old && echo 0 > out/old/f' \
    'mkdir tmp && echo 1 > tmp/x && rm -rf out && mv tmp out'
retype "a file replaced by a directory" 'echo old > e' 'mkdir a && echo 1 > a/f && mkdir d && echo 1 > d/x && rm e && mv d e'
retype "a directory replaced by a file" 'mkdir -p e/s && echo 0 > e/s/f' 'rm -rf e && echo 1 > e'
retype "a file replaced by a symlink" 'echo old > e' 'rm e && ln -s target e'
retype "a directory replaced by a symlink" 'mkdir e' 'rmdir e && ln -s target e'
retype "a handed-down set-group-ID bit kept" 'chmod g+s .' 'mkdir d && mkdir d/e && echo 1 > d/e/f'
retype "a handed-down set-group-ID bit cleared" 'chmod g+s .' 'mkdir d && chmod g-s d && mkdir d/e && echo 1 > d/e/f'

# ---- a recipe that lists a directory -------------------------------------------
L=$MNT/list
mkdir -p "$L/src"
touch "$L/src/a.c" "$L/src/b.c"
cx "$L" -- sh -c 'ls src > list.txt' || fail "list: run"
ls "$L/src" >/dev/null  # a listing cached by someone else
h=$(counter action_hits)
cx "$L" -- sh -c 'ls src > list.txt'
[ "$(counter action_hits)" -gt "$h" ] && ok "list: unchanged directory: a hit" || fail "list: unchanged directory missed"
touch "$L/src/c.c"
h=$(counter action_hits)
cx "$L" -- sh -c 'ls src > list.txt'
[ "$(counter action_hits)" -eq "$h" ] && ok "list: a file added to src: a miss" || fail "list: a file added to src hit"
[ "$(cat "$L/list.txt")" = "$(printf 'a.c\nb.c\nc.c')" ] && ok "list: list.txt is right" ||
    fail "list: list.txt holds '$(cat "$L/list.txt")'"

# ---- replay: stdout, stderr and the exit status, byte for byte -----------------
E=$MNT/replay
mkdir -p "$E"
SCRIPT='printf "out\\0\\001 bytes\\n"; printf "err line\\n" >&2; echo made > o.txt; exit 3'
cx "$E" --cache-failures -- sh -c "$SCRIPT" >"$T/o1" 2>"$T/e1"
rc1=$?
rm "$E/o.txt"
h=$(counter action_hits)
cx "$E" --cache-failures -- sh -c "$SCRIPT" >"$T/o2" 2>"$T/e2"
rc2=$?
[ "$(counter action_hits)" -gt "$h" ] && ok "replay: a hit" || fail "replay: not a hit"
[ $rc1 -eq 3 ] && [ $rc2 -eq 3 ] && ok "replay: exit status 3 both times" || fail "replay: exit $rc1 then $rc2"
cmp -s "$T/o1" "$T/o2" && cmp -s "$T/e1" "$T/e2" && ok "replay: stdout and stderr byte for byte" ||
    fail "replay: streams differ"
[ "$(cat "$E/o.txt")" = made ] && ok "replay: its output restored" || fail "replay: o.txt not restored"
# stdout and stderr into one file (>log 2>&1): one stream, in the order written
LINE='for i in 1 2 3; do echo out$i; echo err$i >&2; done; echo made > m.txt'
h=$(counter action_hits)
for i in 1 2; do rm -f "$E/m.txt"; cx "$E" -- sh -c "$LINE" >"$T/merged$i" 2>&1; done
[ $(($(counter action_hits) - h)) -eq 1 ] && ok "one file for both streams: a hit" || fail "one file for both streams: no hit"
(cd "$E" && sh -c "$LINE") >"$T/merged0" 2>&1
cmp -s "$T/merged0" "$T/merged1" && cmp -s "$T/merged0" "$T/merged2" &&
    ok "one file for both streams: the run and the hit keep the order written" ||
    fail "one file for both streams: '$(tr '\n' ' ' <"$T/merged2")' against '$(tr '\n' ' ' <"$T/merged0")'"
rm -f "$E/m.txt"
h=$(counter action_hits)
cx "$E" -- sh -c "$LINE" >"$T/apart.out" 2>"$T/apart.err"
[ "$(cat "$T/apart.err")" = "$(printf 'err1\nerr2\nerr3')" ] && [ "$(head -n 1 "$T/apart.out")" = out1 ] &&
    [ "$(counter action_hits)" -eq "$h" ] &&
    ok "two files for the streams: a run recorded into one file is not split (a miss)" ||
    fail "two files for the streams: stdout '$(cat "$T/apart.out")', stderr '$(cat "$T/apart.err")'"
# one file opened twice for appending (>>log 2>>log): one stream too
rm -f "$T/app0" "$T/app1" "$T/app2"
(cd "$E" && sh -c "$LINE") >>"$T/app0" 2>>"$T/app0"
for i in 1 2; do rm -f "$E/m.txt"; cx "$E" -- sh -c "$LINE" >>"$T/app$i" 2>>"$T/app$i"; done
cmp -s "$T/app0" "$T/app1" && cmp -s "$T/app0" "$T/app2" && ok ">>log 2>>log: the order written" ||
    fail ">>log 2>>log: '$(tr '\n' ' ' <"$T/app2")' against '$(tr '\n' ' ' <"$T/app0")'"
# opened twice, not for appending (>log 2>log): not reproducible by a replay
u=$(counter uncacheable_unknown_input)
rm -f "$E/m.txt"; cx "$E" -- sh -c "$LINE" >"$T/clash" 2>"$T/clash"
check_eq ">log 2>log: not cached" 1 "$(($(counter uncacheable_unknown_input) - u))"
# a run that wrote one stream only replays into either
LINE1='echo only-out; echo made > m1.txt'
rm -f "$E/m1.txt" && cx "$E" -- sh -c "$LINE1" >"$T/one.out" 2>"$T/one.err"
h=$(counter action_hits)
rm -f "$E/m1.txt" && cx "$E" -- sh -c "$LINE1" >"$T/one.both" 2>&1
[ "$(counter action_hits)" -gt "$h" ] && [ "$(cat "$T/one.both")" = only-out ] &&
    ok "one stream written: recorded apart, a hit into one file" || fail "one stream written: '$(cat "$T/one.both")'"
u=$(counter uncacheable_failed)
cx "$E" -- sh -c 'exit 4'
cx "$E" -- sh -c 'exit 4'
[ $(($(counter uncacheable_failed) - u)) -eq 2 ] && ok "a failing command is not cached without --cache-failures" ||
    fail "failing command: uncacheable_failed moved by $(($(counter uncacheable_failed) - u))"

# ---- a recorded recursive removal is replayed: entries before their directory
h=$(counter action_hits); re=$(counter action_restore_errors)
for i in 1 2; do
    mkdir -p "$E/P/sub" && echo a >"$E/P/1" && echo b >"$E/P/sub/2"
    cx "$E" -- rm -rf P || fail "rm -rf P: run $i failed"
    [ ! -e "$E/P" ] || fail "rm -rf P: P still there after run $i"
done
[ $(($(counter action_hits) - h)) -eq 1 ] && [ "$(counter action_restore_errors)" -eq "$re" ] &&
    ok "rm -rf replayed: a hit, P gone, nothing failed to restore" ||
    fail "rm -rf: $(($(counter action_hits) - h)) hits, $(($(counter action_restore_errors) - re)) restore errors"

# ---- extended attributes are neither inputs nor outputs of a manifest: a run
# that sets one (a hit would restore the file without it) or reads a user
# one is not cached
u=$(counter uncacheable_xattrs)
for i in 1 2; do
    rm -f "$E/x.txt"
    cx "$E" -- sh -c 'echo x >x.txt && setfattr -n user.origin -v build x.txt' || fail "xattrs: setfattr run $i"
    check_eq "xattrs: the output keeps its attribute (run $i)" "build" \
        "$(cd "$E" && getfattr --only-values -n user.origin x.txt 2>&1)"
done
setfattr -n user.flavour -v sweet "$E/o.txt"
cx "$E" -- getfattr --only-values -n user.flavour o.txt >/dev/null || fail "xattrs: getfattr run"
[ $(($(counter uncacheable_xattrs) - u)) -eq 3 ] && ok "xattrs: runs that set or read them are not cached" ||
    fail "xattrs: uncacheable_xattrs moved by $(($(counter uncacheable_xattrs) - u)) for 3 runs"

# ---- make -j2 SHELL=casfs-sh: a relocated copy runs no recipe -------------------
M1=$MNT/msb/1/execroot/sample
M2=$MNT/msb/2/execroot/sample
mkdir -p "$MNT/msb/1/execroot" "$MNT/msb/2/execroot" "$NATIVE/plain"
for d in "$M1" "$M2" "$NATIVE/plain/sample"; do cp -a "$SAMPLE" "$d" && rm -rf "$d/build"; done
timeout 300 make -C "$M1" -j2 SHELL="$SH" >"$T/m1.out" 2>&1 || fail "make: first build: $(tail -3 "$T/m1.out")"
h=$(counter action_hits)
m=$(counter action_misses)
timeout 300 make -C "$M2" -j2 SHELL="$SH" >"$T/m2.out" 2>&1 || fail "make: relocated build: $(tail -3 "$T/m2.out")"
timeout 300 make -C "$NATIVE/plain/sample" -j2 >/dev/null 2>&1 || fail "make: plain build"
[ "$(counter action_misses)" -eq "$m" ] && [ "$(counter action_hits)" -gt "$h" ] &&
    ok "make: the relocated copy ran no recipe ($(($(counter action_hits) - h)) hits)" ||
    fail "make: relocated copy: $(($(counter action_misses) - m)) misses, $(($(counter action_hits) - h)) hits"
diff <(cd "$M2" && find build -type f | sort) <(cd "$NATIVE/plain/sample" && find build -type f | sort) >/dev/null &&
    ok "make: the same files as a plain build" || fail "make: other files than a plain build"
bad=""
for f in $(cd "$NATIVE/plain/sample" && find build -type f ! -name '*.d' | sort); do
    cmp -s "$M2/$f" "$NATIVE/plain/sample/$f" || bad="$bad $f"
done
[ -z "$bad" ] && ok "make: outputs equal a plain build's" || fail "make: outputs differ:$bad"
diff <(grep -v '^make' "$T/m1.out" | sort) <(grep -v '^make' "$T/m2.out" | sort) >/dev/null && ok "make: the same messages replayed" ||
    fail "make: messages differ"
(cd "$M2" && ./build/sample --selftest | cmp -s - expected.out) && ok "make: the restored program works" ||
    fail "make: the restored program fails its self-test"

# ---- two sessions at once are traced apart ---------------------------------------
Q=$MNT/par
mkdir -p "$Q"
(cd "$Q" && "$X" exec -- sh -c 'sleep 0.3; echo one > one.txt') &
(cd "$Q" && "$X" exec -- sh -c 'sleep 0.3; echo two > two.txt') &
wait
rm "$Q/one.txt" "$Q/two.txt"
(cd "$Q" && "$X" exec -- sh -c 'sleep 0.3; echo one > one.txt')
[ -e "$Q/one.txt" ] && [ ! -e "$Q/two.txt" ] && ok "parallel: each session restored only its own output" ||
    fail "parallel: one.txt $(test -e "$Q/one.txt" && echo present), two.txt $(test -e "$Q/two.txt" && echo present)"

# ---- a file on stdin: where the run leaves its offset ---------------------------
# The caller's next read on the same stdin must see what it would after a
# fresh run: a run that reads part of it is not cached (a hit would not
# move it); one that reads it to its end leaves it at its end on a hit too.
Q=$MNT/stdin
mkdir -p "$Q"
printf 'a\nb\n' >"$Q/in"
u=$(counter uncacheable_stdin)
(cd "$Q" && "$X" exec -- head -n 1 <in >/dev/null)
rest=$(cd "$Q" && { "$X" exec -- head -n 1 >o1; cat; } <in)
check_eq "stdin: after head -n 1 under the cache, the caller reads the rest" b "$rest"
[ "$(counter uncacheable_stdin)" -ge $((u + 2)) ] && ok "stdin: a run that leaves stdin part-read is not cached" ||
    fail "stdin: uncacheable_stdin moved by $(($(counter uncacheable_stdin) - u)) for 2 part-reading runs"
(cd "$Q" && "$X" exec -- cat <in >o2)
h=$(counter action_hits)
rest=$(cd "$Q" && { "$X" exec -- cat >o2; cat; } <in)
[ "$(counter action_hits)" -gt "$h" ] && [ -z "$rest" ] && [ "$(cat "$Q/o2" | tr '\n' ' ')" = "a b " ] &&
    ok "stdin: a hit of a run that read it all leaves it at its end" ||
    fail "stdin: after a hit of cat, hits $h -> $(counter action_hits), the caller read '$rest', o2 '$(cat "$Q/o2")'"

# ---- an absolute symlink into the root, in a tree copied to another root -------
# Both trees' l.txt point into root 1 (cp -a keeps absolute targets): at
# root 2 the command reads root 1's file, so root 1's change is a miss there.
A1=$MNT/absl/1/execroot/p
A2=$MNT/absl/2/execroot/p
for d in "$A1" "$A2"; do
    mkdir -p "$d"
    echo one >"$d/real.txt"
    ln -s "$A1/real.txt" "$d/l.txt"
done
(cd "$A1" && "$X" exec -- sh -c 'cat l.txt > o.txt')
rm "$A1/o.txt"
h=$(counter action_hits)
(cd "$A1" && "$X" exec -- sh -c 'cat l.txt > o.txt')
[ "$(counter action_hits)" -gt "$h" ] && ok "absolute symlink into the root: a hit at the same root" ||
    fail "absolute symlink into the root: no hit at the same root"
echo two >"$A1/real.txt"
(cd "$A2" && "$X" exec -- sh -c 'cat l.txt > o.txt')
check_eq "absolute symlink into root 1, read at root 2: what root 1 holds now" two "$(cat "$A2/o.txt")"
# the same link spelled otherwise: //, /./, ROOT/../p
for sp in dbl dot up; do
    S1=$MNT/absl-$sp/1/execroot/p
    S2=$MNT/absl-$sp/2/execroot/p
    case $sp in
    dbl) tgt=$MNT/absl-$sp//1/execroot/p/real.txt ;;
    dot) tgt=$MNT/absl-$sp/./1/execroot/p/real.txt ;;
    up) tgt=$S1/../p/real.txt ;;
    esac
    for d in "$S1" "$S2"; do
        mkdir -p "$d"
        echo one >"$d/real.txt"
        ln -s "$tgt" "$d/l.txt"
    done
    (cd "$S1" && "$X" exec -- sh -c 'cat l.txt > o.txt')
    echo two >"$S1/real.txt"
    (cd "$S2" && "$X" exec -- sh -c 'cat l.txt > o.txt')
    check_eq "absolute symlink into root 1 spelled $tgt, read at root 2" two "$(cat "$S2/o.txt")"
done

# ---- inputs another process changes while the run looks twice -------------------
# The run saw a name absent, present, read or listed, and another process
# made, removed, replaced or added to it before the run looked again: no
# run from one state gives that result, so it is not cached.
Q=$MNT/foreign
mkdir -p "$Q/inc" "$Q/D"
touch "$Q/f" "$Q/D/a"
echo one >"$Q/g"
u=$(counter uncacheable_input_changed)
# (each run says when it has looked once: s1..s5, outside the mount)
(cd "$Q" && "$X" exec -- sh -c "test -e inc/bits; touch $T/s1; sleep 1; test -e inc/bits && echo y > o1 || echo n > o1") &
(cd "$Q" && "$X" exec -- sh -c "test -e f; touch $T/s2; sleep 1; test -e f && echo y > o2 || echo n > o2") &
(cd "$Q" && "$X" exec -- sh -c "cat g > o3; touch $T/s3; sleep 1; cat g >> o3") &
(cd "$Q" && "$X" exec -- sh -c "ls D > o4; touch $T/s4; sleep 1; ls D >> o4") &
mkdir -p "$Q/M"
echo m >"$Q/M/h"
(cd "$Q" && "$X" exec -- sh -c "cat M/h > o5; touch $T/s5; sleep 1; cat M/h >> o5 2>/dev/null; true") &
looked() { [ -e "$T/s1" ] && [ -e "$T/s2" ] && [ -e "$T/s3" ] && [ -e "$T/s4" ] && [ -e "$T/s5" ]; }
wait_for "the five runs' first looks" looked
mkdir "$Q/inc/bits"
rm "$Q/f"
echo two >"$Q/g.new" && mv "$Q/g.new" "$Q/g"
touch "$Q/D/b"
mv "$Q/M" "$Q/M2"
wait
n=$(($(counter uncacheable_input_changed) - u))
[ "$n" -eq 5 ] && ok "foreign changes between two looks: made, removed, replaced, added to a listing, a directory moved: not cached" ||
    fail "foreign changes between two looks: uncacheable_input_changed moved by $n for 5 runs"

# ---- a relative symlink out of the root, to a sibling of its directory -----------
# inc -> ../shared at both roots: the file read through it at root 2 is
# root 2's sibling's, recorded at root 1's place; a hit where both are the
# same, a miss once root 2's differs.
S=$MNT/sib
for n in 1 2; do
    mkdir -p "$S/$n/execroot/p" "$S/$n/execroot/shared"
    echo one >"$S/$n/execroot/shared/t.txt"
    ln -s ../shared/t.txt "$S/$n/execroot/p/t.txt"
done
(cd "$S/1/execroot/p" && "$X" exec -- sh -c 'cat t.txt > o.txt')
h=$(counter action_hits)
(cd "$S/2/execroot/p" && "$X" exec -- sh -c 'cat t.txt > o.txt')
[ "$(counter action_hits)" -gt "$h" ] && ok "relative symlink to a sibling: a hit at root 2 while both hold the same" ||
    fail "relative symlink to a sibling: no hit at root 2 with the same content"
echo two >"$S/2/execroot/shared/t.txt"
rm "$S/2/execroot/p/o.txt"
(cd "$S/2/execroot/p" && "$X" exec -- sh -c 'cat t.txt > o.txt')
check_eq "relative symlink to a sibling, changed at root 2: what root 2 holds" two "$(cat "$S/2/execroot/p/o.txt")"

# ---- writes through a file the caller opened ---------------------------------------
# 3>>log.txt: the run's bytes go to a file it did not open; a hit would not
# write them, so the run is not cached.
Q=$MNT/inherited
mkdir -p "$Q"
: >"$Q/log.txt"
u=$(counter uncacheable_inherited_write)
for i in 1 2; do (cd "$Q" && "$X" exec -- sh -c 'echo run >&3' 3>>log.txt); done
check_eq "writes through an inherited descriptor: every run writes" "run run" "$(tr '\n' ' ' <"$Q/log.txt" | sed 's/ $//')"
check_eq "writes through an inherited descriptor: not cached" 2 "$(($(counter uncacheable_inherited_write) - u))"

# ---- a directory's own bits and entries: chmod or touch before a listing
# (chmod -R), a stat and a listing (cp -a), a symlink touched before read
D9=$MNT/dirbits
mkdir -p "$D9"
(cd "$D9" && mkdir dd && echo 1 >dd/a) && cx "$D9" -- chmod -R go-rwx dd || fail "chmod -R: record"
rm -rf "$D9/dd" && mkdir "$D9/dd" && echo 1 >"$D9/dd/a" && echo 3 >"$D9/dd/new"
cx "$D9" -- chmod -R go-rwx dd || fail "chmod -R: again"
check_eq "chmod -R over a tree with a file added: the new file's mode" 600 "$(stat -c %a "$D9/dd/new")"
rm -rf "$D9/dd" && mkdir "$D9/dd" && echo 1 >"$D9/dd/a"
cx "$D9" -- sh -c 'chmod 700 dd; ls dd' >/dev/null || fail "chmod; ls: record"
chmod 755 "$D9/dd" && echo 3 >"$D9/dd/new"
check_eq "chmod then ls of a directory with a file added: what a fresh run lists" "a new" \
    "$(cx "$D9" -- sh -c 'chmod 700 dd; ls dd' | tr '\n' ' ' | sed 's/ $//')"
mkdir "$D9/ee" && echo 1 >"$D9/ee/a"
cx "$D9" -- cp -a ee ff || fail "cp -a: record"
rm -rf "$D9/ff" && chmod 700 "$D9/ee"
cx "$D9" -- cp -a ee ff || fail "cp -a: again"
check_eq "cp -a of a directory chmod'ed since: the copy's mode" 700 "$(stat -c %a "$D9/ff")"
echo A >"$D9/la" && echo B >"$D9/lb" && ln -s la "$D9/l"
cx "$D9" -- sh -c 'touch -h l; cat l > lo' || fail "touch -h: record"
ln -sfn lb "$D9/l"
cx "$D9" -- sh -c 'touch -h l; cat l > lo' || fail "touch -h: again"
check_eq "touch -h of a symlink retargeted since: what it reads, where it leads" "B lb" \
    "$(cat "$D9/lo") $(readlink "$D9/l")"

# ---- a symlink output whose target names the root, from what the run read:
# at another root a fresh run makes the same link, so it stays at its root
for n in 1 22; do mkdir -p "$MNT/lnroot/$n/execroot"; done
L1=$MNT/lnroot/1/execroot/p L2=$MNT/lnroot/22/execroot/p
mkdir -p "$L1" && printf '#!/bin/sh\nln -sfn %s/target l\n' "$L1" >"$L1/mk.sh" && chmod +x "$L1/mk.sh"
for i in 1 2; do rm -f "$L1/l"; cx "$L1" -- ./mk.sh || fail "symlink naming the root: run $i"; done
cp -a "$L1" "$L2" && rm -f "$L2/l"
cx "$L2" -- ./mk.sh || fail "symlink naming the root: at another root"
check_eq "a symlink output naming the root, made from a script: at another root, where a fresh run points it" \
    "$L1/target" "$(readlink "$L2/l")"

# ---- a compile that writes outside the mount, by any spelling: not cached
# (a hit could not write there)
C3=$MNT/outside-out
mkdir -p "$C3" "$T/o3" && echo 'int main(void) { return 0; }' >"$C3/a.c" && ln -sf "$T/o3/x.o" "$C3/b.o"
for args in "a.c -o prog -Xlinker -Map=$T/o3/m.map" "a.c -o prog -Wl,-Map -Wl,$T/o3/m.map" \
    "a.c -o prog -Xlinker -Map -Xlinker $T/o3/m.map" "a.c -o prog -Wl,--Map=$T/o3/m.map" \
    "-c a.c -o a.o -Wp,-MMD,$T/o3/a.d" "-c a.c -o a.o -Wp,-MD,$T/o3/a.d" "-c a.c -o a.o -aux-info $T/o3/aux" \
    "a.c -o prog -Wl,--dependency-file=$T/o3/dd" "-c a.c -o a.o -save-temps -dumpdir $T/o3/" "-c a.c -o b.o"; do
    u=$(counter uncacheable_writes_outside_mount)
    for i in 1 2; do
        rm -rf "${T:?}/o3"/* && cx "$C3" -- gcc $args || fail "gcc $args: run $i"
    done
    [ -n "$(ls "$T/o3")" ] && [ $(($(counter uncacheable_writes_outside_mount) - u)) -eq 2 ] &&
        ok "gcc $args: written outside the mount every run, not cached" ||
        fail "gcc $args: outside the mount [$(ls "$T/o3")], uncacheable_writes_outside_mount +$(($(counter uncacheable_writes_outside_mount) - u))"
done

# ---- a response file on the mount is read as gcc reads it: one it names
# outside the mount, or an -o outside the mount in it, is not cached
C5=$MNT/rsp
mkdir -p "$C5" && echo 'int w = V;' >"$C5/w.c"
echo "@$T/inner.rsp" >"$C5/args.rsp"
for v in 1 1 2; do
    echo "-DV=$v" >"$T/inner.rsp"
    rm -f "$C5/a.o" && cx "$C5" -- gcc @args.rsp -c w.c -o a.o || fail "nested response file: compile with $v"
done
check_eq "a response file naming one outside the mount, changed: what a fresh compile makes" 02000000 \
    "$(objdump -s -j .data "$C5/a.o" | awk '/^ 0000/ {print $2}')"
printf -- "-DV=3 '-o' \"$T/o3/r.o\"\n" >"$C5/args2.rsp"
echo "@args2.rsp" >"$C5/args3.rsp"
for i in 1 2; do
    rm -f "$T/o3/r.o" && cx "$C5" -- gcc @args3.rsp -c w.c || fail "-o outside in a response file: run $i"
done
[ -s "$T/o3/r.o" ] && ok "an -o outside the mount in a nested, quoted response file: written by every run" ||
    fail "an -o outside the mount in a response file: $T/o3/r.o not written by the second run"

# ---- __has_include spelled with a comment or a line splice before its
# "(", or behind a macro: the query is seen, or the compile not cached
C14=$MNT/hasinc
mkdir -p "$C14" "$T/hi"
printf '#if __has_include/**/(<hx.h>) && __has_incl\\\nude (<hz.h>)\nint yes;\n#else\nint no;\n#endif\n' >"$C14/h.c"
: >"$T/hi/hz.h"
for i in 1 2; do rm -f "$C14/h.o" && cx "$C14" -- gcc -isystem "$T/hi" -c h.c -o h.o || fail "__has_include/**/: run $i"; done
: >"$T/hi/hx.h"
rm -f "$C14/h.o" && cx "$C14" -- gcc -isystem "$T/hi" -c h.c -o h.o || fail "__has_include/**/: after the header appeared"
check_eq "__has_include with a comment and a line splice: a header put outside the mount since" yes \
    "$(nm "$C14/h.o" | awk '{print $3}')"
# the token only whole once a line splice inside it is removed (a file
# without the token as it is, as most headers are, is not scanned)
printf '#if __has_incl\\\nude(<hs.h>)\nint yes;\n#else\nint no;\n#endif\n' >"$C14/s.c"
for i in 1 2; do rm -f "$C14/s.o" && cx "$C14" -- gcc -isystem "$T/hi" -c s.c -o s.o || fail "__has_incl\\ude: run $i"; done
: >"$T/hi/hs.h"
rm -f "$C14/s.o" && cx "$C14" -- gcc -isystem "$T/hi" -c s.c -o s.o || fail "__has_incl\\ude: after the header appeared"
check_eq "__has_include split by a line splice: a header put outside the mount since" yes \
    "$(nm "$C14/s.o" | awk '{print $3}')"
# the files on the mount a compile read are scanned by the daemon as the
# run read them (action_headers_scanned: the source and its header, once,
# by the run that was recorded; the hit scans nothing)
printf '#if __has_include(<hw.h>)\nint yes;\n#else\nint no;\n#endif\n' >"$C14/q.h"
printf '#include "q.h"\n' >"$C14/q.c"
n=$(counter action_headers_scanned)
for i in 1 2; do rm -f "$C14/q.o" && cx "$C14" -- gcc -isystem "$T/hi" -c q.c -o q.o || fail "a header's query: run $i"; done
check_eq "files on the mount a compile read: scanned by the daemon" 2 "$(($(counter action_headers_scanned) - n))"
: >"$T/hi/hw.h"
rm -f "$C14/q.o" && cx "$C14" -- gcc -isystem "$T/hi" -c q.c -o q.o || fail "a header's query: after the header appeared"
check_eq "__has_include in a header on the mount: a header put outside the mount since" yes \
    "$(nm "$C14/q.o" | awk '{print $3}')"
printf '#define HI __has_include\n#if HI(<hy.h>)\nint yes;\n#endif\nint z;\n' >"$C14/m.c"
u=$(counter uncacheable_unknown_input)
cx "$C14" -- gcc -isystem "$T/hi" -c m.c -o m.o || fail "__has_include behind a macro: run"
check_eq "__has_include behind a macro: not cached" 1 "$(($(counter uncacheable_unknown_input) - u))"

# ---- two headers of one content, the first #pragma once: gcc skips the
# second as the first when their sizes and mtimes (seconds) are the same,
# so its result depends on mtimes, which no manifest holds: not cached
C15=$MNT/once
mkdir -p "$C15/i1" "$C15/i2"
printf '#pragma once\n#ifdef SEEN\n#define TWICE 1\n#endif\n#define SEEN 1\n' >"$C15/i1/h.h"
cp -p "$C15/i1/h.h" "$C15/i2/h.h"
printf '#include "i1/h.h"\n#include "i2/h.h"\n#ifdef TWICE\nint twice;\n#else\nint once;\n#endif\n' >"$C15/a.c"
for i in 1 2; do cx "$C15" -- gcc -c a.c -o a.o || fail "pragma once duplicate: run $i"; done
touch -d 2001-01-01 "$C15/i2/h.h"
cx "$C15" -- gcc -c a.c -o a.o || fail "pragma once duplicate: after the touch"
check_eq "#pragma once duplicates: a touch of one copy gives what a fresh compile gives" twice \
    "$(nm "$C15/a.o" | awk '{print $3}')"

# ---- an include directory outside the mount reached through a symlink
# (a toolchain's current -> v2): pointing the link elsewhere is a miss
C11=$MNT/linkdir
mkdir -p "$C11" "$T/t1" "$T/t2" "$T/i2" && ln -sfn "$T/t1" "$T/lk"
echo 'int fromI2;' >"$T/i2/h.h" && echo 'int fromT2;' >"$T/t2/h.h" && echo '#include <h.h>' >"$C11/a.c"
for i in 1 2; do rm -f "$C11/a.o" && cx "$C11" -- gcc -I"$T/lk" -I"$T/i2" -c a.c -o a.o || fail "include dir link: run $i"; done
ln -sfn "$T/t2" "$T/lk"
rm -f "$C11/a.o" && cx "$C11" -- gcc -I"$T/lk" -I"$T/i2" -c a.c -o a.o || fail "include dir link: after the retarget"
check_eq "an include directory's symlink pointed elsewhere: the header a fresh compile finds" fromT2 \
    "$(nm "$C11/a.o" | awk '{print $3}')"

# ---- a dependency file moved to a root of another length: its lines break
# where gcc breaks them there
W1=$MNT/dw/1/execroot/p W2=$MNT/dw/1234567890/execroot/p
mkdir -p "$W1" "$MNT/dw/1234567890/execroot"
for hh in a b c d e f g h; do echo "int v$hh;" >"$W1/$hh.h" && echo "#include \"$hh.h\"" >>"$W1/s.c"; done
wcc() { (cd "$1" && "$X" exec -- gcc -MD -MF "$1/s.d" -c "$1/s.c" -o "$1/s.o"); }
for i in 1 2; do rm -f "$W1/s.o" "$W1/s.d" && wcc "$W1" || fail "depfile rewrap: run $i"; done
cp -a "$W1" "$W2" && rm -f "$W2/s.o" "$W2/s.d"
h=$(counter action_hits)
wcc "$W2" || fail "depfile rewrap: at the longer root"
cp "$W2/s.d" "$T/s.d.hit"
(cd "$W2" && rm -f s.o s.d && gcc -MD -MF "$W2/s.d" -c "$W2/s.c" -o "$W2/s.o") || fail "depfile rewrap: fresh"
[ "$(counter action_hits)" -gt "$h" ] && cmp -s "$T/s.d.hit" "$W2/s.d" &&
    ok "a dependency file moved to a root of another length: a hit, byte for byte what gcc writes there" ||
    fail "depfile rewrap: hits $h -> $(counter action_hits); $(diff "$T/s.d.hit" "$W2/s.d" | head -5 | tr '\n' '|')"

# ---- ln of an existing file records it (its ctime moving with the new link
# is the run's own doing); streams larger than a request: too_big, counted
L12=$MNT/ln12
mkdir -p "$L12" && echo x >"$L12/a"
h=$(counter action_hits)
for i in 1 2; do rm -f "$L12/b" && cx "$L12" -- ln a b || fail "ln a b: run $i"; done
check_eq "ln of an existing file: cached (run 2 hits)" 1 "$(($(counter action_hits) - h))"
h=$(counter action_hits)
for i in 1 2; do
    rm -rf "$L12/d" && mkdir "$L12/d" && echo 1 >"$L12/d/x"
    cx "$L12" -- sh -c 'rm -rf d && ln -s x d' || fail "a directory replaced by a symlink: run $i"
done
check_eq "a full directory replaced by a symlink: cached (run 2 hits), the link there" "1 x" \
    "$(($(counter action_hits) - h)) $(readlink "$L12/d")"
u=$(counter uncacheable_too_big)
cx "$L12" -- sh -c 'head -c 67108864 /dev/zero' | cmp -s - <(head -c 67108864 /dev/zero) ||
    fail "64 MiB on stdout: not passed through"
check_eq "64 MiB on stdout: not recorded, counted as too_big" 1 "$(($(counter uncacheable_too_big) - u))"

# ---- the caller's groups and capabilities decide what it may read: a run
# recorded by root is not reused by root without CAP_DAC_OVERRIDE
CR=$MNT/creds
mkdir -p "$CR" && echo secret >"$CR/sec" && chown nobody "$CR/sec" && chmod 600 "$CR/sec"
cx "$CR" -- sh -c 'cat sec > out' || fail "creds: the run as root"
rm -f "$CR/out"
(cd "$CR" && setpriv --inh-caps=-dac_override,-dac_read_search --bounding-set=-dac_override,-dac_read_search \
    "$X" exec -- sh -c 'cat sec > out' 2>/dev/null)
rc=$?
[ $rc -ne 0 ] && [ ! -s "$CR/out" ] && ok "root without CAP_DAC_OVERRIDE: refused as a fresh run is, not a hit" ||
    fail "root without CAP_DAC_OVERRIDE: exit $rc, out holds '$(cat "$CR/out" 2>&1)'"

# ---- a background process the command leaves holding its stdout: casfs
# exec returns when the command does, and what comes later still arrives
BG=$MNT/bg
mkdir -p "$BG"
(cd "$BG" && timeout 20 "$X" exec -- sh -c 'sleep 3 && echo late & echo started; exit 3' >"$BG/o.txt")
rc=$?
check_eq "a background process holding stdout: casfs exec returns the command's status at once" "3 started" \
    "$rc $(cat "$BG/o.txt")"
wait_for "the background process's output" grep -q late "$BG/o.txt"
check_eq "a background process holding stdout: everything arrives, in order" "started late" "$(tr '\n' ' ' <"$BG/o.txt" | sed 's/ $//')"

# ---- a precompiled header outside the mount (NAME.gch beside -include NAME)
# made since: gcc takes it, and names it in no dependency file
PC=$MNT/pch
mkdir -p "$PC" "$T/pch" && echo '#define V 1' >"$T/pch/pre.h" && echo '#define V 5' >"$T/pch/pre5.h"
echo 'int f(void) { return V; }' >"$PC/a.c"
pcc() { (cd "$PC" && rm -f a.o && "$X" exec -- gcc -O2 -include "$T/pch/pre.h" -c a.c -o a.o) && objdump -d "$PC/a.o" | grep -c 'mov  *\$0x5'; }
pcc >/dev/null; pcc >/dev/null
gcc -O2 -x c-header -o "$T/pch/pre.h.gch" "$T/pch/pre5.h" || fail "pch: gcc could not make one"
check_eq "a precompiled header put beside an -include outside the mount: the object a fresh compile makes" 1 "$(pcc)"

# ---- a fifo on the mount: opening it is the kernel's pipe, which casfs does
# not see; a run that opens one is not cached, and its writer is not left
# blocked by a hit
F=$MNT/fifo
mkdir -p "$F" && mkfifo "$F/p"
u=$(counter uncacheable_special_input)
for w in one one two; do
    (echo "$w" >"$F/p") &
    wpid=$!
    cx "$F" -- sh -c 'cat p > out' || fail "fifo: run with $w"
    check_eq "a fifo read by the run: what it read ($w)" "$w" "$(cat "$F/out")"
    # (a writer bash has reaped is not signalled: its pid may be another's)
    n=0
    while jobs -rp | grep -x "$wpid" >/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    if jobs -rp | grep -x "$wpid" >/dev/null; then
        kill "$wpid" 2>/dev/null
        fail "fifo: the writer of $w was left blocked"
    fi
    wait "$wpid" 2>/dev/null
done
check_eq "a fifo read by the run: not cached" 3 "$(($(counter uncacheable_special_input) - u))"

# ---- a compile that reads its stdin by another name than - or /dev/stdin
S4=$MNT/stdin-names
mkdir -p "$S4"
printf '#include "/dev/stdin"\n' >"$S4/inc.c"
for how in "-x c -c /dev/fd/0" "-x c -c /proc/self/fd/0" "-c inc.c"; do
    for v in 1 1 2; do
        rm -f "$S4/a.o"
        echo "int v = $v;" | (cd "$S4" && "$X" exec -- gcc $how -o a.o) || fail "gcc $how: compile with $v"
    done
    check_eq "gcc $how with a piped stdin: what a fresh compile makes" "02000000" \
        "$(objdump -s -j .data "$S4/a.o" | awk '/^ 0000/ {print $2}')"
done

# ---- PATH: an empty element is the working directory (as for sh and
# execvp), and a program found through a symlink runs by that name ($0)
P8=$MNT/pathdot
mkdir -p "$P8" "$T/pbin"
printf '#!/bin/sh\necho "$0" ran > out.txt\n' >"$P8/tool8" && chmod +x "$P8/tool8"
for path in ":/usr/bin:/bin" "/usr/bin:/bin:" "/usr/bin::/bin"; do
    rm -f "$P8/out.txt"
    (cd "$P8" && PATH=$path "$X" exec -- tool8) || fail "PATH=$path: tool8 not run"
    want=$(cd "$P8" && PATH=$path sh -c 'tool8; cat out.txt')
    check_eq "PATH=$path: the program in the working directory runs, as from sh" "$want" "$(cat "$P8/out.txt")"
done
printf '#!/bin/sh\necho "0=$0" > out.txt\n' >"$T/pbin/real.sh" && chmod +x "$T/pbin/real.sh" && ln -sf real.sh "$T/pbin/lnk"
(cd "$P8" && PATH="$T/pbin:$PATH" "$X" exec -- lnk) || fail "a program through a symlink on PATH: run"
check_eq "a program through a symlink on PATH: its \$0 is the name found" "0=$T/pbin/lnk" "$(cat "$P8/out.txt")"

# ---- an output that is there with another owner, or with attributes of its
# own: a run truncates it in place and keeps both; a hit, which makes the
# file anew, would drop them, so the action runs
O=$MNT/owned
mkdir -p "$O"
for i in 1 2; do
    rm -f "$O/out"
    cx "$O" -- sh -c 'echo v > out' || fail "owned output: run $i"
done
h=$(counter action_hits)
echo old >"$O/out" && chown nobody "$O/out"
cx "$O" -- sh -c 'echo v > out' || fail "owned output: run over a file of nobody's"
check_eq "an output there with another owner: the run keeps it (content, owner)" "v nobody" \
    "$(cat "$O/out") $(stat -c %U "$O/out")"
explain "$O" -- sh -c 'echo v > out' | grep -q "out.*another owner" && ok "an output with another owner: --explain says so" ||
    fail "an output with another owner: --explain: $(explain "$O" -- sh -c 'echo v > out')"
rm -f "$O/out" && echo old >"$O/out" && setfattr -n user.kept -v yes "$O/out"
cx "$O" -- sh -c 'echo v > out' || fail "an output with an attribute: run"
check_eq "an output there with a user attribute: the run keeps it (content, attribute)" "v yes" \
    "$(cat "$O/out") $(getfattr --only-values -n user.kept "$O/out" 2>/dev/null)"
check_eq "outputs there with another owner or attributes: no hit" 0 "$(($(counter action_hits) - h))"
rm -f "$O/out" && echo old >"$O/out" && setfattr -n trusted.kept -v yes "$O/out"
cx "$O" -- sh -c 'echo v > out' || fail "an output with a trusted attribute: run"
check_eq "an output there with a trusted attribute: the run keeps it (content, attribute)" "v yes" \
    "$(cat "$O/out") $(getfattr --only-values -n trusted.kept "$O/out" 2>/dev/null)"
rm -f "$O/out" && echo old >"$O/out"
cx "$O" -- sh -c 'echo v > out' || fail "an output of the caller's: run"
check_eq "an output there of the caller's, no attributes: a hit" 1 "$(($(counter action_hits) - h))"

# ---- reads through a descriptor the caller opened (3<in.txt): the kernel
# serves them from its cache and casfs does not see them, so such a run is
# not cached; /dev/null on 3 is nothing to read, and a compiler touches only
# the descriptors its arguments name
u=$(counter uncacheable_inherited_fd)
for v in one two; do
    echo "$v" >"$Q/in3.txt"
    rm -f "$Q/o3.txt"
    (cd "$Q" && "$X" exec -- sh -c 'cat <&3 > o3.txt' 3<in3.txt) || fail "reads through fd 3: run $v"
    check_eq "reads through an inherited descriptor: what run $v read" "$v" "$(cat "$Q/o3.txt")"
done
check_eq "reads through an inherited descriptor: not cached" 2 "$(($(counter uncacheable_inherited_fd) - u))"
(cd "$Q" && "$X" exec --explain -- sh -c 'cat <&3 > o3.txt' 3<in3.txt) | grep -q "uncacheable: it inherits descriptor 3 (.*in3.txt)" &&
    ok "reads through an inherited descriptor: --explain names it" ||
    fail "reads through an inherited descriptor: --explain: $(cd "$Q" && "$X" exec --explain -- sh -c 'cat <&3 > o3.txt' 3<in3.txt)"
h=$(counter action_hits)
for i in 1 2; do
    rm -f "$Q/o4.txt"
    (cd "$Q" && "$X" exec -- sh -c 'echo x > o4.txt' 3</dev/null) || fail "/dev/null on fd 3: run $i"
done
check_eq "/dev/null on an inherited descriptor: cached (run 2 hits)" 1 "$(($(counter action_hits) - h))"
printf 'int f3(void) { return 3; }\n' >"$Q/f3.c"
h=$(counter action_hits)
for i in 1 2; do
    rm -f "$Q/f3.o"
    (cd "$Q" && "$X" exec -- gcc -c f3.c -o f3.o 3<in3.txt) || fail "a compile with fd 3 open: run $i"
done
check_eq "a compile with a descriptor it does not name: cached (run 2 hits)" 1 "$(($(counter action_hits) - h))"

# ---- an input another process changed through a shared writable mapping
# whose pages the kernel has not written back: a reader sees the new bytes,
# the daemon does not yet; while it is open for writing it is not matched
MM=$MNT/mapped
mkdir -p "$MM"
printf 'aaaa\n' >"$MM/in.txt"
cx "$MM" -- sh -c 'cat in.txt > out.txt' || fail "mapped input: first run"
rm -f "$MM/out.txt"
mkfifo "$T/mapped.ready"
"$PYTHON" -c '
import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED)
m[0:4] = b"bbbb"
open(sys.argv[2], "w").write("ready\n")
time.sleep(600)' "$MM/in.txt" "$T/mapped.ready" &
MAPPER=$!
read -r _ <"$T/mapped.ready"
m=$(counter action_misses)
u=$(counter uncacheable_input_being_written)
cx "$MM" -- sh -c 'cat in.txt > out.txt' || fail "mapped input: second run"
check_eq "an input changed through a mapping not written back: what a fresh run reads" bbbb "$(cat "$MM/out.txt")"
check_eq "an input changed through a mapping not written back: a miss" 1 "$(($(counter action_misses) - m))"
check_eq "an input open for writing elsewhere while read: not recorded" 1 \
    "$(($(counter uncacheable_input_being_written) - u))"
explain "$MM" -- sh -c 'cat in.txt > out.txt' | grep -q "in.txt (file) is open for writing" &&
    ok "an input open for writing: --explain says so" ||
    fail "an input open for writing: --explain: $(explain "$MM" -- sh -c 'cat in.txt > out.txt')"
kill "$MAPPER" && wait "$MAPPER" 2>/dev/null
MAPPER=

# ---- a run that gives an output another owner or group is not cached (a hit
# makes outputs the caller's); one that sets the group it already has is
u=$(counter uncacheable_owner_changed)
for i in 1 2; do
    rm -f "$Q/o1" && cx "$Q" -- sh -c 'echo 1 > o1 && chgrp bin o1' || fail "chgrp: run $i"
done
check_eq "a run that changes an output's group: not cached" 2 "$(($(counter uncacheable_owner_changed) - u))"
check_eq "a run that changes an output's group: the group it set" bin "$(stat -c %G "$Q/o1")"
h=$(counter action_hits)
for i in 1 2 3; do
    rm -f "$Q/o2" && cx "$Q" -- sh -c "echo 1 > o2 && chgrp $(id -gn) o2" || fail "chgrp to its group: run $i"
done
check_eq "a run that sets an output's group to the one it has: cached (runs 2 and 3 hit)" 2 "$(($(counter action_hits) - h))"

# ---- a name the run creates, then renames or removes ------------------------------
# `cmd > $@.tmp && mv $@.tmp $@`: the absence of o.tmp was only the lookup
# of the run's own create, but o.tmp does not end as an output file, so a
# hit cannot check what is there: a leftover o.tmp (an interrupted build)
# must be a miss, as a fresh run writes and moves it.
Q=$MNT/tmpmv
mkdir -p "$Q"
for c in 'echo new > o.tmp && mv o.tmp o' 'echo new > o.tmp && cp o.tmp o && rm o.tmp'; do
    (cd "$Q" && "$X" exec -- sh -c "$c")
    rm -f "$Q/o"
    echo stale >"$Q/o.tmp"
    (cd "$Q" && "$X" exec -- sh -c "$c")
    [ ! -e "$Q/o.tmp" ] && [ "$(cat "$Q/o")" = new ] && ok "created then moved away: a leftover is a miss ($c)" ||
        fail "created then moved away ($c): o.tmp $(cat "$Q/o.tmp" 2>&1), o $(cat "$Q/o" 2>&1)"
    rm -f "$Q/o" "$Q/o.tmp"
    mkdir "$Q/o.tmp"
    (cd "$Q" && "$X" exec -- sh -c "$c" 2>/dev/null)
    [ -d "$Q/o.tmp" ] && ok "created then moved away: a directory there is a miss and the run fails as it would ($c)" ||
        fail "created then moved away ($c): the directory o.tmp is gone"
    rm -rf "$Q/o" "$Q/o.tmp"
    h=$(counter action_hits)
    (cd "$Q" && "$X" exec -- sh -c "$c")
    [ "$(counter action_hits)" -gt "$h" ] && [ "$(cat "$Q/o")" = new ] && [ ! -e "$Q/o.tmp" ] &&
        ok "created then moved away: a hit where the name is absent ($c)" ||
        fail "created then moved away ($c): no hit where o.tmp is absent (hits $h -> $(counter action_hits))"
    rm -rf "$Q/o" "$Q/o.tmp"
done

# ---- an absence the kernel caches while another run is live -----------------------
# A compiler that finds a name absent again (-Iinc searched for <w/a.h>,
# then for <w/b.h>) lets the kernel cache the absence (fs/kcache.h); a run
# live beside it that probes the name afterwards is answered by the
# kernel, unseen by the daemon, and must have it among its inputs all the
# same: once the name exists, that run is a miss.
Q=$MNT/negshare
mkdir -p "$Q/inc" "$Q/w"
echo 'int a;' >"$Q/w/a.h"
echo 'int b;' >"$Q/w/b.h"
printf '#include <w/a.h>\n#include <w/b.h>\n' >"$Q/s1.c"
late='sleep 0.8; if [ -e inc/w ]; then echo yes; else echo no; fi > late.txt'
s0=$(counter kernel_negatives_shared)
(cd "$Q" && "$X" exec -- sh -c "$late") &
sleep 0.3
(cd "$Q" && "$X" exec -- gcc -Iinc -I. -c s1.c -o s1.o) &
wait
[ "$(counter kernel_negatives_shared)" -gt "$s0" ] && ok "negatives: a compiler's repeated absence cached while two runs were live" ||
    fail "negatives: nothing cached while runs were live (kernel_negatives_shared $s0)"
[ "$(cat "$Q/late.txt")" = no ] || fail "negatives: the first run of the late prober said $(cat "$Q/late.txt")"
mkdir "$Q/inc/w"
rm -f "$Q/late.txt"
h=$(counter action_hits)
(cd "$Q" && "$X" exec -- sh -c "$late")
[ "$(cat "$Q/late.txt")" = yes ] && [ "$(counter action_hits)" = "$h" ] &&
    ok "negatives: the name now exists: the run beside it is a miss and says yes" ||
    fail "negatives: late.txt says $(cat "$Q/late.txt") after inc/w was made (hits $h -> $(counter action_hits)): an absence the kernel answered was not an input"
rmdir "$Q/inc/w"
rm -f "$Q/late.txt"
(cd "$Q" && "$X" exec -- sh -c "$late")
[ "$(cat "$Q/late.txt")" = no ] && [ "$(counter action_hits)" -gt "$h" ] && ok "negatives: and a hit once it is gone again" ||
    fail "negatives: late.txt '$(cat "$Q/late.txt")' once inc/w is gone (hits $h -> $(counter action_hits))"

# ---- outputs evicted by gc: a miss and a re-run, never an error -------------------
G=$MNT/gc
mkdir -p "$G"
cx "$G" -- sh -c 'head -c 100000 /dev/urandom > big.bin' || fail "gc: run"
sum1=$(md5sum <"$G/big.bin")
sleep 1 # the daemon commits a run's records in the background (every 200 ms): gc reads them from the index
"$X" gc --store "$STORE" --max-size 1 >/dev/null 2>&1
rm "$G/big.bin"
m=$(counter action_misses)
cx "$G" -- sh -c 'head -c 100000 /dev/urandom > big.bin' && [ -s "$G/big.bin" ] &&
    [ "$(counter action_misses)" -gt "$m" ] && ok "gc: an evicted output turns the hit into a re-run" ||
    fail "gc: after eviction: rc=$?, misses $(($(counter action_misses) - m))"
[ "$(md5sum <"$G/big.bin")" != "$sum1" ] && ok "gc: the command really ran again" || fail "gc: the old output came back"

# ---- casfs-sh: what a recipe line may observe -------------------------------------
H=$MNT/shline
mkdir -p "$H" "$T/sys" "$T/tool"
echo '#define SYSV 1' >"$T/sys/sysv.h"
printf '#include <sysv.h>\nint v = SYSV;\nint main(void) { return v; }\n' >"$H/s.c"
LINE="gcc -isystem $T/sys -MD -MF s.d -c s.c -o s.o"
(cd "$H" && "$SH" -c "$LINE")
rm -f "$H/s.o" "$H/s.d"
echo '#define SYSV 2' >"$T/sys/sysv.h"
h=$(counter action_hits)
(cd "$H" && "$SH" -c "$LINE" && gcc -o s s.o; ./s)
rc=$?
[ $rc -eq 2 ] && [ "$(counter action_hits)" -eq "$h" ] &&
    ok "casfs-sh: a one-command compile sees a changed header outside the mount (a miss)" ||
    fail "casfs-sh: the program returns $rc (want 2), hits $h -> $(counter action_hits)"
rm -f "$H/s.o" "$H/s.d"
(cd "$H" && "$SH" -c "$LINE") && [ "$(counter action_hits)" -gt "$h" ] && ok "casfs-sh: then a hit" ||
    fail "casfs-sh: the unchanged compile missed"
u=$(counter uncacheable_shell_compile)
(cd "$H" && "$SH" -c "mkdir -p o && gcc -isystem $T/sys -c s.c -o o/s.o" && [ -s o/s.o ]) &&
    [ $(($(counter uncacheable_shell_compile) - u)) -eq 1 ] &&
    ok "casfs-sh: a compile inside a shell line runs uncached (counted)" ||
    fail "casfs-sh: shell-line compile: uncacheable_shell_compile moved by $(($(counter uncacheable_shell_compile) - u))"
printf '#!/bin/sh\necho A\n' >"$T/tool/say"
chmod +x "$T/tool/say"
(cd "$H" && "$SH" -c "$T/tool/say > said.txt")
rm -f "$H/said.txt"
printf '#!/bin/sh\necho B\n' >"$T/tool/say"
(cd "$H" && "$SH" -c "$T/tool/say > said.txt")
[ "$(cat "$H/said.txt")" = B ] && ok "casfs-sh: a changed program a shell line names outside the mount: a miss" ||
    fail "casfs-sh: said.txt holds '$(cat "$H/said.txt")' after the program changed"
PATH="$T/tool:$PATH"
rm -f "$H/said.txt"
printf '#!/bin/sh\necho C\n' >"$T/tool/say"
(cd "$H" && "$SH" -c "say > said.txt")
[ "$(cat "$H/said.txt")" = C ] && ok "casfs-sh: the same for a program found on PATH" ||
    fail "casfs-sh: said.txt holds '$(cat "$H/said.txt")'"
rm -f "$H/said.txt"
h=$(counter action_hits)
(cd "$H" && "$SH" -c "say > said.txt")
[ "$(cat "$H/said.txt")" = C ] && [ "$(counter action_hits)" -gt "$h" ] && ok "casfs-sh: unchanged: a hit" ||
    fail "casfs-sh: unchanged line: '$(cat "$H/said.txt")', hits $h -> $(counter action_hits)"
echo 'echo script > ran.txt' >"$H/x.sh"
l=$(counter action_lookups)
(cd "$H" && "$SH" x.sh) && [ "$(cat "$H/ran.txt")" = script ] && [ "$(counter action_lookups)" -eq "$l" ] &&
    ok "casfs-sh SCRIPT (not -c): runs in sh, uncached" || fail "casfs-sh x.sh"

# a variable the line expands is in the key (allowlisted or not)
rm -f "$H/v.txt"
(cd "$H" && CASFS_TV=one "$SH" -c 'echo $CASFS_TV > v.txt')
rm -f "$H/v.txt"
(cd "$H" && CASFS_TV=two "$SH" -c 'echo $CASFS_TV > v.txt')
[ "$(cat "$H/v.txt")" = two ] && ok "casfs-sh: a variable the line expands changed: a miss" ||
    fail "casfs-sh: v.txt holds '$(cat "$H/v.txt")' (want two)"
# a directory output with the set-group-ID bit the command set
rm -rf "$H/sg"
(cd "$H" && "$SH" -c 'mkdir sg && chmod 2775 sg')
rm -rf "$H/sg"
h=$(counter action_hits)
(cd "$H" && "$SH" -c 'mkdir sg && chmod 2775 sg')
[ "$(stat -c %a "$H/sg")" = 2775 ] && [ "$(counter action_hits)" -gt "$h" ] &&
    ok "a set-group-ID directory output keeps the bit on a hit" ||
    fail "sgid directory: mode $(stat -c %a "$H/sg"), hits $h -> $(counter action_hits)"

# a compiler behind a wrapper: what it reads outside the mount is unknown
u=$(counter uncacheable_hidden_compile)
(cd "$H" && "$X" exec -- env gcc -isystem "$T/sys" -c s.c -o w.o) && [ -s "$H/w.o" ] &&
    [ $(($(counter uncacheable_hidden_compile) - u)) -eq 1 ] &&
    ok "a compiler behind a wrapper (env gcc): runs, not cached (hidden_compile)" ||
    fail "env gcc: uncacheable_hidden_compile moved by $(($(counter uncacheable_hidden_compile) - u))"
# a link that compiles its source: the headers it read outside the mount count
(cd "$H" && "$X" exec -- gcc -isystem "$T/sys" s.c -o prog) || fail "compile and link"
rm -f "$H/prog"
echo '#define SYSV 3' >"$T/sys/sysv.h"
h=$(counter action_hits)
(cd "$H" && "$X" exec -- gcc -isystem "$T/sys" s.c -o prog && ./prog)
rc=$?
[ $rc -eq 3 ] && [ "$(counter action_hits)" -eq "$h" ] &&
    ok "compile and link in one: a changed header outside the mount misses" ||
    fail "compile and link: the program returns $rc (want 3), hits $h -> $(counter action_hits)"
rm -f "$H/prog"
(cd "$H" && "$X" exec -- gcc -isystem "$T/sys" s.c -o prog && ./prog)
rc=$?
[ $rc -eq 3 ] && [ "$(counter action_hits)" -gt "$h" ] && ok "compile and link in one: then a hit" ||
    fail "compile and link: rerun returns $rc, hits $h -> $(counter action_hits)"
ls /tmp/casfs-cc.* >/dev/null 2>&1 && fail "a dependency file was left in /tmp" || ok "no dependency file left behind"

# a recursive make under casfs-sh: the inner line is an action of its own,
# the outer run is not cached (what the inner one restores is not its own)
N=$MNT/nested
mkdir -p "$N"
printf 'all:\n\t$(MAKE) -s -C sub\n' >"$N/Makefile"
mkdir -p "$N/sub"
printf 'all:\n\techo in > in.txt\n' >"$N/sub/Makefile"
u=$(counter uncacheable_nested)
(cd "$N" && make -s SHELL="$SH" >/dev/null)
rm -f "$N/sub/in.txt"
h=$(counter action_hits)
(cd "$N" && make -s SHELL="$SH" >/dev/null)
[ "$(cat "$N/sub/in.txt")" = in ] && [ $(($(counter uncacheable_nested) - u)) -eq 2 ] &&
    [ $(($(counter action_hits) - h)) -eq 1 ] &&
    ok "nested: the recursive make is not cached, its recipe line is (a hit)" ||
    fail "nested: in.txt '$(cat "$N/sub/in.txt")', uncacheable_nested +$(($(counter uncacheable_nested) - u)), hits +$(($(counter action_hits) - h))"

# ---- a caller that sees other files than the daemon (its own mount namespace) ----
# The same path names another program there: the key takes the caller's.
V=$MNT/view
mkdir -p "$V" "$T/tool" "$T/tool2"
printf '#!/bin/sh\necho one > made.txt\n' >"$T/tool/gen"
printf '#!/bin/sh\necho two > made.txt\n' >"$T/tool2/gen"
chmod +x "$T/tool/gen" "$T/tool2/gen"
cx "$V" -- "$T/tool/gen" </dev/null
in_view() { # a private mount namespace where $T/tool/gen is the second program
    unshare -m sh -c 'mount --make-rprivate / && mount --bind "$1/tool2/gen" "$1/tool/gen" &&
        cd "$2" && rm -f made.txt && "$3" exec -- "$1/tool/gen" </dev/null && cat made.txt' sh "$T" "$V" "$X"
}
m=$(counter action_misses)
got=$(in_view)
[ "$got" = two ] && [ "$(counter action_misses)" -gt "$m" ] &&
    ok "another view: the program the caller sees runs (a miss)" ||
    fail "another view: made.txt holds '$got', misses $m -> $(counter action_misses)"
h=$(counter action_hits)
got=$(in_view)
[ "$got" = two ] && [ "$(counter action_hits)" -gt "$h" ] && ok "another view: then a hit with its output" ||
    fail "another view: second run: '$got', hits $h -> $(counter action_hits)"
rm -f "$V/made.txt"
cx "$V" -- "$T/tool/gen" </dev/null
[ "$(cat "$V/made.txt")" = one ] && ok "another view: the daemon's view still gets its own result" ||
    fail "another view: made.txt holds '$(cat "$V/made.txt")'"
# the whole mount bound elsewhere (in a namespace that takes it away): the
# caller's paths, one round trip
B=$T/bound
mkdir -p "$B"
rm -f "$V/made.txt"
h=$(counter action_hits)
unshare -m sh -c 'mount --make-rprivate / && mount --bind "$1" "$2" && cd "$2/view" &&
    "$3" exec -- "$4/tool/gen" </dev/null' sh "$MNT" "$B" "$X" "$T" || fail "bind mount: the run failed"
[ "$(cat "$V/made.txt")" = one ] && [ "$(counter action_hits)" -gt "$h" ] &&
    ok "a bind mount of the mount: a hit there" || fail "bind mount: made.txt '$(cat "$V/made.txt")'"

# ---- headers outside the mount of a command that compiles several sources
# (each cc1 would rewrite one -MF file), of a gcc link that compiles with -MD
# of its own, and of a compile whose -MD is in a response file (cc1 ignores
# SUNPRO_DEPENDENCIES under -MD): learned, or the run is not cached
MS=$MNT/multisrc
mkdir -p "$MS" "$T/msys" && echo 'int x1 = 1;' >"$T/msys/x1.h" && echo 'int x2 = 2;' >"$T/msys/x2.h"
printf '#include <x1.h>\nint ga(void) { return x1; }\n' >"$MS/a.c"
printf '#include <x2.h>\nint gb(void) { return x2; }\n' >"$MS/b.c"
printf 'int ga(void);\nint main(void) { return ga(); }\n' >"$MS/m.c" && gcc -c "$MS/m.c" -o "$MS/m.o"
echo "-MD -isystem $T/msys" >"$MS/d.rsp"
msv() { objdump -s -j .data "$MS/a.o" | awk 'END { print substr($2, 1, 2) + 0 }'; }
ms() { # the value of x1 each command gives
    (cd "$MS" && rm -f a.o b.o && "$X" exec -- gcc -isystem "$T/msys" -c a.c b.c) && printf '%s ' "$(msv)"
    if command -v clang >/dev/null; then
        (cd "$MS" && rm -f a.o b.o && "$X" exec -- clang -isystem "$T/msys" -c a.c b.c 2>/dev/null) && printf '%s ' "$(msv)"
    fi
    (cd "$MS" && rm -f prog a.d && "$X" exec -- gcc -MD -isystem "$T/msys" a.c m.o -o prog && ./prog)
    printf '%s ' $?
    (cd "$MS" && rm -f a.o a.d && "$X" exec -- gcc @d.rsp -c a.c -o a.o) && printf '%s' "$(msv)"
}
ms >/dev/null
# (clang's compile of several sources too, where clang is installed)
n1="1 1 1" n7="7 7 7"
command -v clang >/dev/null && n1="1 1 1 1" n7="7 7 7 7"
check_eq "several sources, -MD in a link, -MD in a response file: again" "$n1" "$(ms)"
echo 'int x1 = 7;' >"$T/msys/x1.h"
check_eq "several sources, -MD in a link, -MD in a response file: a header outside the mount changed" "$n7" "$(ms)"
# ---- a precompiled header made without -c (g++ -x c++-header H -o H.gch, or
# gcc H.h): no link, so casfs adds no linker option (the driver would take
# -Wl,... for a linker input and run ld); its headers are learned
PN=$MNT/pchmake
mkdir -p "$PN" "$T/pchsys" && echo '#define PV 1' >"$T/pchsys/pv.h"
printf '#include <pv.h>\n#define PRE PV\n' >"$PN/pre.h"
echo 'int pre(void) { return PRE; }' >"$PN/p.c"
pmk() { # the value pre() returns, with pre.h.gch made through casfs exec
    (cd "$PN" && rm -f pre.h.gch p.o && "$X" exec -- gcc -isystem "$T/pchsys" -x c-header pre.h -o pre.h.gch &&
        gcc -Winvalid-pch -include pre.h -c p.c -o p.o && objdump -d p.o | grep -o 'mov  *\$0x[0-9a-f]*' | head -1)
}
check_eq "a precompiled header made without -c under casfs exec" 'mov    $0x1' "$(pmk)"
check_eq "a precompiled header made without -c: again (a hit)" 'mov    $0x1' "$(pmk)"
echo '#define PV 4' >"$T/pchsys/pv.h"
check_eq "a precompiled header made without -c: its header outside the mount changed" 'mov    $0x4' "$(pmk)"
# ---- profiles read from -fprofile-dir=DIR outside the mount: not seen, so
# such a compile is not cached (a profile added there changes the object)
PF=$MNT/profdir
mkdir -p "$PF" "$T/prof"
printf 'int cold(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * i; return s; }\nint main(int c, char **v) { (void)v; if (c > 5) return cold(c); return 0; }\n' >"$PF/a.c"
pfu() { # how many .text.unlikely sections the profile-using compile gives
    (cd "$PF" && rm -f a.o && "$X" exec -- gcc -O2 -fprofile-use -fprofile-dir="$T/prof" -Wno-missing-profile -c a.c -o a.o) &&
        objdump -h "$PF/a.o" | grep -c unlikely
}
pfu >/dev/null; pfu >/dev/null
(cd "$PF" && gcc -O2 -fprofile-generate -fprofile-dir="$T/prof" -c a.c -o a.o && gcc -fprofile-generate a.o -o pg && ./pg && rm -f a.o pg) ||
    fail "profdir: could not make a profile"
check_eq "a profile put in -fprofile-dir outside the mount: the object a fresh compile makes" 1 "$(pfu)"

# ---- bad input ------------------------------------------------------------------
cx "$MNT" >/dev/null 2>&1
[ $? -eq 2 ] && ok "no command: exit 2" || fail "no command: exit $?"
cx "$MNT" -- casfs-no-such-command-here 2>"$T/nf.err"
rc=$?
[ $rc -eq 127 ] && grep -q "command not found" "$T/nf.err" && ok "command not found: 127 and a message" ||
    fail "command not found: exit $rc: $(cat "$T/nf.err")"
(cd "$T" && "$X" exec -- sh -c 'echo outside; exit 5') >"$T/out.txt" 2>"$T/out.err"
rc=$?
[ $rc -eq 5 ] && [ "$(cat "$T/out.txt")" = outside ] && [ "$(wc -l <"$T/out.err")" -eq 1 ] &&
    grep -q "not on a casfs mount" "$T/out.err" && ok "outside a mount: runs uncached with one warning" ||
    fail "outside a mount: exit $rc, stderr: $(cat "$T/out.err")"
K=$MNT/killed
mkdir -p "$K"
cx "$K" -- sh -c 'echo x > k.txt; kill -9 $$'
rc=$?
[ $rc -eq 137 ] && ok "killed command: 128+9" || fail "killed command: exit $rc"
m=$(counter action_misses)
cx "$K" -- sh -c 'echo x > k.txt; kill -9 $$'
[ "$(counter action_misses)" -gt "$m" ] && ok "killed command: nothing was stored" || fail "killed command: it hit"
(cd "$MNT" && "$LAUNCH" true) && ok "casfs-exec launcher runs a command" || fail "casfs-exec launcher"
# static: nothing for the dynamic loader to do; and the client alone
if readelf -d "$LAUNCH" 2>&1 | grep -qE 'NEEDED.*lib(a|ub|t|l)san'; then
    skip_optional "casfs-exec is linked statically" "a sanitizer build links it dynamically (the sanitizers' runtimes)"
elif readelf -d "$LAUNCH" 2>&1 | grep -q NEEDED; then
    fail "casfs-exec needs shared libraries: $(readelf -d "$LAUNCH" | grep NEEDED | tr '\n' ' ')"
else
    ok "casfs-exec is linked statically"
fi
syms=$(nm "$LAUNCH" 2>&1)
code=$(grep -E ' T (fuse_session_new|mdb_env_open|ZSTD_compress|ZSTD_decompress|dlopen)$' <<<"$syms")
[ -z "$code" ] && grep -q ' T XXH3_128bits$' <<<"$syms" &&
    ok "casfs-exec is the client alone (no libfuse, LMDB, zstd or dlopen in it)" ||
    fail "casfs-exec holds more than the client: $code"

# ---- the ctl protocol: a client of protocol 1 (every response read from the
# file) and of protocol 2 (the request in the call, the response back in it)
# are both answered; another is refused with EPROTO, which casfs exec turns
# into "another casfs version" and an uncached run
mkdir -p "$MNT/proto"
check_eq "ctl protocol: 1 and 2 answered (WHERE: the mount-relative path), 3 refused" \
    "1 read proto|2 inline proto|3 EPROTO" "$("$PYTHON" - "$MNT/proto" <<'PY'
import errno, fcntl, os, struct, sys
CHUNK = 8192
SIZE = 32 + CHUNK
IOC = (3 << 30) | (SIZE << 16) | (ord('C') << 8) | 4
fd = os.open(os.path.join(sys.argv[1], ".casfs/ctl"), os.O_RDONLY)
def fields(b):
    out, i = {}, 0
    while i + 8 <= len(b):
        tag, n = struct.unpack_from("<II", b, i)
        out[tag] = b[i + 8:i + 8 + n]
        i += 8 + n
    return out
res = []
for proto in (1, 2, 3):
    buf = bytearray(struct.pack("<IIIiIIQ", proto, 2, 0, 0, 0, 0, 0) + bytes(CHUNK))
    try:
        fcntl.ioctl(fd, IOC, buf)
    except OSError as e:
        res.append("%d %s" % (proto, errno.errorcode[e.errno]))
        continue
    _, _, rlen, result, _, _, _ = struct.unpack_from("<IIIiIIQ", buf, 0)
    inline = bytes(buf[32:32 + rlen])
    filed = os.pread(fd, rlen, 0)
    how = "inline" if inline == filed and any(inline) else "read" if not any(inline) else "mismatch"
    roots = [v for v in fields(filed).values() if v == b"proto"]
    res.append("%d %s %s" % (proto, how, roots[0].decode() if result == 0 and roots else "?"))
print("|".join(res))
PY
)"

saved=$(counter action_time_saved_ms)
hits=$(counter action_hits)
[ "$saved" -gt 0 ] && [ "$saved" -lt $((hits * 60000)) ] &&
    ok "time saved is plausible: $saved ms over $hits hits" || fail "time saved: $saved ms over $hits hits"

casfs_umount "$MNT" || fail "umount"
casfs_finish
