/* blob.c — blob files; see blob.h.
 *
 * Blob file grammar (format 1; integers are little-endian):
 *
 *   blob         = header padding payload
 *   header       = magic version compression reserved2 payload-off
 *                  size stored digest reserved8 check          ; 64 bytes
 *   magic        = %x89 "CASFSb" %x0A                           ; 8 bytes
 *   version      = %x01                                         ; u8
 *   compression  = %x00 / %x01                ; u8: none / zstd
 *   reserved2    = 2%x00
 *   payload-off  = u32: 64, or 4096 (a raw payload shared by reflink
 *                  starts on a block boundary)
 *   size         = u64: content bytes
 *   stored       = u64: payload bytes
 *   digest       = 16 bytes: XXH3-128 of the content, canonical (the
 *                  file's name is its hex)
 *   reserved8    = 8%x00
 *   check        = u64: the first 8 bytes of XXH3-128 of header bytes 0..55
 *   padding      = (payload-off - 64) %x00
 *   payload      = stored bytes:
 *                  none: the content itself (stored = size)
 *                  zstd: exactly one zstd frame that decodes to size bytes
 *
 * A blob is valid when: magic, version and check match; compression is
 * known; the file is exactly payload-off + stored bytes long; the decoded
 * payload is size bytes; its XXH3-128 equals digest, which equals the name.
 * A newer version is refused (-EPROTO), never guessed at.
 */
#include "blob.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#define CHUNK (1u << 20)

static const uint8_t MAGIC[8] = { 0x89, 'C', 'A', 'S', 'F', 'S', 'b', '\n' };

/* ---- faults ------------------------------------------------------------------ */

static _Atomic int fault_where, fault_err;

void cache_fault_set(enum cache_fault where, int err)
{
	atomic_store(&fault_err, err);
	atomic_store(&fault_where, (int)where);
}

/* Returns the errno to fail with at `where`, once, or 0. */
static int fault_hit(enum cache_fault where)
{
	int w = (int)where;
	if (atomic_load_explicit(&fault_where, memory_order_relaxed) != w)
		return 0;
	return atomic_compare_exchange_strong(&fault_where, &w, CACHE_FAULT_NONE) ? atomic_load(&fault_err) : 0;
}

/* ---- per-thread scratch ---------------------------------------------------------
 * Buffers and zstd contexts are kept per thread and reused: allocating
 * megabytes for every blob costs more in page faults than the work. */

struct scratch {
	uint8_t *buf[2];  /* CHUNK bytes each */
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	struct scratch *sc = p;
	free(sc->buf[0]);
	free(sc->buf[1]);
	ZSTD_freeCCtx(sc->cctx);
	ZSTD_freeDCtx(sc->dctx);
	free(sc);
}

static void scratch_init(void)
{
	pthread_key_create(&scratch_key, scratch_free);
}

/* This thread's scratch, or NULL on ENOMEM. */
static struct scratch *scratch(void)
{
	pthread_once(&scratch_once, scratch_init);
	struct scratch *sc = pthread_getspecific(scratch_key);
	if (sc)
		return sc;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->buf[0] = malloc(CHUNK);
	sc->buf[1] = malloc(CHUNK);
	sc->cctx = ZSTD_createCCtx();
	sc->dctx = ZSTD_createDCtx();
	if (!sc->buf[0] || !sc->buf[1] || !sc->cctx || !sc->dctx || pthread_setspecific(scratch_key, sc)) {
		scratch_free(sc);
		return NULL;
	}
	return sc;
}

/* ---- small helpers ------------------------------------------------------------- */

int64_t cache_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return cache_timespec_ns(&ts);
}

void cache_blob_names(const hasher_digest *d, char dir[3], char name[HASHER_HEX_LEN + 1])
{
	hasher_digest_to_hex(d, name);
	dir[0] = name[0];
	dir[1] = name[1];
	dir[2] = '\0';
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t header_check(const uint8_t *buf)
{
	hasher_digest d;
	hasher_digest_buffer(buf, 56, &d);
	return get_le64(d.bytes);
}

void cache_blob_header_encode(const cache_blob_header *h, uint8_t out[CACHE_BLOB_HDR])
{
	memset(out, 0, CACHE_BLOB_HDR);
	memcpy(out, MAGIC, 8);
	out[8] = h->version;
	out[9] = h->compression;
	out[12] = (uint8_t)h->payload_off;
	out[13] = (uint8_t)(h->payload_off >> 8);
	out[14] = (uint8_t)(h->payload_off >> 16);
	out[15] = (uint8_t)(h->payload_off >> 24);
	put_le64(out + 16, h->size);
	put_le64(out + 24, h->stored);
	memcpy(out + 32, h->digest.bytes, HASHER_DIGEST_LEN);
	put_le64(out + 56, header_check(out));
}

int cache_blob_header_decode(const uint8_t *buf, size_t len, cache_blob_header *h)
{
	if (len < CACHE_BLOB_HDR || memcmp(buf, MAGIC, 8) != 0)
		return -EBADMSG;
	if (get_le64(buf + 56) != header_check(buf))
		return -EBADMSG;
	h->version = buf[8];
	if (h->version > CACHE_BLOB_VERSION)
		return -EPROTO;
	if (h->version == 0)
		return -EBADMSG;
	h->compression = buf[9];
	h->payload_off = (uint32_t)buf[12] | (uint32_t)buf[13] << 8 | (uint32_t)buf[14] << 16 |
			 (uint32_t)buf[15] << 24;
	h->size = get_le64(buf + 16);
	h->stored = get_le64(buf + 24);
	memcpy(h->digest.bytes, buf + 32, HASHER_DIGEST_LEN);
	if (h->compression > CACHE_COMP_ZSTD || buf[10] || buf[11])
		return -EBADMSG;
	/* reserved8 is zero in format 1: a header using it is not one we wrote */
	for (int i = 48; i < 56; i++)
		if (buf[i])
			return -EBADMSG;
	if (h->payload_off != CACHE_BLOB_HDR && h->payload_off != CACHE_BLOB_ALIGNED_OFF)
		return -EBADMSG;
	if (h->compression == CACHE_COMP_NONE && h->stored != h->size)
		return -EBADMSG;
	return 0;
}

/* Writes len bytes at off (cache_io_write; injected faults stop half-way,
 * as a full disk does). */
static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	int e = fault_hit(CACHE_FAULT_WRITE);
	if (e) {
		if (len > 1 && pwrite(fd, buf, len / 2, (off_t)off) < 0)
			return -errno;
		return -e;
	}
	return cache_io_write(fd, buf, len, (off_t)off);
}

/* Where decoded or copied bytes go: an fd at a moving offset, or nowhere. */
struct sink {
	int fd;
	uint64_t off;
};

static int sink_write(struct sink *k, const void *buf, size_t n)
{
	if (!k || !n)
		return 0;
	int r = pwrite_all(k->fd, buf, n, k->off);
	if (r == 0)
		k->off += n;
	return r;
}

/* ---- temp files ------------------------------------------------------------------- */

struct tmpf {
	int fd;
	bool named;
	char name[64];
};

/* An unnamed file in dirfd (O_TMPFILE), else a temp name held under an
 * exclusive flock (fsck removes only unlocked ones). */
static int tmp_open(int dirfd, mode_t mode, struct tmpf *t)
{
	static _Atomic unsigned seq;
	t->named = false;
	if (!fault_hit(CACHE_FAULT_TMPFILE)) {
		t->fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
		if (t->fd >= 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return -errno;
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(t->name, sizeof(t->name), ".tmp-%d-%u", (int)getpid(), atomic_fetch_add(&seq, 1));
		t->fd = openat(dirfd, t->name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, mode);
		if (t->fd >= 0) {
			flock(t->fd, LOCK_EX);
			t->named = true;
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static void tmp_discard(int dirfd, struct tmpf *t)
{
	if (t->fd < 0)
		return;
	if (t->named)
		unlinkat(dirfd, t->name, 0);
	close(t->fd);
	t->fd = -1;
}

/* Links the temp file (in tmp_dir) as name in dir_fd.  1 when the name
 * already exists (the content is there), 0, -errno. */
static int tmp_publish(int tmp_dir, struct tmpf *t, int dir_fd, const char *name)
{
	int e = fault_hit(CACHE_FAULT_PUBLISH);
	if (e)
		return -e;
	int r;
	if (t->named) {
		r = linkat(tmp_dir, t->name, dir_fd, name, 0);
	} else {
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", t->fd);
		r = linkat(AT_FDCWD, p, dir_fd, name, AT_SYMLINK_FOLLOW);
		if (r < 0 && errno == ENOENT) /* no /proc: needs CAP_DAC_READ_SEARCH */
			r = linkat(t->fd, "", dir_fd, name, AT_EMPTY_PATH);
	}
	if (r < 0)
		return errno == EEXIST ? 1 : -errno;
	return 0;
}

/* ---- fan-out directories and opening blobs ------------------------------------------ */

static int open_fanout(cache_index *ix, const char dir[3], bool create)
{
	int objects = cache_store_objects_fd(cache_index_store(ix));
	int fd = openat(objects, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(objects, dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		fd = openat(objects, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

/* Reads and checks the header of the blob open at fd against its name and
 * the file's size.  0, -EBADMSG/-EPROTO with *why, -errno. */
static int read_header(int fd, const hasher_digest *name, cache_blob_header *h, const char **why)
{
	uint8_t buf[CACHE_BLOB_HDR];
	struct stat st;
	*why = NULL;
	ssize_t n = cache_io_read(fd, buf, sizeof(buf), 0);
	if (n < 0)
		return (int)n;
	if (fstat(fd, &st) < 0)
		return -errno;
	int r = cache_blob_header_decode(buf, (size_t)n, h);
	if (r == -EPROTO) {
		*why = "written by a newer casfs (blob format version)";
		return r;
	}
	if (r < 0) {
		*why = (size_t)n < sizeof(buf) ? "truncated header" :
		       memcmp(buf, MAGIC, 8) ? "wrong magic (not a casfs blob)" : "header checksum or fields invalid";
		return r;
	}
	if (!hasher_digest_equal(&h->digest, name)) {
		*why = "header digest differs from the name";
		return -EBADMSG;
	}
	if ((uint64_t)st.st_size != h->payload_off + h->stored) {
		*why = (uint64_t)st.st_size < h->payload_off + h->stored ? "truncated payload" : "trailing bytes";
		return -EBADMSG;
	}
	return 0;
}

/* Decodes the payload of the blob at fd into sink (NULL: nowhere) and checks
 * size and digest.  0, -EBADMSG with *why (corruption), -errno (I/O, sink). */
static int decode(int fd, const cache_blob_header *h, struct sink *k, const char **why)
{
	hasher_stream *hs = hasher_stream_new();
	struct scratch *sc = scratch();
	uint8_t *in = sc ? sc->buf[0] : NULL, *out = sc ? sc->buf[1] : NULL;
	ZSTD_DCtx *dctx = sc ? sc->dctx : NULL;
	uint64_t pos = 0, total = 0;
	size_t zr = 1;
	int r = 0;
	*why = NULL;
	if (!hs || !sc) {
		r = -ENOMEM;
		goto out;
	}
	if (h->compression == CACHE_COMP_ZSTD)
		ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
	while (pos < h->stored) {
		size_t want = h->stored - pos < CHUNK ? (size_t)(h->stored - pos) : CHUNK;
		ssize_t n = cache_io_read(fd, in, want, (off_t)(h->payload_off + pos));
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if ((size_t)n < want) {
			*why = "truncated payload";
			r = -EBADMSG;
			goto out;
		}
		pos += (uint64_t)n;
		if (h->compression == CACHE_COMP_NONE) {
			hasher_stream_update(hs, in, (size_t)n);
			total += (uint64_t)n;
			if ((r = sink_write(k, in, (size_t)n)))
				goto out;
			continue;
		}
		ZSTD_inBuffer ib = { in, (size_t)n, 0 };
		while (ib.pos < ib.size) {
			if (zr == 0) {
				*why = "bytes after the zstd frame";
				r = -EBADMSG;
				goto out;
			}
			ZSTD_outBuffer ob = { out, CHUNK, 0 };
			zr = ZSTD_decompressStream(dctx, &ob, &ib);
			if (ZSTD_isError(zr)) {
				*why = "zstd frame does not decode";
				r = -EBADMSG;
				goto out;
			}
			total += ob.pos;
			if (total > h->size) {
				*why = "decodes to more bytes than its size";
				r = -EBADMSG;
				goto out;
			}
			hasher_stream_update(hs, out, ob.pos);
			if ((r = sink_write(k, out, ob.pos)))
				goto out;
		}
	}
	if (h->compression == CACHE_COMP_ZSTD && zr != 0 && h->stored) {
		/* flush what the decoder still holds */
		for (;;) {
			ZSTD_inBuffer ib = { in, 0, 0 };
			ZSTD_outBuffer ob = { out, CHUNK, 0 };
			zr = ZSTD_decompressStream(dctx, &ob, &ib);
			if (ZSTD_isError(zr) || ob.pos == 0)
				break;
			total += ob.pos;
			if (total > h->size)
				break;
			hasher_stream_update(hs, out, ob.pos);
			if ((r = sink_write(k, out, ob.pos)))
				goto out;
		}
		if (zr != 0) {
			*why = "incomplete zstd frame";
			r = -EBADMSG;
			goto out;
		}
	}
	if (h->compression == CACHE_COMP_ZSTD && h->stored == 0) {
		*why = "empty zstd payload";
		r = -EBADMSG;
		goto out;
	}
	if (total != h->size) {
		*why = "decodes to a different size";
		r = -EBADMSG;
		goto out;
	}
	hasher_digest got;
	hasher_stream_final(hs, &got);
	if (!hasher_digest_equal(&got, &h->digest)) {
		*why = "content does not match its digest";
		r = -EBADMSG;
	}
out:
	hasher_stream_free(hs);
	return r;
}

int cache_blob_verify_fd(int fd, const hasher_digest *name, cache_blob_header *h, const char **why)
{
	int r = read_header(fd, name, h, why);
	return r < 0 ? r : decode(fd, h, NULL, why);
}

/* Opens the blob named d read-only with a shared lock and a checked header.
 * Returns the fd, -ENOENT (absent or being removed), -EBADMSG/-EPROTO. */
static int open_blob(cache_index *ix, const hasher_digest *d, cache_blob_header *h, const char **why)
{
	char dir[3], name[HASHER_HEX_LEN + 1];
	struct stat st;
	cache_blob_names(d, dir, name);
	*why = NULL;
	int dfd = open_fanout(ix, dir, false);
	if (dfd < 0)
		return dfd;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int e = errno;
	close(dfd);
	if (fd < 0)
		return -e;
	if (flock(fd, LOCK_SH) < 0 || fstat(fd, &st) < 0 || st.st_nlink == 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -ENOENT; /* evicted while we opened it */
	}
	int r = read_header(fd, d, h, why);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

bool cache_blob_present(cache_index *ix, const hasher_digest *d)
{
	char dir[3], name[HASHER_HEX_LEN + 1];
	struct stat st;
	cache_blob_names(d, dir, name);
	int dfd = open_fanout(ix, dir, false);
	if (dfd < 0)
		return false;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	close(dfd);
	if (fd < 0)
		return false;
	/* gc holds an exclusive lock from dropping the record to unlinking */
	bool ok = flock(fd, LOCK_SH | LOCK_NB) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0 &&
		  S_ISREG(st.st_mode);
	close(fd);
	return ok;
}

int cache_blob_stat(cache_index *ix, const hasher_digest *d, cache_blob_header *h)
{
	const char *why;
	int fd = open_blob(ix, d, h, &why);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static cache_blob_rec rec_of(const cache_blob_header *h, int64_t now)
{
	cache_blob_rec rec = { .size = h->size, .stored = h->payload_off + h->stored,
			       .compression = h->compression, .created_ns = now,
			       .last_use_ns = now, .refs = 1 };
	return rec;
}

/* Marks d used now, recording (adopting) a blob that has no record yet;
 * committed later (cache_index_blob_touch_later). */
static void touch(cache_index *ix, const hasher_digest *d, const cache_blob_header *h)
{
	cache_blob_rec rec = rec_of(h, cache_now_ns());
	cache_index_blob_touch_later(ix, d, &rec);
}

int cache_blob_quarantine(cache_index *ix, const hasher_digest *d)
{
	char dir[3], name[HASHER_HEX_LEN + 1], qname[HASHER_HEX_LEN + 32];
	cache_store *s = cache_index_store(ix);
	cache_blob_names(d, dir, name);
	snprintf(qname, sizeof(qname), "%s.%lld", name, (long long)cache_now_ns());
	int dfd = open_fanout(ix, dir, false);
	int qfd = openat(cache_store_dirfd(s), "quarantine", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (qfd < 0 && errno == ENOENT && mkdirat(cache_store_dirfd(s), "quarantine", 0755) == 0)
		qfd = openat(cache_store_dirfd(s), "quarantine", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = 0;
	if (dfd < 0 || qfd < 0)
		r = dfd < 0 ? dfd : -errno;
	else if (renameat(dfd, name, qfd, qname) < 0)
		r = -errno;
	if (dfd >= 0)
		close(dfd);
	if (qfd >= 0)
		close(qfd);
	/* moved already: by a reader that found it corrupt at the same time and
	 * counted it, so counting it here too would count one blob twice */
	if (r == -ENOENT)
		return 0;
	if (r == 0 && cache_index_blob_del(ix, d, -1, CACHE_DEL_CORRUPT) == -ENOENT)
		cache_index_count_corrupt(ix);
	return r;
}

/* ---- reading --------------------------------------------------------------------- */

int cache_blob_open(cache_index *ix, const hasher_digest *d, cache_reader *ret)
{
	cache_blob_header h;
	const char *why;
	int fd = open_blob(ix, d, &h, &why), r;
	if (fd == -EBADMSG)
		cache_blob_quarantine(ix, d);
	if (fd < 0)
		return fd;
	if (h.compression == CACHE_COMP_NONE) {
		r = decode(fd, &h, NULL, &why);
		if (r < 0) {
			close(fd);
			if (r == -EBADMSG)
				cache_blob_quarantine(ix, d);
			return r;
		}
		*ret = (cache_reader){ .fd = fd, .off = h.payload_off, .size = h.size };
	} else {
		struct tmpf t;
		r = tmp_open(cache_store_tmp_fd(cache_index_store(ix)), 0400, &t);
		if (r < 0) {
			close(fd);
			return r;
		}
		if (t.named) /* nothing needs the name */
			unlinkat(cache_store_tmp_fd(cache_index_store(ix)), t.name, 0);
		struct sink k = { t.fd, 0 };
		r = decode(fd, &h, &k, &why);
		close(fd);
		if (r < 0) {
			close(t.fd);
			if (r == -EBADMSG)
				cache_blob_quarantine(ix, d);
			return r;
		}
		*ret = (cache_reader){ .fd = t.fd, .off = 0, .size = h.size, .decompressed = true };
	}
	touch(ix, d, &h);
	return 0;
}

void cache_reader_close(cache_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* Fills out (an empty regular file open for writing) with the content of
 * the verified blob open at fd (header h), by reflink where the blob is raw
 * and aligned, else by copy/decompression; closes fd.  0, -EBADMSG, -errno. */
static int fill(int fd, const cache_blob_header *h, int out, bool *ret_cloned)
{
	const char *why;
	bool cloned = false;
	if (h->compression == CACHE_COMP_NONE && h->payload_off == CACHE_BLOB_ALIGNED_OFF && h->size) {
		struct file_clone_range fcr = { .src_fd = fd, .src_offset = h->payload_off };
		cloned = ioctl(out, FICLONERANGE, &fcr) == 0;
	}
	int r;
	if (cloned) {
		r = decode(fd, h, NULL, &why); /* the shared blocks are the blob's */
	} else {
		struct sink k = { out, 0 };
		r = decode(fd, h, &k, &why);
	}
	close(fd);
	*ret_cloned = cloned;
	return r;
}

/* Opens d for a get (a corrupt blob is quarantined).  fd or -errno. */
static int get_open(cache_index *ix, const hasher_digest *d, cache_blob_header *h, bool *reflinked)
{
	const char *why;
	if (reflinked)
		*reflinked = false;
	int fd = open_blob(ix, d, h, &why);
	if (fd == -EBADMSG)
		cache_blob_quarantine(ix, d);
	return fd;
}

/* The end of a get whose file was filled with result r. */
static int get_end(cache_index *ix, const hasher_digest *d, const cache_blob_header *h, int r, bool cloned,
		   bool *reflinked)
{
	if (r == -EBADMSG)
		cache_blob_quarantine(ix, d);
	if (r < 0)
		return r;
	if (reflinked)
		*reflinked = cloned;
	touch(ix, d, h);
	return 0;
}

int cache_get_at(cache_index *ix, const hasher_digest *d, int dirfd, const char *name,
		 mode_t mode, bool *reflinked)
{
	static _Atomic unsigned seq;
	cache_blob_header h;
	char tmp[64];
	int r, fd = get_open(ix, d, &h, reflinked);
	if (fd < 0)
		return fd;
	int out = -1;
	for (int i = 0; i < 1000 && out < 0; i++) {
		snprintf(tmp, sizeof(tmp), ".casfs-get-%d-%u", (int)getpid(), atomic_fetch_add(&seq, 1));
		out = openat(dirfd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, mode);
		if (out < 0 && errno != EEXIST)
			break;
	}
	if (out < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	bool cloned;
	r = fill(fd, &h, out, &cloned);
	if (r == 0 && close(out) < 0)
		r = -errno;
	else if (r < 0)
		close(out);
	if (r == 0) {
		int e = fault_hit(CACHE_FAULT_RENAME);
		if (e)
			r = -e;
		else if (renameat(dirfd, tmp, dirfd, name) < 0)
			r = -errno;
	}
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	return get_end(ix, d, &h, r, cloned, reflinked);
}

int cache_get_fd(cache_index *ix, const hasher_digest *d, int out, bool *reflinked)
{
	cache_blob_header h;
	bool cloned;
	int fd = get_open(ix, d, &h, reflinked);
	if (fd < 0)
		return fd;
	int r = fill(fd, &h, out, &cloned);
	return get_end(ix, d, &h, r, cloned, reflinked);
}

/* ---- writing --------------------------------------------------------------------- */

/* Where the content bytes a put reads go: the digest, and the caller's
 * chunk observer during the first pass that reads the whole content (a
 * put may read it again: zstd that does not pay, then raw). */
struct feed {
	hasher_stream *hs;
	void (*on_chunk)(void *arg, const void *data, size_t len);
	void *arg;
	bool observed;  /* a whole pass went to on_chunk already */
};

static void feed(struct feed *f, const void *data, size_t len)
{
	hasher_stream_update(f->hs, data, len);
	if (f->on_chunk && !f->observed && len)
		f->on_chunk(f->arg, data, len);
}

/* Starts a pass over the content, after a whole pass ended (done) or
 * before any. */
static void feed_restart(struct feed *f, bool done)
{
	hasher_stream_reset(f->hs);
	f->observed = f->observed || done;
}

/* Copies src into k (NULL: nowhere), feeding f. */
static int put_raw(int src, struct sink *k, struct feed *f, uint8_t *buf, uint64_t *size)
{
	uint64_t off = 0;
	for (;;) {
		ssize_t n = cache_io_read(src, buf, CHUNK, (off_t)off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		feed(f, buf, (size_t)n);
		int r = sink_write(k, buf, (size_t)n);
		if (r < 0)
			return r;
		off += (uint64_t)n;
	}
	*size = off;
	return 0;
}

/* Compresses src into k as one zstd frame, feeding f the input. */
static int put_zstd(int src, struct sink *k, struct feed *f, int level, uint8_t *buf,
		    uint64_t *size)
{
	struct scratch *sc = scratch();
	ZSTD_CCtx *cctx = sc ? sc->cctx : NULL;
	uint8_t *out = sc ? sc->buf[1] : NULL;
	uint64_t off = 0;
	int r = 0;
	struct stat st;
	if (!sc)
		return -ENOMEM;
	ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
	/* zstd sizes its tables by the source: a size hint keeps them small
	 * for small files (a file that changes size meanwhile is re-read) */
	if (fstat(src, &st) == 0)
		ZSTD_CCtx_setPledgedSrcSize(cctx, (unsigned long long)st.st_size);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0); /* the digest checks it */
	for (bool end = false; !end;) {
		ssize_t n = cache_io_read(src, buf, CHUNK, (off_t)off);
		if (n < 0) {
			r = (int)n;
			goto done;
		}
		end = n == 0;
		feed(f, buf, (size_t)n);
		off += (uint64_t)n;
		ZSTD_inBuffer ib = { buf, (size_t)n, 0 };
		size_t left;
		do {
			ZSTD_outBuffer ob = { out, CHUNK, 0 };
			left = ZSTD_compressStream2(cctx, &ob, &ib, end ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(left)) {
				/* a size other than pledged: the file changed under us */
				r = ZSTD_getErrorCode(left) == ZSTD_error_srcSize_wrong ? -ESTALE : -EIO;
				goto done;
			}
			if ((r = sink_write(k, out, ob.pos)))
				goto done;
		} while (end ? left != 0 : ib.pos < ib.size);
	}
	*size = off;
done:
	return r;
}

/* Shares src's blocks with the temp file at CACHE_BLOB_ALIGNED_OFF and
 * feeds f what the temp file now holds.  -EOPNOTSUPP/-EXDEV/-EINVAL when the
 * filesystem cannot. */
static int put_reflink(int src, int dst, struct feed *f, uint8_t *buf, uint64_t *size)
{
	if (ftruncate(dst, CACHE_BLOB_ALIGNED_OFF) < 0)
		return -errno;
	struct file_clone_range fcr = { .src_fd = src, .dest_offset = CACHE_BLOB_ALIGNED_OFF };
	if (ioctl(dst, FICLONERANGE, &fcr) < 0) {
		int e = -errno;
		if (ftruncate(dst, 0) < 0)
			return -errno;
		return e;
	}
	uint64_t off = CACHE_BLOB_ALIGNED_OFF;
	for (;;) {
		ssize_t n = cache_io_read(dst, buf, CHUNK, (off_t)off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		feed(f, buf, (size_t)n);
		off += (uint64_t)n;
	}
	*size = off - CACHE_BLOB_ALIGNED_OFF;
	return 0;
}

/* Fills the temp file t with the header and payload of src's content;
 * f->hs is this function's (f->observed may already be set). */
static int write_blob(int src, int dst, const cache_put_opts *o, struct feed *f, cache_blob_header *h,
		      bool *reflinked)
{
	hasher_stream *hs = f->hs = hasher_stream_new();
	struct scratch *sc = scratch();
	uint8_t *buf = sc ? sc->buf[0] : NULL;
	struct stat st;
	int r;
	*reflinked = false;
	if (!hs || !buf) {
		r = -ENOMEM;
		goto out;
	}
	if (fstat(src, &st) < 0) {
		r = -errno;
		goto out;
	}
	*h = (cache_blob_header){ .version = CACHE_BLOB_VERSION, .payload_off = CACHE_BLOB_HDR };
	r = -EOPNOTSUPP;
	if (o->mode != CACHE_PUT_ZSTD && st.st_size > 0) {
		r = put_reflink(src, dst, f, buf, &h->size);
		if (r == 0) {
			*reflinked = true;
			h->payload_off = CACHE_BLOB_ALIGNED_OFF;
		} else if (r != -EOPNOTSUPP && r != -EXDEV && r != -EINVAL && r != -ENOTTY) {
			goto out;
		}
	}
	if (r < 0 && o->mode != CACHE_PUT_RAW) {
		feed_restart(f, false);
		struct sink k = { dst, CACHE_BLOB_HDR };
		r = put_zstd(src, &k, f, o->zstd_level ? o->zstd_level : 1, buf, &h->size);
		if (r < 0)
			goto out;
		h->compression = CACHE_COMP_ZSTD;
		h->stored = k.off - CACHE_BLOB_HDR;
		/* not worth a decompression on every read: store it raw */
		if (o->mode == CACHE_PUT_AUTO && h->stored + h->stored / 32 >= h->size)
			r = -EAGAIN;
	}
	if (r < 0) {
		if (ftruncate(dst, 0) < 0) {
			r = -errno;
			goto out;
		}
		feed_restart(f, h->compression == CACHE_COMP_ZSTD);
		struct sink k = { dst, CACHE_BLOB_HDR };
		if ((r = put_raw(src, &k, f, buf, &h->size)) < 0)
			goto out;
		h->compression = CACHE_COMP_NONE;
	}
	if (h->compression == CACHE_COMP_NONE)
		h->stored = h->size;
	hasher_stream_final(hs, &h->digest);
	uint8_t hdr[CACHE_BLOB_HDR];
	cache_blob_header_encode(h, hdr);
	r = pwrite_all(dst, hdr, sizeof(hdr), 0);
out:
	hasher_stream_free(hs);
	f->hs = NULL;
	return r;
}

/* Reads the whole content of src once for its digest, feeding the
 * observer.  0 or -errno. */
static int digest_observed(int src, struct feed *f, hasher_digest *ret)
{
	struct scratch *sc = scratch();
	int r = -ENOMEM;
	uint64_t size;
	if (sc && (f->hs = hasher_stream_new())) {
		r = put_raw(src, NULL, f, sc->buf[0], &size);
		if (r == 0) {
			hasher_stream_final(f->hs, ret);
			f->observed = true;
		}
	}
	hasher_stream_free(f->hs);
	f->hs = NULL;
	return r;
}

/* Records a blob found already stored (adopting it when unrecorded). */
static int record_existing(cache_index *ix, const cache_put_opts *o, const cache_blob_header *h,
			   cache_put_result *ret)
{
	cache_blob_rec rec = rec_of(h, cache_now_ns());
	ret->digest = h->digest;
	ret->size = h->size;
	ret->stored = rec.stored;
	ret->compression = h->compression;
	ret->existed = true;
	int r = o->defer_record ? cache_index_blob_add_later(ix, &h->digest, &rec, true)
				: cache_index_blob_add(ix, &h->digest, &rec, true);
	return r < 0 ? r : 0;
}

int cache_put_fd(cache_index *ix, int src, const cache_put_opts *o, cache_put_result *ret)
{
	static const cache_put_opts defaults = { .mode = CACHE_PUT_AUTO };
	cache_blob_header h, old;
	char dir[3], name[HASHER_HEX_LEN + 1];
	struct tmpf t;
	int objects = cache_store_objects_fd(cache_index_store(ix)), r, dfd = -1;
	struct feed f = { 0 };
	hasher_digest expect;
	bool has_expect;
	if (!o)
		o = &defaults;
	memset(ret, 0, sizeof(*ret));
	f.on_chunk = o->on_chunk;
	f.arg = o->on_chunk_arg;
	has_expect = o->has_expect;
	expect = o->expect;
	if (has_expect && cache_blob_stat(ix, &expect, &old) == 0 &&
	    (r = record_existing(ix, o, &old, ret)) != -ENOENT)
		return r; /* (-ENOENT: evicted meanwhile, stored again below) */
	memset(ret, 0, sizeof(*ret));
	ret->read = true; /* from here on, the content is read */
	if (!has_expect) {
		/* hashing costs far less than compressing: a content already
		 * stored is found before it is written again */
		r = f.on_chunk ? digest_observed(src, &f, &expect) : hasher_digest_fd(src, &expect, NULL);
		if (r < 0)
			return r;
		if (cache_blob_stat(ix, &expect, &old) == 0 &&
		    (r = record_existing(ix, o, &old, ret)) != -ENOENT)
			return r;
		memset(ret, 0, sizeof(*ret));
		ret->read = true;
		/* the observer saw this content: what is stored must be it */
		has_expect = f.on_chunk != NULL;
	}

	if ((r = tmp_open(objects, 0444, &t)) < 0)
		return r;
	if ((r = write_blob(src, t.fd, o, &f, &h, &ret->reflinked)) < 0)
		goto fail;
	if (has_expect && !hasher_digest_equal(&h.digest, &expect)) {
		r = -ESTALE; /* changed since the caller (or the observer) saw it */
		goto fail;
	}
	cache_blob_names(&h.digest, dir, name);
	if ((dfd = open_fanout(ix, dir, true)) < 0) {
		r = dfd;
		goto fail;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		r = tmp_publish(objects, &t, dfd, name);
		if (r <= 0)
			break;
		/* already there: keep it if sound, else replace it */
		const char *why;
		int ofd = open_blob(ix, &h.digest, &old, &why);
		if (ofd >= 0) {
			close(ofd);
			tmp_discard(objects, &t);
			close(dfd);
			return record_existing(ix, o, &old, ret);
		}
		if (ofd == -EBADMSG)
			cache_blob_quarantine(ix, &h.digest);
		else if (ofd != -ENOENT) /* vanished: link again */
			r = ofd;
		if (r < 0)
			break;
	}
	if (r == 1)
		r = -EIO;
	if (r < 0)
		goto fail;
	tmp_discard(objects, &t);
	cache_blob_rec rec = rec_of(&h, cache_now_ns());
	if (o->defer_record) /* a failed batch leaves blobs to adopt, not to lose */
		r = cache_index_blob_add_later(ix, &h.digest, &rec, true);
	else
		r = cache_index_blob_add(ix, &h.digest, &rec, true);
	if (r < 0) {
		/* unrecorded, a blob would escape gc: take it back (a deferred
		 * batch that failed leaves its blobs to be adopted) */
		if (!o->defer_record)
			unlinkat(dfd, name, 0);
		close(dfd);
		return r;
	}
	close(dfd);
	ret->digest = h.digest;
	ret->size = h.size;
	ret->stored = rec.stored;
	ret->compression = h.compression;
	/* the link succeeded, so this put stored the content, even when a racing
	 * put that found our blob recorded it first (r == 1) */
	ret->existed = false;
	return 0;
fail:
	tmp_discard(objects, &t);
	if (dfd >= 0)
		close(dfd);
	return r;
}
