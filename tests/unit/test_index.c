/* Unit tests for cache/index.c: file records, the racy-timestamp rule,
 * persistence across reopen and concurrent writers. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "index.h"

static char dir[64];
static cache_store *store;

static int setup(void **state)
{
	const char *msg;
	snprintf(dir, sizeof(dir), "/tmp/casfs-index-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return cache_store_open(dir, &store, &msg);
}

static int teardown(void **state)
{
	char cmd[128];
	cache_store_close(store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static cache_file_entry entry(uint64_t ino, int64_t ctime, int64_t hashed_at)
{
	cache_file_entry e = { .dev = 42, .ino = ino };
	hasher_digest_buffer(&ino, sizeof(ino), &e.rec.digest);
	e.rec.size = ino * 10;
	e.rec.mtime_ns = ctime - 5;
	e.rec.ctime_ns = ctime;
	e.rec.hashed_at_ns = hashed_at;
	return e;
}

static void test_put_get_reopen(void **state)
{
	cache_index *ix;
	cache_file_rec rec;
	assert_int_equal(cache_index_open(store, &ix), 0);
	assert_int_equal(cache_index_file_get(ix, 42, 1, &rec), -ENOENT);
	cache_file_entry e[100];
	for (int i = 0; i < 100; i++)
		e[i] = entry((uint64_t)i + 1, 1000000000, 2000000000);
	assert_int_equal(cache_index_file_put(ix, e, 100), 0);
	cache_index_close(ix);

	assert_int_equal(cache_index_open(store, &ix), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(cache_index_file_get(ix, 42, (uint64_t)i + 1, &rec), 0);
		assert_true(hasher_digest_equal(&rec.digest, &e[i].rec.digest));
		assert_int_equal(rec.size, e[i].rec.size);
		assert_int_equal(rec.ctime_ns, e[i].rec.ctime_ns);
	}
	assert_int_equal(cache_index_file_del(ix, 42, 7), 0);
	assert_int_equal(cache_index_file_get(ix, 42, 7, &rec), -ENOENT);
	assert_int_equal(cache_index_file_get(ix, 43, 8, &rec), -ENOENT); /* other dev */
	cache_index_close(ix);
}

static void test_valid_rule(void **state)
{
	cache_file_entry e = entry(5, 10 * 1000000000LL, 10 * 1000000000LL + CACHE_RACY_NS);
	struct stat st = { .st_size = 50 };
	st.st_mtim.tv_sec = 9;
	st.st_mtim.tv_nsec = 999999995;
	st.st_ctim.tv_sec = 10;
	assert_true(cache_file_rec_valid(&e.rec, &st));
	/* hashed inside the racy window: not trusted */
	e.rec.hashed_at_ns = e.rec.ctime_ns + CACHE_RACY_NS - 1;
	assert_false(cache_file_rec_valid(&e.rec, &st));
	e.rec.hashed_at_ns = e.rec.ctime_ns + CACHE_RACY_NS;
	/* any stat difference: not valid */
	st.st_size = 51;
	assert_false(cache_file_rec_valid(&e.rec, &st));
	st.st_size = 50;
	st.st_ctim.tv_nsec = 1;
	assert_false(cache_file_rec_valid(&e.rec, &st));
	st.st_ctim.tv_nsec = 0;
	st.st_mtim.tv_nsec = 0;
	assert_false(cache_file_rec_valid(&e.rec, &st));
}

/* One environment per process, shared by its threads (an LMDB rule). */
static cache_index *shared_ix;

static void *writer(void *arg)
{
	uint64_t base = (uint64_t)(uintptr_t)arg;
	for (uint64_t i = 0; i < 200; i++) {
		cache_file_entry e = entry(base + i, 1, 2);
		if (cache_index_file_put(shared_ix, &e, 1) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent_threads_and_processes(void **state)
{
	pthread_t th[4];
	pid_t pid = fork();
	if (pid == 0) {
		if (cache_index_open(store, &shared_ix) < 0)
			_exit(1);
		void *r = writer((void *)(uintptr_t)100000);
		cache_index_close(shared_ix);
		_exit(r ? 1 : 0);
	}
	assert_int_equal(cache_index_open(store, &shared_ix), 0);
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, writer, (void *)(i * 1000));
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		assert_null(r);
	}
	cache_index_close(shared_ix);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cache_index *ix;
	cache_file_rec rec;
	assert_int_equal(cache_index_open(store, &ix), 0);
	for (uint64_t b = 0; b < 4000; b += 1000)
		for (uint64_t i = 0; i < 200; i++)
			assert_int_equal(cache_index_file_get(ix, 42, b + i, &rec), 0);
	for (uint64_t i = 0; i < 200; i++)
		assert_int_equal(cache_index_file_get(ix, 42, 100000 + i, &rec), 0);
	cache_index_close(ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_reopen, setup, teardown),
		cmocka_unit_test(test_valid_rule),
		cmocka_unit_test_setup_teardown(test_concurrent_threads_and_processes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
