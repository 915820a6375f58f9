/* action.c — the action cache's pure logic; see action.h.
 *
 * Manifest grammar (format 1; integers are little-endian):
 *
 *   manifest    = magic version reserved3 flags exit run-ms created-ns
 *                 root nin *input nout *output stdout stderr check
 *   magic       = %x89 "CASFSm" %x0A                        ; 8 bytes
 *   version     = u8: 1
 *   reserved3   = 3%x00
 *   flags       = u32: ACTION_F_* (unknown bits are invalid)
 *   exit        = u32: 0..255
 *   run-ms      = u64
 *   created-ns  = u64 (an i64, two's complement)
 *   root        = str: an absolute path (action_path_check, scope abs)
 *   nin         = u32
 *   input       = in-kind scope digest-kind path [type in-size] [in-mode] [digest]
 *   in-kind     = u8: 1 file, 2 absent, 3 dir, 4 symlink, 5 exists
 *   scope       = u8: 0 root, 1 mount, 2 abs
 *   digest-kind = u8: 0 plain, 1 c-source, 2 ar; 0 unless in-kind is file
 *   path        = str, valid in its scope (action_path_check)
 *   type        = u32: S_IFMT bits, non-zero           ; in-kind exists only
 *   in-size     = u64: the size of a regular file, else 0 ; in-kind exists only
 *   in-mode     = u32: <= 07777 (permission bits)      ; in-kind file, exists
 *   digest      = 16 bytes, canonical XXH3-128         ; file, dir, symlink only
 *   nout        = u32
 *   output      = out-kind path [mode] [size digest] [target]
 *   out-kind    = u8: 1 file, 2 dir, 3 symlink, 4 removed; a file | 0x80: root_text
 *                 (path: scope root, not empty)
 *   mode        = u32: <= 07777                         ; file and dir only
 *   size        = u64                                   ; file only
 *   target      = str, not empty                        ; symlink only
 *   stdout      = stream
 *   stderr      = stream
 *   stream      = size inline digest [data]
 *   inline      = u8: 1 when size <= ACTION_INLINE_MAX, else 0
 *   data        = size bytes whose XXH3-128 is digest   ; inline only
 *   str         = u32 length, then length bytes, none of them NUL
 *   check       = u64: the first 8 bytes of the XXH3-128 (canonical) of
 *                 every byte before it, read little-endian
 *
 * Record grammar (the value of an action key):
 *
 *   record      = rmagic version reserved3 n *(u32 length, manifest) check
 *   rmagic      = %x89 "CASFSr" %x0A
 *   n           = u32: 0..ACTION_MAX_MANIFESTS, newest first
 *   check       = as above, over the whole record before it
 *
 * Every later version keeps magic, the version byte at offset 8 and the
 * trailing check, so a decoder verifies the check first (a damaged version
 * byte is damage, -EBADMSG) and then refuses a newer version (-EPROTO) and
 * an older one (-EBADMSG: its runs are recorded again).  Version 2 added
 * in-size and in-mode.
 * The grammar has one spelling per value: a buffer that decodes re-encodes
 * to the same bytes.
 *
 * Key material (hashed by action_key_final; ACTION_KEY_VERSION names this
 * layout):
 *
 *   material    = ntools *digest pinned [root] cwd argc *str nenv *env
 *                 umask flags
 *   ntools, argc, nenv, umask, flags = u32;  pinned = u8 0/1
 *   env         = name value (str each; sorted by name, then value)
 *   cwd, argv, values: relativized against the root; root: literal
 */
#include "action.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const uint8_t MANIFEST_MAGIC[8] = { 0x89, 'C', 'A', 'S', 'F', 'S', 'm', '\n' };
static const uint8_t RECORD_MAGIC[8] = { 0x89, 'C', 'A', 'S', 'F', 'S', 'r', '\n' };
#define HEAD_LEN 12 /* magic, version, reserved3 */
#define CHECK_LEN 8

#define ESC '\x01'
#define ESC_ROOT 'R'

/* ---- growable byte buffers ------------------------------------------------ */

struct wbuf {
	uint8_t *p;
	size_t n, cap;
	bool oom;
};

static void w_bytes(struct wbuf *w, const void *data, size_t len)
{
	if (w->oom)
		return;
	if (w->cap - w->n < len) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap - w->n < len)
			cap *= 2;
		uint8_t *p = realloc(w->p, cap);
		if (!p) {
			w->oom = true;
			return;
		}
		w->p = p;
		w->cap = cap;
	}
	if (len)
		memcpy(w->p + w->n, data, len);
	w->n += len;
}

static void w_u8(struct wbuf *w, uint8_t v)
{
	w_bytes(w, &v, 1);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	w_bytes(w, b, 4);
}

static void w_u64(struct wbuf *w, uint64_t v)
{
	w_u32(w, (uint32_t)v);
	w_u32(w, (uint32_t)(v >> 32));
}

static void w_str(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);
	w_u32(w, (uint32_t)n);
	w_bytes(w, s, n);
}

/* Hands the bytes to the caller: 0, or -ENOMEM (the buffer is freed). */
static int w_finish(struct wbuf *w, uint8_t **ret, size_t *ret_len)
{
	if (w->oom) {
		free(w->p);
		return -ENOMEM;
	}
	*ret = w->p;
	*ret_len = w->n;
	return 0;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t checksum(const uint8_t *p, size_t len)
{
	hasher_digest d;
	hasher_digest_buffer(p, len, &d);
	return get_le64(d.bytes);
}

/* Appends the trailing check over everything written so far. */
static void w_check(struct wbuf *w)
{
	if (!w->oom)
		w_u64(w, checksum(w->p, w->n));
}

/* A reader that never goes past its end: every getter fails once short. */
struct rbuf {
	const uint8_t *p;
	size_t n, off;
};

static bool r_bytes(struct rbuf *r, void *out, size_t len)
{
	if (r->n - r->off < len)
		return false;
	memcpy(out, r->p + r->off, len);
	r->off += len;
	return true;
}

static bool r_u8(struct rbuf *r, uint8_t *v)
{
	return r_bytes(r, v, 1);
}

static bool r_u32(struct rbuf *r, uint32_t *v)
{
	uint8_t b[4];
	if (!r_bytes(r, b, 4))
		return false;
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return true;
}

static bool r_u64(struct rbuf *r, uint64_t *v)
{
	uint32_t lo, hi;
	if (!r_u32(r, &lo) || !r_u32(r, &hi))
		return false;
	*v = (uint64_t)hi << 32 | lo;
	return true;
}

/* A str field as a malloc'd C string; false when short, holding a NUL or
 * out of memory (*oom says which). */
static bool r_str(struct rbuf *r, char **ret, bool *oom)
{
	uint32_t n;
	if (!r_u32(r, &n) || r->n - r->off < n || memchr(r->p + r->off, 0, n))
		return false;
	char *s = malloc((size_t)n + 1);
	if (!s) {
		*oom = true;
		return false;
	}
	memcpy(s, r->p + r->off, n);
	s[n] = '\0';
	r->off += n;
	*ret = s;
	return true;
}

/* ---- paths and the root ----------------------------------------------------- */

/* Bytes that can continue a file name in a command line (see action.h). */
static bool name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '+' || c == '~' || c == '@' || c == '%' || c == '-' ||
	       c >= 0x80;
}

static bool root_valid(const char *root)
{
	size_t n = strlen(root);
	return n > 0 && root[0] == '/' && (n == 1 || root[n - 1] != '/') && !strchr(root, ESC);
}

/* True when the root's text at s[j..j+rl) stands for the root (action.h). */
static bool root_occurrence(const char *s, size_t j, size_t rl)
{
	const char *end = s + j + rl;
	if (*end && *end != '/' && name_byte((unsigned char)*end))
		return false;
	if (end[0] == '/' && end[1] == '.' && end[2] == '.' &&
	    (!end[3] || end[3] == '/' || !name_byte((unsigned char)end[3])))
		return false;
	if (j == 0)
		return true;
	size_t i = j;
	while (i > 0 && name_byte((unsigned char)s[i - 1]))
		i--;
	if (i > 0 && s[i - 1] == '/')
		return false;
	return i == j || s[i] == '-' || s[i] == '@';
}

char *action_relativize(const char *s, const char *root)
{
	if (!root_valid(root)) {
		errno = EINVAL;
		return NULL;
	}
	size_t rl = strlen(root);
	bool any_root = rl > 1;
	struct wbuf w = { 0 };
	for (size_t j = 0; s[j];) {
		if (any_root && s[j] == root[0] && strncmp(s + j, root, rl) == 0 && root_occurrence(s, j, rl)) {
			w_bytes(&w, (char[]){ ESC, ESC_ROOT }, 2);
			j += rl;
		} else if (s[j] == ESC) {
			w_bytes(&w, (char[]){ ESC, ESC }, 2);
			j++;
		} else {
			w_u8(&w, (uint8_t)s[j++]);
		}
	}
	w_u8(&w, 0);
	if (w.oom) {
		free(w.p);
		errno = ENOMEM;
		return NULL;
	}
	return (char *)w.p;
}

char *action_absolutize(const char *s, const char *root)
{
	if (!root_valid(root)) {
		errno = EINVAL;
		return NULL;
	}
	size_t rl = strlen(root);
	struct wbuf w = { 0 };
	for (size_t j = 0; s[j]; j++) {
		if (s[j] != ESC) {
			w_u8(&w, (uint8_t)s[j]);
		} else if (s[j + 1] == ESC) {
			w_u8(&w, ESC);
			j++;
		} else if (s[j + 1] == ESC_ROOT) {
			w_bytes(&w, root, rl);
			j++;
		} else {
			free(w.p);
			errno = EINVAL;
			return NULL;
		}
	}
	w_u8(&w, 0);
	if (w.oom) {
		free(w.p);
		errno = ENOMEM;
		return NULL;
	}
	return (char *)w.p;
}

int action_path_check(int scope, const char *path)
{
	if (scope != ACTION_SCOPE_ROOT && scope != ACTION_SCOPE_MOUNT && scope != ACTION_SCOPE_ABS)
		return -EINVAL;
	if (!path || strlen(path) >= PATH_MAX)
		return -EINVAL;
	const char *p = path;
	if (scope == ACTION_SCOPE_ABS) {
		if (*p != '/')
			return -EINVAL;
		p++;
	}
	if (!*p)
		return 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (!slash)
			return 0;
		p = slash + 1;
	}
}

/* ---- scanning outputs for the root --------------------------------------------- */

int action_scan_init(action_scan *s, const char *needle)
{
	size_t len = strlen(needle);
	if (!len)
		return -EINVAL;
	char *copy = strdup(needle);
	size_t *fail = malloc(len * sizeof(*fail));
	if (!copy || !fail) {
		free(copy);
		free(fail);
		return -ENOMEM;
	}
	/* fail[i]: length of the longest proper prefix of needle[0..i] that is
	 * also its suffix */
	fail[0] = 0;
	for (size_t i = 1, k = 0; i < len; i++) {
		while (k > 0 && needle[i] != needle[k])
			k = fail[k - 1];
		if (needle[i] == needle[k])
			k++;
		fail[i] = k;
	}
	*s = (action_scan){ .needle = copy, .len = len, .fail = fail };
	return 0;
}

void action_scan_feed(action_scan *s, const void *data, size_t len)
{
	const char *p = data, *end = p + len;
	const char *needle = s->needle;
	size_t m = s->matched;
	while (!s->found && p < end) {
		if (m == 0) {
			/* nothing pending: jump to the next candidate first byte */
			p = memchr(p, needle[0], (size_t)(end - p));
			if (!p)
				break;
		}
		char c = *p++;
		while (m > 0 && c != needle[m])
			m = s->fail[m - 1];
		if (c == needle[m])
			m++;
		if (m == s->len)
			s->found = true;
	}
	s->matched = m;
}

void action_scan_free(action_scan *s)
{
	free(s->needle);
	free(s->fail);
	*s = (action_scan){ 0 };
}

int action_root_rewrite(const uint8_t *in, size_t len, const char *from, const char *to, uint8_t **ret,
			size_t *ret_len)
{
	size_t fl = strlen(from), tl = to ? strlen(to) : 0, n = 0;
	if (!fl || strpbrk(from, " \t\n#$\\:"))
		return -EINVAL;
	/* count (and check) the occurrences first: the size of the result */
	for (const uint8_t *p = in, *end = in + len; p < end;) {
		const uint8_t *hit = len >= fl ? memmem(p, (size_t)(end - p), from, fl) : NULL;
		if (!hit)
			break;
		if (hit + fl >= end || hit[fl] != '/')
			return -EINVAL;
		n++;
		p = hit + fl;
	}
	if (!ret)
		return 0;
	size_t out_len = len - n * fl + n * tl;
	uint8_t *out = malloc(out_len ? out_len : 1), *o = out;
	if (!out)
		return -ENOMEM;
	for (const uint8_t *p = in, *end = in + len; p < end;) {
		const uint8_t *hit = n ? memmem(p, (size_t)(end - p), from, fl) : NULL;
		size_t keep = hit ? (size_t)(hit - p) : (size_t)(end - p);
		memcpy(o, p, keep);
		o += keep;
		if (!hit)
			break;
		memcpy(o, to, tl);
		o += tl;
		p = hit + fl;
		n--;
	}
	*ret = out;
	*ret_len = out_len;
	return 0;
}

/* Appends name (n bytes) as libcpp's make_write_name does at column *col. */
static void rewrap_name(uint8_t **o, const uint8_t *name, size_t n, size_t *col)
{
	if (*col) {
		if (*col + n > 72) {
			memcpy(*o, " \\\n", 3);
			*o += 3;
			*col = 0;
		}
		(*col)++;
		*(*o)++ = ' ';
	}
	memcpy(*o, name, n);
	*o += n;
	*col += n;
}

int action_depfile_rewrap(const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len)
{
	/* the rule: up to the first newline not escaped by a backslash */
	size_t end = 0;
	while (end < len && !(in[end] == '\n' && !(end > 0 && in[end - 1] == '\\')))
		end++;
	if (end == len)
		return -EINVAL;
	/* a line at most: each name gains one space, each break three bytes */
	uint8_t *out = malloc(len * 3 + 8), *o = out;
	if (!out)
		return -ENOMEM;
	size_t col = 0;
	bool targets = true, colon = false;
	for (size_t i = 0; i < end;) {
		if (in[i] == ' ' || in[i] == '\t' || (in[i] == '\\' && i + 1 < end && in[i + 1] == '\n')) {
			i += in[i] == '\\' ? 2 : 1;
			continue;
		}
		size_t s = i;
		while (i < end && in[i] != ' ' && in[i] != '\t' && !(in[i] == '\\' && i + 1 < end && in[i + 1] == '\n'))
			i += in[i] == '\\' && i + 1 < end ? 2 : 1;
		size_t n = i - s;
		bool last_target = targets && in[i - 1] == ':' && !(n >= 2 && in[i - 2] == '\\');
		if (last_target)
			n--;
		if (n)
			rewrap_name(&o, in + s, n, &col);
		if (last_target) {
			*o++ = ':';
			col++;
			targets = false;
			colon = true;
		}
	}
	if (!colon) {
		free(out);
		return -EINVAL;
	}
	memcpy(o, in + end, len - end);
	o += len - end;
	*ret = out;
	*ret_len = (size_t)(o - out);
	return 0;
}

void action_path_lexical(const char *path, char *out, size_t size)
{
	size_t o = 0;
	if (size)
		out[0] = '\0';
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		size_t l = (size_t)(e - p);
		if (l == 2 && p[0] == '.' && p[1] == '.') {
			while (o > 0 && out[--o] != '/')
				;
			out[o] = '\0';
		} else if (l && !(l == 1 && p[0] == '.') && o + 1 + l < size) {
			out[o++] = '/';
			memcpy(out + o, p, l);
			o += l;
			out[o] = '\0';
		}
		p = e;
	}
	if (!o && size > 1) {
		out[0] = '/';
		out[1] = '\0';
	}
}

/* p past any colour escapes (ESC [ digits/semicolons m or K) before end. */
static const uint8_t *skip_colour(const uint8_t *p, const uint8_t *end)
{
	while (end - p >= 3 && p[0] == 0x1b && p[1] == '[') {
		const uint8_t *q = p + 2;
		while (q < end && ((*q >= '0' && *q <= '9') || *q == ';'))
			q++;
		if (q >= end || (*q != 'm' && *q != 'K'))
			break;
		p = q + 1;
	}
	return p;
}

bool action_root_at_locations(const uint8_t *in, size_t len, const char *root,
			      bool (*read)(void *arg, const char *rel, size_t rel_len), void *arg)
{
	static const char included[] = "In file included from ", from[] = "from ";
	size_t rl = strlen(root);
	if (!rl)
		return false;
	for (const uint8_t *p = in, *end = in + len; p < end;) {
		const uint8_t *hit = memmem(p, (size_t)(end - p), root, rl);
		if (!hit)
			break;
		const uint8_t *line = hit;
		while (line > in && line[-1] != '\n')
			line--;
		const uint8_t *q = skip_colour(line, hit);
		if (q != hit && (size_t)(hit - q) >= sizeof(included) - 1 &&
		    !memcmp(q, included, sizeof(included) - 1)) {
			q = skip_colour(q + sizeof(included) - 1, hit);
		} else if (q != hit) {
			while (q < hit && *q == ' ')
				q++;
			if ((size_t)(hit - q) >= sizeof(from) - 1 && !memcmp(q, from, sizeof(from) - 1))
				q = skip_colour(q + sizeof(from) - 1, hit);
		}
		if (q != hit)
			return false;
		if (read) {
			const uint8_t *r = hit + rl + 1, *e = r;
			while (e < end && *e != ':' && *e != ',' && *e != '\n' && *e != 0x1b)
				e++;
			if (hit + rl >= end || hit[rl] != '/' || !read(arg, (const char *)r, (size_t)(e - r)))
				return false;
		}
		p = hit + rl;
	}
	return true;
}

/* ---- keys ------------------------------------------------------------------ */

/* Components of a relativized cwd below the root, or -1 when the cwd is
 * not under the root. */
static long cwd_depth(const char *rel)
{
	if (rel[0] != ESC || rel[1] != ESC_ROOT || (rel[2] && rel[2] != '/'))
		return -1;
	long depth = 0;
	for (const char *p = rel + 2; *p;) {
		while (*p == '/')
			p++;
		const char *q = p;
		while (*q && *q != '/')
			q++;
		size_t n = (size_t)(q - p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			depth--;
		else if (n && !(n == 1 && p[0] == '.'))
			depth++;
		if (depth < 0)
			return -1;
		p = q;
	}
	return depth;
}

/* True when the components in [p, end) climb below `limit` levels. */
static bool path_climbs(const char *p, const char *end, long limit)
{
	long level = 0;
	while (p < end) {
		const char *q = p;
		while (q < end && *q != '/')
			q++;
		size_t n = (size_t)(q - p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			level--;
		else if (n && !(n == 1 && p[0] == '.'))
			level++;
		if (level < limit)
			return true;
		p = q < end ? q + 1 : q;
	}
	return false;
}

/* True when a name in the relativized string s leads outside the root with
 * "..": a relative name climbing more than `depth` levels (the cwd's depth
 * below the root), or a name under the root placeholder climbing above it.
 * A name starts at the start of s or after a byte that is neither a name
 * byte nor '/', and runs through name bytes and '/'.  Absolute names are
 * the same at every root.  A first component that is an option ("-I../x",
 * "-o..") counts from its first '.', or not at all; when unsure this errs
 * toward "climbs" (a pinned key only costs a hit elsewhere). */
static bool climbs_out(const char *s, long depth)
{
	const char *p = s;
	while (*p) {
		bool anchored = p[0] == ESC && p[1] == ESC_ROOT;
		if (anchored) {
			p += 2;
		} else if (p[0] == ESC) {
			p += 2; /* a literal \x01 */
			continue;
		} else if (*p != '/' && !name_byte((unsigned char)*p)) {
			p++;
			continue;
		}
		const char *end = p;
		while (*end && (*end == '/' || name_byte((unsigned char)*end)))
			end++;
		if (!anchored && *p == '-') {
			while (p < end && *p != '/' && *p != '.')
				p++; /* the option letters */
		}
		if (!anchored && *p == '/') {
			p = end; /* absolute */
			continue;
		}
		if (path_climbs(p, end, anchored ? 0 : -depth))
			return true;
		p = end;
	}
	return false;
}

/* True when s names a proper ancestor of root ("/" excluded) as a whole
 * path: preceded by the start or a byte that is neither a name byte nor
 * '/', and followed (after an optional '/') by the end or such a byte —
 * as in -fdebug-prefix-map=/work/sb=/S, which rewrites the part of the
 * root below /work/sb into what outputs hold: another root would get
 * another result that no scan for the root's own path can see. */
static bool names_ancestor(const char *s, const char *root)
{
	size_t rl = strlen(root);
	for (size_t al = rl; al > 1; al--) {
		if (root[al] != '/')
			continue; /* root[0..al) is an ancestor */
		for (const char *p = strstr(s, "/"); p; p = strchr(p + 1, '/')) {
			if (strncmp(p, root, al) != 0)
				continue;
			if (p > s && (p[-1] == '/' || name_byte((unsigned char)p[-1])))
				continue;
			const char *e = p + al;
			if (*e == '/')
				e++;
			if (*e == '\0' || (*e != '/' && !name_byte((unsigned char)*e)))
				return true;
		}
	}
	return false;
}

struct env_kv {
	char *name, *value;
};

static int env_cmp(const void *a, const void *b)
{
	const struct env_kv *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

int action_key_material(const action_key_in *in, uint8_t **ret, size_t *ret_len)
{
	struct wbuf w = { 0 };
	struct env_kv *env = NULL;
	char **args = NULL, *cwd = NULL;
	size_t nenv = 0;
	int r = -EINVAL;
	if (!in->argc || !in->cwd || in->cwd[0] != '/' || !root_valid(in->root))
		goto fail;
	r = -ENOMEM;
	if (!(cwd = action_relativize(in->cwd, in->root)) ||
	    !(args = calloc(in->argc, sizeof(*args))) ||
	    (in->nenv && !(env = calloc(in->nenv, sizeof(*env)))))
		goto fail;
	long depth = cwd_depth(cwd);
	bool pinned = depth < 0;
	for (size_t i = 0; i < in->argc; i++) {
		if (!(args[i] = action_relativize(in->argv[i], in->root)))
			goto fail;
		pinned = pinned || climbs_out(args[i], depth) || names_ancestor(in->argv[i], in->root);
	}
	for (; nenv < in->nenv; nenv++) {
		const char *eq = strchr(in->env[nenv], '=');
		if (!eq) {
			r = -EINVAL;
			goto fail;
		}
		env[nenv].name = strndup(in->env[nenv], (size_t)(eq - in->env[nenv]));
		env[nenv].value = action_relativize(eq + 1, in->root);
		if (!env[nenv].name || !env[nenv].value) {
			nenv++;
			goto fail;
		}
		pinned = pinned || climbs_out(env[nenv].value, depth) || names_ancestor(eq + 1, in->root);
	}
	qsort(env, nenv, sizeof(*env), env_cmp);

	w_u32(&w, (uint32_t)in->ntools);
	for (size_t i = 0; i < in->ntools; i++)
		w_bytes(&w, in->tools[i].bytes, HASHER_DIGEST_LEN);
	w_u8(&w, pinned);
	if (pinned)
		w_str(&w, in->root);
	w_str(&w, cwd);
	w_u32(&w, (uint32_t)in->argc);
	for (size_t i = 0; i < in->argc; i++)
		w_str(&w, args[i]);
	w_u32(&w, (uint32_t)nenv);
	for (size_t i = 0; i < nenv; i++) {
		w_str(&w, env[i].name);
		w_str(&w, env[i].value);
	}
	w_u32(&w, in->umask);
	w_u32(&w, in->flags);
	r = w_finish(&w, ret, ret_len);
	w.p = NULL;
fail:
	free(w.p);
	free(cwd);
	for (size_t i = 0; args && i < in->argc; i++)
		free(args[i]);
	free(args);
	for (size_t i = 0; i < nenv; i++) {
		free(env[i].name);
		free(env[i].value);
	}
	free(env);
	return r;
}

void action_key_final(const uint8_t *material, size_t len, uint32_t uid, hasher_digest *ret)
{
	static const char domain[] = "casfs-action-key";
	uint8_t buf[sizeof(domain) + 8 + HASHER_DIGEST_LEN];
	hasher_digest m;
	hasher_digest_buffer(material, len, &m);
	memcpy(buf, domain, sizeof(domain));
	uint32_t v[2] = { ACTION_KEY_VERSION, uid };
	for (int i = 0; i < 2; i++)
		for (int b = 0; b < 4; b++)
			buf[sizeof(domain) + 4 * i + b] = (uint8_t)(v[i] >> (8 * b));
	memcpy(buf + sizeof(domain) + 8, m.bytes, HASHER_DIGEST_LEN);
	hasher_digest_buffer(buf, sizeof(buf), ret);
}

/* What each is for: docs/ACTIONS.md, "The environment". */
const char *const action_env_default[] = {
	/* compiler drivers: header and library search, sub-programs */
	"CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH",
	"OBJCPLUS_INCLUDE_PATH", "LIBRARY_PATH", "COMPILER_PATH", "GCC_EXEC_PREFIX",
	"CCC_OVERRIDE_OPTIONS",
	/* outputs the driver writes or changes */
	"DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES", "GCC_COMPARE_DEBUG",
	"SOURCE_DATE_EPOCH", "ZERO_AR_DATE", "PWD",
	/* diagnostics: language, width, colours, links, extra output */
	"LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_COLLATE",
	"LC_NUMERIC", "LC_TIME", "TZ", "COLUMNS", "GCC_COLORS", "GCC_URLS", "TERM_URLS",
	"GCC_EXTRA_DIAGNOSTIC_OUTPUT",
	/* which programs and libraries run */
	"PATH", "LD_LIBRARY_PATH", "LD_PRELOAD",
	/* linker and binutils defaults */
	"LD_RUN_PATH", "GNUTARGET", "LDEMULATION",
	/* pkg-config in recipes */
	"PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR",
	NULL,
};

bool action_env_listed(const char *const *list, const char *name)
{
	size_t n = strcspn(name, "=");
	for (; *list; list++)
		if (strlen(*list) == n && memcmp(*list, name, n) == 0)
			return true;
	return false;
}

/* ---- manifests: the set of paths seen ------------------------------------------ */

/* Open addressing over indexes into m->in (inputs) or m->out (outputs),
 * keyed by (scope, path), and the capacity of that array.  When the array
 * changed behind the set's back (sorted, decoded, filled by hand: its
 * count differs), the set is rebuilt and the array's capacity taken to be
 * its length. */
struct pathset {
	uint32_t *slot; /* index + 1; 0 = empty */
	size_t cap, count;
	size_t arr_cap;
};

struct action_seen {
	struct pathset in, out;
};

static uint64_t path_hash(uint8_t scope, const char *path)
{
	uint64_t h = 0xcbf29ce484222325ull ^ scope;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* The (scope, path) of entry i of one of the manifest's arrays. */
typedef void (*entry_fn)(const action_manifest *m, size_t i, uint8_t *scope, const char **path);

static void in_entry(const action_manifest *m, size_t i, uint8_t *scope, const char **path)
{
	*scope = m->in[i].scope;
	*path = m->in[i].path;
}

static void out_entry(const action_manifest *m, size_t i, uint8_t *scope, const char **path)
{
	*scope = ACTION_SCOPE_ROOT;
	*path = m->out[i].path;
}

/* The slot holding (scope, path), or the empty slot where it goes. */
static uint32_t *set_find(const struct pathset *s, const action_manifest *m, entry_fn entry,
			  uint8_t scope, const char *path)
{
	size_t mask = s->cap - 1;
	for (size_t i = path_hash(scope, path) & mask;; i = (i + 1) & mask) {
		if (!s->slot[i])
			return &s->slot[i];
		uint8_t sc;
		const char *p;
		entry(m, s->slot[i] - 1, &sc, &p);
		if (sc == scope && strcmp(p, path) == 0)
			return &s->slot[i];
	}
}

/* Makes the set describe the n entries of the array with room for one
 * more.  0 or -ENOMEM. */
static int set_sync(struct pathset *s, const action_manifest *m, entry_fn entry, size_t n)
{
	bool stale = !s->slot || s->count != n;
	if (!stale && (n + 1) * 2 <= s->cap)
		return 0;
	size_t cap = 64;
	while ((n + 1) * 2 > cap)
		cap *= 2;
	uint32_t *slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	free(s->slot);
	s->slot = slot;
	s->cap = cap;
	s->count = n;
	if (stale)
		s->arr_cap = n;
	for (size_t i = 0; i < n; i++) {
		uint8_t sc;
		const char *p;
		entry(m, i, &sc, &p);
		uint32_t *at = set_find(s, m, entry, sc, p);
		if (!*at)
			*at = (uint32_t)i + 1;
	}
	return 0;
}

/* Room for entry n in *arr (elements of sz bytes).  0 or -ENOMEM. */
static int set_reserve(struct pathset *s, void **arr, size_t n, size_t sz)
{
	if (n < s->arr_cap)
		return 0;
	size_t cap = s->arr_cap < 8 ? 8 : s->arr_cap * 2;
	void *p = realloc(*arr, cap * sz);
	if (!p)
		return -ENOMEM;
	*arr = p;
	s->arr_cap = cap;
	return 0;
}

static void seen_free(action_manifest *m)
{
	if (m->seen) {
		free(m->seen->in.slot);
		free(m->seen->out.slot);
		free(m->seen);
		m->seen = NULL;
	}
}

/* ---- manifests ----------------------------------------------------------------- */

static void stream_clear(action_stream *s)
{
	free(s->data);
	*s = (action_stream){ 0 };
}

static void output_clear(action_output *o)
{
	free(o->path);
	free(o->target);
}

void action_manifest_clear(action_manifest *m)
{
	for (size_t i = 0; i < m->nin; i++)
		free(m->in[i].path);
	free(m->in);
	for (size_t i = 0; i < m->nout; i++)
		output_clear(&m->out[i]);
	free(m->out);
	stream_clear(&m->out_stdout);
	stream_clear(&m->out_stderr);
	free(m->root_at_record);
	seen_free(m);
	*m = (action_manifest){ 0 };
}

static bool input_has_digest(uint8_t kind)
{
	return kind == ACTION_IN_FILE || kind == ACTION_IN_DIR || kind == ACTION_IN_SYMLINK;
}

static bool type_valid(uint32_t type)
{
	return type && (type & ~(uint32_t)S_IFMT) == 0;
}

/* The rules of the grammar for one input (also what add_input takes). */
static bool input_valid(const action_input *in)
{
	if (in->kind < ACTION_IN_FILE || in->kind > ACTION_IN_EXISTS)
		return false;
	if (in->digest_kind > ACTION_DIGEST_AR || (in->kind != ACTION_IN_FILE && in->digest_kind))
		return false;
	if (in->kind == ACTION_IN_EXISTS ? !type_valid(in->type) : in->type != 0)
		return false;
	if (in->mode > 07777 || (in->mode && in->kind != ACTION_IN_FILE && in->kind != ACTION_IN_EXISTS))
		return false;
	if (in->size && !(in->kind == ACTION_IN_EXISTS && in->type == S_IFREG))
		return false;
	return action_path_check(in->scope, in->path) == 0;
}

/* In the encoded kind byte of a FILE output: action_output.root_text. */
#define OUT_ROOT_TEXT 0x80u

static bool output_valid(const action_output *o)
{
	if (o->kind < ACTION_OUT_FILE || o->kind > ACTION_OUT_REMOVED)
		return false;
	if (o->root_text && o->kind != ACTION_OUT_FILE)
		return false;
	if (!o->path || !o->path[0] || action_path_check(ACTION_SCOPE_ROOT, o->path) < 0)
		return false;
	bool has_mode = o->kind == ACTION_OUT_FILE || o->kind == ACTION_OUT_DIR;
	uint32_t bits = o->kind == ACTION_OUT_DIR ? 07777 | ACTION_MODE_SGID_CLEARED : 07777;
	if ((o->mode & ~bits) || (!has_mode && o->mode))
		return false;
	if (o->kind == ACTION_OUT_SYMLINK)
		return o->target && o->target[0] && strlen(o->target) < PATH_MAX;
	return o->target == NULL;
}

/* Finds (scope, path) among the inputs or the outputs: *ret_slot is its
 * slot in the set (non-zero: index + 1 of the entry), made ready for one
 * more entry.  0 or -ENOMEM. */
static int seen_find(action_manifest *m, bool outputs, uint8_t scope, const char *path,
		     struct pathset **ret_set, uint32_t **ret_slot)
{
	if (!m->seen && !(m->seen = calloc(1, sizeof(*m->seen))))
		return -ENOMEM;
	struct pathset *set = outputs ? &m->seen->out : &m->seen->in;
	entry_fn entry = outputs ? out_entry : in_entry;
	int r = set_sync(set, m, entry, outputs ? m->nout : m->nin);
	if (r < 0)
		return r;
	*ret_set = set;
	*ret_slot = set_find(set, m, entry, scope, path);
	return 0;
}

int action_manifest_add_input(action_manifest *m, const action_input *in)
{
	struct pathset *set;
	uint32_t *slot;
	if (!input_valid(in))
		return -EINVAL;
	int r = seen_find(m, false, in->scope, in->path, &set, &slot);
	if (r < 0)
		return r;
	if (*slot)
		return 0; /* the first observation stands */
	char *path = strdup(in->path);
	if (!path || set_reserve(set, (void **)&m->in, m->nin, sizeof(*m->in)) < 0) {
		free(path);
		return -ENOMEM;
	}
	m->in[m->nin] = *in;
	m->in[m->nin].path = path;
	*slot = (uint32_t)(set->count = ++m->nin);
	return 0;
}

int action_manifest_add_output(action_manifest *m, const action_output *out)
{
	struct pathset *set;
	uint32_t *slot;
	if (!output_valid(out))
		return -EINVAL;
	int r = seen_find(m, true, ACTION_SCOPE_ROOT, out->path, &set, &slot);
	if (r < 0)
		return r;
	action_output o = *out;
	o.path = strdup(out->path);
	o.target = out->target ? strdup(out->target) : NULL;
	if (!o.path || (out->target && !o.target) ||
	    (!*slot && set_reserve(set, (void **)&m->out, m->nout, sizeof(*m->out)) < 0)) {
		output_clear(&o);
		return -ENOMEM;
	}
	if (*slot) { /* the last state of a name stands */
		output_clear(&m->out[*slot - 1]);
		m->out[*slot - 1] = o;
		return 0;
	}
	m->out[m->nout] = o;
	*slot = (uint32_t)(set->count = ++m->nout);
	return 0;
}

static int num_cmp(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

static int digest_cmp(const hasher_digest *a, const hasher_digest *b)
{
	return memcmp(a->bytes, b->bytes, HASHER_DIGEST_LEN);
}

/* By scope and path; entries with equal names (only in manifests not
 * built by add_input) by every other field, so the order is total and the
 * encoding deterministic. */
static int input_cmp(const void *a, const void *b)
{
	const action_input *x = a, *y = b;
	int c = num_cmp(x->scope, y->scope);
	c = c ? c : strcmp(x->path, y->path);
	c = c ? c : num_cmp(x->kind, y->kind);
	c = c ? c : num_cmp(x->digest_kind, y->digest_kind);
	c = c ? c : num_cmp(x->type, y->type);
	c = c ? c : num_cmp(x->mode, y->mode);
	c = c ? c : num_cmp(x->size, y->size);
	return c ? c : digest_cmp(&x->digest, &y->digest);
}

static int output_cmp(const void *a, const void *b)
{
	const action_output *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	c = c ? c : num_cmp(x->kind, y->kind);
	c = c ? c : num_cmp(x->mode, y->mode);
	c = c ? c : num_cmp(x->size, y->size);
	c = c ? c : digest_cmp(&x->digest, &y->digest);
	return c ? c : strcmp(x->target ? x->target : "", y->target ? y->target : "");
}

void action_manifest_sort(action_manifest *m)
{
	if (m->nin)
		qsort(m->in, m->nin, sizeof(*m->in), input_cmp);
	if (m->nout)
		qsort(m->out, m->nout, sizeof(*m->out), output_cmp);
	seen_free(m); /* its indexes point at the old places */
}

/* ---- encoding --------------------------------------------------------------------- */

static bool stream_valid(const action_stream *s)
{
	if (s->inline_data != (s->size <= ACTION_INLINE_MAX))
		return false;
	if (!s->inline_data)
		return true;
	if (s->size && !s->data)
		return false;
	hasher_digest d;
	hasher_digest_buffer(s->data, (size_t)s->size, &d);
	return hasher_digest_equal(&d, &s->digest);
}

static void w_head(struct wbuf *w, const uint8_t magic[8], uint8_t version)
{
	w_bytes(w, magic, 8);
	w_u8(w, version);
	w_bytes(w, (uint8_t[3]){ 0 }, 3);
}

static void w_stream(struct wbuf *w, const action_stream *s)
{
	w_u64(w, s->size);
	w_u8(w, s->inline_data);
	w_bytes(w, s->digest.bytes, HASHER_DIGEST_LEN);
	if (s->inline_data)
		w_bytes(w, s->data, (size_t)s->size);
}

/* Appends the encoding of m; false when m breaks the grammar's rules. */
static bool w_manifest(struct wbuf *w, const action_manifest *m)
{
	if ((m->flags & ~ACTION_F_ALL) || m->exit_status < 0 || m->exit_status > 255 ||
	    !m->root_at_record || action_path_check(ACTION_SCOPE_ABS, m->root_at_record) < 0 ||
	    m->nin > UINT32_MAX || m->nout > UINT32_MAX ||
	    !stream_valid(&m->out_stdout) || !stream_valid(&m->out_stderr))
		return false;
	size_t start = w->n;
	w_head(w, MANIFEST_MAGIC, ACTION_MANIFEST_VERSION);
	w_u32(w, m->flags);
	w_u32(w, (uint32_t)m->exit_status);
	w_u64(w, m->run_ms);
	w_u64(w, (uint64_t)m->created_ns);
	w_str(w, m->root_at_record);
	w_u32(w, (uint32_t)m->nin);
	for (size_t i = 0; i < m->nin; i++) {
		const action_input *in = &m->in[i];
		if (!input_valid(in))
			return false;
		w_u8(w, in->kind);
		w_u8(w, in->scope);
		w_u8(w, in->digest_kind);
		w_str(w, in->path);
		if (in->kind == ACTION_IN_EXISTS) {
			w_u32(w, in->type);
			w_u64(w, in->size);
		}
		if (in->kind == ACTION_IN_EXISTS || in->kind == ACTION_IN_FILE)
			w_u32(w, in->mode);
		if (input_has_digest(in->kind))
			w_bytes(w, in->digest.bytes, HASHER_DIGEST_LEN);
	}
	w_u32(w, (uint32_t)m->nout);
	for (size_t i = 0; i < m->nout; i++) {
		const action_output *o = &m->out[i];
		if (!output_valid(o))
			return false;
		w_u8(w, (uint8_t)(o->kind | (o->root_text ? OUT_ROOT_TEXT : 0)));
		w_str(w, o->path);
		if (o->kind == ACTION_OUT_FILE || o->kind == ACTION_OUT_DIR)
			w_u32(w, o->mode);
		if (o->kind == ACTION_OUT_FILE) {
			w_u64(w, o->size);
			w_bytes(w, o->digest.bytes, HASHER_DIGEST_LEN);
		}
		if (o->kind == ACTION_OUT_SYMLINK)
			w_str(w, o->target);
	}
	w_stream(w, &m->out_stdout);
	w_stream(w, &m->out_stderr);
	if (!w->oom)
		w_u64(w, checksum(w->p + start, w->n - start));
	return true;
}

uint64_t action_manifest_run_ms(const action_manifest *m)
{
	return m->run_ms <= ACTION_RUN_MS_MAX ? m->run_ms : 0;
}

int action_manifest_encode(const action_manifest *m, uint8_t **ret, size_t *ret_len)
{
	struct wbuf w = { 0 };
	if (!w_manifest(&w, m)) {
		free(w.p);
		return -EINVAL;
	}
	return w_finish(&w, ret, ret_len);
}

/* Checks magic, trailing check and version of an encoded object; on
 * success r reads its body (after the head, before the check). */
static int open_sealed(const uint8_t *buf, size_t len, const uint8_t magic[8], uint8_t version,
		       struct rbuf *r)
{
	if (len < HEAD_LEN + CHECK_LEN || memcmp(buf, magic, 8) != 0)
		return -EBADMSG;
	if (get_le64(buf + len - CHECK_LEN) != checksum(buf, len - CHECK_LEN))
		return -EBADMSG;
	if (buf[8] > version)
		return -EPROTO;
	if (buf[8] != version)
		return -EBADMSG; /* an older layout: unreadable now, recorded again */
	if (buf[9] || buf[10] || buf[11])
		return -EBADMSG;
	*r = (struct rbuf){ .p = buf, .n = len - CHECK_LEN, .off = HEAD_LEN };
	return 0;
}

static bool r_stream(struct rbuf *r, action_stream *s, bool *oom)
{
	uint8_t inl;
	if (!r_u64(r, &s->size) || !r_u8(r, &inl) || inl > 1 ||
	    !r_bytes(r, s->digest.bytes, HASHER_DIGEST_LEN))
		return false;
	s->inline_data = inl;
	if (s->inline_data != (s->size <= ACTION_INLINE_MAX))
		return false;
	if (!s->inline_data || !s->size)
		return stream_valid(s);
	if (r->n - r->off < s->size)
		return false;
	if (!(s->data = malloc((size_t)s->size))) {
		*oom = true;
		return false;
	}
	r_bytes(r, s->data, (size_t)s->size);
	return stream_valid(s);
}

/* Smallest encodings, to bound counts by the bytes left before allocating. */
#define MIN_INPUT 7  /* kind, scope, digest-kind, empty path */
#define MIN_OUTPUT 6 /* kind, one-byte path (removed) */

static bool r_manifest(struct rbuf *r, action_manifest *m, bool *oom)
{
	uint32_t exit_status, nin, nout;
	uint64_t created;
	if (!r_u32(r, &m->flags) || (m->flags & ~ACTION_F_ALL) ||
	    !r_u32(r, &exit_status) || exit_status > 255 ||
	    !r_u64(r, &m->run_ms) || !r_u64(r, &created) ||
	    !r_str(r, &m->root_at_record, oom) ||
	    action_path_check(ACTION_SCOPE_ABS, m->root_at_record) < 0)
		return false;
	m->exit_status = (int32_t)exit_status;
	m->created_ns = (int64_t)created;
	if (!r_u32(r, &nin) || nin > (r->n - r->off) / MIN_INPUT)
		return false;
	if (nin && !(m->in = calloc(nin, sizeof(*m->in)))) {
		*oom = true;
		return false;
	}
	m->nin = nin; /* zeroed entries: clear frees what was read */
	for (uint32_t i = 0; i < nin; i++) {
		action_input *in = &m->in[i];
		if (!r_u8(r, &in->kind) || !r_u8(r, &in->scope) || !r_u8(r, &in->digest_kind) ||
		    !r_str(r, &in->path, oom))
			return false;
		if (in->kind == ACTION_IN_EXISTS && (!r_u32(r, &in->type) || !r_u64(r, &in->size)))
			return false;
		if ((in->kind == ACTION_IN_EXISTS || in->kind == ACTION_IN_FILE) && !r_u32(r, &in->mode))
			return false;
		if (input_has_digest(in->kind) && !r_bytes(r, in->digest.bytes, HASHER_DIGEST_LEN))
			return false;
		if (!input_valid(in))
			return false;
	}
	if (!r_u32(r, &nout) || nout > (r->n - r->off) / MIN_OUTPUT)
		return false;
	if (nout && !(m->out = calloc(nout, sizeof(*m->out)))) {
		*oom = true;
		return false;
	}
	m->nout = nout;
	for (uint32_t i = 0; i < nout; i++) {
		action_output *o = &m->out[i];
		bool ok = r_u8(r, &o->kind) && r_str(r, &o->path, oom);
		o->root_text = o->kind & OUT_ROOT_TEXT;
		o->kind &= (uint8_t)~OUT_ROOT_TEXT;
		if (ok && (o->kind == ACTION_OUT_FILE || o->kind == ACTION_OUT_DIR))
			ok = r_u32(r, &o->mode);
		if (ok && o->kind == ACTION_OUT_FILE)
			ok = r_u64(r, &o->size) && r_bytes(r, o->digest.bytes, HASHER_DIGEST_LEN);
		if (ok && o->kind == ACTION_OUT_SYMLINK)
			ok = r_str(r, &o->target, oom);
		if (!ok || !output_valid(o))
			return false;
	}
	return r_stream(r, &m->out_stdout, oom) && r_stream(r, &m->out_stderr, oom);
}

int action_manifest_decode(const uint8_t *buf, size_t len, action_manifest *ret)
{
	struct rbuf r;
	action_manifest m = { 0 };
	bool oom = false;
	int rc = open_sealed(buf, len, MANIFEST_MAGIC, ACTION_MANIFEST_VERSION, &r);
	if (rc < 0)
		return rc;
	if (!r_manifest(&r, &m, &oom) || r.off != r.n) {
		action_manifest_clear(&m);
		return oom ? -ENOMEM : -EBADMSG;
	}
	*ret = m;
	return 0;
}

/* ---- records ------------------------------------------------------------------------ */

int action_record_encode(const action_record *r, uint8_t **ret, size_t *ret_len)
{
	struct wbuf w = { 0 };
	if (r->n > ACTION_MAX_MANIFESTS)
		return -EINVAL;
	w_head(&w, RECORD_MAGIC, ACTION_MANIFEST_VERSION);
	w_u32(&w, (uint32_t)r->n);
	for (size_t i = 0; i < r->n; i++) {
		size_t at = w.n;
		w_u32(&w, 0); /* length, filled below */
		if (!w_manifest(&w, &r->m[i])) {
			free(w.p);
			return -EINVAL;
		}
		if (w.oom)
			break;
		if (w.n - at - 4 > UINT32_MAX) {
			free(w.p);
			return -EINVAL;
		}
		uint32_t n = (uint32_t)(w.n - at - 4);
		for (int b = 0; b < 4; b++)
			w.p[at + (size_t)b] = (uint8_t)(n >> (8 * b));
	}
	w_check(&w);
	return w_finish(&w, ret, ret_len);
}

int action_record_decode(const uint8_t *buf, size_t len, action_record *ret)
{
	struct rbuf r;
	action_record rec = { 0 };
	uint32_t n;
	int rc = open_sealed(buf, len, RECORD_MAGIC, ACTION_MANIFEST_VERSION, &r);
	if (rc < 0)
		return rc;
	if (!r_u32(&r, &n) || n > ACTION_MAX_MANIFESTS)
		return -EBADMSG;
	if (n && !(rec.m = calloc(n, sizeof(*rec.m))))
		return -ENOMEM;
	rc = 0;
	for (; rec.n < n; rec.n++) {
		uint32_t mlen;
		if (!r_u32(&r, &mlen) || r.n - r.off < mlen) {
			rc = -EBADMSG;
			break;
		}
		if ((rc = action_manifest_decode(r.p + r.off, mlen, &rec.m[rec.n])) < 0)
			break;
		r.off += mlen;
	}
	if (rc == 0 && r.off != r.n)
		rc = -EBADMSG;
	if (rc < 0) {
		action_record_clear(&rec);
		return rc;
	}
	*ret = rec;
	return 0;
}

void action_record_clear(action_record *r)
{
	for (size_t i = 0; i < r->n; i++)
		action_manifest_clear(&r->m[i]);
	free(r->m);
	*r = (action_record){ 0 };
}

static bool inputs_same(const action_manifest *a, const action_manifest *b)
{
	if (a->nin != b->nin)
		return false;
	for (size_t i = 0; i < a->nin; i++)
		if (a->in[i].scope != b->in[i].scope || strcmp(a->in[i].path, b->in[i].path) != 0 ||
		    !action_input_equal(&a->in[i], &b->in[i]))
			return false;
	return true;
}

int action_record_push(action_record *r, action_manifest *m)
{
	/* room for one more first, so that nothing changes on ENOMEM */
	action_manifest *arr = realloc(r->m, (r->n + 1) * sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	r->m = arr;
	action_manifest_sort(m);
	for (size_t i = 0; i < r->n; i++)
		if (inputs_same(&r->m[i], m)) {
			action_record_remove(r, i);
			break;
		}
	memmove(r->m + 1, r->m, r->n * sizeof(*r->m));
	r->m[0] = *m;
	r->n++;
	*m = (action_manifest){ 0 };
	while (r->n > ACTION_MAX_MANIFESTS)
		action_manifest_clear(&r->m[--r->n]);
	return 0;
}

void action_record_remove(action_record *r, size_t i)
{
	if (i >= r->n)
		return;
	action_manifest_clear(&r->m[i]);
	memmove(r->m + i, r->m + i + 1, (r->n - i - 1) * sizeof(*r->m));
	r->n--;
}

/* ---- listings ------------------------------------------------------------------------ */

static int dirent_cmp(const void *a, const void *b)
{
	const action_dirent *const *x = a, *const *y = b;
	int c = strcmp((*x)->name, (*y)->name);
	return c ? c : (*x)->type - (*y)->type;
}

int action_listing_digest(const action_dirent *e, size_t n, hasher_digest *ret)
{
	static const char domain[] = "casfs-listing-v2";
	const action_dirent **v = malloc((n ? n : 1) * sizeof(*v));
	hasher_stream *hs = hasher_stream_new();
	size_t k = 0;
	if (!v || !hs) {
		free(v);
		hasher_stream_free(hs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].name, ".") && strcmp(e[i].name, "..") && strcmp(e[i].name, ".casfs"))
			v[k++] = &e[i];
	qsort(v, k, sizeof(*v), dirent_cmp);
	hasher_stream_update(hs, domain, sizeof(domain));
	for (size_t i = 0; i < k; i++) {
		/* type, mode, size, length, name: no two listings hash the
		 * same bytes */
		uint32_t len = (uint32_t)strlen(v[i]->name);
		uint8_t head[15] = { v[i]->type, (uint8_t)v[i]->mode, (uint8_t)(v[i]->mode >> 8) };
		for (int b = 0; b < 8; b++)
			head[3 + b] = (uint8_t)(v[i]->size >> (8 * b));
		for (int b = 0; b < 4; b++)
			head[11 + b] = (uint8_t)(len >> (8 * b));
		hasher_stream_update(hs, head, sizeof(head));
		hasher_stream_update(hs, v[i]->name, len);
	}
	hasher_stream_final(hs, ret);
	hasher_stream_free(hs);
	free(v);
	return 0;
}

/* ---- matching ------------------------------------------------------------------------ */

bool action_input_equal(const action_input *want, const action_input *have)
{
	if (want->kind != have->kind)
		return false;
	switch (want->kind) {
	case ACTION_IN_FILE:
		return want->digest_kind == have->digest_kind && hasher_digest_equal(&want->digest, &have->digest) &&
		       want->mode == have->mode;
	case ACTION_IN_DIR:
	case ACTION_IN_SYMLINK:
		return hasher_digest_equal(&want->digest, &have->digest);
	case ACTION_IN_EXISTS:
		return (want->type & S_IFMT) == (have->type & S_IFMT) && want->mode == have->mode &&
		       want->size == have->size;
	case ACTION_IN_ABSENT:
		return true;
	default:
		return false;
	}
}

ssize_t action_manifest_match(const action_manifest *m, action_probe_fn probe, void *arg)
{
	for (size_t i = 0; i < m->nin; i++) {
		action_input have = { 0 };
		if (probe(arg, &m->in[i], &have) < 0 || !action_input_equal(&m->in[i], &have))
			return (ssize_t)i;
	}
	return -1;
}

/* ---- compilers ---------------------------------------------------------------------- */

/* True when the name (a basename) is a gcc or clang driver. */
static bool cc_name(const char *name, bool *cxx)
{
	static const char *const drivers[] = { "gcc", "g++", "cc", "c++", "clang", "clang++" };
	size_t n = strlen(name);
	/* strip a version suffix: -12, -12.2, 12 glued on (no: "cc1") */
	size_t end = n;
	while (end > 0 && ((name[end - 1] >= '0' && name[end - 1] <= '9') || name[end - 1] == '.'))
		end--;
	if (end < n && end > 0 && name[end - 1] == '-')
		end--;
	else
		end = n;
	for (size_t i = 0; i < sizeof(drivers) / sizeof(*drivers); i++) {
		size_t dl = strlen(drivers[i]);
		if (end < dl || memcmp(name + end - dl, drivers[i], dl) != 0)
			continue;
		/* the whole name, or a <triplet>- prefix */
		if (end == dl || name[end - dl - 1] == '-') {
			*cxx = drivers[i][dl - 1] == '+';
			return true;
		}
	}
	return false;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && memcmp(s + n - k, suffix, k) == 0;
}

static bool cxx_source(const char *a)
{
	static const char *const ext[] = { ".cc", ".cp", ".cxx", ".cpp", ".CPP", ".c++", ".C", ".ii" };
	for (size_t i = 0; i < sizeof(ext) / sizeof(*ext); i++)
		if (has_suffix(a, ext[i]))
			return true;
	return false;
}

static bool source_file(const char *a)
{
	static const char *const ext[] = { ".c", ".i", ".s", ".S", ".sx", ".m", ".mi", ".mm", ".M", ".mii" };
	for (size_t i = 0; i < sizeof(ext) / sizeof(*ext); i++)
		if (has_suffix(a, ext[i]))
			return true;
	return cxx_source(a);
}

/* A header by its suffix: gcc makes a precompiled header of it. */
static bool header_file(const char *a, bool *cxx)
{
	static const char *const ext[] = { ".h", ".hh", ".H", ".hp", ".hxx", ".hpp", ".HPP", ".h++", ".tcc" };
	for (size_t i = 0; i < sizeof(ext) / sizeof(*ext); i++)
		if (has_suffix(a, ext[i])) {
			*cxx = i > 0;
			return true;
		}
	return false;
}

/* Options whose value is the next argument when not joined. */
static bool takes_value(const char *a)
{
	static const char *const opts[] = {
		"-o", "-I", "-isystem", "-iquote", "-idirafter", "-include", "-imacros", "-iprefix",
		"-iwithprefix", "-iwithprefixbefore", "-isysroot", "-imultilib", "-MF", "-MT", "-MQ",
		"-x", "-D", "-U", "-L", "-l", "-B", "-Xlinker", "-Xassembler", "-Xpreprocessor",
		"-Xclang", "-aux-info", "--param", "-A", "-T", "-u", "-e", "-z", "-target",
		"--sysroot", "-specs", "-dumpdir", "-dumpbase", "-dumpbase-ext",
	};
	for (size_t i = 0; i < sizeof(opts) / sizeof(*opts); i++)
		if (strcmp(a, opts[i]) == 0)
			return true;
	return false;
}

/* -g options that do not by themselves turn debug info on. */
static bool debug_modifier(const char *a)
{
	static const char *const mods[] = {
		"-gz", "-gno-", "-gcolumn-info", "-grecord-gcc-switches", "-gstrict-dwarf",
		"-gdescribe-dies", "-gas-loc", "-ginline-points", "-ginternal-reset-location-views",
		"-gstatement-frontiers", "-gvariable-location-views", "-gpubnames", "-ggnu-pubnames",
	};
	for (size_t i = 0; i < sizeof(mods) / sizeof(*mods); i++)
		if (strncmp(a, mods[i], strlen(mods[i])) == 0)
			return true;
	return false;
}

void action_cc_analyze(const char *const *argv, size_t argc, action_cc_info *ret)
{
	action_cc_info info = { 0 };
	bool compile = false, preprocess = false, rsp = false, lang_set = false, driver_cxx = false;
	bool lang_header = false, links = false;
	size_t sources = 0, headers = 0, others = 0;
	if (argc) {
		const char *base = strrchr(argv[0], '/');
		info.is_cc = cc_name(base ? base + 1 : argv[0], &driver_cxx);
	}
	for (size_t i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] == '@') {
			rsp = true;
		} else if (a[0] != '-' || !a[1]) {
			bool hcxx = false, hdr = lang_set ? lang_header : header_file(a, &hcxx);
			if (lang_set || source_file(a) || strcmp(a, "-") == 0 || hdr)
				sources++;
			else
				others++; /* an object or a library: linked */
			if (hdr) {
				headers++;
				info.is_cxx = info.is_cxx || hcxx;
			}
			if (cxx_source(a))
				info.is_cxx = true;
		} else if (!strcmp(a, "-c") || !strcmp(a, "-S")) {
			compile = true;
		} else if (!strcmp(a, "-E") || !strcmp(a, "-M") || !strcmp(a, "-MM")) {
			preprocess = true;
			info.has_depfile = info.has_depfile || a[1] == 'M';
		} else if (!strcmp(a, "-MD") || !strcmp(a, "-MMD") || !strncmp(a, "-MF", 3) ||
			   !strncmp(a, "-MT", 3) || !strncmp(a, "-MQ", 3) || !strncmp(a, "-Wp,-MD,", 8) ||
			   !strncmp(a, "-Wp,-MMD,", 9)) {
			info.has_depfile = true;
			if (takes_value(a))
				i++;
		} else if (!strncmp(a, "-g", 2)) {
			if (!strcmp(a, "-gz") || !strncmp(a, "-gz=", 4))
				info.compresses_debug = strcmp(a, "-gz=none") != 0;
			if (!strcmp(a, "-g0"))
				info.has_debug = false;
			else if (!debug_modifier(a))
				info.has_debug = true;
		} else if (!strncmp(a, "-fmessage-length=", 17)) {
			info.wraps_diagnostics = strtol(a + 17, NULL, 10) != 0;
		} else if (!strncmp(a, "-ffile-prefix-map=", 18) || !strncmp(a, "-fdebug-prefix-map=", 19)) {
			info.has_prefix_map = true;
		} else if (!strncmp(a, "-Wa,", 4) || !strncmp(a, "-Wl,", 4)) {
			const char *c = strstr(a, "-compress-debug-sections");
			if (c)
				info.compresses_debug = strncmp(c + strlen("-compress-debug-sections"), "=none", 5) != 0;
		} else if (!strncmp(a, "-x", 2)) {
			const char *lang = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
			lang_set = strcmp(lang, "none") != 0;
			lang_header = lang_set && strlen(lang) > 7 && !strcmp(lang + strlen(lang) - 7, "-header");
			if (!strncmp(lang, "c++", 3) || !strncmp(lang, "objective-c++", 13))
				info.is_cxx = true;
		} else if (takes_value(a)) {
			links = links || !strcmp(a, "-l") || !strcmp(a, "-Xlinker");
			i++;
		}
		if (a[0] == '-' && (!strncmp(a, "-l", 2) || !strncmp(a, "-Wl,", 4)))
			links = true; /* linker inputs: the driver links */
	}
	info.is_cxx = info.is_cxx || (info.is_cc && driver_cxx);
	/* nothing but headers (by suffix or -x *-header) and nothing for the
	 * linker: gcc makes precompiled headers and links nothing, as -c */
	if (headers && headers == sources && !others && !links)
		compile = true;
	info.compile_only = info.is_cc && compile && !preprocess && sources > 0 && !rsp;
	info.sources = (unsigned)sources;
	if (rsp)
		info.has_debug = info.compresses_debug = true; /* unknown: assume the worst */
	*ret = info;
}

/* ---- dependency files ----------------------------------------------------------------- */

/* A set of strings (the prerequisites reported so far). */
struct strset {
	char **slot;
	size_t cap, count;
};

/* True when s was added now, false when it was there; -ENOMEM as *err. */
static bool strset_add(struct strset *set, const char *s, int *err)
{
	if ((set->count + 1) * 2 > set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;
		char **slot = calloc(cap, sizeof(*slot));
		if (!slot) {
			*err = -ENOMEM;
			return false;
		}
		for (size_t i = 0; i < set->cap; i++) {
			if (!set->slot[i])
				continue;
			size_t j = path_hash(0, set->slot[i]) & (cap - 1);
			while (slot[j])
				j = (j + 1) & (cap - 1);
			slot[j] = set->slot[i];
		}
		free(set->slot);
		set->slot = slot;
		set->cap = cap;
	}
	size_t j = path_hash(0, s) & (set->cap - 1);
	for (; set->slot[j]; j = (j + 1) & (set->cap - 1))
		if (strcmp(set->slot[j], s) == 0)
			return false;
	if (!(set->slot[j] = strdup(s))) {
		*err = -ENOMEM;
		return false;
	}
	set->count++;
	return true;
}

static void strset_free(struct strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slot[i]);
	free(set->slot);
}

/* Reads one word at *pos into w (NUL-terminated): 1 a word, 0 none before
 * the end of the logical line (*eol set when a newline ended it), -EBADMSG.
 * Sets *colon when the word was ended by an unescaped ':'. */
static int depfile_word(const char *buf, size_t len, size_t *pos, struct wbuf *w, bool *eol,
			bool *colon, bool in_targets)
{
	size_t i = *pos;
	*eol = *colon = false;
	w->n = 0;
	/* skip blanks and continuations */
	for (;;) {
		if (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r')) {
			i++;
		} else if (i + 1 < len && buf[i] == '\\' && buf[i + 1] == '\n') {
			i += 2;
		} else if (i + 2 < len && buf[i] == '\\' && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
			i += 3;
		} else if (i < len && buf[i] == '#') { /* a comment to the end of the line */
			while (i < len && buf[i] != '\n')
				i++;
		} else {
			break;
		}
	}
	if (i >= len || buf[i] == '\n') {
		*eol = i < len;
		*pos = i < len ? i + 1 : i;
		return 0;
	}
	while (i < len) {
		char c = buf[i];
		if (c == '\0')
			return -EBADMSG;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '#')
			break; /* '#' starts a comment */
		if (c == ':' && in_targets) {
			*colon = true;
			i++;
			break;
		}
		if (c == '$') {
			if (i + 1 >= len || buf[i + 1] != '$')
				return -EBADMSG;
			w_u8(w, '$');
			i += 2;
			continue;
		}
		if (c == '\\') {
			size_t k = i;
			while (k < len && buf[k] == '\\')
				k++;
			size_t nb = k - i;
			char next = k < len ? buf[k] : '\0';
			if (next == '\n' || (next == '\r' && k + 1 < len && buf[k + 1] == '\n')) {
				/* backslashes, then a continuation: the last one continues */
				for (size_t b = 0; b + 1 < nb; b++)
					w_u8(w, '\\');
				i = k - 1;
				break;
			}
			if (next == ' ' || next == '#') {
				/* 2N+1 backslashes: N and the escaped character; 2N: N,
				 * and the space ends the word (a '#' starts a comment) */
				for (size_t b = 0; b < nb / 2; b++)
					w_u8(w, '\\');
				if (nb % 2) {
					w_u8(w, (uint8_t)next);
					i = k + 1;
					continue;
				}
				i = k;
				if (next == '#') {
					while (i < len && buf[i] != '\n')
						i++;
				}
				break;
			}
			for (size_t b = 0; b < nb; b++)
				w_u8(w, '\\');
			i = k;
			continue;
		}
		w_u8(w, (uint8_t)c);
		i++;
	}
	w_u8(w, 0);
	*pos = i;
	return w->oom ? -ENOMEM : 1;
}

int action_depfile_parse(const char *buf, size_t len, int (*fn)(void *arg, const char *path), void *arg)
{
	struct wbuf w = { 0 };
	struct strset seen = { 0 };
	size_t pos = 0;
	bool in_targets = true, any_target = false;
	int r = 0;
	while (pos < len || !in_targets || any_target) {
		bool eol, colon;
		int got = depfile_word(buf, len, &pos, &w, &eol, &colon, in_targets);
		if (got < 0) {
			r = got;
			break;
		}
		if (got == 0) {
			/* end of a logical line: a rule needs its ':' */
			if (in_targets && any_target) {
				r = -EBADMSG;
				break;
			}
			in_targets = true;
			any_target = false;
			if (!eol && pos >= len)
				break;
			continue;
		}
		if (in_targets) {
			if (w.n > 1)
				any_target = true;
			if (colon) {
				if (!any_target) {
					r = -EBADMSG; /* ": x" has no target */
					break;
				}
				in_targets = false;
				any_target = false;
			}
			continue;
		}
		if (strcmp((char *)w.p, "|") == 0) /* order-only separator */
			continue;
		if (strset_add(&seen, (char *)w.p, &r)) {
			if ((r = fn(arg, (char *)w.p)) != 0)
				break;
		} else if (r < 0) {
			break;
		}
	}
	free(w.p);
	strset_free(&seen);
	return r;
}
