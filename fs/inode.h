/* inode.h — casfs's table of backing inodes, without FUSE types.
 *
 * Nodes are keyed by the backing (st_dev, st_ino), so hard links share one
 * node.  A node does NOT own an open file descriptor: open files are capped
 * (hard limit 20000 here) and a build tree has far more inodes.  A node is
 * re-opened on demand, either
 *   - by file handle (name_to_handle_at / open_by_handle_at), when the daemon
 *     has CAP_DAC_READ_SEARCH ("handle mode"), or
 *   - by walking (parent, name) pairs from the root with openat(O_PATH) and
 *     checking (st_dev, st_ino) ("path mode", the unprivileged fallback),
 * and the resulting O_PATH fd is kept in a bounded LRU cache.
 *
 * Node ids: every node has an `id` that names it to the kernel: an index
 * into a table of slots (the root is id 1), never a pointer.  An id that
 * reaches the daemon is resolved with ino_table_get, which answers NULL for
 * a slot that is free or was never used (file handles can bring back ids of
 * nodes the kernel forgot, or of an earlier mount).  Each node also has a
 * 32-bit generation, unique within the table and started at a random value
 * per table, which the kernel compares with the one in a file handle: a
 * reused slot never passes for the node it held before.
 *
 * Names: every node but the root remembers its latest (parent, name), set
 * at lookup, create and rename, in both modes; a hard link has several
 * names and the node keeps the one it was last reached by.  Path mode
 * reopens through it; the action cache's tracer turns it into a path
 * (ino_node_path).  A name that was removed is forgotten; the node is then
 * nameless until looked up again.
 *
 * Reference counting:
 *   - nlookup counts the kernel's references (every fuse_reply_entry /
 *     fuse_reply_create / readdirplus entry adds one; forget subtracts).
 *   - refs counts internal references: a named child holds one on its
 *     parent; an open file handle holds one on its node.
 *   - fd_pins counts callers currently using the node's cached fd.
 * A node is freed when all three are zero.  The root is never freed.
 *
 * Inodes that lost their last link: ino_table_detach takes the node out of
 * the hash table (ext4 reuses inode numbers at once) and, unless it is a
 * directory, closes its cached fd as soon as no caller has it pinned, so the
 * daemon holds no reference to a deleted file except the handles of
 * processes that still have it open.  (A removed directory that a process
 * still has open or as its cwd keeps its fd: it is reachable by no other
 * way, and holds no data.)
 *
 * Locking: one mutex protects the hash table, the slots, every counter, the
 * LRU and the (parent, name) fields.  No system call is made while holding
 * it except close() of O_PATH fds (which never blocks).  ino_table_get reads
 * the slots without it.
 */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct file_handle;

typedef struct ino_node ino_node;
struct ino_node {
	uint64_t id;              /* the kernel's node id (slot index + 1) */
	uint64_t dev, ino;
	uint64_t generation;
	uint64_t nlookup;
	uint32_t refs;
	uint32_t fd_pins;
	mode_t type;              /* S_IFMT bits; never changes for an inode */
	bool detached;            /* no longer in the hash table */
	int fd;                   /* cached O_PATH fd or -1 */
	int mnt;                  /* index in the table's mount-fd list (handle mode) */
	struct file_handle *handle; /* handle mode only */
	ino_node *parent;         /* latest name (NULL: none known) */
	char *name;
	ino_node *hash_next;
	ino_node *lru_prev, *lru_next;
	void *open_files;         /* fs layer: list of open handles (under table lock) */
	void *priv;               /* fs layer: per-inode state (set once under the table lock, release-stored; read with an acquire load) */
};

typedef struct ino_stats {
	uint64_t nodes;
	uint64_t fds_open;
	uint64_t fd_cache_cap;
	uint64_t fd_hits;
	uint64_t fd_misses;
	uint64_t fd_evictions;
	uint64_t reopen_by_handle;
	uint64_t reopen_by_path;
	uint64_t stale;
	uint64_t detached;
	uint64_t revived;         /* forgotten nodes brought back by a file handle */
} ino_stats;

typedef struct ino_table ino_table;

/* Opens the table over the directory root_fd (any fd of the backing root; the
 * table dups it).  use_handles: try file handles (falls back to path mode when
 * the backing or the capabilities don't allow them; see ino_table_handle_mode).
 * fd_cap: maximum cached O_PATH fds (0 = default 8192).
 * Returns 0 or -errno. */
int ino_table_new(int root_fd, bool use_handles, unsigned fd_cap, ino_table **ret);
void ino_table_free(ino_table *t);
bool ino_table_handle_mode(const ino_table *t);
ino_node *ino_table_root(ino_table *t);

/* The node with this id, or NULL when no node has it now.  Safe without
 * the lock only for ids the kernel holds a reference to (every request
 * but a lookup of "." or ".." by file handle): the node cannot be freed
 * under the caller. */
ino_node *ino_table_get(ino_table *t, uint64_t id);
/* The same for an id the kernel may hold no reference to (a file handle's
 * LOOKUP of "."): adds nlookup kernel references under the lock, so the
 * node stays.  In handle mode a freed slot remembers its node's handle and
 * generation until the slot is reused, and a node the kernel forgot is
 * brought back here with its old id and generation while its inode still
 * has a link (and no other node).  NULL when gone. */
ino_node *ino_table_get_lookup(ino_table *t, uint64_t id, uint64_t nlookup);
void ino_table_stats(ino_table *t, ino_stats *ret);

/* Locks the table (for fs-layer fields: open_files, priv). */
void ino_table_lock(ino_table *t);
void ino_table_unlock(ino_table *t);

/* Finds or creates the node for the object just opened as fd (O_PATH or any
 * fd, ownership passes to the table, which may keep it in its cache or close
 * it) and described by st, found as `name` in `parent`.  Adds `nlookup` kernel
 * references (0 for an internal lookup).  Returns 0 and *ret, or -errno (fd is
 * closed on failure). */
int ino_table_insert(ino_table *t, ino_node *parent, const char *name, int fd,
		     const struct stat *st, uint64_t nlookup, ino_node **ret);

/* Finds an existing node by identity, adding nlookup kernel references and
 * recording `name` in `parent` as its latest name when parent is not NULL.
 * NULL if absent. */
ino_node *ino_table_find(ino_table *t, ino_node *parent, const char *name,
			 dev_t dev, ino_t ino, uint64_t nlookup);

/* Finds an existing node by identity and takes an internal reference
 * (release with ino_node_unref).  NULL if absent or detached. */
ino_node *ino_table_find_ref(ino_table *t, dev_t dev, ino_t ino);

/* The backing inode (dev, ino) lost its last name (unlink, rmdir, rename
 * over it).  Its node, if any, leaves the hash table so a new inode that
 * reuses the number gets a node of its own, forgets its name and drops its
 * cached fd (at once, or when the last pin goes); the kernel's references
 * to the old node stay valid until forgotten.  Returns the node, or NULL;
 * the pointer may be used only while the caller otherwise holds it. */
ino_node *ino_table_detach(ino_table *t, dev_t dev, ino_t ino);
/* `name` in `parent` no longer names (dev, ino), which still has other
 * links: the node forgets that name if it was the one it remembered. */
void ino_table_name_removed(ino_table *t, dev_t dev, ino_t ino, ino_node *parent, const char *name);
/* True when n lost its last link (ino_table_detach). */
bool ino_node_detached(ino_table *t, ino_node *n);

/* Writes n's path relative to the root ("" for the root, "a/b" below it)
 * from its remembered names.  Returns the length, -ENOENT when a node on
 * the way has no name (removed, or never looked up by name), or
 * -ENAMETOOLONG when it does not fit in len bytes with its NUL. */
int ino_node_path(ino_table *t, ino_node *n, char *buf, size_t len);
/* The same relative to `top` (a directory): -EXDEV when n is not below it. */
int ino_node_path_from(ino_table *t, ino_node *top, ino_node *n, char *buf, size_t len);

/* Subtracts n kernel references; frees the node when nothing refers to it.
 * Aborts on underflow (a kernel/daemon protocol bug). */
void ino_table_forget(ino_table *t, ino_node *n, uint64_t nlookup);

/* Internal references (held by open files). */
void ino_node_ref(ino_table *t, ino_node *n);
/* The same with the table lock already held (ino_table_lock). */
void ino_node_ref_locked(ino_table *t, ino_node *n);
void ino_node_unref(ino_table *t, ino_node *n);

/* Returns a pinned O_PATH (or better) fd for n, or -errno (-ESTALE when the
 * inode can no longer be reached).  Release with ino_node_fd_put. */
int ino_node_fd_get(ino_table *t, ino_node *n);
/* In handle mode, when n has no cached fd: opens n by its handle with
 * flags (a real open, never O_PATH or O_CREAT), an fd the caller owns,
 * leaving the cache as it was (one system call where a cached O_PATH fd
 * and a reopen of it would take two, and an eviction a third).  -EAGAIN
 * when n has a cached fd or the table is in path mode (reopen the cached
 * fd instead), else an fd or -errno. */
int ino_node_open_uncached(ino_table *t, ino_node *n, int flags);
void ino_node_fd_put(ino_table *t, ino_node *n);

/* n is now reachable as newname in newparent.  A name that was unlinked or
 * replaced needs no call: path-mode reopen checks (st_dev, st_ino) and
 * answers ESTALE on a mismatch. */
void ino_table_renamed(ino_table *t, ino_node *n, ino_node *newparent, const char *newname);

/* n (a regular file or symlink with one link, no open file) is now the
 * inode open as fd and described by st: a copy of it, made when a rename
 * crossed two backing filesystems.  The node keeps its id and generation
 * (the kernel's references and file handles now reach the copy), takes the
 * new inode's identity, handle and cached fd, and the name newname in
 * newparent.  fd (O_PATH is fine) is the table's on success, the caller's
 * on failure.  0, -EBUSY (a caller is using n's fd, or the fs layer has
 * it open: try again), -EEXIST
 * (another node has that inode), -errno (no file handle for it). */
int ino_table_moved(ino_table *t, ino_node *n, int fd, const struct stat *st, ino_node *newparent,
		    const char *newname);

/* The filesystem dev, mounted inside the backing directory, was unmounted
 * (mnt_id: its mount id, as name_to_handle_at and statx give it): every
 * node on it leaves the hash table as if deleted, so that a filesystem
 * given the same dev later gets nodes of its own; in handle mode the mount
 * fd kept for it is closed and its entry reused, and nodes and freed slots
 * that reopened through it answer ESTALE from now on. */
void ino_table_mount_gone(ino_table *t, uint64_t dev, int mnt_id);

/* Called with the table lock held when the fd cache finds no way to reopen n
 * (an unlinked file, say): returns a new fd for n or -1.  Set by the fs layer. */
typedef int (*ino_fallback_open_fn)(ino_node *n, void *arg);
/* Called when a node with a non-NULL priv is freed, with the table lock
 * held: fn must not call into the table. */
void ino_table_set_priv_free(ino_table *t, void (*fn)(void *priv));
void ino_table_set_fallback(ino_table *t, ino_fallback_open_fn fn, void *arg);
