/* kcache.h — what the kernel caches that a traced command must not be
 * hidden from.
 *
 * The daemon sees a request only when the kernel's caches cannot answer.
 * Two cached answers matter to the action cache's soundness:
 *   - negative entries (a name that does not exist): a header that would
 *     newly shadow another on an include path is seen only as a failed
 *     lookup;
 *   - directory listings (readdir is cached, OPENDIR is not sent).
 * While no session is live the kernel may cache both for as long as the
 * mount's timeout says; the daemon remembers which it handed out, and a
 * session starting drops them all (FUSE_LL_EXPIRE_ONLY for negatives, the
 * directory's pages for listings) before its command runs.  While a
 * session is live, an absence is answered uncacheably (ENOENT), except to
 * a compiler proper of a run that found the same name absent before (it
 * walks `-I dir/bits` once per `<bits/...>` header): that one the kernel
 * may cache, and every other live run records it as its own observation at
 * once (trace_absent_shared), since from then on the kernel may answer
 * their lookups of it too; runs that begin later drop it as above.  Each
 * listing that reaches its end while a session is live is dropped again
 * right after it was served, from a worker thread (the kernel holds the
 * directory while it fills the listing, so the drop cannot be made from
 * inside the READDIR request).
 *
 * What remains (docs/ACTIONS.md): a listing served to one process and
 * listed again by another within the moment before it is dropped is served
 * from the cache to the second.
 *
 * Thread-safety: every function may be called from any FUSE worker.
 */
#pragma once
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "inode.h"

struct kcache;
struct sessions;
struct session;

int kcache_new(struct fuse_session *se, struct kcache **ret);
/* Stops the worker.  Accepts NULL. */
void kcache_free(struct kcache *k);

/* A lookup of name in parent (node pnode) found nothing; caller is the
 * session of the process that looked (NULL: none), seen_before when that
 * run had found the name absent before (and the process is a compiler).  True when the kernel may cache
 * the absence (remembered for the next sweep, and recorded by every other
 * live run, above). */
bool kcache_negative(struct kcache *k, struct sessions *ss, struct session *caller, bool seen_before,
		     fuse_ino_t parent, ino_node *pnode, const char *name);
/* A listing of dir reached its end (READDIR answered with nothing more). */
void kcache_listed(struct kcache *k, struct sessions *ss, fuse_ino_t dir);
/* Runs fn (which makes a session live) so that no cacheable answer can be
 * handed out unseen between the two, then drops what the kernel may still
 * cache.  Returns fn's result. */
int kcache_begin_session(struct kcache *k, int (*fn)(void *arg), void *arg);
