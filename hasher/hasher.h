/* hasher — content digests for casfs (pure C, depends on xxhash and
 * OpenSSL's libcrypto).
 *
 * A digest is XXH3-128 in canonical (big-endian) byte order; its hex form is
 * exactly what `xxh128sum` prints.  The streaming state follows xxHash's
 * create → reset → update… → final pattern; final leaves the state usable.
 * A stream may also compute the content's SHA-256 (the digest Bazel and
 * other tools speak) over the same bytes, so one pass gives both.
 *
 * Thread-safety: a hasher_stream is owned by one caller at a time; the
 * one-shot functions are reentrant.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HASHER_DIGEST_LEN 16
#define HASHER_HEX_LEN 32

typedef struct hasher_digest {
	uint8_t bytes[HASHER_DIGEST_LEN]; /* canonical, big-endian */
} hasher_digest;

#define HASHER_SHA256_LEN 32

typedef struct hasher_sha256 {
	uint8_t bytes[HASHER_SHA256_LEN]; /* as sha256sum prints it, in binary */
} hasher_sha256;

typedef struct hasher_stream hasher_stream;

/* What a stream computes besides XXH3-128 (flags). */
enum hasher_extra {
	HASHER_WITH_SHA256 = 1u << 0,
};

/* Returns a new stream reset to the empty input, or NULL on ENOMEM. */
hasher_stream *hasher_stream_new(void);
/* The same, also computing the digests `extras` (enum hasher_extra) names.
 * NULL on ENOMEM or when libcrypto cannot give SHA-256. */
hasher_stream *hasher_stream_new_with(unsigned extras);
/* Accepts NULL. */
void hasher_stream_free(hasher_stream *s);
void hasher_stream_reset(hasher_stream *s);
void hasher_stream_update(hasher_stream *s, const void *data, size_t len);
/* Digest of everything fed since the last reset; the stream stays usable. */
void hasher_stream_final(const hasher_stream *s, hasher_digest *ret);
/* Bytes fed since the last reset. */
uint64_t hasher_stream_length(const hasher_stream *s);
/* The SHA-256 of everything fed since the last reset; the stream stays
 * usable.  Returns 0, -ENODATA when the stream computes no SHA-256, -EIO
 * when libcrypto failed on an update since the reset. */
int hasher_stream_final_sha256(const hasher_stream *s, hasher_sha256 *ret);

/* One-shot SHA-256.  Returns 0 or -EIO (libcrypto failed). */
int hasher_sha256_buffer(const void *data, size_t len, hasher_sha256 *ret);
bool hasher_sha256_equal(const hasher_sha256 *a, const hasher_sha256 *b);
/* Writes 64 lower-case hex chars and a NUL into out (65 bytes). */
void hasher_sha256_to_hex(const hasher_sha256 *d, char out[2 * HASHER_SHA256_LEN + 1]);

void hasher_digest_buffer(const void *data, size_t len, hasher_digest *ret);
/* Hashes the whole file open at fd with pread (the offset is untouched).
 * Holes (SEEK_DATA/SEEK_HOLE, where the filesystem has them) are hashed as
 * the zeros they read as, without reading them.  Returns 0, or -errno;
 * *ret_size gets the byte count when non-NULL. */
int hasher_digest_fd(int fd, hasher_digest *ret, uint64_t *ret_size);

/* Asked every HASHER_CANCEL_EVERY bytes hashed: true stops the hashing
 * with -ECANCELED (the file changed, was deleted, the daemon stops...). */
#define HASHER_CANCEL_EVERY (1ull << 20)
typedef struct hasher_cancel {
	bool (*fn)(void *arg);
	void *arg;
} hasher_cancel;
/* hasher_digest_fd that can be cancelled (cancel may be NULL). */
int hasher_digest_fd_sparse(int fd, const hasher_cancel *cancel, hasher_digest *ret, uint64_t *ret_size);
/* hasher_digest_fd_sparse that also gives the file's SHA-256, from the
 * same read, when ret_sha256 is not NULL (holes still cost no I/O). */
int hasher_digests_fd(int fd, const hasher_cancel *cancel, hasher_digest *ret, hasher_sha256 *ret_sha256,
		      uint64_t *ret_size);

/* Writes 32 lower-case hex chars and a NUL into out (33 bytes). */
void hasher_digest_to_hex(const hasher_digest *d, char out[HASHER_HEX_LEN + 1]);
/* Parses exactly 32 hex chars (either case: what a user types). Returns 0
 * or -EINVAL. */
int hasher_digest_from_hex(const char *hex, size_t len, hasher_digest *ret);
/* True when the len chars at s are lower-case hex digits, the only form of
 * the names casfs makes from digests (store files and their fan-out
 * directories, .casfs/cas/<hex>).  Stops at the first other char (a NUL
 * too), so s may be shorter than len. */
bool hasher_hex_is_lower(const char *s, size_t len);
bool hasher_digest_equal(const hasher_digest *a, const hasher_digest *b);

/* ---- content-aware digests (rules: docs/DIGESTS.md) ----------------------
 * Both are domain-separated from plain content digests (a different prefix is
 * hashed first), deterministic, and independent of chunking.
 */

/* C/C++ source: comments and runs of insignificant whitespace dropped;
 * string/char literals, raw strings, preprocessor lines and every newline
 * (also those inside comments) kept.  Never fails. */
void hasher_c_source_digest(const void *data, size_t len, hasher_digest *ret);

/* `ar` archive ("!<arch>\n"): member names, sizes and contents in order;
 * member mtime, uid, gid and mode ignored.  Returns 0, or -EINVAL when data is
 * not a well-formed archive. */
int hasher_ar_digest(const void *data, size_t len, hasher_digest *ret);
