/* store_cmd.c — casfs put / get / gc / fsck / store: the content store from
 * the command line (no mount needed).
 *
 * Exit status of every command (enum cli_exit): 0 success, 1 failure (a
 * file that could not be stored or restored, problems that remain), 2 usage
 * error.  Each command opens the store's index once (LMDB allows one
 * environment per process).  Only put creates a store; get, gc, fsck and
 * store refuse a path that is not one.
 */
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

/* For the commands that only read or check a store. */
#define STORE_EXISTING_OPT_HELP \
	STORE_OPT_HELP \
	"                     (an existing store: a path that is not one is refused)\n"

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
	"                     (created when missing)\n"
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
	STORE_EXISTING_OPT_HELP
	EXIT_HELP;

static const char gc_usage[] =
	"usage: casfs gc [--store DIR] [--max-size SIZE]\n"
	"\n"
	"When the store holds more than its limit, evicts contents in order of\n"
	"last use, oldest first, until it holds 90% of the limit.  Contents being\n"
	"read are skipped.  Prints the limit, the stored bytes before and after\n"
	"and what was evicted.\n"
	"\n"
	STORE_EXISTING_OPT_HELP
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
	STORE_EXISTING_OPT_HELP
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
	"does not exist yet is reported empty and not created when it is the\n"
	"default one (no --store, no $CASFS_STORE).\n"
	"\n"
	STORE_EXISTING_OPT_HELP
	"  --json             JSON output\n"
	EXIT_HELP;

enum { OPT_STORE = 0x100, OPT_COMPRESSION, OPT_LEVEL, OPT_MAX_SIZE, OPT_REPAIR, OPT_JSON };

/* ---- shared helpers -------------------------------------------------------- */

/* The options of the store commands: --store and --help for all, the rest
 * where a command accepts them. */
struct store_args {
	const char *store;       /* --store, or NULL: the default store */
	cache_put_mode mode;     /* --compression */
	int level;               /* --level, 0: not given */
	uint64_t max_size;       /* --max-size, 0: not given */
	bool repair;             /* --repair */
	bool json;               /* --json */
	int first;               /* index of the first operand in argv */
};

static const struct option store_longopts[] = {
	{ "store", required_argument, NULL, OPT_STORE },
	{ "compression", required_argument, NULL, OPT_COMPRESSION },
	{ "level", required_argument, NULL, OPT_LEVEL },
	{ "max-size", required_argument, NULL, OPT_MAX_SIZE },
	{ "repair", no_argument, NULL, OPT_REPAIR },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
};

#define STORE_ARGS_CONTINUE (-1)
#define ACCEPTS(opt) (1u << ((opt) - OPT_STORE))

/* Parses the options of store command cmd, which accepts --store, --help
 * and the options in the bit set accepted (1 << (OPT_x - OPT_STORE)), and
 * operands unless no_operands is set (the hint its usage error ends with).
 * Returns STORE_ARGS_CONTINUE with *ret filled, or the exit status to
 * return at once: CLI_EXIT_OK after printing usage for --help,
 * CLI_EXIT_USAGE after one error line. */
static int store_args_parse(const char *cmd, const char *usage, unsigned accepted, const char *no_operands,
			    int argc, char **argv, struct store_args *ret)
{
	struct option longopts[sizeof(store_longopts) / sizeof(store_longopts[0]) + 1];
	size_t n = 0;
	accepted |= ACCEPTS(OPT_STORE);
	for (size_t i = 0; i < sizeof(store_longopts) / sizeof(store_longopts[0]); i++)
		if (store_longopts[i].val == 'h' || accepted & ACCEPTS(store_longopts[i].val))
			longopts[n++] = store_longopts[i];
	memset(&longopts[n], 0, sizeof(longopts[n]));

	struct store_args a = { .mode = CACHE_PUT_AUTO };
	int c, r;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			if (!*optarg)
				return cli_usage_error(cmd, "--store needs a directory (an empty path was given)");
			a.store = optarg;
			break;
		case OPT_COMPRESSION:
			if (cli_parse_compression(optarg, &a.mode) < 0)
				return cli_usage_error(cmd, "bad value '%s' for --compression: give auto, none or zstd",
						       optarg);
			break;
		case OPT_LEVEL:
			if (cli_parse_level(optarg, &a.level) < 0)
				return cli_usage_error(cmd, "bad value '%s' for --level: give a zstd level from 1 to 22",
						       optarg);
			break;
		case OPT_MAX_SIZE:
			r = cli_parse_size(optarg, &a.max_size);
			if (r == -ERANGE)
				return cli_usage_error(cmd, "size '%s' for --max-size is too large", optarg);
			if (r < 0)
				return cli_usage_error(cmd,
						       "bad size '%s' for --max-size: give bytes or a number with K, M, "
						       "G or T (powers of 1024), e.g. 5G, 500M, 1.5GiB", optarg);
			if (a.max_size == 0)
				return cli_usage_error(cmd, "size '%s' for --max-size: the limit must be more than 0 bytes",
						       optarg);
			break;
		case OPT_REPAIR: a.repair = true; break;
		case OPT_JSON: a.json = true; break;
		case 'h': fputs(usage, stdout); return CLI_EXIT_OK;
		default: return cli_option_error(cmd, c, argv); /* '?' or ':' */
		}
	}
	if (no_operands && optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s' (%s)", argv[optind], no_operands);
	a.first = optind;
	*ret = a;
	return STORE_ARGS_CONTINUE;
}

/* Exit status rc, or 1 when stdout could not be written (a digest that
 * never reached the reader is a failure). */
static int finish_stdout(int rc)
{
	int r = fflush(stdout);
	int e = errno;
	if (r != 0 || ferror(stdout)) {
		/* an earlier write that failed left only the error flag */
		cli_error("cannot write the output: %s", strerror(r != 0 ? e : EIO));
		return CLI_EXIT_FAILURE;
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

/* What may happen to a store path that holds no store yet. */
enum store_open_mode {
	STORE_CREATE,   /* put: make the store */
	STORE_EXISTING, /* get, gc, fsck, store: refuse the path */
};

static void store_open_error(const char *path, int r, const char *errmsg)
{
	if (r == -EPROTO)
		/* the message names the fix */
		cli_error("store %s %s", path, errmsg ? errmsg : "was written by a newer casfs: upgrade casfs");
	else if (r == -ENOENT)
		cli_error("store %s does not exist: check --store or $CASFS_STORE (only 'casfs put' and "
			  "'casfs mount' create a store)", path);
	else if (r == -ENOTDIR || r == -EINVAL)
		/* the message says what is wrong; errno adds nothing */
		cli_error("store %s %s: check --store or $CASFS_STORE", path, errmsg ? errmsg : "cannot be used");
	else
		cli_error("store %s %s (%s): pass --store DIR to use another", path,
			  errmsg ? errmsg : "cannot be used", strerror(-r));
}

/* Opens the store at path and its index.  0, or -1 after an error. */
static int open_store_path(const char *path, enum store_open_mode mode, cache_store **s, cache_index **ix)
{
	const char *errmsg = NULL;
	int r = mode == STORE_CREATE ? cache_store_open(path, s, &errmsg) : cache_store_open_existing(path, s, &errmsg);
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

static int open_store(const char *arg, enum store_open_mode mode, cache_store **s, cache_index **ix)
{
	char path[PATH_MAX];
	if (store_path_of(arg, path, sizeof(path)) < 0)
		return -1;
	return open_store_path(path, mode, s, ix);
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
	struct store_args a;
	int r = store_args_parse("put", put_usage, ACCEPTS(OPT_COMPRESSION) | ACCEPTS(OPT_LEVEL), NULL, argc, argv, &a);
	if (r != STORE_ARGS_CONTINUE)
		return r;
	if (a.level && a.mode == CACHE_PUT_RAW)
		return cli_usage_error("put", "--level has no effect with --compression none: drop one of them");
	if (a.first >= argc)
		return cli_usage_error("put", "put needs at least one FILE");
	/* records are committed in batches: one index fsync for many files */
	cache_put_opts opts = { .mode = a.mode, .zstd_level = a.level, .defer_record = true };

	cache_store *s;
	cache_index *ix;
	if (open_store(a.store, STORE_CREATE, &s, &ix) < 0)
		return CLI_EXIT_FAILURE;
	int failed = 0;
	for (int i = a.first; i < argc; i++) {
		cache_put_result res;
		r = put_one(ix, argv[i], &opts, &res);
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
		r = cache_gc(ix, 0, false, NULL, NULL, &gr);
		if (r < 0 && r != -EBUSY)
			cli_error("put: the store %s is over its limit and could not be collected (%s): run casfs gc",
				  cache_store_path(s), strerror(-r));
	}
	close_store(s, ix);
	return finish_stdout(failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK);
}

/* ---- get --------------------------------------------------------------------- */

int cmd_get(int argc, char **argv)
{
	struct store_args a;
	int r = store_args_parse("get", get_usage, 0, NULL, argc, argv, &a);
	if (r != STORE_ARGS_CONTINUE)
		return r;
	if (argc - a.first != 2)
		return cli_usage_error("get", argc - a.first < 2 ? "get needs HEX and DEST" : "get takes exactly HEX and DEST");
	const char *hexarg = argv[a.first], *dest = argv[a.first + 1];
	hasher_digest d;
	if (hasher_digest_from_hex(hexarg, strlen(hexarg), &d) < 0)
		return cli_usage_error("get", "'%s' is not a digest: give the 32 hex characters 'casfs put' printed",
				       hexarg);
	char hex[HASHER_HEX_LEN + 1];
	hasher_digest_to_hex(&d, hex);
	if (!*dest)
		return cli_usage_error("get", "DEST is empty: give a file or directory to write");

	/* DEST, or DEST/HEX when DEST is a directory: split into parent + name */
	char target[PATH_MAX], parent[PATH_MAX];
	const char *name;
	struct stat st;
	size_t dlen = strlen(dest);
	if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (snprintf(target, sizeof(target), "%s%s%s", dest, dest[dlen - 1] == '/' ? "" : "/", hex) >=
		    (int)sizeof(target)) {
			cli_error("get: %s: path too long", dest);
			return CLI_EXIT_FAILURE;
		}
		snprintf(parent, sizeof(parent), "%s", dest);
		name = hex;
	} else {
		if (dest[dlen - 1] == '/') {
			if (errno == ENOENT)
				cli_error("get: directory %s does not exist: create it first", dest);
			else
				cli_error("get: %s is not a directory", dest);
			return CLI_EXIT_FAILURE;
		}
		if (snprintf(target, sizeof(target), "%s", dest) >= (int)sizeof(target)) {
			cli_error("get: %s: path too long", dest);
			return CLI_EXIT_FAILURE;
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
		return CLI_EXIT_FAILURE;
	}

	cache_store *s;
	cache_index *ix;
	if (open_store(a.store, STORE_EXISTING, &s, &ix) < 0) {
		close(dirfd);
		return CLI_EXIT_FAILURE;
	}
	r = cache_get_at(ix, &d, dirfd, name, 0666, NULL);
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
	return r < 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

/* ---- gc ----------------------------------------------------------------------- */

int cmd_gc(int argc, char **argv)
{
	struct store_args a;
	int r = store_args_parse("gc", gc_usage, ACCEPTS(OPT_MAX_SIZE), "gc takes options only", argc, argv, &a);
	if (r != STORE_ARGS_CONTINUE)
		return r;
	bool set_max = a.max_size != 0;

	cache_store *s;
	cache_index *ix;
	if (open_store(a.store, STORE_EXISTING, &s, &ix) < 0)
		return CLI_EXIT_FAILURE;
	const char *what;
	cache_totals before, after;
	struct progress p;
	cache_gc_result res;
	if (set_max && (r = cache_index_set_max_size(ix, a.max_size)) < 0) {
		what = "cannot set the limit of";
		goto fail;
	}
	if ((r = cache_index_totals(ix, &before)) < 0) {
		what = "cannot read the totals of";
		goto fail;
	}
	progress_init(&p, "gc", true);
	r = cache_gc(ix, 0, true, progress_draw, &p, &res);
	progress_clear(&p);
	if (r < 0) {
		what = "failed to collect";
		goto fail;
	}
	if (cache_index_totals(ix, &after) < 0)
		after = before;
	char h1[32], h2[32];
	printf("store    %s\n", cache_store_path(s));
	printf("limit    %s (%llu bytes)%s\n", human(res.limit, h1), (unsigned long long)res.limit,
	       set_max ? ", set now" : before.max_size ? "" : ", the default");
	printf("before   %s in %llu blob%s\n", human(res.before, h1), (unsigned long long)before.blobs,
	       before.blobs == 1 ? "" : "s");
	printf("after    %s in %llu blob%s\n", human(res.after, h1), (unsigned long long)after.blobs,
	       after.blobs == 1 ? "" : "s");
	printf("evicted  %llu blob%s (%s)\n", (unsigned long long)res.evicted, res.evicted == 1 ? "" : "s",
	       human(res.evicted_bytes, h2));
	printf("skipped  %llu busy (in use)\n", (unsigned long long)res.busy);
	if (res.before <= res.limit)
		printf("the store is within its limit: nothing to evict\n");
	else if (res.after > res.limit)
		printf("the store is still over its limit: contents in use could not be evicted; run casfs gc again later\n");
	close_store(s, ix);
	return finish_stdout(CLI_EXIT_OK);
fail:
	cli_error("gc: %s the store %s: %s", what, cache_store_path(s), strerror(-r));
	close_store(s, ix);
	return CLI_EXIT_FAILURE;
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
	struct store_args a;
	int r = store_args_parse("fsck", fsck_usage, ACCEPTS(OPT_REPAIR), "fsck takes options only", argc, argv, &a);
	if (r != STORE_ARGS_CONTINUE)
		return r;
	bool repair = a.repair;

	cache_store *s;
	cache_index *ix;
	if (open_store(a.store, STORE_EXISTING, &s, &ix) < 0)
		return CLI_EXIT_FAILURE;
	struct fsck_ctx ctx;
	progress_init(&ctx.p, "fsck", false);
	cache_fsck_result res;
	r = cache_fsck(ix, repair, fsck_report, progress_draw, &ctx, &res);
	progress_clear(&ctx.p);
	if (r < 0) {
		cli_error("fsck: cannot check the store %s: %s", cache_store_path(s), strerror(-r));
		close_store(s, ix);
		return CLI_EXIT_FAILURE;
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
	return finish_stdout(left ? CLI_EXIT_FAILURE : CLI_EXIT_OK);
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
		return CLI_EXIT_FAILURE;
	const char *env = getenv("CASFS_STORE");
	bool builtin_default = !store_path && !(env && *env);
	if (builtin_default && stat(path, &st) < 0 && errno == ENOENT) {
		/* a user's default store before its first use: not created for a
		 * look (a path someone gave is checked below instead) */
		cache_totals t = { 0 };
		char abs[PATH_MAX];
		print_totals(cli_abspath(path, abs, sizeof(abs)) == 0 ? abs : path, false, &t, json, json_comma);
		return CLI_EXIT_OK;
	}
	cache_store *s;
	cache_index *ix;
	if (open_store_path(path, STORE_EXISTING, &s, &ix) < 0)
		return CLI_EXIT_FAILURE;
	cache_totals t;
	int r = cache_index_totals(ix, &t);
	if (r < 0) {
		cli_error("store %s: cannot read its totals: %s", cache_store_path(s), strerror(-r));
		close_store(s, ix);
		return CLI_EXIT_FAILURE;
	}
	print_totals(cache_store_path(s), true, &t, json, json_comma);
	close_store(s, ix);
	return CLI_EXIT_OK;
}

int cmd_store(int argc, char **argv)
{
	struct store_args a;
	int r = store_args_parse("store", store_usage, ACCEPTS(OPT_JSON), "give the store with --store DIR", argc,
				 argv, &a);
	if (r != STORE_ARGS_CONTINUE)
		return r;
	bool json = a.json;
	r = cli_print_store_stats(a.store, json, false);
	if (r == 0 && json)
		putchar('\n');
	return finish_stdout(r);
}
