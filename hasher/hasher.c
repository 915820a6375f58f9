#include "hasher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
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

int hasher_digest_fd(int fd, hasher_digest *ret, uint64_t *ret_size)
{
	/* On the stack: a heap buffer this size is mmapped and faulted in
	 * afresh on every call, which costs more than hashing small files. */
	enum { BUF = 1 << 16 };
	char buf[BUF];
	hasher_stream *s = hasher_stream_new();
	int r = 0;
	off_t off = 0;

	if (!s) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = pread(fd, buf, BUF, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		hasher_stream_update(s, buf, (size_t)n);
		off += n;
	}
	hasher_stream_final(s, ret);
	if (ret_size)
		*ret_size = (uint64_t)off;
out:
	hasher_stream_free(s);
	return r;
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

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hasher_digest_from_hex(const char *hex, size_t len, hasher_digest *ret)
{
	hasher_digest d;
	if (len != HASHER_HEX_LEN)
		return -EINVAL;
	for (int i = 0; i < HASHER_DIGEST_LEN; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
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
