#include "hasher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

struct hasher_stream {
	XXH3_state_t *state; /* 64-byte aligned: allocated by XXH3_createState */
	uint64_t length;
};

hasher_stream *hasher_stream_new(void)
{
	hasher_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->state = XXH3_createState();
	if (!s->state) {
		free(s);
		return NULL;
	}
	hasher_stream_reset(s);
	return s;
}

void hasher_stream_free(hasher_stream *s)
{
	if (!s)
		return;
	XXH3_freeState(s->state);
	free(s);
}

void hasher_stream_reset(hasher_stream *s)
{
	XXH3_128bits_reset(s->state);
	s->length = 0;
}

void hasher_stream_update(hasher_stream *s, const void *data, size_t len)
{
	XXH3_128bits_update(s->state, data, len);
	s->length += len;
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

int hasher_digest_fd_sparse(int fd, const hasher_cancel *cancel, hasher_digest *ret, uint64_t *ret_size)
{
	/* On the stack: a heap buffer this size is mmapped and faulted in
	 * afresh on every call, which costs more than hashing small files. */
	enum { BUF = 1 << 16 };
	char buf[BUF];
	hasher_stream *s = hasher_stream_new();
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
	if (r == 0) {
		hasher_stream_final(s, ret);
		if (ret_size)
			*ret_size = (uint64_t)off;
	}
out:
	hasher_stream_free(s);
	return r;
}

int hasher_digest_fd(int fd, hasher_digest *ret, uint64_t *ret_size)
{
	return hasher_digest_fd_sparse(fd, NULL, ret, ret_size);
}

void hasher_digest_to_hex(const hasher_digest *d, char out[HASHER_HEX_LEN + 1])
{
	static const char hexdig[] = "0123456789abcdef";
	for (int i = 0; i < HASHER_DIGEST_LEN; i++) {
		out[2 * i] = hexdig[d->bytes[i] >> 4];
		out[2 * i + 1] = hexdig[d->bytes[i] & 0xf];
	}
	out[HASHER_HEX_LEN] = '\0';
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
