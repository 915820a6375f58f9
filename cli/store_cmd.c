/* store_cmd.c — casfs put / get / gc / fsck / store: the content store from
 * the command line (no mount needed).
 *
 * Exit status of every command: 0 success, 1 failure (a file that could not
 * be stored or restored, problems that remain), 2 usage error.  Each
 * command opens the store's index once (LMDB allows one environment per
 * process).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "cli.h"
#include "gc.h"
#include "index.h"
#include "store.h"

#define STORE_OPT_HELP \
	"  --store DIR        store directory (default $CASFS_STORE, else\n" \
	"                     $XDG_CACHE_HOME/casfs, else ~/.cache/casfs)\n"

#define EXIT_HELP \
	"\nExit status: 0 success, 1 failure, 2 usage error.\n"

static const char put_usage[] =
	"usage: casfs put [--store DIR] [--compression auto|none|zstd] [--level N] FILE...\n"
	"\n"
	"Stores the content of each regular FILE in the store and prints\n"
	"'<hex>  <FILE>' as xxh128sum does; the hex digest is the name to give\n"
	"'casfs get'.  Content already stored is not stored again.  A FILE that\n"
	"cannot be stored gets its own error line; the others are still stored.\n"
	"When the store is then over its limit, the least recently used contents\n"
	"are evicted (as 'casfs gc' does).\n"
	"\n"
	STORE_OPT_HELP
	"  --compression MODE auto (default): share the file's blocks (reflink)\n"
	"                     where the store's filesystem can, else zstd when that\n"
	"                     saves at least 3%, else as is; none: never compress\n"
	"                     (reflink still where possible); zstd: always compress\n"
	"  --level N          zstd level, 1 (fast, the default) to 22 (small)\n"
	EXIT_HELP;

static const char get_usage[] =
	"usage: casfs get [--store DIR] HEX DEST\n"
	"\n"
	"Restores the stored content with digest HEX (32 hex characters, as\n"
	"'casfs put' printed them) as the file DEST, or as DEST/HEX when DEST is a\n"
	"directory.  The content is verified before it is written; the new file\n"
	"(mode 0666 minus the umask, current mtime) replaces DEST atomically.\n"
	"Content that fails verification is moved to the store's quarantine/ and\n"
	"nothing is written.\n"
	"\n"
	STORE_OPT_HELP
	EXIT_HELP;

static const char gc_usage[] =
	"usage: casfs gc [--store DIR] [--max-size SIZE]\n"
	"\n"
	"When the store holds more than its limit, evicts contents in order of\n"
	"last use, oldest first, until it holds 90% of the limit.  Contents being\n"
	"read are skipped.  Prints the limit, the stored bytes before and after\n"
	"and what was evicted.\n"
	"\n"
	STORE_OPT_HELP
	"  --max-size SIZE    set the store's limit (kept in the store, as ccache -M\n"
	"                     does) and collect down to it.  SIZE: bytes, or a\n"
	"                     number with K, M, G or T (powers of 1024; 'iB' or 'B'\n"
	"                     may follow): 5G, 500M, 1.5GiB, 123456.  The default\n"
	"                     limit is 5 GiB.\n"
	EXIT_HELP;

static const char fsck_usage[] =
	"usage: casfs fsck [--store DIR] [--repair]\n"
	"\n"
	"Verifies every stored content (header, size, digest of the decoded\n"
	"payload) and compares it with the index; finds index records without\n"
	"content and wrong totals.  Prints one line per finding and a summary.\n"
	"Temp files left by killed writers are removed (reported, not a problem);\n"
	"content stored by a writer killed before it was recorded is recorded.\n"
	"\n"
	STORE_OPT_HELP
	"  --repair           move corrupt contents and unknown files to quarantine/,\n"
	"                     drop records without content, recount the totals\n"
	"\nExit status: 0 no problem remains, 1 problems remain (run\n"
	"casfs fsck --repair) or the store could not be checked, 2 usage error.\n";

static const char store_usage[] =
	"usage: casfs store [--store DIR] [--json]\n"
	"\n"
	"Prints the store's path, its number of contents (blobs), their size\n"
	"(logical) and what they take on disk (stored), the compression ratio,\n"
	"what deduplication saved, evictions, corrupt contents found and the\n"
	"limit.  --json prints one object with exact byte counts.  A store that\n"
	"does not exist yet is reported empty and not created.\n"
	"\n"
	STORE_OPT_HELP
	"  --json             JSON output\n"
	EXIT_HELP;

enum { OPT_STORE = 0x100, OPT_COMPRESSION, OPT_LEVEL, OPT_MAX_SIZE, OPT_REPAIR, OPT_JSON };

/* ---- shared helpers -------------------------------------------------------- */

/* Usage error: message, then the command's usage, on stderr.  Returns 2. */
static int usage_error(const char *usage, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int usage_error(const char *usage, const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fputs("casfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see casfs %s --help)\n\n", cmd);
	fputs(usage, stderr);
	return 2;
}

/* Handles getopt_long's '?' and ':' returns.  Returns 2. */
static int bad_option(const char *usage, const char *cmd, int c, char **argv)
{
	char shortopt[3] = { '-', (char)optopt, '\0' };
	const char *opt = optopt && optopt < 0x100 ? shortopt : argv[optind - 1];
	if (c == ':')
		return usage_error(usage, cmd, "option '%s' needs a value", opt);
	return usage_error(usage, cmd, "unknown option '%s'", opt);
}

/* Exit status rc, or 1 when stdout could not be written (a digest that
 * never reached the reader is a failure). */
static int finish_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("cannot write the output: %s", strerror(errno));
		return 1;
	}
	return rc;
}

static const char *human(uint64_t bytes, char buf[32])
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (bytes < 1024) {
		snprintf(buf, 32, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	double v = (double)bytes;
	int i = 0;
	while (v >= 1024 && i < 6) {
		v /= 1024;
		i++;
	}
	snprintf(buf, 32, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[i]);
	return buf;
}

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/* The store's path: --store, else the default.  0, or -1 after an error. */
static int store_path_of(const char *arg, char *buf, size_t len)
{
	if (arg) {
		if (!*arg) {
			cli_error("--store needs a directory (an empty path was given)");
			return -1;
		}
		if ((size_t)snprintf(buf, len, "%s", arg) >= len) {
			cli_error("store path %s is too long", arg);
			return -1;
		}
		return 0;
	}
	int r = cache_store_default_path(buf, len);
	if (r == -ENOENT) {
		cli_error("no store directory: set CASFS_STORE or HOME, or pass --store DIR");
		return -1;
	}
	if (r < 0) {
		cli_error("the default store path is too long: pass --store DIR");
		return -1;
	}
	return 0;
}

static void store_open_error(const char *path, int r, const char *errmsg)
{
	if (r == -EPROTO)
		/* the message names the fix */
		cli_error("store %s %s", path, errmsg ? errmsg : "was written by a newer casfs: upgrade casfs");
	else if (r == -ENOTDIR || r == -EINVAL)
		/* the message says what is wrong; errno adds nothing */
		cli_error("store %s %s: pass --store DIR to use another", path, errmsg ? errmsg : "cannot be used");
	else
		cli_error("store %s %s (%s): pass --store DIR to use another", path,
			  errmsg ? errmsg : "cannot be used", strerror(-r));
}

/* Opens the store at path and its index.  0, or -1 after an error. */
static int open_store_path(const char *path, cache_store **s, cache_index **ix)
{
	const char *errmsg = NULL;
	int r = cache_store_open(path, s, &errmsg);
	if (r < 0) {
		store_open_error(path, r, errmsg);
		return -1;
	}
	r = cache_index_open(*s, ix);
	if (r < 0) {
		if (r == -EACCES || r == -EROFS || r == -EPERM)
			cli_error("store %s: its index %s/index.lmdb cannot be opened for writing (%s): "
				  "pass --store DIR to use another", path, cache_store_path(*s), strerror(-r));
		else if (r == -EIO)
			cli_error("store %s: its index %s/index.lmdb is damaged or from an incompatible LMDB: "
				  "remove it (the contents are kept; casfs fsck records them again)",
				  path, cache_store_path(*s));
		else
			cli_error("store %s: cannot open its index %s/index.lmdb (%s)", path,
				  cache_store_path(*s), strerror(-r));
		cache_store_close(*s);
		*s = NULL;
		return -1;
	}
	return 0;
}

static int open_store(const char *arg, cache_store **s, cache_index **ix)
{
	char path[PATH_MAX];
	if (store_path_of(arg, path, sizeof(path)) < 0)
		return -1;
	return open_store_path(path, s, ix);
}

static void close_store(cache_store *s, cache_index *ix)
{
	cache_index_close(ix);
	cache_store_close(s);
}

/* ---- progress bar (stderr, only on a terminal) ----------------------------- */

struct progress {
	bool on;
	bool drawn;
	bool bytes;       /* units: bytes, else items */
	const char *what;
	int last_permille;
	int64_t last_ns;
};

static void progress_init(struct progress *p, const char *what, bool bytes)
{
	memset(p, 0, sizeof(*p));
	p->on = isatty(STDERR_FILENO) == 1;
	p->what = what;
	p->bytes = bytes;
	p->last_permille = -1;
}

static void progress_draw(uint64_t done, uint64_t total, void *arg)
{
	struct progress *p = arg;
	if (!p->on || total == 0)
		return;
	if (done > total)
		done = total;
	int permille = (int)(done * 1000 / total);
	int64_t now = cache_now_ns();
	if (permille == p->last_permille || (now - p->last_ns < 100000000LL && permille < 1000))
		return;
	p->last_permille = permille;
	p->last_ns = now;
	char bar[31], a[32], b[32];
	int fill = permille * 30 / 1000;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(30 - fill));
	bar[30] = '\0';
	if (p->bytes)
		fprintf(stderr, "\r%s [%s] %3d%% %s of %s\033[K", p->what, bar, permille / 10, human(done, a),
			human(total, b));
	else
		fprintf(stderr, "\r%s [%s] %3d%% %llu of %llu\033[K", p->what, bar, permille / 10,
			(unsigned long long)done, (unsigned long long)total);
	fflush(stderr);
	p->drawn = true;
}

/* Clears the bar's line (before other output, and at the end). */
static void progress_clear(struct progress *p)
{
	if (p->on && p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
		p->last_permille = -1;
		p->last_ns = 0;
	}
}

/* ---- put --------------------------------------------------------------------- */

static int put_one(cache_index *ix, const char *path, const cache_put_opts *o, cache_put_result *res)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	int r = cache_put_fd(ix, fd, o, res);
	close(fd);
	return r;
}

static void put_error(const char *path, const char *store, int r)
{
	switch (-r) {
	case ENOENT:
		cli_error("put: %s: no such file", path);
		break;
	case EISDIR:
		cli_error("put: %s: is a directory (give regular files)", path);
		break;
	case EINVAL:
		cli_error("put: %s: not a regular file (give regular files)", path);
		break;
	case EACCES:
	case EPERM:
		cli_error("put: %s: cannot be read (permission denied)", path);
		break;
	case ENOSPC:
	case EDQUOT:
		cli_error("put: %s: not stored: no space left in the store %s (its disk, quota or index is full): "
			  "free space, or lower the limit with casfs gc --max-size SIZE", path, store);
		break;
	case EROFS:
		cli_error("put: %s: not stored: the store %s is on a read-only filesystem", path, store);
		break;
	default:
		cli_error("put: %s: %s", path, strerror(-r));
	}
}

int cmd_put(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "compression", required_argument, NULL, OPT_COMPRESSION },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *store_arg = NULL;
	/* records are committed in batches: one index fsync for many files */
	cache_put_opts opts = { .mode = CACHE_PUT_AUTO, .defer_record = true };
	bool have_level = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE: store_arg = optarg; break;
		case OPT_COMPRESSION:
			if (cli_parse_compression(optarg, &opts.mode) < 0)
				return usage_error(put_usage, "put",
						   "bad value '%s' for --compression: give auto, none or zstd", optarg);
			break;
		case OPT_LEVEL:
			if (cli_parse_level(optarg, &opts.zstd_level) < 0)
				return usage_error(put_usage, "put",
						   "bad value '%s' for --level: give a zstd level from 1 to 22", optarg);
			have_level = true;
			break;
		case 'h': fputs(put_usage, stdout); return 0;
		default: return bad_option(put_usage, "put", c, argv);
		}
	}
	if (have_level && opts.mode == CACHE_PUT_RAW)
		return usage_error(put_usage, "put", "%s", "--level has no effect with --compression none: drop one of them");
	if (optind >= argc)
		return usage_error(put_usage, "put", "%s", "put needs at least one FILE");

	cache_store *s;
	cache_index *ix;
	if (open_store(store_arg, &s, &ix) < 0)
		return 1;
	int failed = 0;
	for (int i = optind; i < argc; i++) {
		cache_put_result res;
		int r = put_one(ix, argv[i], &opts, &res);
		if (r < 0) {
			fflush(stdout);
			put_error(argv[i], cache_store_path(s), r);
			failed++;
			continue;
		}
		char hex[HASHER_HEX_LEN + 1];
		hasher_digest_to_hex(&res.digest, hex);
		printf("%s  %s\n", hex, argv[i]);
	}
	fflush(stdout);
	int fr = cache_index_flush(ix);
	if (fr < 0) {
		cli_error("put: the index of store %s could not record the last contents stored (%s); "
			  "they are kept, and casfs fsck records them", cache_store_path(s), strerror(-fr));
		failed++;
	}

	/* Keep the store bounded, quietly; a gc already running elsewhere does
	 * the work. */
	cache_totals t;
	if (cache_index_totals(ix, &t) == 0 && t.stored > cache_totals_max_size(&t)) {
		cache_gc_result gr;
		int r = cache_gc(ix, 0, false, NULL, NULL, &gr);
		if (r < 0 && r != -EBUSY)
			cli_error("put: the store %s is over its limit and could not be collected (%s): run casfs gc",
				  cache_store_path(s), strerror(-r));
	}
	close_store(s, ix);
	return finish_stdout(failed ? 1 : 0);
}

/* ---- get --------------------------------------------------------------------- */

static bool is_hex_digest(const char *s)
{
	if (strlen(s) != HASHER_HEX_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!isxdigit((unsigned char)*p))
			return false;
	return true;
}

int cmd_get(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *store_arg = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE: store_arg = optarg; break;
		case 'h': fputs(get_usage, stdout); return 0;
		default: return bad_option(get_usage, "get", c, argv);
		}
	}
	if (argc - optind != 2)
		return usage_error(get_usage, "get", "%s",
				   argc - optind < 2 ? "get needs HEX and DEST" : "get takes exactly HEX and DEST");
	const char *hexarg = argv[optind], *dest = argv[optind + 1];
	hasher_digest d;
	if (!is_hex_digest(hexarg) || hasher_digest_from_hex(hexarg, HASHER_HEX_LEN, &d) < 0) {
		cli_error("get: '%s' is not a digest: give the 32 hex characters 'casfs put' printed", hexarg);
		return 1;
	}
	char hex[HASHER_HEX_LEN + 1];
	hasher_digest_to_hex(&d, hex);
	if (!*dest) {
		cli_error("get: DEST is empty: give a file or directory to write");
		return 1;
	}

	/* DEST, or DEST/HEX when DEST is a directory: split into parent + name */
	char target[PATH_MAX], parent[PATH_MAX];
	const char *name;
	struct stat st;
	size_t dlen = strlen(dest);
	if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (snprintf(target, sizeof(target), "%s%s%s", dest, dest[dlen - 1] == '/' ? "" : "/", hex) >=
		    (int)sizeof(target)) {
			cli_error("get: %s: path too long", dest);
			return 1;
		}
		snprintf(parent, sizeof(parent), "%s", dest);
		name = hex;
	} else {
		if (dest[dlen - 1] == '/') {
			if (errno == ENOENT)
				cli_error("get: directory %s does not exist: create it first", dest);
			else
				cli_error("get: %s is not a directory", dest);
			return 1;
		}
		if (snprintf(target, sizeof(target), "%s", dest) >= (int)sizeof(target)) {
			cli_error("get: %s: path too long", dest);
			return 1;
		}
		char *slash = strrchr(target, '/');
		if (!slash) {
			snprintf(parent, sizeof(parent), ".");
			name = target;
		} else {
			size_t plen = (size_t)(slash - target);
			while (plen > 0 && target[plen - 1] == '/')
				plen--;
			if (plen == 0)
				snprintf(parent, sizeof(parent), "/");
			else
				snprintf(parent, sizeof(parent), "%.*s", (int)plen, target);
			name = slash + 1;
		}
	}
	int dirfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		if (errno == ENOENT)
			cli_error("get: cannot write %s: directory %s does not exist (create it first)", target, parent);
		else if (errno == ENOTDIR)
			cli_error("get: cannot write %s: %s is not a directory", target, parent);
		else
			cli_error("get: cannot write %s: %s: %s", target, parent, strerror(errno));
		return 1;
	}

	cache_store *s;
	cache_index *ix;
	if (open_store(store_arg, &s, &ix) < 0) {
		close(dirfd);
		return 1;
	}
	int r = cache_get_at(ix, &d, dirfd, name, 0666, NULL);
	close(dirfd);
	if (r < 0) {
		switch (-r) {
		case ENOENT:
			cli_error("get: %s is not in the store %s: store it with casfs put", hex, cache_store_path(s));
			break;
		case EBADMSG:
			cli_error("get: blob %s failed verification and was quarantined; put the content again", hex);
			break;
		case EPROTO:
			cli_error("get: blob %s was written by a newer casfs: upgrade casfs", hex);
			break;
		case ENOSPC:
		case EDQUOT:
			cli_error("get: cannot write %s: no space left on its filesystem (nothing was written)", target);
			break;
		case EISDIR:
			cli_error("get: cannot write %s: it is a directory", target);
			break;
		case EACCES:
		case EPERM:
			cli_error("get: cannot write %s: permission denied in %s", target, parent);
			break;
		case EROFS:
			cli_error("get: cannot write %s: %s is on a read-only filesystem", target, parent);
			break;
		default:
			cli_error("get: cannot restore %s as %s: %s", hex, target, strerror(-r));
		}
	}
	close_store(s, ix);
	return r < 0 ? 1 : 0;
}

/* ---- gc ----------------------------------------------------------------------- */

int cmd_gc(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "max-size", required_argument, NULL, OPT_MAX_SIZE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *store_arg = NULL;
	uint64_t max_size = 0;
	bool set_max = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE: store_arg = optarg; break;
		case OPT_MAX_SIZE: {
			int r = cli_parse_size(optarg, &max_size);
			if (r == -ERANGE)
				return usage_error(gc_usage, "gc", "size '%s' for --max-size is too large", optarg);
			if (r < 0)
				return usage_error(gc_usage, "gc",
						   "bad size '%s' for --max-size: give bytes or a number with K, M, G "
						   "or T (powers of 1024), e.g. 5G, 500M, 1.5GiB", optarg);
			if (max_size == 0)
				return usage_error(gc_usage, "gc", "size '%s' for --max-size: the limit must be more than 0 bytes",
						   optarg);
			set_max = true;
			break;
		}
		case 'h': fputs(gc_usage, stdout); return 0;
		default: return bad_option(gc_usage, "gc", c, argv);
		}
	}
	if (optind < argc)
		return usage_error(gc_usage, "gc", "unexpected argument '%s' (gc takes options only)", argv[optind]);

	cache_store *s;
	cache_index *ix;
	if (open_store(store_arg, &s, &ix) < 0)
		return 1;
	int r;
	if (set_max && (r = cache_index_set_max_size(ix, max_size)) < 0) {
		cli_error("gc: cannot set the limit of the store %s: %s", cache_store_path(s), strerror(-r));
		close_store(s, ix);
		return 1;
	}
	cache_totals before, after;
	if ((r = cache_index_totals(ix, &before)) < 0) {
		cli_error("gc: cannot read the totals of the store %s: %s", cache_store_path(s), strerror(-r));
		close_store(s, ix);
		return 1;
	}
	struct progress p;
	progress_init(&p, "gc", true);
	cache_gc_result res;
	r = cache_gc(ix, 0, true, progress_draw, &p, &res);
	progress_clear(&p);
	if (r < 0) {
		cli_error("gc: collecting the store %s failed: %s", cache_store_path(s), strerror(-r));
		close_store(s, ix);
		return 1;
	}
	if (cache_index_totals(ix, &after) < 0)
		after = before;
	char a[32], b[32];
	printf("store    %s\n", cache_store_path(s));
	printf("limit    %s (%llu bytes)%s\n", human(res.limit, a), (unsigned long long)res.limit,
	       set_max ? ", set now" : before.max_size ? "" : ", the default");
	printf("before   %s in %llu blob%s\n", human(res.before, a), (unsigned long long)before.blobs,
	       before.blobs == 1 ? "" : "s");
	printf("after    %s in %llu blob%s\n", human(res.after, a), (unsigned long long)after.blobs,
	       after.blobs == 1 ? "" : "s");
	printf("evicted  %llu blob%s (%s)\n", (unsigned long long)res.evicted, res.evicted == 1 ? "" : "s",
	       human(res.evicted_bytes, b));
	printf("skipped  %llu busy (in use)\n", (unsigned long long)res.busy);
	if (res.before <= res.limit)
		printf("the store is within its limit: nothing to evict\n");
	else if (res.after > res.limit)
		printf("the store is still over its limit: contents in use could not be evicted; run casfs gc again later\n");
	close_store(s, ix);
	return finish_stdout(0);
}

/* ---- fsck --------------------------------------------------------------------- */

struct fsck_ctx {
	struct progress p;
};

static void fsck_report(const char *kind, const char *path, const char *why, void *arg)
{
	struct fsck_ctx *c = arg;
	progress_clear(&c->p);
	printf("%s %s: %s\n", kind, path, why);
	fflush(stdout);
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "repair", no_argument, NULL, OPT_REPAIR },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *store_arg = NULL;
	bool repair = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE: store_arg = optarg; break;
		case OPT_REPAIR: repair = true; break;
		case 'h': fputs(fsck_usage, stdout); return 0;
		default: return bad_option(fsck_usage, "fsck", c, argv);
		}
	}
	if (optind < argc)
		return usage_error(fsck_usage, "fsck", "unexpected argument '%s' (fsck takes options only)", argv[optind]);

	cache_store *s;
	cache_index *ix;
	if (open_store(store_arg, &s, &ix) < 0)
		return 1;
	struct fsck_ctx ctx;
	progress_init(&ctx.p, "fsck", false);
	cache_fsck_result res;
	int r = cache_fsck(ix, repair, fsck_report, progress_draw, &ctx, &res);
	progress_clear(&ctx.p);
	if (r < 0) {
		cli_error("fsck: cannot check the store %s: %s", cache_store_path(s), strerror(-r));
		close_store(s, ix);
		return 1;
	}
	uint64_t found = res.corrupt + res.unknown + res.missing + res.mismatched + res.totals_wrong;
	uint64_t left = cache_fsck_problems(&res);
	printf("fsck: %llu blob%s ok", (unsigned long long)res.blobs_ok, res.blobs_ok == 1 ? "" : "s");
	const struct { uint64_t n; const char *what; } parts[] = {
		{ res.corrupt, "corrupt" },
		{ res.unknown, "unknown files" },
		{ res.missing, "records without a blob" },
		{ res.mismatched, "records that disagree with their blob" },
		{ res.totals_wrong, "wrong totals" },
	};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (parts[i].n)
			printf(", %llu %s", (unsigned long long)parts[i].n, parts[i].what);
	if (!found)
		printf(", no problems");
	else if (repair)
		printf("; %llu repaired", (unsigned long long)res.repaired);
	if (res.temps_removed)
		printf("; %llu stray temp file%s removed", (unsigned long long)res.temps_removed,
		       res.temps_removed == 1 ? "" : "s");
	if (res.adopted)
		printf("; %llu unrecorded blob%s recorded", (unsigned long long)res.adopted, res.adopted == 1 ? "" : "s");
	if (res.quarantined)
		printf("; %llu file%s in quarantine/", (unsigned long long)res.quarantined,
		       res.quarantined == 1 ? "" : "s");
	printf("\n");
	fflush(stdout);
	if (left) {
		if (repair)
			cli_error("fsck: %llu problem%s could not be repaired (see the lines above)",
				  (unsigned long long)left, left == 1 ? "" : "s");
		else
			cli_error("fsck: %llu problem%s found: run casfs fsck --repair", (unsigned long long)left,
				  left == 1 ? "" : "s");
	}
	close_store(s, ix);
	return finish_stdout(left ? 1 : 0);
}

/* ---- store statistics ---------------------------------------------------------- */

static void print_totals(const char *path, bool exists, const cache_totals *t, bool json, bool json_comma)
{
	uint64_t limit = cache_totals_max_size(t);
	if (json) {
		printf("%s{\"path\":", json_comma ? "," : "");
		json_string(path);
		printf(",\"exists\":%s,\"blobs\":%llu,\"logical\":%llu,\"stored\":%llu,\"compression_ratio\":",
		       exists ? "true" : "false", (unsigned long long)t->blobs, (unsigned long long)t->logical,
		       (unsigned long long)t->stored);
		if (t->stored)
			printf("%.4f", (double)t->logical / (double)t->stored);
		else
			printf("null");
		printf(",\"dedup_bytes\":%llu,\"dedup_hits\":%llu,\"evictions\":%llu,\"evicted_bytes\":%llu,"
		       "\"corrupt\":%llu,\"max_size\":%llu,\"max_size_default\":%s}",
		       (unsigned long long)t->dedup_bytes, (unsigned long long)t->dedup_hits,
		       (unsigned long long)t->evictions, (unsigned long long)t->evicted_bytes,
		       (unsigned long long)t->corrupt, (unsigned long long)limit, t->max_size ? "false" : "true");
		return;
	}
	char a[32];
	printf("store        %s%s\n", path, exists ? "" : " (not created yet)");
	printf("blobs        %llu\n", (unsigned long long)t->blobs);
	printf("logical      %s (%llu bytes)\n", human(t->logical, a), (unsigned long long)t->logical);
	printf("stored       %s (%llu bytes)\n", human(t->stored, a), (unsigned long long)t->stored);
	if (t->stored)
		printf("compression  %.2fx (logical / stored)\n", (double)t->logical / (double)t->stored);
	else
		printf("compression  -\n");
	printf("dedup        %s saved by %llu repeated put%s\n", human(t->dedup_bytes, a),
	       (unsigned long long)t->dedup_hits, t->dedup_hits == 1 ? "" : "s");
	printf("evictions    %llu blob%s (%s)\n", (unsigned long long)t->evictions, t->evictions == 1 ? "" : "s",
	       human(t->evicted_bytes, a));
	printf("corrupt      %llu blob%s found and quarantined\n", (unsigned long long)t->corrupt,
	       t->corrupt == 1 ? "" : "s");
	printf("limit        %s (%llu bytes%s), %.0f%% used\n", human(limit, a), (unsigned long long)limit,
	       t->max_size ? "" : ", the default", (double)t->stored * 100.0 / (double)limit);
}

int cli_print_store_stats(const char *store_path, bool json, bool json_comma)
{
	char path[PATH_MAX];
	struct stat st;
	if (store_path_of(store_path, path, sizeof(path)) < 0)
		return 1;
	if (stat(path, &st) < 0 && errno == ENOENT) {
		/* not created for a look */
		cache_totals t = { 0 };
		char abs[PATH_MAX];
		print_totals(cli_abspath(path, abs, sizeof(abs)) == 0 ? abs : path, false, &t, json, json_comma);
		return 0;
	}
	cache_store *s;
	cache_index *ix;
	if (open_store_path(path, &s, &ix) < 0)
		return 1;
	cache_totals t;
	int r = cache_index_totals(ix, &t);
	if (r < 0) {
		cli_error("store %s: cannot read its totals: %s", cache_store_path(s), strerror(-r));
		close_store(s, ix);
		return 1;
	}
	print_totals(cache_store_path(s), true, &t, json, json_comma);
	close_store(s, ix);
	return 0;
}

int cmd_store(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *store_arg = NULL;
	bool json = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE: store_arg = optarg; break;
		case OPT_JSON: json = true; break;
		case 'h': fputs(store_usage, stdout); return 0;
		default: return bad_option(store_usage, "store", c, argv);
		}
	}
	if (optind < argc)
		return usage_error(store_usage, "store", "unexpected argument '%s' (give the store with --store DIR)",
				   argv[optind]);
	int r = cli_print_store_stats(store_arg, json, false);
	if (r == 0 && json)
		putchar('\n');
	return finish_stdout(r);
}
