/* store.c — opening and validating a casfs store directory.
 *
 * Layout (format 1):
 *   FORMAT        "casfs-store 1\n"
 *   objects/      content-addressed blobs (objects/ab/<32 hex>; blob.c)
 *   tmp/          decompressed contents being served (unnamed O_TMPFILEs)
 *   quarantine/   blobs that failed verification, kept for inspection
 *   index.lmdb    the index (index.c)
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cache_store {
	char *path;
	int dirfd;
	int objects_fd, tmp_fd;
};

int cache_store_default_path(char *buf, size_t len)
{
	const char *env = getenv("CASFS_STORE");
	int n;
	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if ((env = getenv("XDG_CACHE_HOME")) && *env)
		n = snprintf(buf, len, "%s/casfs", env);
	else if ((env = getenv("HOME")) && *env)
		n = snprintf(buf, len, "%s/.cache/casfs", env);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* mkdir -p for an absolute or relative path. */
static int mkdir_parents(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int read_format(int dirfd, int *ret_version)
{
	char buf[64] = { 0 };
	int fd = openat(dirfd, "FORMAT", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	if (sscanf(buf, "casfs-store %d", ret_version) != 1)
		return -EINVAL;
	return 0;
}

/* True when a directory without FORMAT may become a store: it is empty but
 * for the leftovers of an interrupted creation (and lost+found, when the
 * store is the root of its own filesystem). */
static bool adoptable(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	bool ok = true;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return true; /* unreadable: the write check that follows decides */
	}
	for (struct dirent *e; ok && (e = readdir(d));)
		ok = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		     !strncmp(e->d_name, "FORMAT.tmp.", 11) || !strcmp(e->d_name, "lost+found");
	closedir(d);
	return ok;
}

static int write_format(int dirfd)
{
	char tmp[64], line[64];
	int len = snprintf(line, sizeof(line), "casfs-store %d\n", CACHE_STORE_FORMAT);
	snprintf(tmp, sizeof(tmp), "FORMAT.tmp.%d", (int)getpid());
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, line, (size_t)len) != len) {
		int e = errno ? -errno : -EIO;
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return e;
	}
	close(fd);
	/* link, not rename: a concurrent creator's FORMAT wins and is identical */
	if (linkat(dirfd, tmp, dirfd, "FORMAT", 0) < 0 && errno != EEXIST) {
		int e = -errno;
		unlinkat(dirfd, tmp, 0);
		return e;
	}
	unlinkat(dirfd, tmp, 0);
	return 0;
}

/* Opens the store at path; with create, makes it (and its parents) when
 * missing, else refuses what is not already a store. */
static int store_open(const char *path, bool create, cache_store **ret, const char **errmsg)
{
	struct stat st;
	int r, version, e;
	int dirfd = -1, objects_fd = -1, tmp_fd = -1;
	cache_store *s = NULL;
	char *abs = NULL;

	*errmsg = NULL;
	if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
		*errmsg = "is not a directory";
		return -ENOTDIR;
	}
	if (create) {
		r = mkdir_parents(path);
		if (r < 0) {
			*errmsg = "cannot be created";
			return r;
		}
	}
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = -errno;
		*errmsg = r == -ENOENT ? "does not exist" : "cannot be opened";
		return r;
	}
	r = read_format(dirfd, &version);
	if (r == -ENOENT && !create) {
		r = -EINVAL;
		*errmsg = "is not a casfs store (it has no FORMAT file)";
		goto fail;
	} else if (r == -ENOENT) {
		/* new store, or an empty directory to adopt */
		if (!adoptable(dirfd)) {
			r = -EINVAL;
			*errmsg = "is a directory with other files, not a casfs store (it has no FORMAT file)";
			goto fail;
		}
		if (faccessat(dirfd, ".", W_OK, AT_EACCESS) < 0) {
			r = -errno;
			*errmsg = "is not writable";
			goto fail;
		}
		r = write_format(dirfd);
		if (r < 0) {
			*errmsg = "cannot be initialised";
			goto fail;
		}
	} else if (r < 0) {
		*errmsg = "has an unreadable FORMAT file (not a casfs store?)";
		goto fail;
	} else if (version > CACHE_STORE_FORMAT) {
		r = -EPROTO;
		*errmsg = "was written by a newer casfs (upgrade casfs or use another --store)";
		goto fail;
	}
	if (mkdirat(dirfd, "objects", 0755) < 0 && errno != EEXIST) {
		e = errno;
		r = -e;
		*errmsg = e == EACCES || e == EROFS ? "is not writable" : "cannot be initialised";
		goto fail;
	}
	mkdirat(dirfd, "tmp", 0755);
	mkdirat(dirfd, "quarantine", 0755);
	objects_fd = openat(dirfd, "objects", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (objects_fd < 0) {
		r = -errno;
		*errmsg = "has an unusable objects/ directory";
		goto fail;
	}
	tmp_fd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tmp_fd < 0) {
		r = -errno;
		*errmsg = "has an unusable tmp/ directory";
		goto fail;
	}
	s = calloc(1, sizeof(*s));
	abs = realpath(path, NULL);
	if (!s || !abs) {
		r = -ENOMEM;
		goto fail;
	}
	s->path = abs;
	s->dirfd = dirfd;
	s->objects_fd = objects_fd;
	s->tmp_fd = tmp_fd;
	*ret = s;
	return 0;
fail:
	free(s);
	free(abs);
	if (tmp_fd >= 0)
		close(tmp_fd);
	if (objects_fd >= 0)
		close(objects_fd);
	close(dirfd);
	return r;
}

int cache_store_open(const char *path, cache_store **ret, const char **errmsg)
{
	return store_open(path, true, ret, errmsg);
}

int cache_store_open_existing(const char *path, cache_store **ret, const char **errmsg)
{
	return store_open(path, false, ret, errmsg);
}

void cache_store_close(cache_store *s)
{
	if (!s)
		return;
	close(s->dirfd);
	close(s->objects_fd);
	close(s->tmp_fd);
	free(s->path);
	free(s);
}

const char *cache_store_path(const cache_store *s) { return s->path; }
int cache_store_dirfd(const cache_store *s) { return s->dirfd; }
int cache_store_objects_fd(const cache_store *s) { return s->objects_fd; }
int cache_store_tmp_fd(const cache_store *s) { return s->tmp_fd; }
