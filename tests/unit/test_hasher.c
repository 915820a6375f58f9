/* Unit tests for hasher/: vectors from xxh128sum, streaming == one-shot. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

static bool c_same(const char *a, const char *b)
{
	hasher_digest da, db;
	hasher_c_source_digest(a, strlen(a), &da);
	hasher_c_source_digest(b, strlen(b), &db);
	return hasher_digest_equal(&da, &db);
}

static void test_c_source_insignificant(void **state)
{
	const char *base = "#include <stdio.h>\nint main(void) {\n\treturn x + 1;\n}\n";
	assert_true(c_same(base, "#include <stdio.h>\nint main(void) {\n    return x + 1; // done\n}\n"));
	assert_true(c_same(base, "#include <stdio.h>\nint main(void)   {\n\treturn  x  +  1;   \n}\n"));
	assert_true(c_same(base, "#include <stdio.h>\nint main(void) { /* c */\n\treturn x /* y */ + 1;\n}\n"));
	assert_true(c_same("int a;\n/* one\ntwo */\nint b;\n", "int a;\n/* three\nfour */\nint b;\n"));
	assert_true(c_same("f( a , b );\n", "f(a,b);\n"));
	/* the plain digest differs from the content-aware one */
	hasher_digest plain, aware;
	hasher_digest_buffer(base, strlen(base), &plain);
	hasher_c_source_digest(base, strlen(base), &aware);
	assert_false(hasher_digest_equal(&plain, &aware));
}

static void test_c_source_significant(void **state)
{
	const char *base = "int main(void) {\n\treturn x + 1;\n}\n";
	assert_false(c_same(base, "int main(void) {\n\treturn x + 2;\n}\n"));      /* token */
	assert_false(c_same(base, "int main(void) {\n\n\treturn x + 1;\n}\n"));   /* newline added */
	assert_false(c_same(base, "int main(void) {\treturn x + 1;\n}\n"));         /* newline removed */
	assert_false(c_same("intx;\n", "int x;\n"));
	assert_false(c_same("a + +b;\n", "a ++b;\n"));
	assert_false(c_same("s = \"a  b\";\n", "s = \"a b\";\n"));                /* inside string */
	assert_false(c_same("s = \"// x\";\n", "s = \"// y\";\n"));               /* // inside string */
	assert_false(c_same("s = \"/* x */\";\n", "s = \"\";\n"));
	assert_false(c_same("c = ' ';\n", "c = '  ';\n"));
	assert_false(c_same("int a = 1 \\\n + 2;\n", "int a = 1 \n + 2;\n"));      /* continuation */
	assert_false(c_same("#define X 1  // a\n", "#define X 1  // b\n"));        /* pp line kept */
	assert_false(c_same("r = R\"d(  )\" )d\";\n", "r = R\"d( )\" )d\";\n")); /* raw string */
	assert_true(c_same("r = R\"d( x )d\";  // c\n", "r = R\"d( x )d\";\n"));
	assert_true(c_same("n = 1'000; // c\n", "n = 1'000;\n"));                  /* digit separator */
	assert_false(c_same("// a \\\nint x;\n", "// a\nint x;\n"));           /* continued comment */
}

static void test_ar_digest(void **state)
{
	char hdr1[61], hdr2[61];
	/* same member, different mtime/uid/gid/mode */
	snprintf(hdr1, sizeof(hdr1), "%-16s%-12s%-6s%-6s%-8s%-10s`\n", "a.o/", "0", "0", "0", "644", "3");
	snprintf(hdr2, sizeof(hdr2), "%-16s%-12s%-6s%-6s%-8s%-10s`\n", "a.o/", "1700000000", "1000", "1000", "100755", "3");
	char ar1[200], ar2[200], ar3[200];
	size_t n1 = (size_t)snprintf(ar1, sizeof(ar1), "!<arch>\n%sabc\n", hdr1);
	size_t n2 = (size_t)snprintf(ar2, sizeof(ar2), "!<arch>\n%sabc\n", hdr2);
	size_t n3 = (size_t)snprintf(ar3, sizeof(ar3), "!<arch>\n%sabd\n", hdr1);
	hasher_digest d1, d2, d3;
	assert_int_equal(hasher_ar_digest(ar1, n1, &d1), 0);
	assert_int_equal(hasher_ar_digest(ar2, n2, &d2), 0);
	assert_int_equal(hasher_ar_digest(ar3, n3, &d3), 0);
	assert_true(hasher_digest_equal(&d1, &d2));
	assert_false(hasher_digest_equal(&d1, &d3));
	assert_int_equal(hasher_ar_digest("notanarchive", 12, &d1), -EINVAL);
	assert_int_equal(hasher_ar_digest(ar1, n1 - 3, &d1), -EINVAL); /* truncated */
	assert_int_equal(hasher_ar_digest("!<arch>\n", 8, &d1), 0);     /* empty archive */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_streaming_random_chunks),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_digest_fd),
		cmocka_unit_test(test_c_source_insignificant),
		cmocka_unit_test(test_c_source_significant),
		cmocka_unit_test(test_ar_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
