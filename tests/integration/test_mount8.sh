#!/bin/bash
# mount(8), /etc/fstab and the installed helpers, the way a user meets them:
#  - `meson install` into a DESTDIR puts casfs in PREFIX/bin and the links
#    mount.casfs and mount.fuse.casfs in /sbin, where libmount looks for
#    helpers; `ninja uninstall` removes them again.
#  - With those files laid over /usr/sbin and PREFIX/bin (overlays in this
#    script's private mount namespace: the host's directories and its
#    /etc/fstab are not touched), mount(8) mounts through mount.fuse.casfs:
#    `mount -t fuse.casfs BACKING MOUNTPOINT`, fstab lines (generic options
#    such as defaults,noatime,nodiratime included), remount ro/rw.
#  - Run from a directory that holds entries named like the sources, mount(8)
#    serves the sources given; the word `casfs` as a source (once "the mount
#    point itself") is refused, not resolved against that directory.
#  - With casfs installed but not its helpers, Debian's mount.fuse3 runs
#    `casfs SOURCE MOUNTPOINT -o OPTS`, which mounts the same way.
CASFS_TEST_TIMEOUT=${CASFS_TEST_TIMEOUT:-240}
CASFS_MOUNT_NS=1
. "$(dirname "$0")/lib.sh"

BUILD=${CASFS_BUILD:-$(dirname "$(dirname "$CASFS")")}
INSTALL_LOG=$BUILD/meson-logs/install-log.txt
casfs_extra_cleanup() {
    # meson keeps the list of installed files for `ninja uninstall`: give
    # back the build directory's own (a real install's), if it had one
    if [ -f "$T/install-log.saved" ]; then
        cp -p "$T/install-log.saved" "$INSTALL_LOG"
    elif [ -n "$T" ] && [ -f "$T/install-log.absent" ]; then
        rm -f "$INSTALL_LOG"
    fi
    mountpoint -q /etc/fstab && umount /etc/fstab
    mountpoint -q /usr/sbin && umount /usr/sbin
    [ -n "${BINDIR:-}" ] && mountpoint -q "$BINDIR" && umount "$BINDIR"
}

casfs_setup
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ----------------------------------------------------------- install ---
if [ -f "$INSTALL_LOG" ]; then cp -p "$INSTALL_LOG" "$T/install-log.saved"; else : >"$T/install-log.absent"; fi
DEST=$T/dest
opts=$(meson introspect "$BUILD" --buildoptions)
PREFIX=$(echo "$opts" | "$PYTHON" -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
BINDIR=$(echo "$opts" | "$PYTHON" -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "bindir"][0])')
case "$BINDIR" in /*) ;; *) BINDIR=$PREFIX/$BINDIR ;; esac
if ! timeout 120 meson install -C "$BUILD" --destdir "$DEST" --no-rebuild --quiet >"$T/install.out" 2>&1; then
    fail "meson_install: $(tail -n 3 "$T/install.out" | tr '\n' '|')"
    casfs_finish
fi
ok "meson_install (into $DEST)"
if [ -x "$DEST$BINDIR/casfs" ] && cmp -s "$DEST$BINDIR/casfs" "$CASFS"; then ok "installs_casfs ($BINDIR/casfs)"; else fail "installs_casfs: no $DEST$BINDIR/casfs"; fi
for h in mount.casfs mount.fuse.casfs; do
    check_eq "installs_$h (a link in /sbin to the installed casfs)" "$BINDIR/casfs" "$(readlink "$DEST/sbin/$h" 2>&1)"
done

# -------------------------------- the installed files, seen by mount(8) ---
if [ ! -d "$BINDIR" ]; then
    fail "setup: $BINDIR (the install's bindir) does not exist on this machine"
    casfs_finish
fi
if mount -t overlay casfs-test-sbin -o "lowerdir=$DEST/sbin:/usr/sbin" /usr/sbin &&
    mount -t overlay casfs-test-bin -o "lowerdir=$DEST$BINDIR:$BINDIR" "$BINDIR"; then
    ok "installed_files_laid_over_/usr/sbin_and_$BINDIR"
else
    fail "setup: cannot lay the installed files over /usr/sbin and $BINDIR in this namespace"
    casfs_finish
fi
check_eq "mount_finds_the_helper" "$BINDIR/casfs" "$(readlink /sbin/mount.fuse.casfs)"

# backings, mount points, and a current directory with entries named like
# the sources (the word casfs included)
B1=$T/b1
M1=$T/m1
M3=$T/self
CWD=$T/cwd
mkdir -p "$B1" "$M1" "$M3" "$CWD/casfs" "$CWD/b1" "$CWD/self"
echo "b1 backing" >"$B1/marker"
echo "self backing" >"$M3/marker"
echo "WRONG: cwd/casfs" >"$CWD/casfs/marker"
echo "WRONG: cwd/b1" >"$CWD/b1/marker"
echo "WRONG: cwd/self" >"$CWD/self/marker"
src_of() { findmnt -n -o SOURCE --mountpoint "$1"; }
mnt_opts() { awk -v m="$1" '$5 == m { print $6 }' /proc/self/mountinfo; }

# mount8 NAME MOUNTPOINT ARGS...: mount(8) from $CWD; registers the mount
mount8() {
    local name=$1 mp=$2
    shift 2
    if (cd "$CWD" && timeout 60 mount "$@") >"$T/m8.out" 2>&1 && is_mounted "$mp"; then
        _casfs_register "$mp" ""
        ok "$name"
        return 0
    fi
    fail "$name: mount $*: $(tr '\n' '|' <"$T/m8.out")"
    is_mounted "$mp" && _casfs_register "$mp" ""
    return 1
}
umount8() {
    if timeout 60 umount "$1" && ! is_mounted "$1"; then ok "$2"; casfs_forget "$1"; else fail "$2"; fi
}

if mount8 "mount_t_fuse_casfs" "$M1" -t fuse.casfs -o "store=$STORE" "$B1" "$M1"; then
    check_eq "mount_t/serves_the_source_not_cwd" "b1 backing" "$(cat "$M1/marker")"
    check_eq "mount_t/source_in_mountinfo" "$B1" "$(src_of "$M1")"
    check_eq "mount_t/type" "fuse.casfs" "$(findmnt -n -o FSTYPE --mountpoint "$M1")"
    # mount(8) semantics: suid,dev unless told otherwise
    case ",$(mnt_opts "$M1")," in *,nosuid,*|*,nodev,*) fail "mount_t/suid_dev: $(mnt_opts "$M1")" ;; *) ok "mount_t/suid_dev" ;; esac
    line=$(timeout 20 "$CASFS" status | awk -v m="$M1" '$1 == m')
    case "$line" in "$M1  backing=$B1  store=$STORE  pid="[0-9]*) ok "mount_t/status ($line)" ;; *) fail "mount_t/status: '$line'" ;; esac
    umount8 "$M1" "mount_t/umount"
fi
# the old "mount point itself" word: refused where mount(8) passes it on
if (cd "$T" && timeout 60 mount -t fuse.casfs -o "store=$STORE" casfs "$M1") >"$T/m8.out" 2>&1; then
    fail "word_casfs_refused: mount succeeded"
    is_mounted "$M1" && _casfs_register "$M1" ""
else
    if grep -q "^casfs: mount source 'casfs' is not an absolute path" "$T/m8.out"; then
        ok "word_casfs_refused ($(head -n 1 "$T/m8.out"))"
    else
        fail "word_casfs_refused: $(tr '\n' '|' <"$T/m8.out")"
    fi
fi
check_eq "word_casfs_mounted_nothing" 0 "$(mount_count "$M1")"

# ----------------------------------------------------------- /etc/fstab ---
M2=$T/m2
mkdir -p "$M2"
cat >"$T/fstab" <<EOF
# casfs test: the documented forms
$B1  $M2  fuse.casfs  defaults,noatime,nodiratime,store=$STORE  0 0
$M3  $M3  fuse.casfs  defaults,nofail,x-systemd.automount,store=$STORE  0 0
EOF
if mount --bind "$T/fstab" /etc/fstab; then
    if mount8 "fstab_mount" "$M2" "$M2"; then
        check_eq "fstab/serves_the_source" "b1 backing" "$(cat "$M2/marker")"
        opts=$(mnt_opts "$M2")
        case ",$opts," in *,noatime,*nodiratime,*) ok "fstab/noatime_nodiratime ($opts)" ;; *) fail "fstab/noatime_nodiratime: $opts" ;; esac
        echo one >"$M2/remount-file"
        if (cd "$CWD" && timeout 60 mount -o remount,ro "$M2") >"$T/m8.out" 2>&1; then
            ok "fstab/remount_ro"
        else
            fail "fstab/remount_ro: $(tr '\n' '|' <"$T/m8.out")"
        fi
        err=$(sh -c "echo two >> '$M2/remount-file'" 2>&1)
        case "$err" in *"Read-only file system"*) ok "fstab/remount_ro_erofs" ;; *) fail "fstab/remount_ro_erofs: $err" ;; esac
        if (cd "$CWD" && timeout 60 mount -o remount,rw "$M2") >"$T/m8.out" 2>&1 && echo two >>"$M2/remount-file"; then
            ok "fstab/remount_rw"
        else
            fail "fstab/remount_rw: $(tr '\n' '|' <"$T/m8.out")"
        fi
        check_eq "fstab/remount_kept_noatime" noatime "$(mnt_opts "$M2" | tr ',' '\n' | grep -x noatime)"
        umount8 "$M2" "fstab/umount"
        check_eq "fstab/backing_has_the_writes" "one two" "$(tr '\n' ' ' <"$B1/remount-file" | sed 's/ $//')"
    fi
    # the mount point itself as the backing: source and target alike
    if mount8 "fstab_self" "$M3" "$M3"; then
        check_eq "fstab_self/serves_its_own_contents" "self backing" "$(cat "$M3/marker")"
        check_eq "fstab_self/findmnt_S" "$M3" "$(findmnt -n -o TARGET -S "$M3")"
        umount8 "$M3" "fstab_self/umount_backing"
    fi
else
    fail "setup: cannot lay a test fstab over /etc/fstab in this namespace"
fi

# ------------------------------- Debian's mount.fuse3 without our helpers ---
umount /usr/sbin
if [ -e /sbin/mount.fuse.casfs ]; then
    fail "fallback/setup: /sbin/mount.fuse.casfs still present"
elif [ ! -e /sbin/mount.fuse ]; then
    fail "fallback/setup: /sbin/mount.fuse (fuse3's mount.fuse3) is missing: install fuse3"
else
    if mount8 "fallback_mount_fuse3" "$M1" -t fuse.casfs -o "store=$STORE,noatime" "$B1" "$M1"; then
        check_eq "fallback/serves_the_source" "b1 backing" "$(cat "$M1/marker")"
        check_eq "fallback/source" "$B1" "$(src_of "$M1")"
        opts=$(mnt_opts "$M1")
        case ",$opts," in *,noatime,*) ok "fallback/options ($opts)" ;; *) fail "fallback/options: $opts" ;; esac
        umount8 "$M1" "fallback/umount"
    fi
    if mountpoint -q /etc/fstab; then
        if mount8 "fallback_fstab" "$M2" "$M2"; then
            check_eq "fallback_fstab/serves_the_source" "b1 backing" "$(cat "$M2/marker")"
            umount8 "$M2" "fallback_fstab/umount"
        fi
    fi
    if (cd "$T" && timeout 60 mount -t fuse.casfs -o "store=$STORE" casfs "$M1") >"$T/m8.out" 2>&1; then
        fail "fallback/word_casfs_refused: mount succeeded"
        is_mounted "$M1" && _casfs_register "$M1" ""
    elif grep -q "^casfs: mount source 'casfs' is not an absolute path" "$T/m8.out"; then
        ok "fallback/word_casfs_refused"
    else
        fail "fallback/word_casfs_refused: $(tr '\n' '|' <"$T/m8.out")"
    fi
fi

# --------------------------------------------------------- uninstall ---
umount "$BINDIR"
if timeout 120 ninja -C "$BUILD" uninstall >"$T/uninstall.out" 2>&1; then
    ok "ninja_uninstall"
else
    fail "ninja_uninstall: $(tail -n 3 "$T/uninstall.out" | tr '\n' '|')"
fi
left=$(find "$DEST" \( -type f -o -type l \) 2>/dev/null | head -n 3)
check_eq "uninstall_removes_everything" "" "$left"

casfs_finish
