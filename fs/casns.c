/* casns.c — casfs's own namespace, reachable from every directory:
 *
 *   <dir>/.casfs                    dr-xr-xr-x  answers lookup, never listed
 *   <dir>/.casfs/cas                d--x------  (owner) cannot be listed
 *   <dir>/.casfs/ctl                -r--r--r--  the control file of `casfs
 *                                               exec` (actions.h)
 *   <dir>/.casfs/cas/<hex>[.<ext>]  -r--r--r--  the content whose XXH3-128
 *                                               is <hex> (32 lower-case
 *                                               hex digits)
 *
 * A content comes from a live file of this mount whose digest is known and
 * that no one is writing (the live index below, checked again at open and
 * after every read), else from a blob of the store, verified before it is
 * served (blob.h).  Such a file never changes, so the kernel may cache it
 * for good.  Only the mount's owner (and root) may read through cas/: with
 * allow_other, a content-addressed read must not bypass the permissions of
 * the file the content came from.
 *
 * Every virtual node has its own id: FS_VIRTUAL_BIT | a serial number,
 * looked up in a table (never a pointer: an id of a forgotten node finds
 * nothing).  .casfs and cas get one node per parent directory, because the
 * kernel allows a directory only one parent; a content file is one node
 * per digest, like a file with many hard links.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actions.h"
#include "blob.h"
#include "casns.h"
#include "state.h"

enum vkind { VN_CASFS = 1, VN_CAS, VN_FILE, VN_CTL };

struct vnode {
	enum vkind kind;
	uint64_t key;          /* VN_CASFS, VN_CTL: the real directory's id;
				  VN_CAS: the .casfs node id */
	hasher_digest digest;  /* VN_FILE */
	uint64_t size;         /* VN_FILE */
	uint64_t nlookup;
	uint64_t serial;       /* id, st_ino (dirs) and generation */
	struct vnode *next;    /* in nodes[] (by kind, key, digest) */
	struct vnode *id_next; /* in ids[] (by serial) */
};

/* One live file (dev, ino) whose known digest is d: in live[] by digest
 * (every file with that content, the latest first) and in ilive[] by
 * file (a file has one digest at a time). */
struct live {
	hasher_digest d;
	uint64_t dev, ino;
	struct live *next, **pprev; /* in live[] */
	struct live *inext;         /* in ilive[] */
};

#define NBUCKETS 1024

struct casns {
	pthread_mutex_t lock; /* a leaf lock: nothing else is taken under it */
	struct vnode *nodes[NBUCKETS];
	struct vnode *ids[NBUCKETS];
	uint64_t serial;
	struct live **live, **ilive;
	size_t live_n, live_cap;
};

/* One open content file. */
struct vhandle {
	int fd;
	uint64_t off, size;
	cache_reader rd;       /* from a blob (rd.fd == fd) */
	ino_node *live;        /* from a live file (referenced) */
	uint64_t live_version;
	struct ctlfile *ctl;   /* .casfs/ctl */
};

static fuse_ino_t vid_of(const struct vnode *v)
{
	return FS_VIRTUAL_BIT | v->serial;
}

/* The node with id ino (lock held), or NULL. */
static struct vnode *vnode_find_id(struct casns *ns, fuse_ino_t ino)
{
	uint64_t serial = ino & ~FS_VIRTUAL_BIT;
	for (struct vnode *v = ns->ids[serial % NBUCKETS]; v; v = v->id_next)
		if (v->serial == serial)
			return v;
	return NULL;
}

/* The node with id ino, which the kernel holds a reference to (so it stays
 * while the request runs); NULL when no node has that id. */
static struct vnode *vnode_of(fuse_ino_t ino)
{
	struct casns *ns = FS->ns;
	pthread_mutex_lock(&ns->lock);
	struct vnode *v = vnode_find_id(ns, ino);
	pthread_mutex_unlock(&ns->lock);
	return v;
}

/* vnode_of, replying ESTALE when there is none. */
static struct vnode *req_vnode(struct req *q, fuse_ino_t ino)
{
	struct vnode *v = vnode_of(ino);
	if (!v) {
		COUNT(stale_ids);
		req_err(q, ESTALE);
	}
	return v;
}

static size_t bucket(enum vkind kind, uint64_t key, const hasher_digest *d)
{
	uint64_t h = key * 0x9e3779b97f4a7c15ull + (uint64_t)kind;
	if (d)
		for (int i = 0; i < 8; i++)
			h = h * 31 + d->bytes[i];
	return (size_t)(h % NBUCKETS);
}

static size_t live_bucket(const hasher_digest *d, size_t cap)
{
	uint64_t h;
	memcpy(&h, d->bytes + 8, sizeof(h));
	return (size_t)(h % cap);
}

static size_t ilive_bucket(uint64_t dev, uint64_t ino, size_t cap)
{
	uint64_t h = (ino ^ (dev * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;
	return (size_t)((h ^ (h >> 29)) % cap);
}

int casns_new(struct casns **ret)
{
	struct casns *ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->live_cap = 4096;
	ns->live = calloc(ns->live_cap, sizeof(*ns->live));
	ns->ilive = calloc(ns->live_cap, sizeof(*ns->ilive));
	if (!ns->live || !ns->ilive) {
		free(ns->live);
		free(ns->ilive);
		free(ns);
		return -ENOMEM;
	}
	pthread_mutex_init(&ns->lock, NULL);
	*ret = ns;
	return 0;
}

void casns_free(struct casns *ns)
{
	if (!ns)
		return;
	for (size_t i = 0; i < NBUCKETS; i++)
		for (struct vnode *v = ns->nodes[i], *nx; v; v = nx) {
			nx = v->next;
			free(v);
		}
	for (size_t i = 0; i < ns->live_cap; i++)
		for (struct live *l = ns->live[i], *nx; l; l = nx) {
			nx = l->next;
			free(l);
		}
	free(ns->live);
	free(ns->ilive);
	pthread_mutex_destroy(&ns->lock);
	free(ns);
}

/* Finds or creates a node and adds one kernel reference. */
static struct vnode *vnode_get(enum vkind kind, uint64_t key, const hasher_digest *d, uint64_t size)
{
	struct casns *ns = FS->ns;
	size_t b = bucket(kind, key, d);
	pthread_mutex_lock(&ns->lock);
	struct vnode *v = ns->nodes[b];
	while (v && !(v->kind == kind && v->key == key &&
		      (!d || hasher_digest_equal(&v->digest, d))))
		v = v->next;
	if (!v && (v = calloc(1, sizeof(*v)))) {
		v->kind = kind;
		v->key = key;
		if (d)
			v->digest = *d;
		v->size = size;
		v->serial = ++ns->serial;
		v->next = ns->nodes[b];
		ns->nodes[b] = v;
		v->id_next = ns->ids[v->serial % NBUCKETS];
		ns->ids[v->serial % NBUCKETS] = v;
	}
	if (v)
		v->nlookup++;
	pthread_mutex_unlock(&ns->lock);
	return v;
}

void casns_forget(fuse_ino_t ino, uint64_t nlookup)
{
	struct casns *ns = FS->ns;
	pthread_mutex_lock(&ns->lock);
	struct vnode *v = vnode_find_id(ns, ino);
	if (!v) {
		pthread_mutex_unlock(&ns->lock);
		COUNT(stale_ids);
		return;
	}
	if (v->nlookup < nlookup)
		abort(); /* a kernel/daemon protocol bug, as in ino_table_forget */
	v->nlookup -= nlookup;
	if (v->nlookup == 0) {
		struct vnode **pp = &ns->nodes[bucket(v->kind, v->key, v->kind == VN_FILE ? &v->digest : NULL)];
		while (*pp && *pp != v)
			pp = &(*pp)->next;
		if (*pp)
			*pp = v->next;
		pp = &ns->ids[v->serial % NBUCKETS];
		while (*pp && *pp != v)
			pp = &(*pp)->id_next;
		if (*pp)
			*pp = v->id_next;
		free(v);
	}
	pthread_mutex_unlock(&ns->lock);
}

/* ---- the live-file index ------------------------------------------------- */

/* Links l at the head of its digest's chain.  Lock held. */
static void live_link(struct casns *ns, struct live *l)
{
	struct live **head = &ns->live[live_bucket(&l->d, ns->live_cap)];
	l->next = *head;
	if (l->next)
		l->next->pprev = &l->next;
	l->pprev = head;
	*head = l;
}

static void live_unlink(struct live *l)
{
	*l->pprev = l->next;
	if (l->next)
		l->next->pprev = l->pprev;
}

static void live_grow(struct casns *ns)
{
	size_t cap = ns->live_cap * 2;
	struct live **nl = calloc(cap, sizeof(*nl)), **ni = calloc(cap, sizeof(*ni));
	if (!nl || !ni) {
		free(nl);
		free(ni);
		return;
	}
	/* (a chain's order, the latest file first, is a preference only:
	 * moving reverses it) */
	for (size_t i = 0; i < ns->live_cap; i++)
		for (struct live *l = ns->live[i], *nx; l; l = nx) {
			nx = l->next;
			size_t b = live_bucket(&l->d, cap);
			l->next = nl[b];
			if (l->next)
				l->next->pprev = &l->next;
			l->pprev = &nl[b];
			nl[b] = l;
		}
	for (size_t i = 0; i < ns->live_cap; i++)
		for (struct live *l = ns->ilive[i], *nx; l; l = nx) {
			nx = l->inext;
			size_t b = ilive_bucket(l->dev, l->ino, cap);
			l->inext = ni[b];
			ni[b] = l;
		}
	free(ns->live);
	free(ns->ilive);
	ns->live = nl;
	ns->ilive = ni;
	ns->live_cap = cap;
}

/* The entry of file (dev, ino) and its place in ilive[], or NULL.  Lock
 * held. */
static struct live *live_of_file(struct casns *ns, uint64_t dev, uint64_t ino, struct live ***ret_pp)
{
	struct live **pp = &ns->ilive[ilive_bucket(dev, ino, ns->live_cap)];
	while (*pp && !((*pp)->dev == dev && (*pp)->ino == ino))
		pp = &(*pp)->inext;
	if (ret_pp)
		*ret_pp = pp;
	return *pp;
}

/* File (dev, ino) has content d: it becomes the first file to serve d
 * (beside the other files with the same content, which stay). */
static void live_add(const hasher_digest *d, uint64_t dev, uint64_t ino)
{
	struct casns *ns = FS->ns;
	if (!ns)
		return;
	pthread_mutex_lock(&ns->lock);
	struct live *l = live_of_file(ns, dev, ino, NULL);
	if (l) {
		live_unlink(l); /* to the head of its (maybe new) digest */
		l->d = *d;
		live_link(ns, l);
	} else if ((l = malloc(sizeof(*l)))) {
		if (ns->live_n >= ns->live_cap)
			live_grow(ns);
		*l = (struct live){ .d = *d, .dev = dev, .ino = ino };
		live_link(ns, l);
		size_t b = ilive_bucket(dev, ino, ns->live_cap);
		l->inext = ns->ilive[b];
		ns->ilive[b] = l;
		ns->live_n++;
	}
	pthread_mutex_unlock(&ns->lock);
}

static void live_del(const hasher_digest *d, uint64_t dev, uint64_t ino)
{
	struct casns *ns = FS->ns;
	if (!ns)
		return;
	pthread_mutex_lock(&ns->lock);
	struct live **ipp;
	struct live *l = live_of_file(ns, dev, ino, &ipp);
	if (l && hasher_digest_equal(&l->d, d)) {
		*ipp = l->inext;
		live_unlink(l);
		free(l);
		ns->live_n--;
	}
	pthread_mutex_unlock(&ns->lock);
}

static void on_known(void *arg, ino_node *n, const cache_file_rec *rec, bool written)
{
	(void)arg;
	(void)written;
	live_add(&rec->digest, n->dev, n->ino);
}

static void on_gone(void *arg, uint64_t dev, uint64_t ino, const hasher_digest *d)
{
	(void)arg;
	live_del(d, dev, ino);
}

const digests_subscriber casns_live_subscriber = { .known = on_known, .gone = on_gone };

/* A referenced node of a live file with content d that no one is writing,
 * with its record and digest version; NULL when there is none. */
static ino_node *live_find(const hasher_digest *d, cache_file_rec *rec, uint64_t *version)
{
	struct casns *ns = FS->ns;
	/* the first few files with that content, the latest first: one
	 * that is being written now is passed over for the next */
	enum { CANDIDATES = 8 };
	uint64_t dev[CANDIDATES], ino[CANDIDATES];
	int found = 0;
	pthread_mutex_lock(&ns->lock);
	for (struct live *l = ns->live[live_bucket(d, ns->live_cap)]; l && found < CANDIDATES; l = l->next)
		if (hasher_digest_equal(&l->d, d)) {
			dev[found] = l->dev;
			ino[found] = l->ino;
			found++;
		}
	pthread_mutex_unlock(&ns->lock);
	for (int i = 0; i < found; i++) {
		ino_node *n = ino_table_find_ref(FS->tbl, (dev_t)dev[i], (ino_t)ino[i]);
		if (!n)
			continue;
		if (n->type == S_IFREG && digests_peek(FS->dg, n, rec, version) == 0 &&
		    hasher_digest_equal(&rec->digest, d))
			return n;
		ino_node_unref(FS->tbl, n);
	}
	return NULL;
}

/* ---- attributes and entries ---------------------------------------------- */

static void fill_attr(const struct vnode *v, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_uid = FS->owner_uid;
	st->st_gid = FS->owner_gid;
	st->st_blksize = 4096;
	/* content never changes: one fixed, early time (as Nix's store does) */
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = 1;
	switch (v->kind) {
	case VN_CASFS:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 3;
		st->st_ino = (1ull << 62) | v->serial;
		break;
	case VN_CAS:
		st->st_mode = S_IFDIR | 0100;
		st->st_nlink = 2;
		st->st_ino = (1ull << 62) | v->serial;
		break;
	case VN_CTL:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_ino = (1ull << 62) | v->serial;
		break;
	case VN_FILE: {
		uint64_t low;
		memcpy(&low, v->digest.bytes + 8, sizeof(low));
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_ino = (1ull << 63) | (low >> 1);
		st->st_size = (off_t)v->size;
		st->st_blocks = (blkcnt_t)((v->size + 511) / 512);
		break;
	}
	}
}

static void reply_vnode(struct req *q, struct vnode *v)
{
	struct fuse_entry_param e;
	if (!v) {
		req_err(q, ENOMEM);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = vid_of(v);
	e.generation = v->serial;
	fill_attr(v, &e.attr);
	e.attr_timeout = FS->o.timeout;
	e.entry_timeout = FS->o.timeout;
	if (req_entry(q, &e) == -ENOENT)
		casns_forget(e.ino, 1); /* interrupted: the kernel took no reference */
}

void casns_lookup_reserved(struct req *q, fuse_ino_t parent)
{
	reply_vnode(q, vnode_get(VN_CASFS, parent, NULL, 0));
}

/* Only the mount's owner and root read through cas/. */
static bool may_read_cas(struct req *q)
{
	return q->uid == FS->owner_uid || q->uid == 0;
}

/* "<32 lower-case hex>" or "<32 lower-case hex>.<ext>". */
static int parse_name(const char *name, hasher_digest *d)
{
	if (!hasher_hex_is_lower(name, HASHER_HEX_LEN))
		return -ENOENT;
	if (name[HASHER_HEX_LEN] != '\0' && !(name[HASHER_HEX_LEN] == '.' && name[HASHER_HEX_LEN + 1]))
		return -ENOENT;
	return hasher_digest_from_hex(name, HASHER_HEX_LEN, d) < 0 ? -ENOENT : 0;
}

/* Size of the content d: from a live file or a blob; -ENOENT. */
static int content_size(const hasher_digest *d, uint64_t *size)
{
	cache_file_rec rec;
	uint64_t version;
	ino_node *n = live_find(d, &rec, &version);
	if (n) {
		*size = rec.size;
		ino_node_unref(FS->tbl, n);
		return 0;
	}
	cache_blob_header h;
	int r = cache_blob_stat(FS->ix, d, &h);
	if (r == -EBADMSG || r == -EPROTO)
		return -ENOENT; /* not servable; open of a verified copy would fail */
	if (r == 0)
		*size = h.size;
	return r;
}

/* LOOKUP of "." or ".." in a virtual directory (file handles only). */
static void lookup_dot(struct req *q, struct vnode *p, bool dotdot)
{
	struct casns *ns = FS->ns;
	if (dotdot && p->kind == VN_CASFS) {
		/* the real directory it hangs under: answered as the real
		 * handlers would, through its own "." */
		req_err(q, ESTALE);
		return;
	}
	pthread_mutex_lock(&ns->lock);
	struct vnode *v = dotdot ? vnode_find_id(ns, p->key) : p;
	if (v)
		v->nlookup++;
	pthread_mutex_unlock(&ns->lock);
	if (!v) {
		req_err(q, ESTALE);
		return;
	}
	reply_vnode(q, v);
}

void casns_lookup(struct req *q, fuse_ino_t parent, const char *name)
{
	struct vnode *p = req_vnode(q, parent);
	hasher_digest d;
	uint64_t size = 0;
	int r;
	if (!p)
		return;
	if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
		lookup_dot(q, p, name[1] == '.');
		return;
	}
	switch (p->kind) {
	case VN_CASFS:
		if (strcmp(name, "cas") == 0)
			reply_vnode(q, vnode_get(VN_CAS, parent, NULL, 0));
		else if (strcmp(name, "ctl") == 0)
			reply_vnode(q, vnode_get(VN_CTL, p->key, NULL, 0));
		else
			req_err(q, ENOENT);
		return;
	case VN_CAS:
		COUNT(cas_lookups);
		if (!may_read_cas(q)) {
			COUNT(cas_denied);
			req_err(q, EACCES);
			return;
		}
		/* absent contents are not cached: they may arrive any time */
		if ((r = parse_name(name, &d)) < 0 || (r = content_size(&d, &size)) < 0) {
			COUNT(cas_misses);
			req_err(q, -r);
			return;
		}
		reply_vnode(q, vnode_get(VN_FILE, 0, &d, size));
		return;
	case VN_FILE:
	case VN_CTL:
		req_err(q, ENOTDIR);
		return;
	}
}

void casns_getattr(struct req *q, fuse_ino_t ino)
{
	struct stat st;
	struct vnode *v = req_vnode(q, ino);
	if (!v)
		return;
	fill_attr(v, &st);
	req_attr(q, &st, FS->o.timeout);
}

/* ---- reading contents ------------------------------------------------------ */

/* Opens the live file n read-only and checks it still is what rec says. */
static int open_live(ino_node *n, const cache_file_rec *rec)
{
	struct stat st;
	int fd = fs_node_open(n, O_RDONLY);
	if (fd < 0)
		return fd;
	/* while mounted every change goes through us and bumps the version;
	 * the stat check catches a change made behind the mount's back */
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != rec->size ||
	    rec->mtime_ns != cache_timespec_ns(&st.st_mtim) || rec->ctime_ns != cache_timespec_ns(&st.st_ctim)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

static void vhandle_free(struct vhandle *h)
{
	if (!h)
		return;
	if (h->ctl) {
		actions_ctl_release(h->ctl);
	} else if (h->live) {
		close(h->fd);
		ino_node_unref(FS->tbl, h->live);
	} else {
		cache_reader_close(&h->rd);
	}
	free(h);
}

void casns_open(struct req *q, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vnode *v = req_vnode(q, ino);
	if (!v)
		return;
	if (v->kind != VN_FILE && v->kind != VN_CTL) {
		req_err(q, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		req_err(q, EROFS);
		return;
	}
	if (v->kind == VN_CTL) {
		/* anyone may ask; sessions and results are per user */
		struct vhandle *h = calloc(1, sizeof(*h));
		if (!h || !(h->ctl = actions_ctl_open(v->key))) {
			free(h);
			req_err(q, ENOMEM);
			return;
		}
		h->fd = -1;
		h->rd.fd = -1;
		fi->fh = (uintptr_t)h;
		fi->direct_io = 1; /* every read is of the latest response */
		fi->noflush = 1;   /* a close ends the session at RELEASE */
		if (req_open(q, fi) == -ENOENT)
			vhandle_free(h);
		return;
	}
	if (!may_read_cas(q)) {
		COUNT(cas_denied);
		req_err(q, EACCES);
		return;
	}
	struct vhandle *h = calloc(1, sizeof(*h));
	if (!h) {
		req_err(q, ENOMEM);
		return;
	}
	h->fd = -1;
	h->rd.fd = -1;
	cache_file_rec rec;
	ino_node *n = live_find(&v->digest, &rec, &h->live_version);
	if (n) {
		int fd = open_live(n, &rec);
		if (fd >= 0) {
			h->fd = fd;
			h->size = rec.size;
			h->live = n;
			COUNT(cas_opens_live);
		} else {
			ino_node_unref(FS->tbl, n);
		}
	}
	if (h->fd < 0) {
		int r = cache_blob_open(FS->ix, &v->digest, &h->rd);
		if (r < 0) {
			char hex[HASHER_HEX_LEN + 1];
			hasher_digest_to_hex(&v->digest, hex);
			if (r == -EBADMSG || r == -EPROTO) {
				COUNT(cas_corrupt);
				fprintf(stderr, "casfs: blob %s failed verification: quarantined, not served\n", hex);
				r = -EIO;
			}
			free(h);
			req_err(q, -r);
			return;
		}
		h->fd = h->rd.fd;
		h->off = h->rd.off;
		h->size = h->rd.size;
		COUNT(cas_opens_blob);
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 1; /* the content of a name never changes */
	fi->noflush = 1;
	if (req_open(q, fi) == -ENOENT)
		vhandle_free(h);
}

/* True while the live file h reads from still has the content it had at
 * open: known, unchanged, and no writer has it open. */
static bool live_intact(const struct vhandle *h)
{
	cache_file_rec rec;
	uint64_t version;
	return digests_peek(FS->dg, h->live, &rec, &version) == 0 && version == h->live_version;
}

void casns_read(struct req *q, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct vhandle *h = (struct vhandle *)(uintptr_t)fi->fh;
	if (h->ctl) {
		char *buf = malloc(size ? size : 1);
		ssize_t n = buf ? actions_ctl_read(h->ctl, buf, size, off) : -ENOMEM;
		if (n < 0)
			req_err(q, (int)-n);
		else
			req_buf(q, buf, (size_t)n);
		free(buf);
		return;
	}
	if (off < 0 || (uint64_t)off >= h->size) {
		req_buf(q, NULL, 0);
		return;
	}
	if ((uint64_t)off + size > h->size)
		size = (size_t)(h->size - (uint64_t)off);
	COUNT_N(cas_bytes_read, size);
	if (!h->live) {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
		buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		buf.buf[0].fd = h->fd;
		buf.buf[0].pos = (off_t)h->off + off;
		req_data(q, &buf, 0);
		return;
	}
	/* From a live file: read, then check nothing changed it meanwhile
	 * (a writer opens before it writes, so it cannot slip in unseen). */
	char *buf = malloc(size);
	if (!buf) {
		req_err(q, ENOMEM);
		return;
	}
	ssize_t n = pread(h->fd, buf, size, off);
	int e = errno;
	if (n >= 0 && !live_intact(h)) {
		COUNT(cas_live_changed);
		n = -1;
		e = EIO;
	}
	if (n < 0)
		req_err(q, e);
	else
		req_buf(q, buf, (size_t)n);
	free(buf);
}

void casns_release(struct req *q, fuse_ino_t ino, struct fuse_file_info *fi)
{
	vhandle_free((struct vhandle *)(uintptr_t)fi->fh);
	req_err(q, 0);
}

void casns_lseek(struct req *q, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct vhandle *h = (struct vhandle *)(uintptr_t)fi->fh;
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		req_err(q, EINVAL);
		return;
	}
	if (off < 0 || (uint64_t)off >= h->size)
		req_err(q, ENXIO);
	else
		req_lseek(q, whence == SEEK_DATA ? off : (off_t)h->size);
}

/* ---- listing, xattrs, access, ioctl ------------------------------------------ */

void casns_readdir(struct req *q, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct vnode *v = req_vnode(q, ino);
	if (!v)
		return;
	if (v->kind == VN_FILE || v->kind == VN_CTL) {
		req_err(q, ENOTDIR);
		return;
	}
	if (v->kind == VN_CAS) {
		req_err(q, EPERM); /* millions of blobs: never listed */
		return;
	}
	static const char *const names[] = { ".", "..", "cas", "ctl" };
	char *buf = malloc(size);
	size_t used = 0;
	if (!buf) {
		req_err(q, ENOMEM);
		return;
	}
	for (off_t i = off; i < 4; i++) {
		struct stat st = { .st_ino = 1, .st_mode = i == 3 ? S_IFREG : S_IFDIR };
		size_t len;
		if (i >= 2 && plus) {
			struct vnode *c = i == 2 ? vnode_get(VN_CAS, ino, NULL, 0) : vnode_get(VN_CTL, v->key, NULL, 0);
			if (!c)
				break;
			struct fuse_entry_param e = { .ino = vid_of(c), .generation = c->serial,
						      .attr_timeout = FS->o.timeout,
						      .entry_timeout = FS->o.timeout };
			fill_attr(c, &e.attr);
			len = fuse_add_direntry_plus(q->r, buf + used, size - used, names[i], &e, i + 1);
			if (len > size - used)
				casns_forget(e.ino, 1);
		} else if (plus) {
			struct fuse_entry_param e = { .attr = st };
			len = fuse_add_direntry_plus(q->r, buf + used, size - used, names[i], &e, i + 1);
		} else {
			len = fuse_add_direntry(q->r, buf + used, size - used, names[i], &st, i + 1);
		}
		if (len > size - used)
			break;
		used += len;
	}
	req_buf(q, buf, used);
	free(buf);
}

void casns_getxattr(struct req *q, fuse_ino_t ino, const char *name, size_t size)
{
	struct vnode *v = req_vnode(q, ino);
	if (!v)
		return;
	char hex[HASHER_HEX_LEN + 1];
	if (v->kind != VN_FILE || strcmp(name, CASFS_XATTR_DIGEST) != 0) {
		req_err(q, ENODATA);
		return;
	}
	hasher_digest_to_hex(&v->digest, hex);
	req_xattr(q, size, hex, HASHER_HEX_LEN, 0);
}

void casns_listxattr(struct req *q, fuse_ino_t ino, size_t size)
{
	struct vnode *v = req_vnode(q, ino);
	if (!v)
		return;
	if (v->kind == VN_FILE)
		req_xattr(q, size, CASFS_XATTR_DIGEST, sizeof(CASFS_XATTR_DIGEST), 0);
	else
		req_xattr(q, size, "", 0, 0);
}

void casns_access(struct req *q, fuse_ino_t ino, int mask)
{
	req_err(q, (mask & W_OK) ? EROFS : 0);
}

struct ctlfile *casns_ctlfile(fuse_ino_t ino, const struct fuse_file_info *fi)
{
	struct vnode *v = vnode_of(ino);
	struct vhandle *h = fi ? (struct vhandle *)(uintptr_t)fi->fh : NULL;
	return v && v->kind == VN_CTL && h ? h->ctl : NULL;
}

void casns_ioctl(struct req *q, fuse_ino_t ino, unsigned int cmd, size_t out_bufsz)
{
	struct vnode *v = req_vnode(q, ino);
	if (!v)
		return;
	if (cmd == CASFS_IOC_DIGEST && out_bufsz >= sizeof(struct casfs_ctl_digest) && v->kind == VN_FILE) {
		struct casfs_ctl_digest dg;
		memset(&dg, 0, sizeof(dg));
		hasher_digest_to_hex(&v->digest, dg.hex);
		req_ioctl(q, 0, &dg, sizeof(dg));
		return;
	}
	req_err(q, ENOTTY);
}
