/* Unit tests for cache/store.c: location, creation, refusal of bad stores. */
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

#include "store.h"

static char tmpdir[64];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/casfs-store-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_default_path(void **state)
{
	char buf[PATH_MAX];
	setenv("CASFS_STORE", "/x/store", 1);
	assert_int_equal(cache_store_default_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/x/store");
	unsetenv("CASFS_STORE");
	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	assert_int_equal(cache_store_default_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/x/cache/casfs");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(cache_store_default_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/home/u/.cache/casfs");
	unsetenv("HOME");
	assert_int_equal(cache_store_default_path(buf, sizeof(buf)), -ENOENT);
	setenv("CASFS_STORE", "/a/long/path", 1);
	assert_int_equal(cache_store_default_path(buf, 4), -ENAMETOOLONG);
	unsetenv("CASFS_STORE");
}

static void test_create_and_reopen(void **state)
{
	char path[PATH_MAX];
	const char *msg;
	cache_store *s;
	struct stat st;
	snprintf(path, sizeof(path), "%s/a/b/store", tmpdir);
	assert_int_equal(cache_store_open(path, &s, &msg), 0);
	assert_non_null(realpath(path, NULL) ? s : NULL);
	assert_int_equal(fstatat(cache_store_dirfd(s), "objects", &st, 0), 0);
	assert_true(S_ISDIR(st.st_mode));
	cache_store_close(s);
	assert_int_equal(cache_store_open(path, &s, &msg), 0);
	cache_store_close(s);
}

static void test_refusals(void **state)
{
	char path[PATH_MAX], fmt[PATH_MAX + 8];
	const char *msg;
	cache_store *s;
	/* a file is not a store */
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	close(fd);
	assert_int_equal(cache_store_open(path, &s, &msg), -ENOTDIR);
	assert_non_null(msg);
	/* a store from a newer format */
	snprintf(path, sizeof(path), "%s/newer", tmpdir);
	mkdir(path, 0755);
	snprintf(fmt, sizeof(fmt), "%s/FORMAT", path);
	FILE *f = fopen(fmt, "w");
	fprintf(f, "casfs-store 99\n");
	fclose(f);
	assert_int_equal(cache_store_open(path, &s, &msg), -EPROTO);
	assert_non_null(strstr(msg, "newer"));
	/* garbage FORMAT */
	f = fopen(fmt, "w");
	fprintf(f, "something else\n");
	fclose(f);
	assert_int_equal(cache_store_open(path, &s, &msg), -EINVAL);
}

/* Commands that only read a store open it with cache_store_open_existing:
 * a mistyped path is refused and nothing is created there. */
static void test_open_existing(void **state)
{
	char path[PATH_MAX], sub[PATH_MAX + 16];
	const char *msg;
	cache_store *s = NULL;
	struct stat st;
	snprintf(path, sizeof(path), "%s/missing/store", tmpdir);
	assert_int_equal(cache_store_open_existing(path, &s, &msg), -ENOENT);
	assert_null(s);
	assert_string_equal(msg, "does not exist");
	snprintf(sub, sizeof(sub), "%s/missing", tmpdir);
	assert_int_equal(stat(sub, &st), -1); /* no parent made either */
	/* an empty directory is not adopted */
	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(cache_store_open_existing(path, &s, &msg), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(msg, "not a casfs store"));
	snprintf(sub, sizeof(sub), "%s/FORMAT", path);
	assert_int_equal(stat(sub, &st), -1);
	snprintf(sub, sizeof(sub), "%s/objects", path);
	assert_int_equal(stat(sub, &st), -1);
	/* a file */
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	assert_int_equal(cache_store_open_existing(path, &s, &msg), -ENOTDIR);
	/* a store made by cache_store_open opens */
	snprintf(path, sizeof(path), "%s/real", tmpdir);
	assert_int_equal(cache_store_open(path, &s, &msg), 0);
	cache_store_close(s);
	s = NULL;
	assert_int_equal(cache_store_open_existing(path, &s, &msg), 0);
	assert_non_null(s);
	assert_int_equal(fstatat(cache_store_dirfd(s), "objects", &st, 0), 0);
	cache_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_path),
		cmocka_unit_test_setup_teardown(test_create_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_existing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
