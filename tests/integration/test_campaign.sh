#!/bin/bash
# The action cache against fresh runs: every result casfs exec hands out
# must equal what the command does when it really runs, from the same state,
# at the same place: its outputs (bytes and permission bits, or their
# absence), stdout, stderr and exit status.
#
# First, deterministic reproducers of wrong results found by the randomized
# campaign and by review: each records a run, changes one thing the command
# can observe, and compares the next casfs exec with a plain run of the same
# command from the same state.  A miss always passes (the command ran); a
# hit passes only when it equals the fresh run.  Each comment says what the
# command observes that a hit once ignored.
#
# Then the open questions: reproducers of wrong results that casfs's design
# leaves open (docs/ACTIONS.md), not run by default (CASFS_CAMPAIGN_OPEN=1).
#
# Then the randomized campaign (campaign.py): a small C project built action
# by action and with make -j2 SHELL=casfs-sh through casfs exec, mutated at
# random round after round, every action judged the same way; by default
# one fixed seed.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-600}
. "$(dirname "$0")/lib.sh"

casfs_setup
X=$CASFS
casfs_mount || { fail "mount"; casfs_finish; }
OUT=$T/outside          # not on the mount
mkdir -p "$OUT" "$T/sf"

# counter NAME: the mount's counter
counter() {
    "$X" stats --json "$MNT" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['mounts'][0]['counters']['$1'])"
}

# cx DIR CMD...: CMD through casfs exec in DIR (its decision logged)
cx() {
    local d=$1
    shift
    (cd "$d" && CASFS_LOG=debug "$X" exec -- "$@" 2>"$T/cx.err")
    local rc=$?
    log "setup in ${d#"$MNT"/}: $*: $(grep '^casfs: ' "$T/cx.err" | tail -n 1)"
    return $rc
}

# state_of PATH: what a fresh run is compared on (content digest and
# permission bits, a symlink's target, a directory's mode, or absence; and
# whether a listing of its directory shows it)
state_of() {
    local listed="not listed"
    [ -n "$(find "$(dirname "$1")" -mindepth 1 -maxdepth 1 -name "$(basename "$1")" -print -quit 2>/dev/null)" ] &&
        listed=listed
    if [ -L "$1" ]; then
        echo "symlink -> $(readlink "$1"), $listed"
    elif [ -d "$1" ]; then
        echo "directory mode $(stat -c %a "$1"), $listed"
    elif [ -f "$1" ]; then
        echo "file mode $(stat -c %a "$1") $(md5sum <"$1" | cut -c1-32), $listed"
    elif [ -e "$1" ]; then
        echo "other $(stat -c %F "$1"), $listed"
    else
        echo "absent, $listed"
    fi
}

# same_as_fresh NAME DIR STDIN "OUTPUT..." CMD...: runs CMD in DIR through
# casfs exec (stdin from STDIN), then puts the OUTPUTs (relative to DIR or
# absolute) back as they were before and runs CMD plainly; the two must
# agree on every OUTPUT, stdout, stderr and the exit status.  SF_BEFORE, if
# set, is run right before casfs exec (after --explain, which starts a
# session of its own); SF_RELINK, if set, after the OUTPUTs are put back
# (copies of them, one by one, are no hard links of each other).  With SF_SH=1, CMD is the arguments of a shell: the
# cached run is casfs-sh CMD (as make SHELL=casfs-sh runs a recipe line),
# the fresh one /bin/sh CMD (as make runs its default SHELL).
same_as_fresh() {
    local name=$1 dir=$2 stdin=$3 outs=$4
    shift 4
    local w=$T/sf/$name o p i h crc frc kind cst fst diffs="" expl
    rm -rf "$w"
    mkdir -p "$w/pre"
    i=0
    for o in $outs; do
        case "$o" in /*) p=$o ;; *) p=$dir/$o ;; esac
        if [ -e "$p" ] || [ -L "$p" ]; then cp -a "$p" "$w/pre/$i"; fi
        i=$((i + 1))
    done
    local cached=("$X" exec --) plain=()
    if [ "${SF_SH:-}" = 1 ]; then
        cached=("$CASFS_BINDIR/casfs-sh")
        plain=(/bin/sh)
    fi
    if [ "${SF_SH:-}" != 1 ]; then
        expl=$(cd "$dir" && "$X" exec --explain -- "$@" </dev/null 2>&1)
    fi
    h=$(counter action_hits)
    if [ -n "${SF_BEFORE:-}" ]; then eval "$SF_BEFORE"; fi
    if [ "${SF_SH:-}" = 1 ]; then
        # casfs-sh has no --explain: its decision, logged, is taken out of stderr
        (cd "$dir" && CASFS_LOG=debug "${cached[@]}" "$@" <"$stdin" >"$w/c.out" 2>"$w/c.log")
        crc=$?
        grep -v '^casfs: ' "$w/c.log" >"$w/c.err"
        expl=$(grep '^casfs: ' "$w/c.log" | tr '\n' ' ')
    else
        (cd "$dir" && "${cached[@]}" "$@" <"$stdin" >"$w/c.out" 2>"$w/c.err")
        crc=$?
    fi
    kind=miss
    [ "$(counter action_hits)" -gt "$h" ] && kind=hit
    SF_KIND=$kind
    cst=""
    for o in $outs; do
        case "$o" in /*) p=$o ;; *) p=$dir/$o ;; esac
        cst="$cst$o: $(state_of "$p"); "
    done
    i=0
    for o in $outs; do
        case "$o" in /*) p=$o ;; *) p=$dir/$o ;; esac
        rm -rf "$p"
        if [ -e "$w/pre/$i" ] || [ -L "$w/pre/$i" ]; then cp -a "$w/pre/$i" "$p"; fi
        i=$((i + 1))
    done
    if [ -n "${SF_RELINK:-}" ]; then eval "$SF_RELINK"; fi
    (cd "$dir" && "${plain[@]}" "$@" <"$stdin" >"$w/f.out" 2>"$w/f.err")
    frc=$?
    fst=""
    for o in $outs; do
        case "$o" in /*) p=$o ;; *) p=$dir/$o ;; esac
        fst="$fst$o: $(state_of "$p"); "
    done
    [ "$crc" = "$frc" ] || diffs="$diffs exit status $crc, fresh $frc;"
    cmp -s "$w/c.out" "$w/f.out" || diffs="$diffs stdout differs;"
    cmp -s "$w/c.err" "$w/f.err" || diffs="$diffs stderr '$(head -c 200 "$w/c.err")', fresh '$(head -c 200 "$w/f.err")';"
    [ "$cst" = "$fst" ] || diffs="$diffs outputs: [$cst], fresh [$fst];"
    if [ -z "$diffs" ]; then
        ok "$name: the result ($kind) equals a fresh run"
    else
        fail "$name: a $kind that differs from a fresh run:$diffs explain: $expl; command: $*"
    fi
}

# ---- the judge judged: a hit and a miss that are right --------------------------
# Each reproducer below runs its check from the state its recorded run
# started from, but for the one thing it changes: an output that was absent
# then is removed again (its presence is an input of its own).
R=$MNT/repro
d=$R/control
mkdir -p "$d/inc"
echo '#define C 1' >"$d/inc/c.h"
printf '#include "c.h"\nint c = C;\n' >"$d/c.c"
(cd "$d" && gcc -Iinc -c c.c -o c.o)
cx "$d" gcc -Iinc -c c.c -o c.o
same_as_fresh "control: unchanged" "$d" /dev/null "c.o" gcc -Iinc -c c.c -o c.o
[ "$SF_KIND" = hit ] && ok "control: unchanged: a hit" || fail "control: unchanged: a $SF_KIND"
echo '#define C 2' >"$d/inc/c.h"
same_as_fresh "control: a changed header" "$d" /dev/null "c.o" gcc -Iinc -c c.c -o c.o
[ "$SF_KIND" = miss ] && ok "control: a changed header: a miss" || fail "control: a changed header: a $SF_KIND"

# ---- reproducers (each fails while the wrong result is handed out) -------------

# What a command reads on its standard input.
d=$R/stdin
mkdir -p "$d"
printf 'int a_var = 1;\n' >"$T/in1"
printf 'int b_var = 2;\n' >"$T/in2"
cx "$d" gcc -x c -c - -o x.o <"$T/in1"
rm "$d/x.o"
same_as_fresh "stdin: another program on standard input" "$d" "$T/in2" "x.o" gcc -x c -c - -o x.o

# Whether a run's outputs existed before it: mkdir, ln -s, ar (which updates
# an archive in place), cp -n, >> ... depend on it.
d=$R/mkdir
mkdir -p "$d"
cx "$d" mkdir made
rm -rf "$d/made"
mkdir "$d/made"
same_as_fresh "mkdir: the directory exists now" "$d" /dev/null "made" mkdir made

d=$R/ar
mkdir -p "$d"
echo 'int f1(void) { return 1; }' >"$d/f1.c"
echo 'int f2(void) { return 2; }' >"$d/f2.c"
(cd "$d" && gcc -c f1.c f2.c)
cx "$d" ar rc lib.a f1.o
rm -f "$d/lib.a"
(cd "$d" && ar rc lib.a f2.o)
same_as_fresh "ar: the archive exists now (ar adds to it)" "$d" /dev/null "lib.a" ar rc lib.a f1.o

d=$R/append
mkdir -p "$d"
echo one >"$d/in.txt"
cx "$d" sh -c 'cat in.txt >> log.txt'
same_as_fresh "append (>>): the log exists now" "$d" /dev/null "log.txt" sh -c 'cat in.txt >> log.txt'

# ... and so does the mode of what they write: a redirection that
# truncates an existing file keeps its permission bits.
d=$R/truncate-mode
mkdir -p "$d"
echo a >"$d/o.txt"
chmod 644 "$d/o.txt"
cx "$d" sh -c 'echo a > o.txt'
chmod 600 "$d/o.txt"
same_as_fresh "> over an existing file: its mode is kept" "$d" /dev/null "o.txt" sh -c 'echo a > o.txt'

# The same, when the output being truncated was put there by a hit and
# looked up since (its entry cached): a hit where it is absent must not
# restore the mode the truncation kept (644) in place of the one a new file
# gets (600 under umask 077).
B=$R/truncate-restored/sb
for n in 1 2 3; do mkdir -p "$B/$n/execroot/p"; done
cx "$B/1/execroot/p" sh -c 'echo restored > o.txt'
cx "$B/2/execroot/p" sh -c 'echo restored > o.txt'
stat "$B/2/execroot/p/o.txt" >/dev/null
umask 077
cx "$B/2/execroot/p" sh -c 'echo restored > o.txt'
same_as_fresh "> over an output a hit restored, then where it is absent" "$B/3/execroot/p" /dev/null "o.txt" \
    sh -c 'echo restored > o.txt'
umask 022

# An output's name that was absent when the run was recorded and is now a
# symlink: the fresh run writes through it (to a file elsewhere), a hit must
# not put a file in the symlink's place.
d=$R/output-now-symlink
mkdir -p "$d/elsewhere"
cx "$d" sh -c 'echo a > o.txt'
rm "$d/o.txt"
ln -s elsewhere/t.txt "$d/o.txt"
same_as_fresh "> into a name that is a symlink now" "$d" /dev/null "o.txt elsewhere/t.txt" sh -c 'echo a > o.txt'

# ... or a hard link of another file: the fresh run writes through it (the
# other name changes too), a hit must not put a new file in its place.
d=$R/output-now-hardlink
mkdir -p "$d"
cx "$d" sh -c 'echo out > o.txt'
echo other >"$d/keep.txt"
ln -f "$d/keep.txt" "$d/o.txt"
SF_RELINK='ln -f "$d/keep.txt" "$d/o.txt"'
same_as_fresh "> into a name that is a hard link now" "$d" /dev/null "o.txt keep.txt" sh -c 'echo out > o.txt'
SF_RELINK=""

# Headers outside the mount that a user's -MMD depfile leaves out (system
# headers): a changed header in an -isystem directory outside the mount.
d=$R/mmd
mkdir -p "$d" "$OUT/sys3"
echo '#define SYSV 1' >"$OUT/sys3/sysv.h"
printf '#include <sysv.h>\nint v = SYSV;\n' >"$d/s.c"
cx "$d" gcc -isystem "$OUT/sys3" -MMD -MF s.d -c s.c -o s.o
rm "$d/s.o" "$d/s.d"
echo '#define SYSV 2' >"$OUT/sys3/sysv.h"
same_as_fresh "-MMD: a changed -isystem header outside the mount" "$d" /dev/null "s.o s.d" \
    gcc -isystem "$OUT/sys3" -MMD -MF s.d -c s.c -o s.o

# What a stat shows besides the file type: the size test -s sees, the
# permission bits cp copies.
d=$R/size
mkdir -p "$d"
: >"$d/e.txt"
cx "$d" sh -c '[ -s e.txt ] && echo full > r.txt || echo empty > r.txt'
rm "$d/r.txt"
echo x >"$d/e.txt"
same_as_fresh "test -s: the probed file is no longer empty" "$d" /dev/null "r.txt" \
    sh -c '[ -s e.txt ] && echo full > r.txt || echo empty > r.txt'

d=$R/mode
mkdir -p "$d"
echo 'echo hi' >"$d/tool.sh"
chmod 644 "$d/tool.sh"
cx "$d" cp tool.sh tool.out
rm -f "$d/tool.out"
chmod 755 "$d/tool.sh"
same_as_fresh "cp: the copied file became executable" "$d" /dev/null "tool.out" cp tool.sh tool.out

# The execute bit of a script run directly: exec(2) needs it; a read alone
# would not record it.
d=$R/exec-bit
mkdir -p "$d"
printf '#!/bin/sh\necho ran\n' >"$d/t.sh"
chmod 755 "$d/t.sh"
cx "$d" sh -c './t.sh > o.txt'
rm "$d/o.txt"
chmod 644 "$d/t.sh"
same_as_fresh "exec: the script lost its execute bit" "$d" /dev/null "o.txt" sh -c './t.sh > o.txt'

# The content of the source of a hard link or a rename, which the command
# does not read: a hit puts the recorded content in place of the new one
# (and mv's hit removes the source: the user's new content is lost).
d=$R/ln
mkdir -p "$d"
echo one >"$d/src.txt"
cx "$d" ln -f src.txt out.txt
rm "$d/out.txt"
echo two >"$d/src.txt"
same_as_fresh "ln: the linked file changed" "$d" /dev/null "out.txt src.txt" ln -f src.txt out.txt

d=$R/mv
mkdir -p "$d"
echo one >"$d/a.txt"
cx "$d" mv a.txt b.txt
rm "$d/b.txt"
echo two >"$d/a.txt"
same_as_fresh "mv: the moved file changed" "$d" /dev/null "a.txt b.txt" mv a.txt b.txt

# ... and of a directory moved: what it holds becomes the run's outputs,
# none of it read.  (The hit restores A, with the old file, first; the
# removal of Z, not empty, then fails and the command runs on: it moves Z
# into the restored A.)
d=$R/mv-dir
mkdir -p "$d/Z"
echo one >"$d/Z/f.txt"
cx "$d" mv Z A
rm -rf "$d/A"
mkdir "$d/Z"
echo two >"$d/Z/f.txt"
same_as_fresh "mv: a file in the moved directory changed" "$d" /dev/null "Z Z/f.txt A A/f.txt A/Z" mv Z A

# The content of a file a chmod (or touch) leaves in place: the file, as
# it ends, is the output.
d=$R/chmod-content
mkdir -p "$d"
echo 'echo one' >"$d/t.sh"
cx "$d" chmod 755 t.sh
chmod 644 "$d/t.sh"
echo 'echo two' >"$d/t.sh"
same_as_fresh "chmod: the file's content changed" "$d" /dev/null "t.sh" chmod 755 t.sh

# A symlink's target, which the kernel could cache (FUSE_CAP_CACHE_SYMLINKS):
# a run that follows a symlink resolved before it would send no READLINK.
d=$R/symlink
mkdir -p "$d/inc"
echo '#define V 1' >"$d/inc/real1.h"
echo '#define V 2' >"$d/inc/real2.h"
ln -s real1.h "$d/inc/cfg.h"
printf '#include "cfg.h"\nint v = V;\n' >"$d/m.c"
cat "$d/inc/cfg.h" >/dev/null   # resolved once, outside any session
cx "$d" gcc -Iinc -c m.c -o m.o
rm "$d/m.o"
ln -sfn real2.h "$d/inc/cfg.h"
same_as_fresh "symlink: a header symlink retargeted" "$d" /dev/null "m.o" gcc -Iinc -c m.c -o m.o

# -fdebug-prefix-map of a proper ancestor of the root: the objects hold the
# rest of the root's path (".../1/execroot/proj"), which the root scan
# cannot see, and the key would not change between roots.
B=$R/pm/sb
for n in 1 2; do
    mkdir -p "$B/$n/execroot/proj"
    echo 'int pm(void) { return 7; }' >"$B/$n/execroot/proj/pm.c"
done
cx "$B/1/execroot/proj" gcc -g "-fdebug-prefix-map=$B=/S" -c pm.c -o pm.o
same_as_fresh "prefix map of an ancestor of the root: another root" "$B/2/execroot/proj" /dev/null "pm.o" \
    gcc -g "-fdebug-prefix-map=$B=/S" -c pm.c -o pm.o

# ... and the same map inside a response file, which the key reads as bytes
B=$R/pm-rsp/sb
for n in 1 2; do
    mkdir -p "$B/$n/execroot/proj"
    echo 'int pm(void) { return 7; }' >"$B/$n/execroot/proj/pm.c"
    printf '%s\n' -g "-fdebug-prefix-map=$B=/S" -c pm.c -o pm.o >"$B/$n/execroot/proj/args.rsp"
done
cx "$B/1/execroot/proj" gcc @args.rsp
same_as_fresh "prefix map of an ancestor of the root in a response file: another root" "$B/2/execroot/proj" \
    /dev/null "pm.o" gcc @args.rsp

# Headers outside the mount read by a compile in a recipe line under
# casfs-sh (with the user's own -MD): the command is a shell line.
d=$R/casfs-sh
mkdir -p "$d" "$OUT/syssh"
echo '#define SYSV 1' >"$OUT/syssh/sysv.h"
printf '#include <sysv.h>\nint v = SYSV;\n' >"$d/s.c"
(cd "$d" && "$CASFS_BINDIR/casfs-sh" -c "gcc -isystem $OUT/syssh -MD -MF s.d -c s.c -o s.o")
rm "$d/s.o" "$d/s.d"
echo '#define SYSV 2' >"$OUT/syssh/sysv.h"
SF_SH=1
same_as_fresh "casfs-sh: a changed -isystem header outside the mount" "$d" /dev/null "s.o s.d" \
    -c "gcc -isystem $OUT/syssh -MD -MF s.d -c s.c -o s.o"
SF_SH=""

# Outputs that hold the root's path where a scan for it cannot see it: gcc
# -g -gz compresses the debug sections (DW_AT_comp_dir among them).  It may
# not be reused at another root.
B=$R/hidden-root/sb
for n in 1 2; do
    mkdir -p "$B/$n/execroot/proj"
    echo 'int gz(void) { return 3; }' >"$B/$n/execroot/proj/g.c"
done
cx "$B/1/execroot/proj" gcc -g -gz -c g.c -o g.o
same_as_fresh "gcc -g -gz (compressed debug info): another root" "$B/2/execroot/proj" /dev/null "g.o" \
    gcc -g -gz -c g.c -o g.o

# An output outside the mount: a hit would restore nothing.
d=$R/outside-output
mkdir -p "$d"
echo 'int o7;' >"$d/o7.c"
cx "$d" gcc -c o7.c -o "$OUT/o7.o"
rm -f "$OUT/o7.o"
same_as_fresh "an output outside the mount" "$d" /dev/null "$OUT/o7.o" gcc -c o7.c -o "$OUT/o7.o"

# Absences outside the mount: a header added to an -isystem directory
# outside the mount shadows one found later in the search chain (here an
# -idirafter directory on the mount), also one that is a symlink there: its
# name must stay absent in the earlier directories (the search found it by
# its own name, not its target's).
for kind in file symlink; do
    d=$R/shadow-outside-$kind
    mkdir -p "$d/late" "$d/real" "$OUT/sys-$kind"
    echo '#define LATE 1' >"$d/real/late.h"
    if [ $kind = file ]; then mv "$d/real/late.h" "$d/late/late.h"; else ln -s ../real/late.h "$d/late/late.h"; fi
    printf '#include <late.h>\nint late = LATE;\n' >"$d/l.c"
    cx "$d" gcc -isystem "$OUT/sys-$kind" -idirafter late -c l.c -o l.o
    rm "$d/l.o"
    echo '#define LATE 2' >"$OUT/sys-$kind/late.h"
    same_as_fresh "a new header outside the mount shadows one on it ($kind)" "$d" /dev/null "l.o" \
        gcc -isystem "$OUT/sys-$kind" -idirafter late -c l.c -o l.o
done

# A directory output's set-group-ID bit (install -d -m 2775, shared group
# directories).
d=$R/setgid-dir
mkdir -p "$d"
cx "$d" sh -c 'mkdir -p shared && chmod 2775 shared'
rmdir "$d/shared"
same_as_fresh "a set-group-ID directory output" "$d" /dev/null "shared" sh -c 'mkdir -p shared && chmod 2775 shared'

# What a compiler behind a wrapper (env, nice, timeout, POSIX c99) reads
# outside the mount: the command is not gcc.
d=$R/wrapped
mkdir -p "$d" "$OUT/sysw"
echo '#define SYSV 1' >"$OUT/sysw/sysv.h"
printf '#include <sysv.h>\nint v = SYSV;\n' >"$d/s.c"
cx "$d" env gcc -isystem "$OUT/sysw" -c s.c -o s.o
cx "$d" c99 -isystem "$OUT/sysw" -c s.c -o s99.o
rm "$d/s.o" "$d/s99.o"
echo '#define SYSV 2' >"$OUT/sysw/sysv.h"
same_as_fresh "env gcc: a changed -isystem header outside the mount" "$d" /dev/null "s.o" \
    env gcc -isystem "$OUT/sysw" -c s.c -o s.o
same_as_fresh "c99: a changed -isystem header outside the mount" "$d" /dev/null "s99.o" \
    c99 -isystem "$OUT/sysw" -c s.c -o s99.o

# The value of a variable not on the allowlist that a shell line expands
# (the line names it).
d=$R/unlisted-variable
mkdir -p "$d"
CAMPAIGN_VAR=one cx "$d" sh -c 'echo "$CAMPAIGN_VAR" > v.txt'
rm "$d/v.txt"
export CAMPAIGN_VAR=two
same_as_fresh "sh -c 'echo \$VAR': another value of a variable the line names" "$d" /dev/null "v.txt" \
    sh -c 'echo "$CAMPAIGN_VAR" > v.txt'
export CAMPAIGN_VAR=one
(cd "$d" && "$CASFS_BINDIR/casfs-sh" -c 'echo "$CAMPAIGN_VAR" > w.txt')
rm "$d/w.txt"
export CAMPAIGN_VAR=two
SF_SH=1
same_as_fresh "casfs-sh 'echo \$VAR': another value of a variable the line names" "$d" /dev/null "w.txt" \
    -c 'echo "$CAMPAIGN_VAR" > w.txt'
SF_SH=""
unset CAMPAIGN_VAR

# An output another process writes to while the run is live (here 0.2 s
# into a 0.6 s run): what the file holds at the end is not what the command
# made, and must not be replayed as its output.
d=$R/output-written-by-another
mkdir -p "$d"
echo 1 >"$d/in.txt"
(sleep 0.2; echo junk >>"$d/o.txt") &
cx "$d" sh -c 'cat in.txt > o.txt; sleep 0.6'
wait $!
rm "$d/o.txt"
same_as_fresh "an output another process appended to during the run" "$d" /dev/null "o.txt" \
    sh -c 'cat in.txt > o.txt; sleep 0.6'

# A file read while another process rewrites it: each rewrite truncates it,
# waits half a millisecond and writes a value.  A run that read it empty
# must not be recorded as having read a value (the digest of what it read,
# not of what the file held later).  A race: hundreds of runs in 4 s, then
# the file gets each value and casfs exec must copy it; while the wrong
# result is there this fails nearly every time, and never once it is gone.
d=$R/read-while-rewritten
mkdir -p "$d"
echo 1 >"$d/s.txt"
(cd "$d" && exec "$PYTHON" -c '
import time
end = time.time() + 4
i = 0
while time.time() < end:
    i += 1
    with open("s.txt", "w") as f:
        time.sleep(0.0005)
        f.write("%d\n" % (i % 2 + 1))
') &
wpid=$!
n=0
while kill -0 "$wpid" 2>/dev/null; do
    # as absent as at the check below (a truncated output's existence and
    # size are inputs)
    rm -f "$d/c.txt"
    (cd "$d" && "$X" exec -- sh -c 'cat s.txt > c.txt' 2>/dev/null)
    n=$((n + 1))
done
wait "$wpid"
bad=""
for v in 1 2; do
    echo "$v" >"$d/s.txt"
    rm -f "$d/c.txt"
    (cd "$d" && "$X" exec -- sh -c 'cat s.txt > c.txt')
    [ "$(cat "$d/c.txt")" = "$v" ] || bad="$bad s.txt=$v c.txt='$(cat "$d/c.txt")';"
done
[ -z "$bad" ] && ok "a file read while another process rewrites it: $n runs, then each value copied right" ||
    fail "a file read while another process rewrites it: after $n runs a hit copied the wrong content:$bad"

# A hit restores an output into a directory whose listing the kernel
# caches: dropping the name's entry marks the listing stale only when the
# kernel holds an entry of that name, so in a directory made anew `ls` goes
# on without the restored file.
d=$R/listing
mkdir -p "$d/obj"
echo 'int l9;' >"$d/l9.c"
cx "$d" gcc -c l9.c -o obj/l9.o
SF_BEFORE='rm -rf "$d/obj" && mkdir "$d/obj" && ls "$d/obj" >/dev/null && ls "$d/obj" >/dev/null'
same_as_fresh "a listing after a hit into a directory made anew" "$d" /dev/null "obj/l9.o" \
    gcc -c l9.c -o obj/l9.o
SF_BEFORE=""

# The recorded run time (explain, action_time_saved_ms) of runs that cross
# a second boundary with fewer nanoseconds at their end (once 1.8e13 ms:
# the nanoseconds were subtracted as unsigned numbers).  Runs of about half
# a second do that half of the time; six of them all miss it one time in 64.
d=$R/runtime
mkdir -p "$d"
bad=""
for i in 1 2 3 4 5 6; do
    cx "$d" sleep "0.5$i"
    took=$(cd "$d" && "$X" exec --explain -- sleep "0.5$i" 2>&1 | sed -n 's/.*recorded run took \([0-9]*\) ms.*/\1/p')
    if [ -z "$took" ] || [ "$took" -lt 400 ] || [ "$took" -gt 60000 ]; then bad="$bad sleep 0.5$i: '${took}';"; fi
done
[ -z "$bad" ] && ok "recorded run times of half-second runs are between 0.4 and 60 s" ||
    fail "recorded run times of half-second runs:$bad"

# A compile's diagnostics are restored at another root with the root's path
# replaced only where the compiler wrote a location: a #warning naming root
# 1 is text from the file, which a run at root 2 writes unchanged.
B=$R/diagnostic-text/sb
for n in 1 2; do
    mkdir -p "$B/$n/execroot/p"
    printf '#warning "generated from %s/tmpl.in"\nint w;\n' "$B/1/execroot/p" >"$B/$n/execroot/p/w.c"
done
cx "$B/1/execroot/p" gcc -c w.c -o w.o 2>/dev/null
same_as_fresh "a #warning naming root 1, compiled at root 2" "$B/2/execroot/p" /dev/null "w.o" gcc -c w.c -o w.o
# ... and a #line naming root 1 (a generated source copied as it is): the
# compiler writes it at a location, but no compile read such a file
B=$R/line-directive/sb
for n in 1 2; do
    mkdir -p "$B/$n/execroot/p"
    printf '#line 1 "%s/gen.y"\nint f(void) { int unused; return 0; }\n' "$B/1/execroot/p" >"$B/$n/execroot/p/gen.c"
done
cx "$B/1/execroot/p" gcc -Wall -c gen.c -o gen.o 2>/dev/null
same_as_fresh "a #line naming root 1, compiled at root 2" "$B/2/execroot/p" /dev/null "gen.o" gcc -Wall -c gen.c -o gen.o

# The modes ls -F shows: it stats every entry it lists, and the kernel holds
# their attributes (a chmod's reply refreshes them), so the stats need not
# reach the daemon: the listing records each entry's mode and size.
d=$R/ls-F
mkdir -p "$d/s"
echo x >"$d/s/t.sh"
chmod 644 "$d/s/t.sh"
cx "$d" sh -c 'ls -F s > l.txt'
rm "$d/l.txt"
chmod 755 "$d/s/t.sh"
same_as_fresh "ls -F: a listed file became executable" "$d" /dev/null "l.txt" sh -c 'ls -F s > l.txt'

# ---- open questions ------------------------------------------------------------
# Wrong results that casfs's design leaves open (docs/ACTIONS.md says so for
# each); they fail today.  Not run by default: the default run is what
# casfs promises.  CASFS_CAMPAIGN_OPEN=1 runs them (and the campaign's
# actions that meet the same questions).
OPEN=${CASFS_CAMPAIGN_OPEN:-0}
# open_case NAME WHY: true when the open questions are to run; else says
# that NAME is not run, and why.
open_case() {
    [ "$OPEN" = 1 ] && return 0
    echo "# NOT RUN (open: $2; CASFS_CAMPAIGN_OPEN=1 runs it): $1"
    return 1
}

if open_case "make: the source is newer than its object now" "modification times are not inputs"; then
# Modification times, from which make decides (make run by a cached
# command whose recipes do not go through casfs): a run with nothing to do
# is replayed after the source changed.
d=$R/make-mtime
mkdir -p "$d"
printf 'x.o: x.c\n\tgcc -c x.c -o x.o\n' >"$d/Makefile"
echo 'int x = 1;' >"$d/x.c"
(cd "$d" && make -s && touch -d 2020-01-01 x.c && touch -d 2021-01-01 x.o)
cx "$d" make -s
echo 'int x = 2;' >"$d/x.c"
same_as_fresh "make: the source is newer than its object now" "$d" /dev/null "x.o" make -s
fi

# A command may print its working directory transformed: the root's path
# in an output where the scan for it cannot see it.
if open_case "the working directory, transformed: another root" \
    "any command's result is reused at another root when the scan finds no root path in it"; then
B=$R/hidden-root/sb
cx "$B/1/execroot/proj" sh -c 'pwd | tr / _ > where.txt'
same_as_fresh "the working directory, transformed: another root" "$B/2/execroot/proj" /dev/null "where.txt" \
    sh -c 'pwd | tr / _ > where.txt'
fi

# __has_include of a name absent from every directory of the chain, outside
# the mount: the name is in no dependency file; casfs reads the queries
# from the files the compile read.
d=$R/has-include-outside
mkdir -p "$d" "$OUT/sysh"
printf '#if __has_include(<opt_out.h>)\n#include <opt_out.h>\n#else\n#define OPTV 0\n#endif\nint o = OPTV;\n' >"$d/h.c"
cx "$d" gcc -isystem "$OUT/sysh" -c h.c -o h.o
rm "$d/h.o"
echo '#define OPTV 5' >"$OUT/sysh/opt_out.h"
same_as_fresh "__has_include: the header now exists outside the mount" "$d" /dev/null "h.o" \
    gcc -isystem "$OUT/sysh" -c h.c -o h.o
[ "$SF_KIND" = miss ] && ok "__has_include: the header now exists outside the mount: a miss" ||
    fail "__has_include: the header now exists outside the mount: a $SF_KIND"
# ... then found, and not included: removed again
printf '#if __has_include(<opt_out.h>)\nint o = 1;\n#else\nint o = 0;\n#endif\n' >"$d/g.c"
cx "$d" gcc -isystem "$OUT/sysh" -c g.c -o g.o
rm "$d/g.o"
same_as_fresh "__has_include: found and not included, unchanged" "$d" /dev/null "g.o" \
    gcc -isystem "$OUT/sysh" -c g.c -o g.o
[ "$SF_KIND" = hit ] && ok "__has_include: unchanged: a hit" || fail "__has_include: unchanged: a $SF_KIND"
rm "$OUT/sysh/opt_out.h" "$d/g.o"
same_as_fresh "__has_include: found and not included, then removed" "$d" /dev/null "g.o" \
    gcc -isystem "$OUT/sysh" -c g.c -o g.o
[ "$SF_KIND" = miss ] && ok "__has_include: removed: a miss" || fail "__has_include: removed: a $SF_KIND"

if open_case "a directory listed while it changes" \
    "a listing the kernel cached for another process is served to a run before it is dropped"; then
# A directory listed by other processes while it changes and while runs
# list it: a run whose listing the kernel served from its cache (filled by
# another process, not yet dropped) has no listing among its inputs, and its
# record then matches every later content of the directory.  A race: two
# listers, a writer and two loops of casfs exec for 5 s, then the directory
# gets four contents and casfs exec must list each; while the wrong result
# is there this fails most of the time, and never once it is gone.
d=$R/listing-race
mkdir -p "$d/D"
touch "$d/D/a"
(cd "$d" && exec "$PYTHON" -c '
import os, time
end = time.time() + 5
i = 0
while time.time() < end:
    i += 1
    n = "D/f%d" % (i % 3)
    if os.path.exists(n):
        os.unlink(n)
    else:
        open(n, "w").close()
    os.listdir("D")
') &
wpid=$!
lpids=()
for i in 1 2; do
    (while kill -0 "$wpid" 2>/dev/null; do ls "$d/D" >/dev/null; done) &
    lpids+=($!)
done
(cd "$d" && while kill -0 "$wpid" 2>/dev/null; do rm -f l2.txt; "$X" exec -- sh -c 'ls D > l2.txt' 2>/dev/null; done) &
lpids+=($!)
n=0
while kill -0 "$wpid" 2>/dev/null; do
    rm -f "$d/l.txt" # absent, as at the check below
    (cd "$d" && "$X" exec -- sh -c 'ls D > l.txt' 2>/dev/null)
    n=$((n + 1))
done
wait "$wpid" "${lpids[@]}"
bad=""
for state in "" "f0" "f1" "f0 f1"; do
    rm -f "$d"/D/f*
    for f in $state; do touch "$d/D/$f"; done
    rm -f "$d/l.txt" "$d/l2.txt"
    (cd "$d" && "$X" exec -- sh -c 'ls D > l.txt' && "$X" exec -- sh -c 'ls D > l2.txt')
    want=$(ls "$d/D" | tr '\n' ' ')
    for l in l.txt l2.txt; do
        got=$(tr '\n' ' ' <"$d/$l")
        [ "$got" = "$want" ] || bad="$bad D holds [$want], $l [$got];"
    done
done
[ -z "$bad" ] && ok "a directory listed while it changes: $n runs, then each content listed right" ||
    fail "a directory listed while it changes: after $n runs a hit listed another content:$bad"
fi

# ---- the randomized campaign ------------------------------------------------------
# tests/integration/campaign.py says what it generates, mutates and judges.
# The default run is one fixed seed (12 rounds, about 70-100 s here; seeds
# 1-4 pass), without the actions that meet the open questions above
# (mtime: tar records the times of what it reads; cwd-transformed;
# CASFS_CAMPAIGN_OPEN=1 keeps them).
# CASFS_CAMPAIGN_SEED=random draws a seed (printed), another number replays
# one; CASFS_CAMPAIGN_ROUNDS makes it longer; CASFS_CAMPAIGN_AVOID leaves
# out what it names instead.
seed=${CASFS_CAMPAIGN_SEED:-1}
[ "$seed" = random ] && seed=""
avoid=mtime,cwd-transformed
[ "$OPEN" = 1 ] && avoid=""
mkdir -p "$T/campaign-outside"
run_sub campaign env CASFS_SH="$CASFS_BINDIR/casfs-sh" CASFS_CAMPAIGN_SEED="$seed" \
    CASFS_CAMPAIGN_AVOID="${CASFS_CAMPAIGN_AVOID-$avoid}" \
    "$PYTHON" "$TESTDIR/campaign.py" "$MNT" "$T/campaign-outside"

casfs_umount "$MNT" || fail "umount"
casfs_finish
