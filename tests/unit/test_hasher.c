/* Unit tests for hasher/: vectors from xxh128sum, streaming == one-shot. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hasher.h"

static void hex_of(const void *data, size_t len, char out[33])
{
	hasher_digest d;
	hasher_digest_buffer(data, len, &d);
	hasher_digest_to_hex(&d, out);
}

/* Expected values printed by `xxh128sum` (xxhash 0.8.1). */
static void test_known_vectors(void **state)
{
	char hex[33];
	hex_of("", 0, hex);
	assert_string_equal(hex, "99aa06d3014798d86001c324468d497f");
	hex_of("abc", 3, hex);
	assert_string_equal(hex, "06b05ab6733a618578af5f94892f3950");
	char *zeros = calloc(1, 1000);
	hex_of(zeros, 1000, hex);
	assert_string_equal(hex, "3fb94aea6d09b97224c1ea6074dd588c");
	free(zeros);
	uint8_t *pat = malloc(100000);
	for (int i = 0; i < 100000; i++)
		pat[i] = (uint8_t)(i % 251);
	hex_of(pat, 100000, hex);
	assert_string_equal(hex, "54182c58bbb1337c42c23aeead96750d");
	free(pat);
}

static void test_streaming_random_chunks(void **state)
{
	enum { N = 1 << 20 };
	uint8_t *buf = malloc(N);
	srand(12345);
	for (int i = 0; i < N; i++)
		buf[i] = (uint8_t)rand();
	for (int round = 0; round < 50; round++) {
		size_t len = (size_t)rand() % N;
		hasher_digest one, streamed;
		hasher_digest_buffer(buf, len, &one);
		hasher_stream *s = hasher_stream_new();
		assert_non_null(s);
		for (size_t off = 0; off < len;) {
			size_t chunk = (size_t)rand() % (round % 2 ? 70000 : 300) + 1;
			if (chunk > len - off)
				chunk = len - off;
			hasher_stream_update(s, buf + off, chunk);
			off += chunk;
		}
		hasher_stream_final(s, &streamed);
		assert_true(hasher_digest_equal(&one, &streamed));
		assert_int_equal(hasher_stream_length(s), len);
		/* final leaves the stream usable */
		hasher_stream_update(s, "x", 1);
		hasher_stream_reset(s);
		hasher_stream_final(s, &streamed);
		hasher_digest_buffer("", 0, &one);
		assert_true(hasher_digest_equal(&one, &streamed));
		hasher_stream_free(s);
	}
	free(buf);
}

static void test_hex_round_trip(void **state)
{
	hasher_digest d, back;
	char hex[33];
	hasher_digest_buffer("casfs", 5, &d);
	hasher_digest_to_hex(&d, hex);
	assert_int_equal(hasher_digest_from_hex(hex, 32, &back), 0);
	assert_true(hasher_digest_equal(&d, &back));
	assert_int_equal(hasher_digest_from_hex("ABCDEF0123456789abcdef0123456789", 32, &back), 0);
	assert_int_equal(hasher_digest_from_hex(hex, 31, &back), -EINVAL);
	assert_int_equal(hasher_digest_from_hex("g0000000000000000000000000000000", 32, &back), -EINVAL);
}

static void test_digest_fd(void **state)
{
	char path[] = "/tmp/casfs-hasher-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	uint8_t *buf = malloc(300000);
	for (int i = 0; i < 300000; i++)
		buf[i] = (uint8_t)(i * 7);
	assert_int_equal(write(fd, buf, 300000), 300000);
	hasher_digest a, b;
	uint64_t size = 0;
	assert_int_equal(hasher_digest_fd(fd, &a, &size), 0);
	assert_int_equal(size, 300000);
	hasher_digest_buffer(buf, 300000, &b);
	assert_true(hasher_digest_equal(&a, &b));
	close(fd);
	assert_int_equal(hasher_digest_fd(fd, &a, NULL), -EBADF);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_streaming_random_chunks),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_digest_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
