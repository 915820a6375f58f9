/* sample: exercises every module of libsample; `--selftest` prints a
 * deterministic report that `make check` compares with expected.out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample/base64.h"
#include "sample/crc32.h"
#include "sample/hash.h"
#include "sample/json.h"
#include "sample/list.h"
#include "sample/map.h"
#include "sample/parse.h"
#include "sample/rng.h"
#include "sample/sort.h"
#include "sample/strbuf.h"
#include "sample/utf8.h"
#include "sample/vec.h"
#include "version.h"   /* generated from VERSION */

struct item {
	long key;
	int seq;
	struct list_head link;
};

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	return (x->key > y->key) - (x->key < y->key);
}

static int selftest(void)
{
	int failures = 0;
	struct strbuf sb;
	sb_init(&sb);

	printf("version %s (%d.%d.%d)\n", SAMPLE_VERSION, SAMPLE_VERSION_MAJOR,
	       SAMPLE_VERSION_MINOR, SAMPLE_VERSION_PATCH);

	/* crc32 and fnv */
	const char *quick = "The quick brown fox jumps over the lazy dog";
	uint32_t c = crc32(quick, strlen(quick));
	printf("crc32 %08x\n", (unsigned)c);
	failures += c != 0x414fa339u;
	printf("fnv1a64 %016llx\n", (unsigned long long)fnv1a64_str(quick));

	/* base64 round trip */
	for (size_t n = 0; n <= 5; n++) {
		sb_reset(&sb);
		base64_encode(&sb, "hello", n);
		struct strbuf dec;
		sb_init(&dec);
		int rc = base64_decode(&dec, sb_str(&sb));
		int good = rc == 0 && dec.len == n && memcmp(dec.buf ? dec.buf : "", "hello", n) == 0;
		printf("base64 %zu %s %s\n", n, sb_str(&sb), good ? "ok" : "BAD");
		failures += !good;
		sb_free(&dec);
	}

	/* utf8 */
	char enc[4];
	size_t k = utf8_encode(0x1f600, enc);
	sb_reset(&sb);
	sb_append(&sb, enc, k);
	sb_puts(&sb, "\xc3\xa9t\xc3\xa9");
	printf("utf8 bytes=%zu chars=%ld invalid=%ld\n", sb.len, utf8_length(sb_str(&sb)),
	       utf8_length("\xc3("));

	/* parse + vec */
	struct ivec iv;
	iv_init(&iv);
	int np = parse_int_list("3, 1,4 ,1,5,9,2,6, 0x10, -7", &iv);
	long sum = iv_sum(&iv);
	struct ivec junk;
	iv_init(&junk);
	int bad = parse_int_list("1,2x", &junk);
	iv_free(&junk);
	printf("parse n=%d sum=%ld bad=%d\n", np, sum, bad);
	iv_reverse(&iv);
	long first = iv.v[0], last = iv.v[iv.n - 1];
	long popped = iv_pop(&iv);
	printf("vec first=%ld last=%ld pop=%ld n=%zu\n", first, last, popped, iv.n);
	iv_free(&iv);

	/* rng + stable sort + list */
	struct rng r;
	rng_seed(&r, 42);
	enum { N = 1000 };
	struct item *items = calloc(N, sizeof(*items));
	if (!items)
		return 1;
	for (int i = 0; i < N; i++) {
		items[i].key = (long)rng_below(&r, 50);
		items[i].seq = i;
	}
	merge_sort(items, N, sizeof(*items), cmp_item);
	int sorted = 1;
	for (int i = 1; i < N; i++) {
		if (items[i - 1].key > items[i].key ||
		    (items[i - 1].key == items[i].key && items[i - 1].seq > items[i].seq))
			sorted = 0;
	}
	printf("sort stable=%s min=%ld max=%ld\n", sorted ? "yes" : "no", items[0].key,
	       items[N - 1].key);
	failures += !sorted;
	struct list_head head;
	list_init(&head);
	for (int i = 0; i < N; i++)
		list_add_tail(&head, &items[i].link);
	for (int i = 0; i < N; i += 3)
		list_del(&items[i].link);
	long lsum = 0;
	for (struct list_head *p = head.next; p != &head; p = p->next)
		lsum += list_entry(p, struct item, link)->key;
	printf("list count=%zu keysum=%ld\n", list_count(&head), lsum);
	free(items);

	/* map */
	struct map m;
	map_init(&m);
	for (int i = 0; i < 500; i++) {
		char key[32];
		snprintf(key, sizeof(key), "key-%d", i % 300);
		long old = 0;
		map_get(&m, key, &old);
		map_put(&m, key, old + i);
	}
	long v = -1;
	int found = map_get(&m, "key-7", &v);
	printf("map count=%zu key-7=%ld found=%d missing=%d\n", m.count, v, found,
	       map_get(&m, "nope", &v));
	map_free(&m);

	/* json */
	sb_reset(&sb);
	sb_putc(&sb, '{');
	json_string(&sb, "name");
	sb_putc(&sb, ':');
	json_string(&sb, "tab\there \"quoted\"\n\x01");
	json_kv_long(&sb, "failures", failures, 0);
	sb_putc(&sb, '}');
	printf("json %s\n", sb_str(&sb));
	sb_free(&sb);

	printf("result %s\n", failures ? "FAILED" : "PASSED");
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--selftest") == 0)
		return selftest();
	if (argc > 1 && strcmp(argv[1], "--crc32") == 0) {
		struct strbuf sb;
		sb_init(&sb);
		char buf[65536];
		size_t n;
		uint32_t crc = 0;
		while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
			crc = crc32_update(crc, buf, n);
		printf("%08x\n", (unsigned)crc);
		sb_free(&sb);
		return 0;
	}
	printf("sample %s: use --selftest or --crc32 < file\n", SAMPLE_VERSION);
	return 0;
}
