/* hasher.c — see hasher.h.  SHA-256 is OpenSSL's EVP implementation (SHA
 * extensions where the CPU has them); its algorithm is fetched once per
 * process, not at every init (an implicit fetch takes a lock).
 *
 * libcrypto is loaded (dlopen) the first time SHA-256 is asked for, not at
 * program start: its relocations and page faults cost a process about
 * 0.6 ms, and most processes that use the hasher (casfs exec, once per
 * compile) never compute a SHA-256. */
#include "hasher.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

struct hasher_stream {
	XXH3_state_t *state; /* 64-byte aligned: allocated by XXH3_createState */
	EVP_MD_CTX *sha;     /* NULL unless HASHER_WITH_SHA256 */
	bool sha_failed;     /* an update failed since the last reset */
	uint64_t length;
};

/* The libcrypto functions used, resolved once (ssl.md NULL: unavailable). */
static struct {
	EVP_MD *md;
	__typeof__(EVP_MD_CTX_new) *ctx_new;
	__typeof__(EVP_MD_CTX_free) *ctx_free;
	__typeof__(EVP_MD_CTX_copy_ex) *ctx_copy;
	__typeof__(EVP_DigestInit_ex) *init;
	__typeof__(EVP_DigestUpdate) *update;
	__typeof__(EVP_DigestFinal_ex) *final;
	__typeof__(EVP_Digest) *digest;
} ssl;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_load(void)
{
#ifdef HASHER_NO_SHA256
	/* a static binary (casfs-exec) never loads a library */
	return;
#endif
	void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		h = dlopen("libcrypto.so", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return;
	/* POSIX's way to take a function from dlsym (ISO C has no cast) */
	__typeof__(EVP_MD_fetch) *fetch;
	*(void **)&fetch = dlsym(h, "EVP_MD_fetch");
	*(void **)&ssl.ctx_new = dlsym(h, "EVP_MD_CTX_new");
	*(void **)&ssl.ctx_free = dlsym(h, "EVP_MD_CTX_free");
	*(void **)&ssl.ctx_copy = dlsym(h, "EVP_MD_CTX_copy_ex");
	*(void **)&ssl.init = dlsym(h, "EVP_DigestInit_ex");
	*(void **)&ssl.update = dlsym(h, "EVP_DigestUpdate");
	*(void **)&ssl.final = dlsym(h, "EVP_DigestFinal_ex");
	*(void **)&ssl.digest = dlsym(h, "EVP_Digest");
	if (fetch && ssl.ctx_new && ssl.ctx_free && ssl.ctx_copy && ssl.init && ssl.update && ssl.final && ssl.digest)
		ssl.md = fetch(NULL, "SHA256", NULL);
	/* the library stays loaded for the life of the process */
}

/* The SHA-256 algorithm, or NULL when libcrypto or its SHA-256 is missing. */
static const EVP_MD *sha256_alg(void)
{
	pthread_once(&sha256_once, sha256_load);
	return ssl.md;
}

hasher_stream *hasher_stream_new_with(unsigned extras)
{
	hasher_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->state = XXH3_createState();
	if (!s->state)
		goto fail;
	if ((extras & HASHER_WITH_SHA256) && (!sha256_alg() || !(s->sha = ssl.ctx_new())))
		goto fail;
	hasher_stream_reset(s);
	if (s->sha_failed)
		goto fail;
	return s;
fail:
	hasher_stream_free(s);
	return NULL;
}

hasher_stream *hasher_stream_new(void)
{
	return hasher_stream_new_with(0);
}

void hasher_stream_free(hasher_stream *s)
{
	if (!s)
		return;
	XXH3_freeState(s->state);
	if (s->sha)
		ssl.ctx_free(s->sha);
	free(s);
}

void hasher_stream_reset(hasher_stream *s)
{
	XXH3_128bits_reset(s->state);
	s->length = 0;
	s->sha_failed = s->sha && !ssl.init(s->sha, sha256_alg(), NULL);
}

void hasher_stream_update(hasher_stream *s, const void *data, size_t len)
{
	XXH3_128bits_update(s->state, data, len);
	if (s->sha && !s->sha_failed && !ssl.update(s->sha, data, len))
		s->sha_failed = true;
	s->length += len;
}

int hasher_stream_final_sha256(const hasher_stream *s, hasher_sha256 *ret)
{
	if (!s->sha)
		return -ENODATA;
	if (s->sha_failed)
		return -EIO;
	/* finishing consumes a context: finish a copy */
	EVP_MD_CTX *c = ssl.ctx_new();
	unsigned len = 0;
	int r = c && ssl.ctx_copy(c, s->sha) && ssl.final(c, ret->bytes, &len) && len == HASHER_SHA256_LEN ? 0 : -EIO;
	if (c)
		ssl.ctx_free(c);
	return r;
}

int hasher_sha256_buffer(const void *data, size_t len, hasher_sha256 *ret)
{
	unsigned n = 0;
	const EVP_MD *md = sha256_alg();
	return md && ssl.digest(data, len, ret->bytes, &n, md, NULL) && n == HASHER_SHA256_LEN ? 0 : -EIO;
}

bool hasher_sha256_equal(const hasher_sha256 *a, const hasher_sha256 *b)
{
	return memcmp(a->bytes, b->bytes, HASHER_SHA256_LEN) == 0;
}

static void canonical(XXH128_hash_t h, hasher_digest *ret)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, h);
	memcpy(ret->bytes, c.digest, HASHER_DIGEST_LEN);
}

void hasher_stream_final(const hasher_stream *s, hasher_digest *ret)
{
	canonical(XXH3_128bits_digest(s->state), ret);
}

uint64_t hasher_stream_length(const hasher_stream *s)
{
	return s->length;
}

void hasher_digest_buffer(const void *data, size_t len, hasher_digest *ret)
{
	canonical(XXH3_128bits(data, len), ret);
}

/* Feeds len zero bytes (a hole: no I/O, only the hashing). */
static int feed_zeros(hasher_stream *s, uint64_t len, const hasher_cancel *c)
{
	static const char zeros[1 << 16];
	uint64_t since_check = 0;
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		hasher_stream_update(s, zeros, n);
		len -= n;
		if ((since_check += n) >= HASHER_CANCEL_EVERY) {
			since_check = 0;
			if (c && c->fn(c->arg))
				return -ECANCELED;
		}
	}
	return 0;
}

/* Feeds the bytes of [off, end) read with pread; stops early at EOF.
 * Returns the new offset or -errno. */
static int64_t feed_data(hasher_stream *s, int fd, char *buf, size_t bufsz, off_t off, off_t end,
			 const hasher_cancel *c)
{
	uint64_t since_check = 0;
	while (off < end) {
		size_t want = (uint64_t)(end - off) < bufsz ? (size_t)(end - off) : bufsz;
		ssize_t n = pread(fd, buf, want, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		hasher_stream_update(s, buf, (size_t)n);
		off += n;
		if ((since_check += (uint64_t)n) >= HASHER_CANCEL_EVERY) {
			since_check = 0;
			if (c && c->fn(c->arg))
				return -ECANCELED;
		}
	}
	return off;
}

int hasher_digests_fd(int fd, const hasher_cancel *cancel, hasher_digest *ret, hasher_sha256 *ret_sha256,
		      uint64_t *ret_size)
{
	/* On the stack: a heap buffer this size is mmapped and faulted in
	 * afresh on every call, which costs more than hashing small files. */
	enum { BUF = 1 << 16 };
	char buf[BUF];
	hasher_stream *s = hasher_stream_new_with(ret_sha256 ? HASHER_WITH_SHA256 : 0);
	hasher_sha256 sha;
	int64_t off = 0;
	int r = 0;
	struct stat st;

	if (!s)
		return -ENOMEM;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	for (;;) {
		off_t data = lseek(fd, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO) {
			/* no data past off: the rest up to the size is a hole
			 * (or the file ended) */
			if (fstat(fd, &st) < 0) {
				r = -errno;
				goto out;
			}
			if (st.st_size > off && (r = feed_zeros(s, (uint64_t)(st.st_size - off), cancel)) < 0)
				goto out;
			off = st.st_size > off ? st.st_size : off;
			break;
		}
		off_t hole;
		if (data < 0 || (hole = lseek(fd, data, SEEK_HOLE)) < 0) {
			/* no SEEK_DATA here (EINVAL): read everything */
			off = feed_data(s, fd, buf, BUF, off, INT64_MAX, cancel);
			if (off < 0)
				r = (int)off;
			break;
		}
		if (data > off && (r = feed_zeros(s, (uint64_t)(data - off), cancel)) < 0)
			goto out;
		int64_t end = feed_data(s, fd, buf, BUF, data, hole, cancel);
		if (end < 0) {
			r = (int)end;
			goto out;
		}
		off = end;
		if (end < hole)
			break; /* shrank under us: the caller's size check sees it */
	}
	if (r == 0 && ret_sha256)
		r = hasher_stream_final_sha256(s, &sha);
	if (r == 0) {
		hasher_stream_final(s, ret);
		if (ret_sha256)
			*ret_sha256 = sha;
		if (ret_size)
			*ret_size = (uint64_t)off;
	}
out:
	hasher_stream_free(s);
	return r;
}

int hasher_digest_fd_sparse(int fd, const hasher_cancel *cancel, hasher_digest *ret, uint64_t *ret_size)
{
	return hasher_digests_fd(fd, cancel, ret, NULL, ret_size);
}

int hasher_digest_fd(int fd, hasher_digest *ret, uint64_t *ret_size)
{
	return hasher_digest_fd_sparse(fd, NULL, ret, ret_size);
}

/* Writes len bytes as 2 * len lower-case hex chars and a NUL. */
static void to_hex(const uint8_t *bytes, size_t len, char *out)
{
	static const char hexdig[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hexdig[bytes[i] >> 4];
		out[2 * i + 1] = hexdig[bytes[i] & 0xf];
	}
	out[2 * len] = '\0';
}

void hasher_digest_to_hex(const hasher_digest *d, char out[HASHER_HEX_LEN + 1])
{
	to_hex(d->bytes, HASHER_DIGEST_LEN, out);
}

void hasher_sha256_to_hex(const hasher_sha256 *d, char out[2 * HASHER_SHA256_LEN + 1])
{
	to_hex(d->bytes, HASHER_SHA256_LEN, out);
}

/* The value of hex digit c, or -1; upper-case digits only with any_case. */
static int hexval(char c, bool any_case)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (any_case && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool hasher_hex_is_lower(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (hexval(s[i], false) < 0)
			return false;
	return true;
}

int hasher_digest_from_hex(const char *hex, size_t len, hasher_digest *ret)
{
	hasher_digest d;
	if (len != HASHER_HEX_LEN)
		return -EINVAL;
	for (int i = 0; i < HASHER_DIGEST_LEN; i++) {
		int hi = hexval(hex[2 * i], true), lo = hexval(hex[2 * i + 1], true);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		d.bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	*ret = d;
	return 0;
}

bool hasher_digest_equal(const hasher_digest *a, const hasher_digest *b)
{
	return memcmp(a->bytes, b->bytes, HASHER_DIGEST_LEN) == 0;
}
