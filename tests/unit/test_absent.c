/* Unit tests for cache/absent.c: a name is known absent only under the
 * stamps it was recorded with, per directory; the set stays bounded; and
 * the stamps of a real directory change when a name is added, so the rule
 * the set relies on holds on the filesystem the tests run on. */
#include <errno.h>
#include <fcntl.h>
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

#include "absent.h"

static const cache_dir_stamp D1 = { .dev = 1, .ino = 10, .mtime_ns = 100, .ctime_ns = 200 };
static const cache_dir_stamp D2 = { .dev = 1, .ino = 11, .mtime_ns = 100, .ctime_ns = 200 };

static void test_stamps_and_directories(void **state)
{
	(void)state;
	cache_absent *a;
	assert_int_equal(cache_absent_new(100, &a), 0);
	assert_false(cache_absent_has(a, &D1, "stdio.h"));
	cache_absent_add(a, &D1, "stdio.h");
	assert_true(cache_absent_has(a, &D1, "stdio.h"));
	assert_false(cache_absent_has(a, &D1, "stdio.hh"));
	assert_false(cache_absent_has(a, &D1, "stdio"));
	assert_false(cache_absent_has(a, &D2, "stdio.h")); /* another directory */
	cache_dir_stamp other_dev = D1;
	other_dev.dev = 2;
	assert_false(cache_absent_has(a, &other_dev, "stdio.h"));
	/* the directory changed: mtime or ctime */
	cache_dir_stamp later = D1;
	later.mtime_ns++;
	assert_false(cache_absent_has(a, &later, "stdio.h"));
	later = D1;
	later.ctime_ns++;
	assert_false(cache_absent_has(a, &later, "stdio.h"));
	/* recorded again under the new stamps: the old ones no longer count */
	cache_absent_add(a, &later, "stdio.h");
	assert_true(cache_absent_has(a, &later, "stdio.h"));
	assert_false(cache_absent_has(a, &D1, "stdio.h"));
	assert_int_equal(cache_absent_count(a), 1);
	cache_absent_free(a);
	cache_absent_free(NULL);
}

static void test_bounded(void **state)
{
	(void)state;
	cache_absent *a;
	assert_int_equal(cache_absent_new(50, &a), 0);
	char name[32];
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "h%d.h", i);
		cache_absent_add(a, &D1, name);
	}
	assert_int_equal(cache_absent_count(a), 50);
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "h%d.h", i);
		assert_true(cache_absent_has(a, &D1, name));
	}
	/* the 51st empties the set and starts over */
	cache_absent_add(a, &D1, "h50.h");
	assert_int_equal(cache_absent_count(a), 1);
	assert_true(cache_absent_has(a, &D1, "h50.h"));
	assert_false(cache_absent_has(a, &D1, "h0.h"));
	/* many more than fit, on several directories: never more than 50 */
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cache_absent_add(a, i % 2 ? &D1 : &D2, name);
		assert_true(cache_absent_count(a) <= 50);
		assert_true(cache_absent_has(a, i % 2 ? &D1 : &D2, name));
	}
	cache_absent_free(a);
}

/* What the set relies on: adding or removing a name changes the
 * directory's stamps (here, after the stamps were read: multigrain
 * timestamps or a tick between). */
static void test_real_directory_stamps_move(void **state)
{
	(void)state;
	char dir[] = "/tmp/casfs-absent-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dfd = open(dir, O_PATH | O_DIRECTORY);
	assert_true(dfd >= 0);
	struct stat st;
	cache_dir_stamp s0, s1, s2;
	assert_int_equal(fstat(dfd, &st), 0);
	cache_dir_stamp_of(&st, &s0);
	int fd = openat(dfd, "new.h", O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(fstat(dfd, &st), 0);
	cache_dir_stamp_of(&st, &s1);
	assert_true(s1.ctime_ns != s0.ctime_ns || s1.mtime_ns != s0.mtime_ns);
	assert_int_equal(unlinkat(dfd, "new.h", 0), 0);
	assert_int_equal(fstat(dfd, &st), 0);
	cache_dir_stamp_of(&st, &s2);
	assert_true(s2.ctime_ns != s1.ctime_ns || s2.mtime_ns != s1.mtime_ns);
	assert_true(s2.dev == s0.dev && s2.ino == s0.ino);
	close(dfd);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stamps_and_directories),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_real_directory_stamps_move),
	};
	return cmocka_run_group_tests_name("absent", tests, NULL, NULL);
}
