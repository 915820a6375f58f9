#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("casfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fputs("casfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, " (see 'casfs %s --help')\n", cmd);
	else
		fputs(" (see 'casfs help')\n", stderr);
	return CLI_EXIT_USAGE;
}

int cli_option_error(const char *cmd, int c, char **argv)
{
	/* a short option is named by optopt: argv[optind - 1] may hold a
	 * group of them ("-fx"), or the option before */
	char shortopt[3] = { '-', (char)optopt, '\0' };
	const char *opt = optopt && optopt < 0x100 ? shortopt : argv[optind - 1];
	if (c == ':')
		return cli_usage_error(cmd, "option '%s' needs a value", opt);
	return cli_usage_error(cmd, "unknown option '%s' for %s", opt, cmd);
}

int cli_abspath(const char *path, char *buf, size_t len)
{
	char cwd[PATH_MAX], tmp[PATH_MAX];
	int n;
	if (path[0] == '\0')
		return -ENOENT; /* as the kernel answers "" (not the current directory) */
	if (path[0] == '/') {
		n = snprintf(tmp, sizeof(tmp), "%s", path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		n = snprintf(tmp, sizeof(tmp), "%s/%s", cwd, path);
	}
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	/* Resolve the parent (it must be reachable), keep the last component. */
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	char *slash = strrchr(tmp, '/');
	const char *last = slash + 1;
	char parent[PATH_MAX];
	if (slash == tmp)
		snprintf(parent, sizeof(parent), "/");
	else {
		*slash = '\0';
		if (!realpath(tmp, parent))
			return -errno;
	}
	if (strcmp(last, ".") == 0 || strcmp(last, "..") == 0 || last[0] == '\0') {
		char full[PATH_MAX + 4];
		snprintf(full, sizeof(full), "%s/%s", parent, last);
		char *res = realpath(full, NULL);
		if (!res)
			return -errno;
		n = snprintf(buf, len, "%s", res);
		free(res);
		return (size_t)n >= len ? -ENAMETOOLONG : 0;
	}
	n = snprintf(buf, len, "%s%s%s", parent, strcmp(parent, "/") ? "/" : "", last);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* cli_realpath's memo: a directory's path as given -> its real path.  Open
 * addressing, no deletions; full means no more entries (realpath then). */
#define RP_SLOTS 1024
static struct {
	char *given, *real;
} rp_memo[RP_SLOTS];
static size_t rp_used;
static pthread_mutex_t rp_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t rp_slot(const char *dir, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)dir[i]) * 1099511628211ull;
	size_t i = (size_t)h & (RP_SLOTS - 1);
	while (rp_memo[i].given && (strncmp(rp_memo[i].given, dir, len) || rp_memo[i].given[len]))
		i = (i + 1) & (RP_SLOTS - 1);
	return i;
}

/* The memo's real path of the directory dir[0..len) into out (PATH_MAX):
 * true when it has one. */
static bool rp_known(const char *dir, size_t len, char *out)
{
	pthread_mutex_lock(&rp_mu);
	size_t i = rp_slot(dir, len);
	bool known = rp_memo[i].given != NULL;
	if (known)
		strcpy(out, rp_memo[i].real);
	pthread_mutex_unlock(&rp_mu);
	return known;
}

static void rp_remember(const char *given, const char *real)
{
	pthread_mutex_lock(&rp_mu);
	size_t i = rp_slot(given, strlen(given));
	if (!rp_memo[i].given && rp_used < RP_SLOTS / 2) {
		char *g = strdup(given), *r = strdup(real);
		if (g && r) {
			rp_memo[i].given = g;
			rp_memo[i].real = r;
			rp_used++;
		} else {
			free(g);
			free(r);
		}
	}
	pthread_mutex_unlock(&rp_mu);
}

/* The real path of the directory dir[0..len) into out (PATH_MAX): 0, or
 * -1 with errno as realpath. */
static int rp_dir(const char *dir, size_t len, char *out)
{
	char given[PATH_MAX];
	if (len == 0) {
		strcpy(out, "/");
		return 0;
	}
	if (rp_known(dir, len, out))
		return 0;
	memcpy(given, dir, len);
	given[len] = '\0';
	struct stat st;
	if (!realpath(given, out))
		return -1;
	if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
		rp_remember(given, out);
	return 0;
}

char *cli_realpath(const char *path, char *resolved)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : NULL;
	if (path[0] != '/' || !name[0] || !strcmp(name, ".") || !strcmp(name, ".."))
		return realpath(path, resolved);
	char dir[PATH_MAX];
	struct stat st;
	if (rp_known(path, strlen(path), resolved))
		return resolved; /* a directory met before */
	if (rp_dir(path, (size_t)(slash - path), dir) < 0)
		return NULL;
	size_t dl = strlen(dir);
	if (dl + 1 + strlen(name) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (dl > 1)
		dir[dl++] = '/';
	strcpy(dir + dl, name);
	if (lstat(dir, &st) < 0)
		return NULL;
	if (S_ISLNK(st.st_mode))
		return realpath(path, resolved);
	if (S_ISDIR(st.st_mode))
		rp_remember(path, dir);
	strcpy(resolved, dir);
	return resolved;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *o = s;
	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

int cli_for_each_mount(int (*fn)(const char *mountpoint, dev_t dev, void *arg), void *arg)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int r = 0;
	if (!f)
		return 0;
	while (r == 0 && getline(&line, &cap, f) > 0) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		char *tok[64], *save = NULL;
		int n = 0, dash = -1;
		for (char *t = strtok_r(line, " \n", &save); t && n < 64; t = strtok_r(NULL, " \n", &save)) {
			if (dash < 0 && n >= 6 && strcmp(t, "-") == 0)
				dash = n;
			tok[n++] = t;
		}
		if (dash < 0 || dash + 1 >= n || strcmp(tok[dash + 1], CASFS_FUSE_FSTYPE) != 0)
			continue;
		unsigned maj, min;
		if (sscanf(tok[2], "%u:%u", &maj, &min) != 2)
			continue;
		unescape(tok[4]);
		r = fn(tok[4], makedev(maj, min), arg);
	}
	free(line);
	fclose(f);
	return r;
}

static int match_mount(const char *mp, dev_t dev, void *arg)
{
	return strcmp(mp, (const char *)arg) == 0;
}

static int match_dev(const char *mp, dev_t dev, void *arg)
{
	return dev == *(const dev_t *)arg;
}

bool cli_dev_is_casfs(dev_t dev)
{
	return cli_for_each_mount(match_dev, &dev) != 0;
}

bool cli_is_casfs_mount(const char *abs_mountpoint)
{
	return cli_for_each_mount(match_mount, (void *)abs_mountpoint) != 0;
}

static int ctl(const char *mountpoint, unsigned long cmd, void *buf)
{
	int fd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = ioctl(fd, cmd, buf);
	int e = errno;
	close(fd);
	return r < 0 ? -e : 0;
}

int cli_ctl_info(const char *mountpoint, struct casfs_ctl_info *ret)
{
	return ctl(mountpoint, CASFS_IOC_INFO, ret);
}

int cli_ctl_stats(const char *mountpoint, struct casfs_ctl_stats *ret)
{
	int r = ctl(mountpoint, CASFS_IOC_STATS, ret);
	/* another version's daemon: another ioctl number, or other counters */
	if (r == -ENOTTY || (r == 0 && (ret->version != CASFS_CTL_VERSION || ret->count != CASFS_C_COUNT)))
		return -EPROTO;
	return r;
}

/* ---- option values ---------------------------------------------------- */

int cli_parse_size(const char *s, uint64_t *ret)
{
	const char *p = s;
	uint64_t whole = 0, frac = 0, fdiv = 1;
	bool digits = false;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned dg = (unsigned)(*p - '0');
		if (whole > (UINT64_MAX - dg) / 10)
			return -ERANGE;
		whole = whole * 10 + dg;
		digits = true;
	}
	bool point = *p == '.';
	if (point) {
		for (p++; isdigit((unsigned char)*p); p++) {
			if (fdiv < 1000000) { /* finer than a millionth of a unit is noise */
				frac = frac * 10 + (uint64_t)(*p - '0');
				fdiv *= 10;
			}
			digits = true;
		}
	}
	if (!digits)
		return -EINVAL;
	int shift = 0;
	switch (toupper((unsigned char)*p)) {
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	}
	if (shift)
		p++;
	if (shift && (*p == 'i' || *p == 'I')) {
		p++;
		if (toupper((unsigned char)*p) != 'B')
			return -EINVAL;
		p++;
	} else if (toupper((unsigned char)*p) == 'B') {
		p++;
	}
	if (*p || (point && !shift))
		return -EINVAL; /* trailing junk, or a fraction of a byte */
	if (whole > (UINT64_MAX >> shift))
		return -ERANGE;
	/* the fraction adds less than one unit, which whole << shift leaves
	 * room for: no overflow */
	*ret = (whole << shift) + (frac << shift) / fdiv;
	return 0;
}

int cli_parse_ingest(const char *s, bool *ret_all)
{
	if (!strcmp(s, "all"))
		*ret_all = true;
	else if (!strcmp(s, "none"))
		*ret_all = false;
	else
		return -EINVAL;
	return 0;
}

int cli_parse_compression(const char *s, cache_put_mode *ret)
{
	if (!strcmp(s, "auto"))
		*ret = CACHE_PUT_AUTO;
	else if (!strcmp(s, "none") || !strcmp(s, "raw"))
		*ret = CACHE_PUT_RAW;
	else if (!strcmp(s, "zstd"))
		*ret = CACHE_PUT_ZSTD;
	else
		return -EINVAL;
	return 0;
}

int cli_parse_level(const char *s, int *ret)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -EINVAL; /* strtol would take " 3" and "+3" */
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 22)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}
