/* fs.c — wires casfs's handlers (ops.h) into libfuse and runs the
 * session: capabilities negotiated at INIT, the daemon state set up and
 * torn down, the mount made and served.
 *
 * Conventions of every handler (as libfuse's fuse_lowlevel.h documents
 * them): it replies exactly once through its request context (req.h);
 * errors go out as positive errnos saved right after the failing call;
 * every entry reply and readdirplus entry other than "." and ".." adds one
 * kernel reference to the node.  Node ids are never pointers (inode.h).
 */
#include "fs.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "absent.h"
#include "casfs_config.h"
#include "casns.h"
#include "ingest.h"
#include "kcache.h"
#include "kernel_io.h"
#include "ops.h"
#include "sandbox_fast.h"
#include "session.h"
#include "spares.h"
#include "state.h"

/* Files made ahead for restores (fs/spares.h): a hit restores two or three
 * outputs, and make -j runs a few at once. */
#define SPARES_KEEP 16
/* names a lookup of a cached action remembers absent (a compile of libuv's
 * core.c checks ~190; a name costs ~60 bytes) */
#define ABSENT_KEEP 65536

/* ---- lifecycle ---------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want |= conn->capable & (FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_SPLICE_WRITE |
				       FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO |
				       FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_ATOMIC_O_TRUNC |
				       FUSE_CAP_ASYNC_READ | FUSE_CAP_ASYNC_DIO |
				       FUSE_CAP_NO_OPENDIR_SUPPORT | FUSE_CAP_IOCTL_DIR | FUSE_CAP_DONT_MASK);
	/* Symlink targets are not cached by the kernel: every resolution of a
	 * symlink reaches the daemon, so a traced command's resolutions are
	 * recorded (docs/ACTIONS.md). */
	conn->want &= ~FUSE_CAP_CACHE_SYMLINKS;
	/* Written bytes must reach us in memory to be hashed on the way.
	 * Builds without hashing (-Dhash_on_write=false) copy too, so that
	 * tools/bench/write-hash compares the hash alone; in its runs the
	 * copy was no slower than splicing, within the machine's noise. */
	conn->want &= ~FUSE_CAP_SPLICE_READ;
	/* Killing set-user/group-ID: FUSE_HANDLE_KILLPRIV_V2, asked for by
	 * kernel_io.c, where the kernel says when; never the first version,
	 * which would have casfs kill them on every write, even root's. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* Reads are spliced from the backing file's page cache: such pages
	 * belong to a file and can never be moved into ours, so with
	 * SPLICE_MOVE the kernel copies each one anyway after logging "fuse:
	 * trying to steal weird page".  Splice without move. */
	conn->want &= ~FUSE_CAP_SPLICE_MOVE;
	/* Locks are kept by the kernel (all access goes through this mount). */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	/* The kernel keeps page cache across opens only if nothing else
	 * changes the data: true by contract, so no auto-invalidation. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (FS->o.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	FS->o.writeback = conn->want & FUSE_CAP_WRITEBACK_CACHE;
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
	.lseek = op_lseek,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.access = op_access,
	.ioctl = op_ioctl,
};

/* ---- running ------------------------------------------------------------ */

static int ready_fd_global = -1;

#ifndef __SANITIZE_ADDRESS__ /* the sanitizer's own report is better */
/* A fatal signal in the daemon: one line naming it and the faulting
 * address, the stack (addresses resolve with addr2line -e casfs), then the
 * default action (a core where the system keeps them).  Only
 * async-signal-safe calls; backtrace() was primed at install, so it does
 * not load libgcc here. */
static void fatal_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	char line[160];
	int n = snprintf(line, sizeof(line), "casfs: daemon %d: fatal signal %d (%s) at address %p; stack:\n",
			 (int)getpid(), sig, sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" :
			 sig == SIGABRT ? "SIGABRT" : sig == SIGFPE ? "SIGFPE" : "SIGILL", si ? si->si_addr : NULL);
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		n = 0;
	void *frames[48];
	int depth = backtrace(frames, 48);
	backtrace_symbols_fd(frames, depth, STDERR_FILENO);
	raise(sig); /* SA_RESETHAND: the default action now */
}

static void install_fatal_handlers(void)
{
	void *prime[2];
	backtrace(prime, 2);
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
	struct sigaction sa = { .sa_sigaction = fatal_signal, .sa_flags = SA_SIGINFO | SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}
#endif

static void send_ready(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ready_fd_global >= 0) {
		ssize_t w = write(ready_fd_global, msg, strlen(msg));
		(void)w;
		close(ready_fd_global);
		ready_fd_global = -1;
	} else if (strncmp(msg, "ERR ", 4) == 0) {
		fprintf(stderr, "casfs: %s", msg + 4);
	}
}

/* libfuse's own messages (e.g. from fusermount3) become our error line. */
static char fuse_last_error[512];
static void fuse_log_capture(enum fuse_log_level level, const char *fmt, va_list ap)
{
	if (level <= FUSE_LOG_ERR) {
		vsnprintf(fuse_last_error, sizeof(fuse_last_error), fmt, ap);
		size_t l = strlen(fuse_last_error);
		while (l && fuse_last_error[l - 1] == '\n')
			fuse_last_error[--l] = '\0';
	}
	if (ready_fd_global < 0)
		vfprintf(stderr, fmt, ap);
}

int fs_run(const struct fs_options *o, int ready_fd)
{
	struct fs fs = { .o = *o, .proc_fd = -1 };
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	char *mount_opts = NULL;
	int ret = 1, r;

	FS = &fs;
	ready_fd_global = ready_fd;
	clock_gettime(CLOCK_MONOTONIC, &fs.started);
	umask(0); /* a create applies the caller's umask itself (req.c) */
	fs.root_daemon = geteuid() == 0;
	if (fs.root_daemon) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d) == 0)
			for (int i = 0; i < 2; i++) {
				fs.cap_eff[i] = d[i].effective;
				fs.cap_prm[i] = d[i].permitted;
				fs.cap_inh[i] = d[i].inheritable;
			}
	}
	fs.proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs.proc_fd < 0) {
		send_ready("ERR cannot open /proc/self/fd (%s): mount /proc\n", strerror(errno));
		return 1;
	}
	/* Open files: raise the soft limit to the hard one, and keep the fd
	 * cache to half of it so open files and dirs have the rest. */
	unsigned fd_cache = o->fd_cache ? o->fd_cache : 8192;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY && fd_cache > rl.rlim_cur / 2)
			fd_cache = (unsigned)(rl.rlim_cur / 2);
	}
	/* -o fast_sandboxes: the daemon serves the backing from a private copy
	 * of its mount tree, where it mounts the sandboxes' tmpfs */
	int backing_fd = o->backing_fd;
	if (o->fast_sandboxes && (r = sbfast_new(o->backing_fd, &fs.sb, &backing_fd)) < 0) {
		send_ready("ERR -o fast_sandboxes: cannot mount a tmpfs in a private mount tree (%s): it needs a "
			   "daemon running as root with CAP_SYS_ADMIN and Linux 6.15 or later; drop the option\n",
			   strerror(-r));
		goto out;
	}
	r = ino_table_new(backing_fd, o->use_handles, fd_cache, &fs.tbl);
	if (r < 0) {
		send_ready("ERR cannot use backing directory %s: %s\n", o->backing_path, strerror(-r));
		goto out;
	}
	ino_table_set_fallback(fs.tbl, fs_files_fallback_open, NULL);
	/* no spare is made before the first restore; without them restores
	 * only cost more */
	if ((r = fs_spares_new(backing_fd, SPARES_KEEP, &fs.spares)) < 0)
		fprintf(stderr, "casfs: cannot start the restore worker (%s): restores make their files\n",
			strerror(-r));
	if (cache_absent_new(ABSENT_KEEP, &fs.absent) < 0)
		fs.absent = NULL; /* lookups check every absent name */
	r = cache_index_open(o->store, &fs.ix);
	if (r < 0) {
		send_ready("ERR cannot open the index of store %s: %s\n", cache_store_path(o->store), strerror(-r));
		goto out;
	}
	if (o->max_size && (r = cache_index_set_max_size(fs.ix, o->max_size)) < 0) {
		send_ready("ERR cannot set the size limit of store %s: %s\n", cache_store_path(o->store),
			   strerror(-r));
		goto out;
	}
	fs.owner_uid = getuid();
	fs.owner_gid = getgid();
	if ((r = casns_new(&fs.ns)) < 0 || (r = ingest_new(&fs.ing)) < 0 || (r = sessions_new(&fs.ss)) < 0) {
		send_ready("ERR cannot start: %s\n", strerror(-r));
		goto out;
	}
#if CASFS_HASH_ON_WRITE
	r = digests_new(fs.tbl, fs.ix, fs.proc_fd, &fs.dg);
	if (r < 0) {
		send_ready("ERR cannot start digests: %s\n", strerror(-r));
		goto out;
	}
	if ((r = digests_set_sha256_on_write(fs.dg, o->sha256)) < 0) {
		send_ready("ERR -o sha256: libcrypto computes no SHA-256 here (%s): drop -o sha256\n", strerror(-r));
		goto out;
	}
	digests_subscriber ingest_sub = ingest_subscriber;
	ingest_sub.arg = fs.ing;
	digests_subscribe(fs.dg, &casns_live_subscriber);
	digests_subscribe(fs.dg, &ingest_sub);
#endif

	/* The source shown in /proc/mounts is the backing directory, as for
	 * other loopbacks (findmnt -S, umount BACKING); libfuse's option list
	 * needs its commas and backslashes escaped. */
	char fsname[PATH_MAX + 8];
	snprintf(fsname, sizeof(fsname), "fsname=%s", o->backing_path);
	if (fuse_opt_add_opt_escaped(&mount_opts, fsname) ||
	    fuse_opt_add_opt(&mount_opts, "subtype=casfs,default_permissions") ||
	    (o->allow_other && fuse_opt_add_opt(&mount_opts, "allow_other")) ||
	    (o->read_only && fuse_opt_add_opt(&mount_opts, "ro")) ||
	    (o->mount_opts && *o->mount_opts && fuse_opt_add_opt(&mount_opts, o->mount_opts)) ||
	    fuse_opt_add_arg(&args, "casfs") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, mount_opts)) {
		send_ready("ERR out of memory\n");
		goto out;
	}
	fuse_set_log_func(fuse_log_capture);
	fs.se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!fs.se) {
		send_ready("ERR cannot create the FUSE session: %s\n", fuse_last_error);
		goto out;
	}
	if ((r = kcache_new(fs.se, &fs.kc)) < 0) {
		send_ready("ERR cannot start: %s\n", strerror(-r));
		goto out_session;
	}
	if (fuse_set_signal_handlers(fs.se) != 0) {
		send_ready("ERR cannot install signal handlers\n");
		goto out_session;
	}
	if (fuse_session_mount(fs.se, o->mountpoint) != 0) {
		send_ready("ERR cannot mount on %s: %s\n", o->mountpoint,
			   fuse_last_error[0] ? fuse_last_error : "mount failed");
		goto out_signals;
	}
	/* Past here a failure only costs speed: say so and go on. */
	/* passthrough needs CAP_SYS_ADMIN to register backing files */
	struct kio_options kio = { .killpriv_v2 = true, .passthrough = o->passthrough && fs.root_daemon };
	if ((r = kio_install(fs.se, &kio)) < 0)
		fprintf(stderr, "casfs: cannot read /dev/fuse itself (%s): every write(2) costs a "
			"security.capability request\n", strerror(-r));
	send_ready("OK\n");
	if (!o->foreground && o->log_path) {
		/* Detach from the caller's terminal: messages go to the log. */
		int lfd = open(o->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (lfd < 0)
			lfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (lfd >= 0) {
			dup2(lfd, STDOUT_FILENO);
			dup2(lfd, STDERR_FILENO);
			close(lfd);
		}
	}
#ifndef __SANITIZE_ADDRESS__ /* the sanitizer's own report is better */
	install_fatal_handlers();
#endif

	lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, o->threads ? o->threads : 16);
	fuse_loop_cfg_set_idle_threads(lc, 4);
	r = fuse_session_loop_mt(fs.se, lc);
	/* Unmounted, or stopped by SIGINT/SIGTERM/SIGHUP (libfuse returns the
	 * signal number): a clean exit. */
	ret = r == 0 || r == SIGINT || r == SIGTERM || r == SIGHUP ? 0 : 1;
	fuse_loop_cfg_destroy(lc);
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	kcache_free(fs.kc);
	fs.kc = NULL;
	fuse_session_destroy(fs.se);
out:
	fuse_opt_free_args(&args);
	free(mount_opts);
	digests_free(fs.dg); /* writes pending digests to the index */
	ingest_free(fs.ing); /* stores what is queued */
	fs.ing = NULL;
	casns_free(fs.ns);
	fs.ns = NULL;
	sessions_free(fs.ss);
	fs.ss = NULL;
	fs_spares_free(fs.spares); /* before the backing directory's fd goes */
	fs.spares = NULL;
	cache_absent_free(fs.absent);
	fs.absent = NULL;
	cache_index_close(fs.ix);
	ino_table_free(fs.tbl);
	sbfast_free(fs.sb); /* the private tree and its tmpfs go with the last fd */
	fs.sb = NULL;
	if (fs.proc_fd >= 0)
		close(fs.proc_fd);
	if (ready_fd_global >= 0)
		send_ready("ERR the daemon stopped before mounting\n");
	return ret;
}
