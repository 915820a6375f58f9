/* ctl.h — the control interface between the `casfs` CLI and a running
 * daemon: ioctls on the mount's root directory.  Shared by fs/ and cli/.
 */
#pragma once
#include <linux/ioctl.h>
#include <stdint.h>

#define CASFS_CTL_VERSION 2

/* X(name): every counter `casfs stats` reports, in order. */
#define CASFS_COUNTERS(X) \
	X(lookup) X(forget) X(getattr) X(setattr) X(readlink) X(mknod) X(mkdir) \
	X(unlink) X(rmdir) X(symlink) X(rename) X(link) X(open) X(create) \
	X(read) X(write) X(flush) X(release) X(fsync) X(opendir) X(readdir) \
	X(readdirplus) X(statfs) X(setxattr) X(getxattr) X(listxattr) \
	X(removexattr) X(access) X(fallocate) X(copy_file_range) X(lseek) \
	X(ioctl) X(bytes_read) X(bytes_written) X(lookup_negative) \
	X(dtype_stat_fallback) X(open_files) \
	X(nodes) X(fd_cache_open) X(fd_cache_capacity) X(fd_cache_hits) \
	X(fd_cache_misses) X(fd_cache_evictions) X(reopen_by_handle) \
	X(reopen_by_path) X(stale_handles) \
	X(files_hashed_streaming) X(files_hashed_by_reread) X(files_hashed_on_demand) \
	X(bytes_hashed) X(digest_index_hits) X(index_writes) X(index_errors) \
	X(cas_lookups) X(cas_misses) X(cas_denied) X(cas_opens_live) X(cas_opens_blob) \
	X(cas_bytes_read) X(cas_corrupt) X(cas_live_changed) \
	X(ingest_queued) X(ingest_stored) X(ingest_existing) X(ingest_skipped) \
	X(ingest_errors) X(ingest_bytes) X(gc_runs) X(gc_evicted) \
	X(replies_error) X(stale_ids) X(nodes_revived)

enum casfs_counter {
#define CASFS_X_ENUM(name) CASFS_C_##name,
	CASFS_COUNTERS(CASFS_X_ENUM)
#undef CASFS_X_ENUM
	CASFS_C_COUNT
};

struct casfs_ctl_info {
	uint32_t version;
	int32_t pid;
	uint32_t handle_mode; /* 1: inodes reopened by file handle; 0: by path */
	uint32_t writeback;
	char backing[2048];
	char store[2048];
};

/* Room for the counters: the ioctl number encodes the struct's size, so
 * it is fixed; the list must fit (checked when compiling). */
#define CASFS_CTL_MAX_COUNTERS 256

struct casfs_ctl_stats {
	uint32_t version;
	uint32_t count;              /* CASFS_C_COUNT of the daemon */
	uint64_t uptime_ms;
	uint64_t counters[CASFS_CTL_MAX_COUNTERS];
};
_Static_assert(CASFS_C_COUNT <= CASFS_CTL_MAX_COUNTERS, "casfs_ctl_stats has no room for every counter");

#define CASFS_IOC_INFO  _IOR('C', 1, struct casfs_ctl_info)
#define CASFS_IOC_STATS _IOR('C', 2, struct casfs_ctl_stats)

/* On a regular file: its XXH3-128 digest as 32 hex chars and a NUL. */
struct casfs_ctl_digest {
	char hex[33];
	char pad[7];
};
#define CASFS_IOC_DIGEST _IOR('C', 3, struct casfs_ctl_digest)

#define CASFS_XATTR_DIGEST "user.casfs.xxh128"
#define CASFS_XATTR_PREFIX "user.casfs."
