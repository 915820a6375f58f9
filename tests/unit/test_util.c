/* Unit tests for cli/util.c: the option value parsers (sizes above all),
 * absolute paths, and the one-line usage error. */
#include <errno.h>
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

#include "cli.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

static void test_size_valid(void **state)
{
	static const struct {
		const char *s;
		uint64_t want;
	} cases[] = {
		{ "0", 0 },
		{ "1", 1 },
		{ "123456", 123456 },
		{ "10B", 10 },
		{ "10b", 10 },
		{ "1K", KIB },
		{ "1k", KIB },
		{ "10KB", 10 * KIB },
		{ "10KiB", 10 * KIB },
		{ "10kib", 10 * KIB },
		{ "500M", 500 * MIB },
		{ "5G", 5 * GIB },
		{ "5GB", 5 * GIB },
		{ "2t", 2 * TIB },
		{ "1.5GiB", 3 * GIB / 2 },
		{ "0.5K", 512 },
		{ ".5K", 512 },
		{ "1.000001K", 1025 - 1 }, /* a millionth of a KiB rounds down to 0 bytes */
		{ "64MiB", 64 * MIB },
		{ "16777215T", 16777215ULL * TIB },             /* the largest whole TiB count that fits */
		{ "18446744073709551615", UINT64_MAX },          /* the largest byte count */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 42;
		int r = cli_parse_size(cases[i].s, &v);
		if (r != 0 || v != cases[i].want)
			fail_msg("cli_parse_size(\"%s\") = %d, %llu; want 0, %llu", cases[i].s, r,
				 (unsigned long long)v, (unsigned long long)cases[i].want);
	}
}

static void test_size_invalid(void **state)
{
	static const char *const bad[] = {
		"", "K", "G5", "-5", "+5", " 5", "5 ", "5 G", "12Q", "5GB5", "1.5", "1.5B", "5Gi", "5iB",
		"5KK", "1..5K", "0x10", "5e3", ".", ".K",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 42;
		int r = cli_parse_size(bad[i], &v);
		if (r != -EINVAL || v != 42)
			fail_msg("cli_parse_size(\"%s\") = %d, %llu; want -EINVAL, untouched", bad[i], r,
				 (unsigned long long)v);
	}
}

static void test_size_range(void **state)
{
	static const char *const big[] = {
		"18446744073709551616",          /* UINT64_MAX + 1 */
		"99999999999999999999",
		"16777216T",                     /* 2^24 TiB = 2^64 */
		"20000000000T",
		"17179869184G",                  /* 2^34 GiB = 2^64 */
	};
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		uint64_t v = 42;
		int r = cli_parse_size(big[i], &v);
		if (r != -ERANGE || v != 42)
			fail_msg("cli_parse_size(\"%s\") = %d, %llu; want -ERANGE, untouched", big[i], r,
				 (unsigned long long)v);
	}
}

static void test_other_values(void **state)
{
	bool all = false;
	cache_put_mode mode = CACHE_PUT_ZSTD;
	int level = 7;
	assert_int_equal(cli_parse_ingest("all", &all), 0);
	assert_true(all);
	assert_int_equal(cli_parse_ingest("none", &all), 0);
	assert_false(all);
	assert_int_equal(cli_parse_ingest("All", &all), -EINVAL);
	assert_int_equal(cli_parse_ingest("", &all), -EINVAL);
	assert_false(all);

	assert_int_equal(cli_parse_compression("auto", &mode), 0);
	assert_int_equal(mode, CACHE_PUT_AUTO);
	assert_int_equal(cli_parse_compression("none", &mode), 0);
	assert_int_equal(mode, CACHE_PUT_RAW);
	assert_int_equal(cli_parse_compression("zstd", &mode), 0);
	assert_int_equal(mode, CACHE_PUT_ZSTD);
	assert_int_equal(cli_parse_compression("lz4", &mode), -EINVAL);
	assert_int_equal(mode, CACHE_PUT_ZSTD);

	assert_int_equal(cli_parse_level("1", &level), 0);
	assert_int_equal(level, 1);
	assert_int_equal(cli_parse_level("22", &level), 0);
	assert_int_equal(level, 22);
	static const char *const bad_levels[] = { "0", "23", "-1", "", "3x", "99999999999999999999", " 3", "+3" };
	for (size_t i = 0; i < sizeof(bad_levels) / sizeof(bad_levels[0]); i++) {
		level = 7;
		assert_int_equal(cli_parse_level(bad_levels[i], &level), -EINVAL);
		assert_int_equal(level, 7);
	}
}

static void test_abspath(void **state)
{
	char dir[] = "/tmp/casfs-util-XXXXXX", cwd[PATH_MAX], buf[PATH_MAX], want[PATH_MAX + 32];
	assert_non_null(mkdtemp(dir));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	char *real = realpath(dir, NULL);
	assert_non_null(real);
	assert_int_equal(chdir(dir), 0);
	/* the last component is kept as given (a stale mount cannot be stat'ed) */
	assert_int_equal(cli_abspath("not-there", buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/not-there", real);
	assert_string_equal(buf, want);
	assert_int_equal(cli_abspath("not-there///", buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
	assert_int_equal(cli_abspath(".", buf, sizeof(buf)), 0);
	assert_string_equal(buf, real);
	assert_int_equal(mkdir("sub", 0755), 0);
	assert_int_equal(cli_abspath("sub/..", buf, sizeof(buf)), 0);
	assert_string_equal(buf, real);
	assert_int_equal(cli_abspath("/", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/");
	/* the parent must exist */
	assert_int_equal(cli_abspath("no-parent/x", buf, sizeof(buf)), -ENOENT);
	/* "" names nothing (not the current directory: casfs mount "$UNSET"
	 * would mount over it) */
	assert_int_equal(cli_abspath("", buf, sizeof(buf)), -ENOENT);
	/* too small a buffer */
	assert_int_equal(cli_abspath("not-there", buf, 4), -ENAMETOOLONG);
	assert_int_equal(rmdir("sub"), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rmdir(dir), 0);
	free(real);
}

/* A usage error is one stderr line naming the help to read, and exit 2. */
static void test_usage_error(void **state)
{
	char path[] = "/tmp/casfs-util-err-XXXXXX", line[512];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	int r1 = cli_usage_error("put", "put needs at least one %s", "FILE");
	int r2 = cli_usage_error(NULL, "unknown command '%s'", "x");
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	assert_int_equal(r1, CLI_EXIT_USAGE);
	assert_int_equal(r2, CLI_EXIT_USAGE);
	assert_int_equal(CLI_EXIT_USAGE, 2);
	FILE *f = fdopen(fd, "r");
	assert_non_null(f);
	rewind(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "casfs: put needs at least one FILE (see 'casfs put --help')\n");
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "casfs: unknown command 'x' (see 'casfs help')\n");
	assert_null(fgets(line, sizeof(line), f));
	fclose(f);
	unlink(path);
}

/* cli_realpath answers as realpath(3) does: through symlinked directories
 * and files, "..", doubled slashes, missing names and files used as
 * directories, the second time from its memo of directories. */
static void test_realpath(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/casfs-rp.XXXXXX", p[PATH_MAX], want[PATH_MAX], got[PATH_MAX];
	assert_non_null(mkdtemp(tmpl));
	static const char *dirs[] = { "a", "a/b", "c" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmpl, dirs[i]);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	snprintf(p, sizeof(p), "%s/a/b/f.h", tmpl);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/l", tmpl);
	assert_int_equal(symlink("a/b", p), 0);      /* a directory link */
	snprintf(p, sizeof(p), "%s/c/g.h", tmpl);
	assert_int_equal(symlink("../a/b/f.h", p), 0); /* a file link */
	snprintf(p, sizeof(p), "%s/c/dangling", tmpl);
	assert_int_equal(symlink("nowhere", p), 0);
	static const char *cases[] = {
		"", "/a", "/a/b", "/a/b/f.h", "/l/f.h", "/l", "/c/g.h", "/a//b/f.h", "/a/b/../b/f.h",
		"/a/./b/f.h", "/l/../f.h", "/a/b/missing.h", "/missing/f.h", "/a/b/f.h/x", "/c/dangling",
		"/a/b/f.h/", "/a/b/", "/a/b/.", "/a/b/..",
	};
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			snprintf(p, sizeof(p), "%s%s", tmpl, cases[i]);
			errno = 0;
			char *w = realpath(p, want);
			int we = errno;
			errno = 0;
			char *g = cli_realpath(p, got);
			int ge = errno;
			if (w) {
				assert_non_null(g);
				assert_string_equal(got, want);
			} else {
				assert_null(g);
				assert_int_equal(ge, we);
			}
		}
	}
	/* the memo keeps the directory's old resolution; a new file in it is
	 * still seen */
	snprintf(p, sizeof(p), "%s/a/b/new.h", tmpl);
	f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/l/new.h", tmpl);
	assert_non_null(cli_realpath(p, got));
	snprintf(want, sizeof(want), "%s/a/b/new.h", tmpl);
	assert_non_null(realpath(want, p));
	assert_string_equal(got, p);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_valid),
		cmocka_unit_test(test_size_invalid),
		cmocka_unit_test(test_size_range),
		cmocka_unit_test(test_other_values),
		cmocka_unit_test(test_abspath),
		cmocka_unit_test(test_realpath),
		cmocka_unit_test(test_usage_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
