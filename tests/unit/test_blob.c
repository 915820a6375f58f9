/* Unit tests for cache/blob.c: the header grammar, put/open/get in every
 * mode, corruption caught before anything is served, concurrent writers,
 * injected and real write failures, the expected-digest fast path, the
 * chunk observer and a full index.  The real full disk (a 1 MiB tmpfs)
 * needs root: unprivileged, the program exits 77 (meson's skip) once the
 * rest passed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "blob.h"

#define MIB (1u << 20)

static char tmpdir[64], storedir[96];
static cache_store *store;
static cache_index *ix;

static int setup(void **state)
{
	const char *msg;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/casfs-blob-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(storedir, sizeof(storedir), "%s/store", tmpdir);
	if (cache_store_open(storedir, &store, &msg) < 0)
		return -1;
	return cache_index_open(store, &ix) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[128];
	cache_fault_set(CACHE_FAULT_NONE, 0);
	cache_index_close(ix);
	ix = NULL;
	cache_store_close(store);
	store = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Closes the current store and opens (creating) tmpdir/name instead. */
static void switch_store(const char *name)
{
	const char *msg;
	char path[160];
	cache_index_close(ix);
	ix = NULL;
	cache_store_close(store);
	store = NULL;
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_int_equal(cache_store_open(path, &store, &msg), 0);
	assert_int_equal(cache_index_open(store, &ix), 0);
}

/* ---- contents ------------------------------------------------------------- */

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x7654321;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = rng(&s);
		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

enum content { C_EMPTY, C_ONE, C_RANDOM, C_TEXT, C_STRADDLE, C_NCONTENT };
static const char *const content_name[] = { "empty", "1 byte", "random 3 MiB", "text 5 MiB",
					    "1 MiB + 17" };

/* Deterministic contents: seed makes distinct ones of the same kind. */
static uint8_t *make(enum content c, uint64_t seed, size_t *len)
{
	static const size_t sizes[] = { 0, 1, 3 * MIB, 5 * MIB, MIB + 17 };
	size_t n = sizes[c];
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
	uint8_t *p = malloc(n + 64);
	assert_non_null(p);
	switch (c) {
	case C_EMPTY:
		break;
	case C_ONE:
		p[0] = (uint8_t)('a' + seed % 26);
		break;
	case C_RANDOM:
		fill_random(p, n, seed);
		break;
	case C_TEXT:
		for (size_t i = 0, line = 0; i < n; line++)
			i += (size_t)snprintf((char *)p + i, n + 64 - i,
					      "%llu line %zu: casfs keeps build outputs by content\n",
					      (unsigned long long)seed, line);
		break;
	case C_STRADDLE: /* four random bits a byte: compresses, not much */
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)(0x40 | (rng(&s) & 0x0f));
		break;
	default:
		fail();
	}
	*len = n;
	return p;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Writes tmpdir/name and returns it open read-only. */
static int src_fd(const char *name, const void *buf, size_t len)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	write_all(fd, buf, len);
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static int put_buf(const void *buf, size_t len, const cache_put_opts *o, cache_put_result *r)
{
	int fd = src_fd("src", buf, len);
	int e = cache_put_fd(ix, fd, o, r);
	close(fd);
	return e;
}

/* Asserts that fd holds exactly buf at off, and nothing after it. */
static void assert_bytes_at(int fd, uint64_t off, const uint8_t *buf, size_t len)
{
	uint8_t *got = malloc(len + 1);
	size_t have = 0;
	assert_non_null(got);
	while (have < len) {
		ssize_t n = pread(fd, got + have, len - have, (off_t)(off + have));
		assert_true(n > 0);
		have += (size_t)n;
	}
	assert_memory_equal(got, buf, len);
	assert_int_equal(pread(fd, got, 1, (off_t)(off + len)), 0);
	free(got);
}

static void assert_file_is(int dirfd, const char *name, const uint8_t *buf, size_t len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_bytes_at(fd, 0, buf, len);
	close(fd);
}

static void blob_path(const hasher_digest *d, char *out, size_t n)
{
	char fan[3], name[HASHER_HEX_LEN + 1];
	cache_blob_names(d, fan, name);
	snprintf(out, n, "%s/objects/%s/%s", cache_store_path(store), fan, name);
}

/* Entries of path (not . and ..) whose names start with prefix ("": all). */
static int count_in(const char *path, const char *prefix)
{
	DIR *d = opendir(path);
	int n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -1;
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    !strncmp(e->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

struct scan {
	int blobs, temps, other, fanouts;
};

/* What objects/ holds: blob files, temp files, anything else. */
static struct scan scan_objects(void)
{
	struct scan sc = { 0 };
	char path[256];
	snprintf(path, sizeof(path), "%s/objects", cache_store_path(store));
	DIR *d = opendir(path);
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!strncmp(e->d_name, ".tmp-", 5)) {
			sc.temps++;
			continue;
		}
		if (e->d_type != DT_DIR || strlen(e->d_name) != 2) {
			sc.other++;
			continue;
		}
		sc.fanouts++;
		char sub[300];
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		DIR *f = opendir(sub);
		assert_non_null(f);
		for (struct dirent *b; (b = readdir(f));) {
			if (!strcmp(b->d_name, ".") || !strcmp(b->d_name, ".."))
				continue;
			if (!strncmp(b->d_name, ".tmp-", 5))
				sc.temps++;
			else if (strlen(b->d_name) == HASHER_HEX_LEN && !strncmp(b->d_name, e->d_name, 2))
				sc.blobs++;
			else
				sc.other++;
		}
		closedir(f);
	}
	closedir(d);
	return sc;
}

static cache_totals totals(void)
{
	cache_totals t;
	assert_int_equal(cache_index_totals(ix, &t), 0);
	return t;
}

/* ---- header grammar --------------------------------------------------------- */

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The check field after an edit: so that only the edited field is wrong. */
static void rechecksum(uint8_t *buf)
{
	hasher_digest d;
	hasher_digest_buffer(buf, 56, &d);
	memcpy(buf + 56, d.bytes, 8);
}

static cache_blob_header sample_header(void)
{
	cache_blob_header h = { .version = CACHE_BLOB_VERSION, .compression = CACHE_COMP_ZSTD,
				.payload_off = CACHE_BLOB_HDR, .size = 0x0102030405060708ull,
				.stored = 0x1122334455ull };
	hasher_digest_buffer("sample", 6, &h.digest);
	return h;
}

static void test_header_roundtrip(void **state)
{
	static const uint8_t magic[8] = { 0x89, 'C', 'A', 'S', 'F', 'S', 'b', '\n' };
	uint8_t buf[CACHE_BLOB_HDR];
	cache_blob_header h = sample_header(), g;

	cache_blob_header_encode(&h, buf);
	/* the layout is the grammar's */
	assert_memory_equal(buf, magic, 8);
	assert_int_equal(buf[8], 1);
	assert_int_equal(buf[9], CACHE_COMP_ZSTD);
	assert_int_equal(buf[10] | buf[11], 0);
	assert_int_equal(buf[12] | buf[13] << 8 | buf[14] << 16 | (uint32_t)buf[15] << 24, 64);
	assert_int_equal(le64(buf + 16), h.size);
	assert_int_equal(le64(buf + 24), h.stored);
	assert_memory_equal(buf + 32, h.digest.bytes, 16);
	for (int i = 48; i < 56; i++)
		assert_int_equal(buf[i], 0);
	uint8_t copy[CACHE_BLOB_HDR];
	memcpy(copy, buf, sizeof(buf));
	rechecksum(copy);
	assert_memory_equal(copy, buf, sizeof(buf));

	memset(&g, 0xaa, sizeof(g));
	assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), 0);
	assert_int_equal(g.version, h.version);
	assert_int_equal(g.compression, h.compression);
	assert_int_equal(g.payload_off, h.payload_off);
	assert_int_equal(g.size, h.size);
	assert_int_equal(g.stored, h.stored);
	assert_true(hasher_digest_equal(&g.digest, &h.digest));

	/* a raw payload at the aligned offset; longer buffers are fine */
	h.compression = CACHE_COMP_NONE;
	h.payload_off = CACHE_BLOB_ALIGNED_OFF;
	h.size = h.stored = 1ull << 40;
	uint8_t big[CACHE_BLOB_HDR + 10] = { 0 };
	cache_blob_header_encode(&h, big);
	assert_int_equal(cache_blob_header_decode(big, sizeof(big), &g), 0);
	assert_int_equal(g.payload_off, CACHE_BLOB_ALIGNED_OFF);
	assert_int_equal(g.size, 1ull << 40);
	assert_int_equal(g.stored, 1ull << 40);
	assert_int_equal(g.compression, CACHE_COMP_NONE);
}

static void test_header_refusals(void **state)
{
	uint8_t good[CACHE_BLOB_HDR], buf[CACHE_BLOB_HDR];
	cache_blob_header h = sample_header(), g;
	cache_blob_header_encode(&h, good);

	/* every truncation */
	for (size_t len = 0; len < CACHE_BLOB_HDR; len++)
		assert_int_equal(cache_blob_header_decode(good, len, &g), -EBADMSG);

	/* wrong magic, even with a matching checksum */
	memcpy(buf, good, sizeof(buf));
	buf[1] = 'c';
	assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), -EBADMSG);
	rechecksum(buf);
	assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), -EBADMSG);

	/* version 0 is impossible, a newer one is not ours to guess at */
	static const struct {
		uint8_t version;
		int want;
	} versions[] = { { 0, -EBADMSG }, { 2, -EPROTO }, { 255, -EPROTO } };
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		memcpy(buf, good, sizeof(buf));
		buf[8] = versions[i].version;
		rechecksum(buf);
		assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), versions[i].want);
	}

	/* any single flipped bit: the checksum (or the magic) catches it */
	for (int bit = 0; bit < CACHE_BLOB_HDR * 8; bit++) {
		memcpy(buf, good, sizeof(buf));
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), -EBADMSG);
	}

	/* fields that cannot be, with a valid checksum */
	static const uint8_t comps[] = { 2, 3, 0x80, 0xff };
	for (size_t i = 0; i < sizeof(comps); i++) {
		memcpy(buf, good, sizeof(buf));
		buf[9] = comps[i];
		rechecksum(buf);
		assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), -EBADMSG);
	}
	static const uint32_t offs[] = { 0, 1, 63, 65, 128, 4095, 4097, 8192, 0xffffffffu };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		cache_blob_header b = h;
		b.payload_off = offs[i];
		cache_blob_header_encode(&b, buf);
		assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), -EBADMSG);
	}
	cache_blob_header raw = h;
	raw.compression = CACHE_COMP_NONE;
	raw.size = 100;
	raw.stored = 99;
	cache_blob_header_encode(&raw, buf);
	assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), -EBADMSG);
	raw.stored = 101;
	cache_blob_header_encode(&raw, buf);
	assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), -EBADMSG);
	raw.stored = 100;
	cache_blob_header_encode(&raw, buf);
	assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), 0);

	/* reserved bytes are zero */
	for (int at = 10; at < 56; at++) {
		if (at == 12)
			at = 48; /* fields in between */
		memcpy(buf, good, sizeof(buf));
		buf[at] = 1;
		rechecksum(buf);
		assert_int_equal(cache_blob_header_decode(buf, sizeof(buf), &g), -EBADMSG);
	}
}

/* ---- put / open / get --------------------------------------------------------- */

/* Puts buf (new to the store) and checks everything a reader can see. */
static void roundtrip(const uint8_t *buf, size_t len, const cache_put_opts *o, cache_put_result *pr)
{
	hasher_digest want;
	char path[256];
	struct stat st;
	cache_blob_header h;
	cache_blob_rec rec;
	hasher_digest_buffer(buf, len, &want);

	int fd = src_fd("src", buf, len);
	lseek(fd, (off_t)(len / 2), SEEK_SET); /* put reads from 0 whatever the offset */
	assert_int_equal(cache_put_fd(ix, fd, o, pr), 0);
	close(fd);
	assert_true(hasher_digest_equal(&pr->digest, &want));
	assert_int_equal(pr->size, len);
	assert_false(pr->existed);

	/* the blob file is what the result, the header and the record say */
	blob_path(&want, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(st.st_mode & 0777, 0444);
	assert_int_equal((uint64_t)st.st_size, pr->stored);
	assert_int_equal(cache_blob_stat(ix, &want, &h), 0);
	assert_int_equal(h.version, CACHE_BLOB_VERSION);
	assert_int_equal(h.compression, pr->compression);
	assert_int_equal(h.size, len);
	assert_int_equal(h.payload_off + h.stored, pr->stored);
	assert_true(hasher_digest_equal(&h.digest, &want));
	if (h.compression == CACHE_COMP_NONE) {
		assert_int_equal(h.stored, len);
		assert_int_equal(h.payload_off, pr->reflinked ? CACHE_BLOB_ALIGNED_OFF : CACHE_BLOB_HDR);
		int bfd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(bfd >= 0);
		assert_bytes_at(bfd, h.payload_off, buf, len); /* the payload is the content */
		close(bfd);
	} else {
		assert_int_equal(h.compression, CACHE_COMP_ZSTD);
		assert_int_equal(h.payload_off, CACHE_BLOB_HDR);
		assert_false(pr->reflinked);
	}
	assert_int_equal(cache_index_blob_get(ix, &want, &rec), 0);
	assert_int_equal(rec.size, len);
	assert_int_equal(rec.stored, pr->stored);
	assert_int_equal(rec.compression, pr->compression);
	assert_int_equal(rec.refs, 1);

	/* open: exactly the bytes */
	cache_reader r;
	assert_int_equal(cache_blob_open(ix, &want, &r), 0);
	assert_true(r.fd >= 0);
	assert_int_equal(r.size, len);
	assert_int_equal(r.decompressed, h.compression == CACHE_COMP_ZSTD);
	assert_int_equal(r.off, r.decompressed ? 0 : h.payload_off);
	assert_bytes_at(r.fd, r.off, buf, len);
	cache_reader_close(&r);
	assert_int_equal(r.fd, -1);

	/* get: an identical file with the asked mode */
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool refl = true;
	assert_true(dfd >= 0);
	assert_int_equal(cache_get_at(ix, &want, dfd, "restored", 0750, &refl), 0);
	assert_int_equal(fstatat(dfd, "restored", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0750 & ~022);
	assert_int_equal((uint64_t)st.st_size, len);
	assert_file_is(dfd, "restored", buf, len);
	if (refl)
		assert_int_equal(h.payload_off, CACHE_BLOB_ALIGNED_OFF);
	/* again over the existing name */
	assert_int_equal(cache_get_at(ix, &want, dfd, "restored", 0644, NULL), 0);
	assert_file_is(dfd, "restored", buf, len);
	assert_int_equal(unlinkat(dfd, "restored", 0), 0);
	assert_int_equal(count_in(tmpdir, ".casfs-get-"), 0);
	/* into a file made ahead: the bytes, from offset 0 */
	int out = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	assert_true(out >= 0);
	assert_int_equal(cache_get_fd(ix, &want, out, NULL), 0);
	assert_int_equal(fstat(out, &st), 0);
	assert_int_equal((uint64_t)st.st_size, len);
	assert_bytes_at(out, 0, buf, len);
	close(out);
	close(dfd);
	assert_int_equal(scan_objects().temps, 0);
}

/* Every content into a fresh store with opts; returns the stored sizes. */
static void roundtrip_all(const char *storename, const cache_put_opts *o, uint64_t stored[C_NCONTENT],
			  uint8_t comp[C_NCONTENT], bool refl[C_NCONTENT])
{
	uint64_t logical = 0, sum = 0;
	switch_store(storename);
	for (enum content c = 0; c < C_NCONTENT; c++) {
		size_t len;
		cache_put_result pr;
		uint8_t *buf = make(c, 1, &len);
		print_message("  %s: %s\n", storename, content_name[c]);
		roundtrip(buf, len, o, &pr);
		stored[c] = pr.stored;
		comp[c] = pr.compression;
		refl[c] = pr.reflinked;
		logical += len;
		sum += pr.stored;
		free(buf);
	}
	cache_totals t = totals();
	assert_int_equal(t.blobs, C_NCONTENT);
	assert_int_equal(t.logical, logical);
	assert_int_equal(t.stored, sum);
	assert_int_equal(t.dedup_hits, 0);
	struct scan sc = scan_objects();
	assert_int_equal(sc.blobs, C_NCONTENT);
	assert_int_equal(sc.temps + sc.other, 0);
}

static void test_roundtrip_raw(void **state)
{
	cache_put_opts o = { .mode = CACHE_PUT_RAW };
	uint64_t stored[C_NCONTENT];
	uint8_t comp[C_NCONTENT];
	bool refl[C_NCONTENT];
	roundtrip_all("raw", &o, stored, comp, refl);
	for (enum content c = 0; c < C_NCONTENT; c++) {
		size_t len;
		free(make(c, 1, &len));
		assert_int_equal(comp[c], CACHE_COMP_NONE);
		assert_int_equal(stored[c], len + (refl[c] ? CACHE_BLOB_ALIGNED_OFF : CACHE_BLOB_HDR));
	}
	assert_false(refl[C_EMPTY]); /* nothing to share */
}

static void test_roundtrip_zstd(void **state)
{
	static const int levels[] = { -5, 0, 1, 3, 19 };
	uint64_t text[5];
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		cache_put_opts o = { .mode = CACHE_PUT_ZSTD, .zstd_level = levels[i] };
		uint64_t stored[C_NCONTENT];
		uint8_t comp[C_NCONTENT];
		bool refl[C_NCONTENT];
		char name[32];
		snprintf(name, sizeof(name), "zstd%d", levels[i]);
		roundtrip_all(name, &o, stored, comp, refl);
		for (enum content c = 0; c < C_NCONTENT; c++) {
			assert_int_equal(comp[c], CACHE_COMP_ZSTD);
			assert_false(refl[c]);
		}
		text[i] = stored[C_TEXT];
		assert_true(stored[C_TEXT] < 5 * MIB / 10);
		assert_true(stored[C_RANDOM] > 3 * MIB); /* zstd never makes random data smaller */
	}
	/* the level is applied: 19 beats -5 on text */
	assert_true(text[4] < text[0]);
}

static void test_roundtrip_auto(void **state)
{
	uint64_t stored[C_NCONTENT];
	uint8_t comp[C_NCONTENT];
	bool refl[C_NCONTENT];
	roundtrip_all("auto", NULL, stored, comp, refl); /* NULL opts: AUTO */
	for (enum content c = 0; c < C_NCONTENT; c++) {
		size_t len;
		free(make(c, 1, &len));
		if (refl[c]) { /* a filesystem that shares blocks: always the best choice */
			assert_int_equal(comp[c], CACHE_COMP_NONE);
			continue;
		}
		switch (c) {
		case C_EMPTY: case C_ONE: case C_RANDOM: /* compression would not save anything */
			assert_int_equal(comp[c], CACHE_COMP_NONE);
			assert_int_equal(stored[c], len + CACHE_BLOB_HDR);
			break;
		default:
			assert_int_equal(comp[c], CACHE_COMP_ZSTD);
			assert_true(stored[c] < len);
		}
	}
	assert_false(refl[C_EMPTY]);
}

static void test_put_again_and_stat(void **state)
{
	size_t len;
	uint8_t *buf = make(C_TEXT, 7, &len);
	cache_put_result a, b;
	cache_blob_header h;
	cache_blob_rec rec;
	hasher_digest absent;
	hasher_digest_buffer("absent", 6, &absent);
	assert_int_equal(cache_blob_stat(ix, &absent, &h), -ENOENT);

	assert_int_equal(put_buf(buf, len, NULL, &a), 0);
	assert_false(a.existed);
	/* the same content in another mode is the same blob */
	cache_put_opts raw = { .mode = CACHE_PUT_RAW };
	assert_int_equal(put_buf(buf, len, &raw, &b), 0);
	assert_true(b.existed);
	assert_true(hasher_digest_equal(&a.digest, &b.digest));
	assert_int_equal(b.compression, a.compression);
	assert_int_equal(b.stored, a.stored);
	assert_int_equal(b.size, len);
	assert_int_equal(cache_index_blob_get(ix, &a.digest, &rec), 0);
	assert_int_equal(rec.refs, 2);
	cache_totals t = totals();
	assert_int_equal(t.blobs, 1);
	assert_int_equal(t.logical, len);
	assert_int_equal(t.stored, a.stored);
	assert_int_equal(t.dedup_hits, 1);
	assert_int_equal(t.dedup_bytes, len);
	assert_int_equal(scan_objects().blobs, 1);
	assert_int_equal(scan_objects().temps, 0);
	free(buf);
}

/* ---- corruption ------------------------------------------------------------------ */

enum damage { D_FLIP_PAYLOAD, D_TRUNCATE, D_TRUNCATE_HEADER, D_APPEND, D_DIGEST, D_NDAMAGE };
static const char *const damage_name[] = { "flipped payload byte", "truncated payload",
					   "truncated header", "appended byte", "other digest" };

static void damage(const char *path, enum damage how)
{
	uint8_t hdr[CACHE_BLOB_HDR], b;
	cache_blob_header h;
	struct stat st;
	assert_int_equal(chmod(path, 0644), 0);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), sizeof(hdr));
	assert_int_equal(cache_blob_header_decode(hdr, sizeof(hdr), &h), 0);
	assert_true(h.stored > 8);
	switch (how) {
	case D_FLIP_PAYLOAD: {
		off_t at = (off_t)(h.payload_off + h.stored / 2);
		assert_int_equal(pread(fd, &b, 1, at), 1);
		b ^= 0x10;
		assert_int_equal(pwrite(fd, &b, 1, at), 1);
		break;
	}
	case D_TRUNCATE:
		assert_int_equal(ftruncate(fd, st.st_size - 1), 0);
		break;
	case D_TRUNCATE_HEADER:
		assert_int_equal(ftruncate(fd, CACHE_BLOB_HDR / 2), 0);
		break;
	case D_APPEND:
		b = 0;
		assert_int_equal(pwrite(fd, &b, 1, st.st_size), 1);
		break;
	case D_DIGEST: /* a well-formed header naming other content */
		hasher_digest_buffer("other", 5, &h.digest);
		cache_blob_header_encode(&h, hdr);
		assert_int_equal(pwrite(fd, hdr, sizeof(hdr), 0), sizeof(hdr));
		break;
	default:
		fail();
	}
	close(fd);
	assert_int_equal(chmod(path, 0444), 0);
}

static void test_corruption(void **state)
{
	char path[256], qdir[160];
	size_t len;
	uint8_t *buf = make(C_STRADDLE, 3, &len);
	uint64_t corrupt = 0;
	int dest = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dest >= 0);
	assert_int_equal(mkdirat(dest, "dest", 0755), 0);
	int ddir = openat(dest, "dest", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dest);
	assert_true(ddir >= 0);
	snprintf(qdir, sizeof(qdir), "%s/quarantine", storedir);
	char ddpath[160];
	snprintf(ddpath, sizeof(ddpath), "%s/dest", tmpdir);

	for (int mode = 0; mode < 2; mode++) {
		cache_put_opts o = { .mode = mode ? CACHE_PUT_ZSTD : CACHE_PUT_RAW };
		for (enum damage how = 0; how < D_NDAMAGE; how++) {
			for (int get = 0; get < 3; get++) { /* open, get_at, get_fd */
				cache_put_result pr;
				cache_reader r = { .fd = -1 };
				char hex[HASHER_HEX_LEN + 1];
				print_message("  %s, %s, %s\n", mode ? "zstd" : "raw", damage_name[how],
					      get == 2 ? "get_fd" : get ? "get" : "open");
				/* the same content again each time: it was quarantined */
				assert_int_equal(put_buf(buf, len, &o, &pr), 0);
				assert_false(pr.existed);
				assert_int_equal(pr.compression, mode ? CACHE_COMP_ZSTD : CACHE_COMP_NONE);
				blob_path(&pr.digest, path, sizeof(path));
				damage(path, how);
				int out = get == 2 ? openat(ddir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
				if (get == 2)
					assert_int_equal(cache_get_fd(ix, &pr.digest, out, NULL), -EBADMSG);
				else if (get)
					assert_int_equal(cache_get_at(ix, &pr.digest, ddir, "out", 0644, NULL),
							 -EBADMSG);
				else
					assert_int_equal(cache_blob_open(ix, &pr.digest, &r), -EBADMSG);
				corrupt++;
				/* moved aside, forgotten, counted, and nothing written */
				struct stat st;
				assert_int_equal(stat(path, &st), -1);
				assert_int_equal(errno, ENOENT);
				hasher_digest_to_hex(&pr.digest, hex);
				assert_int_equal(count_in(qdir, hex), corrupt);
				cache_blob_rec rec;
				assert_int_equal(cache_index_blob_get(ix, &pr.digest, &rec), -ENOENT);
				cache_totals t = totals();
				assert_int_equal(t.corrupt, corrupt);
				assert_int_equal(t.blobs, 0);
				assert_int_equal(t.stored, 0);
				assert_int_equal(count_in(ddpath, ""), 0);
				/* and gone for good */
				assert_int_equal(cache_blob_open(ix, &pr.digest, &r), -ENOENT);
				assert_int_equal(cache_get_at(ix, &pr.digest, ddir, "out", 0644, NULL), -ENOENT);
				if (out >= 0) {
					assert_int_equal(cache_get_fd(ix, &pr.digest, out, NULL), -ENOENT);
					close(out);
				}
				assert_int_equal(count_in(ddpath, ""), 0);
			}
		}
	}
	/* stored again, it is served again */
	cache_put_result pr;
	cache_reader r;
	assert_int_equal(put_buf(buf, len, NULL, &pr), 0);
	assert_false(pr.existed);
	assert_int_equal(cache_blob_open(ix, &pr.digest, &r), 0);
	assert_bytes_at(r.fd, r.off, buf, len);
	cache_reader_close(&r);
	assert_int_equal(cache_get_at(ix, &pr.digest, ddir, "out", 0644, NULL), 0);
	assert_file_is(ddir, "out", buf, len);
	assert_int_equal(totals().blobs, 1);
	close(ddir);
	free(buf);
}

/* Readers finding one corrupt blob at once: it is moved once and counted once. */
static pthread_barrier_t corrupt_line;
static hasher_digest corrupt_digest;
static int corrupt_rc[8];

static void *open_corrupt(void *arg)
{
	int i = (int)(intptr_t)arg;
	cache_reader r;
	pthread_barrier_wait(&corrupt_line);
	corrupt_rc[i] = cache_blob_open(ix, &corrupt_digest, &r);
	if (corrupt_rc[i] == 0)
		cache_reader_close(&r);
	return NULL;
}

static void test_corruption_concurrent(void **state)
{
	char path[256], qdir[160], hex[HASHER_HEX_LEN + 1];
	size_t len;
	uint8_t *buf = make(C_RANDOM, 4, &len);
	pthread_t th[8];
	snprintf(qdir, sizeof(qdir), "%s/quarantine", storedir);
	for (int round = 0; round < 20; round++) {
		cache_put_result pr;
		cache_put_opts o = { .mode = CACHE_PUT_RAW };
		buf[0] = (uint8_t)round;
		assert_int_equal(put_buf(buf, len, &o, &pr), 0);
		blob_path(&pr.digest, path, sizeof(path));
		damage(path, D_FLIP_PAYLOAD);
		corrupt_digest = pr.digest;
		pthread_barrier_init(&corrupt_line, NULL, 8);
		for (intptr_t i = 0; i < 8; i++)
			assert_int_equal(pthread_create(&th[i], NULL, open_corrupt, (void *)i), 0);
		int bad = 0;
		for (int i = 0; i < 8; i++) {
			pthread_join(th[i], NULL);
			assert_true(corrupt_rc[i] == -EBADMSG || corrupt_rc[i] == -ENOENT);
			bad += corrupt_rc[i] == -EBADMSG;
		}
		pthread_barrier_destroy(&corrupt_line);
		assert_true(bad >= 1);
		hasher_digest_to_hex(&pr.digest, hex);
		assert_int_equal(count_in(qdir, hex), 1);
		assert_int_equal(totals().corrupt, (uint64_t)round + 1);
	}
	assert_int_equal(totals().blobs, 0);
	free(buf);
}

/* A blob from a newer casfs is refused but left alone: it is not corrupt. */
static void test_newer_version_refused(void **state)
{
	char path[256];
	uint8_t hdr[CACHE_BLOB_HDR];
	cache_put_result pr;
	cache_reader r;
	cache_blob_header h;
	assert_int_equal(put_buf("newer", 5, NULL, &pr), 0);
	blob_path(&pr.digest, path, sizeof(path));
	assert_int_equal(chmod(path, 0644), 0);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), sizeof(hdr));
	hdr[8] = CACHE_BLOB_VERSION + 1;
	rechecksum(hdr);
	assert_int_equal(pwrite(fd, hdr, sizeof(hdr), 0), sizeof(hdr));
	close(fd);
	assert_int_equal(cache_blob_stat(ix, &pr.digest, &h), -EPROTO);
	assert_int_equal(cache_blob_open(ix, &pr.digest, &r), -EPROTO);
	assert_int_equal(cache_get_at(ix, &pr.digest, cache_store_tmp_fd(store), "x", 0644, NULL), -EPROTO);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(totals().corrupt, 0);
	const char *why = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(cache_blob_verify_fd(fd, &pr.digest, &h, &why), -EPROTO);
	assert_non_null(why);
	close(fd);
}

/* ---- concurrent writers ----------------------------------------------------------- */

#define NTHREADS 8
#define NPROCS 4
#define NPUTTERS (NTHREADS + NPROCS)

struct putter {
	int common_rc, unique_rc;
	bool common_existed, unique_existed;
	hasher_digest common, unique;
};

static struct putter *putters; /* shared with the child processes */
static pthread_barrier_t start_line;
static cache_index *threads_ix;

/* No cmocka asserts here: threads and children only record. */
static void put_both(cache_index *x, int i)
{
	char path[160];
	cache_put_result r = { 0 };
	struct putter *p = &putters[i];
	snprintf(path, sizeof(path), "%s/common", tmpdir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	p->common_rc = fd < 0 ? -errno : cache_put_fd(x, fd, NULL, &r);
	p->common = r.digest;
	p->common_existed = r.existed;
	close(fd);
	snprintf(path, sizeof(path), "%s/unique-%d", tmpdir, i);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	p->unique_rc = fd < 0 ? -errno : cache_put_fd(x, fd, NULL, &r);
	p->unique = r.digest;
	p->unique_existed = r.existed;
	close(fd);
}

static void *put_thread(void *arg)
{
	pthread_barrier_wait(&start_line);
	put_both(threads_ix, (int)(intptr_t)arg);
	return NULL;
}

static void test_concurrent_puts(void **state)
{
	size_t clen, ulen[NPUTTERS], ulen_sum = 0;
	uint8_t *common = make(C_RANDOM, 11, &clen), *unique[NPUTTERS];
	hasher_digest cd;
	pid_t pid[NPROCS];
	pthread_t th[NTHREADS];
	int gate[2], ready[2];
	char name[32];

	hasher_digest_buffer(common, clen, &cd);
	close(src_fd("common", common, clen));
	for (int i = 0; i < NPUTTERS; i++) {
		unique[i] = make(C_STRADDLE, 100 + (uint64_t)i, &ulen[i]);
		ulen[i] = 200000 + (size_t)i * 1000; /* smaller: the common one is the race */
		ulen_sum += ulen[i];
		snprintf(name, sizeof(name), "unique-%d", i);
		close(src_fd(name, unique[i], ulen[i]));
	}
	putters = mmap(NULL, sizeof(*putters) * NPUTTERS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(putters != MAP_FAILED);
	memset(putters, 0, sizeof(*putters) * NPUTTERS);

	/* LMDB: one environment per process, opened after fork */
	cache_index_close(ix);
	ix = NULL;
	assert_int_equal(pipe(gate), 0);
	assert_int_equal(pipe(ready), 0);
	for (int i = 0; i < NPROCS; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			cache_store *s;
			cache_index *x;
			const char *msg;
			char c;
			close(gate[1]);
			if (cache_store_open(storedir, &s, &msg) < 0 || cache_index_open(s, &x) < 0)
				_exit(2);
			if (write(ready[1], "r", 1) != 1 || read(gate[0], &c, 1) != 0)
				_exit(3);
			put_both(x, NTHREADS + i);
			cache_index_close(x);
			cache_store_close(s);
			_exit(0);
		}
	}
	close(gate[0]);
	close(ready[1]);
	for (int i = 0; i < NPROCS; i++) {
		char c;
		assert_int_equal(read(ready[0], &c, 1), 1);
	}
	close(ready[0]);
	assert_int_equal(cache_index_open(store, &ix), 0);
	threads_ix = ix;
	pthread_barrier_init(&start_line, NULL, NTHREADS + 1);
	for (intptr_t i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, put_thread, (void *)i), 0);
	close(gate[1]); /* go */
	pthread_barrier_wait(&start_line);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NPROCS; i++) {
		int status;
		assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	pthread_barrier_destroy(&start_line);

	/* everyone succeeded; exactly one stored the common content */
	int stored_it = 0;
	for (int i = 0; i < NPUTTERS; i++) {
		hasher_digest ud;
		assert_int_equal(putters[i].common_rc, 0);
		assert_int_equal(putters[i].unique_rc, 0);
		assert_true(hasher_digest_equal(&putters[i].common, &cd));
		hasher_digest_buffer(unique[i], ulen[i], &ud);
		assert_true(hasher_digest_equal(&putters[i].unique, &ud));
		assert_false(putters[i].unique_existed);
		stored_it += !putters[i].common_existed;
	}
	assert_int_equal(stored_it, 1);

	/* one verified blob file per digest, no temp files */
	struct scan sc = scan_objects();
	assert_int_equal(sc.blobs, NPUTTERS + 1);
	assert_int_equal(sc.temps, 0);
	assert_int_equal(sc.other, 0);
	for (int i = 0; i <= NPUTTERS; i++) {
		const hasher_digest *d = i < NPUTTERS ? &putters[i].unique : &cd;
		char path[256];
		cache_blob_header h;
		const char *why;
		struct stat st;
		blob_path(d, path, sizeof(path));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(cache_blob_verify_fd(fd, d, &h, &why), 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_nlink, 1);
		close(fd);
	}
	cache_blob_rec rec;
	assert_int_equal(cache_index_blob_get(ix, &cd, &rec), 0);
	assert_int_equal(rec.refs, NPUTTERS);
	cache_totals t = totals();
	assert_int_equal(t.blobs, NPUTTERS + 1);
	assert_int_equal(t.logical, clen + ulen_sum);
	assert_int_equal(t.dedup_hits, NPUTTERS - 1);
	assert_int_equal(t.dedup_bytes, (uint64_t)clen * (NPUTTERS - 1));

	munmap(putters, sizeof(*putters) * NPUTTERS);
	for (int i = 0; i < NPUTTERS; i++)
		free(unique[i]);
	free(common);
}

/* Many short races of threads putting one small content: the put whose
 * link made the blob is the one that says it stored it, whichever of them
 * recorded it first. */
#define ROUNDS 200

static int round_fd[NTHREADS];
static cache_put_result round_res[NTHREADS];
static int round_rc[NTHREADS];

static void *round_thread(void *arg)
{
	int i = (int)(intptr_t)arg;
	pthread_barrier_wait(&start_line);
	round_rc[i] = cache_put_fd(ix, round_fd[i], NULL, &round_res[i]);
	return NULL;
}

static void test_concurrent_rounds(void **state)
{
	char buf[4096], path[160];
	pthread_t th[NTHREADS];
	snprintf(path, sizeof(path), "%s/round", tmpdir);
	memset(buf, 'r', sizeof(buf));
	for (int round = 0; round < ROUNDS; round++) {
		snprintf(buf, 32, "round %d", round);
		close(src_fd("round", buf, sizeof(buf)));
		pthread_barrier_init(&start_line, NULL, NTHREADS);
		for (intptr_t i = 0; i < NTHREADS; i++) {
			round_fd[i] = open(path, O_RDONLY | O_CLOEXEC);
			assert_true(round_fd[i] >= 0);
			assert_int_equal(pthread_create(&th[i], NULL, round_thread, (void *)i), 0);
		}
		int stored_it = 0;
		for (int i = 0; i < NTHREADS; i++) {
			pthread_join(th[i], NULL);
			close(round_fd[i]);
		}
		pthread_barrier_destroy(&start_line);
		for (int i = 0; i < NTHREADS; i++) {
			assert_int_equal(round_rc[i], 0);
			stored_it += !round_res[i].existed;
		}
		assert_int_equal(stored_it, 1);
	}
	cache_totals t = totals();
	assert_int_equal(t.blobs, ROUNDS);
	assert_int_equal(t.dedup_hits, ROUNDS * (NTHREADS - 1));
	struct scan sc = scan_objects();
	assert_int_equal(sc.blobs, ROUNDS);
	assert_int_equal(sc.temps, 0);
}

/* ---- injected failures ------------------------------------------------------------- */

static void assert_store_empty(void)
{
	struct scan sc = scan_objects();
	cache_totals t = totals();
	assert_int_equal(sc.blobs, 0);
	assert_int_equal(sc.temps, 0);
	assert_int_equal(sc.other, 0);
	assert_int_equal(t.blobs, 0);
	assert_int_equal(t.stored, 0);
}

static void test_fault_put(void **state)
{
	size_t len;
	uint8_t *buf = make(C_STRADDLE, 5, &len);
	hasher_digest d;
	cache_put_result pr;
	cache_blob_rec rec;
	char path[256], fan[3], name[HASHER_HEX_LEN + 1], fanpath[200];
	struct stat st;
	hasher_digest_buffer(buf, len, &d);
	blob_path(&d, path, sizeof(path));
	cache_blob_names(&d, fan, name);
	snprintf(fanpath, sizeof(fanpath), "%s/objects/%s", storedir, fan);

	/* a full disk half-way through, in every mode */
	for (int m = CACHE_PUT_AUTO; m <= CACHE_PUT_ZSTD; m++) {
		cache_put_opts o = { .mode = (cache_put_mode)m };
		cache_fault_set(CACHE_FAULT_WRITE, ENOSPC);
		assert_int_equal(put_buf(buf, len, &o, &pr), -ENOSPC);
		assert_int_equal(count_in(fanpath, ""), 0);
		assert_int_equal(cache_index_blob_get(ix, &d, &rec), -ENOENT);
		assert_store_empty();
	}

	/* linking the finished blob fails */
	cache_fault_set(CACHE_FAULT_PUBLISH, EIO);
	assert_int_equal(put_buf(buf, len, NULL, &pr), -EIO);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(cache_index_blob_get(ix, &d, &rec), -ENOENT);
	assert_store_empty();

	/* the faults fired once: the next put works */
	assert_int_equal(put_buf(buf, len, NULL, &pr), 0);
	assert_false(pr.existed);
	assert_int_equal(scan_objects().blobs, 1);

	/* no O_TMPFILE: a named temp file, gone afterwards */
	uint8_t *other = make(C_TEXT, 6, &len);
	cache_fault_set(CACHE_FAULT_TMPFILE, EOPNOTSUPP);
	assert_int_equal(put_buf(other, len, NULL, &pr), 0);
	assert_false(pr.existed);
	struct scan sc = scan_objects();
	assert_int_equal(sc.blobs, 2);
	assert_int_equal(sc.temps, 0);
	assert_int_equal(sc.other, 0);
	blob_path(&pr.digest, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	cache_reader r;
	/* the decompressing reader falls back the same way */
	assert_int_equal(pr.compression, CACHE_COMP_ZSTD);
	cache_fault_set(CACHE_FAULT_TMPFILE, EOPNOTSUPP);
	assert_int_equal(cache_blob_open(ix, &pr.digest, &r), 0);
	assert_true(r.decompressed);
	assert_bytes_at(r.fd, r.off, other, len);
	cache_reader_close(&r);
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s/tmp", storedir);
	assert_int_equal(count_in(tmp, ""), 0);
	free(other);
	free(buf);
}

static void test_fault_get(void **state)
{
	size_t len;
	uint8_t *buf = make(C_STRADDLE, 9, &len);
	static const char old[] = "old content";
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	for (int m = 0; m < 2; m++) {
		cache_put_opts o = { .mode = m ? CACHE_PUT_ZSTD : CACHE_PUT_RAW };
		cache_put_result pr;
		switch_store(m ? "zstd" : "raw");
		assert_int_equal(put_buf(buf, len, &o, &pr), 0);
		int fd = openat(dfd, "dest", O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		write_all(fd, old, sizeof(old));
		close(fd);

		static const enum cache_fault faults[] = { CACHE_FAULT_RENAME, CACHE_FAULT_WRITE };
		for (int f = 0; f < 2; f++) {
			int err = faults[f] == CACHE_FAULT_WRITE ? ENOSPC : EIO;
			if (faults[f] == CACHE_FAULT_WRITE && pr.reflinked)
				continue; /* restored by sharing blocks: nothing is written */
			cache_fault_set(faults[f], err);
			assert_int_equal(cache_get_at(ix, &pr.digest, dfd, "dest", 0644, NULL), -err);
			assert_file_is(dfd, "dest", (const uint8_t *)old, sizeof(old));
			assert_int_equal(count_in(tmpdir, ".casfs-get-"), 0);
			/* a failed restore is not a bad blob */
			assert_int_equal(totals().corrupt, 0);
			assert_int_equal(scan_objects().blobs, 1);
		}
		assert_int_equal(cache_get_at(ix, &pr.digest, dfd, "dest", 0644, NULL), 0);
		assert_file_is(dfd, "dest", buf, len);
	}
	close(dfd);
	free(buf);
}

/* ---- the expected-digest fast path -------------------------------------------------- */

static void test_expect(void **state)
{
	size_t len, olen;
	uint8_t *buf = make(C_TEXT, 21, &len), *other = make(C_STRADDLE, 22, &olen);
	cache_put_result a, b;
	cache_blob_rec rec;
	assert_int_equal(put_buf(buf, len, NULL, &a), 0);

	/* stored already: the source is not read (it holds something else) */
	cache_put_opts o = { .has_expect = true, .expect = a.digest };
	assert_int_equal(put_buf(other, olen, &o, &b), 0);
	assert_true(b.existed);
	assert_true(hasher_digest_equal(&b.digest, &a.digest));
	assert_int_equal(b.size, len);
	assert_int_equal(b.stored, a.stored);
	assert_int_equal(b.compression, a.compression);
	assert_int_equal(cache_index_blob_get(ix, &a.digest, &rec), 0);
	assert_int_equal(rec.refs, 2);
	assert_int_equal(totals().dedup_hits, 1);
	assert_int_equal(scan_objects().blobs, 1);

	/* the content changed since it was hashed */
	hasher_digest od, stale;
	hasher_digest_buffer(other, olen, &od);
	hasher_digest_buffer("what the caller hashed", 22, &stale);
	o.expect = stale;
	assert_int_equal(put_buf(other, olen, &o, &b), -ESTALE);
	assert_int_equal(cache_index_blob_get(ix, &od, &rec), -ENOENT);
	assert_int_equal(cache_index_blob_get(ix, &stale, &rec), -ENOENT);
	struct scan sc = scan_objects();
	assert_int_equal(sc.blobs, 1);
	assert_int_equal(sc.temps, 0);
	assert_int_equal(totals().blobs, 1);

	/* a right expectation of new content stores it */
	o.expect = od;
	assert_int_equal(put_buf(other, olen, &o, &b), 0);
	assert_false(b.existed);
	assert_true(hasher_digest_equal(&b.digest, &od));
	assert_int_equal(scan_objects().blobs, 2);
	free(other);
	free(buf);
}


/* ---- the chunk observer ------------------------------------------------------------ */

struct observed {
	hasher_stream *hs;
	uint64_t bytes;
	int calls;
	int spoil_fd;   /* >= 0: change the source file at the first chunk */
};

static void observe(void *arg, const void *data, size_t len)
{
	struct observed *ob = arg;
	assert_true(len > 0);
	if (ob->spoil_fd >= 0 && ob->calls == 0) {
		char path[160];
		snprintf(path, sizeof(path), "%s/src", tmpdir);
		int w = open(path, O_WRONLY | O_CLOEXEC);
		assert_true(w >= 0);
		assert_int_equal(pwrite(w, "changed", 7, 0), 7);
		close(w);
	}
	hasher_stream_update(ob->hs, data, len);
	ob->bytes += len;
	ob->calls++;
}

/* Puts buf with an observer; checks it saw exactly the content, once, in
 * order, when the result says the content was read (and nothing else). */
static int put_observed(const uint8_t *buf, size_t len, cache_put_opts *o, cache_put_result *r)
{
	struct observed ob = { .hs = hasher_stream_new(), .spoil_fd = -1 };
	o->on_chunk = observe;
	o->on_chunk_arg = &ob;
	int e = put_buf(buf, len, o, r);
	if (e == 0) {
		hasher_digest want, got;
		hasher_digest_buffer(buf, len, &want);
		hasher_stream_final(ob.hs, &got);
		if (r->read) {
			assert_int_equal(ob.bytes, len);
			assert_true(hasher_digest_equal(&got, &want));
			assert_true(ob.calls >= (int)(len / MIB)); /* chunks, not one call */
		} else {
			assert_int_equal(ob.calls, 0);
		}
	}
	hasher_stream_free(ob.hs);
	return e;
}

static void test_chunk_observer(void **state)
{
	static const cache_put_mode modes[] = { CACHE_PUT_RAW, CACHE_PUT_ZSTD, CACHE_PUT_AUTO };
	for (size_t mi = 0; mi < 3; mi++) {
		char name[32];
		snprintf(name, sizeof(name), "observer-%zu", mi);
		switch_store(name);
		for (enum content c = 0; c < C_NCONTENT; c++) {
			size_t len, olen;
			uint8_t *buf = make(c, 100 + c, &len), *other = make(c, 200 + c, &olen);
			cache_put_result r;
			cache_put_opts o = { .mode = modes[mi] };
			/* new content, digest unknown: read once for the digest,
			 * observed there, then stored */
			assert_int_equal(put_observed(buf, len, &o, &r), 0);
			assert_true(r.read);
			assert_false(r.existed);
			/* again: read (to learn the digest), found stored */
			o = (cache_put_opts){ .mode = modes[mi] };
			assert_int_equal(put_observed(buf, len, &o, &r), 0);
			assert_true(r.read);
			assert_true(r.existed);
			/* digest known and stored: not read, not observed */
			o = (cache_put_opts){ .mode = modes[mi], .has_expect = true, .expect = r.digest };
			assert_int_equal(put_observed(buf, len, &o, &r), 0);
			assert_false(r.read);
			assert_true(r.existed);
			/* digest known, not stored: observed in the pass that stores
			 * it, once even when zstd does not pay and raw follows */
			if (c != C_EMPTY && c != C_ONE) {
				o = (cache_put_opts){ .mode = modes[mi], .has_expect = true };
				hasher_digest_buffer(other, olen, &o.expect);
				assert_int_equal(put_observed(other, olen, &o, &r), 0);
				assert_true(r.read);
				assert_false(r.existed);
			}
			free(buf);
			free(other);
		}
	}
}

/* The observer saw one content, the file then changed: nothing is stored
 * under a digest the observer did not see. */
static void test_chunk_observer_stale(void **state)
{
	size_t len;
	uint8_t *buf = make(C_TEXT, 7, &len);
	struct observed ob = { .hs = hasher_stream_new() };
	cache_put_opts o = { .on_chunk = observe, .on_chunk_arg = &ob };
	cache_put_result r;
	int fd = src_fd("src", buf, len);
	ob.spoil_fd = fd;
	assert_int_equal(cache_put_fd(ix, fd, &o, &r), -ESTALE);
	close(fd);
	struct scan sc = scan_objects();
	assert_int_equal(sc.blobs, 0);
	assert_int_equal(sc.temps, 0);
	assert_int_equal(totals().blobs, 0);
	hasher_stream_free(ob.hs);
	free(buf);
}

/* ---- a full index -------------------------------------------------------------------- */

static void test_tiny_map(void **state)
{
	char content[128], path[256];
	int n, rc = 0;
	cache_put_result pr;
	cache_index_close(ix);
	ix = NULL;
	assert_int_equal(cache_index_open_sized(store, 64 * 1024, 64 * 1024, &ix), 0);
	for (n = 0; n < 100000; n++) {
		int len = snprintf(content, sizeof(content), "small blob %d", n);
		if ((rc = put_buf(content, (size_t)len, NULL, &pr)) < 0)
			break;
		assert_false(pr.existed);
	}
	print_message("  the index took %d blobs\n", n);
	assert_int_equal(rc, -ENOSPC);
	assert_true(n > 10);
	/* the blob that could not be recorded was taken back */
	hasher_digest d;
	int len = snprintf(content, sizeof(content), "small blob %d", n);
	hasher_digest_buffer(content, (size_t)len, &d);
	blob_path(&d, path, sizeof(path));
	struct stat st;
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	struct scan sc = scan_objects();
	assert_int_equal(sc.blobs, n);
	assert_int_equal(sc.temps, 0);
	assert_int_equal(totals().blobs, (uint64_t)n);
	/* still full, still refusing cleanly */
	assert_int_equal(put_buf(content, (size_t)len, NULL, &pr), -ENOSPC);
	assert_int_equal(scan_objects().blobs, n);
	/* what is stored is served */
	for (int i = 0; i < n; i++) {
		cache_reader r;
		len = snprintf(content, sizeof(content), "small blob %d", i);
		hasher_digest_buffer(content, (size_t)len, &d);
		assert_int_equal(cache_blob_open(ix, &d, &r), 0);
		assert_bytes_at(r.fd, r.off, (const uint8_t *)content, (size_t)len);
		cache_reader_close(&r);
	}
	/* allowed to grow, the map doubles as often as needed */
	cache_index_close(ix);
	ix = NULL;
	assert_int_equal(cache_index_open_sized(store, 64 * 1024, 0, &ix), 0);
	assert_int_equal(put_buf(content, (size_t)len, NULL, &pr), 0);
	assert_true(pr.existed);
	for (int i = n; i < 4 * n; i++) {
		len = snprintf(content, sizeof(content), "small blob %d", i);
		assert_int_equal(put_buf(content, (size_t)len, NULL, &pr), 0);
		assert_false(pr.existed);
	}
	assert_int_equal(totals().blobs, 4 * (uint64_t)n);
	assert_int_equal(scan_objects().blobs, 4 * n);
}

/* ---- a real full disk ------------------------------------------------------------------ */

static char mnt[128];
static bool mounted;
/* A check this program exists for could not run here (not root): it exits
 * 77, which meson reports as a skip and tools/test as a failure. */
static bool skipped_needed;
#define EXIT_SKIP 77

static int teardown_mount(void **state)
{
	cache_index_close(ix); /* the store may be on the mount */
	ix = NULL;
	cache_store_close(store);
	store = NULL;
	if (mounted && umount(mnt) < 0)
		umount2(mnt, MNT_DETACH);
	mounted = false;
	return teardown(state);
}

static void test_real_enospc(void **state)
{
	const char *msg;
	char path[256];
	size_t len;
	cache_put_result pr;
	if (geteuid() != 0) {
		/* counted: the program then exits 77, a skip to meson */
		printf("SKIP real_enospc: needs root to mount a 1 MiB tmpfs\n");
		skipped_needed = true;
		skip();
	}
	snprintf(mnt, sizeof(mnt), "%s/small", tmpdir);
	assert_int_equal(mkdir(mnt, 0755), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0)
		fail_msg("root cannot mount a 1 MiB tmpfs on %s: %s", mnt, strerror(errno));
	mounted = true;
	len = 4 * MIB;
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	fill_random(buf, len, 31);
	int fd = src_fd("big", buf, len); /* on the big disk */

	cache_index_close(ix);
	ix = NULL;
	cache_store_close(store);
	store = NULL;
	snprintf(path, sizeof(path), "%s/store", mnt);
	assert_int_equal(cache_store_open(path, &store, &msg), 0);
	assert_int_equal(cache_index_open(store, &ix), 0);
	for (int m = CACHE_PUT_AUTO; m <= CACHE_PUT_ZSTD; m++) {
		cache_put_opts o = { .mode = (cache_put_mode)m };
		assert_int_equal(cache_put_fd(ix, fd, &o, &pr), -ENOSPC);
		assert_store_empty();
	}
	close(fd);
	/* the space came back: a small put fits */
	assert_int_equal(put_buf(buf, 100000, NULL, &pr), 0);
	assert_int_equal(scan_objects().blobs, 1);
	free(buf);
}

int main(void)
{
	umask(022);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test_setup_teardown(test_roundtrip_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_zstd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_auto, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_again_and_stat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corruption_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_puts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_rounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunk_observer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunk_observer_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiny_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_enospc, setup, teardown_mount),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	return failed ? failed : skipped_needed ? EXIT_SKIP : 0;
}
