/* ccdeps.c — see ccdeps.h. */
#include "ccdeps.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "action.h"
#include "io.h"
#include "cli.h"
#include "hiscan.h"

extern char **environ;

/* gcc options whose value is the next argument when not joined. */
static bool takes_value(const char *a)
{
	static const char *const opts[] = {
		"-o", "-I", "-isystem", "-iquote", "-idirafter", "-include", "-imacros", "-MF", "-MT", "-MQ",
		"-x", "-D", "-U", "-L", "-Xlinker", "-Xassembler", "-Xpreprocessor", "-Xclang", "-T", "-u",
		"-z", "-aux-info", "--param", "-iprefix", "-iwithprefix", "-iwithprefixbefore", "-isysroot",
		"-imultilib", "-dumpbase", "-dumpdir", "-B", "-target", "--sysroot", NULL,
	};
	for (int i = 0; opts[i]; i++)
		if (!strcmp(a, opts[i]))
			return true;
	return false;
}

/* Options a preprocessing pass must not carry: outputs, dependency
 * output, the compile mode. */
static bool dropped(const char *a)
{
	static const char *const exact[] = { "-c", "-S", "-E", "-M", "-MM", "-MD", "-MMD", "-MG", "-MP", NULL };
	for (int i = 0; exact[i]; i++)
		if (!strcmp(a, exact[i]))
			return true;
	return !strncmp(a, "-o", 2) || !strncmp(a, "-MF", 3) || !strncmp(a, "-MT", 3) || !strncmp(a, "-MQ", 3) ||
	       !strncmp(a, "-Wp,-M", 6) || !strncmp(a, "-save-temps", 11);
}

/* argv for a preprocessing pass: the compile's options (sources too when
 * keep_sources), then extra (NULL-terminated).  NULL on ENOMEM. */
static char **pass_argv(char **argv, bool keep_sources, const char *const *extra)
{
	size_t n = 0, ne = 0;
	while (argv[n])
		n++;
	while (extra[ne])
		ne++;
	char **out = calloc(n + ne + 1, sizeof(*out));
	if (!out)
		return NULL;
	size_t k = 0;
	out[k++] = argv[0];
	for (size_t i = 1; i < n; i++) {
		const char *a = argv[i];
		bool value = takes_value(a) && i + 1 < n;
		if (dropped(a)) {
			i += value ? 1 : 0;
			continue;
		}
		if (a[0] != '-' && !keep_sources)
			continue; /* a source */
		out[k++] = argv[i];
		if (value)
			out[k++] = argv[++i];
	}
	for (size_t i = 0; i < ne; i++)
		out[k++] = (char *)extra[i];
	return out;
}

/* Runs argv in cwd with stdout and stdin on /dev/null; its stderr in
 * *err (malloc'd, NUL-terminated) when err is not NULL.  Returns the exit
 * status, or -errno. */
static int run_pass(const char *prog, char **argv, char **err)
{
	int p[2] = { -1, -1 };
	if (err && pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int dn = open("/dev/null", O_RDWR);
		dup2(dn, 0);
		dup2(dn, 1);
		dup2(err ? p[1] : dn, 2);
		execv(prog, argv);
		_exit(127);
	}
	size_t len = 0, cap = 0;
	char *b = NULL;
	if (err) {
		close(p[1]);
		for (;;) {
			if (len + 4096 + 1 > cap) {
				char *nb = realloc(b, cap = cap ? cap * 2 : 16384);
				if (!nb)
					break;
				b = nb;
			}
			size_t want = cap - len - 1;
			ssize_t r = cache_io_read(p[0], b + len, want, CACHE_IO_CUR);
			if (r <= 0)
				break;
			len += (size_t)r;
			if ((size_t)r < want)
				break; /* the end: the child closed its side */
		}
		close(p[0]);
		if (b)
			b[len] = '\0';
		*err = b;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool on_mount(const char *path, const char *mnt)
{
	size_t ml = strlen(mnt);
	return strncmp(path, mnt, ml) == 0 && (path[ml] == '/' || path[ml] == '\0');
}

/* ---- the include search chain ---------------------------------------------- */

struct chain {
	char **dirs;     /* in search order (quote dirs first), real paths */
	size_t n;
	char **missing;  /* named but absent directories, absolute */
	size_t nmissing;
	char **links;    /* the symlinks on the way to each (absolute) */
	char **targets;  /* where each leads */
	size_t nlinks;
};

static void chain_clear(struct chain *ch)
{
	for (size_t i = 0; i < ch->n; i++)
		free(ch->dirs[i]);
	for (size_t i = 0; i < ch->nmissing; i++)
		free(ch->missing[i]);
	for (size_t i = 0; i < ch->nlinks; i++) {
		free(ch->links[i]);
		free(ch->targets[i]);
	}
	free(ch->dirs);
	free(ch->missing);
	free(ch->links);
	free(ch->targets);
	memset(ch, 0, sizeof(*ch));
}

static int push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* True when path is one of v or below one of them. */
static bool under_any(char *const *v, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(v[i]);
		if (!strncmp(path, v[i], l) && (path[l] == '/' || path[l] == '\0'))
			return true;
	}
	return false;
}

/* The first missing component of path (absolute), under the real path of
 * its existing part: what must be created for path to come into being.
 * 0 and out, or -ENOENT when path exists after all. */
static int first_missing(const char *path, char *out, size_t size)
{
	char cur[PATH_MAX] = "/", cand[PATH_MAX];
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		if (e == p)
			break;
		if (snprintf(cand, sizeof(cand), "%s%s%.*s", cur, strcmp(cur, "/") ? "/" : "", (int)(e - p), p) >=
		    (int)sizeof(cand))
			return -ENAMETOOLONG;
		if (!cli_realpath(cand, cur)) {
			snprintf(out, size, "%s", cand);
			return 0;
		}
		p = e;
	}
	return -ENOENT;
}

/* Adds link (leading to target) to ch.  0 or -ENOMEM. */
static int chain_add_link(struct chain *ch, const char *link, const char *target)
{
	size_t nl = ch->nlinks, nt = ch->nlinks;
	int r = push(&ch->links, &nl, link);
	if (r == 0 && (r = push(&ch->targets, &nt, target)) < 0)
		free(ch->links[--nl]);
	if (r == 0)
		ch->nlinks++;
	return r;
}

/* Adds to ch every symlink on the way from / to path (absolute), in the
 * order the walk meets them, each with its target: a directory of the
 * search chain reached through a link (-I/opt/tc/current/include) is
 * another directory once the link is pointed elsewhere. */
static int chain_links(struct chain *ch, const char *path)
{
	char rest[PATH_MAX], cur[PATH_MAX] = "", cand[PATH_MAX], t[PATH_MAX], next[PATH_MAX];
	if (snprintf(rest, sizeof(rest), "%s", path) >= (int)sizeof(rest))
		return -ENAMETOOLONG;
	const char *p = rest;
	for (int hops = 0; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		if (e == p)
			break;
		if ((e - p == 1 && p[0] == '.') || (e - p == 2 && p[0] == '.' && p[1] == '.')) {
			if (e - p == 2) {
				char *slash = strrchr(cur, '/');
				if (slash)
					*slash = '\0';
			}
			p = e;
			continue;
		}
		if (snprintf(cand, sizeof(cand), "%s/%.*s", cur, (int)(e - p), p) >= (int)sizeof(cand))
			return -ENAMETOOLONG;
		struct stat st;
		if (lstat(cand, &st) < 0 || !S_ISLNK(st.st_mode)) {
			memcpy(cur, cand, strlen(cand) + 1);
			p = e;
			continue;
		}
		ssize_t l = ++hops < 40 ? readlink(cand, t, sizeof(t) - 1) : -1;
		if (l < 0)
			return -ELOOP;
		t[l] = '\0';
		bool seen = false;
		for (size_t i = 0; i < ch->nlinks && !seen; i++)
			seen = !strcmp(ch->links[i], cand);
		int r = seen ? 0 : chain_add_link(ch, cand, t);
		if (r < 0)
			return r;
		/* on from where it leads, with what is left */
		if (snprintf(next, sizeof(next), "%s%s%s%s", t[0] == '/' ? "" : cur, t[0] == '/' ? "" : "/", t, e) >=
		    (int)sizeof(next))
			return -ENAMETOOLONG;
		memcpy(rest, next, strlen(next) + 1);
		p = rest;
		cur[0] = '\0'; /* next is absolute: walked again from / */
	}
	return 0;
}

/* Parses `-E -v` output: "ignoring nonexistent directory "X"" lines and
 * the directories between "search starts here:" and "End of search list.". */
static int chain_parse(char *text, const char *cwd, struct chain *ch)
{
	bool in_list = false;
	int r = 0;
	for (char *line = strtok(text, "\n"); r == 0 && line; line = strtok(NULL, "\n")) {
		char path[PATH_MAX], real[PATH_MAX];
		const char *ign = "ignoring nonexistent directory \"";
		if (!strncmp(line, ign, strlen(ign))) {
			char *s = line + strlen(ign), *q = strrchr(s, '"');
			if (q)
				*q = '\0';
			if (snprintf(path, sizeof(path), "%s%s%s", s[0] == '/' ? "" : cwd, s[0] == '/' ? "" : "/", s) <
				    (int)sizeof(path) &&
			    first_missing(path, real, sizeof(real)) == 0 &&
			    (r = push(&ch->missing, &ch->nmissing, real)) == 0)
				r = chain_links(ch, path);
		} else if (strstr(line, "search starts here:")) {
			in_list = true;
		} else if (!strncmp(line, "End of search list.", 19)) {
			in_list = false;
		} else if (in_list && line[0] == ' ') {
			const char *d = line + 1;
			char *fw = strstr(line, " (framework directory)");
			if (fw)
				*fw = '\0';
			if (snprintf(path, sizeof(path), "%s%s%s", d[0] == '/' ? "" : cwd, d[0] == '/' ? "" : "/", d) <
				    (int)sizeof(path) &&
			    cli_realpath(path, real) && (r = push(&ch->dirs, &ch->n, real)) == 0)
				r = chain_links(ch, path);
		}
	}
	return r;
}

/* "D dir\n" and "M dir\n" lines. */
static char *chain_format(const struct chain *ch)
{
	size_t len = 1;
	for (size_t i = 0; i < ch->n; i++)
		len += strlen(ch->dirs[i]) + 3;
	for (size_t i = 0; i < ch->nmissing; i++)
		len += strlen(ch->missing[i]) + 3;
	for (size_t i = 0; i < ch->nlinks; i++)
		len += strlen(ch->links[i]) + strlen(ch->targets[i]) + 4;
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	for (size_t i = 0; i < ch->n; i++)
		p += sprintf(p, "D %s\n", ch->dirs[i]);
	for (size_t i = 0; i < ch->nmissing; i++)
		p += sprintf(p, "M %s\n", ch->missing[i]);
	for (size_t i = 0; i < ch->nlinks; i++)
		p += sprintf(p, "L %s\t%s\n", ch->links[i], ch->targets[i]);
	*p = '\0';
	return s;
}

/* A remembered chain, used only while it is still true: every directory
 * still a directory, every missing one still missing, every symlink on the
 * way still leading where it led. */
static bool chain_load(char *text, struct chain *ch)
{
	struct stat st;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (strlen(line) < 3 || line[1] != ' ')
			return false;
		const char *path = line + 2;
		if (line[0] == 'L') {
			char *tab = strchr(line + 2, '\t'), t[PATH_MAX];
			if (!tab)
				return false;
			*tab = '\0';
			ssize_t l = readlink(path, t, sizeof(t) - 1);
			if (l < 0 || (size_t)l != strlen(tab + 1) || memcmp(t, tab + 1, (size_t)l))
				return false;
			if (chain_add_link(ch, path, tab + 1) < 0)
				return false;
			continue;
		}
		bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
		if (line[0] == 'D' ? !is_dir || push(&ch->dirs, &ch->n, path) < 0
				   : line[0] != 'M' || lstat(path, &st) == 0 || push(&ch->missing, &ch->nmissing, path) < 0)
			return false;
	}
	return ch->n > 0;
}

/* The relevant environment of the search chain. */
static const char *const chain_env[] = { "CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH",
					 "GCC_EXEC_PREFIX", "COMPILER_PATH", NULL };

/* Options that cannot change the include search chain (macros,
 * optimisation, warnings, debug information): left out of its query and
 * key, so that compiles differing only in them share one query (a build's
 * targets often differ by their -D flags alone).  -Wp, -Wa, -Wl and
 * anything else stay. */
static bool chain_neutral(const char *a)
{
	if (!strncmp(a, "-D", 2) || !strncmp(a, "-U", 2) || !strncmp(a, "-O", 2))
		return true;
	if (a[0] == '-' && a[1] == 'W' && a[2] && a[3] != ',')
		return true; /* -Wall, -Wno-x, -Werror=y; not -Wp,... */
	return !strcmp(a, "-g") || (a[0] == '-' && a[1] == 'g' && a[2] >= '0' && a[2] <= '3' && !a[3]) ||
	       !strncmp(a, "-ggdb", 5) || !strncmp(a, "-gdwarf", 7);
}

static int cc_chain(const ccdeps_compile *cc, const ccdeps_cache *cache, struct chain *ch)
{
	static const char *const probe_c[] = { "-E", "-v", "-x", "c", "/dev/null", "-o", "/dev/null", NULL };
	static const char *const probe_cxx[] = { "-E", "-v", "-x", "c++", "/dev/null", "-o", "/dev/null", NULL };
	char **pargv = pass_argv(cc->argv, false, cc->cxx ? probe_cxx : probe_c);
	if (!pargv)
		return -ENOMEM;
	size_t k = 1;
	for (size_t i = 1; pargv[i]; i++) {
		bool value = takes_value(pargv[i]) && pargv[i + 1];
		if (chain_neutral(pargv[i])) {
			i += value; /* -D NAME, -U NAME: the value goes too */
			continue;
		}
		pargv[k++] = pargv[i];
		if (value)
			pargv[k++] = pargv[++i]; /* -Xpreprocessor -DX stays whole */
	}
	pargv[k] = NULL;
	/* remembered per compiler, options, working directory, environment */
	hasher_stream *h = hasher_stream_new();
	if (!h) {
		free(pargv);
		return -ENOMEM;
	}
	hasher_stream_update(h, cc->tool->bytes, sizeof(cc->tool->bytes));
	hasher_stream_update(h, cc->cwd, strlen(cc->cwd) + 1);
	for (size_t i = 0; pargv[i]; i++)
		hasher_stream_update(h, pargv[i], strlen(pargv[i]) + 1);
	for (int i = 0; chain_env[i]; i++) {
		const char *v = getenv(chain_env[i]);
		hasher_stream_update(h, v ? v : "\x01", v ? strlen(v) + 1 : 1);
	}
	hasher_digest d;
	hasher_stream_final(h, &d);
	hasher_stream_free(h);
	char key[64], hex[HASHER_HEX_LEN + 1], val[16384];
	hasher_digest_to_hex(&d, hex);
	snprintf(key, sizeof(key), "chain4:%s", hex);
	if (cache->get(cache->arg, key, val, sizeof(val)) == 0 && chain_load(val, ch)) {
		free(pargv);
		return 0;
	}
	chain_clear(ch);
	char *err = NULL;
	int r = run_pass(cc->prog, pargv, &err);
	free(pargv);
	if (r != 0 || !err) {
		free(err);
		return r < 0 ? r : -EIO;
	}
	r = chain_parse(err, cc->cwd, ch);
	free(err);
	if (r == 0 && ch->n == 0)
		r = -EIO;
	char *s = r == 0 ? chain_format(ch) : NULL;
	if (s && strlen(s) < sizeof(val))
		cache->put(cache->arg, key, s);
	free(s);
	return r;
}

/* ---- dependencies ------------------------------------------------------------- */

struct deps {
	char **paths; /* real paths */
	size_t n;
	char **given; /* the same as the dependency file names them (made
			 absolute, "." and ".." taken out lexically) */
	size_t ngiven;
	char **found; /* the paths as the search may have found them: real,
			 as spelled (made absolute, "." and ".." taken out
			 lexically) and with its directory's real path */
	size_t nfound;
	const char *cwd;
	int err;
};

/* p as one of a header's spellings, unless one of the same header's
 * (found[from..]) is the same: a header's few spellings are compared, not
 * every header's (a compile lists hundreds). */
static void found_add(struct deps *d, size_t from, const char *p)
{
	for (size_t i = from; i < d->nfound; i++)
		if (!strcmp(d->found[i], p))
			return;
	if (push(&d->found, &d->nfound, p) < 0)
		d->err = -ENOMEM;
}

static int dep_cb(void *arg, const char *path)
{
	struct deps *d = arg;
	char abs[PATH_MAX], real[PATH_MAX], alt[PATH_MAX], dir[PATH_MAX];
	if (snprintf(abs, sizeof(abs), "%s%s%s", path[0] == '/' ? "" : d->cwd, path[0] == '/' ? "" : "/", path) >=
	    (int)sizeof(abs))
		return 0;
	/* no file at all (#include "/dev/stdin" reads a pipe): what the
	 * compile read cannot be said */
	if (!strncmp(abs, "/dev/", 5) || !strncmp(abs, "/proc/", 6)) {
		d->err = -ENOLINK;
		return 0;
	}
	if (!cli_realpath(abs, real))
		return 0; /* gone since (a link's temporary objects) */
	action_path_lexical(abs, alt, sizeof(alt));
	if (push(&d->paths, &d->n, real) < 0 || push(&d->given, &d->ngiven, alt) < 0)
		d->err = -ENOMEM;
	/* a header that is a symlink was found by its own name, not its
	 * target's: the search chain knows the name */
	size_t from = d->nfound;
	found_add(d, from, real);
	found_add(d, from, alt);
	char *slash = strrchr(alt, '/');
	if (slash && slash != alt) {
		*slash = '\0';
		if (cli_realpath(alt, dir) && (size_t)snprintf(real, sizeof(real), "%s/%s", dir, slash + 1) < sizeof(real))
			found_add(d, from, real);
	}
	return 0;
}

static void deps_clear(struct deps *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->paths[i]);
	free(d->paths);
	for (size_t i = 0; i < d->ngiven; i++)
		free(d->given[i]);
	free(d->given);
	for (size_t i = 0; i < d->nfound; i++)
		free(d->found[i]);
	free(d->found);
}

static int read_deps(const char *file, struct deps *d)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	char *buf = NULL;
	int r = -EIO;
	if (fstat(fd, &st) == 0 && st.st_size < (64 << 20) && (buf = malloc((size_t)st.st_size + 1)) &&
	    cache_io_read(fd, buf, (size_t)st.st_size, 0) == st.st_size)
		r = action_depfile_parse(buf, (size_t)st.st_size, dep_cb, d);
	free(buf);
	close(fd);
	return r < 0 ? r : d->err;
}

/* ---- __has_include ----------------------------------------------------------- */

/* A name a compile asked __has_include (or __has_include_next) about need
 * not be in its dependency file: when no directory held it, or when it was
 * found and not included.  Every file the compile read is scanned for
 * such queries, and for each name every directory of the search chain
 * outside the mount (and the querying file's own, for "name") is recorded
 * as it is: the file there as an input, or its first missing component as
 * absent.  More than the search looked at (it stops at the first it finds;
 * __has_include_next starts further on), never less.  On the mount the
 * lookups are traced. */
struct hi {
	const ccdeps_compile *cc;
	const struct chain *ch;
	const char *own_dir;   /* the querying file's directory, as named */
	char ***absent, ***inputs;
	size_t *nabsent, *ninputs;
	ccdeps_add_fn add;
	void *arg;
};

/* What the file at path outside the mount is, recorded unless recorded
 * before: a regular file as an input, else its first missing component as
 * absent (a directory or device by that name: not said). */
static int record_path(struct hi *h, const char *path)
{
	char first[PATH_MAX];
	struct stat st;
	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return -ENOLINK;
		if (on_mount(path, h->cc->mnt) || under_any(*h->inputs, *h->ninputs, path))
			return 0;
		int r = push(h->inputs, h->ninputs, path);
		if (r == 0)
			h->add(h->arg, CCDEPS_FILE, path);
		return r;
	}
	if (errno != ENOENT && errno != ENOTDIR)
		return -ENOLINK;
	if (first_missing(path, first, sizeof(first)) < 0)
		snprintf(first, sizeof(first), "%s", path);
	if (on_mount(first, h->cc->mnt) || under_any(*h->absent, *h->nabsent, first))
		return 0;
	int r = push(h->absent, h->nabsent, first);
	if (r == 0)
		h->add(h->arg, CCDEPS_ABSENT, first);
	return r;
}

/* What dir/rel is, recorded unless on the mount or recorded before. */
static int hi_probe(struct hi *h, const char *dir, const char *rel)
{
	char cand[PATH_MAX];
	if (on_mount(dir, h->cc->mnt))
		return 0;
	if (snprintf(cand, sizeof(cand), "%s/%s", dir, rel) >= (int)sizeof(cand))
		return -ENAMETOOLONG;
	return record_path(h, cand);
}

/* path, a NAME.gch gcc would read instead of NAME: recorded as it is (its
 * lookup on the mount is traced). */
static int gch_probe(struct hi *h, const char *path)
{
	return on_mount(path, h->cc->mnt) ? 0 : record_path(h, path);
}

/* A query found in a file (hiscan_fn): every place its search looks. */
static int hi_name(void *arg, bool quote, const char *name, size_t len)
{
	struct hi *h = arg;
	char rel[PATH_MAX];
	if (len >= sizeof(rel))
		return -ENAMETOOLONG;
	memcpy(rel, name, len);
	rel[len] = '\0';
	if (rel[0] == '/') {
		char *slash = strrchr(rel, '/');
		*slash = '\0';
		return hi_probe(h, rel[0] ? rel : "/", slash + 1);
	}
	int r = quote && h->own_dir ? hi_probe(h, h->own_dir, rel) : 0;
	for (size_t k = 0; r == 0 && k < h->ch->n; k++)
		r = hi_probe(h, h->ch->dirs[k], rel);
	return r;
}

/* h's querying file is the one named given: its directory (into dir) is
 * the one a "name" query searches first. */
static void hi_own_dir(struct hi *h, const char *given, char *dir, size_t size)
{
	snprintf(dir, size, "%s", given);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	h->own_dir = slash && dir[0] ? dir : NULL;
}

/* Scans the file at path (named given). */
static int hi_file(struct hi *h, const char *path, const char *given)
{
	char dir[PATH_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno; /* gone: the daemon sees that */
	struct stat st;
	char *buf = NULL;
	int r = -EIO;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (64 << 20) &&
	    (buf = malloc((size_t)st.st_size + 1)) && cache_io_read(fd, buf, (size_t)st.st_size, 0) == st.st_size) {
		hi_own_dir(h, given, dir, sizeof(dir));
		r = hiscan(buf, (size_t)st.st_size, hi_name, h);
	}
	free(buf);
	close(fd);
	return r;
}

/* The daemon's scan of the file named given (ccdeps_cache.scan's answer,
 * len bytes, not 'n'): its queries searched as hi_file would. */
static int hi_answer(struct hi *h, const char *a, size_t len, const char *given)
{
	char dir[PATH_MAX];
	if (a[0] == 'x')
		return -ENOLINK;
	if (a[0] != '1')
		return a[0] == '0' ? 0 : -EBADMSG;
	hi_own_dir(h, given, dir, sizeof(dir));
	int r = 0;
	for (size_t i = 1; r == 0 && i < len;) {
		const char *nl = memchr(a + i, '\n', len - i);
		if (!nl || nl == a + i + 1)
			return -EBADMSG;
		r = hi_name(h, a[i] == '"', a + i + 1, (size_t)(nl - a - i - 1));
		i = (size_t)(nl - a) + 1;
	}
	return r;
}

/* Asks the daemon to scan the files on the mount in d (their first n):
 * ans[i] and alen[i] where it answered (ans zeroed by the caller). */
static void hi_ask(const ccdeps_compile *cc, const ccdeps_cache *cache, const struct deps *d, size_t n, char **ans,
		   size_t *alen)
{
	char **rels = calloc(n + 1, sizeof(*rels));
	size_t ml = strlen(cc->mnt), k = 0;
	for (size_t i = 0; rels && i < n; i++)
		if (on_mount(d->paths[i], cc->mnt) && d->paths[i][ml] == '/') {
			rels[i] = d->paths[i] + ml + 1;
			k++;
		}
	if (k)
		cache->scan(cache->arg, rels, n, ans, alen);
	free(rels);
}

bool ccdeps_user_complete(char **argv, const char **file)
{
	bool complete = false;
	*file = NULL;
	for (int i = 1; argv[i]; i++) {
		if (!strcmp(argv[i], "-MD") || !strcmp(argv[i], "-M"))
			complete = true;
		else if (!strcmp(argv[i], "-MMD") || !strcmp(argv[i], "-MM"))
			return false;
		else if (!strcmp(argv[i], "-MF") && argv[i + 1])
			*file = argv[++i];
		else if (!strncmp(argv[i], "-MF", 3))
			*file = argv[i] + 3;
	}
	return complete && *file;
}

const char *ccdeps_user_depfile(char **argv, char *buf, size_t size)
{
	const char *mf = NULL, *out = NULL;
	bool side = false;
	for (int i = 1; argv[i]; i++) {
		if (!strcmp(argv[i], "-MD") || !strcmp(argv[i], "-MMD"))
			side = true;
		else if (!strcmp(argv[i], "-M") || !strcmp(argv[i], "-MM"))
			return NULL; /* the list is the output (stdout or -o) */
		else if (!strcmp(argv[i], "-MF") && argv[i + 1])
			mf = argv[++i];
		else if (!strncmp(argv[i], "-MF", 3))
			mf = argv[i] + 3;
		else if (!strcmp(argv[i], "-o") && argv[i + 1])
			out = argv[++i];
	}
	if (!side || (!mf && !out))
		return NULL;
	if (mf) {
		if ((size_t)snprintf(buf, size, "%s", mf) >= size)
			return NULL;
		return buf;
	}
	const char *base = strrchr(out, '/'), *dot = strrchr(base ? base + 1 : out, '.');
	size_t keep = dot && dot != (base ? base + 1 : out) ? (size_t)(dot - out) : strlen(out);
	if ((size_t)snprintf(buf, size, "%.*s.d", (int)keep, out) >= size)
		return NULL;
	return buf;
}

/* Whether path (real) is a file the command names (a source, an -include
 * file): read by its name, not found by a search. */
static bool named_by_argv(const ccdeps_compile *cc, const char *path)
{
	for (size_t i = 1; cc->argv[i]; i++) {
		const char *a = cc->argv[i];
		char abs[PATH_MAX], real[PATH_MAX];
		if (a[0] == '-')
			continue;
		if (snprintf(abs, sizeof(abs), "%s%s%s", a[0] == '/' ? "" : cc->cwd, a[0] == '/' ? "" : "/", a) <
			    (int)sizeof(abs) &&
		    cli_realpath(abs, real) && !strcmp(real, path))
			return true;
	}
	return false;
}

int ccdeps_collect(const ccdeps_compile *cc, const char *depfile, const ccdeps_cache *cache, ccdeps_add_fn add,
		   void *arg)
{
	struct deps d = { .cwd = cc->cwd };
	struct chain ch = { 0 };
	char priv[64] = "";
	int r;
	if (!depfile) {
		/* -MMD/-MM leave system headers out: one pass lists them all */
		const char *tmp = getenv("TMPDIR");
		snprintf(priv, sizeof(priv), "%s/casfs-dep.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
		int fd = mkstemp(priv);
		if (fd < 0)
			return -errno;
		close(fd);
		const char *extra[] = { "-E", "-M", "-MF", priv, "-o", "/dev/null", NULL };
		char **pargv = pass_argv(cc->argv, true, extra);
		r = pargv ? run_pass(cc->prog, pargv, NULL) : -ENOMEM;
		free(pargv);
		if (r != 0) {
			unlink(priv);
			return r < 0 ? r : -EIO;
		}
		depfile = priv;
	}
	r = read_deps(depfile, &d);
	if (priv[0])
		unlink(priv);
	if (r == 0)
		r = cc_chain(cc, cache, &ch);
	if (r < 0)
		goto out;
	/* a header outside the mount found in no directory of the search
	 * chain, under neither its name in the dependency file nor its real
	 * path, was reached through a symlink by a name casfs does not know
	 * (gcc writes system headers by their real paths): what must stay
	 * true for a hit (that name, the names before it) cannot be said */
	for (size_t i = 0; r == 0 && i < d.n && i < d.ngiven; i++)
		if (!on_mount(d.paths[i], cc->mnt) && !under_any(ch.dirs, ch.n, d.paths[i]) &&
		    !under_any(ch.dirs, ch.n, d.given[i]) && !named_by_argv(cc, d.paths[i]))
			r = -ENOLINK;
	if (r < 0)
		goto out;
	/* absences added, so none is added twice or below another */
	char **absent = NULL;
	size_t nabsent = 0;
	for (size_t i = 0; r == 0 && i < ch.nmissing; i++)
		if (!on_mount(ch.missing[i], cc->mnt) && !under_any(absent, nabsent, ch.missing[i]) &&
		    (r = push(&absent, &nabsent, ch.missing[i])) == 0)
			add(arg, CCDEPS_ABSENT, ch.missing[i]);
	for (size_t i = 0; i < d.n; i++)
		if (!on_mount(d.paths[i], cc->mnt))
			add(arg, CCDEPS_FILE, d.paths[i]);
	for (size_t i = 0; i < ch.nlinks; i++)
		if (!on_mount(ch.links[i], cc->mnt))
			add(arg, CCDEPS_LINK, ch.links[i]);
	for (size_t i = 0; r == 0 && i < d.nfound; i++) {
		const char *p = d.found[i];
		/* found in chain directory k as rel (every k that holds it: the
		 * spelling is not known): rel must stay absent before k */
		for (size_t k = 0; k < ch.n; k++) {
			size_t dl = strlen(ch.dirs[k]);
			if (strncmp(p, ch.dirs[k], dl) != 0 || p[dl] != '/')
				continue;
			const char *rel = p + dl + 1;
			for (size_t j = 0; j < k; j++) {
				char cand[PATH_MAX];
				if (on_mount(ch.dirs[j], cc->mnt) || !strcmp(ch.dirs[j], ch.dirs[k]))
					continue; /* on the mount, lookups there are traced */
				struct stat st;
				char first[PATH_MAX];
				/* one that exists was not this spelling's (or was
				 * passed over by #include_next): only absences
				 * count, each as its first missing component */
				if (snprintf(cand, sizeof(cand), "%s/%s", ch.dirs[j], rel) >= (int)sizeof(cand) ||
				    under_any(absent, nabsent, cand) || lstat(cand, &st) == 0 ||
				    (errno != ENOENT && errno != ENOTDIR))
					continue;
				if (first_missing(cand, first, sizeof(first)) < 0)
					snprintf(first, sizeof(first), "%s", cand);
				if (!under_any(absent, nabsent, first) && !on_mount(first, cc->mnt) &&
				    (r = push(&absent, &nabsent, first)) == 0)
					add(arg, CCDEPS_ABSENT, first);
			}
		}
	}
	char **inputs = NULL;
	size_t ninputs = 0;
	struct hi h = { cc, &ch, NULL, &absent, &inputs, &nabsent, &ninputs, add, arg };
	/* a precompiled header gcc would take instead (NAME.gch beside the
	 * header): for what -include and -imacros name, and for the first
	 * header the source includes (a PCH serves only before any code);
	 * its use leaves no trace in the dependency file */
	for (size_t i = 1; r == 0 && cc->argv[i]; i++) {
		const char *f = NULL;
		if ((!strcmp(cc->argv[i], "-include") || !strcmp(cc->argv[i], "-imacros")) && cc->argv[i + 1])
			f = cc->argv[++i];
		else if (!strncmp(cc->argv[i], "-include", 8) && cc->argv[i][8])
			f = cc->argv[i] + 8;
		char abs[PATH_MAX];
		if (f && snprintf(abs, sizeof(abs), "%s%s%s.gch", f[0] == '/' ? "" : cc->cwd, f[0] == '/' ? "" : "/", f) <
				 (int)sizeof(abs))
			r = gch_probe(&h, abs);
	}
	for (size_t i = 1; r == 0 && i < d.ngiven && i < 3; i++) {
		char abs[PATH_MAX];
		if (snprintf(abs, sizeof(abs), "%s.gch", d.given[i]) < (int)sizeof(abs))
			r = gch_probe(&h, abs);
		/* gcc looks for NAME.gch in each directory of the search before
		 * NAME there: every one up to where it found NAME */
		for (size_t k = 0; r == 0 && k < ch.n; k++) {
			size_t dl = strlen(ch.dirs[k]);
			if (strncmp(d.paths[i], ch.dirs[k], dl) != 0 || d.paths[i][dl] != '/')
				continue;
			for (size_t j = 0; r == 0 && j <= k; j++)
				if (snprintf(abs, sizeof(abs), "%s/%s.gch", ch.dirs[j], d.paths[i] + dl + 1) <
				    (int)sizeof(abs))
					r = gch_probe(&h, abs);
			break;
		}
	}
	/* the files on the mount: scanned by the daemon where the run read
	 * them, as they were read (no FUSE round trips) */
	size_t nscan = d.n < d.ngiven ? d.n : d.ngiven;
	char **ans = r == 0 && cache->scan ? calloc(nscan + 1, sizeof(*ans)) : NULL;
	size_t *alen = ans ? calloc(nscan + 1, sizeof(*alen)) : NULL;
	if (ans && alen)
		hi_ask(cc, cache, &d, nscan, ans, alen);
	for (size_t i = 0; r == 0 && i < nscan; i++)
		r = ans && alen && ans[i] && ans[i][0] != 'n' ? hi_answer(&h, ans[i], alen[i], d.given[i]) :
								hi_file(&h, d.paths[i], d.given[i]);
	for (size_t i = 0; ans && i < nscan; i++)
		free(ans[i]);
	free(ans);
	free(alen);
	for (size_t i = 0; i < ninputs; i++)
		free(inputs[i]);
	free(inputs);
	for (size_t i = 0; i < nabsent; i++)
		free(absent[i]);
	free(absent);
out:
	deps_clear(&d);
	chain_clear(&ch);
	return r;
}

int ccdeps_link(const ccdeps_compile *cc, const char *depfile, ccdeps_add_fn add, void *arg)
{
	struct deps d = { .cwd = cc->cwd };
	int r = read_deps(depfile, &d);
	for (size_t i = 0; r == 0 && i < d.n; i++)
		if (!on_mount(d.paths[i], cc->mnt))
			add(arg, CCDEPS_FILE, d.paths[i]);
	deps_clear(&d);
	return r;
}
