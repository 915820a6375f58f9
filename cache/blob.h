/* blob.h — the content-addressed blobs of a store: one file per distinct
 * content at STORE/objects/ab/<32 hex> (ab = the first two hex digits).
 * The file format is a grammar at the top of blob.c.
 *
 * Guarantees:
 *   - publication is atomic: a blob is written under no name (O_TMPFILE) or
 *     a locked temp name in its final directory and then linked; a process
 *     killed at any point leaves no partial blob under a final name, at most
 *     a temp file that fsck removes.  "Already there" is success.
 *   - content leaves the store only verified: the header's checksum, the
 *     sizes and the XXH3-128 of the decoded payload must match the name.  A
 *     blob that fails is moved to STORE/quarantine/, counted, and never
 *     served (-EBADMSG).
 *   - a reader holds a shared flock on the blob; gc takes it exclusively
 *     before removing a blob, so a running restore is never cut short.
 *
 * Errors are -errno.  Thread-safe; several processes may share a store.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hasher.h"
#include "index.h"

#define CACHE_BLOB_HDR 64
#define CACHE_BLOB_VERSION 1
/* Raw payloads shared by reflink start on a block boundary. */
#define CACHE_BLOB_ALIGNED_OFF 4096

enum { CACHE_COMP_NONE = 0, CACHE_COMP_ZSTD = 1 };

typedef struct cache_blob_header {
	uint8_t version;
	uint8_t compression;   /* CACHE_COMP_* */
	uint32_t payload_off;  /* CACHE_BLOB_HDR or CACHE_BLOB_ALIGNED_OFF */
	uint64_t size;         /* content bytes */
	uint64_t stored;       /* payload bytes */
	hasher_digest digest;  /* of the content */
} cache_blob_header;

void cache_blob_header_encode(const cache_blob_header *h, uint8_t out[CACHE_BLOB_HDR]);
/* Returns 0; -EBADMSG for a short buffer, wrong magic, bad checksum or
 * impossible fields; -EPROTO for a version newer than this casfs reads. */
int cache_blob_header_decode(const uint8_t *buf, size_t len, cache_blob_header *h);

typedef enum {
	CACHE_PUT_AUTO, /* reflink when the store's filesystem shares the source's
			   blocks, else zstd when it saves >= 3%, else raw */
	CACHE_PUT_RAW,  /* never compress (reflink when possible) */
	CACHE_PUT_ZSTD, /* always compress */
} cache_put_mode;

typedef struct cache_put_opts {
	cache_put_mode mode;
	int zstd_level;        /* 0 = default (1, fast) */
	bool has_expect;       /* the caller knows the digest: */
	hasher_digest expect;  /* skip the read if stored, -ESTALE if it differs */
	bool defer_record;     /* record with cache_index_blob_add_later (batches
				  of puts: one index commit for many) */
	/* Optional: called with every chunk of the content, in order, exactly
	 * once over the whole content, whenever the put reads it (all puts but
	 * has_expect ones whose blob is stored already: see result.read).  It
	 * runs on the caller's thread, inside cache_put_fd.  When the put
	 * fails, what it saw is void; in particular -ESTALE means the file
	 * changed after the observer saw it. */
	void (*on_chunk)(void *arg, const void *data, size_t len);
	void *on_chunk_arg;
} cache_put_opts;

typedef struct cache_put_result {
	hasher_digest digest;
	uint64_t size;     /* content bytes */
	uint64_t stored;   /* blob file bytes */
	uint8_t compression;
	bool existed;      /* the content was already stored */
	bool reflinked;
	bool read;         /* the content was read (on_chunk saw all of it);
			      false only when has_expect found it stored */
} cache_put_result;

/* Stores the content of fd (read with pread from 0 to EOF).  -ESTALE when
 * opts->has_expect and the content read has another digest, or when an
 * observer saw a content that changed before it was stored; -ENOSPC when
 * the store's disk or index is full (nothing is published). */
int cache_put_fd(cache_index *ix, int fd, const cache_put_opts *opts, cache_put_result *ret);

/* Whether d's blob file is there and no gc is removing it (the index asks
 * this, inside its write transaction, before it records a blob it has no
 * record of: gc drops the record, then unlinks the blob, under an
 * exclusive flock of it). */
bool cache_blob_present(cache_index *ix, const hasher_digest *d);

/* Reads a blob's header (no payload check): 0, -ENOENT, -EBADMSG, -EPROTO. */
int cache_blob_stat(cache_index *ix, const hasher_digest *d, cache_blob_header *h);

/* A verified content: size bytes at offset off of fd. */
typedef struct cache_reader {
	int fd;
	uint64_t off, size;
	bool decompressed;     /* fd is a temp file, not the blob */
} cache_reader;

/* Opens d's content after verifying it: a raw blob is served from the blob
 * file (shared lock held until close), a compressed one is decompressed
 * into an unnamed file in STORE/tmp.  Touches last use.  -ENOENT, -EBADMSG
 * (corrupt: quarantined), -errno. */
int cache_blob_open(cache_index *ix, const hasher_digest *d, cache_reader *ret);
void cache_reader_close(cache_reader *r);

/* Restores d as `name` in dirfd: a temp file in dirfd, filled by reflink
 * or copy/decompression and verified, created with `mode` (umask applies)
 * and renamed over name, so it gets a fresh mtime.  -ENOENT, -EBADMSG
 * (corrupt blob: quarantined, nothing written), -errno. */
int cache_get_at(cache_index *ix, const hasher_digest *d, int dirfd, const char *name,
		 mode_t mode, bool *reflinked);

/* Writes d's content into out, an empty regular file open for writing at
 * offset 0 (a file made ahead: see fs/spares.h), by reflink or
 * copy/decompression, verified as cache_get_at does.  -ENOENT, -EBADMSG
 * (corrupt blob: quarantined; out may hold part of it: discard it), -errno
 * (out may hold part of the content). */
int cache_get_fd(cache_index *ix, const hasher_digest *d, int out, bool *reflinked);

/* Verifies a whole blob file open at fd against the digest its name gives.
 * 0, or -EBADMSG/-EPROTO with *why naming the defect; -errno for I/O. */
int cache_blob_verify_fd(int fd, const hasher_digest *name, cache_blob_header *h, const char **why);

/* Moves the blob named d to STORE/quarantine/ and counts a corrupt blob;
 * 0 without counting when it is gone already (another reader moved it). */
int cache_blob_quarantine(cache_index *ix, const hasher_digest *d);

/* objects/ab/<hex> names: writes "ab" and the hex name. */
void cache_blob_names(const hasher_digest *d, char dir[3], char name[HASHER_HEX_LEN + 1]);

int64_t cache_now_ns(void);

/* ---- fault injection (tests) ---------------------------------------------- */
enum cache_fault {
	CACHE_FAULT_NONE,
	CACHE_FAULT_WRITE,    /* a write to a blob or restore temp file: short, then err */
	CACHE_FAULT_PUBLISH,  /* linking a finished blob under its name */
	CACHE_FAULT_RENAME,   /* renaming a restored file over its name */
	CACHE_FAULT_TMPFILE,  /* O_TMPFILE (forces the named temp file fallback) */
};
/* The next `where` in this process fails with err (once). */
void cache_fault_set(enum cache_fault where, int err);
