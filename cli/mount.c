/* mount.c — casfs mount / umount / status / stats and the mount(8) helper. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fs.h"
#include "store.h"

#define FUSE_SUPER_MAGIC 0x65735546

static const char mount_usage[] =
	"usage: casfs mount [--store DIR] [--backing DIR] [--ingest=all|none] [-f|--foreground]\n"
	"                   [-o OPT[,OPT...]] MOUNTPOINT\n"
	"\n"
	"Mounts casfs over MOUNTPOINT.  The backing directory (where files really\n"
	"live) is MOUNTPOINT itself unless --backing is given: it is opened before\n"
	"mounting, so what was there stays there and is what you see.  Returns once\n"
	"the mount answers; the daemon runs in the background (-f: in the foreground,\n"
	"until SIGINT/SIGTERM or unmount).  Do not change the backing directory\n"
	"behind casfs's back while it is mounted: the kernel caches what casfs said.\n"
	"\n"
	"  --store DIR        store directory (default $CASFS_STORE, else\n"
	"                     $XDG_CACHE_HOME/casfs, else ~/.cache/casfs)\n"
	"  --backing DIR      serve DIR's contents instead of MOUNTPOINT's\n"
	"  --ingest=all       also store every regular file in the store at the last\n"
	"                     close of a writer (default none: the store gets what\n"
	"                     casfs put and the action cache put there)\n"
	"  -f, --foreground   stay in the foreground, log to stderr\n"
	"  -o OPTS            comma-separated:\n"
	"      allow_other    let other users in (permissions are still checked)\n"
	"      ro             read-only mount\n"
	"      writeback      kernel writeback cache (merges small writes, but\n"
	"                     every close then costs a FLUSH and a GETATTR)\n"
	"      no_writeback   write through, read-only opens skip FLUSH (default)\n"
	"      timeout=SECS   entry/attribute cache lifetime (default 86400)\n"
	"      no_handles     reopen inodes by name, not by file handle (the mode\n"
	"                     used anyway without CAP_DAC_READ_SEARCH)\n"
	"      fd_cache=N     cached open O_PATH descriptors (default 8192)\n"
	"      threads=N      maximum worker threads (default 16)\n"
	"      no_xattr       answer xattr calls with ENOSYS (faster ls -l)\n"
	"      store=DIR      same as --store (for /etc/fstab)\n"
	"      ingest=all|none  same as --ingest\n"
	"      compression=auto|none|zstd\n"
	"                     how ingested contents are stored (default auto: shared\n"
	"                     blocks where the store's filesystem can reflink, else\n"
	"                     zstd when it saves space)\n"
	"      zstd_level=N   zstd level, 1 (fast, the default) to 22 (small)\n"
	"      max_size=SIZE  set the store's size limit (e.g. 20G; default 5G),\n"
	"                     kept by the store like casfs gc --max-size\n"
	"\n"
	"Every directory of the mount answers the name .casfs (never listed):\n"
	".casfs/cas/HEX (or HEX.EXT) is a read-only file with the content whose\n"
	"XXH3-128 is HEX, from a file of the mount or a blob of the store; only the\n"
	"mount's owner may read there.\n";

struct mount_args {
	struct fs_options fo;
	const char *store_arg;
	const char *backing_arg;
	const char *mountpoint_arg;
};

/* Parses one -o list. Returns 0 or -1 after an error message. */
static int parse_opts(char *list, struct mount_args *a)
{
	char *save = NULL;
	for (char *o = strtok_r(list, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		char *val = strchr(o, '=');
		if (val)
			*val++ = '\0';
		char *end = NULL;
		if (!strcmp(o, "allow_other"))
			a->fo.allow_other = true;
		else if (!strcmp(o, "ro"))
			a->fo.read_only = true;
		else if (!strcmp(o, "rw"))
			a->fo.read_only = false;
		else if (!strcmp(o, "writeback"))
			a->fo.writeback = true;
		else if (!strcmp(o, "no_writeback"))
			a->fo.writeback = false;
		else if (!strcmp(o, "no_handles"))
			a->fo.use_handles = false;
		else if (!strcmp(o, "no_xattr"))
			a->fo.xattr = false;
		else if (!strcmp(o, "timeout") && val) {
			a->fo.timeout = strtod(val, &end);
			if (*end || a->fo.timeout < 0) {
				cli_error("bad value '%s' for -o timeout: give seconds, e.g. timeout=60", val);
				return -1;
			}
		} else if ((!strcmp(o, "fd_cache") || !strcmp(o, "threads")) && val) {
			unsigned long v = strtoul(val, &end, 10);
			if (*end || v < 1 || v > 15000) {
				cli_error("bad value '%s' for -o %s: give a number from 1 to 15000", val, o);
				return -1;
			}
			if (!strcmp(o, "fd_cache"))
				a->fo.fd_cache = (unsigned)v;
			else
				a->fo.threads = (unsigned)v;
		} else if (!strcmp(o, "store") && val) {
			a->store_arg = val;
		} else if (!strcmp(o, "ingest") && val) {
			if (cli_parse_ingest(val, &a->fo.ingest_all) < 0)
				return -1;
		} else if (!strcmp(o, "compression") && val) {
			if (cli_parse_compression(val, &a->fo.compression) < 0) {
				cli_error("bad value '%s' for compression: give auto, none or zstd", val);
				return -1;
			}
		} else if (!strcmp(o, "zstd_level") && val) {
			if (cli_parse_level(val, &a->fo.zstd_level) < 0) {
				cli_error("bad zstd level '%s': give a zstd level from 1 to 22", val);
				return -1;
			}
		} else if (!strcmp(o, "max_size") && val) {
			if (cli_parse_size(val, &a->fo.max_size) < 0 || a->fo.max_size == 0) {
				cli_error("bad value '%s' for -o max_size: give a size like 20G or 500M", val);
				return -1;
			}
		}
		else if (!strcmp(o, "backing") && val)
			a->backing_arg = val;
		else if (!strcmp(o, "defaults") || !strcmp(o, "auto") || !strcmp(o, "noauto") ||
			 !strcmp(o, "nofail") || !strcmp(o, "user") || !strcmp(o, "users") ||
			 !strcmp(o, "nouser") || !strcmp(o, "_netdev") || !strcmp(o, "dev") ||
			 !strcmp(o, "nodev") || !strcmp(o, "suid") || !strcmp(o, "nosuid") ||
			 !strcmp(o, "exec") || !strcmp(o, "noexec") || !strcmp(o, "async") ||
			 !strcmp(o, "atime") || !strcmp(o, "noatime") || !strcmp(o, "relatime"))
			; /* fstab/mount(8) generic options: nothing for casfs to do */
		else {
			cli_error("unknown mount option '%s%s%s' (see casfs mount --help)", o,
				  val ? "=" : "", val ? val : "");
			return -1;
		}
	}
	return 0;
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

static int do_mount(struct mount_args *a)
{
	char mp[PATH_MAX], backing[PATH_MAX], store_path[PATH_MAX], log_path[PATH_MAX + 16];
	struct stat st;
	const char *errmsg = NULL;
	cache_store *store = NULL;
	int r;

	r = cli_abspath(a->mountpoint_arg, mp, sizeof(mp));
	if (r == -ENOENT || (r == 0 && stat(mp, &st) < 0 && errno == ENOENT)) {
		cli_error("mount point %s does not exist: create it first (mkdir -p %s)", a->mountpoint_arg,
			  a->mountpoint_arg);
		return 1;
	}
	if (r < 0) {
		cli_error("bad mount point %s: %s", a->mountpoint_arg, strerror(-r));
		return 1;
	}
	if (cli_is_casfs_mount(mp)) {
		struct casfs_ctl_info info;
		if (cli_ctl_info(mp, &info) == -ENOTCONN)
			cli_error("%s is a stale casfs mount (its daemon is gone): run 'casfs umount %s' first", mp, mp);
		else
			cli_error("%s is already a casfs mount: unmount it first with 'casfs umount %s'", mp, mp);
		return 1;
	}
	if (stat(mp, &st) < 0) {
		cli_error("cannot use mount point %s: %s", mp, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_error("mount point %s is not a directory: give a directory", mp);
		return 1;
	}
	if (access("/dev/fuse", F_OK) < 0) {
		cli_error("/dev/fuse is missing: load the fuse module (modprobe fuse), or in a container pass the device (--device /dev/fuse)");
		return 1;
	}
	if (geteuid() != 0 && access("/dev/fuse", R_OK | W_OK) < 0) {
		cli_error("/dev/fuse is not readable and writable for you, so an unprivileged mount is impossible: "
			  "ask root to run 'chmod 0666 /dev/fuse' (Debian's default mode, set by udev), or mount as root");
		return 1;
	}
	if (geteuid() != 0 && access("/bin/fusermount3", X_OK) < 0 && access("/usr/bin/fusermount3", X_OK) < 0) {
		cli_error("fusermount3 is not installed, so an unprivileged mount is impossible: install fuse3 (apt-get install fuse3)");
		return 1;
	}

	const char *b = a->backing_arg ? a->backing_arg : mp;
	if (!realpath(b, backing)) {
		cli_error("backing directory %s: %s", b, strerror(errno));
		return 1;
	}
	a->fo.backing_fd = open(backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (a->fo.backing_fd < 0) {
		cli_error("cannot open backing directory %s: %s%s", backing, strerror(errno),
			  errno == ENOTDIR ? " (give a directory)" : "");
		return 1;
	}

	if (a->store_arg)
		snprintf(store_path, sizeof(store_path), "%s", a->store_arg);
	else if (cache_store_default_path(store_path, sizeof(store_path)) < 0) {
		cli_error("no store directory: set CASFS_STORE or HOME, or pass --store DIR");
		return 1;
	}
	r = cache_store_open(store_path, &store, &errmsg);
	if (r < 0) {
		cli_error("store %s %s (%s): pass --store DIR to use another", store_path,
			  errmsg ? errmsg : "cannot be used", strerror(-r));
		return 1;
	}
	snprintf(log_path, sizeof(log_path), "%s/casfsd.log", cache_store_path(store));
	a->fo.mountpoint = mp;
	a->fo.backing_path = backing;
	a->fo.store = store;
	a->fo.log_path = log_path;

	if (a->fo.foreground) {
		r = fs_run(&a->fo, -1);
		cache_store_close(store);
		return r;
	}

	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		cli_error("pipe: %s", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cli_error("fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(pfd[0]);
		setsid();
		if (chdir("/") < 0)
			_exit(1);
		int nfd = open("/dev/null", O_RDWR);
		if (nfd >= 0) {
			dup2(nfd, STDIN_FILENO);
			close(nfd);
		}
		_exit(fs_run(&a->fo, pfd[1]));
	}
	close(pfd[1]);
	char msg[1100] = { 0 };
	size_t got = 0;
	for (;;) {
		ssize_t n = read(pfd[0], msg + got, sizeof(msg) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
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
		return 1;
	}
	if (!wait_answering(mp, pid)) {
		cli_error("%s was mounted but does not answer: see %s, then 'casfs umount %s'", mp, log_path, mp);
		return 1;
	}
	return 0;
}

static void mount_defaults(struct mount_args *a)
{
	memset(a, 0, sizeof(*a));
	a->fo.writeback = false;
	a->fo.use_handles = true;
	a->fo.xattr = true;
	a->fo.timeout = 86400;
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
	int c;
	mount_defaults(&a);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+s:b:fo:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': a.store_arg = optarg; break;
		case 'b': a.backing_arg = optarg; break;
		case 'f': a.fo.foreground = true; break;
		case 'i':
			if (cli_parse_ingest(optarg, &a.fo.ingest_all) < 0)
				return 1;
			break;
		case 'o':
			if (parse_opts(optarg, &a) < 0)
				return 1;
			break;
		case 'h': fputs(mount_usage, stdout); return 0;
		default:
			cli_error("unknown or incomplete option '%s' for mount (see casfs mount --help)", argv[optind - 1]);
			return 1;
		}
	}
	if (optind != argc - 1) {
		cli_error(optind == argc ? "mount needs a MOUNTPOINT (see casfs mount --help)"
					 : "mount takes one MOUNTPOINT (see casfs mount --help)");
		return 1;
	}
	a.mountpoint_arg = argv[optind];
	return do_mount(&a);
}

/* mount(8) calls: mount.casfs SOURCE MOUNTPOINT [-sfnv] [-o OPTS] */
int cmd_mount_helper(int argc, char **argv)
{
	struct mount_args a;
	const char *pos[2] = { 0 };
	int npos = 0;
	mount_defaults(&a);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			if (parse_opts(argv[++i], &a) < 0)
				return 1;
		} else if (argv[i][0] == '-') {
			; /* -s -f -n -v: sloppy, fake, no-mtab, verbose: ignored */
		} else if (npos < 2) {
			pos[npos++] = argv[i];
		} else {
			cli_error("usage: mount.casfs SOURCE MOUNTPOINT [-o OPTS]");
			return 1;
		}
	}
	if (npos != 2) {
		cli_error("usage: mount.casfs SOURCE MOUNTPOINT [-o OPTS] (SOURCE: the backing directory, or 'casfs' for MOUNTPOINT itself)");
		return 1;
	}
	if (strcmp(pos[0], "casfs") != 0 && strcmp(pos[0], "none") != 0 && !a.backing_arg)
		a.backing_arg = pos[0];
	a.mountpoint_arg = pos[1];
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
			     "finishes when the last user is gone.");
			return 0;
		} else if (argv[i][0] == '-' || arg) {
			cli_error("usage: casfs umount [-l|--lazy] MOUNTPOINT");
			return 1;
		} else
			arg = argv[i];
	}
	if (!arg) {
		cli_error("umount needs a MOUNTPOINT (see casfs umount --help)");
		return 1;
	}
	int r = cli_abspath(arg, mp, sizeof(mp));
	if (r < 0) {
		cli_error("bad mount point %s: %s", arg, strerror(-r));
		return 1;
	}
	if (!cli_is_casfs_mount(mp)) {
		cli_error("%s is not a casfs mount (see casfs status)", mp);
		return 1;
	}
	struct casfs_ctl_info info;
	pid_t pid = cli_ctl_info(mp, &info) == 0 ? info.pid : 0;
	bool stale = pid == 0;

	if (geteuid() == 0) {
		r = umount2(mp, lazy || stale ? MNT_DETACH : 0);
		if (r < 0 && errno == EBUSY) {
			cli_error("%s is busy (a process has files open or its working directory there): "
				  "stop it, or use 'casfs umount --lazy %s'", mp, mp);
			return 1;
		}
		if (r < 0) {
			cli_error("cannot unmount %s: %s", mp, strerror(errno));
			return 1;
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
			return 1;
		}
	}
	/* The daemon flushes and exits once the kernel lets go. */
	for (int i = 0; pid && pid_alive(pid) && i < 1000; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (pid && pid_alive(pid) && !lazy) {
		cli_error("unmounted %s, but its daemon (pid %d) is still running", mp, (int)pid);
		return 1;
	}
	return 0;
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
		puts("usage: casfs status\n\nLists live casfs mounts with their backing directory, store and daemon pid.");
		return 0;
	}
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
	int first = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c.json = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			puts("usage: casfs stats [--json] [MOUNTPOINT...]\n\n"
			     "Prints the counters of the given casfs mounts (all when none is given):\n"
			     "FUSE requests by type, bytes read and written, inodes, fd cache use.");
			return 0;
		} else if (argv[i][0] == '-') {
			cli_error("unknown option '%s' for stats (see casfs stats --help)", argv[i]);
			return 1;
		} else if (first) {
			first = i;
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
	return c.failed ? 1 : 0;
}
