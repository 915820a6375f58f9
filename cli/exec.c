/* exec.c — `casfs exec`: runs a command under the action cache.
 *
 *   casfs exec [--root DIR] [--explain] [--cache-failures] [--relocate]
 *              [--env NAME]... -- CMD ARGS...
 *   casfs-exec CMD ARGS...        (a compiler launcher)
 *   casfs-sh -c 'recipe'          (make SHELL=casfs-sh: each recipe line)
 *
 * The client builds the action's key material (cache/action.h), asks the
 * daemon of the mount holding the working directory through .casfs/ctl
 * (fs/ctl.h) and either replays a recorded run (outputs restored by the
 * daemon, stdout/stderr/exit status here) or runs CMD while the daemon
 * traces its process tree, then reports how it ended.  It needs nothing
 * writable: the daemon writes the store.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "action.h"
#include "ccdeps.h"
#include "shline.h"
#include "cli.h"
#include "index.h"
#include "io.h"

extern char **environ;

#define STREAM_MAX (256u << 20) /* captured bytes per stream, at most */

static const char exec_usage[] =
	"usage: casfs exec [--root DIR] [--explain] [--cache-failures] [--relocate]\n"
	"                  [--env NAME]... -- CMD [ARGS...]\n"
	"\n"
	"Runs CMD under casfs's action cache.  When the same action (the same\n"
	"program, arguments, working directory and relevant environment, with every\n"
	"path under the root made relative) ran before and everything it could\n"
	"observe on the mount is as it was, its outputs are restored and its stdout,\n"
	"stderr and exit status replayed: CMD does not run.  Otherwise CMD runs while\n"
	"casfs records what it reads and writes.\n"
	"\n"
	"  --root DIR        paths are recorded relative to DIR (default: the Bazel\n"
	"                    sandbox execroot holding the working directory, else the\n"
	"                    mount point)\n"
	"  --explain         print the decision (and for a miss the first path that\n"
	"                    differs) and run nothing\n"
	"  --cache-failures  record runs with a non-zero exit status too\n"
	"  --relocate        reuse results whose outputs hold another root's path\n"
	"  --env NAME        NAME is relevant too (besides the default list; the\n"
	"                    variable CASFS_EXEC_ENV='A B C' replaces the default list)\n"
	"\n"
	"As a compiler launcher: casfs-exec CMD ARGS...; as make's shell:\n"
	"make SHELL=casfs-sh (a recipe line that is one plain command runs as that\n"
	"command; a line with shell syntax that runs a compiler runs uncached: see\n"
	"docs/ACTIONS.md).  CMD 'sh -c LINE' is keyed as such a line (the variables\n"
	"it expands, the programs it names).  CASFS_LOG=debug prints every decision\n"
	"on stderr.  Runs casfs cannot fully see run uncached, each reason counted\n"
	"in casfs stats: a live pipe on stdin, a descriptor above 2 CMD inherits\n"
	"(but /dev/null; close it with 3<&-), an input open for writing elsewhere\n"
	"(docs/ACTIONS.md lists them all).\n"
	"Exit status: CMD's (127: not found, 126: not executable; 2: usage).\n";

/* ---- a growing buffer of fields --------------------------------------------- */

struct fields {
	uint8_t *b;
	size_t len, cap;
	bool oom;
};

static void field_add(struct fields *f, uint32_t tag, const void *data, size_t len)
{
	if (f->len + 8 + len > f->cap) {
		size_t cap = f->cap ? f->cap : 4096;
		while (cap < f->len + 8 + len)
			cap *= 2;
		uint8_t *b = realloc(f->b, cap);
		if (!b) {
			f->oom = true;
			return;
		}
		f->b = b;
		f->cap = cap;
	}
	uint32_t h[2] = { tag, (uint32_t)len };
	memcpy(f->b + f->len, h, 8);
	if (len)
		memcpy(f->b + f->len + 8, data, len);
	f->len += 8 + len;
}

static void field_str(struct fields *f, uint32_t tag, const char *s)
{
	field_add(f, tag, s, strlen(s));
}

/* The next field of buf from *pos with tag (any tag when tag is 0): its
 * value, its length in *ret_len, *pos moved past it; NULL at the end (or
 * at a field that runs past it). */
static const uint8_t *field_next(const uint8_t *buf, size_t len, size_t *pos, uint32_t tag, size_t *ret_len)
{
	while (len - *pos >= 8) {
		uint32_t h[2];
		memcpy(h, buf + *pos, 8);
		if (h[1] > len - *pos - 8)
			return NULL;
		const uint8_t *v = buf + *pos + 8;
		*pos += 8 + h[1];
		if (!tag || h[0] == tag) {
			*ret_len = h[1];
			return v;
		}
	}
	return NULL;
}

/* Finds the first field with tag in buf; NULL if none. */
static const uint8_t *field_find(const uint8_t *buf, size_t len, uint32_t tag, size_t *ret_len)
{
	size_t pos = 0;
	return field_next(buf, len, &pos, tag, ret_len);
}

/* ---- talking to the daemon --------------------------------------------------- */

struct ctl {
	int fd;
	struct casfs_ctl_call *call;
	uint8_t *resp;
	size_t resp_len;
};

/* Sends the fields (APPEND chunks, the last chunk with op itself) and
 * op; takes the response from the call when it fits there, else reads it.
 * Returns the call's result (0 or -errno); the status and value are in
 * c->call.  A request that fits in a chunk is one ioctl, and so is its
 * response. */
static int ctl_call(struct ctl *c, uint32_t op, const struct fields *f)
{
	size_t sent = 0, flen = f ? f->len : 0;
	c->resp_len = 0;
	for (;;) {
		size_t n = flen - sent > CASFS_CTL_CHUNK ? CASFS_CTL_CHUNK : flen - sent;
		bool last = sent + n == flen;
		memset(c->call, 0, offsetof(struct casfs_ctl_call, data));
		c->call->proto = CASFS_EXEC_PROTO;
		c->call->op = last ? op : CASFS_OP_APPEND;
		c->call->len = (uint32_t)n;
		if (n)
			memcpy(c->call->data, f->b + sent, n);
		sent += n;
		if (ioctl(c->fd, CASFS_IOC_CALL, c->call) < 0)
			return -errno;
		if (last)
			break;
		if (c->call->result < 0)
			return c->call->result;
	}
	uint32_t rlen = c->call->len;
	if (rlen) {
		uint8_t *b = realloc(c->resp, rlen);
		if (!b)
			return -ENOMEM;
		c->resp = b;
		if (rlen <= CASFS_CTL_CHUNK) {
			memcpy(b, c->call->data, rlen);
		} else {
			ssize_t got = cache_io_read(c->fd, b, rlen, 0);
			if (got < 0)
				return (int)got;
			if (got != (ssize_t)rlen)
				return -EIO;
		}
		c->resp_len = rlen;
	}
	return c->call->result;
}

static const char *resp_text(struct ctl *c, uint32_t tag, char *buf, size_t size)
{
	size_t l;
	const uint8_t *v = field_find(c->resp, c->resp_len, tag, &l);
	if (!v)
		return NULL;
	if (l >= size)
		l = size - 1;
	memcpy(buf, v, l);
	buf[l] = '\0';
	return buf;
}

/* ---- the action ------------------------------------------------------------ */

struct opts {
	const char *shell_line;  /* casfs-sh -c LINE run by the shell */
	bool shell_unknown;      /* a shell with options casfs does not know */
	const char *root;
	bool explain, cache_failures, relocate;
	const char **env_extra;
	size_t nenv_extra;
	bool debug;
};

static void debug(const struct opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void debug(const struct opts *o, const char *fmt, ...)
{
	if (!o->debug)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("casfs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Finds prog on PATH (or takes it as a path).  0, -ENOENT, -EACCES. */
/* Where the command named without a '/' was found on PATH, as found (not
 * resolved): what it runs as, so that a script reached through a symlink
 * gets that name as $0, as from a shell.  find_program: its realpath into
 * out (what the key and the digests take), that path into run if not NULL. */
static char run_path[PATH_MAX];

static int find_program(const char *prog, char *out, size_t size, char run[PATH_MAX])
{
	if (strchr(prog, '/')) {
		if (access(prog, F_OK) < 0)
			return -ENOENT;
		if (access(prog, X_OK) < 0)
			return -EACCES;
		return realpath(prog, out) ? 0 : -errno;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	bool denied = false;
	/* an empty element (leading, trailing, or ::) is the working directory,
	 * as for sh and execvp */
	for (const char *p = path;;) {
		const char *end = strchrnul(p, ':');
		const char *dir = end == p ? "." : p;
		int dl = end == p ? 1 : (int)(end - p);
		char cand[PATH_MAX];
		int l = snprintf(cand, sizeof(cand), "%.*s/%s", dl, dir, prog);
		struct stat st;
		if (l > 0 && (size_t)l < sizeof(cand) && stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				if (!realpath(cand, out))
					return -errno;
				if (run)
					snprintf(run, PATH_MAX, "%s", cand);
				return 0;
			}
			denied = true;
		}
		if (!*end)
			break;
		p = end + 1;
	}
	return denied ? -EACCES : -ENOENT;
}

/* The caller's stat of a file, as LOOKUP carries it. */
static int exec_stat_of(const char *path, struct casfs_exec_stat *ret)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	*ret = (struct casfs_exec_stat){ st.st_dev, st.st_ino, (uint64_t)st.st_size, cache_timespec_ns(&st.st_mtim),
					 cache_timespec_ns(&st.st_ctim) };
	return 0;
}

static int digest_path(const char *path, hasher_digest *ret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = hasher_digest_fd(fd, ret, NULL);
	close(fd);
	return r;
}

/* What the compiler driver cc runs as NAME (`cc [-B...] -print-prog-name=NAME`,
 * with the command's own -B options bopts), resolved to a real path; a name
 * it does not find stays a bare name. */
static void driver_prog(const char *cc, char *const *bopts, size_t nb, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s", name);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	char arg[64];
	snprintf(arg, sizeof(arg), "-print-prog-name=%s", name);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		int dn = open("/dev/null", O_RDWR);
		if (dn >= 0) {
			dup2(dn, 0);
			dup2(dn, 2);
		}
		char *av[nb + 3];
		av[0] = (char *)cc;
		for (size_t i = 0; i < nb; i++)
			av[i + 1] = bopts[i];
		av[nb + 1] = arg;
		av[nb + 2] = NULL;
		execv(cc, av);
		_exit(127);
	}
	close(p[1]);
	char got_buf[PATH_MAX];
	ssize_t n = cache_io_read(p[0], got_buf, sizeof(got_buf) - 1, CACHE_IO_CUR);
	size_t got = n > 0 ? (size_t)n : 0;
	close(p[0]);
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return;
	while (got && isspace((unsigned char)got_buf[got - 1]))
		got--;
	got_buf[got] = '\0';
	char real[PATH_MAX];
	if (got && (got_buf[0] == '/' ? realpath(got_buf, real) != NULL : find_program(got_buf, real, sizeof(real), NULL) == 0))
		snprintf(out, size, "%s", real);
}

/* The mount as this process sees it: the topmost directory above cwd on
 * cwd's device.  (A bind mount of a subdirectory shows as its own top; the
 * daemon then answers -EXDEV and WHERE tells.) */
static int mount_of(const char *cwd, char *mnt, size_t size)
{
	struct stat st;
	if (strlen(cwd) >= size || stat(cwd, &st) < 0)
		return -ENAMETOOLONG;
	dev_t dev = st.st_dev;
	snprintf(mnt, size, "%s", cwd);
	for (;;) {
		char *slash = strrchr(mnt, '/');
		if (!slash || slash == mnt)
			return mnt[1] ? 0 : -EXDEV; /* the mount is never / */
		*slash = '\0';
		if (stat(mnt, &st) < 0 || st.st_dev != dev) {
			*slash = '/';
			return 0;
		}
	}
}

/* The mount from the daemon's WHERE: cwd less the path it names. */
static int mount_where(struct ctl *c, const char *cwd, char *mnt, size_t size, const char **why)
{
	char where[PATH_MAX];
	int r = ctl_call(c, CASFS_OP_WHERE, NULL);
	if (r == -ENOTTY || r == -EPROTO || r == -EINVAL) {
		*why = "the mount's daemon runs another casfs version (remount it to cache actions)";
		return -EPROTO;
	}
	if (r < 0 || !resp_text(c, CASFS_T_ROOT, where, sizeof(where))) {
		*why = "the mount's daemon did not answer";
		return r < 0 ? r : -EIO;
	}
	size_t cl = strlen(cwd), wl = strlen(where);
	if (wl == 0)
		snprintf(mnt, size, "%s", cwd);
	else if (cl > wl && cwd[cl - wl - 1] == '/' && strcmp(cwd + cl - wl, where) == 0)
		snprintf(mnt, size, "%.*s", (int)(cl - wl - 1), cwd);
	else {
		*why = "the working directory's path does not match the mount's";
		return -EXDEV;
	}
	return 0;
}

/* The root: --root, else a Bazel sandbox execroot holding cwd
 * (.../sandbox/<strategy>/<N>/execroot/<workspace>), else the mount. */
static int find_root(const struct opts *o, const char *cwd, const char *mnt, char *out, size_t size)
{
	if (o->root) {
		char r[PATH_MAX];
		struct stat st;
		if (!realpath(o->root, r) || stat(r, &st) < 0 || !S_ISDIR(st.st_mode)) {
			cli_error("--root %s: not a directory", o->root);
			return -EINVAL;
		}
		size_t ml = strlen(mnt);
		if (strncmp(r, mnt, ml) != 0 || (r[ml] != '/' && r[ml] != '\0')) {
			cli_error("--root %s is not on the casfs mount %s", o->root, mnt);
			return -EINVAL;
		}
		snprintf(out, size, "%s", r);
		return 0;
	}
	/* the last ".../<N>/execroot/<workspace>" (N: digits) in cwd below the
	 * mount: Bazel's <base>/sandbox/<strategy>/<N>/execroot/<ws> */
	size_t ml = strlen(mnt);
	const char *best = NULL;
	for (const char *s = strstr(cwd + ml, "/execroot/"); s; s = strstr(s + 1, "/execroot/")) {
		const char *n = s;
		while (n > cwd + ml && n[-1] != '/')
			n--;
		bool digits = n < s;
		for (const char *d = n; d < s; d++)
			digits &= *d >= '0' && *d <= '9';
		const char *ws = s + strlen("/execroot/");
		const char *ws_end = strchrnul(ws, '/');
		if (digits && n > cwd + ml && ws_end > ws)
			best = ws_end;
	}
	if (best && (size_t)(best - cwd) < size) {
		memcpy(out, cwd, (size_t)(best - cwd));
		out[best - cwd] = '\0';
		return 0;
	}
	snprintf(out, size, "%s", mnt);
	return 0;
}

static bool env_relevant(const struct opts *o, const char *name, char **list_buf, const char ***list)
{
	for (size_t i = 0; i < o->nenv_extra; i++) /* "*": a line that may read any */
		if (strcmp(o->env_extra[i], name) == 0 || strcmp(o->env_extra[i], "*") == 0)
			return true;
	/* bash imports exported functions: a line's command may be one */
	if (o->shell_line && !strncmp(name, "BASH_FUNC_", 10))
		return true;
	if (!*list) {
		const char *over = getenv("CASFS_EXEC_ENV");
		if (over) {
			size_t n = 1;
			*list_buf = strdup(over);
			for (const char *p = over; *p; p++)
				n += *p == ' ' || *p == ',' || *p == ':';
			const char **l = calloc(n + 1, sizeof(*l));
			size_t k = 0;
			for (char *t = strtok(*list_buf, " ,:"); t && k < n; t = strtok(NULL, " ,:"))
				l[k++] = t;
			*list = l;
		} else {
			*list = (const char **)action_env_default;
		}
	}
	return action_env_listed(*list, name);
}

struct capture {
	uint8_t *b;
	size_t len, cap;
	bool over;
};

static void capture_add(struct capture *c, const void *data, size_t n)
{
	if (c->over || c->len + n > STREAM_MAX) {
		c->over = true;
		return;
	}
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 65536;
		while (cap < c->len + n)
			cap *= 2;
		uint8_t *b = realloc(c->b, cap);
		if (!b) {
			c->over = true;
			return;
		}
		c->b = b;
		c->cap = cap;
	}
	memcpy(c->b + c->len, data, n);
	c->len += n;
}

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* Runs argv (prog resolved) with stdout/stderr captured and passed on;
 * waits for it and, as child subreaper, for what it left behind (up to a
 * moment).  Returns the wait status; *outlived when processes remain. */

/* execv, and for a file the kernel cannot execute (ENOEXEC: a script
 * without a #! line) what execvp and a shell do: /bin/sh runs it.  Returns
 * only on failure, errno set. */
static void exec_prog(const char *prog, char **argv)
{
	/* a path as the caller gave it: a script's interpreter gets that
	 * name ($0), as it does from a shell or execvp */
	if (strchr(argv[0], '/'))
		prog = argv[0];
	else if (run_path[0])
		prog = run_path;
	execv(prog, argv);
	if (errno != ENOEXEC)
		return;
	size_t n = 0;
	while (argv[n])
		n++;
	char **sh = calloc(n + 2, sizeof(*sh));
	if (!sh) {
		errno = ENOEXEC;
		return;
	}
	sh[0] = (char *)"/bin/sh";
	sh[1] = (char *)prog;
	for (size_t i = 1; i < n; i++)
		sh[i + 1] = argv[i];
	execv("/bin/sh", sh);
	free(sh);
	errno = ENOEXEC;
}

enum streams { STREAMS_APART, STREAMS_ONE, STREAMS_CLASH };

/* How stdout and stderr relate.  One open file (>log 2>&1, one terminal),
 * or one file opened twice for appending (>>log 2>>log): what the command
 * writes to them is one stream, in its order.  One file opened twice
 * otherwise (>log 2>log): each overwrites the other at its own offset, which
 * no replay reproduces (CLASH).  Else apart. */
static enum streams streams_of(void)
{
	struct stat a, b;
	if (fstat(1, &a) < 0 || fstat(2, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return STREAMS_APART;
	pid_t self = getpid();
	if (syscall(SYS_kcmp, self, self, KCMP_FILE, 1, 2) == 0 || !S_ISREG(a.st_mode))
		return STREAMS_ONE; /* (a terminal or pipe opened twice reads as one) */
	int f1 = fcntl(1, F_GETFL), f2 = fcntl(2, F_GETFL);
	return f1 >= 0 && f2 >= 0 && (f1 & O_APPEND) && (f2 & O_APPEND) ? STREAMS_ONE : STREAMS_CLASH;
}

/* One round over the pipes pf[0] (the command's stdout) and pf[1] (its
 * stderr) that poll found ready: what each holds goes on to our stdout or
 * stderr, and into out or err unless NULL; one at its end is closed (its
 * fd set to -1).  The number closed. */
static int pump(struct pollfd *pf, struct capture *out, struct capture *err)
{
	char buf[65536];
	int closed = 0;
	for (int i = 0; i < 2; i++) {
		if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = read(pf[i].fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(pf[i].fd);
			pf[i].fd = -1;
			closed++;
			continue;
		}
		cache_io_write(i ? 2 : 1, buf, (size_t)n, CACHE_IO_CUR);
		if (i ? err : out)
			capture_add(i ? err : out, buf, (size_t)n);
	}
	return closed;
}

/* Copies the pipes a (to stdout) and b (to stderr), either -1, until
 * their writers are gone, in a process of its own that holds nothing else
 * (so nothing waits on it). */
static void forward_rest(int a, int b)
{
	pid_t f = fork();
	if (f != 0)
		return;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	/* every other descriptor closed: the ranges around a and b */
	int lo = a < b ? a : b, hi = a < b ? b : a;
	unsigned from = 3;
	int keep[2] = { lo, hi };
	for (int i = 0; i < 2; i++) {
		if (keep[i] < (int)from)
			continue;
		if ((unsigned)keep[i] > from)
			syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0u, 0);
	struct pollfd pf[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		pump(pf, NULL, NULL);
	}
	_exit(0);
}

/* Runs the command; with capture its stdout and stderr (merged: one
 * stream, into out) pass through pipes into out and err. */
static int run(const char *prog, char **argv, struct capture *out, struct capture *err, bool capture,
	       bool merged, bool null_stdin, bool *outlived)
{
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 };
	*outlived = false;
	if (capture && (pipe2(po, O_CLOEXEC) < 0 || (!merged && pipe2(pe, O_CLOEXEC) < 0)))
		capture = false;
	pid_t pid = fork();
	if (pid < 0) {
		cli_error("cannot start %s: %s", argv[0], strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (capture) {
			dup2(po[1], 1);
			dup2(merged ? po[1] : pe[1], 2);
		}
		if (null_stdin) {
			int dn = open("/dev/null", O_RDONLY);
			if (dn >= 0)
				dup2(dn, 0);
		}
		exec_prog(prog, argv);
		int e = errno;
		fprintf(stderr, "casfs: cannot run %s: %s\n", argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	child_pid = pid;
	struct sigaction sa = { .sa_handler = forward_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	if (capture) {
		close(po[1]);
		if (!merged)
			close(pe[1]);
		/* the command's end, as a descriptor poll can wait on */
		int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		struct pollfd pf[3] = { { .fd = po[0], .events = POLLIN },
					{ .fd = pe[0], .events = POLLIN },
					{ .fd = pidfd, .events = POLLIN } };
		int open_n = merged ? 1 : 2;
		int64_t ended_ms = -1; /* when the command ended, if it did */
		while (open_n) {
			int timeout = -1;
			if (ended_ms >= 0) {
				/* a process it started holds the pipes: what the
				 * command itself wrote is read by now */
				struct timespec now;
				clock_gettime(CLOCK_MONOTONIC, &now);
				int64_t left = ended_ms + 100 - (int64_t)now.tv_sec * 1000 - now.tv_nsec / 1000000;
				if (left <= 0)
					break;
				timeout = (int)left;
			}
			int pr = poll(pf, 3, timeout);
			if (pr < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			if (pf[2].fd >= 0 && (pf[2].revents & POLLIN)) {
				struct timespec now;
				clock_gettime(CLOCK_MONOTONIC, &now);
				ended_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
				pf[2].fd = -1;
			}
			open_n -= pump(pf, out, err);
		}
		if (pidfd >= 0)
			close(pidfd);
		if (open_n) {
			/* what outlives the command goes on to the caller's
			 * stdout and stderr, from a process of its own, as it
			 * would have without casfs; the command is done */
			*outlived = true;
			forward_rest(pf[0].fd, pf[1].fd);
			if (pf[0].fd >= 0)
				close(pf[0].fd);
			if (pf[1].fd >= 0)
				close(pf[1].fd);
		}
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	child_pid = 0;
	/* orphans of the run were reparented to us: give them a moment */
	for (int i = 0; i < 50; i++) {
		pid_t w = waitpid(-1, NULL, WNOHANG);
		if (w < 0 && errno == ECHILD)
			return status;
		if (w == 0)
			usleep(2000);
	}
	*outlived = true;
	return status;
}

/* The daemon's per-user cache, for ccdeps. */
static int cache_get(void *arg, const char *key, char *val, size_t size)
{
	struct ctl *c = arg;
	struct fields f = { 0 };
	field_str(&f, CASFS_T_KVKEY, key);
	int r = f.oom ? -ENOMEM : ctl_call(c, CASFS_OP_KV_GET, &f);
	free(f.b);
	return r == 0 && resp_text(c, CASFS_T_KVVAL, val, size) ? 0 : -ENOENT;
}

static void cache_put(void *arg, const char *key, const char *val)
{
	struct ctl *c = arg;
	struct fields f = { 0 };
	field_str(&f, CASFS_T_KVKEY, key);
	field_str(&f, CASFS_T_KVVAL, val);
	if (!f.oom)
		ctl_call(c, CASFS_OP_KV_PUT, &f);
	free(f.b);
}

static int cache_scan(void *arg, char *const *rels, size_t n, char **res, size_t *lens)
{
	struct ctl *c = arg;
	struct fields f = { 0 };
	for (size_t i = 0; i < n; i++)
		if (rels[i])
			field_str(&f, CASFS_T_PATH, rels[i]);
	int r = f.oom ? -ENOMEM : ctl_call(c, CASFS_OP_HISCAN, &f);
	free(f.b);
	if (r < 0)
		return r; /* (a daemon from before HISCAN: -EINVAL) */
	size_t pos = 0, l;
	const uint8_t *v;
	for (size_t i = 0; i < n; i++)
		if (rels[i] && (v = field_next(c->resp, c->resp_len, &pos, CASFS_T_HISCAN, &l)) && l &&
		    (res[i] = malloc(l))) {
			memcpy(res[i], v, l);
			lens[i] = l;
		}
	return 0;
}

static void dep_add(void *arg, int kind, const char *path)
{
	field_str(arg,
		  kind == CCDEPS_ABSENT ? CASFS_T_ABSENT_ABS :
		  kind == CCDEPS_LINK	? CASFS_T_LINK_ABS :
					  CASFS_T_DEP_ABS,
		  path);
}

/* True when fd, a pipe or socket, is a pipe whose writers are all gone and
 * that holds nothing (what make -j gives the jobs that may not read its
 * stdin): it reads as empty forever. */
static bool pipe_at_end(int fd)
{
	char proc[32], link[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t l = readlink(proc, link, sizeof(link) - 1);
	int avail = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return l > 0 && strncmp(link, "pipe:", 5) == 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) &&
	       ioctl(fd, FIONREAD, &avail) == 0 && avail == 0;
}

/* What the command's stdin can give it. */
enum stdin_kind {
	STDIN_NONE,  /* nothing (closed, /dev/null, a pipe at its end) */
	STDIN_FILE,  /* a regular file: its digest is in the key */
	STDIN_TTY,   /* a terminal: the command gets /dev/null instead */
	STDIN_LIVE,  /* a pipe, socket or device that may still give data */
};

static enum stdin_kind classify_stdin(hasher_digest *ret)
{
	struct stat st;
	if (fstat(0, &st) < 0)
		return STDIN_NONE;
	if (S_ISREG(st.st_mode)) {
		/* what the command would read: from the current offset on */
		off_t at = lseek(0, 0, SEEK_CUR);
		int fd = open("/proc/self/fd/0", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || at < 0 || lseek(fd, at, SEEK_SET) < 0) {
			if (fd >= 0)
				close(fd);
			return STDIN_LIVE;
		}
		hasher_stream *h = hasher_stream_new();
		char buf[65536];
		ssize_t n;
		while (h && (n = cache_io_read(fd, buf, sizeof(buf), CACHE_IO_CUR)) > 0)
			hasher_stream_update(h, buf, (size_t)n);
		close(fd);
		if (!h)
			return STDIN_LIVE;
		hasher_stream_final(h, ret);
		hasher_stream_free(h);
		return STDIN_FILE;
	}
	if (S_ISCHR(st.st_mode)) {
		if (major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)
			return STDIN_NONE; /* /dev/null */
		return isatty(0) ? STDIN_TTY : STDIN_LIVE;
	}
	if ((S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) && pipe_at_end(0))
		return STDIN_NONE;
	return STDIN_LIVE;
}

/* The first descriptor above 2 the command would inherit (not
 * close-on-exec) that it could read or write unseen, described into buf
 * ("3 (pipe:[123])"), or false.  Reads through such a descriptor are not
 * inputs casfs learns (the kernel serves them from its cache, or they come
 * from outside the mount), and writes through it outside the mount are
 * effects a hit would not have.  Harmless: /dev/null, a pipe at its end,
 * an O_PATH descriptor, and a regular file on the mount open for writing
 * only (the daemon sees every write through it and refuses to record the
 * run: inherited_write).  A compiler touches only the descriptors its
 * arguments name (/dev/fd/N). */
static bool inherited_fd(char **argv, bool is_cc, const char *mnt, char *buf, size_t size)
{
	bool names_fd = false;
	for (size_t i = 1; is_cc && argv[i]; i++)
		names_fd |= strstr(argv[i], "/dev/fd/") || strstr(argv[i], "/proc/self/fd/") ||
			    strstr(argv[i], "/dev/std");
	if (is_cc && !names_fd)
		return false;
	struct stat mst;
	bool have_mnt = stat(mnt, &mst) == 0;
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(buf, size, "(/proc/self/fd cannot be read: %s)", strerror(errno));
		return true;
	}
	char ents[4096];
	long n;
	bool found = false;
	while (!found && (n = syscall(SYS_getdents64, dfd, ents, sizeof(ents))) > 0) {
		for (long at = 0; !found && at < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *e = (void *)(ents + at);
			at += e->reclen;
			char *end;
			long fd = strtol(e->name, &end, 10);
			if (*end || end == e->name || fd < 3 || fd == dfd)
				continue;
			int fdf = fcntl((int)fd, F_GETFD), fl = fcntl((int)fd, F_GETFL);
			struct stat st;
			if (fdf < 0 || (fdf & FD_CLOEXEC) || fl < 0 || (fl & O_PATH) || fstat((int)fd, &st) < 0)
				continue;
			int acc = fl & O_ACCMODE;
			if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)
				continue;
			if (acc == O_RDONLY && S_ISFIFO(st.st_mode) && pipe_at_end((int)fd))
				continue;
			if (acc == O_WRONLY && S_ISREG(st.st_mode) && have_mnt && st.st_dev == mst.st_dev)
				continue;
			char proc[48], link[PATH_MAX];
			snprintf(proc, sizeof(proc), "/proc/self/fd/%ld", fd);
			ssize_t l = readlink(proc, link, sizeof(link) - 1);
			link[l > 0 ? l : 0] = '\0';
			snprintf(buf, size, "%ld (%s%s)", fd, link, acc == O_WRONLY ? ", for writing" : "");
			found = true;
		}
	}
	close(dfd);
	return found;
}

/* Whether p, a file a compile writes (relative to cwd), lands outside the
 * mount: where its directory really is, and where the name is a symlink
 * (dangling or not), where the write it follows leads. */
static bool lands_outside(const char *p, const char *cwd, const char *mnt)
{
	char abs[PATH_MAX], dir[PATH_MAX], t[PATH_MAX], next[PATH_MAX];
	if (snprintf(abs, sizeof(abs), "%s%s%s", p[0] == '/' ? "" : cwd, p[0] == '/' ? "" : "/", p) >=
	    (int)sizeof(abs))
		return true;
	struct stat st;
	for (int hops = 0; lstat(abs, &st) == 0 && S_ISLNK(st.st_mode); hops++) {
		ssize_t l = hops < 40 ? readlink(abs, t, sizeof(t) - 1) : -1;
		if (l < 0)
			return true; /* a loop: where it leads is not known */
		t[l] = '\0';
		char *slash = strrchr(abs, '/');
		int n = t[0] == '/' ? snprintf(next, sizeof(next), "%s", t)
				    : snprintf(next, sizeof(next), "%.*s/%s", (int)(slash - abs), abs, t);
		if (n < 0 || n >= (int)sizeof(next))
			return true;
		memcpy(abs, next, (size_t)n + 1);
	}
	char *slash = strrchr(abs, '/');
	*slash = '\0';
	if (!realpath(abs[0] ? abs : "/", dir))
		return false; /* the compile fails: nothing is written */
	size_t ml = strlen(mnt);
	return strncmp(dir, mnt, ml) != 0 || (dir[ml] != '/' && dir[ml] != '\0');
}

/* The value of option name in a list of the linker's (-Wl,a,b / -Xlinker a)
 * or the preprocessor's (-Wp,a,b) arguments at *i: "NAME=V" or "NAME V"
 * (the next argument), or NULL. */
static const char *list_value(char **v, size_t n, size_t *i, const char *name)
{
	size_t l = strlen(name);
	if (!strncmp(v[*i], name, l) && v[*i][l] == '=')
		return v[*i] + l + 1;
	if (!strcmp(v[*i], name) && *i + 1 < n)
		return v[++*i];
	return NULL;
}

/* The first output a compile writes outside the mount (-o, -MF, -aux-info,
 * -dumpdir; the linker's -Map, --dependency-file, -o through -Wl, or
 * -Xlinker; the preprocessor's -MD, -MMD, -MF through -Wp,), or NULL: such
 * a write cannot be seen, so the compile is not cached. */
static const char *cc_output_outside(char **argv, const char *cwd, const char *mnt, char *buf, size_t size)
{
	/* the -Wl,/-Xlinker and -Wp, lists, split at commas into one buffer:
	 * no more elements than bytes in argv */
	size_t total = 1, n = 0, nld = 0, npp = 0;
	for (int i = 1; argv[i]; i++)
		total += strlen(argv[i]) + 1;
	char *copy = malloc(total), **ld = malloc(total * sizeof(*ld)), **pp = malloc(total * sizeof(*pp));
	const char *found = NULL;
	if (!copy || !ld || !pp)
		goto oom;
	for (int i = 1; argv[i]; i++) {
		const char *a = argv[i];
		bool wl = !strncmp(a, "-Wl,", 4), wp = !strncmp(a, "-Wp,", 4);
		if (wl || wp || (!strcmp(a, "-Xlinker") && argv[i + 1])) {
			const char *list = wl || wp ? a + 4 : argv[++i];
			size_t len = strlen(list) + 1;
			char *e = copy + n;
			memcpy(e, list, len);
			n += len;
			for (;;) {
				if (wp)
					pp[npp++] = e;
				else
					ld[nld++] = e;
				char *comma = wl || wp ? strchr(e, ',') : NULL;
				if (!comma)
					break;
				*comma = '\0';
				e = comma + 1;
			}
			continue;
		}
		const char *p = NULL;
		bool dumpdir = !strcmp(a, "-dumpdir");
		if ((!strcmp(a, "-o") || !strcmp(a, "-MF") || !strcmp(a, "-aux-info") || dumpdir) && argv[i + 1])
			p = argv[++i];
		else if (!strncmp(a, "-o", 2) && a[2])
			p = a + 2;
		else if (!strncmp(a, "-MF", 3) && a[3])
			p = a + 3;
		/* -dumpdir names a directory (or a prefix): what goes there */
		char there[PATH_MAX];
		if (p && dumpdir && snprintf(there, sizeof(there), "%sx", p) >= (int)sizeof(there))
			p = NULL;
		if (p && lands_outside(dumpdir ? there : p, cwd, mnt)) {
			found = p;
			goto out;
		}
	}
	for (size_t k = 0; k < nld; k++) {
		const char *p = list_value(ld, nld, &k, "-Map");
		if (!p)
			p = list_value(ld, nld, &k, "--Map");
		if (!p)
			p = list_value(ld, nld, &k, "--dependency-file");
		if (!p && !strcmp(ld[k], "-o") && k + 1 < nld)
			p = ld[++k];
		if (p && lands_outside(p, cwd, mnt)) {
			found = p;
			goto out;
		}
	}
	for (size_t k = 0; k < npp; k++) {
		const char *p = NULL;
		if ((!strcmp(pp[k], "-MD") || !strcmp(pp[k], "-MMD") || !strcmp(pp[k], "-MF")) && k + 1 < npp)
			p = pp[++k];
		else if (!strncmp(pp[k], "-MF", 3) && pp[k][3])
			p = pp[k] + 3;
		if (p && lands_outside(p, cwd, mnt)) {
			found = p;
			goto out;
		}
	}
out:
	if (found) {
		snprintf(buf, size, "%s", found);
		found = buf;
	}
	free(ld);
	free(pp);
	free(copy);
	return found;
oom:
	snprintf(buf, size, "(out of memory)");
	found = buf;
	free(ld);
	free(pp);
	free(copy);
	return found;
}

/* The interpreter a script's "#!" line names, and its one argument (""
 * when none): true when prog starts with "#!". */
static bool shebang_of(const char *prog, char *interp, size_t isize, char *arg, size_t asize)
{
	char line[PATH_MAX + 64];
	int fd = open(prog, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = cache_io_read(fd, line, sizeof(line) - 1, 0);
	close(fd);
	if (n < 2 || line[0] != '#' || line[1] != '!')
		return false;
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	char *p = line + 2;
	p += strspn(p, " \t");
	size_t il = strcspn(p, " \t");
	if (!il || il >= isize)
		return false;
	memcpy(interp, p, il);
	interp[il] = '\0';
	p += il;
	p += strspn(p, " \t");
	size_t al = strcspn(p, " \t");
	if (al >= asize)
		al = 0;
	memcpy(arg, p, al);
	arg[al] = '\0';
	return true;
}

/* A file of options or data a compiler driver reads that is not on the
 * mount (so not traced): @FILE (a response file), -specs=FILE, the
 * profile of -fprofile-use=PATH and -fauto-profile=PATH.  Its path in buf,
 * or NULL. */
static const char *cc_options_outside(char **argv, const char *cwd, const char *mnt, char *buf, size_t size)
{
	size_t ml = strlen(mnt);
	/* a compile that reads profiles reads them from -fprofile-dir=DIR
	 * when given (-fprofile-use, -fprofile-use=PATH relative to it,
	 * -fbranch-probabilities) */
	bool reads_profile = false;
	for (size_t i = 1; argv[i]; i++)
		reads_profile |= !strncmp(argv[i], "-fprofile-use", 13) || !strcmp(argv[i], "-fbranch-probabilities");
	for (size_t i = 1; argv[i]; i++) {
		const char *f = NULL;
		if (argv[i][0] == '@')
			f = argv[i] + 1;
		else if (!strncmp(argv[i], "-specs=", 7) || !strncmp(argv[i], "--specs=", 8) ||
			 !strncmp(argv[i], "-fprofile-use=", 14) || !strncmp(argv[i], "-fauto-profile=", 15) ||
			 (reads_profile && !strncmp(argv[i], "-fprofile-dir=", 14)))
			f = strchr(argv[i], '=') + 1;
		else if ((!strcmp(argv[i], "-specs") || !strcmp(argv[i], "--specs")) && argv[i + 1])
			f = argv[++i];
		if (!f || !*f)
			continue;
		char abs[PATH_MAX], real[PATH_MAX];
		/* a specs name that is no path: searched in the compiler's own
		 * directories, outside the mount */
		if (snprintf(abs, sizeof(abs), "%s%s%s", f[0] == '/' ? "" : cwd, f[0] == '/' ? "" : "/", f) >=
			    (int)sizeof(abs) ||
		    !realpath(abs, real) || strncmp(real, mnt, ml) || (real[ml] != '/' && real[ml] != '\0')) {
			snprintf(buf, size, "%s", f);
			return buf;
		}
	}
	return NULL;
}

/* A compile's arguments with each response file on the mount (@FILE)
 * replaced by the arguments it holds, as gcc reads them (blanks separate;
 * quotes and backslashes as in libiberty's buildargv), nested ones too;
 * one outside the mount, or that cannot be read, stays as it is.  What the
 * files hold is in the key (their reads are traced); what they name must be
 * checked as the command line is.  A NULL-terminated malloc'd vector of
 * malloc'd strings, or NULL on ENOMEM. */
struct argvec {
	char **v;
	size_t n, cap;
	bool oom;
};

static void argvec_push(struct argvec *a, char *s)
{
	if (!s || a->oom) {
		a->oom = true;
		free(s);
		return;
	}
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			a->oom = true;
			free(s);
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void cc_expand_into(struct argvec *a, char *const *argv, const char *cwd, const char *mnt, int depth)
{
	size_t ml = strlen(mnt);
	for (size_t i = 0; argv[i] && !a->oom; i++) {
		char abs[PATH_MAX], real[PATH_MAX];
		const char *f = argv[i][0] == '@' ? argv[i] + 1 : NULL;
		char *text = NULL;
		int fd = -1;
		struct stat st;
		if (f && *f && depth < 16 &&
		    snprintf(abs, sizeof(abs), "%s%s%s", f[0] == '/' ? "" : cwd, f[0] == '/' ? "" : "/", f) <
			    (int)sizeof(abs) &&
		    realpath(abs, real) && !strncmp(real, mnt, ml) && (real[ml] == '/' || real[ml] == '\0') &&
		    (fd = open(real, O_RDONLY | O_CLOEXEC)) >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_size < (1 << 24) && (text = malloc((size_t)st.st_size + 1)) &&
		    cache_io_read(fd, text, (size_t)st.st_size, 0) == st.st_size) {
			text[st.st_size] = '\0';
			struct argvec in = { 0 };
			char *word = malloc((size_t)st.st_size + 1);
			size_t wl = 0;
			bool sq = false, dq = false, bs = false, have = false;
			for (const char *c = text;; c++) {
				if (!*c || (!sq && !dq && !bs && isspace((unsigned char)*c))) {
					if (have && word) {
						word[wl] = '\0';
						argvec_push(&in, strdup(word));
					}
					wl = 0;
					have = false;
					if (!*c)
						break;
					continue;
				}
				have = true;
				if (bs)
					bs = false;
				else if (*c == '\\') {
					bs = true;
					continue;
				} else if (sq && *c == '\'') {
					sq = false;
					continue;
				} else if (dq && *c == '"') {
					dq = false;
					continue;
				} else if (!sq && !dq && *c == '\'') {
					sq = true;
					continue;
				} else if (!sq && !dq && *c == '"') {
					dq = true;
					continue;
				}
				if (word)
					word[wl++] = *c;
			}
			if (!word)
				in.oom = true;
			free(word);
			if (in.oom)
				a->oom = true;
			else if (in.v)
				cc_expand_into(a, in.v, cwd, mnt, depth + 1);
			for (size_t k = 0; k < in.n; k++)
				free(in.v[k]);
			free(in.v);
		} else {
			argvec_push(a, strdup(argv[i]));
		}
		free(text);
		if (fd >= 0)
			close(fd);
	}
}

static char **cc_expand(char *const *argv, const char *cwd, const char *mnt)
{
	struct argvec a = { 0 };
	cc_expand_into(&a, argv, cwd, mnt, 0);
	if (!a.oom && !a.v)
		argvec_push(&a, strdup(""));
	if (a.oom) {
		for (size_t k = 0; k < a.n; k++)
			free(a.v[k]);
		free(a.v);
		return NULL;
	}
	return a.v;
}

static void argv_free(char **v)
{
	for (size_t k = 0; v && v[k]; k++)
		free(v[k]);
	free(v);
}

/* The command cannot be cached: says why (counted by the daemon), then
 * runs it as it is.  Returns only when it cannot be run. */
static int run_uncached(struct ctl *c, const struct opts *o, const char *prog, char **argv, const char *reason,
			const char *why)
{
	struct fields f = { 0 };
	field_str(&f, CASFS_T_REASON, reason);
	if (!f.oom)
		ctl_call(c, CASFS_OP_NOTE, &f);
	free(f.b);
	if (o->explain) {
		printf("uncacheable: %s\n", why);
		return 0;
	}
	debug(o, "%s: not cacheable: %s", argv[0], why);
	close(c->fd);
	exec_prog(prog, argv);
	cli_error("cannot run %s: %s", argv[0], strerror(errno));
	return 126;
}

/* The environment variables in the key (env_relevant), as pointers into
 * environ: malloc'd, NULL on ENOMEM. */
static const char **key_env(const struct opts *o, size_t *ret_n)
{
	char *list_buf = NULL;
	const char **list = NULL;
	size_t nenv = 0, cap_env = 16;
	const char **env = malloc(cap_env * sizeof(*env));
	for (char **e = environ; env && *e; e++) {
		char name[256];
		const char *eq = strchr(*e, '=');
		if (!eq || (size_t)(eq - *e) >= sizeof(name))
			continue;
		memcpy(name, *e, (size_t)(eq - *e));
		name[eq - *e] = '\0';
		if (!env_relevant(o, name, &list_buf, &list))
			continue;
		if (nenv == cap_env) {
			const char **ne = realloc(env, (cap_env *= 2) * sizeof(*env));
			if (!ne) {
				free(env);
				env = NULL;
				break;
			}
			env = ne;
		}
		env[nenv++] = *e;
	}
	if (list != (const char **)action_env_default)
		free(list);
	free(list_buf);
	*ret_n = nenv;
	return env;
}

/* What LOOKUP needs beside the key material. */
struct lookup_in {
	const char *prog, *cwd, *root, *mnt;
	uint32_t flags;
	int cc;                     /* -1, or 1 for a C++ driver, 0 for C */
	bool own_digests;           /* the daemon sees other files: hash here */
	bool progs;                 /* send what the driver runs */
	char **bopts;               /* the command's -B options (for it) */
	size_t nb;
	const hasher_digest *stdin_digest;
	char **uses;                /* other programs a shell line runs */
	size_t nuses;
};

static int lookup_fields(const struct lookup_in *l, const uint8_t *material, size_t mlen, struct fields *f)
{
	field_add(f, CASFS_T_KEY, material, mlen);
	field_str(f, CASFS_T_ROOT, l->root[strlen(l->mnt)] ? l->root + strlen(l->mnt) + 1 : "");
	field_str(f, CASFS_T_ROOT_ABS, l->root);
	field_str(f, CASFS_T_CWD_ABS, l->cwd);
	field_add(f, CASFS_T_FLAGS, &l->flags, sizeof(l->flags));
	field_str(f, CASFS_T_TOOL, l->prog);
	int r;
	if (l->own_digests) {
		hasher_digest d;
		if ((r = digest_path(l->prog, &d)) < 0)
			return r;
		field_add(f, CASFS_T_TOOL_DIGEST, d.bytes, sizeof(d.bytes));
	} else {
		struct casfs_exec_stat es;
		if ((r = exec_stat_of(l->prog, &es)) < 0)
			return r;
		field_add(f, CASFS_T_STAT, &es, sizeof(es));
	}
	if (l->cc >= 0) {
		uint8_t cxx = (uint8_t)l->cc;
		field_add(f, CASFS_T_CC, &cxx, 1);
	}
	if (l->cc >= 0 && (l->progs || l->own_digests)) {
		const char *names[2] = { l->cc ? "cc1plus" : "cc1", "as" };
		for (int i = 0; i < 2; i++) {
			char path[PATH_MAX], spec[PATH_MAX + 64];
			driver_prog(l->prog, l->bopts, l->nb, names[i], path, sizeof(path));
			int n = snprintf(spec, sizeof(spec), "%s=%s", names[i], path);
			if (n < 0 || (size_t)n + 1 + HASHER_DIGEST_LEN > sizeof(spec))
				return -ENAMETOOLONG;
			size_t len = (size_t)n;
			if (l->own_digests) {
				hasher_digest d;
				/* a name it does not find: in the key as text */
				if (path[0] != '/' || digest_path(path, &d) < 0)
					hasher_digest_buffer(path, strlen(path), &d);
				spec[len++] = '\0';
				memcpy(spec + len, d.bytes, sizeof(d.bytes));
				len += sizeof(d.bytes);
			}
			field_add(f, CASFS_T_PROG, spec, len);
		}
	}
	if (l->stdin_digest)
		field_add(f, CASFS_T_STDIN, l->stdin_digest->bytes, sizeof(l->stdin_digest->bytes));
	for (size_t i = 0; i < l->nuses; i++) {
		size_t pl = strlen(l->uses[i]) + 1;
		uint8_t v[PATH_MAX + sizeof(struct casfs_exec_stat)];
		memcpy(v, l->uses[i], pl);
		if (l->own_digests) {
			hasher_digest d;
			if ((r = digest_path(l->uses[i], &d)) < 0) /* as the daemon does */
				hasher_digest_buffer(strerror(-r), strlen(strerror(-r)), &d);
			memcpy(v + pl, d.bytes, sizeof(d.bytes));
			field_add(f, CASFS_T_USES, v, pl + sizeof(d.bytes));
		} else {
			struct casfs_exec_stat es = { 0 };
			exec_stat_of(l->uses[i], &es); /* gone: the daemon's open fails too */
			memcpy(v + pl, &es, sizeof(es));
			field_add(f, CASFS_T_USES, v, pl + sizeof(es));
		}
	}
	return f->oom ? -ENOMEM : 0;
}

/* The programs outside the mount a shell line may run: every bare word of
 * it that names an executable (a path, or found on PATH), deduplicated.
 * A compiler driver among them is reported in *cc (its compile reads
 * headers casfs cannot see). */
struct uses {
	const char *cwd, *mnt;
	char **v;
	size_t n;
	char **absent;  /* "\x01absent=NAME": names no program answers to now,
			   in the key as pseudo-variables (one put on PATH
			   later is another key) */
	size_t nabsent;
	bool over, oom;
	char cc[256];
};

/* name is found nowhere: remembered for the key. */
static void use_absent(struct uses *u, const char *name)
{
	char buf[PATH_MAX + 16];
	if (snprintf(buf, sizeof(buf), "\x01" "absent=%s", name) >= (int)sizeof(buf)) {
		u->over = true;
		return;
	}
	for (size_t i = 0; i < u->nabsent; i++)
		if (!strcmp(u->absent[i], buf))
			return;
	char **a = realloc(u->absent, (u->nabsent + 1) * sizeof(*a));
	if (!a || !(a[u->nabsent] = strdup(buf))) {
		if (a)
			u->absent = a;
		u->oom = true;
		return;
	}
	u->absent = a;
	u->nabsent++;
}

static void use_name(void *arg, const char *name)
{
	struct uses *u = arg;
	char real[PATH_MAX];
	struct stat st;
	if (shline_builtin(name))
		return;
	if (strchr(name, '/')) {
		char abs[PATH_MAX];
		if (snprintf(abs, sizeof(abs), "%s%s%s", name[0] == '/' ? "" : u->cwd, name[0] == '/' ? "" : "/",
			     name) >= (int)sizeof(abs) ||
		    !realpath(abs, real) || stat(real, &st) < 0 || !S_ISREG(st.st_mode) || access(real, X_OK) < 0) {
			use_absent(u, name);
			return;
		}
	} else if (find_program(name, real, sizeof(real), NULL) < 0) {
		use_absent(u, name);
		return;
	}
	size_t ml = strlen(u->mnt);
	if (!strncmp(real, u->mnt, ml) && (real[ml] == '/' || real[ml] == '\0'))
		return; /* run from the mount: its reads are traced */
	const char *base = strrchr(name, '/');
	action_cc_info ci;
	const char *one[1] = { base ? base + 1 : name };
	action_cc_analyze(one, 1, &ci);
	if (ci.is_cc && !u->cc[0])
		snprintf(u->cc, sizeof(u->cc), "%s", name);
	for (size_t i = 0; i < u->n; i++)
		if (!strcmp(u->v[i], real))
			return;
	if (u->n == CASFS_EXEC_MAX_USES) {
		u->over = true;
		return;
	}
	if (!(u->v[u->n] = strdup(real)))
		u->oom = true;
	else
		u->n++;
}

/* u can take programs (its array made); false (and u->oom) without memory. */
static bool uses_ready(struct uses *u)
{
	if (!u->v && !(u->v = calloc(CASFS_EXEC_MAX_USES, sizeof(*u->v))))
		u->oom = true;
	return u->v != NULL;
}

static void uses_free(struct uses *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->v[i]);
	free(u->v);
	for (size_t i = 0; i < u->nabsent; i++)
		free(u->absent[i]);
	free(u->absent);
}

static int exec_action(const struct opts *o, char **argv)
{
	char prog[PATH_MAX], cwd[PATH_MAX], mnt[PATH_MAX], root[PATH_MAX];
	run_path[0] = '\0';
	int r = find_program(argv[0], prog, sizeof(prog), run_path);
	if (r < 0) {
		cli_error("%s: %s", argv[0], r == -ENOENT ? "command not found" : "permission denied");
		return r == -ENOENT ? 127 : 126;
	}
	struct capture out = { 0 }, err = { 0 };
	bool outlived;
	struct ctl c = { .fd = -1 };
	const char *why = NULL;
	if (!getcwd(cwd, sizeof(cwd)))
		why = "the working directory is unreachable";
	else if ((c.fd = open(".casfs/ctl", O_RDONLY | O_CLOEXEC)) < 0)
		why = "the working directory is not on a casfs mount";
	else if (!(c.call = malloc(sizeof(*c.call))))
		why = "out of memory";
	else if (mount_of(cwd, mnt, sizeof(mnt)) < 0)
		mount_where(&c, cwd, mnt, sizeof(mnt), &why);
	if (!why && find_root(o, cwd, mnt, root, sizeof(root)) < 0) {
		free(c.call);
		close(c.fd);
		return CLI_EXIT_USAGE;
	}
	if (why) {
	uncached:
		if (o->explain) {
			printf("uncached: %s\n", why);
			return 0;
		}
		fprintf(stderr, "casfs: warning: %s: running %s uncached\n", why, argv[0]);
		if (c.fd >= 0)
			close(c.fd);
		free(c.call);
		exec_prog(prog, argv);
		cli_error("cannot run %s: %s", argv[0], strerror(errno));
		return 126;
	}

	/* ---- the key */
	action_cc_info cc;
	size_t argc = 0;
	while (argv[argc])
		argc++;
	action_cc_analyze((const char *const *)argv, argc, &cc);
	hasher_digest stdin_digest;
	enum stdin_kind sk = classify_stdin(&stdin_digest);
	off_t stdin_at = lseek(0, 0, SEEK_CUR);
	bool reads_stdin = true;
	/* a compile's arguments with its response files on the mount read */
	char **xv = cc.is_cc ? cc_expand(argv, cwd, mnt) : NULL;
	if (cc.is_cc && !xv)
		return run_uncached(&c, o, prog, argv, "out_of_memory", "out of memory");
	if (cc.is_cc) {
		/* a compiler reads stdin only for a file named - or by a path to
		 * descriptor 0 (/dev/stdin, /dev/fd/0, /proc/self/fd/0, also
		 * inside an option: -include/dev/stdin); a source that includes
		 * such a path names it in the dependency file, which makes the
		 * run uncacheable (not a regular file) */
		reads_stdin = false;
		for (size_t i = 1; xv[i]; i++)
			reads_stdin |= !strcmp(xv[i], "-") || strstr(xv[i], "/dev/stdin") || strstr(xv[i], "/fd/0") ||
				       strstr(xv[i], "/dev/std");
		char where[PATH_MAX];
		const char *opts_file = cc_options_outside(xv, cwd, mnt, where, sizeof(where));
		if (opts_file) {
			char because[PATH_MAX + 64];
			snprintf(because, sizeof(because), "it reads options from %s, outside the mount", opts_file);
			return run_uncached(&c, o, prog, argv, "unknown_input", because);
		}
		const char *outside = cc_output_outside(xv, cwd, mnt, where, sizeof(where));
		if (outside) {
			char because[PATH_MAX + 64];
			snprintf(because, sizeof(because), "it writes %s, outside the mount", outside);
			return run_uncached(&c, o, prog, argv, "writes_outside_mount", because);
		}
	}
	/* gcc's dependency output through the environment: the dependency
	 * file casfs adds to a compile would take its place, and casfs's own
	 * probes of the compiler would write it */
	const char *envdeps = NULL;
	if (cc.is_cc && getenv("DEPENDENCIES_OUTPUT") && *getenv("DEPENDENCIES_OUTPUT"))
		envdeps = "DEPENDENCIES_OUTPUT";
	else if (cc.is_cc && getenv("SUNPRO_DEPENDENCIES") && *getenv("SUNPRO_DEPENDENCIES"))
		envdeps = "SUNPRO_DEPENDENCIES";
	if (envdeps) {
		char because[128];
		snprintf(because, sizeof(because), "%s is set (use -MD -MF FILE for a dependency file casfs can cache)",
			 envdeps);
		return run_uncached(&c, o, prog, argv, "unknown_input", because);
	}
	if (sk == STDIN_LIVE && reads_stdin)
		return run_uncached(&c, o, prog, argv, "stdin",
				    "its stdin is a pipe, socket or device it may read (redirect it from a file or /dev/null)");
	if (o->shell_unknown)
		return run_uncached(&c, o, prog, argv, "unknown_input",
				    "the shell's options are not ones casfs knows, so the variables and programs of a "
				    "-c line cannot be keyed (write it as sh -c LINE)");
	char fdwhy[PATH_MAX + 64];
	bool fd_named = inherited_fd(xv ? xv : argv, cc.is_cc, mnt, fdwhy, sizeof(fdwhy));
	argv_free(xv);
	if (fd_named) {
		char because[PATH_MAX + 320];
		snprintf(because, sizeof(because),
			 "it inherits descriptor %s, through which it may read or write what casfs cannot see "
			 "(close it for the command, as in 3<&-, or open it close-on-exec)", fdwhy);
		return run_uncached(&c, o, prog, argv, "inherited_fd", because);
	}
	if (!reads_stdin && sk != STDIN_NONE)
		sk = STDIN_NONE;
	struct uses uses = { .cwd = cwd, .mnt = mnt };
	if (o->shell_line) {
		if (!uses_ready(&uses))
			return run_uncached(&c, o, prog, argv, "out_of_memory", "out of memory");
		const char *unkeyable = shline_unkeyable(o->shell_line);
		if (unkeyable) {
			uses_free(&uses);
			return run_uncached(&c, o, prog, argv, "unknown_input", unkeyable);
		}
		if (!shline_names(o->shell_line, use_name, &uses))
			uses.over = true;
		char because[512];
		if (uses.cc[0]) {
			snprintf(because, sizeof(because),
				 "the line runs %s, whose headers outside the mount casfs cannot learn inside a shell "
				 "line (make it a recipe line of its own: one command, no shell syntax)", uses.cc);
			uses_free(&uses);
			return run_uncached(&c, o, prog, argv, "shell_compile", because);
		}
		if (uses.over || uses.oom) {
			uses_free(&uses);
			return run_uncached(&c, o, prog, argv, "unknown_input",
					    uses.oom ? "out of memory" : "the line names more programs than casfs keys");
		}
	}
	/* a link: a gcc/clang run that neither compiles only nor preprocesses */
	bool link = cc.is_cc && !cc.compile_only;
	for (size_t i = 1; link && i < argc; i++)
		link = strcmp(argv[i], "-E") && strcmp(argv[i], "-M") && strcmp(argv[i], "-MM") &&
		       strcmp(argv[i], "-fsyntax-only") && strncmp(argv[i], "-print", 6) && strncmp(argv[i], "-dump", 5) &&
		       strcmp(argv[i], "-v") && strcmp(argv[i], "--version");
	char depfile[64] = "";
	/* a compile of several sources: the compiler proper of each one
	 * writes the one -MF file anew, so such a file lists the last
	 * source's headers only */
	bool multi = cc.is_cc && cc.compile_only && cc.sources > 1;
	bool inject = (cc.is_cc && cc.compile_only && !cc.has_depfile && !multi) || link;
	/* a gcc link that compiles sources, or a gcc compile of several: every
	 * cc1 appends what it read, system headers too, to
	 * $SUNPRO_DEPENDENCIES (a user's own setting is left alone: then the
	 * compile's reads are not learned; and cc1 ignores it where the
	 * command has a dependency option of its own, -MD or -MMD, also from a
	 * response file: then nothing is appended, and the run is not cached) */
	const char *pbase = strrchr(prog, '/');
	pbase = pbase ? pbase + 1 : prog;
	bool sunpro = (link || multi) && cc.sources > 0 && (strstr(pbase, "gcc") || strstr(pbase, "g++")) &&
		      !getenv("SUNPRO_DEPENDENCIES") && !getenv("DEPENDENCIES_OUTPUT");
	char ccdep[64] = "";
	size_t nenv;
	const char **env = key_env(o, &nenv);
	if (env && uses.nabsent) {
		const char **e = realloc(env, (nenv + uses.nabsent) * sizeof(*e));
		if (e)
			for (size_t i = 0; i < uses.nabsent; i++)
				e[nenv++] = uses.absent[i];
		else
			free(env);
		env = e;
	}
	mode_t um = umask(0);
	umask(um);
	enum streams streams = streams_of();
	bool merged = streams == STREAMS_ONE;
	if (streams == STREAMS_CLASH)
		return run_uncached(&c, o, prog, argv, "unknown_input",
				    "its stdout and stderr are one file opened twice, not for appending "
				    "(>log 2>log: use >log 2>&1)");
	/* -B DIR, -BDIR, --prefix[=]DIR: where the driver looks for cc1 and
	 * as, like COMPILER_PATH and GCC_EXEC_PREFIX; the driver alone does
	 * not say what this command runs */
	char *bopts[64];
	size_t nb = 0;
	bool own_progs = cc.is_cc && (getenv("COMPILER_PATH") || getenv("GCC_EXEC_PREFIX"));
	for (size_t i = 1; cc.is_cc && i < argc; i++) {
		bool two = !strcmp(argv[i], "-B") || !strcmp(argv[i], "--prefix");
		if (!two && strncmp(argv[i], "-B", 2) && strncmp(argv[i], "--prefix=", 9))
			continue;
		own_progs = true;
		if (nb + 2 > sizeof(bopts) / sizeof(*bopts))
			continue; /* (the driver then names other programs: a miss, or an error's key) */
		bopts[nb++] = argv[i];
		if (two && i + 1 < argc)
			bopts[nb++] = argv[++i];
	}
	/* a script: the interpreter its #! line names (and the program of
	 * `#!/usr/bin/env NAME`) is the command's, in its key (one on the
	 * mount is read through it, and traced) */
	char interp[PATH_MAX], interp_arg[PATH_MAX];
	if (!cc.is_cc && shebang_of(prog, interp, sizeof(interp), interp_arg, sizeof(interp_arg)) &&
	    uses_ready(&uses)) {
		use_name(&uses, interp);
		const char *ib = strrchr(interp, '/');
		if (!strcmp(ib ? ib + 1 : interp, "env") && interp_arg[0] && interp_arg[0] != '-')
			use_name(&uses, interp_arg);
	}
	/* a link whose programs are found through -B or COMPILER_PATH: the
	 * collect2 and ld it runs are the command's, in its key */
	if (link && own_progs && uses_ready(&uses)) {
		static const char *const linkers[] = { "collect2", "ld" };
		for (size_t i = 0; i < 2; i++) {
			char path[PATH_MAX];
			driver_prog(prog, bopts, nb, linkers[i], path, sizeof(path));
			if (path[0] == '/')
				use_name(&uses, path);
		}
	}
	if (uses.over || uses.oom)
		return run_uncached(&c, o, prog, argv, "unknown_input",
				    uses.oom ? "out of memory" : "it runs more programs than casfs keys");
	struct lookup_in li = {
		.bopts = bopts, .nb = nb, .progs = own_progs,
		.prog = prog, .cwd = cwd, .root = root, .mnt = mnt, .cc = cc.is_cc ? cc.is_cxx : -1,
		.stdin_digest = sk == STDIN_FILE ? &stdin_digest : NULL,
		.uses = uses.v, .nuses = uses.n,
		.flags = (o->explain ? CASFS_EXEC_F_EXPLAIN : 0) | (o->relocate ? CASFS_EXEC_F_RELOCATE : 0) |
			 (o->cache_failures ? CASFS_EXEC_F_CACHE_FAILURES : 0) |
			 /* what its compiler proper reads outside the mount is learned */
			 ((cc.is_cc && cc.compile_only) || sunpro ? CASFS_EXEC_F_CC_DEPS : 0) |
			 (cc.is_cc && (cc.compresses_debug || cc.wraps_diagnostics) ? CASFS_EXEC_F_HIDES_ROOT : 0) |
			 /* its depfile and diagnostics name paths as given */
			 (cc.is_cc && cc.compile_only ? CASFS_EXEC_F_ROOT_TEXT : 0) |
			 (own_progs ? CASFS_EXEC_F_OWN_PROGS : 0) | (merged ? CASFS_EXEC_F_MERGED_STREAMS : 0),
	};
	char text[PATH_MAX + 256];
	bool asked_where = false;
	for (int round = 0;; round++) {
		action_key_in kin = {
			.root = root, .cwd = cwd, .argv = (const char *const *)argv, .argc = argc, .env = env,
			.nenv = nenv, .umask = um,
			.flags = (o->cache_failures ? ACTION_KF_CACHE_FAILURES : 0) | (inject ? ACTION_KF_DEPFILE : 0) |
				 (sk == STDIN_FILE ? ACTION_KF_STDIN_FILE : 0),
		};
		uint8_t *material = NULL;
		size_t mlen = 0;
		struct fields f = { 0 };
		r = env ? action_key_material(&kin, &material, &mlen) : -ENOMEM;
		if (r == 0)
			r = lookup_fields(&li, material, mlen, &f);
		free(material);
		if (r < 0) {
			free(f.b);
			free(env);
			cli_error("cannot build the action key of %s: %s", argv[0], strerror(-r));
			return 126;
		}
		r = ctl_call(&c, CASFS_OP_LOOKUP, &f);
		free(f.b);
		if (round > 4)
			break;
		if (r == -EXDEV && !asked_where) {
			/* the daemon sees the working directory elsewhere */
			asked_where = true;
			if (mount_where(&c, cwd, mnt, sizeof(mnt), &why) < 0) {
				free(env);
				goto uncached;
			}
			if (find_root(o, cwd, mnt, root, sizeof(root)) < 0) {
				free(env);
				free(c.call);
				close(c.fd);
				return CLI_EXIT_USAGE;
			}
			continue;
		}
		if (r == 0 && c.call->status == CASFS_LOOKUP_NEED_DIGEST && !li.own_digests) {
			li.own_digests = true;
			continue;
		}
		if (r == 0 && c.call->status == CASFS_LOOKUP_NEED_PROGS && !li.progs) {
			li.progs = true;
			continue;
		}
		break;
	}
	free(env);
	uses_free(&uses);
	if (r == -ENOTTY || r == -EPROTO) {
		why = "the mount's daemon runs another casfs version (remount it to cache actions)";
		goto uncached;
	}
	if (r == 0 && c.call->status == CASFS_LOOKUP_HIT && !o->explain) {
		size_t l;
		const uint8_t *v;
		int32_t ex = 0;
		debug(o, "%s", resp_text(&c, CASFS_T_EXPLAIN, text, sizeof(text)) ? text : "hit");
		if ((v = field_find(c.resp, c.resp_len, CASFS_T_STDOUT, &l)))
			cache_io_write(1, v, l, CACHE_IO_CUR);
		if ((v = field_find(c.resp, c.resp_len, CASFS_T_STDERR, &l)))
			cache_io_write(2, v, l, CACHE_IO_CUR);
		if ((v = field_find(c.resp, c.resp_len, CASFS_T_EXIT, &l)) && l == 4)
			memcpy(&ex, v, 4);
		if (field_find(c.resp, c.resp_len, CASFS_T_STDIN_EOF, &l))
			lseek(0, 0, SEEK_END);
		return ex;
	}
	if (o->explain) {
		if (r < 0)
			printf("uncached: the daemon refused the lookup (%s)\n", strerror(-r));
		else
			printf("%s\n", resp_text(&c, CASFS_T_EXPLAIN, text, sizeof(text)) ? text : "miss");
		return 0;
	}
	if (r == 0)
		debug(o, "%s: %s", argv[0], resp_text(&c, CASFS_T_EXPLAIN, text, sizeof(text)) ? text : "miss");
	if (r == 0 && c.call->status != CASFS_LOOKUP_MISS)
		r = -EAGAIN; /* not cacheable (or a status this client does not know) */
	if (inject && r == 0) {
		const char *tmp = getenv("TMPDIR");
		snprintf(depfile, sizeof(depfile), "%s/casfs-dep.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
		int dfd = mkstemp(depfile);
		if (dfd < 0)
			r = -errno; /* the run would differ from the key's: uncached */
		else
			close(dfd);
		if (dfd < 0)
			depfile[0] = '\0';
	}
	if (sunpro && r == 0) {
		const char *tmp = getenv("TMPDIR");
		snprintf(ccdep, sizeof(ccdep), "%s/casfs-cc.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
		int dfd = mkstemp(ccdep);
		char val[96];
		snprintf(val, sizeof(val), "%s casfs", ccdep);
		if (dfd < 0 || setenv("SUNPRO_DEPENDENCIES", val, 1) < 0)
			r = -errno;
		if (dfd >= 0)
			close(dfd);
		else
			ccdep[0] = '\0';
	}

	/* ---- run it, traced */
	bool traced = r == 0 && ctl_call(&c, CASFS_OP_BEGIN, NULL) == 0;
	if (!traced && r != -EAGAIN)
		fprintf(stderr, "casfs: warning: the daemon could not trace %s (%s): running it uncached\n", argv[0],
			r < 0 ? strerror(-r) : "registration refused");
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	char **run_argv = argv;
	char *extra[argc + 4];
	char ldopt[96];
	if (inject && traced) {
		for (size_t i = 0; i < argc; i++)
			extra[i] = argv[i];
		if (link) {
			snprintf(ldopt, sizeof(ldopt), "-Wl,--dependency-file=%s", depfile);
			extra[argc] = ldopt;
			extra[argc + 1] = NULL;
		} else {
			extra[argc] = "-MD";
			extra[argc + 1] = "-MF";
			extra[argc + 2] = depfile;
			extra[argc + 3] = NULL;
		}
		run_argv = extra;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* a build step reads no terminal: under the cache it gets none */
	int status = run(prog, run_argv, &out, &err, traced, merged, traced && sk == STDIN_TTY, &outlived);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (status < 0) {
		if (depfile[0])
			unlink(depfile);
		if (ccdep[0])
			unlink(ccdep);
		return 126;
	}
	if (traced && WIFEXITED(status)) {
		struct fields g = { 0 };
		int32_t ex = WEXITSTATUS(status);
		int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
		uint64_t ms = ns > 0 ? (uint64_t)ns / 1000000 : 0;
		field_add(&g, CASFS_T_EXIT, &ex, sizeof(ex));
		field_add(&g, CASFS_T_RUN_MS, &ms, sizeof(ms));
		/* streams more than a request holds (room left for the rest):
		 * not recorded, and counted so */
		bool big = out.over || err.over || out.len + err.len > CASFS_CTL_REQ_MAX - (8u << 20);
		field_add(&g, CASFS_T_STDOUT, out.b, big ? 0 : out.len);
		field_add(&g, CASFS_T_STDERR, err.b, big ? 0 : err.len);
		if (big)
			field_str(&g, CASFS_T_REASON, "too_big");
		if (outlived)
			field_add(&g, CASFS_T_OUTLIVED, NULL, 0);
		/* a hit leaves a file on stdin where it was, or at its end
		 * when the run read it all: a run that read part of it (head,
		 * read) and left it elsewhere is not cached */
		off_t now = sk == STDIN_FILE ? lseek(0, 0, SEEK_CUR) : stdin_at;
		struct stat in_st;
		if (now != stdin_at)
			field_add(&g, fstat(0, &in_st) == 0 && now == in_st.st_size ? CASFS_T_STDIN_EOF : CASFS_T_STDIN_MOVED,
				  NULL, 0);
		char dep[PATH_MAX], depabs[PATH_MAX];
		const char *udep = cc.is_cc && cc.compile_only ? ccdeps_user_depfile(argv, dep, sizeof(dep)) : NULL;
		if (udep && (size_t)snprintf(depabs, sizeof(depabs), "%s%s%s", udep[0] == '/' ? "" : cwd,
					     udep[0] == '/' ? "" : "/", udep) < sizeof(depabs))
			field_str(&g, CASFS_T_TEXT_OUT, depabs);
		if (cc.is_cc && (ex == 0 || o->cache_failures)) {
			/* what it read outside the mount (ccdeps.h) */
			hasher_digest driver;
			ccdeps_compile ci = { .prog = prog, .tool = &driver, .argv = argv, .cxx = cc.is_cxx,
					      .cwd = cwd, .mnt = mnt };
			ccdeps_cache cache = { cache_get, cache_put, cache_scan, &c };
			const char *uf = NULL;
			int dr = digest_path(prog, &driver);
			if (dr == 0 && link)
				dr = ccdeps_link(&ci, depfile, dep_add, &g);
			struct stat dst;
			if (dr == 0 && sunpro && (stat(ccdep, &dst) < 0 || dst.st_size == 0))
				dr = -ENODATA; /* no cc1 wrote it: a dependency option of the command's own */
			else if (dr == 0 && sunpro)
				dr = ccdeps_collect(&ci, ccdep, &cache, dep_add, &g);
			else if (dr == 0 && multi)
				dr = -ENODATA; /* several sources, one dependency file (clang) */
			else if (dr == 0 && cc.compile_only)
				dr = ccdeps_collect(&ci, inject ? depfile : ccdeps_user_complete(argv, &uf) ? uf : NULL,
						    &cache, dep_add, &g);
			if (dr < 0)
				field_str(&g, CASFS_T_REASON, "unknown_input");
		}
		r = g.oom ? -ENOMEM : ctl_call(&c, CASFS_OP_END, &g);
		if (r < 0)
			debug(o, "%s: not recorded: %s", argv[0], strerror(-r));
		else if (c.call->status == CASFS_END_RECORDED)
			debug(o, "%s: recorded", argv[0]);
		else
			debug(o, "%s: not cacheable: %s", argv[0],
			      resp_text(&c, CASFS_T_REASON, text, sizeof(text)) ? text : "?");
		free(g.b);
	}
	/* (a run killed by a signal is not reported: closing ends it unrecorded) */
	close(c.fd);
	free(c.call);
	free(c.resp);
	free(out.b);
	free(err.b);
	if (depfile[0])
		unlink(depfile);
	if (ccdep[0])
		unlink(ccdep);
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		raise(WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

struct extra_env {
	char **v;
	size_t n;
	bool oom;
};

static void add_env_name(void *arg, const char *name)
{
	struct extra_env *e = arg;
	char **nv = realloc(e->v, (e->n + 1) * sizeof(*nv));
	if (!nv || !(nv[e->n] = strdup(name))) {
		e->oom = true;
		if (nv)
			e->v = nv;
		return;
	}
	e->v = nv;
	e->n++;
}

/* o runs the shell line `line`: the programs it names and the variables
 * it expands join the key, besides o's own --env names (ex: the merged
 * list, o->env_extra points into it; free ex->v and its names).  0 or
 * -ENOMEM. */
static int shell_line_key(struct opts *o, const char *line, struct extra_env *ex)
{
	for (size_t i = 0; i < o->nenv_extra; i++)
		add_env_name(ex, o->env_extra[i]);
	shline_vars(line, add_env_name, ex);
	if (ex->oom)
		return -ENOMEM;
	o->shell_line = line;
	o->env_extra = (const char **)ex->v;
	o->nenv_extra = ex->n;
	return 0;
}

/* bash's long options (before any other), and whether each takes a value. */
static const struct {
	const char *name;
	bool value;
} shell_longs[] = {
	{ "--norc", false },	{ "--noprofile", false }, { "--posix", false },	  { "--login", false },
	{ "--noediting", false }, { "--restricted", false }, { "--verbose", false }, { "--rcfile", true },
	{ "--init-file", true },
};

/* The LINE of `SHELL [OPTIONS] LINE [NAME [ARGS...]]` for a POSIX shell by
 * name (sh, bash, dash, ksh, mksh, zsh) when one of the options is -c
 * (grouped too, as in -ec; anywhere among them, as in -c -e): the first
 * operand after the options.  -o/+o/-O/+O take a value (one per such letter
 * of a group), so do bash's --rcfile and --init-file; "--" and "-" end the
 * options.  NULL when the command is no shell's -c call; NULL with *unknown
 * set when an option is one casfs does not know, so that whether there is a
 * line, and which, cannot be told (the line's variables and programs would
 * not be keyed). */
static const char *shell_c_line(char *const *argv, bool *unknown)
{
	static const char *const shells[] = { "sh", "bash", "dash", "ksh", "mksh", "zsh" };
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	bool shell = false, c = false;
	*unknown = false;
	for (size_t i = 0; i < sizeof(shells) / sizeof(shells[0]); i++)
		shell |= strcmp(base, shells[i]) == 0;
	if (!shell)
		return NULL;
	size_t i = 1;
	for (; argv[i]; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--") || !strcmp(a, "-")) {
			i++;
			break;
		}
		if ((a[0] != '-' && a[0] != '+') || !a[1])
			break;
		if (a[0] == '-' && a[1] == '-') {
			size_t k = 0, n = sizeof(shell_longs) / sizeof(shell_longs[0]);
			while (k < n && strcmp(a, shell_longs[k].name))
				k++;
			if (k == n || (shell_longs[k].value && !argv[++i])) {
				*unknown = true;
				return NULL;
			}
			continue;
		}
		size_t values = 0;
		for (const char *p = a + 1; *p; p++) {
			if (*p == 'o' || *p == 'O')
				values++;
			else if (*p == 'c' && a[0] == '-')
				c = true;
			else if (!isalpha((unsigned char)*p)) {
				*unknown = true;
				return NULL;
			}
		}
		for (; values; values--)
			if (!argv[++i]) {
				*unknown = true;
				return NULL;
			}
	}
	return c ? argv[i] : NULL;
}

/* exec_action, keyed as casfs-sh keys a shell line when the command is a
 * shell's -c LINE (sh -c 'echo "$V" > f' reads V, on the allowlist or
 * not). */
static int exec_command(struct opts *o, char **argv)
{
	bool unknown;
	const char *line = shell_c_line(argv, &unknown);
	o->shell_unknown = unknown;
	struct extra_env ex = { 0 };
	if (line && shell_line_key(o, line, &ex) < 0) {
		cli_error("out of memory");
		return 126;
	}
	int rc = exec_action(o, argv);
	for (size_t i = 0; i < ex.n; i++)
		free(ex.v[i]);
	free(ex.v);
	return rc;
}

int cmd_exec(int argc, char **argv)
{
	struct opts o = { .debug = getenv("CASFS_LOG") && strcmp(getenv("CASFS_LOG"), "debug") == 0 };
	const char *extra[64];
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(exec_usage, stdout);
			return 0;
		}
		if (!strcmp(a, "--explain"))
			o.explain = true;
		else if (!strcmp(a, "--cache-failures"))
			o.cache_failures = true;
		else if (!strcmp(a, "--relocate"))
			o.relocate = true;
		else if ((!strcmp(a, "--root") || !strcmp(a, "--env")) && i + 1 >= argc)
			return cli_usage_error("exec", "%s needs a value", a);
		else if (!strcmp(a, "--root") || !strcmp(a, "--env")) {
			if (a[2] == 'r')
				o.root = argv[++i];
			else if (o.nenv_extra < 64)
				extra[o.nenv_extra++] = argv[++i];
		} else if (!strncmp(a, "--root=", 7))
			o.root = a + 7;
		else if (!strncmp(a, "--env=", 6) && o.nenv_extra < 64)
			extra[o.nenv_extra++] = a + 6;
		else if (a[0] == '-') {
			return cli_usage_error("exec", "unknown option '%s'", a);
		} else {
			break; /* the command, without "--" */
		}
	}
	o.env_extra = extra;
	if (i >= argc || !argv[i][0])
		return cli_usage_error("exec", "give a command: casfs exec [OPTIONS] -- CMD [ARGS...]");
	return exec_command(&o, argv + i);
}

int cmd_exec_launcher(int argc, char **argv)
{
	struct opts o = { .debug = getenv("CASFS_LOG") && strcmp(getenv("CASFS_LOG"), "debug") == 0 };
	if (argc < 2 || !argv[1][0]) {
		cli_error("casfs-exec: give a command: casfs-exec CMD [ARGS...]");
		return CLI_EXIT_USAGE;
	}
	return exec_command(&o, argv + 1);
}

/* A .ONESHELL recipe (lines joined by newlines): make takes the blanks and
 * the @, - and + prefixes off each line only for a shell it knows by name
 * (sh, bash...), so casfs-sh does it, as those get it.  In place. */
static void oneshell_strip(char *s)
{
	char *o = s;
	bool cont = false; /* the line before ended in a backslash: one line */
	for (char *p = s; *p;) {
		while (!cont && (*p == ' ' || *p == '\t' || *p == '@' || *p == '-' || *p == '+'))
			p++;
		while (*p && *p != '\n')
			*o++ = *p++;
		cont = o > s && o[-1] == '\\';
		if (*p == '\n')
			*o++ = *p++;
	}
	*o = '\0';
}

/* make runs $(SHELL) $(.SHELLFLAGS) LINE: "-c LINE" ("-ec LINE" under
 * .POSIX).  A line that is one plain command runs as that command (a
 * compile gets a compiler's handling); any other line runs in /bin/sh, with
 * the programs it names in the key.  Other arguments: sh, uncached. */
int cmd_exec_shell(int argc, char **argv)
{
	struct opts o = { .debug = getenv("CASFS_LOG") && strcmp(getenv("CASFS_LOG"), "debug") == 0 };
	char *sh_argv[argc + 1];
	sh_argv[0] = "/bin/sh";
	for (int i = 1; i < argc; i++)
		sh_argv[i] = argv[i];
	sh_argv[argc] = NULL;
	if (argc != 3 || (strcmp(argv[1], "-c") && strcmp(argv[1], "-ec"))) {
		debug(&o, "casfs-sh: not a -c LINE call: running /bin/sh uncached");
		execv("/bin/sh", sh_argv);
		cli_error("cannot run /bin/sh: %s", strerror(errno));
		return 126;
	}
	if (strchr(argv[2], '\n') && getenv("MAKELEVEL"))
		oneshell_strip(argv[2]);
	size_t len = strlen(argv[2]);
	char *buf = malloc(len + 2);
	char **words = malloc((len / 2 + 2) * sizeof(*words));
	if (buf && words && shline_simple(argv[2], buf, len + 2, words, len / 2 + 2)) {
		debug(&o, "casfs-sh: one command: %s", words[0]);
		return exec_action(&o, words);
	}
	free(buf);
	free(words);
	return exec_command(&o, sh_argv);
}
