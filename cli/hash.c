/* hash.c — casfs hash: digests in xxh128sum's format. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"
#include "hasher.h"

enum hash_kind { HASH_PLAIN, HASH_C_SOURCE, HASH_ARCHIVE };

/* Reads the whole file at fd into memory (mmap when possible). */
static int map_file(int fd, size_t size, void **ret)
{
	if (size == 0) {
		*ret = NULL;
		return 0;
	}
	void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*ret = p;
	return 0;
}

static int hash_one(const char *path, enum hash_kind kind, char hex[HASHER_HEX_LEN + 1], const char **how)
{
	hasher_digest d;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	if (kind == HASH_PLAIN && cli_dev_is_casfs(st.st_dev)) {
		/* On casfs the digest is already known: ask, don't read.  Only
		 * there: elsewhere a user.casfs.xxh128 xattr was copied (cp -a,
		 * tar --xattrs) and nothing keeps it right. */
		ssize_t n = fgetxattr(fd, CASFS_XATTR_DIGEST, hex, HASHER_HEX_LEN);
		if (n == HASHER_HEX_LEN) {
			hex[HASHER_HEX_LEN] = '\0';
			*how = "xattr";
			close(fd);
			return 0;
		}
		struct casfs_ctl_digest cd;
		if (ioctl(fd, CASFS_IOC_DIGEST, &cd) == 0 && strlen(cd.hex) == HASHER_HEX_LEN) {
			memcpy(hex, cd.hex, HASHER_HEX_LEN + 1);
			*how = "ioctl";
			close(fd);
			return 0;
		}
	}
	if (kind == HASH_PLAIN) {
		int r = hasher_digest_fd(fd, &d, NULL);
		close(fd);
		if (r < 0)
			return r;
		*how = "read";
		hasher_digest_to_hex(&d, hex);
		return 0;
	}
	void *data = NULL;
	int r = map_file(fd, (size_t)st.st_size, &data);
	close(fd);
	if (r < 0)
		return r;
	if (kind == HASH_C_SOURCE)
		hasher_c_source_digest(data, (size_t)st.st_size, &d);
	else
		r = hasher_ar_digest(data ? data : "", (size_t)st.st_size, &d);
	if (data)
		munmap(data, (size_t)st.st_size);
	if (r < 0)
		return r == -EINVAL ? -ENOEXEC : r;
	*how = "read";
	hasher_digest_to_hex(&d, hex);
	return 0;
}

int cmd_hash(int argc, char **argv)
{
	enum hash_kind kind = HASH_PLAIN;
	bool verbose = false;
	int first = 0, failed = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--c-source"))
			kind = HASH_C_SOURCE;
		else if (!strcmp(argv[i], "--archive"))
			kind = HASH_ARCHIVE;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			verbose = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			puts("usage: casfs hash [--c-source | --archive] [-v] FILE...\n\n"
			     "Prints '<hex>  <path>' lines as xxh128sum does.  On casfs the digest\n"
			     "comes from the filesystem (xattr user.casfs.xxh128, or an ioctl with\n"
			     "-o no_xattr) without reading the file; elsewhere the file is read.\n"
			     "  --c-source  C/C++ source digest: comments and insignificant whitespace\n"
			     "              ignored (rules: docs/DIGESTS.md)\n"
			     "  --archive   ar archive digest: member mtime, uid, gid, mode ignored\n"
			     "  -v          say on stderr where each digest came from\n"
			     "\n"
			     "Exit status: 0 every FILE hashed, 1 some FILE could not be (its own\n"
			     "'casfs: ' line; the others are still printed), 2 usage error.");
			return CLI_EXIT_OK;
		} else if (!strcmp(argv[i], "--")) {
			first = i + 1;
			break;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cli_usage_error("hash", "unknown option '%s' for hash", argv[i]);
		} else if (!first) {
			first = i;
			break;
		}
	}
	if (!first || first >= argc)
		return cli_usage_error("hash", "hash needs at least one FILE");
	for (int i = first; i < argc; i++) {
		char hex[HASHER_HEX_LEN + 1];
		const char *how = "";
		int r = hash_one(argv[i], kind, hex, &how);
		if (r < 0) {
			failed++;
			if (r == -ENOEXEC)
				cli_error("hash: %s: not an ar archive (no \"!<arch>\" header or a damaged member)", argv[i]);
			else if (r == -EISDIR)
				cli_error("hash: %s: is a directory (give regular files)", argv[i]);
			else if (r == -EINVAL)
				cli_error("hash: %s: not a regular file", argv[i]);
			else
				cli_error("hash: %s: %s", argv[i], strerror(-r));
			continue;
		}
		printf("%s  %s\n", hex, argv[i]);
		if (verbose)
			fprintf(stderr, "casfs: hash: %s: from %s\n", argv[i], how);
	}
	return failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}
