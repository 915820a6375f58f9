#!/bin/bash
# Unprivileged use of casfs, by a user made for this run (removed at the end
# with its group):
#  1. the user mounts casfs itself (through fusermount3), runs posix.py on
#     it, files it creates are its own, it unmounts; generic options that
#     fusermount3 cannot honour are refused, the others work; where
#     /dev/fuse is closed to users the mount is refused with the fix.
#  2. a root daemon with -o allow_other serves the user: what the user
#     creates is owned by its uid/gid, permissions are enforced (EACCES on
#     root's 0644 file, sticky directories, set-group-ID directories,
#     supplementary groups), compared with the same steps natively.
# Where /dev/fuse is mode 0600 (containers without udev) the script runs in
# a private mount namespace whose /dev/fuse is open to users (lib.sh).
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-540}
CASFS_USER_FUSE=1
. "$(dirname "$0")/lib.sh"

casfs_setup
chmod 755 "$T"

# ---- the test user and a supplementary group (both made for this run)
TGROUP="casfst$$-grp"
if casfs_add_user "$TGROUP"; then
    TUSER=$CASFS_NEW_USER
    ok "useradd $TUSER (supplementary group $TGROUP)"
else
    fail "useradd failed"
    casfs_finish
fi
TUID=$(id -u "$TUSER")
TGID=$(id -g "$TUSER")
GRPGID=$(getent group "$TGROUP" | cut -d: -f3)
log "user $TUSER uid=$TUID gid=$TGID, supplementary group $TGROUP=$GRPGID"

ROOT_CASFS=$CASFS
USER_CASFS=$(casfs_for_user "$TUSER")
[ "$USER_CASFS" = "$CASFS" ] || log "$TUSER cannot execute $CASFS; using a copy at $USER_CASFS"
if runuser -u "$TUSER" -- "$USER_CASFS" status >/dev/null 2>&1; then
    ok "binary_usable_by_$TUSER"
else
    fail "binary_usable_by_$TUSER: '$USER_CASFS status' fails as $TUSER"
    casfs_finish
fi
cp "$TESTDIR/posix.py" "$TESTDIR/multiuser.py" "$T/"
chmod 644 "$T/posix.py" "$T/multiuser.py"

# ============================================ 1. the user's own mount ===
CASFS=$USER_CASFS
U=$T/user
mkdir -p "$U/mnt" "$U/store" "$U/native"
chown -R "$TUSER:" "$U"
echo "made by root before mounting" >"$U/mnt/preexisting"
chown "$TUSER:" "$U/mnt/preexisting"

# /dev/fuse closed to users (mode 0600): the mount is refused with the fix
# (a 0600 node over /dev/fuse in a throwaway mount namespace)
mknod -m 0600 "$T/fuse0600" c "$((16#$(stat -c %t /dev/fuse)))" "$((16#$(stat -c %T /dev/fuse)))"
out=$(unshare --mount --propagation private sh -c 'mount --bind "$1" /dev/fuse && shift && exec "$@"' sh \
    "$T/fuse0600" runuser -u "$TUSER" -- env HOME=/tmp "$CASFS" mount --store "$U/store" "$U/mnt" 2>&1)
rc=$?
if [ $rc -eq 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && [[ "$out" == "casfs: /dev/fuse is not readable and writable for you"*"chmod 0666 /dev/fuse"* ]]; then
    ok "user_mount_refused_on_0600_dev_fuse ($out)"
else
    fail "user_mount_refused_on_0600_dev_fuse: rc=$rc: $out"
fi
is_mounted "$U/mnt" && fail "user_mount_0600_mounted_nothing: $U/mnt is mounted"

# generic options fusermount3 cannot honour are refused; an fstab-style
# list with the ones it can (noatime implies nodiratime) mounts
for o in dev suid strictatime lazytime nodiratime; do
    out=$(runuser -u "$TUSER" -- env HOME=/tmp "$CASFS" mount --store "$U/store" -o "$o" "$U/mnt" 2>&1)
    rc=$?
    if [ $rc -eq 1 ] && [[ "$out" == "casfs: -o $o cannot be honoured on a mount by an unprivileged user"* ]]; then
        ok "user_refuses_$o"
    else
        fail "user_refuses_$o: rc=$rc: $out"
    fi
done
if CASFS_AS_USER=$TUSER casfs_mount_at "$U/mnt" --store "$U/store" -o defaults,noatime,nodiratime,sync,noexec; then
    opts=$(awk -v m="$U/mnt" '$5 == m { print $6 }' /proc/self/mountinfo)
    case ",$opts," in *,noatime,*noexec,*|*,noexec,*noatime,*) ok "user_generic_options ($opts)" ;; *) fail "user_generic_options: $opts" ;; esac
    runuser -u "$TUSER" -- timeout 60 "$CASFS" umount "$U/mnt" && casfs_forget "$U/mnt" || fail "user_generic_umount"
else
    fail "user_generic_options: casfs mount -o defaults,noatime,nodiratime,sync,noexec as $TUSER failed"
fi

if CASFS_AS_USER=$TUSER casfs_mount_at "$U/mnt" --store "$U/store"; then
    ok "user_mount"
    UPID=$(casfs_recorded_pid "$U/mnt")
    if [ -n "$UPID" ] && [ "$(awk '/^Uid:/ { print $2 }' "/proc/$UPID/status" 2>/dev/null)" = "$TUID" ]; then
        ok "user_daemon_runs_as_$TUSER (pid $UPID)"
    else
        fail "user_daemon_runs_as_$TUSER: pid '$UPID' uid $(awk '/^Uid:/ { print $2 }' "/proc/$UPID/status" 2>/dev/null)"
    fi
    if awk -v m="$U/mnt" -v u="user_id=$TUID" '$5 == m && index($0, u) { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        ok "user_mount_owned_by_$TUSER"
    else
        fail "user_mount_owned_by_$TUSER: $(awk -v m="$U/mnt" '$5 == m' /proc/self/mountinfo)"
    fi
    line=$(runuser -u "$TUSER" -- "$CASFS" status 2>&1 | awk -v m="$U/mnt" '$1 == m')
    case "$line" in *"pid=$UPID"*) ok "user_status ($line)" ;; *) fail "user_status: '$line'" ;; esac
    check_eq "user_sees_preexisting" "made by root before mounting" \
        "$(runuser -u "$TUSER" -- cat "$U/mnt/preexisting" 2>&1)"
    # without allow_other nobody else, root included, may enter the mount
    if stat "$U/mnt/preexisting" >/dev/null 2>&1; then
        fail "root_denied_without_allow_other: root could stat inside the user's mount"
    else
        ok "root_denied_without_allow_other"
    fi

    runuser -u "$TUSER" -- mkdir "$U/mnt/posix" "$U/native/posix"
    run_sub "posix.py user" timeout 300 runuser -u "$TUSER" -- "$PYTHON" "$T/posix.py" --tag user \
        "$U/mnt/posix" "$U/native/posix"

    # ownership of what the user creates
    runuser -u "$TUSER" -- sh -c "cd '$U/mnt' && echo data > f && mkdir d && ln -s f l && mkfifo p"
    for n in f d l p; do
        check_eq "user_owns_$n" "$TUID:$TGID" "$(runuser -u "$TUSER" -- stat -c %u:%g "$U/mnt/$n" 2>&1)"
    done
    if runuser -u "$TUSER" -- timeout 60 "$CASFS" umount "$U/mnt"; then
        ok "user_umount"
    else
        fail "user_umount: casfs umount as $TUSER failed"
    fi
    if is_mounted "$U/mnt"; then
        fail "user_unmounted: still mounted"
    else
        ok "user_unmounted"
        casfs_forget "$U/mnt"
        if [ -n "$UPID" ] && wait_pid_gone "$UPID"; then ok "user_daemon_exited"; else fail "user_daemon_exited: pid $UPID"; fi
        for n in f d l p; do
            check_eq "backing_owned_by_user_$n" "$TUID:$TGID" "$(stat -c %u:%g "$U/mnt/$n" 2>&1)"
        done
        check_eq "backing_content" "data" "$(cat "$U/mnt/f")"
    fi
else
    fail "user_mount: casfs mount as $TUSER failed"
fi

# ======================================= 2. root daemon, allow_other ===
CASFS=$ROOT_CASFS
R=$T/root
mkdir -p "$R/mnt" "$R/native"
if casfs_mount_at "$R/mnt" -o allow_other; then
    ok "root_mount_allow_other"
    for D in "$R/native" "$R/mnt"; do
        mkdir "$D/t"
        chmod 755 "$D/t"
        mkdir "$D/t/pub" "$D/t/sg" "$D/t/grp"
        chmod 1777 "$D/t/pub"
        echo "root data" >"$D/t/rootfile"
        echo "root data" >"$D/t/pub/rootowned"
        echo "secret" >"$D/t/secret"
        chmod 644 "$D/t/rootfile" "$D/t/pub/rootowned"
        chmod 600 "$D/t/secret"
        chown root:4321 "$D/t/sg"
        chmod 2777 "$D/t/sg"
        chown "root:$GRPGID" "$D/t/grp"
        chmod 770 "$D/t/grp"
        echo "group data" >"$D/t/grp/grpfile"
        chown "root:$GRPGID" "$D/t/grp/grpfile"
        chmod 660 "$D/t/grp/grpfile"
    done
    runuser -u "$TUSER" -- "$PYTHON" "$T/multiuser.py" "$R/native/t" >"$T/mu.native" 2>"$T/mu.native.err"
    runuser -u "$TUSER" -- "$PYTHON" "$T/multiuser.py" "$R/mnt/t" >"$T/mu.casfs" 2>"$T/mu.casfs.err"
    out=$("$PYTHON" - "$T/mu.native" "$T/mu.casfs" <<'PY'
import json, sys
try:
    n = json.load(open(sys.argv[1]))
    c = json.load(open(sys.argv[2]))
except Exception as e:
    print("FAIL multiuser_ran: %r" % e)
    sys.exit(0)
for k in sorted(set(n) | set(c)):
    if n.get(k) == c.get(k):
        print("ok multiuser/%s (%r)" % (k, n.get(k)))
    else:
        print("FAIL multiuser/%s: native=%r casfs=%r" % (k, n.get(k), c.get(k)))
# absolute expectations
want = {"write_rootfile": "EACCES", "read_secret": "EACCES", "create_in_rootdir": "EACCES",
        "unlink_sticky_rootowned": "EPERM", "chmod_rootfile": "EPERM", "create_file": "ok",
        "owner_ufile": ["me", "mine", "0644"], "sg_owner_f": ["me", 4321, "0644"],
        "grp_write": "ok"}
for k, v in want.items():
    if c.get(k) == v:
        print("ok multiuser_expect/%s" % k)
    else:
        print("FAIL multiuser_expect/%s: expected %r, casfs gave %r" % (k, v, c.get(k)))
PY
)
    echo "$out"
    PASS=$((PASS + $(echo "$out" | grep -c '^ok ')))
    FAILS=$((FAILS + $(echo "$out" | grep -c '^FAIL ')))
    [ -s "$T/mu.casfs.err" ] && log "multiuser.py stderr: $(head -c 500 "$T/mu.casfs.err")"

    # root's view through the mount: numeric owners
    for n in ufile udir ulink ufifo usock; do
        check_eq "root_sees_owner_$n" "$TUID:$TGID" "$(stat -c %u:%g "$R/mnt/t/pub/$n" 2>&1)"
    done
    check_eq "root_sees_sg_gid" "$TUID:4321" "$(stat -c %u:%g "$R/mnt/t/sg/f" 2>&1)"
    check_eq "rootfile_unchanged" "root data" "$(cat "$R/mnt/t/rootfile")"
    # the shell's view: "Permission denied" writing root's 0644 file
    err=$(runuser -u "$TUSER" -- sh -c "echo x >> '$R/mnt/t/rootfile'" 2>&1)
    case "$err" in *"Permission denied"*) ok "shell_write_rootfile_eacces" ;; *) fail "shell_write_rootfile_eacces: $err" ;; esac

    # Outputs a hit restores belong to the user as the run's did, with the
    # group a set-group-ID directory gives and the run's modes; the first
    # hit makes its files, later ones take files made ahead (fs/spares.h),
    # owned by the daemon until they are given to the user.
    act='cp in.txt out.txt && chmod 640 out.txt && echo more > out2.txt'
    made0=$(casfs_counter "$R/mnt" action_outputs_made_ahead)
    hits0=$(casfs_counter "$R/mnt" action_hits)
    for dir in pub sg; do
        W=$R/mnt/t/$dir/act
        runuser -u "$TUSER" -- sh -c "mkdir '$W' && echo src >'$W/in.txt'"
        runuser -u "$TUSER" -- sh -c "cd '$W' && umask 022 && '$USER_CASFS' exec -- sh -c '$act'"
        want=$(stat -c '%n %u:%g %a' "$W/out.txt" "$W/out2.txt" 2>&1)
        for i in 1 2 3; do
            rm -f "$W/out.txt" "$W/out2.txt"
            sleep 0.2 # time for the files made ahead
            runuser -u "$TUSER" -- sh -c "cd '$W' && umask 022 && '$USER_CASFS' exec -- sh -c '$act'"
            check_eq "restored_owner_mode_${dir}_$i" "$want" "$(stat -c '%n %u:%g %a' "$W/out.txt" "$W/out2.txt" 2>&1)"
        done
        check_eq "restored_content_$dir" "src more" "$(cat "$W/out.txt" "$W/out2.txt" | tr '\n' ' ' | sed 's/ $//')"
    done
    check_eq "sg_restored_group" "$TUID:4321" "$(stat -c %u:%g "$R/mnt/t/sg/act/out.txt" 2>&1)"
    hits=$(( $(casfs_counter "$R/mnt" action_hits) - hits0 ))
    made=$(( $(casfs_counter "$R/mnt" action_outputs_made_ahead) - made0 ))
    check_eq "restores_were_hits" 6 "$hits"
    if [ "$made" -ge 8 ]; then ok "restores_into_files_made_ahead ($made of 12)"; else
        fail "restores_into_files_made_ahead: $made of 12 outputs"; fi

    if casfs_umount "$R/mnt"; then ok "root_umount"; else fail "root_umount"; fi
    if ! is_mounted "$R/mnt"; then
        for n in ufile udir ulink ufifo usock; do
            check_eq "backing_owner_$n" "$TUID:$TGID" "$(stat -c %u:%g "$R/mnt/t/pub/$n" 2>&1)"
        done
        check_eq "backing_sg_dir_gid" "$TUID:4321" "$(stat -c %u:%g "$R/mnt/t/sg/d" 2>&1)"
        check_eq "backing_sg_dir_mode" "2755" "$(stat -c %a "$R/mnt/t/sg/d" 2>&1)"
    fi
else
    fail "root_mount_allow_other: casfs mount -o allow_other failed"
fi

# ================================== 3. tools/demo by two users ===
# Its default workspace is per user: two users run it one after the other
# (with the same TMPDIR, this test's) and both succeed.
DEMO_SRC=$T/demo-src
DEMO_TMP=$T/demo-tmp
mkdir -p "$DEMO_SRC/tools" "$DEMO_SRC/tests" "$DEMO_TMP"
cp "$CASFS_SRC/tools/demo" "$CASFS_SRC/tools/install-deps" "$DEMO_SRC/tools/"
cp -r "$CASFS_SRC/tests/sample" "$DEMO_SRC/tests/"
chmod -R a+rX "$DEMO_SRC"
chmod 1777 "$DEMO_TMP"
for n in 1 2; do
    if ! casfs_add_user; then
        fail "demo_user_$n: useradd failed"
        continue
    fi
    du=$CASFS_NEW_USER
    mkdir -p "$T/home-$du"
    chown "$du:" "$T/home-$du"
    runuser -u "$du" -- env HOME="$T/home-$du" TMPDIR="$DEMO_TMP" PATH="$PATH" CASFS="$(casfs_for_user "$du")" \
        timeout 300 bash "$DEMO_SRC/tools/demo" >"$T/demo-$du.out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -qxF "The build outputs stay in $DEMO_TMP/casfs-demo-$du/sb (the backing directory)." \
        "$T/demo-$du.out" && grep -q "(same bytes)" "$T/demo-$du.out"; then
        ok "demo_as_user_$n ($du: its own workspace $DEMO_TMP/casfs-demo-$du)"
    else
        fail "demo_as_user_$n: $du: exit $rc: $(tail -n 5 "$T/demo-$du.out" | tr '\n' '|')"
    fi
    check_eq "demo_user_${n}_unmounted" 0 "$(mount_count "$DEMO_TMP/casfs-demo-$du")"
    check_eq "demo_user_${n}_owns_outputs" "$du" "$(stat -c %U "$DEMO_TMP/casfs-demo-$du/sb/2/execroot/sample/build/sample" 2>&1)"
done

casfs_finish
