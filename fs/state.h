/* state.h — the daemon's shared state: what every file of fs/ may use.
 *
 * Inside fs/ the layers go one way down:
 *   fs.c            wires the handlers into libfuse and runs the session
 *   entries.c, files.c, dirs.c, xattrs.c, control.c
 *                   the handler families
 *   req.c           the request context: caller, session, reply accounting
 *   session.c, trace.c
 *                   the action cache's sessions and what they record
 *   casns.c, ingest.c
 *                   the .casfs namespace and storing contents
 *   state.c         this header: the daemon state, node open, counters
 *   inode.c, digest.c
 *                   the inode table and the digests, which know no FUSE
 * A file uses the layers below it, never the ones above.
 */
#pragma once
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl.h"
#include "digest.h"
#include "fs.h"
#include "index.h"
#include "inode.h"

/* casfs's own namespace: a directory of this name answers lookup in every
 * directory, is never listed, and cannot be created, removed or renamed. */
#define RESERVED_NAME ".casfs"

struct casns;
struct ingest;
struct sessions;
struct kcache;
struct sbfast;
struct cache_absent;

struct fs {
	ino_table *tbl;
	cache_index *ix;
	digests *dg;            /* NULL when hashing is compiled out */
	struct casns *ns;
	struct ingest *ing;
	struct sessions *ss;
	struct kcache *kc;
	struct fs_spares *spares; /* files made ahead for restores */
	struct cache_absent *absent; /* names a lookup found absent (absent.h) */
	struct sbfast *sb;      /* -o fast_sandboxes, else NULL */
	int proc_fd;            /* /proc/self/fd */
	bool root_daemon;       /* euid 0: act as the caller when creating */
	uid_t owner_uid;        /* who mounted: the only user who may read .casfs/cas */
	gid_t owner_gid;
	struct fs_options o;
	struct fuse_session *se;
	struct timespec started;
	uint32_t cap_eff[2], cap_prm[2], cap_inh[2];
	_Atomic uint64_t counters[CASFS_C_COUNT];
};

/* The one daemon of this process (set by fs_run for its duration). */
extern struct fs *FS;

/* True on a thread that serves FUSE requests (set by req_begin): code
 * below the handlers that may be reached from a request never blocks on
 * background work there. */
extern _Thread_local bool fs_request_thread;

#define COUNT(name) atomic_fetch_add_explicit(&FS->counters[CASFS_C_##name], 1, memory_order_relaxed)
#define COUNT_N(name, n) atomic_fetch_add_explicit(&FS->counters[CASFS_C_##name], (n), memory_order_relaxed)

/* Node ids the kernel sees: an ino_table id (the root is FUSE_ROOT_ID), or
 * a casns id with FS_VIRTUAL_BIT set.  Neither is ever a pointer: an id
 * that comes back after its node is gone resolves to nothing. */
#define FS_VIRTUAL_BIT (1ull << 62)

static inline bool fs_is_virtual(fuse_ino_t id)
{
	return (id & FS_VIRTUAL_BIT) != 0;
}

static inline bool fs_reserved(const char *name)
{
	return name[0] == '.' && __builtin_strcmp(name, RESERVED_NAME) == 0;
}

/* Opens the inode behind fd (an O_PATH fd is fine) with real flags,
 * through /proc/self/fd/N (a magic link to the very inode, not a path
 * lookup).  Returns an fd or -errno. */
int fs_reopen_fd(int fd, int flags);
/* Opens n's backing file with flags (its cached fd reopened, or by its
 * handle when none is cached).  Returns the fd or -errno. */
int fs_node_open(ino_node *n, int flags);
/* fstatat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW): 0 or -errno. */
int fs_stat_fd(int fd, struct stat *st);

/* The I/O size a regular file reports (st_blksize), a FUSE request's worth:
 * glibc's stdio buffers min(st_blksize, 8 KiB), so a program writing
 * through stdio (as, ld, ar) sends half the WRITEs it did with the
 * backing's 4 KiB; cp and cat read and write 128 KiB at a time anyway. */
#define FS_FILE_BLKSIZE (128u << 10)
/* st as the kernel is told it: the inode number it knows, the I/O size. */
void fs_told_stat(struct stat *st);
/* Fills e for node n with attributes st and the mount's timeouts. */
void fs_fill_entry(struct fuse_entry_param *e, ino_node *n, const struct stat *st);
/* Looks name up in the directory open as pfd (node parent): on success
 * adds one kernel reference (nlookup) to the node, records name as its
 * latest and fills e.  Returns 0 or -errno. */
int fs_lookup_at(ino_node *parent, int pfd, const char *name, struct fuse_entry_param *e);
