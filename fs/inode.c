/* inode.c — see inode.h for the model and the locking rules. */
#include "inode.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FD_CAP_DEFAULT 8192u
#define MAX_MOUNTS 64
/* Node ids: slot index + 1, slots in chunks allocated on first use and
 * never freed or moved, so ino_table_get needs no lock. */
#define SLOT_CHUNK_BITS 12
#define SLOT_CHUNK (1u << SLOT_CHUNK_BITS)
#define SLOT_CHUNKS 65536u /* 2^28 nodes at most */

struct mount_fd {
	int mnt_id;
	int fd;
};

/* What a freed slot held (handle mode): enough to bring its node back with
 * the same id and generation when a file handle names it again. */
struct tomb {
	uint64_t dev, ino;
	uint32_t slot;
	uint64_t generation;
	int mnt;
	struct file_handle *handle;
	struct tomb *hash_next; /* in tomb_buckets, by (dev, ino) */
};

struct ino_table {
	pthread_mutex_t lock;
	ino_node **buckets;
	size_t nbuckets;
	size_t count;
	uint64_t next_generation;
	bool handles;
	ino_node root;
	/* fd cache: most recently used at head */
	ino_node *lru_head, *lru_tail;
	unsigned fds_open, fd_cap;
	struct mount_fd mounts[MAX_MOUNTS];
	int nmounts;
	ino_fallback_open_fn fallback;
	void *fallback_arg;
	ino_stats st;
	/* node ids */
	_Atomic(ino_node *) *chunks[SLOT_CHUNKS];
	struct tomb **tombs[SLOT_CHUNKS]; /* handle mode: what a freed slot held */
	struct tomb **tomb_buckets;       /* the same tombs by (dev, ino) */
	size_t tomb_nbuckets, tomb_count;
	uint32_t slots_used;      /* slots ever handed out (slot 0: the root) */
	uint32_t *free_slots;     /* FIFO ring of freed slots */
	size_t free_head, free_n, free_cap;
};

static size_t key_hash(uint64_t dev, uint64_t ino)
{
	uint64_t h = ino * 0x9E3779B97F4A7C15ull ^ (dev + 0x632BE59BD9B4E019ull);
	h ^= h >> 29;
	return (size_t)h;
}

void ino_table_lock(ino_table *t) { pthread_mutex_lock(&t->lock); }
void ino_table_unlock(ino_table *t) { pthread_mutex_unlock(&t->lock); }
bool ino_table_handle_mode(const ino_table *t) { return t->handles; }
ino_node *ino_table_root(ino_table *t) { return &t->root; }

/* Destructor of ino_node.priv (set by the fs layer). */
static void (*priv_free_fn)(void *);

void ino_table_set_priv_free(ino_table *t, void (*fn)(void *priv))
{
	(void)t;
	priv_free_fn = fn;
}

void ino_table_set_fallback(ino_table *t, ino_fallback_open_fn fn, void *arg)
{
	t->fallback = fn;
	t->fallback_arg = arg;
}

/* ---- file handles ------------------------------------------------------ */

/* Returns a malloc'ed handle for fd and its mount id, or NULL (errno set). */
static struct file_handle *handle_of(int fd, int *ret_mnt_id)
{
	struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
	if (!h)
		return NULL;
	h->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", h, ret_mnt_id, AT_EMPTY_PATH) < 0) {
		int e = errno;
		free(h);
		errno = e;
		return NULL;
	}
	struct file_handle *small = realloc(h, sizeof(*h) + h->handle_bytes);
	return small ? small : h;
}

/* Index of the mount-fd slot for mnt_id, adopting a dup of fd when new
 * (in a slot freed by ino_table_mount_gone, else a new one).  Called with
 * the lock held. Returns -1 when full. */
static int mount_slot(ino_table *t, int mnt_id, int fd)
{
	int slot = -1;
	for (int i = 0; i < t->nmounts; i++) {
		if (t->mounts[i].fd >= 0 && t->mounts[i].mnt_id == mnt_id)
			return i;
		if (t->mounts[i].fd < 0 && slot < 0)
			slot = i;
	}
	if (slot < 0 && t->nmounts == MAX_MOUNTS)
		return -1;
	/* open_by_handle_at refuses O_PATH mount fds: open the object for
	 * real (it is the first object seen on that mount, normally its root
	 * directory; O_NONBLOCK so a fifo does not block). */
	int d = cache_io_reopen(-1, fd, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (d < 0)
		return -1;
	if (slot < 0)
		slot = t->nmounts++;
	t->mounts[slot] = (struct mount_fd){ .mnt_id = mnt_id, .fd = d };
	return slot;
}

/* ---- node ids (lock held, except ino_table_get) ---------------------------- */

static _Atomic(ino_node *) *slot_at(ino_table *t, uint32_t slot, bool create)
{
	_Atomic(ino_node *) *c = t->chunks[slot >> SLOT_CHUNK_BITS];
	if (!c && create) {
		c = calloc(SLOT_CHUNK, sizeof(*c));
		if (!c)
			return NULL;
		t->chunks[slot >> SLOT_CHUNK_BITS] = c;
	}
	return c ? &c[slot & (SLOT_CHUNK - 1)] : NULL;
}

static void tomb_clear(ino_table *t, uint32_t slot);

/* Gives n a slot (id).  Freed slots are reused oldest first, so an id the
 * kernel forgot stays unused as long as possible.  The free ring may hold
 * slots that were taken back since (a node re-created under its old id):
 * those are skipped.  Returns 0 or -ENOMEM. */
static int slot_take(ino_table *t, ino_node *n)
{
	uint32_t slot;
	for (;;) {
		if (t->free_n > t->free_cap / 2 || (t->free_n && t->slots_used >= SLOT_CHUNKS * SLOT_CHUNK)) {
			slot = t->free_slots[t->free_head];
			t->free_head = (t->free_head + 1) % t->free_cap;
			t->free_n--;
			if (atomic_load_explicit(slot_at(t, slot, false), memory_order_relaxed))
				continue; /* in use again */
		} else if (t->slots_used < SLOT_CHUNKS * SLOT_CHUNK) {
			slot = t->slots_used;
		} else {
			return -ENOMEM;
		}
		break;
	}
	_Atomic(ino_node *) *p = slot_at(t, slot, true);
	if (!p)
		return -ENOMEM;
	if (slot == t->slots_used)
		t->slots_used++;
	tomb_clear(t, slot);
	n->id = (uint64_t)slot + 1;
	atomic_store_explicit(p, n, memory_order_release);
	return 0;
}

static struct tomb **tomb_at(ino_table *t, uint32_t slot, bool create)
{
	struct tomb **c = t->tombs[slot >> SLOT_CHUNK_BITS];
	if (!c && create) {
		c = calloc(SLOT_CHUNK, sizeof(*c));
		if (!c)
			return NULL;
		t->tombs[slot >> SLOT_CHUNK_BITS] = c;
	}
	return c ? &c[slot & (SLOT_CHUNK - 1)] : NULL;
}

static struct tomb **tomb_bucket(ino_table *t, uint64_t dev, uint64_t ino)
{
	return &t->tomb_buckets[key_hash(dev, ino) & (t->tomb_nbuckets - 1)];
}

static void tomb_clear(ino_table *t, uint32_t slot)
{
	struct tomb **tp = tomb_at(t, slot, false);
	if (!tp || !*tp)
		return;
	struct tomb **pp = tomb_bucket(t, (*tp)->dev, (*tp)->ino);
	while (*pp && *pp != *tp)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = (*tp)->hash_next;
	t->tomb_count--;
	free((*tp)->handle);
	free(*tp);
	*tp = NULL;
}

static void tomb_grow(ino_table *t)
{
	size_t nb = t->tomb_nbuckets ? t->tomb_nbuckets * 2 : 1024;
	struct tomb **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < t->tomb_nbuckets; i++)
		for (struct tomb *tb = t->tomb_buckets[i], *next; tb; tb = next) {
			next = tb->hash_next;
			size_t j = key_hash(tb->dev, tb->ino) & (nb - 1);
			tb->hash_next = b[j];
			b[j] = tb;
		}
	free(t->tomb_buckets);
	t->tomb_buckets = b;
	t->tomb_nbuckets = nb;
}

/* The same file handle: the same inode, not just its number (handles of
 * ext4, xfs, btrfs and tmpfs hold the inode's generation). */
static bool handle_equal(const struct file_handle *a, const struct file_handle *b)
{
	return a && b && a->handle_type == b->handle_type && a->handle_bytes == b->handle_bytes &&
	       memcmp(a->f_handle, b->f_handle, a->handle_bytes) == 0;
}

/* The tomb of inode (dev, ino), or NULL. */
static struct tomb *tomb_find(ino_table *t, uint64_t dev, uint64_t ino)
{
	if (!t->tomb_nbuckets)
		return NULL;
	for (struct tomb *tb = *tomb_bucket(t, dev, ino); tb; tb = tb->hash_next)
		if (tb->dev == dev && tb->ino == ino)
			return tb;
	return NULL;
}

/* Frees n's slot; in handle mode the slot keeps n's identity and handle
 * (which n gives up) until it is reused, so that a file handle naming it,
 * or a new lookup of the same inode, gets the same id back. */
static void slot_release(ino_table *t, ino_node *n)
{
	uint32_t slot = (uint32_t)(n->id - 1);
	atomic_store_explicit(slot_at(t, slot, false), NULL, memory_order_release);
	tomb_clear(t, slot);
	if (n->handle && !n->detached) {
		struct tomb **tp = tomb_at(t, slot, true);
		struct tomb *tb = tp ? malloc(sizeof(*tb)) : NULL;
		if (tb && t->tomb_count >= t->tomb_nbuckets)
			tomb_grow(t);
		if (tb && t->tomb_nbuckets) {
			*tb = (struct tomb){ .dev = n->dev, .ino = n->ino, .slot = slot, .generation = n->generation,
					     .mnt = n->mnt, .handle = n->handle };
			n->handle = NULL;
			struct tomb **b = tomb_bucket(t, n->dev, n->ino);
			tb->hash_next = *b;
			*b = tb;
			t->tomb_count++;
			*tp = tb;
		} else {
			free(tb);
		}
	}
	if (t->free_n == t->free_cap) {
		size_t cap = t->free_cap ? t->free_cap * 2 : 1024;
		uint32_t *ring = malloc(cap * sizeof(*ring));
		if (!ring)
			return; /* the slot is lost, not reused: still correct */
		for (size_t i = 0; i < t->free_n; i++)
			ring[i] = t->free_slots[(t->free_head + i) % t->free_cap];
		free(t->free_slots);
		t->free_slots = ring;
		t->free_cap = cap;
		t->free_head = 0;
	}
	t->free_slots[(t->free_head + t->free_n) % t->free_cap] = slot;
	t->free_n++;
}

/* Takes back the slot of tomb tb for n (the same inode): n gets its old id
 * and generation.  Lock held. */
static void slot_take_back(ino_table *t, ino_node *n, struct tomb *tb)
{
	uint32_t slot = tb->slot;
	n->generation = tb->generation;
	n->id = (uint64_t)slot + 1;
	tomb_clear(t, slot);
	atomic_store_explicit(slot_at(t, slot, false), n, memory_order_release);
	t->st.revived++;
}

ino_node *ino_table_get(ino_table *t, uint64_t id)
{
	if (id == 0 || id > SLOT_CHUNKS * (uint64_t)SLOT_CHUNK)
		return NULL;
	uint32_t slot = (uint32_t)(id - 1);
	_Atomic(ino_node *) *c = t->chunks[slot >> SLOT_CHUNK_BITS];
	return c ? atomic_load_explicit(&c[slot & (SLOT_CHUNK - 1)], memory_order_acquire) : NULL;
}

static ino_node *bucket_find(ino_table *t, uint64_t dev, uint64_t ino);
static void bucket_insert(ino_table *t, ino_node *n);

/* Brings back the node that held slot `slot` (lock held, returned held):
 * opens its handle, and re-creates it with its old id and generation unless
 * the inode is gone or has another node now. */
static ino_node *revive(ino_table *t, uint32_t slot)
{
	struct tomb **tp = tomb_at(t, slot, false);
	if (!tp || !*tp || t->nmounts == 0)
		return NULL;
	struct tomb tb = **tp;
	int mfd = t->mounts[tb.mnt].fd;
	ino_table_unlock(t);
	int fd = open_by_handle_at(mfd, tb.handle, O_PATH | O_CLOEXEC);
	struct stat st;
	bool ok = fd >= 0 && fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 && st.st_nlink > 0 &&
		  (uint64_t)st.st_dev == tb.dev && (uint64_t)st.st_ino == tb.ino;
	ino_table_lock(t);
	ino_node *n = NULL;
	/* still free, still the same tomb, and no other node has the inode */
	if (ok && ino_table_get(t, (uint64_t)slot + 1) == NULL && *tp && (*tp)->generation == tb.generation &&
	    !bucket_find(t, st.st_dev, st.st_ino) && (n = calloc(1, sizeof(*n)))) {
		n->dev = st.st_dev;
		n->ino = st.st_ino;
		n->type = st.st_mode & S_IFMT;
		n->mnt = tb.mnt;
		n->handle = (*tp)->handle;
		(*tp)->handle = NULL;
		n->fd = -1;
		slot_take_back(t, n, *tp);
		bucket_insert(t, n);
	}
	if (fd >= 0)
		close(fd);
	return n;
}

ino_node *ino_table_get_lookup(ino_table *t, uint64_t id, uint64_t nlookup)
{
	ino_table_lock(t);
	ino_node *n = ino_table_get(t, id);
	if (!n && t->handles && id >= 2 && id <= t->slots_used)
		n = revive(t, (uint32_t)(id - 1));
	if (n)
		n->nlookup += nlookup;
	ino_table_unlock(t);
	return n;
}

int ino_table_new(int root_fd, bool use_handles, unsigned fd_cap, ino_table **ret)
{
	struct stat st;
	ino_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = 1024;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		goto nomem;
	t->fd_cap = fd_cap ? fd_cap : FD_CAP_DEFAULT;
	/* Generations start at a random value per table, so that a file
	 * handle of an earlier mount whose id is reused does not match. */
	uint32_t base = 0;
	if (getrandom(&base, sizeof(base), GRND_NONBLOCK) != sizeof(base))
		base = (uint32_t)time(NULL) * 2654435761u;
	t->next_generation = base | 1;

	int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = -errno;
		if (fd >= 0)
			close(fd);
		free(t->buckets);
		free(t);
		return e;
	}
	t->root.dev = st.st_dev;
	t->root.ino = st.st_ino;
	t->root.type = st.st_mode & S_IFMT;
	t->root.fd = fd; /* pinned forever, never on the LRU */
	t->root.nlookup = 1;
	t->root.refs = 1;
	t->root.generation = 0;
	if (slot_take(t, &t->root) < 0) { /* slot 0: id 1, FUSE_ROOT_ID */
		close(fd);
		free(t->buckets);
		free(t);
		return -ENOMEM;
	}

	if (use_handles) {
		/* Handle mode needs name_to_handle_at on the backing and
		 * open_by_handle_at, which requires CAP_DAC_READ_SEARCH. */
		int mnt_id;
		struct file_handle *h = handle_of(fd, &mnt_id);
		int slot = h ? mount_slot(t, mnt_id, fd) : -1;
		int probe = slot >= 0 ? open_by_handle_at(t->mounts[slot].fd, h, O_PATH | O_CLOEXEC) : -1;
		if (probe >= 0) {
			close(probe);
			t->handles = true;
			t->root.handle = h;
			t->root.mnt = slot;
		} else {
			free(h);
		}
	}
	*ret = t;
	return 0;
nomem:
	free(t);
	return -ENOMEM;
}

static void node_destroy(ino_node *n)
{
	if (n->priv && priv_free_fn)
		priv_free_fn(n->priv);
	free(n->handle);
	free(n->name);
	free(n);
}

void ino_table_free(ino_table *t)
{
	if (!t)
		return;
	/* Every node, hashed or detached, holds a slot. */
	for (uint32_t slot = 1; slot < t->slots_used; slot++) {
		_Atomic(ino_node *) *p = slot_at(t, slot, false);
		ino_node *n = p ? atomic_load(p) : NULL;
		if (!n)
			continue;
		if (n->fd >= 0)
			close(n->fd);
		node_destroy(n);
	}
	for (uint32_t slot = 0; slot < t->slots_used; slot++)
		tomb_clear(t, slot);
	for (uint32_t c = 0; c < SLOT_CHUNKS; c++) {
		free(t->chunks[c]);
		free(t->tombs[c]);
	}
	free(t->free_slots);
	free(t->tomb_buckets);
	for (int i = 0; i < t->nmounts; i++)
		if (t->mounts[i].fd >= 0)
			close(t->mounts[i].fd);
	close(t->root.fd);
	free(t->root.handle);
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void ino_table_stats(ino_table *t, ino_stats *ret)
{
	ino_table_lock(t);
	*ret = t->st;
	ret->nodes = t->count + t->st.detached;
	ret->fds_open = t->fds_open;
	ret->fd_cache_cap = t->fd_cap;
	ino_table_unlock(t);
}

/* ---- hash table (lock held) -------------------------------------------- */

static ino_node *bucket_find(ino_table *t, uint64_t dev, uint64_t ino)
{
	if (dev == t->root.dev && ino == t->root.ino)
		return &t->root;
	for (ino_node *n = t->buckets[key_hash(dev, ino) & (t->nbuckets - 1)]; n; n = n->hash_next)
		if (n->ino == ino && n->dev == dev)
			return n;
	return NULL;
}

static void bucket_grow(ino_table *t)
{
	size_t nb = t->nbuckets * 2;
	ino_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep the longer chains; still correct */
	for (size_t i = 0; i < t->nbuckets; i++) {
		ino_node *n = t->buckets[i];
		while (n) {
			ino_node *next = n->hash_next;
			size_t j = key_hash(n->dev, n->ino) & (nb - 1);
			n->hash_next = b[j];
			b[j] = n;
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

static void bucket_insert(ino_table *t, ino_node *n)
{
	if (t->count >= t->nbuckets)
		bucket_grow(t);
	size_t b = key_hash(n->dev, n->ino) & (t->nbuckets - 1);
	n->hash_next = t->buckets[b];
	t->buckets[b] = n;
	t->count++;
}

static void bucket_remove(ino_table *t, ino_node *n)
{
	ino_node **pp = &t->buckets[key_hash(n->dev, n->ino) & (t->nbuckets - 1)];
	while (*pp != n)
		pp = &(*pp)->hash_next;
	*pp = n->hash_next;
	t->count--;
}

/* ---- LRU (lock held) ---------------------------------------------------- */

static void lru_unlink(ino_table *t, ino_node *n)
{
	if (n->lru_prev)
		n->lru_prev->lru_next = n->lru_next;
	else
		t->lru_head = n->lru_next;
	if (n->lru_next)
		n->lru_next->lru_prev = n->lru_prev;
	else
		t->lru_tail = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
}

static void lru_push_front(ino_table *t, ino_node *n)
{
	n->lru_prev = NULL;
	n->lru_next = t->lru_head;
	if (t->lru_head)
		t->lru_head->lru_prev = n;
	t->lru_head = n;
	if (!t->lru_tail)
		t->lru_tail = n;
}

/* Adopts fd as n's cached fd (n->fd must be -1).  Collects fds to close in
 * victims (at most `max`), returns how many. */
static int cache_adopt(ino_table *t, ino_node *n, int fd, int *victims, int max)
{
	int nv = 0;
	n->fd = fd;
	lru_push_front(t, n);
	t->fds_open++;
	for (ino_node *v = t->lru_tail; v && t->fds_open > t->fd_cap && nv < max;) {
		ino_node *prev = v->lru_prev;
		if (v->fd_pins == 0 && v != n) {
			lru_unlink(t, v);
			victims[nv++] = v->fd;
			v->fd = -1;
			t->fds_open--;
			t->st.fd_evictions++;
		}
		v = prev;
	}
	return nv;
}

static void cache_drop(ino_table *t, ino_node *n, int *victims, int *nv)
{
	if (n->fd >= 0 && n != &t->root) {
		lru_unlink(t, n);
		victims[(*nv)++] = n->fd;
		n->fd = -1;
		t->fds_open--;
	}
}

/* Forgets n's name; the parent loses the reference the name held, and is
 * returned for maybe_free (NULL when n had no name). */
static ino_node *name_drop(ino_node *n)
{
	ino_node *parent = n->parent;
	free(n->name);
	n->name = NULL;
	n->parent = NULL;
	if (parent)
		parent->refs--;
	return parent;
}

/* Frees n and parents that became unreferenced.  Lock held.  close() of an
 * O_PATH fd does not block, so evicted fds are closed right here. */
static void maybe_free(ino_table *t, ino_node *n)
{
	while (n && n != &t->root && n->nlookup == 0 && n->refs == 0 && n->fd_pins == 0) {
		int victims[1], nv = 0;
		cache_drop(t, n, victims, &nv);
		if (nv)
			close(victims[0]);
		if (!n->detached)
			bucket_remove(t, n);
		else
			t->st.detached--;
		slot_release(t, n);
		ino_node *parent = name_drop(n);
		node_destroy(n);
		n = parent;
	}
}

/* ---- public ----------------------------------------------------------- */

/* Remembers name in parent as n's latest name; the name holds a reference
 * on the parent.  Lock held. */
static void set_name(ino_table *t, ino_node *n, ino_node *parent, const char *name)
{
	if (n == &t->root || n->detached || (n->parent == parent && n->name && strcmp(n->name, name) == 0))
		return;
	char *copy = strdup(name);
	if (!copy)
		return; /* keep the old name: reopen may then report ESTALE */
	parent->refs++;
	ino_node *old = name_drop(n);
	n->name = copy;
	n->parent = parent;
	if (old)
		maybe_free(t, old);
}

ino_node *ino_table_find(ino_table *t, ino_node *parent, const char *name,
			 dev_t dev, ino_t ino, uint64_t nlookup)
{
	ino_table_lock(t);
	ino_node *n = bucket_find(t, dev, ino);
	if (n) {
		n->nlookup += nlookup;
		if (parent)
			set_name(t, n, parent, name);
	}
	ino_table_unlock(t);
	return n;
}

ino_node *ino_table_find_ref(ino_table *t, dev_t dev, ino_t ino)
{
	ino_table_lock(t);
	ino_node *n = bucket_find(t, dev, ino);
	if (n)
		n->refs++;
	ino_table_unlock(t);
	return n;
}

/* Takes the hashed node n out of the hash table for good (its inode lost
 * its last name); its cached fd, unless pinned or a directory's, goes to
 * victims (one).  Lock held. */
static void detach_locked(ino_table *t, ino_node *n, int *victims, int *nv)
{
	bucket_remove(t, n);
	n->detached = true;
	t->st.detached++;
	ino_node *parent = name_drop(n);
	if (n->fd_pins == 0 && n->type != S_IFDIR)
		cache_drop(t, n, victims, nv);
	if (parent)
		maybe_free(t, parent);
}

ino_node *ino_table_detach(ino_table *t, dev_t dev, ino_t ino)
{
	int victims[1], nv = 0;
	ino_table_lock(t);
	struct tomb *tb = tomb_find(t, dev, ino);
	if (tb)
		tomb_clear(t, tb->slot); /* gone for good: its id is not kept */
	ino_node *n = bucket_find(t, dev, ino);
	if (n && n != &t->root)
		detach_locked(t, n, victims, &nv);
	else
		n = NULL;
	ino_table_unlock(t);
	if (nv)
		close(victims[0]);
	return n;
}

void ino_table_name_removed(ino_table *t, dev_t dev, ino_t ino, ino_node *parent, const char *name)
{
	ino_table_lock(t);
	ino_node *n = bucket_find(t, dev, ino);
	if (n && n != &t->root && n->parent == parent && n->name && strcmp(n->name, name) == 0) {
		name_drop(n);
		maybe_free(t, parent);
	}
	ino_table_unlock(t);
}

bool ino_node_detached(ino_table *t, ino_node *n)
{
	ino_table_lock(t);
	bool d = n->detached;
	ino_table_unlock(t);
	return d;
}

/* Writes the names from top down to n, right-aligned at the end of buf
 * (so no second pass is needed), and moves them to the front.  Lock held. */
static int path_locked(ino_table *t, ino_node *top, ino_node *n, char *buf, size_t len)
{
	if (len == 0)
		return -ENAMETOOLONG;
	size_t pos = len - 1;
	buf[pos] = '\0';
	bool first = true;
	for (ino_node *c = n; c != top; c = c->parent) {
		if (c == &t->root)
			return -EXDEV; /* top is not above n */
		if (!c->name || !c->parent)
			return -ENOENT;
		size_t l = strlen(c->name) + (first ? 0 : 1);
		if (l > pos)
			return -ENAMETOOLONG;
		pos -= l;
		memcpy(buf + pos, c->name, strlen(c->name));
		if (!first)
			buf[pos + l - 1] = '/';
		first = false;
	}
	size_t plen = len - 1 - pos;
	memmove(buf, buf + pos, plen + 1);
	return (int)plen;
}

int ino_node_path(ino_table *t, ino_node *n, char *buf, size_t len)
{
	return ino_node_path_from(t, &t->root, n, buf, len);
}

int ino_node_path_from(ino_table *t, ino_node *top, ino_node *n, char *buf, size_t len)
{
	ino_table_lock(t);
	int r = path_locked(t, top, n, buf, len);
	ino_table_unlock(t);
	return r;
}

int ino_table_insert(ino_table *t, ino_node *parent, const char *name, int fd,
		     const struct stat *st, uint64_t nlookup, ino_node **ret)
{
	struct file_handle *h = NULL;
	int mnt_id = -1, victims[4], nv = 0;

	ino_table_lock(t);
	ino_node *n = bucket_find(t, st->st_dev, st->st_ino);
	if (n)
		goto found;
	ino_table_unlock(t);

	if (t->handles) {
		h = handle_of(fd, &mnt_id);
		if (!h) {
			int e = -errno;
			close(fd);
			return e == -EOVERFLOW ? -EOPNOTSUPP : e;
		}
	}
	ino_table_lock(t);
	n = bucket_find(t, st->st_dev, st->st_ino);
	if (n) {
		free(h);
		goto found;
	}
	n = calloc(1, sizeof(*n));
	struct tomb *tb = n ? tomb_find(t, st->st_dev, st->st_ino) : NULL;
	if (tb && !handle_equal(tb->handle, h)) {
		tomb_clear(t, tb->slot); /* the number of an inode since deleted */
		tb = NULL;
	}
	if (!n || (!tb && slot_take(t, n) < 0)) {
		ino_table_unlock(t);
		free(n);
		free(h);
		close(fd);
		return -ENOMEM;
	}
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->type = st->st_mode & S_IFMT;
	if (tb)
		slot_take_back(t, n, tb); /* the inode's old id: its file handles stay valid */
	else
		n->generation = t->next_generation++;
	n->fd = -1;
	n->handle = h;
	if (h) {
		n->mnt = mount_slot(t, mnt_id, fd);
		if (n->mnt < 0) {
			slot_release(t, n);
			ino_table_unlock(t);
			node_destroy(n);
			close(fd);
			return -EMFILE;
		}
	}
	bucket_insert(t, n);
found:
	n->nlookup += nlookup;
	if (parent)
		set_name(t, n, parent, name);
	if (n->fd < 0 && n != &t->root) {
		nv = cache_adopt(t, n, fd, victims, 4);
		fd = -1;
	}
	ino_table_unlock(t);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < nv; i++)
		close(victims[i]);
	*ret = n;
	return 0;
}

void ino_table_forget(ino_table *t, ino_node *n, uint64_t nlookup)
{
	ino_table_lock(t);
	if (n == &t->root) {
		ino_table_unlock(t);
		return;
	}
	if (n->nlookup < nlookup) {
		fprintf(stderr, "casfs: BUG: forget %llu > nlookup %llu on inode %llu\n",
			(unsigned long long)nlookup, (unsigned long long)n->nlookup,
			(unsigned long long)n->ino);
		abort();
	}
	n->nlookup -= nlookup;
	maybe_free(t, n);
	ino_table_unlock(t);
}

void ino_node_ref_locked(ino_table *t, ino_node *n)
{
	(void)t;
	n->refs++;
}

void ino_node_ref(ino_table *t, ino_node *n)
{
	ino_table_lock(t);
	n->refs++;
	ino_table_unlock(t);
}

void ino_node_unref(ino_table *t, ino_node *n)
{
	ino_table_lock(t);
	n->refs--;
	maybe_free(t, n);
	ino_table_unlock(t);
}

/* Reopens n without the lock. Returns an fd or -errno. */
/* A copy of n's file handle and its mount fd, read under the lock (held):
 * a node can change inode (ino_table_moved) and its mount can go
 * (ino_table_mount_gone), which free the handle.  0, or -ESTALE when n
 * has no handle now. */
union handle_buf {
	struct file_handle h;
	char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
};

static int handle_copy_locked(ino_table *t, ino_node *n, union handle_buf *ret, int *ret_mfd)
{
	if (!n->handle || n->mnt < 0)
		return -ESTALE;
	memcpy(ret, n->handle, sizeof(*n->handle) + n->handle->handle_bytes);
	*ret_mfd = t->mounts[n->mnt].fd;
	t->st.reopen_by_handle++;
	return 0;
}

static int reopen(ino_table *t, ino_node *n)
{
	if (t->handles) {
		/* what opens is checked too: the inode n was when the handle
		 * was read */
		union handle_buf fh;
		struct stat st;
		int mfd;
		ino_table_lock(t);
		uint64_t dev = n->dev, ino = n->ino;
		int r = handle_copy_locked(t, n, &fh, &mfd);
		ino_table_unlock(t);
		if (r < 0)
			return r;
		int fd = open_by_handle_at(mfd, &fh.h, O_PATH | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 || (uint64_t)st.st_dev != dev ||
		    (uint64_t)st.st_ino != ino) {
			close(fd);
			return -ESTALE;
		}
		return fd;
	}

	/* Path mode: open the parent, then the name, then check identity. */
	char namebuf[256];
	ino_table_lock(t);
	ino_node *parent = n->parent;
	if (!parent || !n->name) {
		ino_table_unlock(t);
		return -ESTALE;
	}
	snprintf(namebuf, sizeof(namebuf), "%s", n->name);
	parent->refs++; /* keep it while we use it unlocked */
	t->st.reopen_by_path++;
	ino_table_unlock(t);

	int pfd = ino_node_fd_get(t, parent), fd = -ESTALE;
	if (pfd >= 0) {
		fd = openat(pfd, namebuf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			fd = errno == ENOENT ? -ESTALE : -errno;
		} else {
			struct stat st;
			if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
			    st.st_ino != n->ino || st.st_dev != n->dev) {
				close(fd);
				fd = -ESTALE;
			}
		}
		ino_node_fd_put(t, parent);
	} else {
		fd = pfd;
	}
	ino_node_unref(t, parent);
	return fd;
}

int ino_node_fd_get(ino_table *t, ino_node *n)
{
	int victims[4], nv;

	ino_table_lock(t);
	if (n->fd >= 0) {
		n->fd_pins++;
		if (n != &t->root && n != t->lru_head) {
			lru_unlink(t, n);
			lru_push_front(t, n);
		}
		t->st.fd_hits++;
		int fd = n->fd;
		ino_table_unlock(t);
		return fd;
	}
	t->st.fd_misses++;
	n->fd_pins++; /* keeps n alive while we reopen unlocked */
	ino_table_unlock(t);

	int fd = reopen(t, n);

	ino_table_lock(t);
	if (fd < 0 && t->fallback) {
		int f = t->fallback(n, t->fallback_arg);
		if (f >= 0)
			fd = f;
	}
	if (fd < 0) {
		t->st.stale += fd == -ESTALE;
		n->fd_pins--;
		ino_table_unlock(t);
		return fd;
	}
	if (n->fd >= 0) { /* another thread won the race */
		int theirs = n->fd;
		ino_table_unlock(t);
		close(fd);
		return theirs;
	}
	nv = cache_adopt(t, n, fd, victims, 4);
	ino_table_unlock(t);
	for (int i = 0; i < nv; i++)
		close(victims[i]);
	return fd;
}

int ino_node_open_uncached(ino_table *t, ino_node *n, int flags)
{
	union handle_buf fh;
	int mfd = -1;
	ino_table_lock(t);
	if (t->handles && n->fd < 0 && handle_copy_locked(t, n, &fh, &mfd) == 0)
		t->st.fd_misses++;
	ino_table_unlock(t);
	if (mfd < 0)
		return -EAGAIN;
	int fd = open_by_handle_at(mfd, &fh.h, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void ino_node_fd_put(ino_table *t, ino_node *n)
{
	int victims[1], nv = 0;
	ino_table_lock(t);
	n->fd_pins--;
	if (n->detached && n->fd_pins == 0 && n->type != S_IFDIR)
		cache_drop(t, n, victims, &nv); /* hold nothing of a deleted file */
	maybe_free(t, n);
	ino_table_unlock(t);
	if (nv)
		close(victims[0]);
}

void ino_table_renamed(ino_table *t, ino_node *n, ino_node *newparent, const char *newname)
{
	ino_table_lock(t);
	set_name(t, n, newparent, newname);
	ino_table_unlock(t);
}

int ino_table_moved(ino_table *t, ino_node *n, int fd, const struct stat *st, ino_node *newparent,
		    const char *newname)
{
	struct file_handle *h = NULL;
	int mnt_id = -1, mnt = -1, victims[5], nv = 0, r = 0;
	if (t->handles && !(h = handle_of(fd, &mnt_id)))
		return errno == EOVERFLOW ? -EOPNOTSUPP : -errno;
	ino_table_lock(t);
	if (n->fd_pins > 0 || n->open_files)
		r = -EBUSY;
	else if (n == &t->root || n->detached)
		r = -ESTALE;
	else if (bucket_find(t, st->st_dev, st->st_ino))
		r = -EEXIST;
	else if (h && (mnt = mount_slot(t, mnt_id, fd)) < 0)
		r = -EMFILE;
	if (r < 0) {
		ino_table_unlock(t);
		free(h);
		return r;
	}
	struct tomb *tb = tomb_find(t, st->st_dev, st->st_ino);
	if (tb)
		tomb_clear(t, tb->slot); /* the number of an inode since deleted */
	bucket_remove(t, n);
	cache_drop(t, n, victims, &nv);
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	if (t->handles) {
		free(n->handle);
		n->handle = h;
		n->mnt = mnt;
	}
	bucket_insert(t, n);
	set_name(t, n, newparent, newname);
	nv += cache_adopt(t, n, fd, victims + nv, 4);
	ino_table_unlock(t);
	for (int i = 0; i < nv; i++)
		close(victims[i]);
	return 0;
}

/* A hashed node on dev, or NULL.  Lock held. */
static ino_node *node_on_dev(ino_table *t, uint64_t dev)
{
	for (size_t i = 0; i < t->nbuckets; i++)
		for (ino_node *n = t->buckets[i]; n; n = n->hash_next)
			if (n->dev == dev)
				return n;
	return NULL;
}

void ino_table_mount_gone(ino_table *t, uint64_t dev, int mnt_id)
{
	ino_table_lock(t);
	if (dev != t->root.dev) {
		ino_node *n;
		while ((n = node_on_dev(t, dev))) {
			int victims[1], nv = 0;
			detach_locked(t, n, victims, &nv);
			if (nv)
				close(victims[0]); /* an O_PATH fd: never blocks */
		}
	}
	int m = -1, mfd = -1;
	for (int i = 0; i < t->nmounts && m < 0; i++)
		if (t->mounts[i].fd >= 0 && t->mounts[i].mnt_id == mnt_id && i != t->root.mnt)
			m = i;
	if (t->handles && m >= 0) {
		mfd = t->mounts[m].fd;
		t->mounts[m] = (struct mount_fd){ .mnt_id = -1, .fd = -1 };
		for (uint32_t slot = 1; slot < t->slots_used; slot++) {
			_Atomic(ino_node *) *p = slot_at(t, slot, false);
			ino_node *n = p ? atomic_load_explicit(p, memory_order_relaxed) : NULL;
			if (n && n->handle && n->mnt == m) {
				free(n->handle);
				n->handle = NULL;
				n->mnt = -1;
			}
			struct tomb **tp = tomb_at(t, slot, false);
			if (tp && *tp && (*tp)->mnt == m)
				tomb_clear(t, slot);
		}
	}
	ino_table_unlock(t);
	if (mfd >= 0)
		close(mfd);
}
