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
	X(files_hashed_streaming) X(files_hashed_by_reread) X(files_hashed_by_store_read) X(files_hashed_on_demand) \
	X(bytes_hashed) X(digest_index_hits) X(index_writes) X(index_errors) \
	X(sha256_streamed) X(sha256_by_read) X(sha256_index_hits) \
	X(cas_lookups) X(cas_misses) X(cas_denied) X(cas_opens_live) X(cas_opens_blob) \
	X(cas_bytes_read) X(cas_corrupt) X(cas_live_changed) \
	X(ingest_queued) X(ingest_stored) X(ingest_existing) X(ingest_skipped) \
	X(ingest_errors) X(ingest_bytes) X(gc_runs) X(gc_evicted) \
	X(replies_error) X(stale_ids) X(nodes_revived) X(unlink_open_files) \
	X(sessions) X(action_lookups) X(action_hits) X(action_misses) X(action_relocated_hits) \
	X(action_time_saved_ms) X(action_outputs_restored) X(action_recorded) X(action_uncacheable) \
	X(action_blob_missing) X(action_restore_errors) X(action_outputs_made_ahead) X(action_absent_known) X(action_outputs_in_place) \
	X(action_headers_scanned) \
	X(exec_uncached) \
	X(kernel_negatives_expired) X(kernel_negatives_shared) X(kernel_listings_dropped) \
	X(setid_killed) X(passthrough_opens) X(passthrough_backings) X(uncached_opens) \
	X(fast_sandboxes) X(fast_sandboxes_removed) X(renames_across) X(renames_exdev) \
	CASFS_UNCACHEABLE_COUNTERS(X)

/* Why a run was not recorded: uncacheable_<reason>. */
#define CASFS_UNCACHEABLE_COUNTERS(X) \
	X(uncacheable_failed) X(uncacheable_interrupted) X(uncacheable_outputs_open) \
	X(uncacheable_unknown_path) X(uncacheable_input_changed) X(uncacheable_input_being_written) \
	X(uncacheable_too_big) X(uncacheable_out_of_memory) X(uncacheable_writes_outside_root) \
	X(uncacheable_output_changed) X(uncacheable_special_output) X(uncacheable_unknown_input) \
	X(uncacheable_store_full) X(uncacheable_store_error) X(uncacheable_outlived) \
	X(uncacheable_stdin) X(uncacheable_writes_outside_mount) X(uncacheable_shell_compile) \
	X(uncacheable_nested) X(uncacheable_hidden_compile) X(uncacheable_moved_dir) \
	X(uncacheable_xattrs) X(uncacheable_inherited_write) X(uncacheable_owner_changed) \
	X(uncacheable_inherited_fd) X(uncacheable_special_input)

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
/* The most a request (LOOKUP, END: its fields) may hold. */
#define CASFS_CTL_REQ_MAX (64u << 20)

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
/* The raw 32-byte SHA-256 (not hex): Bazel's
 * --unix_digest_hash_attribute_name takes the value as the digest. */
#define CASFS_XATTR_SHA256 "user.casfs.sha256"
#define CASFS_XATTR_PREFIX "user.casfs."

/* ---- casfs exec: the action cache's protocol ------------------------------
 *
 * `casfs exec` opens DIR/.casfs/ctl read-only (it exists in every directory
 * of a mount and needs nothing writable: an ioctl on a read-only open works
 * on a read-only bind mount) and makes CASFS_IOC_CALL ioctls on it.  A call
 * carries at most CASFS_CTL_CHUNK bytes; longer requests are sent as APPEND
 * calls first.  Protocol 2: any call may carry data (appended to the request
 * before the op runs: a request that fits in one chunk is one call), and a
 * response of at most CASFS_CTL_CHUNK bytes comes back in the call's data.
 * Every response (the only way in protocol 1, and for longer ones) is also
 * left in the open file and read with pread from offset 0.  The daemon
 * takes both protocols; a protocol-2 client of a protocol-1 daemon gets
 * EPROTO.
 *
 * Requests and responses are lists of fields: u32 tag, u32 length, bytes
 * (little-endian, as the machine is).
 */
#define CASFS_EXEC_PROTO 2
#define CASFS_EXEC_PROTO_MIN 1 /* the oldest the daemon still answers */
/* USES fields a LOOKUP may carry. */
#define CASFS_EXEC_MAX_USES 32
#define CASFS_CTL_CHUNK 8192

enum casfs_exec_op {
	CASFS_OP_APPEND = 1, /* data: more of the request */
	CASFS_OP_WHERE,      /* -> status: 0; response: the mount-relative path
				of the directory .casfs/ctl was opened in */
	CASFS_OP_LOOKUP,     /* request: the action; -> status CASFS_LOOKUP_*,
				response: fields (explain text, replay) */
	CASFS_OP_BEGIN,      /* no request: starts tracing the caller's
				descendants for the action of the last LOOKUP
				-> value: session id */
	CASFS_OP_END,        /* request: how it ended; records it -> status
				CASFS_END_*, response: fields */
	CASFS_OP_KV_GET,     /* request: KVKEY -> response: KVVAL (-ENOENT) */
	CASFS_OP_KV_PUT,     /* request: KVKEY, KVVAL (the caller's own, small) */
	CASFS_OP_NOTE,       /* request: REASON: the client runs the command
				uncached for that reason (counted) */
	CASFS_OP_HISCAN,     /* request: PATH fields, mount-relative files the
				run read; response: a HISCAN field for each,
				in order (fs/actions.c says what it holds) */
};

enum casfs_lookup_status {
	CASFS_LOOKUP_HIT = 1,      /* outputs restored: replay stdout/stderr/exit */
	CASFS_LOOKUP_MISS,         /* run it (BEGIN/END) */
	CASFS_LOOKUP_UNCACHEABLE,  /* run it without tracing */
	CASFS_LOOKUP_NEED_PROGS,   /* ask again with PROG fields (the programs
				      the compiler driver runs) */
	CASFS_LOOKUP_NEED_DIGEST,  /* the daemon sees another file at TOOL: ask
				      again with TOOL_DIGEST (and for a driver,
				      PROG fields with digests) */
};

enum casfs_end_status {
	CASFS_END_RECORDED = 1,
	CASFS_END_UNCACHEABLE,     /* response: the reason */
};

enum casfs_exec_tag {
	CASFS_T_KEY = 1,      /* action_key_material bytes */
	CASFS_T_ROOT,         /* the root, relative to the mount ("" = mount) */
	CASFS_T_ROOT_ABS,     /* the root as the caller sees it (absolute) */
	CASFS_T_FLAGS,        /* u32 CASFS_EXEC_F_* */
	CASFS_T_EXIT,         /* i32 exit status */
	CASFS_T_RUN_MS,       /* u64 */
	CASFS_T_STDOUT,       /* bytes */
	CASFS_T_STDERR,       /* bytes */
	CASFS_T_DEP_ABS,      /* an input outside the mount (absolute path) */
	CASFS_T_EXPLAIN,      /* response: text for --explain / CASFS_LOG=debug */
	CASFS_T_REASON,       /* why not cached (one word): in END's response, or
				 in END's request when the client knows */
	CASFS_T_OUTLIVED,     /* END: processes of the run outlived it */
	CASFS_T_PATH,         /* an absolute path */
	CASFS_T_STAT,         /* struct casfs_exec_stat */
	CASFS_T_DIGEST,       /* 16 bytes */
	CASFS_T_KVKEY,        /* at most 256 bytes */
	CASFS_T_KVVAL,        /* at most 4096 bytes */
	CASFS_T_ABSENT_ABS,   /* END: a name outside the mount that must stay
				 absent (absolute path) */
	CASFS_T_CWD_ABS,      /* LOOKUP: the working directory as the caller sees it */
	CASFS_T_TOOL,         /* LOOKUP: the executable (absolute), with STAT */
	CASFS_T_TOOL_DIGEST,  /* LOOKUP: its digest, hashed by the caller */
	CASFS_T_CC,           /* LOOKUP: a gcc/clang driver: u8 1 for C++, 0 */
	CASFS_T_PROG,         /* LOOKUP: "NAME=PATH", what the driver runs;
				 with TOOL_DIGEST, "NAME=PATH" followed by
				 '\0' and the digest the caller took */
	CASFS_T_STDIN,        /* LOOKUP: digest of a regular file on stdin */
	CASFS_T_USES,         /* LOOKUP: another program the command runs:
				 its absolute path, '\0', and the caller's
				 struct casfs_exec_stat of it (or, with
				 TOOL_DIGEST, its digest) */
	CASFS_T_TEXT_OUT,     /* END: an output (absolute path) that is text
				 naming paths with the root spelled out (a
				 compiler's dependency file): rewritten for
				 another root on a hit (action_root_rewrite) */
	CASFS_T_STDIN_MOVED,  /* END: the run moved the offset of its stdin (a
				 regular file) other than to its end */
	CASFS_T_STDIN_EOF,    /* END: the run read its stdin (a regular file)
				 to its end; in a hit's response: leave the
				 caller's stdin at its end */
	CASFS_T_LINK_ABS,     /* END: a symlink outside the mount on the way
				 to a compile's include directory (absolute
				 path): where it leads is an input */
	CASFS_T_HISCAN,       /* HISCAN's response: a file's __has_include
				 queries */
};

/* A file as its stat describes it (to tell the same file apart). */
struct casfs_exec_stat {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
};

#define CASFS_EXEC_F_EXPLAIN        0x1u /* LOOKUP: decide only, restore nothing */
#define CASFS_EXEC_F_RELOCATE       0x2u /* reuse results that embed another root */
#define CASFS_EXEC_F_CACHE_FAILURES 0x4u /* record non-zero exits too */
#define CASFS_EXEC_F_CC_DEPS        0x8u /* a compile whose reads outside the
					    mount the client learns: its
					    compiler proper may run */
#define CASFS_EXEC_F_HIDES_ROOT     0x10u /* its outputs may hold the root's
					     path where no scan sees it
					     (compressed debug info): reused
					     at another root only with
					     --relocate */
#define CASFS_EXEC_F_ROOT_TEXT      0x20u /* a compile: its stdout and stderr
					     name paths as given, with the
					     root spelled out: rewritten for
					     another root on a hit */
#define CASFS_EXEC_F_MERGED_STREAMS 0x80u /* stdout and stderr are one open
					     file: captured as one stream */
#define CASFS_EXEC_F_OWN_PROGS      0x40u /* the compiler's programs (cc1, as)
					     the client sends are this
					     call's own (-B, COMPILER_PATH,
					     GCC_EXEC_PREFIX): not the
					     driver's, not to be remembered */

struct casfs_ctl_call {
	uint32_t proto;       /* CASFS_EXEC_PROTO (EPROTO otherwise) */
	uint32_t op;          /* enum casfs_exec_op */
	uint32_t len;         /* in: bytes of data; out: bytes of the response */
	int32_t result;       /* out: 0 or -errno */
	uint32_t status;      /* out: per op */
	uint32_t pad;
	uint64_t value;       /* out: per op */
	uint8_t data[CASFS_CTL_CHUNK];
};
#define CASFS_IOC_CALL _IOWR('C', 4, struct casfs_ctl_call)
