/* fs.h — the casfs filesystem daemon (libfuse3 lowlevel loopback). */
#pragma once
#include <stdbool.h>

#include <stdint.h>

#include "blob.h"
#include "store.h"

struct fs_options {
	const char *mountpoint;   /* absolute */
	const char *backing_path; /* absolute, for status */
	int backing_fd;           /* directory fd opened before mounting */
	cache_store *store;
	bool foreground;
	bool allow_other;
	bool read_only;
	bool writeback;           /* kernel writeback cache */
	bool passthrough;         /* kernel passthrough for large read-only opens
				     (root daemons; never with writeback) */
	bool use_handles;         /* try file handles (needs CAP_DAC_READ_SEARCH) */
	bool xattr;               /* pass getxattr & co. (false: ENOSYS) */
	bool security_xattrs;     /* security.* and system.posix_acl_* reach the
				     backing (false: EOPNOTSUPP) */
	bool sha256;              /* SHA-256 streamed on the write path, and
				     user.casfs.sha256 listed */
	bool fast_sandboxes;      /* bazel-sandbox.* directories on private tmpfs
				     mounts (root only; sandbox_fast.h) */
	double timeout;           /* entry/attr/negative cache timeout, seconds */
	unsigned fd_cache;        /* 0: default */
	unsigned threads;         /* 0: default */
	const char *log_path;     /* daemon messages once mounted (not foreground) */
	bool ingest_all;          /* store every regular file at its last close */
	cache_put_mode compression; /* how ingested contents are stored */
	int zstd_level;           /* 0: default */
	uint64_t max_size;        /* sets the store's limit; 0: leave it */
	const char *mount_opts;   /* more options for libfuse's mount, comma-separated
				   * (generic flags it passes: suid, dev, noexec, sync,
				   * dirsync, noatime), or NULL */
};

/* Mounts and serves until unmounted or signalled.  The mount's source (in
 * /proc/mounts, findmnt, df) is backing_path, its type fuse.casfs.  When
 * ready_fd >= 0, writes "OK\n" to it once the mount is up, or
 * "ERR <message>\n" when mounting fails, and closes it.  Returns 0, or 1 after printing/sending an error. */
int fs_run(const struct fs_options *o, int ready_fd);
