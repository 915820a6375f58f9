/* trace.h — what one action-cache session observed and changed on the
 * mount, recorded by the handlers while they serve its processes.
 *
 * Observations (inputs): regular files opened for reading (with the digest
 * and digest version of what they held), names looked up that did not
 * exist, directories opened or listed (with the digest of their entries),
 * symlinks read, stat-only probes that reached the daemon.  Changes
 * (outputs): every name created, opened for writing, removed or renamed;
 * what each holds is read at the end (trace_outputs), so a file written
 * several times is recorded once, as it ended.
 *
 * Paths are recorded relative to the mount, from the nodes' remembered
 * names (inode.h): a hard link is recorded under the name it was last
 * reached by.  A name whose path cannot be told (a node reached only by
 * file handle) makes the trace incomplete: the action is then not cached.
 *
 * The first observation of a path is what the command saw: a file read
 * after the command itself wrote it is its own output, not an input.  A
 * stat-only probe is replaced by a read, listing or readlink of the same
 * path that follows.  The absence of a file is dropped only when it was
 * the lookup of the very open that created it, truncating (trace_created_file).
 *
 * Thread-safety: every function may be called from any FUSE worker.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "action.h"
#include "digest.h"
#include "inode.h"

struct trace;
struct session;
struct sessions;

/* Why a recorded run cannot be cached (each counted in stats). */
enum trace_problem {
	TRACE_OK = 0,
	TRACE_NO_PATH,          /* a node without a known path was touched */
	TRACE_INPUT_CHANGED,    /* an input changed during the run, not by it */
	TRACE_INPUT_WRITTEN,    /* an input was being written by someone else */
	TRACE_TOO_BIG,          /* more events than a trace holds */
	TRACE_NOMEM,
	TRACE_HIDDEN_COMPILE,   /* a compiler proper ran where the client
				   did not learn what it read outside the
				   mount (a wrapper, a shell line, a link
				   that compiles) */
	TRACE_NESTED,           /* a process of the run asked for an action
				   of its own: what that one reads outside
				   the mount and restores is not this run's */
	TRACE_MOVED_DIR,        /* a directory the run did not make was
				   renamed: its entries, never read, would
				   be outputs */
	TRACE_OUTPUT_CHANGED,   /* another process changed an output (or
				   something in a directory the run made)
				   while the run was live */
	TRACE_XATTRS,           /* the run read, listed (other than
				   casfs's own), set or removed extended
				   attributes: neither inputs nor outputs
				   of a manifest */
	TRACE_INHERITED_WRITE,  /* the run wrote through a file opened
				   before it (3>>log, stdin opened <>): a
				   hit would not write it */
	TRACE_OWNER_CHANGED,    /* the run gave a file another owner or
				   group (chown, chgrp, install -o/-g): a
				   hit makes its outputs the caller's */
	TRACE_SPECIAL_INPUT,    /* the run looked up a fifo, socket or
				   device: what it reads or writes through
				   one never reaches casfs */
};

int trace_new(struct trace **ret);
/* The run used extended attributes other than casfs's own (TRACE_XATTRS). */
void trace_xattrs(struct trace *t);
/* The run wrote through a file it did not open (TRACE_INHERITED_WRITE). */
void trace_inherited_write(struct trace *t);
/* The run changed a file's owner or group (TRACE_OWNER_CHANGED). */
void trace_owner_changed(struct trace *t);
/* Releases the nodes it holds.  Accepts NULL. */
void trace_free(struct trace *t);

/* n (regular file) opened for reading; fd: any fd of it. */
void trace_read(struct trace *t, ino_node *n, int fd);
/* The digest of what the run read at path (mount-relative) when reading
 * it was its first observation of path and the run has not changed it
 * since: true.  False otherwise. */
bool trace_read_digest(struct trace *t, const char *path, hasher_digest *ret);
/* n opened for writing (existing file).  trunc_from NULL: its content is
 * an input (appended to, patched, or kept by a chmod).  Else its old
 * content does not matter (O_TRUNC, truncated to 0, not a regular file),
 * and trunc_from is its stat from before the truncation: that it existed,
 * its type, mode and size are observed (a truncated file keeps its mode).
 * fd: any fd of it. */
void trace_write_open(struct trace *t, ino_node *n, int fd, const struct stat *trunc_from);
/* n (fd: any fd of it, O_PATH is fine) is about to be linked or renamed
 * to another name: what it holds now is what the new name will hold, so
 * it is an input, as if read (a regular file's digest and mode, a
 * symlink's target, else its type and mode; a directory the run did not
 * make sets TRACE_MOVED_DIR).  n NULL (no node known): TRACE_NO_PATH.  Call before the change,
 * while n's remembered name is still the old one. */
void trace_source(struct trace *t, ino_node *n, int fd);
/* `name` in parent was created (mkdir, mknod, symlink, link). */
void trace_created(struct trace *t, ino_node *parent, const char *name);
/* `name` in parent was created by an open (CREATE) of thread tid with
 * these open flags. */
void trace_created_file(struct trace *t, pid_t tid, ino_node *parent, const char *name, int flags);
/* `name` in parent was removed (unlink, rmdir). */
void trace_removed(struct trace *t, ino_node *parent, const char *name);
/* `name` in p renamed to `newname` in np; `replaced`: a name existed at
 * the destination. */
void trace_renamed(struct trace *t, ino_node *p, const char *name, ino_node *np, const char *newname,
		   bool replaced);
/* `name` in parent did not exist (a lookup by thread tid).  Returns how
 * many times the run found it absent so far (0: not recorded). */
unsigned trace_absent(struct trace *t, pid_t tid, ino_node *parent, const char *name);
/* `name` in parent does not exist, and the kernel may now say so to this
 * run's processes without asking (another run's process found it absent
 * again, fs/kcache.h): recorded as if the run had looked, unless it
 * observed the name first; never taken for the lookup of a create. */
void trace_absent_shared(struct trace *t, ino_node *parent, const char *name);
/* n exists, as st says (a lookup, getattr or access that reached the
 * daemon): its type, permission bits and (regular file) size. */
void trace_exists(struct trace *t, ino_node *n, const struct stat *st);
/* the directory n (dfd: any fd of it, whose offset is left alone) was
 * opened or listed */
void trace_listed(struct trace *t, ino_node *n, int dfd);
/* The directory n (any fd of it: dfd) is removed or renamed over, which
 * needs it empty: its listing is an input, unless the run itself changed
 * what it holds (its removals are then outputs, and its state before the
 * run is what they were). */
void trace_emptied(struct trace *t, ino_node *n, int dfd);
/* The listing digest (action_listing_digest) of the directory open as dfd
 * (O_RDONLY), read from its start, with the directory's own permission bits
 * (as those of an entry named "/").  0 or -errno. */
int trace_listing_digest(int dfd, hasher_digest *ret);
/* the symlink n was read: its target */
void trace_readlink(struct trace *t, ino_node *n, const char *target);
/* The root as the command sees it (absolute): a symlink target naming a
 * path under it is recorded relative to it (trace_symlink_digest), so that
 * a tree copied to another root, whose absolute symlinks still point into
 * the first, is a miss there.  0 or -ENOMEM. */
int trace_set_root(struct trace *t, const char *root_abs);
/* The digest a symlink input records for target: of the target with the
 * root (root_abs, NULL: none) replaced as action_relativize does.  0 or
 * -ENOMEM. */
int trace_symlink_digest(const char *target, const char *root_abs, hasher_digest *ret);

/* A process other than those of session `by` (NULL: in no session) opened
 * for writing, truncated, chmod'ed, created, removed or renamed the node n
 * (name NULL) or the name `name` in the directory n: every other live
 * session that changed that path or a directory above it gets
 * TRACE_OUTPUT_CHANGED (what it would store is not all its own), and every
 * other live session that observed that path (absent, present, read,
 * listed) or listed its directory gets TRACE_INPUT_CHANGED.  One atomic
 * load while no session is live. */
void trace_foreign_change(struct sessions *ss, const struct session *by, ino_node *n, const char *name);
/* The same; moved_away: the name was renamed away (a directory's subtree
 * with it), so what other runs observed below it changed too. */
void trace_foreign_change_at(struct sessions *ss, const struct session *by, ino_node *n, const char *name,
			     bool moved_away);

/* A write handle of the session was opened / closed. */
void trace_writer_opened(struct trace *t);
void trace_writer_closed(struct trace *t);
/* A process of the run looked up an action of its own (casfs exec inside
 * casfs exec: a recursive make under casfs-sh). */
void trace_nested(struct trace *t);
/* Watching for compilers: the run's top command is not a compile whose
 * outside reads are learned.  trace_watching tells (cheap); trace_compiler
 * marks the run when one of its processes is a compiler proper. */
void trace_watch_compilers(struct trace *t);
bool trace_watching(struct trace *t);
void trace_compiler(struct trace *t);
/* Waits up to ms for the session's write handles to be closed (the kernel
 * releases them asynchronously after the processes exit).  True when all
 * are closed. */
bool trace_wait_writers(struct trace *t, int ms);

/* The run itself changed n's attributes, not its content (a hard link of
 * it: its ctime and link count): the digest's new version is still what it
 * read. */
void trace_own_meta(struct trace *t, ino_node *n, digests *dg);
/* The problem that keeps the run from being cached, or TRACE_OK, checked
 * now (inputs changed since they were read). */
enum trace_problem trace_check(struct trace *t, digests *dg);

/* Adds the inputs to m, with paths relative to the root `root` (a
 * mount-relative path, "" for the mount) in ACTION_SCOPE_ROOT, or in
 * ACTION_SCOPE_MOUNT when outside it.  An absence that was only the lookup
 * of the run's own create (trace_created_file) is left out where
 * is_file(arg, path relative to the root) says the name ends as a regular
 * file (a hit checks what is there then); anywhere else it is an input.
 * 0 or -errno. */
int trace_inputs(struct trace *t, const char *root, action_manifest *m,
		 bool (*is_file)(void *arg, const char *rel), void *arg);

/* The changed paths below root (mount-relative, without the root prefix
 * and its '/'), each with whether it existed before the run and whether the
 * run renamed something onto it; calls fn for each.  A changed path outside
 * the root returns -EXDEV.  0, -EXDEV or fn's error. */
int trace_changes(struct trace *t, const char *root,
		  int (*fn)(void *arg, const char *rel, bool existed_before, bool moved_in), void *arg);
