/* digest.h — per-inode content digests kept right under every mutation.
 *
 * State machine of one regular file's digest (per ino_node, in node->priv):
 *   - opened for writing while empty (new file, O_TRUNC, truncate to 0),
 *     also while another writer has it open: a streaming XXH3 state starts
 *     at offset 0;
 *   - a write at exactly the streamed length feeds the stream; any other
 *     write, fallocate, copy_file_range into it, truncate to a non-zero
 *     size other than the streamed length, or a write we could not see the
 *     bytes of marks the stream dirty;
 *   - at the last release of a written file the digest is final: from the
 *     stream when it covers the whole file, else by one read of the file
 *     (by a background worker; a request for the file while it reads
 *     waits for it);
 *   - asked for while a writer has it open: from the stream when it covers
 *     the whole file, else by hashing what is there; nothing remembered;
 *   - files never written through this mount get their digest on first
 *     request, from the index (when size, mtime and ctime match and the entry
 *     is not racy) or by reading them.
 * The content's SHA-256 rides along: with digests_set_sha256_on_write the
 * stream computes it beside XXH3 and every read (at close, on request)
 * gives both; without, it is computed on its first request (one read, both
 * digests) and kept until the content changes.  It is valid only together
 * with the XXH3 digest, goes to the index with it, and comes back from the
 * index under the same rule.
 * Final digests go to the store index in batches by a background thread, so
 * closing a file never waits for an fsync.
 *
 * Thread-safety: every function may be called from any FUSE worker.
 * No FUSE types here.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hasher.h"
#include "index.h"
#include "inode.h"

typedef struct digests digests;

typedef struct digest_counters {
	uint64_t files_hashed_streaming;
	uint64_t files_hashed_by_reread;
	uint64_t files_hashed_by_store_read; /* digests_seed_read */
	uint64_t files_hashed_on_demand;
	uint64_t bytes_hashed;
	uint64_t digest_index_hits;
	uint64_t index_writes;
	uint64_t index_errors;
	uint64_t sha256_streamed;   /* SHA-256 taken from the write stream */
	uint64_t sha256_by_read;    /* SHA-256 computed by reading the file */
	uint64_t sha256_index_hits; /* SHA-256 served from the index */
} digest_counters;

/* Who hears of digests (the live-file index of .casfs/cas, ingest, the
 * action cache's tracer):
 *   known: a node's digest became known: `written` when its content was
 *          just written through this mount (at the last close of a writer),
 *          else found in the index or hashed on request.  Called with no
 *          lock of this module held (it may block, and may call digests_*);
 *          n stays valid for the call.
 *   gone:  a node's known digest stops being its file's: the content
 *          changes, another digest replaces it, or the node is freed.
 *          Called with the node's digest state or the inode table locked:
 *          must not call into the table or this module, or block. */
typedef struct digests_subscriber {
	void (*known)(void *arg, ino_node *n, const cache_file_rec *rec, bool written);
	void (*gone)(void *arg, uint64_t dev, uint64_t ino, const hasher_digest *d);
	void *arg;
} digests_subscriber;
#define DIGESTS_MAX_SUBSCRIBERS 4

/* ix may be NULL (no persistence). proc_fd: an fd of /proc/self/fd. */
int digests_new(ino_table *t, cache_index *ix, int proc_fd, digests **ret);
/* Writes everything pending to the index, then frees. Accepts NULL. */
void digests_free(digests *d);
void digests_counters(digests *d, digest_counters *ret);
/* With on, SHA-256 is streamed beside XXH3 on the write path and computed
 * with it by every read (mount option sha256).  Call before any event.
 * Returns 0, or -ENOTSUP when libcrypto gives no SHA-256 here. */
int digests_set_sha256_on_write(digests *d, bool on);
/* Adds a subscriber (copied) before any event: 0, or -ENOSPC past
 * DIGESTS_MAX_SUBSCRIBERS. */
int digests_subscribe(digests *d, const digests_subscriber *s);

/* fd: the file just opened for writing (any access mode that writes);
 * truncated: the open had O_TRUNC (it emptied the file, and whatever fd
 * holds beyond offset 0 now was written after that). */
void digests_open_write(digests *d, ino_node *n, int fd, bool truncated);
/* After `len` bytes were written at `off`; data may be NULL when the bytes
 * were not seen (spliced), which makes the stream dirty. */
void digests_write(digests *d, ino_node *n, off_t off, const void *data, size_t len);
/* Before a write's bytes go to the backing file: the token to give
 * digests_write_reply.  A truncation that restarts the stream between the
 * two (an O_TRUNC open by another writer) makes that write dirty: its
 * bytes may have landed before the truncation removed them. */
uint64_t digests_write_begin(digests *d, ino_node *n);
/* digests_write for a caller that answers its writer: calls reply(arg)
 * exactly once (reply may be NULL), after the bytes took their place in
 * n's stream but before they are hashed, so the writer's next write
 * overlaps the hashing (and still reaches the stream after these bytes).
 * data stays the caller's and must stay valid until this returns. */
void digests_write_reply(digests *d, ino_node *n, uint64_t token, off_t off, const void *data, size_t len,
			 void (*reply)(void *arg), void *arg);
/* The content is about to change (truncate, fallocate, copy_file_range
 * into it): the digest stops being served before the backing changes. */
void digests_begin_change(digests *d, ino_node *n);
/* Content changed in a way the stream cannot follow. */
void digests_invalidate(digests *d, ino_node *n);
/* The file was truncated to size. */
void digests_truncate(digests *d, ino_node *n, off_t size);
/* Metadata (mode, owner, times, links, name) changed, content did not: st is
 * the file's new stat; keeps a known digest valid across remounts. */
void digests_meta_changed(digests *d, ino_node *n, const struct stat *st);
/* digests_meta_changed for a change of times the caller made after
 * digests_peek gave version: 0 when the content is still that version (no
 * write, no writer, still known), -ESTALE otherwise (nothing recorded). */
int digests_touched(digests *d, ino_node *n, const struct stat *st, uint64_t version);
/* A write handle is closed; fd is still open.  recorded: the writer belongs
 * to a run whose outputs a recorder will read to store them; a file that
 * needs a re-read then waits DIGESTS_RECORDED_DELAY_MS for it, so that the
 * recorder's read gives the digest (digests_seed_read) and the file is read
 * once, not twice. */
#define DIGESTS_RECORDED_DELAY_MS 3000
void digests_release_write(digests *d, ino_node *n, int fd, bool recorded);
/* A hash on a request's path (digests_get & co. of a file whose digest is
 * not known, or that a writer has open; or a wait for the worker's read of
 * it) asks cancel->fn at least every HASHER_CANCEL_EVERY bytes and every
 * 100 ms, and stops with -EINTR when it says so (the request was
 * interrupted: its caller got a signal, the mount goes away): a 16 TiB
 * sparse file takes most of an hour to hash, its caller unkillable.  For
 * the calling thread, until called again with NULL. */
void digests_cancel_scope(const hasher_cancel *cancel);
/* The digest of the regular file n; fd is any fd of it (O_PATH is fine).
 * Returns 0 or -errno. */
int digests_get(digests *d, ino_node *n, int fd, hasher_digest *ret);

/* The SHA-256 of the regular file n (fd: any fd of it), as digests_get:
 * known, from the index, or by one read that also gives the digest.
 * Returns 0 or -errno. */
int digests_get_sha256(digests *d, ino_node *n, int fd, hasher_sha256 *ret);

/* digests_get, with the version the digest belongs to (see digests_peek).
 * -EBUSY instead of hashing when a writer has the file open. */
int digests_get_versioned(digests *d, ino_node *n, int fd, hasher_digest *ret, uint64_t *ret_version);

/* n's content is known to have digest d (restored from the store): st is
 * the file's stat.  Nothing reads it to learn its digest. */
void digests_seed(digests *d, ino_node *n, const hasher_digest *digest, const struct stat *st);

/* The version of n's content (see digests_peek), valid or not: 0, or
 * -EBUSY while a writer has the file open. */
int digests_version(digests *d, ino_node *n, uint64_t *ret_version);

/* n's content, read whole by the caller since digests_version gave
 * version, has digest d; st: the file's stat after that read.  Recorded as
 * its digest when the content is still that version (nothing changed it
 * since, no writer has it open, it still has a name) and not yet known:
 * a re-read queued for it then finds it known and reads nothing.  0, or
 * -ESTALE when it changed (nothing recorded). */
int digests_seed_read(digests *d, ino_node *n, const hasher_digest *digest, const struct stat *st,
		      uint64_t version);

/* n now is another inode with the same content (ino_table_moved: a copy
 * made when a rename crossed two backing filesystems); st is its stat.  A
 * known digest stays known, for the new inode (subscribers hear "gone" for
 * the old one and "known" for n), and nothing reads the copy to learn it. */
void digests_moved(digests *d, ino_node *n, const struct stat *st);

/* The known digest of n without computing anything: 0 and *rec, *version
 * when it is valid and no writer has the file open, else -EAGAIN.  The
 * version changes with every change of the content. */
int digests_peek(digests *d, ino_node *n, cache_file_rec *rec, uint64_t *version);

/* True when a handle open for writing holds n: what the daemon last saw of
 * it may not be what readers see (a shared writable mapping's dirty pages
 * reach the daemon only when the kernel writes them back). */
bool digests_writers(digests *d, ino_node *n);

/* digests_peek, and when n's digest is not in memory, the index's record
 * of the file if it still describes it (st: its attributes now; one read
 * of the index, never of the file). */
int digests_peek_stat(digests *d, ino_node *n, const struct stat *st, cache_file_rec *rec, uint64_t *version);
