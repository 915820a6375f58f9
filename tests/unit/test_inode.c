/* Unit tests for fs/inode.c: identity, reference counts, the bounded fd
 * cache and reopening.  `test_inode paths` runs them in path mode;
 * `test_inode handles` in handle mode, which needs CAP_DAC_READ_SEARCH:
 * unprivileged it exits 77, which meson reports as a skip (tools/test runs
 * as root and counts a skip as a failure). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "inode.h"

struct fixture {
	char dir[64];
	int dirfd;
	ino_table *t;
	bool handles; /* the mode the table is in */
};

static bool mode_handles; /* the mode this run tests */

static int setup_mode(void **state, bool handles, unsigned cap)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/casfs-inode-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->dirfd = open(f->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ino_table_new(f->dirfd, handles, cap, &f->t) < 0)
		return -1;
	/* root on a filesystem with handles (ext4, tmpfs...) must get them */
	if (handles && geteuid() == 0 && !ino_table_handle_mode(f->t))
		return -1;
	if (!handles && ino_table_handle_mode(f->t))
		return -1;
	f->handles = handles;
	*state = f;
	return 0;
}

static int setup(void **state) { return setup_mode(state, mode_handles, 4); }

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	ino_table_free(f->t);
	close(f->dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int r = system(cmd);
	free(f);
	return r == 0 ? 0 : -1;
}

static void touch(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
}

/* The fs layer's lookup: open O_PATH, stat, insert. */
static ino_node *lookup(struct fixture *f, ino_node *parent, const char *name)
{
	struct stat st;
	int pfd = ino_node_fd_get(f->t, parent);
	assert_true(pfd >= 0);
	int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	ino_node_fd_put(f->t, parent);
	if (fd < 0)
		return NULL;
	assert_int_equal(fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), 0);
	ino_node *n = NULL;
	assert_int_equal(ino_table_insert(f->t, parent, name, fd, &st, 1, &n), 0);
	return n;
}

static ino_stats stats(struct fixture *f)
{
	ino_stats s;
	ino_table_stats(f->t, &s);
	return s;
}

/* Creates and looks up n files named prefix<i>, keeping them referenced so
 * their fds stay cached and push older ones out. */
static void fill_cache(struct fixture *f, const char *prefix, int n, ino_node **keep)
{
	char name[32];
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		touch(f->dirfd, name);
		keep[i] = lookup(f, ino_table_root(f->t), name);
	}
}

static void release_all(struct fixture *f, int n, ino_node **keep)
{
	for (int i = 0; i < n; i++)
		ino_table_forget(f->t, keep[i], 1);
}

static void test_hard_links_share_node(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t);
	touch(f->dirfd, "a");
	assert_int_equal(linkat(f->dirfd, "a", f->dirfd, "b", 0), 0);
	ino_node *a = lookup(f, root, "a"), *b = lookup(f, root, "b");
	assert_ptr_equal(a, b);
	assert_int_equal(a->nlookup, 2);
	assert_int_equal(stats(f).nodes, 1);
	ino_table_forget(f->t, a, 2);
	assert_int_equal(stats(f).nodes, 0);
}

static void test_generation_unique(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t);
	touch(f->dirfd, "x");
	ino_node *x = lookup(f, root, "x");
	uint64_t g1 = x->generation, id1 = x->id;
	ino_table_forget(f->t, x, 1);
	x = lookup(f, root, "x");
	if (ino_table_handle_mode(f->t)) {
		/* the same inode keeps its id and generation: its file
		 * handles stay valid after the kernel forgot it */
		assert_int_equal(x->id, id1);
		assert_int_equal(x->generation, g1);
	} else {
		assert_true(x->generation > g1);
	}
	ino_table_forget(f->t, x, 1);
	/* another inode (perhaps with the number of a deleted one) never
	 * gets a (id, generation) pair that was handed out before */
	struct stat st;
	assert_int_equal(fstatat(f->dirfd, "x", &st, 0), 0);
	assert_int_equal(unlinkat(f->dirfd, "x", 0), 0);
	ino_table_detach(f->t, st.st_dev, st.st_ino);
	touch(f->dirfd, "x");
	ino_node *y = lookup(f, root, "x");
	assert_false(y->id == id1 && y->generation == g1);
	ino_table_forget(f->t, y, 1);
}

static void test_fd_cache_bounded_and_reopen(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t), *nodes[40];
	char name[16];
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		touch(f->dirfd, name);
		nodes[i] = lookup(f, root, name);
		assert_true(stats(f).fds_open <= 4);
	}
	assert_int_equal(stats(f).nodes, 40);
	/* every node reopens to its own inode after eviction */
	for (int i = 0; i < 40; i++) {
		struct stat a, b;
		snprintf(name, sizeof(name), "f%d", i);
		int fd = ino_node_fd_get(f->t, nodes[i]);
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &a), 0);
		assert_int_equal(fstatat(f->dirfd, name, &b, 0), 0);
		assert_int_equal(a.st_ino, b.st_ino);
		ino_node_fd_put(f->t, nodes[i]);
		assert_true(stats(f).fds_open <= 4);
	}
	assert_true(stats(f).fd_evictions > 0);
	/* each mode reopens its own way, and only that way */
	if (f->handles) {
		assert_true(stats(f).reopen_by_handle > 0);
		assert_int_equal(stats(f).reopen_by_path, 0);
	} else {
		assert_true(stats(f).reopen_by_path > 0);
		assert_int_equal(stats(f).reopen_by_handle, 0);
	}
	for (int i = 0; i < 40; i++)
		ino_table_forget(f->t, nodes[i], 1);
	assert_int_equal(stats(f).nodes, 0);
}

static void test_pinned_fd_not_evicted(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t);
	touch(f->dirfd, "pinned");
	ino_node *p = lookup(f, root, "pinned");
	int fd = ino_node_fd_get(f->t, p);
	ino_node *keep[10];
	fill_cache(f, "g", 10, keep);
	assert_true(stats(f).fd_evictions > 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0); /* still the same open fd */
	int again = ino_node_fd_get(f->t, p);
	assert_int_equal(again, fd);
	ino_node_fd_put(f->t, p);
	ino_node_fd_put(f->t, p);
	ino_table_forget(f->t, p, 1);
	release_all(f, 10, keep);
}

static void test_nested_reopen(void **state)
{
	struct fixture *f = *state;
	ino_node *dir = ino_table_root(f->t), *chain[12];
	char name[16];
	int dfd = fcntl(f->dirfd, F_DUPFD_CLOEXEC, 3);
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "d%d", i);
		assert_int_equal(mkdirat(dfd, name, 0755), 0);
		int nfd = openat(dfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		close(dfd);
		dfd = nfd;
		chain[i] = dir = lookup(f, dir, name);
	}
	close(dfd);
	/* all evicted but the last 4: reopening the deepest walks up */
	for (int i = 0; i < 12; i++) {
		int fd = ino_node_fd_get(f->t, chain[i]);
		assert_true(fd >= 0);
		ino_node_fd_put(f->t, chain[i]);
	}
	/* rename a middle directory; the deep node must still reopen */
	int d0 = openat(f->dirfd, "d0", O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(renameat(d0, "d1", d0, "renamed"), 0);
	close(d0);
	ino_table_renamed(f->t, chain[1], chain[0], "renamed");
	ino_node *keep[8];
	fill_cache(f, "h", 8, keep); /* push the chain out of the cache */
	int fd = ino_node_fd_get(f->t, chain[11]);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_ino, chain[11]->ino);
	ino_node_fd_put(f->t, chain[11]);
	for (int i = 11; i >= 0; i--)
		ino_table_forget(f->t, chain[i], 1);
	release_all(f, 8, keep);
	assert_int_equal(stats(f).nodes, 0);
}

static int borrowed_fd = -1;
static int borrow(ino_node *n, void *arg) { return borrowed_fd >= 0 ? dup(borrowed_fd) : -1; }

static void test_unlinked_and_detached(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t), *keep[8];
	touch(f->dirfd, "gone");
	ino_node *g = lookup(f, root, "gone");
	struct stat st;
	assert_int_equal(fstatat(f->dirfd, "gone", &st, 0), 0);
	assert_int_equal(unlinkat(f->dirfd, "gone", 0), 0);
	ino_table_detach(f->t, st.st_dev, st.st_ino);
	assert_null(ino_table_find(f->t, NULL, NULL, st.st_dev, st.st_ino, 0));
	fill_cache(f, "k", 8, keep);
	/* the inode is gone: the node cannot be reopened */
	int fd = ino_node_fd_get(f->t, g);
	assert_int_equal(fd, -ESTALE);
	/* an open file of the node is borrowed (the fs layer's fallback) */
	borrowed_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ino_table_set_fallback(f->t, borrow, NULL);
	fd = ino_node_fd_get(f->t, g);
	assert_true(fd >= 0);
	ino_node_fd_put(f->t, g);
	close(borrowed_fd);
	borrowed_fd = -1;
	ino_table_forget(f->t, g, 1);
	release_all(f, 8, keep);
	assert_int_equal(stats(f).nodes, 0);
}

static void test_internal_refs_keep_node(void **state)
{
	struct fixture *f = *state;
	touch(f->dirfd, "r");
	ino_node *n = lookup(f, ino_table_root(f->t), "r");
	ino_node_ref(f->t, n);
	ino_table_forget(f->t, n, 1);
	assert_int_equal(stats(f).nodes, 1);
	ino_node_unref(f->t, n);
	assert_int_equal(stats(f).nodes, 0);
}

/* Node ids are slots, never pointers: a forgotten id resolves to nothing,
 * and is not handed out again while older freed ids wait. */
static void test_ids_validated(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t);
	assert_int_equal(root->id, 1);
	assert_ptr_equal(ino_table_get(f->t, 1), root);
	assert_null(ino_table_get(f->t, 0));
	assert_null(ino_table_get(f->t, UINT64_MAX));
	assert_null(ino_table_get(f->t, 1ull << 40));
	touch(f->dirfd, "a");
	touch(f->dirfd, "b");
	ino_node *a = lookup(f, root, "a"), *b = lookup(f, root, "b");
	assert_int_not_equal(a->id, b->id);
	assert_ptr_equal(ino_table_get(f->t, a->id), a);
	assert_ptr_equal(ino_table_get(f->t, b->id), b);
	uint64_t aid = a->id, agen = a->generation;
	ino_table_forget(f->t, a, 1);
	assert_null(ino_table_get(f->t, aid));
	/* a file handle's LOOKUP(id, ".") of a forgotten node: brought back
	 * with its id and generation in handle mode, nothing in path mode */
	ino_node *back = ino_table_get_lookup(f->t, aid, 1);
	if (ino_table_handle_mode(f->t)) {
		assert_non_null(back);
		assert_int_equal(back->id, aid);
		assert_int_equal(back->generation, agen);
		assert_ptr_equal(lookup(f, root, "a"), back); /* the name finds it */
		ino_table_forget(f->t, back, 2);
	} else {
		assert_null(back);
	}
	/* once the file is gone, nothing comes back in either mode */
	assert_int_equal(unlinkat(f->dirfd, "a", 0), 0);
	assert_null(ino_table_get_lookup(f->t, aid, 1));
	touch(f->dirfd, "a");
	ino_node *a2 = lookup(f, root, "a");
	assert_int_not_equal(a2->id, aid);
	assert_int_not_equal(a2->generation, agen);
	assert_ptr_equal(ino_table_get_lookup(f->t, b->id, 1), b);
	ino_table_forget(f->t, b, 2);
	ino_table_forget(f->t, a2, 1);
	assert_int_equal(stats(f).nodes, 0);
}

/* Two tables (two mounts) start their generations apart. */
static void test_generations_differ_between_tables(void **state)
{
	struct fixture *f = *state;
	ino_table *t2;
	assert_int_equal(ino_table_new(f->dirfd, false, 4, &t2), 0);
	touch(f->dirfd, "g");
	ino_node *n1 = lookup(f, ino_table_root(f->t), "g");
	struct stat st;
	assert_int_equal(fstatat(f->dirfd, "g", &st, AT_SYMLINK_NOFOLLOW), 0);
	int fd = openat(f->dirfd, "g", O_PATH | O_CLOEXEC);
	ino_node *n2;
	assert_int_equal(ino_table_insert(t2, ino_table_root(t2), "g", fd, &st, 1, &n2), 0);
	assert_int_equal(n1->id, n2->id); /* same slot in both... */
	assert_int_not_equal((uint32_t)n1->generation, (uint32_t)n2->generation); /* ...told apart */
	ino_table_forget(t2, n2, 1);
	ino_table_free(t2);
	ino_table_forget(f->t, n1, 1);
}

/* Paths come from the remembered names, in both modes. */
static void test_paths(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t);
	char buf[64];
	assert_int_equal(mkdirat(f->dirfd, "d", 0755), 0);
	assert_int_equal(mkdirat(f->dirfd, "d/e", 0755), 0);
	touch(f->dirfd, "d/e/f.c");
	ino_node *d = lookup(f, root, "d"), *e = lookup(f, d, "e"), *x = lookup(f, e, "f.c");
	assert_int_equal(ino_node_path(f->t, root, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(ino_node_path(f->t, x, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "d/e/f.c");
	assert_int_equal(ino_node_path_from(f->t, d, x, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "e/f.c");
	assert_int_equal(ino_node_path_from(f->t, x, d, buf, sizeof(buf)), -EXDEV);
	assert_int_equal(ino_node_path(f->t, x, buf, 7), -ENAMETOOLONG);
	/* renamed: the new name */
	assert_int_equal(renameat(f->dirfd, "d/e/f.c", f->dirfd, "d/g.c"), 0);
	ino_table_renamed(f->t, x, d, "g.c");
	assert_int_equal(ino_node_path(f->t, x, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "d/g.c");
	/* a second link, then the remembered name removed: nameless */
	assert_int_equal(linkat(f->dirfd, "d/g.c", f->dirfd, "h.c", 0), 0);
	struct stat st;
	assert_int_equal(fstatat(f->dirfd, "h.c", &st, 0), 0);
	assert_int_equal(unlinkat(f->dirfd, "d/g.c", 0), 0);
	ino_table_name_removed(f->t, st.st_dev, st.st_ino, d, "g.c");
	assert_int_equal(ino_node_path(f->t, x, buf, sizeof(buf)), -ENOENT);
	/* looked up again by its other name */
	assert_ptr_equal(lookup(f, root, "h.c"), x);
	assert_int_equal(ino_node_path(f->t, x, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "h.c");
	ino_table_forget(f->t, x, 2);
	ino_table_forget(f->t, e, 1);
	ino_table_forget(f->t, d, 1);
	assert_int_equal(stats(f).nodes, 0);
}

/* A file that lost its last link: the table drops its cached fd at once,
 * so the daemon does not keep the deleted file's space; a directory keeps
 * its fd (a process may still have it open or as its cwd). */
static void test_detach_drops_fd(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t);
	struct stat fst, dst;
	touch(f->dirfd, "big");
	assert_int_equal(mkdirat(f->dirfd, "dir", 0755), 0);
	ino_node *n = lookup(f, root, "big"), *dn = lookup(f, root, "dir");
	assert_int_equal(stats(f).fds_open, 2);
	assert_int_equal(fstatat(f->dirfd, "big", &fst, 0), 0);
	assert_int_equal(fstatat(f->dirfd, "dir", &dst, 0), 0);
	assert_int_equal(unlinkat(f->dirfd, "big", 0), 0);
	assert_int_equal(unlinkat(f->dirfd, "dir", AT_REMOVEDIR), 0);
	assert_ptr_equal(ino_table_detach(f->t, fst.st_dev, fst.st_ino), n);
	assert_ptr_equal(ino_table_detach(f->t, dst.st_dev, dst.st_ino), dn);
	assert_true(ino_node_detached(f->t, n));
	assert_int_equal(stats(f).fds_open, 1);
	char buf[16];
	assert_int_equal(ino_node_path(f->t, n, buf, sizeof(buf)), -ENOENT);
	/* a detached node pinned during detach drops its fd at the last put */
	touch(f->dirfd, "pinned");
	ino_node *p = lookup(f, root, "pinned");
	int fd = ino_node_fd_get(f->t, p);
	assert_true(fd >= 0);
	assert_int_equal(fstatat(f->dirfd, "pinned", &fst, 0), 0);
	assert_int_equal(unlinkat(f->dirfd, "pinned", 0), 0);
	ino_table_detach(f->t, fst.st_dev, fst.st_ino);
	assert_int_equal(stats(f).fds_open, 2);
	ino_node_fd_put(f->t, p);
	assert_int_equal(stats(f).fds_open, 1);
	ino_table_forget(f->t, p, 1);
	ino_table_forget(f->t, n, 1);
	ino_table_forget(f->t, dn, 1);
	assert_int_equal(stats(f).nodes, 0);
}

/* ino_table_moved: the node takes another inode (a copy made for a rename
 * across filesystems) and keeps its id and generation; it reopens as the
 * new inode, by handle or by its new name. */
static void test_moved(void **state)
{
	struct fixture *f = *state;
	ino_node *root = ino_table_root(f->t), *keep[8];
	struct stat sst, cst;
	touch(f->dirfd, "src");
	touch(f->dirfd, ".copy");
	ino_node *n = lookup(f, root, "src");
	uint64_t id = n->id, gen = n->generation;
	assert_int_equal(fstatat(f->dirfd, "src", &sst, 0), 0);
	assert_int_equal(fstatat(f->dirfd, ".copy", &cst, 0), 0);
	int cfd = openat(f->dirfd, ".copy", O_PATH | O_CLOEXEC);
	assert_true(cfd >= 0);
	/* not while a caller uses its fd */
	int pin = ino_node_fd_get(f->t, n);
	assert_true(pin >= 0);
	assert_int_equal(ino_table_moved(f->t, n, cfd, &cst, root, "dst"), -EBUSY);
	ino_node_fd_put(f->t, n);
	/* not onto an inode another node has */
	ino_node *other = lookup(f, root, ".copy");
	assert_int_equal(ino_table_moved(f->t, n, cfd, &cst, root, "dst"), -EEXIST);
	ino_table_forget(f->t, other, 1);
	assert_int_equal(renameat(f->dirfd, ".copy", f->dirfd, "dst"), 0);
	assert_int_equal(ino_table_moved(f->t, n, cfd, &cst, root, "dst"), 0);
	assert_int_equal(unlinkat(f->dirfd, "src", 0), 0);
	assert_ptr_equal(ino_table_find(f->t, NULL, NULL, cst.st_dev, cst.st_ino, 0), n);
	assert_null(ino_table_find(f->t, NULL, NULL, sst.st_dev, sst.st_ino, 0));
	assert_int_equal(n->id, id);
	assert_int_equal(n->generation, gen);
	char buf[16];
	assert_int_equal(ino_node_path(f->t, n, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "dst");
	/* pushed out of the fd cache, it reopens as the copy */
	fill_cache(f, "m", 8, keep);
	int fd = ino_node_fd_get(f->t, n);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_ino, cst.st_ino);
	ino_node_fd_put(f->t, n);
	release_all(f, 8, keep);
	ino_table_forget(f->t, n, 1);
	assert_int_equal(stats(f).nodes, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Can this process use handle mode (file handles on /tmp)? */
static bool handles_available(void)
{
	char dir[] = "/tmp/casfs-inode-probe-XXXXXX";
	ino_table *t = NULL;
	bool ok = false;
	if (!mkdtemp(dir))
		return false;
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && ino_table_new(fd, true, 4, &t) == 0) {
		ok = ino_table_handle_mode(t);
		ino_table_free(t);
	}
	if (fd >= 0)
		close(fd);
	rmdir(dir);
	return ok;
}

#define EXIT_SKIP 77 /* meson's "skipped" */

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_hard_links_share_node),
		T(test_generation_unique),
		T(test_fd_cache_bounded_and_reopen),
		T(test_pinned_fd_not_evicted),
		T(test_nested_reopen),
		T(test_unlinked_and_detached),
		T(test_internal_refs_keep_node),
		T(test_ids_validated),
		T(test_generations_differ_between_tables),
		T(test_paths),
		T(test_detach_drops_fd),
		T(test_moved),
	};
	if (argc != 2 || (strcmp(argv[1], "handles") && strcmp(argv[1], "paths"))) {
		fprintf(stderr, "usage: %s handles|paths\n", argv[0]);
		return 2;
	}
	mode_handles = !strcmp(argv[1], "handles");
	if (mode_handles && !handles_available()) {
		if (geteuid() == 0) {
			printf("FAIL handle mode: root on /tmp did not get file handles\n");
			return 1;
		}
		printf("SKIP handle mode: needs CAP_DAC_READ_SEARCH (run as root)\n");
		return EXIT_SKIP;
	}
	return cmocka_run_group_tests_name(mode_handles ? "inode, handle mode" : "inode, path mode", tests, NULL,
					   NULL);
}
