/* mount.c — casfs mount / umount / status / stats and the mount(8) helper. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hasher.h"
#include "fs.h"
#include "io.h"
#include "store.h"

#define FUSE_SUPER_MAGIC 0x65735546

static const char mount_usage[] =
	"usage: casfs mount [--store DIR] [--backing DIR] [--ingest=all|none] [-f|--foreground]\n"
	"                   [-o OPT[,OPT...]] MOUNTPOINT\n"
	"       mount -t fuse.casfs [-o OPTS] BACKING MOUNTPOINT   (mount.casfs, as root)\n"
	"\n"
	"Mounts casfs over MOUNTPOINT.  The backing directory (where files really\n"
	"live) is MOUNTPOINT itself unless --backing is given: it is opened before\n"
	"mounting, so what was there stays there and is what you see.  Returns once\n"
	"the mount answers; the daemon runs in the background (-f: in the foreground,\n"
	"until SIGINT/SIGTERM or unmount).  Do not change the backing directory\n"
	"behind casfs's back while it is mounted: the kernel caches what casfs said.\n"
	"The mount's source (findmnt, df, /proc/mounts) is the backing directory.\n"
	"\n"
	"  --store DIR        store directory (default $CASFS_STORE, else\n"
	"                     $XDG_CACHE_HOME/casfs, else ~/.cache/casfs; created\n"
	"                     when missing)\n"
	"  --backing DIR      serve DIR's contents instead of MOUNTPOINT's\n"
	"  --ingest=all       also store every regular file in the store at the last\n"
	"                     close of a writer (default none: the store gets what\n"
	"                     casfs put and the action cache put there)\n"
	"  -f, --foreground   stay in the foreground, log to stderr\n"
	"  -o OPTS            comma-separated; casfs's own:\n"
	"      allow_other    let other users in (permissions are still checked)\n"
	"      writeback      kernel writeback cache (merges small writes, but\n"
	"                     every close then costs a FLUSH and a GETATTR)\n"
	"      no_writeback   write through, read-only opens skip FLUSH (default)\n"
	"      no_passthrough  serve every read through casfs; by default, when root\n"
	"                     mounts, a read-only open of a file of 1 MiB or more is\n"
	"                     passed through to the backing file in the kernel\n"
	"                     (FUSE passthrough: its reads never reach the daemon)\n"
	"      timeout=SECS   entry/attribute cache lifetime (default 86400)\n"
	"      no_handles     reopen inodes by name, not by file handle (the mode\n"
	"                     used anyway without CAP_DAC_READ_SEARCH)\n"
	"      fd_cache=N     cached open O_PATH descriptors (default 8192)\n"
	"      threads=N      maximum worker threads (default 16)\n"
	"      no_xattr       answer every xattr call with ENOSYS (casfs hash still\n"
	"                     works, through an ioctl)\n"
	"      sha256         also compute SHA-256 on the write path, beside XXH3:\n"
	"                     user.casfs.sha256 (the raw 32 bytes, for Bazel's\n"
	"                     --unix_digest_hash_attribute_name) is then known at\n"
	"                     close without reading the file, and listed; without\n"
	"                     it, user.casfs.sha256 is computed on first request\n"
	"      security_xattrs  pass security.* (SELinux labels, file capabilities)\n"
	"                     and system.posix_acl_* (ACLs) through to the backing;\n"
	"                     by default casfs answers them EOPNOTSUPP, so ls -l asks\n"
	"                     once per device instead of twice per file and write(2)\n"
	"                     costs no backing call for security.capability\n"
	"      fast_sandboxes (root only) keep Bazel's sandboxes in memory: every\n"
	"                     directory named bazel-sandbox.* (below --sandbox_base)\n"
	"                     is served from a tmpfs of its own, seen by the daemon\n"
	"                     only, while it exists; files renamed out of it are\n"
	"                     copied (docs/BAZEL.md)\n"
	"      store=DIR      same as --store (for /etc/fstab)\n"
	"      backing=DIR    same as --backing (mount(8) takes it as the SOURCE)\n"
	"      ingest=all|none  same as --ingest\n"
	"      compression=auto|none|zstd\n"
	"                     how ingested contents are stored (default auto: shared\n"
	"                     blocks where the store's filesystem can reflink, else\n"
	"                     zstd when it saves space)\n"
	"      zstd_level=N   zstd level, 1 (fast, the default) to 22 (small)\n"
	"      max_size=SIZE  set the store's limit (e.g. 20G; default 5G),\n"
	"                     kept by the store like casfs gc --max-size\n";

/* The rest of casfs mount --help (one string would be over C's 4095). */
static const char mount_usage_generic[] =
	"    and the kernel's generic ones, as mount(8) documents them: ro, rw,\n"
	"    suid, nosuid, dev, nodev, exec, noexec, sync, async, dirsync, atime,\n"
	"    noatime, relatime, norelatime, strictatime, nostrictatime, diratime,\n"
	"    nodiratime, lazytime, nolazytime, remount; fstab's defaults, auto,\n"
	"    noauto, nofail, user, users, nouser, owner, group, _netdev, x-* and\n"
	"    comment= are for mount(8) and ignored here.\n"
	"      casfs mount makes nosuid,nodev mounts unless -o suid / -o dev;\n"
	"      mount(8) (mount.casfs) makes suid,dev mounts as for any filesystem\n"
	"      unless nosuid / nodev (fstab's user option implies them).\n"
	"      A mount by an unprivileged user (through fusermount3) refuses suid,\n"
	"      dev, strictatime, lazytime and nodiratime without noatime: they\n"
	"      cannot be honoured there.\n"
	"      remount (root only: mount -o remount,ro MOUNTPOINT) changes the\n"
	"      generic options of a live mount, except dirsync; casfs's own options\n"
	"      keep the values the mount was made with.\n"
	"\n"
	"As mount(8)'s helper (mount.casfs, mount.fuse.casfs, or mount.fuse3's\n"
	"'casfs BACKING MOUNTPOINT -o OPTS'), BACKING must be an absolute path:\n"
	"the mount point's own path to serve its contents.  mount(8) resolves any\n"
	"other source against its current directory.\n"
	"\n"
	"Every directory of the mount answers the name .casfs (never listed):\n"
	".casfs/cas/HEX (or HEX.EXT) is a read-only file with the content whose\n"
	"XXH3-128 is HEX, from a file of the mount or a blob of the store; only the\n"
	"mount's owner may read there.\n"
	"\n"
	"Exit status: 0 mounted, 1 failure, 2 usage error.\n";

/* The kernel's generic mount options, as mount(8) and /etc/fstab give them.
 * Each field is OPT_UNSET or the value asked for (the last one given wins). */
#define OPT_UNSET (-1)
enum atime_mode { ATIME_UNSET = OPT_UNSET, ATIME_RELATIME, ATIME_NOATIME, ATIME_STRICTATIME };
struct generic_opts {
	int ro, nosuid, nodev, noexec, sync, dirsync, nodiratime, lazytime;
	int atime; /* enum atime_mode */
	bool remount;
};

struct mount_args {
	struct fs_options fo;
	struct generic_opts g;
	const char *store_arg;
	const char *backing_arg;
	const char *mountpoint_arg;
	bool helper;     /* called by mount(8): mount.casfs or casfs SOURCE MOUNTPOINT */
	bool sloppy;     /* mount -s: unknown options are ignored */
	const char *kernel_opt; /* a FUSE kernel option seen (user_id=...): only
				 * a remount may carry them (mount(8) passes the
				 * mount's current ones) */
	char libfuse_opts[128]; /* generic options for libfuse's mount (fo.mount_opts) */
};

/* Sets the generic option o (no value) in g.  Returns true when o is one. */
static bool generic_opt_parse(const char *o, struct generic_opts *g)
{
	static const struct {
		const char *name;
		size_t field;
		int value;
	} table[] = {
#define G(name, field, value) { name, offsetof(struct generic_opts, field), value }
		G("ro", ro, 1),                 G("rw", ro, 0),
		G("nosuid", nosuid, 1),         G("suid", nosuid, 0),
		G("nodev", nodev, 1),           G("dev", nodev, 0),
		G("noexec", noexec, 1),         G("exec", noexec, 0),
		G("sync", sync, 1),             G("async", sync, 0),
		G("dirsync", dirsync, 1),
		G("nodiratime", nodiratime, 1), G("diratime", nodiratime, 0),
		G("lazytime", lazytime, 1),     G("nolazytime", lazytime, 0),
		/* mount(8): atime and nostrictatime are the kernel's default
		 * (relatime); norelatime asks for strict updates */
		G("relatime", atime, ATIME_RELATIME),       G("atime", atime, ATIME_RELATIME),
		G("nostrictatime", atime, ATIME_RELATIME),  G("noatime", atime, ATIME_NOATIME),
		G("strictatime", atime, ATIME_STRICTATIME), G("norelatime", atime, ATIME_STRICTATIME),
#undef G
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(o, table[i].name)) {
			*(int *)((char *)g + table[i].field) = table[i].value;
			return true;
		}
	if (!strcmp(o, "remount")) {
		g->remount = true;
		return true;
	}
	return false;
}

/* Options for mount(8) and systemd, nothing for the filesystem. */
static bool userspace_opt(const char *o)
{
	static const char *const names[] = { "defaults", "auto", "noauto", "nofail", "user", "users",
					     "nouser", "owner", "group", "_netdev" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(o, names[i]))
			return true;
	return !strncasecmp(o, "x-", 2) || !strncmp(o, "comment=", 8);
}

/* The FUSE kernel module's own options, which casfs sets itself. */
static bool fuse_kernel_opt(const char *o)
{
	static const char *const prefixes[] = { "fd=", "rootmode=", "user_id=", "group_id=", "max_read=",
						"blksize=" };
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(o, prefixes[i], strlen(prefixes[i])))
			return true;
	return !strcmp(o, "default_permissions");
}

/* Parses one -o list. Returns 0 or CLI_EXIT_USAGE after an error message. */
static int parse_opts(char *list, struct mount_args *a)
{
	char *save = NULL;
	for (char *o = strtok_r(list, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (userspace_opt(o) || generic_opt_parse(o, &a->g))
			continue;
		if (fuse_kernel_opt(o)) {
			a->kernel_opt = o;
			continue;
		}
		char *val = strchr(o, '=');
		if (val)
			*val++ = '\0';
		char *end = NULL;
		if (!strcmp(o, "allow_other") && !val)
			a->fo.allow_other = true;
		else if (!strcmp(o, "writeback") && !val)
			a->fo.writeback = true;
		else if (!strcmp(o, "no_writeback") && !val)
			a->fo.writeback = false;
		else if (!strcmp(o, "passthrough") && !val)
			a->fo.passthrough = true;
		else if (!strcmp(o, "no_passthrough") && !val)
			a->fo.passthrough = false;
		else if (!strcmp(o, "no_handles") && !val)
			a->fo.use_handles = false;
		else if (!strcmp(o, "no_xattr") && !val)
			a->fo.xattr = false;
		else if (!strcmp(o, "security_xattrs") && !val)
			a->fo.security_xattrs = true;
		else if (!strcmp(o, "sha256") && !val)
			a->fo.sha256 = true;
		else if (!strcmp(o, "fast_sandboxes") && !val)
			a->fo.fast_sandboxes = true;
		else if (!strcmp(o, "timeout") && val) {
			a->fo.timeout = strtod(val, &end);
			if (*end || a->fo.timeout < 0)
				return cli_usage_error("mount", "bad value '%s' for -o timeout: give seconds, e.g. timeout=60",
						       val);
		} else if ((!strcmp(o, "fd_cache") || !strcmp(o, "threads")) && val) {
			unsigned long v = strtoul(val, &end, 10);
			if (*end || v < 1 || v > 15000)
				return cli_usage_error("mount", "bad value '%s' for -o %s: give a number from 1 to 15000",
						       val, o);
			if (!strcmp(o, "fd_cache"))
				a->fo.fd_cache = (unsigned)v;
			else
				a->fo.threads = (unsigned)v;
		} else if (!strcmp(o, "store") && val && *val) {
			a->store_arg = val;
		} else if (!strcmp(o, "ingest") && val) {
			if (cli_parse_ingest(val, &a->fo.ingest_all) < 0)
				return cli_usage_error("mount", "bad value '%s' for -o ingest: give all or none", val);
		} else if (!strcmp(o, "compression") && val) {
			if (cli_parse_compression(val, &a->fo.compression) < 0)
				return cli_usage_error("mount", "bad value '%s' for -o compression: give auto, none or zstd",
						       val);
		} else if (!strcmp(o, "zstd_level") && val) {
			if (cli_parse_level(val, &a->fo.zstd_level) < 0)
				return cli_usage_error("mount", "bad value '%s' for -o zstd_level: give a zstd level from 1 to 22",
						       val);
		} else if (!strcmp(o, "max_size") && val) {
			if (cli_parse_size(val, &a->fo.max_size) < 0 || a->fo.max_size == 0)
				return cli_usage_error("mount", "bad value '%s' for -o max_size: give a size like 20G or 500M",
						       val);
		} else if (!strcmp(o, "backing") && val && *val && !a->helper) {
			a->backing_arg = val;
		} else if (!strcmp(o, "backing") && a->helper) {
			return cli_usage_error("mount", "-o backing is not for mount(8): give the backing directory as "
					       "the SOURCE");
		} else if (!a->sloppy) {
			return cli_usage_error("mount", "unknown mount option '%s%s%s'", o, val ? "=" : "",
					       val ? val : "");
		}
	}
	return 0;
}

/* Refuses the generic options an unprivileged mount cannot honour:
 * fusermount3 (3.14) mounts nosuid,nodev for users and passes no atime
 * setting but noatime.  Returns 0 or CLI_EXIT_FAILURE after an error. */
static int generic_check_unprivileged(const struct generic_opts *g)
{
	const char *what = g->nosuid == 0 ? "suid" : g->nodev == 0 ? "dev" :
			   g->atime == ATIME_STRICTATIME ? "strictatime" :
			   g->nodiratime == 1 && g->atime != ATIME_NOATIME ? "nodiratime" :
			   g->lazytime == 1 ? "lazytime" : NULL;
	if (!what)
		return 0;
	cli_error("-o %s cannot be honoured on a mount by an unprivileged user (fusermount3 does not allow or "
		  "pass it%s): mount as root, or drop %s", what,
		  g->nosuid == 0 || g->nodev == 0 ? "; mount.fuse3 adds dev,suid unless nodev,nosuid are given" : "",
		  what);
	return CLI_EXIT_FAILURE;
}

/* The generic options libfuse 3.14 passes to mount(2) or fusermount3, as
 * one -o list for fs_options.mount_opts (nosuid,nodev are libfuse's
 * defaults).  The others are set by generic_apply once the mount answers. */
static void generic_libfuse_opts(const struct generic_opts *g, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s%s", g->nosuid == 0 ? "suid," : "", g->nodev == 0 ? "dev," : "",
		 g->noexec == 1 ? "noexec," : "", g->sync == 1 ? "sync," : "", g->dirsync == 1 ? "dirsync," : "",
		 g->atime == ATIME_NOATIME ? "noatime," : "");
	size_t n = strlen(buf);
	if (n)
		buf[n - 1] = '\0';
}

/* Does g ask for what only generic_apply can set (root only)? */
static bool generic_needs_apply(const struct generic_opts *g)
{
	return g->atime == ATIME_STRICTATIME || g->nodiratime == 1 || g->lazytime == 1;
}

/* Sets g's options on the casfs mount at mp: the mount's attributes
 * (mount_setattr) and the superblock's flags (fspick + fsconfig).  On a
 * new mount only what libfuse could not pass; on a remount everything
 * given.  Root only.  Returns 0 or CLI_EXIT_FAILURE after an error. */
static int generic_apply(const char *mp, const struct generic_opts *g, bool remount)
{
	struct mount_attr attr = { 0 };
	const char *what = "mount options";
	int fd = -1, e;
	const struct {
		int value;
		uint64_t flag;
		bool on_mount; /* also on a new mount (libfuse cannot pass it) */
	} flags[] = {
		{ g->ro, MOUNT_ATTR_RDONLY, false },
		{ g->nosuid, MOUNT_ATTR_NOSUID, false },
		{ g->nodev, MOUNT_ATTR_NODEV, false },
		{ g->noexec, MOUNT_ATTR_NOEXEC, false },
		{ g->nodiratime, MOUNT_ATTR_NODIRATIME, true },
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (flags[i].value == OPT_UNSET || (!remount && !flags[i].on_mount))
			continue;
		if (flags[i].value)
			attr.attr_set |= flags[i].flag;
		else
			attr.attr_clr |= flags[i].flag;
	}
	if (g->atime != ATIME_UNSET && (remount || g->atime == ATIME_STRICTATIME)) {
		attr.attr_clr |= MOUNT_ATTR__ATIME;
		attr.attr_set |= g->atime == ATIME_NOATIME ? MOUNT_ATTR_NOATIME :
				 g->atime == ATIME_STRICTATIME ? MOUNT_ATTR_STRICTATIME : MOUNT_ATTR_RELATIME;
	}
	if ((attr.attr_set || attr.attr_clr) && mount_setattr(AT_FDCWD, mp, 0, &attr, sizeof(attr)) < 0) {
		e = errno;
		goto fail;
	}

	/* the superblock's flags: ro (with the mount's), sync, lazytime */
	what = "filesystem options";
	const struct {
		int value;
		const char *on, *off;
	} sb[] = {
		{ remount ? g->ro : OPT_UNSET, "ro", "rw" },
		{ remount ? g->sync : OPT_UNSET, "sync", "async" },
		{ g->lazytime, "lazytime", "nolazytime" },
	};
	for (size_t i = 0; i < sizeof(sb) / sizeof(sb[0]); i++) {
		if (sb[i].value == OPT_UNSET)
			continue;
		if (fd < 0 && (fd = fspick(AT_FDCWD, mp, FSPICK_CLOEXEC)) < 0) {
			e = errno;
			goto fail;
		}
		if (fsconfig(fd, FSCONFIG_SET_FLAG, sb[i].value ? sb[i].on : sb[i].off, NULL, 0) < 0) {
			e = errno;
			goto fail;
		}
	}
	if (fd >= 0 && fsconfig(fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0) < 0) {
		e = errno;
		goto fail;
	}
	if (fd >= 0)
		close(fd);
	return CLI_EXIT_OK;
fail:
	if (fd >= 0)
		close(fd);
	cli_error("cannot set the %s of %s: %s%s", what, mp, strerror(e),
		  e == EBUSY ? " (a file is open for writing there: close it, or remount later)" : "");
	return CLI_EXIT_FAILURE;
}

static bool wait_answering(const char *mp, pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		struct statfs sf;
		if (statfs(mp, &sf) == 0 && sf.f_type == FUSE_SUPER_MAGIC)
			return true;
		if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Sets what libfuse could not pass on a foreground mount: waits in a
 * thread of the daemon's process until the mount answers (or the daemon
 * stops), then applies the options; on failure it unmounts, so the
 * session ends and the command fails. */
struct apply_watch {
	const char *mp;
	const struct generic_opts *g;
	atomic_bool daemon_done;
	int status;
};

static void *apply_when_answering(void *arg)
{
	struct apply_watch *w = arg;
	struct statfs sf;
	w->status = CLI_EXIT_FAILURE;
	while (!atomic_load(&w->daemon_done)) {
		if (statfs(w->mp, &sf) == 0 && sf.f_type == FUSE_SUPER_MAGIC) {
			w->status = generic_apply(w->mp, w->g, false);
			if (w->status != CLI_EXIT_OK)
				umount2(w->mp, MNT_DETACH);
			return NULL;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int run_foreground(struct mount_args *a, bool apply)
{
	struct apply_watch w = { .mp = a->fo.mountpoint, .g = &a->g };
	pthread_t th;
	if (!apply)
		return fs_run(&a->fo, -1);
	atomic_init(&w.daemon_done, false);
	int r = pthread_create(&th, NULL, apply_when_answering, &w);
	if (r != 0) {
		cli_error("cannot start: %s", strerror(r));
		return CLI_EXIT_FAILURE;
	}
	int ret = fs_run(&a->fo, -1);
	atomic_store(&w.daemon_done, true);
	pthread_join(th, NULL);
	return ret != 0 ? ret : w.status;
}

/* mount -o remount: changes the generic options of a live casfs mount;
 * casfs's own options stay as mounted.  Root only (fusermount3 cannot
 * remount). */
static int do_remount(struct mount_args *a)
{
	char mp[PATH_MAX];
	int r = cli_abspath(a->mountpoint_arg, mp, sizeof(mp));
	if (r < 0) {
		cli_error("bad mount point %s: %s", a->mountpoint_arg, strerror(-r));
		return CLI_EXIT_FAILURE;
	}
	if (!cli_is_casfs_mount(mp)) {
		cli_error("%s is not a casfs mount, so it cannot be remounted (see casfs status)", mp);
		return CLI_EXIT_FAILURE;
	}
	if (geteuid() != 0) {
		cli_error("remounting %s needs root (fusermount3 cannot remount): unmount it and mount it again "
			  "with the new options", mp);
		return CLI_EXIT_FAILURE;
	}
	if (a->g.dirsync != OPT_UNSET) {
		cli_error("-o dirsync cannot change on a remount (the kernel keeps it for a FUSE mount): unmount %s "
			  "and mount it again", mp);
		return CLI_EXIT_FAILURE;
	}
	return generic_apply(mp, &a->g, true);
}

static int do_mount(struct mount_args *a)
{
	char mp[PATH_MAX], backing[PATH_MAX], store_path[PATH_MAX], log_path[PATH_MAX + 16];
	struct stat st;
	const char *errmsg = NULL;
	cache_store *store = NULL;
	int r;

	/* "" ("$UNSET") names no directory; cli_abspath would refuse it, but
	 * say so as a usage error before anything else */
	if (!a->mountpoint_arg[0])
		return cli_usage_error("mount", "the MOUNTPOINT is an empty string: give a directory");
	if (a->g.remount)
		return do_remount(a);
	bool root = geteuid() == 0;
	if (!root && (r = generic_check_unprivileged(&a->g)) != 0)
		return r;
	if (!root && a->fo.fast_sandboxes) {
		cli_error("-o fast_sandboxes mounts tmpfs filesystems, which only root may do: mount as root, or "
			  "drop the option");
		return CLI_EXIT_FAILURE;
	}
	a->fo.read_only = a->g.ro == 1;
	generic_libfuse_opts(&a->g, a->libfuse_opts, sizeof(a->libfuse_opts));
	a->fo.mount_opts = a->libfuse_opts;
	bool apply = root && generic_needs_apply(&a->g);

	r = cli_abspath(a->mountpoint_arg, mp, sizeof(mp));
	if (r == -ENOENT || (r == 0 && stat(mp, &st) < 0 && errno == ENOENT)) {
		cli_error("mount point %s does not exist: create it first (mkdir -p %s)", a->mountpoint_arg,
			  a->mountpoint_arg);
		return CLI_EXIT_FAILURE;
	}
	if (r < 0) {
		cli_error("bad mount point %s: %s", a->mountpoint_arg, strerror(-r));
		return CLI_EXIT_FAILURE;
	}
	if (cli_is_casfs_mount(mp)) {
		struct casfs_ctl_info info;
		if (cli_ctl_info(mp, &info) == -ENOTCONN)
			cli_error("%s is a stale casfs mount (its daemon is gone): run 'casfs umount %s' first", mp, mp);
		else
			cli_error("%s is already a casfs mount: unmount it first with 'casfs umount %s'", mp, mp);
		return CLI_EXIT_FAILURE;
	}
	if (stat(mp, &st) < 0) {
		cli_error("cannot use mount point %s: %s", mp, strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_error("mount point %s is not a directory: give a directory", mp);
		return CLI_EXIT_FAILURE;
	}
	if (access("/dev/fuse", F_OK) < 0) {
		cli_error("/dev/fuse is missing: load the fuse module (modprobe fuse), or in a container pass the device (--device /dev/fuse)");
		return CLI_EXIT_FAILURE;
	}
	if (!root && access("/dev/fuse", R_OK | W_OK) < 0) {
		cli_error("/dev/fuse is not readable and writable for you, so an unprivileged mount is impossible: "
			  "ask root to run 'chmod 0666 /dev/fuse' (Debian's default mode, set by udev), or mount as root");
		return CLI_EXIT_FAILURE;
	}
	if (!root && access("/bin/fusermount3", X_OK) < 0 && access("/usr/bin/fusermount3", X_OK) < 0) {
		cli_error("fusermount3 is not installed, so an unprivileged mount is impossible: install fuse3 (apt-get install fuse3)");
		return CLI_EXIT_FAILURE;
	}

	const char *b = a->backing_arg ? a->backing_arg : mp;
	if (!realpath(b, backing)) {
		cli_error("backing directory %s: %s", b, strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	a->fo.backing_fd = open(backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (a->fo.backing_fd < 0) {
		int e = errno;
		cli_error("cannot open backing directory %s: %s%s", backing, strerror(e),
			  e == ENOTDIR ? " (give a directory)" : "");
		return CLI_EXIT_FAILURE;
	}

	if (a->store_arg)
		snprintf(store_path, sizeof(store_path), "%s", a->store_arg);
	else if (cache_store_default_path(store_path, sizeof(store_path)) < 0) {
		cli_error("no store directory: set CASFS_STORE or HOME, or pass --store DIR");
		return CLI_EXIT_FAILURE;
	}
	r = cache_store_open(store_path, &store, &errmsg);
	if (r < 0) {
		cli_error("store %s %s (%s): pass --store DIR to use another", store_path,
			  errmsg ? errmsg : "cannot be used", strerror(-r));
		return CLI_EXIT_FAILURE;
	}
	snprintf(log_path, sizeof(log_path), "%s/casfsd.log", cache_store_path(store));
	a->fo.mountpoint = mp;
	a->fo.backing_path = backing;
	a->fo.store = store;
	a->fo.log_path = log_path;

	if (a->fo.foreground) {
		r = run_foreground(a, apply);
		cache_store_close(store);
		return r;
	}

	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		cli_error("pipe: %s", strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cli_error("fork: %s", strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	if (pid == 0) {
		close(pfd[0]);
		setsid();
		if (chdir("/") < 0)
			_exit(CLI_EXIT_FAILURE);
		int nfd = open("/dev/null", O_RDWR);
		if (nfd >= 0) {
			dup2(nfd, STDIN_FILENO);
			close(nfd);
		}
		_exit(fs_run(&a->fo, pfd[1]));
	}
	close(pfd[1]);
	char msg[1100] = { 0 };
	cache_io_read(pfd[0], msg, sizeof(msg) - 1, CACHE_IO_CUR); /* to the daemon's close */
	close(pfd[0]);
	cache_store_close(store);
	if (strncmp(msg, "OK", 2) != 0) {
		char *nl = strchr(msg, '\n');
		if (nl)
			*nl = '\0';
		waitpid(pid, NULL, 0);
		if (strncmp(msg, "ERR ", 4) == 0)
			cli_error("%s", msg + 4);
		else
			cli_error("the daemon exited while mounting %s: see %s", mp, log_path);
		return CLI_EXIT_FAILURE;
	}
	if (!wait_answering(mp, pid)) {
		cli_error("%s was mounted but does not answer: see %s, then 'casfs umount %s'", mp, log_path, mp);
		return CLI_EXIT_FAILURE;
	}
	if (apply && generic_apply(mp, &a->g, false) != CLI_EXIT_OK) {
		umount2(mp, MNT_DETACH); /* the daemon exits once the kernel lets go */
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}

/* FUSE kernel options are what mount(8) finds on a mount it remounts;
 * anywhere else casfs sets them itself.  0, CLI_EXIT_USAGE, or
 * CLI_EXIT_FAILURE (-o sha256 without a loadable libcrypto). */
static int check_opts(const struct mount_args *a)
{
	if (a->kernel_opt && !a->g.remount && !a->sloppy)
		return cli_usage_error("mount", "mount option '%s' is set by casfs itself: drop it", a->kernel_opt);
	if (a->fo.sha256 && !a->fo.xattr && !a->g.remount)
		return cli_usage_error("mount", "-o sha256 serves user.casfs.sha256, which -o no_xattr turns off: "
				       "drop one of them");
	hasher_sha256 probe;
	if (a->fo.sha256 && hasher_sha256_buffer("", 0, &probe) < 0) {
		fprintf(stderr, "casfs: mount: -o sha256 needs OpenSSL's libcrypto (libcrypto.so.3), which cannot be "
				"loaded: install it (Debian: apt-get install libssl3)\n");
		return CLI_EXIT_FAILURE;
	}
	return 0;
}

static void mount_defaults(struct mount_args *a)
{
	memset(a, 0, sizeof(*a));
	a->fo.writeback = false;
	a->fo.passthrough = true;
	a->fo.use_handles = true;
	a->fo.xattr = true;
	a->fo.timeout = 86400;
	a->g = (struct generic_opts){ .ro = OPT_UNSET, .nosuid = OPT_UNSET, .nodev = OPT_UNSET, .noexec = OPT_UNSET,
				      .sync = OPT_UNSET, .dirsync = OPT_UNSET, .nodiratime = OPT_UNSET,
				      .lazytime = OPT_UNSET, .atime = ATIME_UNSET };
}

int cmd_mount(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "backing", required_argument, NULL, 'b' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "ingest", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mount_args a;
	int c, r;
	mount_defaults(&a);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:s:b:fo:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': a.store_arg = optarg; break;
		case 'b': a.backing_arg = optarg; break;
		case 'f': a.fo.foreground = true; break;
		case 'i':
			if (cli_parse_ingest(optarg, &a.fo.ingest_all) < 0)
				return cli_usage_error("mount", "bad value '%s' for --ingest: give all or none", optarg);
			break;
		case 'o':
			if ((r = parse_opts(optarg, &a)) != 0)
				return r;
			break;
		case 'h':
			fputs(mount_usage, stdout);
			fputs(mount_usage_generic, stdout);
			return CLI_EXIT_OK;
		default: return cli_option_error("mount", c, argv); /* '?' or ':' */
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("mount", optind == argc ? "mount needs a MOUNTPOINT" : "mount takes one MOUNTPOINT");
	a.mountpoint_arg = argv[optind];
	if ((r = check_opts(&a)) != 0)
		return r;
	return do_mount(&a);
}

/* mount(8) calls: mount.casfs SOURCE MOUNTPOINT [-sfnv] [-o OPTS], and
 * mount.fuse3 calls: casfs SOURCE MOUNTPOINT [-o OPTS]. */
int cmd_mount_helper(int argc, char **argv)
{
	struct mount_args a;
	const char *pos[2] = { 0 };
	char *optlists[16];
	int npos = 0, nopt = 0, r;
	bool fake = false;
	mount_defaults(&a);
	a.helper = true;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			if (nopt == (int)(sizeof(optlists) / sizeof(optlists[0])))
				return cli_usage_error("mount", "too many -o lists: give one");
			optlists[nopt++] = argv[++i];
		} else if (!strcmp(argv[i], "-s")) {
			a.sloppy = true;
		} else if (!strcmp(argv[i], "-f")) {
			fake = true;
		} else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "-v")) {
			; /* no mtab (there is none), verbose */
		} else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
			i++; /* the type mount(8) chose: fuse.casfs */
		} else if (argv[i][0] == '-') {
			return cli_usage_error("mount", "unknown option '%s' for mount.casfs (usage: mount.casfs "
					       "SOURCE MOUNTPOINT [-sfnv] [-o OPTS])", argv[i]);
		} else if (npos < 2) {
			pos[npos++] = argv[i];
		} else {
			return cli_usage_error("mount", "unexpected argument '%s' (usage: mount.casfs SOURCE "
					       "MOUNTPOINT [-sfnv] [-o OPTS])", argv[i]);
		}
	}
	if (npos != 2)
		return cli_usage_error("mount", "mount.casfs needs SOURCE and MOUNTPOINT (SOURCE: the backing "
				       "directory's absolute path)");
	for (int i = 0; i < nopt; i++)
		if ((r = parse_opts(optlists[i], &a)) != 0)
			return r;
	if ((r = check_opts(&a)) != 0)
		return r;
	a.mountpoint_arg = pos[1];
	/* mount(8) resolves a SOURCE that is not absolute against its current
	 * directory when an entry of that name is there: such a source (the
	 * word casfs, say) could serve the wrong directory */
	if (!a.g.remount && pos[0][0] != '/')
		return cli_usage_error("mount", "mount source '%s' is not an absolute path: give the backing "
				       "directory's absolute path (the mount point's own path to serve its contents); "
				       "mount(8) would resolve '%s' against its current directory", pos[0], pos[0]);
	a.backing_arg = pos[0];
	/* mount(8) mounts dev,suid unless told nodev,nosuid (fstab's user
	 * option implies them), and so do casfs's helpers where root mounts;
	 * a remount changes only what it names */
	if (geteuid() == 0 && !a.g.remount) {
		if (a.g.nosuid == OPT_UNSET)
			a.g.nosuid = 0;
		if (a.g.nodev == OPT_UNSET)
			a.g.nodev = 0;
	}
	if (fake)
		return CLI_EXIT_OK;
	return do_mount(&a);
}

/* ---- umount --------------------------------------------------------------- */

static bool pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int cmd_umount(int argc, char **argv)
{
	bool lazy = false;
	const char *arg = NULL;
	char mp[PATH_MAX];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-l") || !strcmp(argv[i], "--lazy"))
			lazy = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			puts("usage: casfs umount [-l|--lazy] MOUNTPOINT\n\n"
			     "Unmounts a casfs mount (also a stale one whose daemon was killed) and\n"
			     "waits for its daemon to finish.  --lazy detaches a busy mount now and\n"
			     "finishes when the last user is gone.\n"
			     "\n"
			     "Exit status: 0 unmounted, 1 failure, 2 usage error.");
			return CLI_EXIT_OK;
		} else if (argv[i][0] == '-') {
			return cli_usage_error("umount", "unknown option '%s' for umount", argv[i]);
		} else if (arg) {
			return cli_usage_error("umount", "umount takes one MOUNTPOINT");
		} else
			arg = argv[i];
	}
	if (!arg)
		return cli_usage_error("umount", "umount needs a MOUNTPOINT");
	if (!arg[0])
		return cli_usage_error("umount", "the MOUNTPOINT is an empty string: give a casfs mount");
	int r = cli_abspath(arg, mp, sizeof(mp));
	if (r < 0) {
		cli_error("bad mount point %s: %s", arg, strerror(-r));
		return CLI_EXIT_FAILURE;
	}
	if (!cli_is_casfs_mount(mp)) {
		cli_error("%s is not a casfs mount (see casfs status)", mp);
		return CLI_EXIT_FAILURE;
	}
	struct casfs_ctl_info info;
	pid_t pid = cli_ctl_info(mp, &info) == 0 ? info.pid : 0;
	bool stale = pid == 0;

	if (geteuid() == 0) {
		r = umount2(mp, lazy || stale ? MNT_DETACH : 0);
		if (r < 0 && errno == EBUSY) {
			cli_error("%s is busy (a process has files open or its working directory there): "
				  "stop it, or use 'casfs umount --lazy %s'", mp, mp);
			return CLI_EXIT_FAILURE;
		}
		if (r < 0) {
			cli_error("cannot unmount %s: %s", mp, strerror(errno));
			return CLI_EXIT_FAILURE;
		}
	} else {
		pid_t c = fork();
		if (c == 0) {
			if (lazy || stale)
				execlp("fusermount3", "fusermount3", "-u", "-z", "--", mp, (char *)NULL);
			else
				execlp("fusermount3", "fusermount3", "-u", "--", mp, (char *)NULL);
			_exit(127);
		}
		int status = 0;
		if (c < 0 || waitpid(c, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			cli_error("cannot unmount %s: fusermount3 failed%s", mp,
				  WIFEXITED(status) && WEXITSTATUS(status) == 127 ? " (install fuse3)" :
				  " (busy? stop what uses it, or use --lazy)");
			return CLI_EXIT_FAILURE;
		}
	}
	/* The daemon flushes and exits once the kernel lets go. */
	for (int i = 0; pid && pid_alive(pid) && i < 1000; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (pid && pid_alive(pid) && !lazy) {
		cli_error("unmounted %s, but its daemon (pid %d) is still running", mp, (int)pid);
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}

/* ---- status & stats ----------------------------------------------------- */

static int status_one(const char *mp, dev_t dev, void *arg)
{
	struct casfs_ctl_info info;
	int r = cli_ctl_info(mp, &info);
	(*(int *)arg)++;
	if (r == 0)
		printf("%s  backing=%s  store=%s  pid=%d\n", mp, info.backing, info.store, (int)info.pid);
	else if (r == -ENOTCONN)
		printf("%s  stale (daemon gone): run 'casfs umount %s'\n", mp, mp);
	else
		printf("%s  not accessible (%s)\n", mp, strerror(-r));
	return 0;
}

int cmd_status(int argc, char **argv)
{
	int n = 0;
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		puts("usage: casfs status\n\nLists live casfs mounts with their backing directory, store and daemon pid.\n"
		     "\nExit status: 0 success, 2 usage error.");
		return CLI_EXIT_OK;
	}
	if (argc > 1)
		return cli_usage_error("status", argv[1][0] == '-' ? "unknown option '%s' for status" :
					       "unexpected argument '%s' (status takes none)", argv[1]);
	cli_for_each_mount(status_one, &n);
	if (n == 0)
		puts("no casfs mounts");
	return 0;
}

static const char *const counter_names[] = {
#define CASFS_X_NAME(name) #name,
	CASFS_COUNTERS(CASFS_X_NAME)
#undef CASFS_X_NAME
};

struct stats_ctx {
	bool json;
	int printed;
	int failed;
};

static int stats_one(const char *mp, dev_t dev, void *arg)
{
	struct stats_ctx *c = arg;
	struct casfs_ctl_stats s;
	struct casfs_ctl_info info;
	int r = cli_ctl_stats(mp, &s);
	if (r == 0)
		r = cli_ctl_info(mp, &info);
	if (r < 0) {
		if (r == -EPROTO)
			cli_error("cannot read counters of %s: its daemon runs another casfs version "
				  "(unmount and mount it again with this one)", mp);
		else
			cli_error("cannot read counters of %s: %s%s", mp, strerror(-r),
				  r == -ENOTCONN ? " (stale mount: run casfs umount)" : "");
		c->failed++;
		return 0;
	}
	unsigned n = CASFS_C_COUNT;
	if (c->json) {
		printf("%s{\"mountpoint\":\"", c->printed ? "," : "");
		for (const char *p = mp; *p; p++)
			printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
		printf("\",\"pid\":%d,\"uptime_ms\":%llu,\"handle_mode\":%s,\"writeback\":%s,\"counters\":{",
		       (int)info.pid, (unsigned long long)s.uptime_ms, info.handle_mode ? "true" : "false",
		       info.writeback ? "true" : "false");
		for (unsigned i = 0; i < n; i++)
			printf("%s\"%s\":%llu", i ? "," : "", counter_names[i], (unsigned long long)s.counters[i]);
		printf("},\"store\":");
		fflush(stdout);
		if (cli_print_store_stats(info.store, true, false) != 0)
			printf("null");
		printf("}");
	} else {
		printf("%s%s  (pid %d, up %.1f s, inodes by %s, writeback %s)\n", c->printed ? "\n" : "", mp,
		       (int)info.pid, (double)s.uptime_ms / 1000, info.handle_mode ? "file handle" : "path",
		       info.writeback ? "on" : "off");
		for (unsigned i = 0; i < n; i++)
			if (s.counters[i])
				printf("  %-22s %llu\n", counter_names[i], (unsigned long long)s.counters[i]);
		fflush(stdout);
		cli_print_store_stats(info.store, false, false);
	}
	c->printed++;
	return 0;
}

int cmd_stats(int argc, char **argv)
{
	struct stats_ctx c = { 0 };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c.json = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			puts("usage: casfs stats [--json] [MOUNTPOINT...]\n\n"
			     "Prints the counters of the given casfs mounts (all when none is given):\n"
			     "FUSE requests by type, bytes read and written, inodes, fd cache use,\n"
			     "hashing, .casfs/cas reads, ingest and gc; then the mount's store totals.\n"
			     "  --json   one JSON object\n"
			     "\n"
			     "Exit status: 0 success, 1 a MOUNTPOINT is not a live casfs mount, 2 usage error.");
			return CLI_EXIT_OK;
		} else if (argv[i][0] == '-') {
			return cli_usage_error("stats", "unknown option '%s' for stats", argv[i]);
		}
	}
	if (c.json)
		printf("{\"mounts\":[");
	bool any_path = false;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		char mp[PATH_MAX];
		any_path = true;
		if (cli_abspath(argv[i], mp, sizeof(mp)) < 0 || !cli_is_casfs_mount(mp)) {
			cli_error("%s is not a casfs mount (see casfs status)", argv[i]);
			c.failed++;
			continue;
		}
		stats_one(mp, 0, &c);
	}
	if (!any_path)
		cli_for_each_mount(stats_one, &c);
	if (c.json)
		printf("]}\n");
	else if (!c.printed && !c.failed)
		puts("no casfs mounts");
	return c.failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}
