/* Unit tests for cache/action.c: relativizing against the root, key
 * material and a pinned key, manifests and records (building, encoding,
 * every truncation, every bit flip, re-sealed mutations, random bytes),
 * listings, matching through a probe over an in-memory tree, the root
 * scanner across chunk boundaries, compiler command lines and gcc
 * dependency files.
 *
 * Randomized tests print their seed; CASFS_TEST_SEED=<n> replays one. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>

#include "action.h"
#include "test_rng.h"

/* ---- helpers ---------------------------------------------------------------- */

static size_t rnd(size_t n)
{
	return n ? (size_t)(rng() % n) : 0;
}

static char *rel(const char *s, const char *root)
{
	char *r = action_relativize(s, root);
	assert_non_null(r);
	return r;
}

static void expect_rel(const char *s, const char *root, const char *want)
{
	char *r = rel(s, root);
	if (strcmp(r, want) != 0)
		fail_msg("relativize(\"%s\", \"%s\") = \"%s\", want \"%s\"", s, root, r, want);
	char *back = action_absolutize(r, root);
	assert_non_null(back);
	assert_string_equal(back, s);
	free(back);
	free(r);
}

static hasher_digest dg(const char *s)
{
	hasher_digest d;
	hasher_digest_buffer(s, strlen(s), &d);
	return d;
}

static char *hex(const hasher_digest *d)
{
	static char buf[HASHER_HEX_LEN + 1];
	hasher_digest_to_hex(d, buf);
	return buf;
}

/* ---- relativize / absolutize ---------------------------------------------------- */

static void test_relativize_boundaries(void **state)
{
	const char *R = "/a/b";
	expect_rel("/a/b", R, "\x01R");
	expect_rel("/a/b/x.c", R, "\x01R/x.c");
	expect_rel("/a/b/", R, "\x01R/");
	/* a root that is a prefix of another name */
	expect_rel("/a/bc", R, "/a/bc");
	expect_rel("/a/bc/x", R, "/a/bc/x");
	expect_rel("/a/b.d", R, "/a/b.d");
	expect_rel("/a/b-2/x", R, "/a/b-2/x");
	expect_rel("/a/b\xc3\xa9/x", R, "/a/b\xc3\xa9/x"); /* "/a/bé": UTF-8 continues a name */
	/* inside options */
	expect_rel("-I/a/b/include", R, "-I\x01R/include");
	expect_rel("-I/a/b", R, "-I\x01R");
	expect_rel("-o/a/b/out/x.o", R, "-o\x01R/out/x.o");
	expect_rel("-isystem/a/b/sys", R, "-isystem\x01R/sys");
	expect_rel("-ffile-prefix-map=/a/b=.", R, "-ffile-prefix-map=\x01R=.");
	expect_rel("-fdebug-prefix-map=/a/b/=", R, "-fdebug-prefix-map=\x01R/=");
	expect_rel("-Wl,-rpath,/a/b/lib", R, "-Wl,-rpath,\x01R/lib");
	expect_rel("--sysroot=/a/b/sysroot", R, "--sysroot=\x01R/sysroot");
	expect_rel("-DDIR=\"/a/b/share\"", R, "-DDIR=\"\x01R/share\"");
	expect_rel("@/a/b/args.rsp", R, "@\x01R/args.rsp");
	/* several occurrences, separators between them */
	expect_rel("/a/b:/a/b/inc:/a/bc:/a/b", R, "\x01R:\x01R/inc:/a/bc:\x01R");
	expect_rel("cc -I/a/b/x -o /a/b/y.o /a/b/y.c", R, "cc -I\x01R/x -o \x01R/y.o \x01R/y.c");
	/* not the root: inside a longer path, a relative name, leaving the root */
	expect_rel("/x/a/b", R, "/x/a/b");
	expect_rel("//a/b", R, "//a/b");
	expect_rel("/x-I/a/b", R, "/x-I/a/b");
	expect_rel("build/a/b", R, "build/a/b");
	expect_rel("x-I/a/b", R, "x-I/a/b");
	expect_rel("/a/b/..", R, "/a/b/..");
	expect_rel("/a/b/../c", R, "/a/b/../c");
	expect_rel("/a/b/..x", R, "\x01R/..x"); /* "..x" is a name */
	/* a root that repeats itself */
	expect_rel("/a/a/a", "/a/a", "\x01R/a");
	/* root "/" relativizes nothing */
	expect_rel("/a/b", "/", "/a/b");
	expect_rel("/", "/", "/");
	/* literal \x01 stays unambiguous */
	expect_rel("a\x01Rb", R, "a\x01\x01Rb");
	expect_rel("\x01/a/b", R, "\x01\x01\x01R");
	expect_rel("\x01\x01", R, "\x01\x01\x01\x01");
	expect_rel("", R, "");

	/* bad roots */
	const char *bad[] = { "a/b", "/a/b/", "", "/a\x01" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		errno = 0;
		assert_null(action_relativize("/a/b", bad[i]));
		assert_int_equal(errno, EINVAL);
		errno = 0;
		assert_null(action_absolutize("x", bad[i]));
		assert_int_equal(errno, EINVAL);
	}
	/* absolutize of something relativize never writes */
	errno = 0;
	assert_null(action_absolutize("a\x01X", R));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(action_absolutize("a\x01", R));
	assert_int_equal(errno, EINVAL);

	/* the same text under two roots relativizes alike */
	char *x = rel("-I/s/1/inc", "/s/1"), *y = rel("-I/t/22/inc", "/t/22");
	assert_string_equal(x, y);
	free(x);
	free(y);
}

static void test_relativize_roundtrip_random(void **state)
{
	static const char *roots[] = { "/a/b", "/a", "/tmp/m/sb/1/execroot/ws", "/", "/a/a" };
	static const char *frags[] = { "/a/b", "/a", "/a/bc", "-I", "/", "..", ".", "\x01", "R",
				       "\x01R", "x", "=", ",", ":", " ", "@", "-", "\xc3\xa9", "/a/a" };
	seed_rng("relativize_roundtrip");
	for (int round = 0; round < 20000; round++) {
		char s[256] = "";
		size_t n = rnd(12);
		for (size_t i = 0; i < n; i++)
			strcat(s, frags[rnd(sizeof(frags) / sizeof(*frags))]);
		const char *root = roots[rnd(sizeof(roots) / sizeof(*roots))];
		char *r = rel(s, root);
		char *back = action_absolutize(r, root);
		assert_non_null(back);
		if (strcmp(back, s) != 0)
			fail_msg("round %d: \"%s\" under %s came back as \"%s\"", round, s, root, back);
		/* the placeholder appears only where the root was */
		if (strlen(root) > 1 && !strstr(s, root)) {
			for (const char *p = r; (p = strchr(p, '\x01')); p += 2)
				assert_int_equal(p[1], '\x01');
		}
		free(back);
		free(r);
	}
}

static void test_path_check(void **state)
{
	const char *good[] = { "", "a", "a/b", "src/x.c", ".hidden", "..x", "x..", "a b/c\xc3\xa9" };
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		assert_int_equal(action_path_check(ACTION_SCOPE_ROOT, good[i]), 0);
		assert_int_equal(action_path_check(ACTION_SCOPE_MOUNT, good[i]), 0);
	}
	const char *bad[] = { "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "./a", "a/.." };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(action_path_check(ACTION_SCOPE_ROOT, bad[i]), -EINVAL);
	assert_int_equal(action_path_check(ACTION_SCOPE_ABS, "/"), 0);
	assert_int_equal(action_path_check(ACTION_SCOPE_ABS, "/usr/include/stdio.h"), 0);
	assert_int_equal(action_path_check(ACTION_SCOPE_ABS, "usr/include"), -EINVAL);
	assert_int_equal(action_path_check(ACTION_SCOPE_ABS, "//usr"), -EINVAL);
	assert_int_equal(action_path_check(ACTION_SCOPE_ABS, "/usr/../x"), -EINVAL);
	assert_int_equal(action_path_check(3, "a"), -EINVAL);
	char *longp = malloc(PATH_MAX + 1);
	memset(longp, 'a', PATH_MAX);
	longp[PATH_MAX] = '\0';
	assert_int_equal(action_path_check(ACTION_SCOPE_ROOT, longp), -EINVAL);
	longp[PATH_MAX - 1] = '\0';
	assert_int_equal(action_path_check(ACTION_SCOPE_ROOT, longp), 0);
	free(longp);
}

/* ---- scanner ------------------------------------------------------------------------ */

static bool scan_chunks(const char *needle, const char *data, size_t len, const size_t *cuts, size_t ncuts)
{
	action_scan s;
	assert_int_equal(action_scan_init(&s, needle), 0);
	size_t at = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		action_scan_feed(&s, data + at, to - at);
		at = to;
	}
	bool found = s.found;
	action_scan_free(&s);
	return found;
}

static void test_scan_split_everywhere(void **state)
{
	const char *needle = "/tmp/mnt/sb/1/execroot/ws";
	char data[200];
	size_t nl = strlen(needle);
	for (size_t off = 0; off < 40; off += 7) {
		memset(data, 'x', sizeof(data));
		memcpy(data + off, needle, nl);
		size_t len = off + nl + 5;
		/* one cut at every position, and two cuts around every byte */
		for (size_t c = 0; c <= len; c++) {
			assert_true(scan_chunks(needle, data, len, &c, 1));
			size_t two[2] = { c, c + 1 <= len ? c + 1 : len };
			assert_true(scan_chunks(needle, data, len, two, 2));
		}
		/* a near miss, cut everywhere: never found */
		data[off + nl - 1] = 'X';
		for (size_t c = 0; c <= len; c++)
			assert_false(scan_chunks(needle, data, len, &c, 1));
	}
	/* byte by byte, with a self-overlapping needle (the KMP fallback) */
	const char *hay = "aaabaabaaab";
	size_t cuts[16];
	for (size_t i = 0; i < strlen(hay); i++)
		cuts[i] = i;
	assert_true(scan_chunks("aabaaab", hay, strlen(hay), cuts, strlen(hay)));
	assert_false(scan_chunks("aabaaaa", hay, strlen(hay), cuts, strlen(hay)));
	action_scan s;
	assert_int_equal(action_scan_init(&s, ""), -EINVAL);
}

static void test_scan_random_vs_memmem(void **state)
{
	seed_rng("scan_random");
	for (int round = 0; round < 20000; round++) {
		char hay[64], needle[8];
		size_t hl = rnd(sizeof(hay)), nl = 1 + rnd(6);
		for (size_t i = 0; i < hl; i++)
			hay[i] = "ab"[rnd(2)];
		for (size_t i = 0; i < nl; i++)
			needle[i] = "ab"[rnd(2)];
		needle[nl] = '\0';
		size_t cuts[8], nc = rnd(8), last = 0;
		for (size_t i = 0; i < nc; i++) {
			last += rnd(hl - last + 1);
			cuts[i] = last;
		}
		bool want = memmem(hay, hl, needle, nl) != NULL;
		if (scan_chunks(needle, hay, hl, cuts, nc) != want)
			fail_msg("round %d: needle %s in %.*s", round, needle, (int)hl, hay);
	}
}

/* ---- keys ---------------------------------------------------------------------------- */

struct key_case {
	hasher_digest tools[2];
	const char *root, *cwd;
	const char *argv[8];
	size_t argc;
	const char *env[4];
	size_t nenv;
	uint32_t umask, flags;
	char buf[5][96]; /* storage for base_case's strings */
};

static action_key_in key_in(const struct key_case *c)
{
	return (action_key_in){ .tools = c->tools, .ntools = 2, .root = c->root, .cwd = c->cwd,
				.argv = c->argv, .argc = c->argc, .env = c->env, .nenv = c->nenv,
				.umask = c->umask, .flags = c->flags };
}

static hasher_digest key_of(const struct key_case *c, uint32_t uid)
{
	uint8_t *m;
	size_t n;
	action_key_in in = key_in(c);
	assert_int_equal(action_key_material(&in, &m, &n), 0);
	hasher_digest d;
	action_key_final(m, n, uid, &d);
	free(m);
	return d;
}

/* A compile under root; copies of *c point into c's storage. */
static void base_case(struct key_case *c, const char *root)
{
	*c = (struct key_case){
		.tools = { dg("gcc binary"), dg("cc1 binary") },
		.root = root,
		.argc = 7,
		.nenv = 3,
		.umask = 022,
	};
	snprintf(c->buf[0], 96, "%s/build", root);
	snprintf(c->buf[1], 96, "-I%s/include", root);
	snprintf(c->buf[2], 96, "%s/src/main.c", root);
	snprintf(c->buf[3], 96, "-ffile-prefix-map=%s=.", root);
	snprintf(c->buf[4], 96, "CPATH=%s/sys", root);
	c->cwd = c->buf[0];
	const char *argv[] = { "gcc", "-c", c->buf[1], c->buf[2], "-o", "main.o", c->buf[3] };
	memcpy(c->argv, argv, sizeof(argv));
	c->env[0] = "LANG=C";
	c->env[1] = c->buf[4];
	c->env[2] = "SOURCE_DATE_EPOCH=0";
}

static void test_key_relocation_and_differences(void **state)
{
	struct key_case a, b;
	base_case(&a, "/mnt/sb/1/execroot/ws");
	base_case(&b, "/mnt/sb/22/execroot/ws");
	hasher_digest ka = key_of(&a, 1000), kb = key_of(&b, 1000);
	assert_true(hasher_digest_equal(&ka, &kb)); /* same action, another root */

	/* env order does not matter */
	struct key_case c = a;
	c.env[0] = a.env[2];
	c.env[2] = a.env[0];
	hasher_digest kc = key_of(&c, 1000);
	assert_true(hasher_digest_equal(&ka, &kc));

	/* every difference changes the key */
	hasher_digest seen[32];
	size_t nseen = 0;
	seen[nseen++] = ka;
#define DIFFERS(mutation)                                                   \
	do {                                                                \
		struct key_case m = a;                                      \
		mutation;                                                   \
		hasher_digest k = key_of(&m, 1000);                         \
		for (size_t i = 0; i < nseen; i++)                          \
			if (hasher_digest_equal(&k, &seen[i]))              \
				fail_msg("same key after: %s", #mutation);  \
		seen[nseen++] = k;                                          \
	} while (0)
	DIFFERS(m.tools[0] = dg("another gcc"));
	DIFFERS(m.tools[1] = dg("another cc1"));
	DIFFERS(m.argv[5] = "other.o");
	DIFFERS(m.argv[1] = "-S");
	DIFFERS(m.argc = 6);
	DIFFERS(m.cwd = "/mnt/sb/1/execroot/ws/build2");
	DIFFERS(m.env[0] = "LANG=de_DE.UTF-8");
	DIFFERS(m.nenv = 2);
	DIFFERS(m.env[1] = "LC_ALL=C");
	DIFFERS(m.env[1] = "CPATH=/elsewhere/sys");
	DIFFERS(m.umask = 077);
	DIFFERS(m.flags = ACTION_KF_CACHE_FAILURES);
	DIFFERS(m.flags = ACTION_KF_DEPFILE);
	/* field boundaries: "ab","c" vs "a","bc" */
	DIFFERS((m.argv[5] = "main", m.argv[6] = ".o-ffile-prefix-map=/mnt/sb/1/execroot/ws=."));
	DIFFERS((m.env[0] = "LANG=C=", m.env[2] = "SOURCE_DATE_EPOCH=")); /* name/value split */
#undef DIFFERS
	/* the uid is part of the final key */
	hasher_digest k2 = key_of(&a, 1001);
	assert_false(hasher_digest_equal(&ka, &k2));

	/* bad input */
	uint8_t *mat;
	size_t n;
	struct key_case bad = a;
	bad.env[0] = "NOEQUALS";
	action_key_in in = key_in(&bad);
	assert_int_equal(action_key_material(&in, &mat, &n), -EINVAL);
	bad = a;
	bad.argc = 0;
	in = key_in(&bad);
	assert_int_equal(action_key_material(&in, &mat, &n), -EINVAL);
	bad = a;
	bad.cwd = "relative";
	in = key_in(&bad);
	assert_int_equal(action_key_material(&in, &mat, &n), -EINVAL);
	bad = a;
	bad.root = "/mnt/sb/1/";
	in = key_in(&bad);
	assert_int_equal(action_key_material(&in, &mat, &n), -EINVAL);
}

/* Whether the same command under two roots gets one key: cwd is below
 * the root ("" the root itself) or absolute; arg replaces the -I argument
 * and env the CPATH entry ("%s" stands for the root). */
static bool relocates(const char *cwd, const char *arg, const char *env)
{
	const char *roots[2] = { "/mnt/sb/1/execroot/ws", "/mnt/sb/2/execroot/ws" };
	struct key_case c[2];
	hasher_digest k[2];
	for (int i = 0; i < 2; i++) {
		base_case(&c[i], roots[i]);
		if (cwd[0] == '/')
			snprintf(c[i].buf[0], 96, "%s", cwd);
		else
			snprintf(c[i].buf[0], 96, "%s%s%s", roots[i], cwd[0] ? "/" : "", cwd);
		if (arg)
			snprintf(c[i].buf[1], 96, arg, roots[i]);
		if (env)
			snprintf(c[i].buf[4], 96, env, roots[i]);
		k[i] = key_of(&c[i], 0);
	}
	return hasher_digest_equal(&k[0], &k[1]);
}

/* Names that leave the root by a relative path pin the key to its root. */
static void test_key_pinning(void **state)
{
	static const struct {
		const char *cwd, *arg, *env;
		bool relocates;
	} cases[] = {
		{ "build", NULL, NULL, true },
		{ "build", "-I../include", NULL, true },   /* stays inside */
		{ "build", "-I..", NULL, true },           /* the root itself */
		{ "build", "..", NULL, true },
		{ "build", "-I%s/inc/../x", NULL, true },
		{ "build", "-I/usr/include/../include", NULL, true }, /* absolute, same everywhere */
		{ "build", "-I../../x", NULL, false },     /* leaves the root */
		{ "build", "../../x/y.c", NULL, false },
		{ "build", "-o../../y.o", NULL, false },
		{ "build", "x/../../..", NULL, false },
		{ "build", "-Wl,-rpath,../../lib", NULL, false },
		{ "build", "--sysroot=../..", NULL, false },
		{ "", "-I..", NULL, false },               /* at the root, one up is out */
		{ "build", "-I%s/inc/../../other", NULL, false }, /* under the root, then above it */
		{ "build", "-I%s/../other", NULL, false }, /* root/.. stays literal */
		{ "build", NULL, "CPATH=../../../inc", false },
		{ "/mnt/tools", NULL, NULL, false },       /* cwd outside the root */
		/* an ancestor of the root named whole: a prefix map that rewrites
		 * the root's path below it into what outputs hold */
		{ "build", "-fdebug-prefix-map=/mnt/sb=/S", NULL, false },
		{ "build", "-fdebug-prefix-map=/mnt/sb/=/S/", NULL, false },
		{ "build", "-ffile-prefix-map=/mnt=.", NULL, false },
		{ "build", NULL, "CPATH=/mnt/sb/1", false },
		{ "build", "-I/mnt/sb/include", NULL, true },  /* a path below an ancestor */
		{ "build", "-I/mnt/sbx=", NULL, true },        /* not the ancestor */
		{ "build", "-I/usr/mnt/sb", NULL, true },       /* nor a longer path */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		if (relocates(cases[i].cwd, cases[i].arg, cases[i].env) != cases[i].relocates)
			fail_msg("cwd \"%s\", arg \"%s\", env \"%s\": the key should %s", cases[i].cwd,
				 cases[i].arg ? cases[i].arg : "", cases[i].env ? cases[i].env : "",
				 cases[i].relocates ? "move with the root" : "be pinned");
}

/* The key's encoding is pinned: a change here means ACTION_KEY_VERSION
 * must change too (keys persist across casfs versions). */
static void test_key_golden(void **state)
{
	struct key_case c = {
		.tools = { dg("tool-1"), dg("tool-2") },
		.root = "/r", .cwd = "/r/sub",
		.argv = { "cc", "-c", "/r/a.c", "-o", "a.o" }, .argc = 5,
		.env = { "PATH=/usr/bin:/r/bin", "LANG=C" }, .nenv = 2,
		.umask = 022, .flags = ACTION_KF_DEPFILE,
	};
	hasher_digest k = key_of(&c, 1000);
	assert_string_equal(hex(&k), "4262c5c38bf7f21bf9912a636462cb48");
	/* the material, byte by byte, as the grammar in action.c spells it */
	uint8_t want[512];
	size_t w = 0;
#define U32(v) (want[w++] = (uint8_t)(v), want[w++] = (uint8_t)((v) >> 8), \
		want[w++] = (uint8_t)((v) >> 16), want[w++] = (uint8_t)((v) >> 24))
#define STR(s) (U32(sizeof(s) - 1), memcpy(want + w, s, sizeof(s) - 1), w += sizeof(s) - 1)
	U32(2);
	memcpy(want + w, c.tools[0].bytes, 16), w += 16;
	memcpy(want + w, c.tools[1].bytes, 16), w += 16;
	want[w++] = 0; /* not pinned */
	STR("\x01R/sub");
	U32(5), STR("cc"), STR("-c"), STR("\x01R/a.c"), STR("-o"), STR("a.o");
	U32(2), STR("LANG"), STR("C"), STR("PATH"), STR("/usr/bin:\x01R/bin");
	U32(022), U32(ACTION_KF_DEPFILE);
#undef U32
#undef STR
	uint8_t *m;
	size_t n;
	action_key_in in = key_in(&c);
	assert_int_equal(action_key_material(&in, &m, &n), 0);
	assert_int_equal(n, w);
	assert_memory_equal(m, want, w);
	hasher_digest md;
	hasher_digest_buffer(m, n, &md);
	assert_string_equal(hex(&md), "8f971e7682aa6d58883697b2d37cb14a");
	free(m);
}

static void test_env_default(void **state)
{
	const char *need[] = { "CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH",
			       "LIBRARY_PATH", "COMPILER_PATH", "GCC_EXEC_PREFIX", "SOURCE_DATE_EPOCH",
			       "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "PATH", "GCC_COMPARE_DEBUG",
			       "DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES", "ZERO_AR_DATE", "TZ",
			       "LD_LIBRARY_PATH", "PWD" };
	for (size_t i = 0; i < sizeof(need) / sizeof(*need); i++)
		if (!action_env_listed(action_env_default, need[i]))
			fail_msg("%s is not in the default allowlist", need[i]);
	assert_true(action_env_listed(action_env_default, "CPATH=/x:/y"));
	const char *not[] = { "HOME", "MAKEFLAGS", "CPAT", "CPATHX", "", "USER", "OLDPWD", "TERM" };
	for (size_t i = 0; i < sizeof(not) / sizeof(*not); i++)
		assert_false(action_env_listed(action_env_default, not[i]));
	/* no name twice */
	for (size_t i = 0; action_env_default[i]; i++)
		for (size_t j = i + 1; action_env_default[j]; j++)
			assert_string_not_equal(action_env_default[i], action_env_default[j]);
}

/* ---- manifests ------------------------------------------------------------------------ */

static action_input input(uint8_t kind, uint8_t scope, const char *path, const char *content)
{
	action_input in = { .kind = kind, .scope = scope, .path = (char *)path };
	if (kind == ACTION_IN_EXISTS)
		in.type = S_IFREG;
	if (content)
		in.digest = dg(content);
	return in;
}

static void test_manifest_build(void **state)
{
	action_manifest m = { 0 };
	action_input in = input(ACTION_IN_ABSENT, ACTION_SCOPE_ROOT, "inc/x.h", NULL);
	assert_int_equal(action_manifest_add_input(&m, &in), 0);
	in = input(ACTION_IN_FILE, ACTION_SCOPE_ROOT, "inc/x.h", "later");
	assert_int_equal(action_manifest_add_input(&m, &in), 0); /* dropped */
	in = input(ACTION_IN_FILE, ACTION_SCOPE_MOUNT, "inc/x.h", "other scope");
	assert_int_equal(action_manifest_add_input(&m, &in), 0);
	in = input(ACTION_IN_FILE, ACTION_SCOPE_ABS, "/usr/include/stdio.h", "stdio");
	assert_int_equal(action_manifest_add_input(&m, &in), 0);
	assert_int_equal(m.nin, 3);
	assert_int_equal(m.in[0].kind, ACTION_IN_ABSENT); /* first observation won */

	/* invalid inputs */
	action_input bad[] = {
		input(ACTION_IN_FILE, ACTION_SCOPE_ROOT, "a/../b", "x"),
		input(ACTION_IN_FILE, ACTION_SCOPE_ROOT, "/abs", "x"),
		input(ACTION_IN_FILE, ACTION_SCOPE_ABS, "rel", "x"),
		input(0, ACTION_SCOPE_ROOT, "a", NULL),
		input(6, ACTION_SCOPE_ROOT, "a", NULL),
		input(ACTION_IN_FILE, 3, "a", "x"),
		input(ACTION_IN_ABSENT, ACTION_SCOPE_ROOT, "a", NULL),
		input(ACTION_IN_EXISTS, ACTION_SCOPE_ROOT, "a", NULL),
		input(ACTION_IN_FILE, ACTION_SCOPE_ROOT, "a", "x"),
	};
	bad[6].digest_kind = ACTION_DIGEST_C_SOURCE; /* only files have a digest kind */
	bad[7].type = 0;                             /* exists needs a type */
	bad[8].type = S_IFREG;                       /* files have none */
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (action_manifest_add_input(&m, &bad[i]) != -EINVAL)
			fail_msg("bad input %zu accepted", i);
	assert_int_equal(m.nin, 3);

	/* outputs: the last state of a name stands */
	action_output o = { .kind = ACTION_OUT_FILE, .mode = 0644, .path = "x.o", .size = 3, .digest = dg("v1") };
	assert_int_equal(action_manifest_add_output(&m, &o), 0);
	o.digest = dg("v2");
	assert_int_equal(action_manifest_add_output(&m, &o), 0);
	action_output l = { .kind = ACTION_OUT_SYMLINK, .path = "lnk", .target = "\x01R/x.o" };
	assert_int_equal(action_manifest_add_output(&m, &l), 0);
	action_output rm = { .kind = ACTION_OUT_REMOVED, .path = "x.o" };
	assert_int_equal(action_manifest_add_output(&m, &rm), 0);
	assert_int_equal(m.nout, 2);
	assert_int_equal(m.out[0].kind, ACTION_OUT_REMOVED);
	assert_null(m.out[0].target);
	action_output badout[] = {
		{ .kind = ACTION_OUT_FILE, .mode = 010000, .path = "a" },
		{ .kind = ACTION_OUT_FILE, .path = "" },
		{ .kind = ACTION_OUT_FILE, .path = "a/" },
		{ .kind = ACTION_OUT_SYMLINK, .path = "a" },
		{ .kind = ACTION_OUT_SYMLINK, .path = "a", .target = "" },
		{ .kind = ACTION_OUT_REMOVED, .path = "a", .mode = 0644 },
		{ .kind = ACTION_OUT_DIR, .path = "a", .target = "t" },
		{ .kind = ACTION_OUT_DIR, .mode = 020000 | 0755, .path = "a" },
		{ .kind = ACTION_OUT_SYMLINK, .mode = ACTION_MODE_SGID_CLEARED, .path = "a", .target = "t" },
		{ .kind = 5, .path = "a" },
	};
	/* a directory whose handed-down set-group-ID bit the run cleared */
	action_output sgid = { .kind = ACTION_OUT_DIR, .mode = ACTION_MODE_SGID_CLEARED | 0755, .path = "z" };
	assert_int_equal(action_manifest_add_output(&m, &sgid), 0);
	assert_int_equal(m.out[m.nout - 1].mode, ACTION_MODE_SGID_CLEARED | 0755);
	for (size_t i = 0; i < sizeof(badout) / sizeof(*badout); i++)
		if (action_manifest_add_output(&m, &badout[i]) != -EINVAL)
			fail_msg("bad output %zu accepted", i);

	/* sorting: by scope, then path, bytewise */
	in = input(ACTION_IN_FILE, ACTION_SCOPE_ROOT, "a.c", "a");
	assert_int_equal(action_manifest_add_input(&m, &in), 0);
	in = input(ACTION_IN_DIR, ACTION_SCOPE_ROOT, "\xc3\xa9", "listing");
	assert_int_equal(action_manifest_add_input(&m, &in), 0);
	action_manifest_sort(&m);
	const char *order[] = { "a.c", "inc/x.h", "\xc3\xa9", "inc/x.h", "/usr/include/stdio.h" };
	assert_int_equal(m.nin, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(m.in[i].path, order[i]);
	assert_string_equal(m.out[0].path, "lnk");
	/* adding after sorting still finds the names already there */
	in = input(ACTION_IN_FILE, ACTION_SCOPE_ROOT, "a.c", "again");
	assert_int_equal(action_manifest_add_input(&m, &in), 0);
	assert_int_equal(m.nin, 5);
	/* many more: the arrays grow from wherever they stand */
	for (int i = 0; i < 3000; i++) {
		char p[32];
		snprintf(p, sizeof(p), "gen/%d.h", i % 2000);
		in = input(ACTION_IN_ABSENT, ACTION_SCOPE_ROOT, p, NULL);
		assert_int_equal(action_manifest_add_input(&m, &in), 0);
	}
	assert_int_equal(m.nin, 2005);
	action_manifest_clear(&m);
	action_manifest_clear(&m); /* zeroed: harmless */
}

/* A random name component: any byte but '/' and NUL, never "." or "..". */
static void rand_component(char *out, size_t max)
{
	static const char alpha[] = "abcxyz019._-+ ~@%#$:=,\\\x01\x7f\xc3\xa9\xff";
	size_t n = 1 + rnd(max);
	for (size_t i = 0; i < n; i++)
		out[i] = alpha[rnd(sizeof(alpha) - 1)];
	out[n] = '\0';
	if (!strcmp(out, ".") || !strcmp(out, ".."))
		out[0] = 'd';
}

static void rand_path(char *out, bool absolute)
{
	size_t depth = rnd(4);
	out[0] = '\0';
	for (size_t i = 0; i < depth; i++) {
		char c[16];
		rand_component(c, 10);
		if (i || absolute)
			strcat(out, "/");
		strcat(out, c);
	}
	if (absolute && !depth)
		strcpy(out, "/");
}

static void rand_digest(hasher_digest *d)
{
	for (int i = 0; i < HASHER_DIGEST_LEN; i++)
		d->bytes[i] = (uint8_t)rng();
}

static void rand_stream(action_stream *s)
{
	size_t pick = rnd(10);
	s->size = pick < 6 ? rnd(200) : pick < 7 ? ACTION_INLINE_MAX : pick < 8 ? ACTION_INLINE_MAX + 1 : 1000000 + rnd(1000);
	s->inline_data = s->size <= ACTION_INLINE_MAX;
	if (s->inline_data) {
		s->data = s->size ? malloc(s->size) : NULL;
		for (size_t i = 0; i < s->size; i++)
			s->data[i] = (uint8_t)rng();
		hasher_digest_buffer(s->data, s->size, &s->digest);
	} else {
		rand_digest(&s->digest);
	}
}

static void rand_manifest(action_manifest *m)
{
	static const uint32_t types[] = { S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK };
	char path[128], target[128];
	*m = (action_manifest){ 0 };
	size_t nin = rnd(4) ? rnd(20) : rnd(300);
	for (size_t i = 0; i < nin; i++) {
		action_input in = { .kind = (uint8_t)(1 + rnd(5)), .scope = (uint8_t)rnd(3) };
		rand_path(path, in.scope == ACTION_SCOPE_ABS);
		in.path = path;
		if (in.kind == ACTION_IN_FILE)
			in.digest_kind = (uint8_t)rnd(3);
		if (in.kind == ACTION_IN_EXISTS)
			in.type = types[rnd(7)];
		if (in.kind == ACTION_IN_FILE || in.kind == ACTION_IN_DIR || in.kind == ACTION_IN_SYMLINK)
			rand_digest(&in.digest);
		assert_int_equal(action_manifest_add_input(m, &in), 0);
	}
	size_t nout = rnd(10);
	for (size_t i = 0; i < nout; i++) {
		action_output o = { .kind = (uint8_t)(1 + rnd(4)) };
		do
			rand_path(path, false);
		while (!path[0]);
		o.path = path;
		if (o.kind == ACTION_OUT_FILE || o.kind == ACTION_OUT_DIR)
			o.mode = (uint32_t)rnd(010000);
		if (o.kind == ACTION_OUT_FILE) {
			o.root_text = rnd(2);
			o.size = rng();
			rand_digest(&o.digest);
		}
		if (o.kind == ACTION_OUT_SYMLINK) {
			rand_path(target, rnd(2));
			if (!target[0])
				strcpy(target, "\x01R/t");
			o.target = target;
		}
		assert_int_equal(action_manifest_add_output(m, &o), 0);
	}
	rand_stream(&m->out_stdout);
	rand_stream(&m->out_stderr);
	m->exit_status = (int32_t)rnd(256);
	m->run_ms = rng();
	m->created_ns = (int64_t)rng();
	m->flags = (uint32_t)rnd(ACTION_F_ALL + 1);
	rand_path(path, true);
	m->root_at_record = strdup(path);
	if (rnd(2))
		action_manifest_sort(m);
}

static void assert_stream_equal(const action_stream *a, const action_stream *b)
{
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->inline_data, b->inline_data);
	assert_true(hasher_digest_equal(&a->digest, &b->digest));
	if (a->inline_data && a->size)
		assert_memory_equal(a->data, b->data, a->size);
}

static void assert_manifest_equal(const action_manifest *a, const action_manifest *b)
{
	assert_int_equal(a->nin, b->nin);
	for (size_t i = 0; i < a->nin; i++) {
		assert_int_equal(a->in[i].kind, b->in[i].kind);
		assert_int_equal(a->in[i].scope, b->in[i].scope);
		assert_int_equal(a->in[i].digest_kind, b->in[i].digest_kind);
		assert_int_equal(a->in[i].type, b->in[i].type);
		assert_string_equal(a->in[i].path, b->in[i].path);
		assert_memory_equal(a->in[i].digest.bytes, b->in[i].digest.bytes, HASHER_DIGEST_LEN);
	}
	assert_int_equal(a->nout, b->nout);
	for (size_t i = 0; i < a->nout; i++) {
		assert_int_equal(a->out[i].kind, b->out[i].kind);
		assert_int_equal(a->out[i].root_text, b->out[i].root_text);
		assert_int_equal(a->out[i].mode, b->out[i].mode);
		assert_string_equal(a->out[i].path, b->out[i].path);
		assert_int_equal(a->out[i].size, b->out[i].size);
		assert_memory_equal(a->out[i].digest.bytes, b->out[i].digest.bytes, HASHER_DIGEST_LEN);
		if (a->out[i].target || b->out[i].target)
			assert_string_equal(a->out[i].target, b->out[i].target);
	}
	assert_stream_equal(&a->out_stdout, &b->out_stdout);
	assert_stream_equal(&a->out_stderr, &b->out_stderr);
	assert_int_equal(a->exit_status, b->exit_status);
	assert_int_equal(a->run_ms, b->run_ms);
	assert_int_equal(a->created_ns, b->created_ns);
	assert_int_equal(a->flags, b->flags);
	assert_string_equal(a->root_at_record, b->root_at_record);
}

static void test_manifest_roundtrip_random(void **state)
{
	seed_rng("manifest_roundtrip");
	for (int round = 0; round < 300; round++) {
		action_manifest m, d;
		rand_manifest(&m);
		uint8_t *buf, *again;
		size_t len, len2;
		assert_int_equal(action_manifest_encode(&m, &buf, &len), 0);
		assert_int_equal(action_manifest_decode(buf, len, &d), 0);
		assert_manifest_equal(&m, &d);
		assert_int_equal(action_manifest_encode(&d, &again, &len2), 0);
		assert_int_equal(len, len2);
		assert_memory_equal(buf, again, len);
		/* a decoded manifest takes more inputs */
		action_input in = input(ACTION_IN_ABSENT, ACTION_SCOPE_ROOT, "added/after/decode", NULL);
		for (int i = 0; i < 40; i++) {
			char p[32];
			snprintf(p, sizeof(p), "added/%d", i);
			in.path = p;
			assert_int_equal(action_manifest_add_input(&d, &in), 0);
		}
		assert_int_equal(d.nin, m.nin + 40);
		free(buf);
		free(again);
		action_manifest_clear(&m);
		action_manifest_clear(&d);
	}
}

/* Text naming paths under a root, rewritten for another root: every
 * occurrence followed by '/', none that is the root itself or a longer
 * name, none when the root has a character such text escapes. */
/* action_depfile_rewrap of in gives want. */
static void assert_rewrap(const char *in, const char *want)
{
	uint8_t *out;
	size_t len;
	assert_int_equal(action_depfile_rewrap((const uint8_t *)in, strlen(in), &out, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
	free(out);
}

/* Dependency files broken as gcc 12 breaks them (column 72), checked
 * against its output for these names. */
static void test_depfile_rewrap(void **state)
{
	(void)state;
	static const char gcc_text[] =
		"/tmp/dw/out\\ dir.o: s.c /usr/include/stdc-predef.h \\\n"
		" /tmp/dw/some/longer/directory/name/hdr_a.h \\\n"
		" /tmp/dw/some/longer/directory/name/hdr_b.h \\\n"
		" some/longer/directory/name/hdr_a.h\n"
		"/usr/include/stdc-predef.h:\n"
		"/tmp/dw/some/longer/directory/name/hdr_a.h:\n";
	/* gcc's own text comes back as it is */
	assert_rewrap(gcc_text, gcc_text);
	/* shorter names: joined where they fit in 72 columns */
	assert_rewrap("/t/o.o: s.c /usr/include/stdc-predef.h \\\n /t/a.h \\\n /t/b.h\n/t/a.h:\n",
		      "/t/o.o: s.c /usr/include/stdc-predef.h /t/a.h /t/b.h\n/t/a.h:\n");
	/* longer ones: broken before the name that would pass column 72 */
	assert_rewrap("a.o: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.h bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.h\n",
		      "a.o: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.h \\\n bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.h\n");
	/* no rule */
	uint8_t *out;
	size_t len;
	assert_int_equal(action_depfile_rewrap((const uint8_t *)"no rule here\n", 13, &out, &len), -EINVAL);
	assert_int_equal(action_depfile_rewrap((const uint8_t *)"a.o: b.c", 8, &out, &len), -EINVAL);
}

static void test_root_rewrite(void **state)
{
	(void)state;
	const char *from = "/m/sb/1/execroot/p";
	const char *dep = "obj/a.o: /m/sb/1/execroot/p/src/a.c \\\n /m/sb/1/execroot/p/inc/a.h /usr/include/stdio.h\n";
	uint8_t *out;
	size_t len;
	assert_int_equal(action_root_rewrite((const uint8_t *)dep, strlen(dep), from, NULL, NULL, NULL), 0);
	assert_int_equal(action_root_rewrite((const uint8_t *)dep, strlen(dep), from, "/m/sb/22/execroot/p", &out, &len), 0);
	const char *want = "obj/a.o: /m/sb/22/execroot/p/src/a.c \\\n /m/sb/22/execroot/p/inc/a.h /usr/include/stdio.h\n";
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
	free(out);
	/* to a shorter root, at the very start and end */
	const char *edge = "/m/sb/1/execroot/p/x/m/sb/1/execroot/p/";
	assert_int_equal(action_root_rewrite((const uint8_t *)edge, strlen(edge), from, "/r", &out, &len), 0);
	assert_int_equal(len, strlen("/r/x/r/"));
	assert_memory_equal(out, "/r/x/r/", len);
	free(out);
	/* nothing to rewrite: a copy; empty text */
	assert_int_equal(action_root_rewrite((const uint8_t *)"plain", 5, from, "/r", &out, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(out, "plain", 5);
	free(out);
	assert_int_equal(action_root_rewrite((const uint8_t *)"", 0, from, "/r", &out, &len), 0);
	assert_int_equal(len, 0);
	free(out);
	/* the root itself, a longer name, the root at the end: refused */
	const char *bad[] = { "cd /m/sb/1/execroot/p\n", "/m/sb/1/execroot/p2/a.c", "x /m/sb/1/execroot/p",
			      "/m/sb/1/execroot/p: warning" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		out = NULL;
		assert_int_equal(action_root_rewrite((const uint8_t *)bad[i], strlen(bad[i]), from, "/r", &out, &len),
				 -EINVAL);
		assert_null(out);
	}
	/* roots such text would escape: refused even without an occurrence */
	const char *odd[] = { "/m/my dir", "/m/a#b", "/m/a$b", "/m/a:b", "/m/a\\b" };
	for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++)
		assert_int_equal(action_root_rewrite((const uint8_t *)"x", 1, odd[i], "/r", NULL, NULL), -EINVAL);
}

/* Paths as text: "." and empty components dropped, "x/.." taken out. */
static void test_path_lexical(void **state)
{
	(void)state;
	const char *cases[][2] = {
		{ "/a/b/c", "/a/b/c" },	  { "//a///b/", "/a/b" },	{ "/a/./b/.", "/a/b" },
		{ "/a/b/../p/x", "/a/p/x" }, { "/a/../../b", "/b" },	{ "/", "/" },
		{ "/..", "/" },		  { "/a/b/..", "/a" },
	};
	char out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		action_path_lexical(cases[i][0], out, sizeof(out));
		assert_string_equal(out, cases[i][1]);
	}
	action_path_lexical("/aaaa/bbbb/cccc", out, 8); /* cut at a component */
	assert_string_equal(out, "/aaaa");
}

static bool read_only_a_c(void *arg, const char *rel, size_t len)
{
	(void)arg;
	return len == 3 && !memcmp(rel, "a.c", 3);
}

/* Where a compiler's diagnostics name the root: locations only. */
static void test_root_at_locations(void **state)
{
	(void)state;
	const char *root = "/m/sb/1/execroot/p";
	const char *good[] = {
		"",
		"no path here\n",
		"/m/sb/1/execroot/p/a.c: In function 'f':\n/m/sb/1/execroot/p/a.c:3:5: warning: unused [-Wunused]\n"
		"    3 |   int x;\n      |       ^\n",
		"In file included from /m/sb/1/execroot/p/a.c:1:\n                 from /m/sb/1/execroot/p/b.c:2,\n"
		"/m/sb/1/execroot/p/h.h:1:2: warning: #warning hi [-Wcpp]\n",
		"\x1b[01m\x1b[K/m/sb/1/execroot/p/a.c:3:5:\x1b[m\x1b[K warning\n",
		"In file included from \x1b[01m\x1b[K/m/sb/1/execroot/p/a.c:1\x1b[m\x1b[K:\n",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_true(action_root_at_locations((const uint8_t *)good[i], strlen(good[i]), root, NULL, NULL));
	const char *quoted[] = {
		"/m/sb/1/execroot/p/w.c:1:2: warning: #warning \"from /m/sb/1/execroot/p/t.in\" [-Wcpp]\n",
		"    1 | #include \"/m/sb/1/execroot/p/x.h\"\n",
		"x /m/sb/1/execroot/p/a.c\n",
		"Included from /m/sb/1/execroot/p/a.c\n",
	};
	for (size_t i = 0; i < sizeof(quoted) / sizeof(*quoted); i++)
		assert_false(action_root_at_locations((const uint8_t *)quoted[i], strlen(quoted[i]), root, NULL, NULL));
	/* a location whose file the compile did not read (a #line name) */
	const char *line = "/m/sb/1/execroot/p/gen.y:12:3: warning: x\n/m/sb/1/execroot/p/a.c:1:1: note\n";
	assert_false(action_root_at_locations((const uint8_t *)line, strlen(line), root, read_only_a_c, NULL));
	const char *line2 = "/m/sb/1/execroot/p/a.c:1:1: note\n";
	assert_true(action_root_at_locations((const uint8_t *)line2, strlen(line2), root, read_only_a_c, NULL));
}

/* A run time an earlier casfs wrapped counts as nothing saved. */
static void test_run_ms_plausible(void **state)
{
	(void)state;
	action_manifest m = { .run_ms = 1234 };
	assert_int_equal(action_manifest_run_ms(&m), 1234);
	m.run_ms = ACTION_RUN_MS_MAX;
	assert_int_equal(action_manifest_run_ms(&m), ACTION_RUN_MS_MAX);
	m.run_ms = 18446744073709ull; /* (uint64_t)(-1 ns) / 1e6, as it was stored */
	assert_int_equal(action_manifest_run_ms(&m), 0);
}

/* A small manifest with one of everything. */
static void sample_manifest(action_manifest *m, const char *tag)
{
	*m = (action_manifest){ 0 };
	action_input ins[] = {
		input(ACTION_IN_FILE, ACTION_SCOPE_ROOT, "src/a.c", tag),
		input(ACTION_IN_ABSENT, ACTION_SCOPE_ROOT, "inc/a.h", NULL),
		input(ACTION_IN_DIR, ACTION_SCOPE_ROOT, "src", "listing"),
		input(ACTION_IN_SYMLINK, ACTION_SCOPE_MOUNT, "tools/cc", "target"),
		input(ACTION_IN_EXISTS, ACTION_SCOPE_ROOT, "inc", NULL),
		input(ACTION_IN_FILE, ACTION_SCOPE_ABS, "/usr/include/stdio.h", "stdio"),
	};
	ins[0].digest_kind = ACTION_DIGEST_C_SOURCE;
	ins[4].type = S_IFDIR;
	for (size_t i = 0; i < sizeof(ins) / sizeof(*ins); i++)
		assert_int_equal(action_manifest_add_input(m, &ins[i]), 0);
	action_output outs[] = {
		{ .kind = ACTION_OUT_FILE, .mode = 0644, .path = "a.o", .size = 1234, .digest = dg("obj") },
		{ .kind = ACTION_OUT_DIR, .mode = 0755, .path = "obj" },
		{ .kind = ACTION_OUT_SYMLINK, .path = "latest", .target = "a.o" },
		{ .kind = ACTION_OUT_REMOVED, .path = "a.tmp" },
	};
	for (size_t i = 0; i < sizeof(outs) / sizeof(*outs); i++)
		assert_int_equal(action_manifest_add_output(m, &outs[i]), 0);
	m->out_stdout.size = 5;
	m->out_stdout.inline_data = true;
	m->out_stdout.data = (uint8_t *)strdup("hello");
	m->out_stdout.digest = dg("hello");
	m->out_stderr.inline_data = true;
	m->out_stderr.digest = dg("");
	m->exit_status = 0;
	m->run_ms = 42;
	m->created_ns = 1700000000000000000LL;
	m->root_at_record = strdup("/mnt/sb/1/execroot/ws");
	action_manifest_sort(m);
}

static void encode_sample(uint8_t **buf, size_t *len)
{
	action_manifest m;
	sample_manifest(&m, "int main(void) { return 0; }");
	assert_int_equal(action_manifest_encode(&m, buf, len), 0);
	action_manifest_clear(&m);
}

static void test_manifest_truncations_and_flips(void **state)
{
	uint8_t *buf;
	size_t len;
	encode_sample(&buf, &len);
	action_manifest d;
	for (size_t n = 0; n < len; n++)
		if (action_manifest_decode(buf, n, &d) != -EBADMSG)
			fail_msg("a manifest cut at %zu of %zu bytes was not refused", n, len);
	for (size_t bit = 0; bit < len * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = action_manifest_decode(buf, len, &d);
		if (r != -EBADMSG)
			fail_msg("flipping bit %zu of %zu gave %d", bit, len * 8, r);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(action_manifest_decode(buf, len, &d), 0);
	action_manifest_clear(&d);
	/* trailing garbage */
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0;
	assert_int_equal(action_manifest_decode(longer, len + 1, &d), -EBADMSG);
	free(longer);
	free(buf);
}

/* Rewrites the trailing check so that only the grammar can refuse. */
static void reseal(uint8_t *buf, size_t len)
{
	hasher_digest d;
	hasher_digest_buffer(buf, len - 8, &d);
	memcpy(buf + len - 8, d.bytes, 8); /* the first 8 bytes, as stored (little-endian read) */
}

/* Offsets in the sample's encoding (see the grammar in action.c). */
#define OFF_VERSION 8
#define OFF_FLAGS 12
#define OFF_EXIT 16
#define OFF_ROOT 36

static void test_manifest_grammar_refusals(void **state)
{
	uint8_t *buf;
	size_t len;
	action_manifest d;
	encode_sample(&buf, &len);
	uint8_t *b = malloc(len);
#define REFUSED(what, mutate, want)                                                  \
	do {                                                                         \
		memcpy(b, buf, len);                                                 \
		mutate;                                                              \
		reseal(b, len);                                                      \
		int r_ = action_manifest_decode(b, len, &d);                         \
		if (r_ != (want))                                                    \
			fail_msg("%s: decode gave %d, want %d", what, r_, want);     \
	} while (0)
	REFUSED("newer version", b[OFF_VERSION] = ACTION_MANIFEST_VERSION + 1, -EPROTO);
	REFUSED("version 0", b[OFF_VERSION] = 0, -EBADMSG);
	REFUSED("reserved byte", b[OFF_VERSION + 1] = 1, -EBADMSG);
	REFUSED("unknown flag", b[OFF_FLAGS] = 0x10, -EBADMSG);
	REFUSED("exit 256", b[OFF_EXIT + 1] = 1, -EBADMSG);
	REFUSED("root not absolute", b[OFF_ROOT + 4] = 'x', -EBADMSG);
	REFUSED("NUL in root", b[OFF_ROOT + 6] = 0, -EBADMSG);
	REFUSED("root length past the end", b[OFF_ROOT + 3] = 0x7f, -EBADMSG);
	/* find the first input: after the root string */
	size_t root_len = (size_t)buf[OFF_ROOT] | (size_t)buf[OFF_ROOT + 1] << 8;
	size_t off_nin = OFF_ROOT + 4 + root_len, off_in = off_nin + 4;
	REFUSED("input count beyond the bytes", b[off_nin + 3] = 0x10, -EBADMSG);
	REFUSED("input count one more", b[off_nin] = (uint8_t)(buf[off_nin] + 1), -EBADMSG);
	REFUSED("input count one less", b[off_nin] = (uint8_t)(buf[off_nin] - 1), -EBADMSG);
	REFUSED("input kind 0", b[off_in] = 0, -EBADMSG);
	REFUSED("input kind 6", b[off_in] = 6, -EBADMSG);
	REFUSED("input scope 3", b[off_in + 1] = 3, -EBADMSG);
	REFUSED("digest kind 3", b[off_in + 2] = 3, -EBADMSG);
	/* the first input (sorted) is the root-scope "inc" exists probe?  find
	 * "src/a.c" by its text and break its path */
	uint8_t *p = memmem(buf, len, "src/a.c", 7);
	assert_non_null(p);
	size_t off_path = (size_t)(p - buf);
	REFUSED("path with ..", memcpy(b + off_path, "src/../", 7), -EBADMSG);
	REFUSED("path with //", memcpy(b + off_path, "src//.c", 7), -EBADMSG);
	REFUSED("absolute root-scope path", b[off_path] = '/', -EBADMSG);
	REFUSED("NUL in path", b[off_path + 3] = 0, -EBADMSG);
	/* the digest kind of a non-file */
	p = memmem(buf, len, "inc/a.h", 7); /* absent: no digest kind */
	assert_non_null(p);
	size_t off_absent = (size_t)(p - buf) - 4 - 3;
	assert_int_equal(buf[off_absent], ACTION_IN_ABSENT);
	REFUSED("digest kind on an absent name", b[off_absent + 2] = 1, -EBADMSG);
	/* an exists probe with a type outside S_IFMT */
	p = memmem(buf, len, "\x03\x00\x00\x00inc\x00\x40", 9); /* "inc", type S_IFDIR */
	assert_non_null(p);
	size_t off_type = (size_t)(p - buf) + 7;
	REFUSED("type 0", memset(b + off_type, 0, 4), -EBADMSG);
	REFUSED("type with mode bits", b[off_type] = 0x01, -EBADMSG);
	/* outputs */
	p = memmem(buf, len, "\x03\x00\x00\x00" "a.o", 7);
	assert_non_null(p);
	size_t off_out = (size_t)(p - buf) - 1;
	assert_int_equal(buf[off_out], ACTION_OUT_FILE);
	REFUSED("output kind 5", b[off_out] = 5, -EBADMSG);
	REFUSED("mode beyond 07777", b[off_out + 8 + 1] = 0x10, -EBADMSG);
	/* streams: stdout "hello" inline */
	p = memmem(buf, len, "hello", 5);
	assert_non_null(p);
	size_t off_data = (size_t)(p - buf), off_inline = off_data - 16 - 1, off_size = off_inline - 8;
	REFUSED("inline data that does not match its digest", b[off_data] = 'j', -EBADMSG);
	REFUSED("inline flag 2", b[off_inline] = 2, -EBADMSG);
	REFUSED("a small stream not inline", b[off_inline] = 0, -EBADMSG);
	REFUSED("stream size beyond the inline limit", b[off_size + 2] = 1, -EBADMSG);
	REFUSED("stream size huge", b[off_size + 7] = 0x80, -EBADMSG);
#undef REFUSED
	free(b);
	free(buf);
}

/* Mutations with a valid check reach the grammar: whatever decodes must
 * re-encode to exactly the same bytes. */
static void test_manifest_fuzz(void **state)
{
	seed_rng("manifest_fuzz");
	uint8_t *base;
	size_t blen;
	encode_sample(&base, &blen);
	uint8_t *b = malloc(blen + 64);
	size_t accepted = 0;
	for (int round = 0; round < 200000; round++) {
		size_t len = blen;
		memcpy(b, base, blen);
		size_t nmut = 1 + rnd(4);
		for (size_t k = 0; k < nmut; k++) {
			size_t at = rnd(16) ? 8 + rnd(len - 16) : rnd(len - 8); /* mostly past the magic */
			switch (rnd(4)) {
			case 0: b[at] ^= (uint8_t)(1u << rnd(8)); break;
			case 1: b[at] = (uint8_t)rng(); break;
			case 2: b[at] = (uint8_t)(b[at] + 1); break;
			default: b[at] = (uint8_t)(b[at] - 1); break;
			}
		}
		if (rnd(8) == 0)
			len -= 1 + rnd(8); /* shorter, then sealed */
		reseal(b, len);
		action_manifest d;
		int r = action_manifest_decode(b, len, &d);
		if (r == 0) {
			uint8_t *again;
			size_t alen;
			assert_int_equal(action_manifest_encode(&d, &again, &alen), 0);
			if (alen != len || memcmp(again, b, len) != 0)
				fail_msg("round %d: a decoded mutation re-encodes differently", round);
			free(again);
			action_manifest_clear(&d);
			accepted++;
		} else if (r != -EBADMSG && r != -EPROTO) {
			fail_msg("round %d: decode gave %d", round, r);
		}
	}
	printf("manifest_fuzz: %zu of 200000 re-sealed mutations decoded (and re-encoded identically)\n", accepted);
	/* random bytes: with and without the magic, sealed or not */
	for (int round = 0; round < 100000; round++) {
		size_t len = rnd(blen + 64);
		for (size_t i = 0; i < len; i++)
			b[i] = (uint8_t)rng();
		if (len >= 20 && rnd(2)) {
			memcpy(b, base, 12);
			reseal(b, len);
		}
		action_manifest d;
		action_record rec;
		int r = action_manifest_decode(b, len, &d);
		if (r == 0)
			action_manifest_clear(&d);
		r = action_record_decode(b, len, &rec);
		if (r == 0)
			action_record_clear(&rec);
	}
	free(b);
	free(base);
}

/* ---- records ------------------------------------------------------------------------- */

static void test_record_push_and_encoding(void **state)
{
	action_record r = { 0 };
	char tag[16];
	for (int i = 0; i < ACTION_MAX_MANIFESTS + 3; i++) {
		action_manifest m;
		snprintf(tag, sizeof(tag), "v%d", i);
		sample_manifest(&m, tag);
		m.run_ms = (uint64_t)i;
		assert_int_equal(action_record_push(&r, &m), 0);
		assert_null(m.in); /* moved */
	}
	assert_int_equal(r.n, ACTION_MAX_MANIFESTS);
	/* newest first, the oldest dropped */
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.m[i].run_ms, ACTION_MAX_MANIFESTS + 2 - i);
	/* the same inputs again (v5): replaces the older one, goes first */
	action_manifest m;
	sample_manifest(&m, "v5");
	m.run_ms = 99;
	m.exit_status = 3;
	assert_int_equal(action_record_push(&r, &m), 0);
	assert_int_equal(r.n, ACTION_MAX_MANIFESTS);
	assert_int_equal(r.m[0].run_ms, 99);
	for (size_t i = 1; i < r.n; i++)
		assert_int_not_equal(r.m[i].run_ms, 5);
	/* inputs that differ only in scope are not the same inputs */
	sample_manifest(&m, "v10");
	m.in[0].scope = ACTION_SCOPE_MOUNT;
	size_t before = r.n;
	assert_int_equal(action_record_push(&r, &m), 0);
	assert_int_equal(r.n, before);           /* cap, not replacement */
	assert_int_equal(r.m[1].run_ms, 99);
	assert_int_equal(r.m[2].run_ms, 10);     /* v10 stayed too */

	/* encoding round trip */
	uint8_t *buf, *again;
	size_t len, len2;
	assert_int_equal(action_record_encode(&r, &buf, &len), 0);
	action_record d;
	assert_int_equal(action_record_decode(buf, len, &d), 0);
	assert_int_equal(d.n, r.n);
	for (size_t i = 0; i < r.n; i++)
		assert_manifest_equal(&r.m[i], &d.m[i]);
	assert_int_equal(action_record_encode(&d, &again, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, again, len);
	free(again);
	for (size_t n = 0; n < len; n++)
		if (action_record_decode(buf, n, &d) != -EBADMSG)
			fail_msg("a record cut at %zu was not refused", n);
	for (size_t bit = 0; bit < len * 8; bit += 3) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(action_record_decode(buf, len, &d), -EBADMSG);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	buf[8] = ACTION_MANIFEST_VERSION + 1;
	reseal(buf, len);
	assert_int_equal(action_record_decode(buf, len, &d), -EPROTO);
	free(buf);
	action_record_clear(&d);

	/* remove */
	action_record_remove(&r, r.n); /* out of range: nothing */
	assert_int_equal(r.n, ACTION_MAX_MANIFESTS);
	uint64_t second = r.m[2].run_ms;
	action_record_remove(&r, 1);
	assert_int_equal(r.n, ACTION_MAX_MANIFESTS - 1);
	assert_int_equal(r.m[1].run_ms, second);
	while (r.n)
		action_record_remove(&r, 0);
	assert_int_equal(action_record_encode(&r, &buf, &len), 0);
	assert_int_equal(action_record_decode(buf, len, &d), 0);
	assert_int_equal(d.n, 0);
	free(buf);
	action_record_clear(&r);
	action_record_clear(&d);
}

/* ---- listings ----------------------------------------------------------------------- */

static hasher_digest listing(const action_dirent *e, size_t n)
{
	hasher_digest d;
	assert_int_equal(action_listing_digest(e, n, &d), 0);
	return d;
}

static void test_listing_digest(void **state)
{
	action_dirent a[] = { { .name = "b.c", .type = DT_REG }, { .name = "a.c", .type = DT_REG }, { .name = "inc", .type = DT_DIR } };
	action_dirent b[] = { { .name = "inc", .type = DT_DIR }, { .name = ".", .type = DT_DIR }, { .name = "a.c", .type = DT_REG }, { .name = ".casfs", .type = DT_DIR },
			      { .name = "..", .type = DT_DIR }, { .name = "b.c", .type = DT_REG } };
	hasher_digest da = listing(a, 3), db = listing(b, 6);
	assert_true(hasher_digest_equal(&da, &db));
	action_dirent c[] = { { .name = "b.c", .type = DT_REG }, { .name = "a.c", .type = DT_REG }, { .name = "inc", .type = DT_REG } }; /* type */
	hasher_digest dc = listing(c, 3);
	assert_false(hasher_digest_equal(&da, &dc));
	action_dirent e[] = { { .name = "b.c", .type = DT_REG }, { .name = "a.c", .type = DT_REG }, { .name = "inc", .type = DT_DIR }, { .name = "new.h", .type = DT_REG } };
	hasher_digest de = listing(e, 4);
	assert_false(hasher_digest_equal(&da, &de));
	action_dirent f1[] = { { .name = "ab", .type = DT_REG }, { .name = "c", .type = DT_REG } }, f2[] = { { .name = "a", .type = DT_REG }, { .name = "bc", .type = DT_REG } };
	hasher_digest d1 = listing(f1, 2), d2 = listing(f2, 2);
	assert_false(hasher_digest_equal(&d1, &d2));
	hasher_digest empty = listing(NULL, 0), dots = listing(b + 1, 1);
	assert_true(hasher_digest_equal(&empty, &dots));
	/* what ls -F and test -s see: permission bits and sizes */
	action_dirent m[] = { { .name = "b.c", .type = DT_REG }, { .name = "a.c", .type = DT_REG, .mode = 0755 },
			      { .name = "inc", .type = DT_DIR } };
	hasher_digest dm = listing(m, 3);
	assert_false(hasher_digest_equal(&da, &dm));
	m[1].mode = 0;
	m[1].size = 1;
	hasher_digest ds = listing(m, 3);
	assert_false(hasher_digest_equal(&da, &ds));
	assert_false(hasher_digest_equal(&dm, &ds));
	m[1].size = 0;
	hasher_digest dz = listing(m, 3);
	assert_true(hasher_digest_equal(&da, &dz));
}

/* ---- matching ------------------------------------------------------------------------- */

/* An in-memory tree: absolute path → what is there. */
struct node {
	const char *path;
	uint32_t type;          /* S_IFREG, S_IFDIR, S_IFLNK, ... */
	const char *content;    /* file content, symlink target */
	action_dirent ents[4];  /* directory entries */
	size_t nents;
	bool fail;              /* the probe cannot tell (-EIO) */
};

struct tree {
	struct node n[16];
	size_t count;
	const char *root, *mount;
	size_t probes;
	char paths[8][96];
};

static const struct node *tree_find(const struct tree *t, const char *abs)
{
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->n[i].path, abs) == 0)
			return &t->n[i];
	return NULL;
}

static int tree_probe(void *arg, const action_input *want, action_input *have)
{
	struct tree *t = arg;
	char abs[256];
	t->probes++;
	assert_null(have->path);
	assert_int_equal(have->kind, 0);
	if (want->scope == ACTION_SCOPE_ROOT)
		snprintf(abs, sizeof(abs), "%s%s%s", t->root, want->path[0] ? "/" : "", want->path);
	else if (want->scope == ACTION_SCOPE_MOUNT)
		snprintf(abs, sizeof(abs), "%s/%s", t->mount, want->path);
	else
		snprintf(abs, sizeof(abs), "%s", want->path);
	const struct node *n = tree_find(t, abs);
	if (!n) {
		have->kind = ACTION_IN_ABSENT;
		return 0;
	}
	if (n->fail)
		return -EIO;
	if (want->kind == ACTION_IN_FILE && n->type == S_IFREG) {
		have->kind = ACTION_IN_FILE;
		have->digest_kind = want->digest_kind;
		if (want->digest_kind == ACTION_DIGEST_C_SOURCE)
			hasher_c_source_digest(n->content, strlen(n->content), &have->digest);
		else if (want->digest_kind == ACTION_DIGEST_AR)
			return hasher_ar_digest(n->content, strlen(n->content), &have->digest);
		else
			hasher_digest_buffer(n->content, strlen(n->content), &have->digest);
	} else if (want->kind == ACTION_IN_DIR && n->type == S_IFDIR) {
		have->kind = ACTION_IN_DIR;
		return action_listing_digest(n->ents, n->nents, &have->digest);
	} else if (want->kind == ACTION_IN_SYMLINK && n->type == S_IFLNK) {
		have->kind = ACTION_IN_SYMLINK;
		hasher_digest_buffer(n->content, strlen(n->content), &have->digest);
	} else {
		have->kind = ACTION_IN_EXISTS;
		have->type = n->type;
	}
	return 0;
}

static void sample_tree(struct tree *t, const char *root)
{
	const char *rel[] = { "src", "src/a.c", "inc/a.h", "inc", "cc" };
	*t = (struct tree){ .root = root, .mount = "/mnt" };
	for (int i = 0; i < 5; i++)
		snprintf(t->paths[i], 96, "%s/%s", root, rel[i]);
	t->n[t->count++] = (struct node){ t->paths[0], S_IFDIR, NULL, { { .name = "a.c", .type = DT_REG }, { .name = "b.c", .type = DT_REG } }, 2, false };
	t->n[t->count++] = (struct node){ t->paths[1], S_IFREG, "int a(void) { return 1; } // one\n", { { 0 } }, 0, false };
	t->n[t->count++] = (struct node){ t->paths[2], S_IFREG, "#define A 1\n", { { 0 } }, 0, false };
	t->n[t->count++] = (struct node){ t->paths[3], S_IFDIR, NULL, { { 0 } }, 0, false };
	t->n[t->count++] = (struct node){ t->paths[4], S_IFLNK, "/mnt/tools/gcc", { { 0 } }, 0, false };
	t->n[t->count++] = (struct node){ "/mnt/shared/lib.a", S_IFREG, "!<arch>\n", { { 0 } }, 0, false };
	t->n[t->count++] = (struct node){ "/usr/include/stdio.h", S_IFREG, "/* stdio */\n", { { 0 } }, 0, false };
}

/* Records what the probe sees now as a manifest's inputs. */
static void record_inputs(struct tree *t, action_manifest *m, const action_input *want, size_t n)
{
	*m = (action_manifest){ 0 };
	for (size_t i = 0; i < n; i++) {
		action_input have = { 0 };
		assert_int_equal(tree_probe(t, &want[i], &have), 0);
		have.scope = want[i].scope;
		have.path = want[i].path;
		assert_int_equal(action_manifest_add_input(m, &have), 0);
	}
	action_manifest_sort(m);
}

static void test_match(void **state)
{
	const char *r1 = "/mnt/sb/1/ws", *r2 = "/mnt/sb/2/ws";
	struct tree t, t2;
	sample_tree(&t, r1);
	action_input want[] = {
		{ .kind = ACTION_IN_FILE, .scope = ACTION_SCOPE_ROOT, .path = "src/a.c", .digest_kind = ACTION_DIGEST_C_SOURCE },
		{ .kind = ACTION_IN_FILE, .scope = ACTION_SCOPE_ROOT, .path = "inc/a.h" },
		{ .kind = ACTION_IN_ABSENT, .scope = ACTION_SCOPE_ROOT, .path = "inc/b.h" },
		{ .kind = ACTION_IN_DIR, .scope = ACTION_SCOPE_ROOT, .path = "src" },
		{ .kind = ACTION_IN_SYMLINK, .scope = ACTION_SCOPE_ROOT, .path = "cc" },
		{ .kind = ACTION_IN_EXISTS, .scope = ACTION_SCOPE_ROOT, .path = "inc", .type = S_IFDIR },
		{ .kind = ACTION_IN_FILE, .scope = ACTION_SCOPE_MOUNT, .path = "shared/lib.a", .digest_kind = ACTION_DIGEST_AR },
		{ .kind = ACTION_IN_FILE, .scope = ACTION_SCOPE_ABS, .path = "/usr/include/stdio.h" },
	};
	action_manifest m;
	record_inputs(&t, &m, want, 8);
	assert_int_equal(action_manifest_match(&m, tree_probe, &t), -1);
	assert_int_equal(t.probes, 8 + 8);

	/* another root with the same content matches: paths are re-resolved */
	sample_tree(&t2, r2);
	assert_int_equal(action_manifest_match(&m, tree_probe, &t2), -1);

	/* the index of the first difference, in the manifest's (sorted) order */
	size_t i_src = 0, i_b = 0, i_dir = 0, i_cc = 0, i_inc = 0;
	for (size_t i = 0; i < m.nin; i++) {
		if (!strcmp(m.in[i].path, "src/a.c")) i_src = i;
		if (!strcmp(m.in[i].path, "inc/b.h")) i_b = i;
		if (!strcmp(m.in[i].path, "src")) i_dir = i;
		if (!strcmp(m.in[i].path, "cc")) i_cc = i;
		if (!strcmp(m.in[i].path, "inc")) i_inc = i;
	}
	/* a comment-only edit: the content-aware digest still matches */
	sample_tree(&t2, r2);
	t2.n[1].content = "int a(void) {   return 1; } // two\n";
	assert_int_equal(action_manifest_match(&m, tree_probe, &t2), -1);
	/* a real edit */
	t2.n[1].content = "int a(void) { return 2; }\n";
	assert_int_equal(action_manifest_match(&m, tree_probe, &t2), (ssize_t)i_src);
	/* a header appears where the name was absent (shadowing) */
	sample_tree(&t2, r2);
	assert_int_equal(m.in[i_b].kind, ACTION_IN_ABSENT);
	t2.n[t2.count++] = (struct node){ .path = "/mnt/sb/2/ws/inc/b.h", .type = S_IFREG, .content = "" };
	assert_int_equal(action_manifest_match(&m, tree_probe, &t2), (ssize_t)i_b);
	/* a listing changes */
	sample_tree(&t2, r2);
	t2.n[0].ents[2] = (action_dirent){ .name = "c.c", .type = DT_REG };
	t2.n[0].nents = 3;
	assert_int_equal(action_manifest_match(&m, tree_probe, &t2), (ssize_t)i_dir);
	/* a symlink points elsewhere */
	sample_tree(&t2, r2);
	t2.n[4].content = "/mnt/tools/clang";
	assert_int_equal(action_manifest_match(&m, tree_probe, &t2), (ssize_t)i_cc);
	/* a directory became a file */
	sample_tree(&t2, r2);
	t2.n[3].type = S_IFREG;
	t2.n[3].content = "";
	assert_int_equal(action_manifest_match(&m, tree_probe, &t2), (ssize_t)i_inc);
	/* a damaged archive: the probe cannot digest it, a difference */
	sample_tree(&t2, r2);
	t2.n[5].content = "not an archive";
	ssize_t i_ar = action_manifest_match(&m, tree_probe, &t2);
	assert_true(i_ar >= 0);
	assert_string_equal(m.in[i_ar].path, "shared/lib.a");
	/* a file outside the mount changed */
	sample_tree(&t2, r2);
	t2.n[6].content = "/* stdio 2 */\n";
	ssize_t i_abs = action_manifest_match(&m, tree_probe, &t2);
	assert_int_equal(i_abs, (ssize_t)m.nin - 1);
	/* a probe error counts as a difference */
	sample_tree(&t2, r2);
	t2.n[2].fail = true;
	ssize_t i_err = action_manifest_match(&m, tree_probe, &t2);
	assert_true(i_err >= 0);
	assert_string_equal(m.in[i_err].path, "inc/a.h");
	/* several differences: the first one in order */
	sample_tree(&t2, r2);
	t2.n[6].content = "changed";
	t2.n[1].content = "changed";
	t2.probes = 0;
	size_t first = i_src < (size_t)i_abs ? i_src : (size_t)i_abs;
	assert_int_equal(action_manifest_match(&m, tree_probe, &t2), (ssize_t)first);
	assert_int_equal(t2.probes, first + 1); /* stops at the first */
	action_manifest_clear(&m);

	/* input_equal, kind by kind */
	action_input a = input(ACTION_IN_FILE, 0, "x", "1"), b = a;
	assert_true(action_input_equal(&a, &b));
	b.digest_kind = ACTION_DIGEST_C_SOURCE;
	assert_false(action_input_equal(&a, &b));
	b = input(ACTION_IN_EXISTS, 0, "x", NULL);
	assert_false(action_input_equal(&a, &b));
	a = input(ACTION_IN_EXISTS, 0, "x", NULL);
	b.type = S_IFDIR;
	assert_false(action_input_equal(&a, &b));
	a = input(ACTION_IN_ABSENT, 0, "x", NULL);
	b = input(ACTION_IN_ABSENT, 1, "y", NULL);
	assert_true(action_input_equal(&a, &b));
}

/* ---- compilers --------------------------------------------------------------------------- */

static action_cc_info cc(const char *line)
{
	char *copy = strdup(line), *save = NULL;
	const char *argv[64];
	size_t argc = 0;
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	action_cc_info info;
	action_cc_analyze(argv, argc, &info);
	free(copy);
	return info;
}

static void test_cc_analyze(void **state)
{
	const char *drivers[] = { "gcc", "g++", "cc", "c++", "clang", "clang++", "gcc-12",
				  "x86_64-linux-gnu-gcc-12", "/usr/bin/cc", "clang-15", "clang++-15",
				  "/usr/lib/ccache/gcc", "x86_64-w64-mingw32-g++", "gcc-12.2" };
	for (size_t i = 0; i < sizeof(drivers) / sizeof(*drivers); i++) {
		char line[128];
		snprintf(line, sizeof(line), "%s -c a.c", drivers[i]);
		action_cc_info info = cc(line);
		if (!info.is_cc || !info.compile_only)
			fail_msg("%s is a compiler driver", drivers[i]);
	}
	const char *others[] = { "gcc-ar", "gcc-nm", "gcc-ranlib", "ccache", "x86_64-linux-gnu-gcc-ar-12",
				 "cc1", "tcc", "distcc", "c++filt", "clang-cl", "ld", "ar", "/usr/bin/as" };
	for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++) {
		char line[128];
		snprintf(line, sizeof(line), "%s -c a.c", others[i]);
		action_cc_info info = cc(line);
		if (info.is_cc || info.compile_only)
			fail_msg("%s is not a compiler driver", others[i]);
	}
	action_cc_info i;
	i = cc("gcc -c a.c -o a.o");
	assert_true(i.compile_only);
	assert_false(i.has_depfile || i.has_debug || i.has_prefix_map || i.compresses_debug || i.is_cxx);
	i = cc("gcc a.c -o a");          /* compiles and links */
	assert_false(i.compile_only);
	i = cc("gcc -E a.c");
	assert_false(i.compile_only);
	i = cc("gcc -c -M a.c");
	assert_false(i.compile_only);
	assert_true(i.has_depfile);
	i = cc("gcc -c -o a.o");         /* no source */
	assert_false(i.compile_only);
	i = cc("gcc -c -o x.c");         /* x.c is -o's value */
	assert_false(i.compile_only);
	i = cc("gcc -c -I inc.c a.o");   /* inc.c is -I's value, a.o no source */
	assert_false(i.compile_only);
	i = cc("gcc -c -x c - -o a.o");
	assert_true(i.compile_only);
	i = cc("gcc -c -x c src.txt");
	assert_true(i.compile_only);
	i = cc("gcc -S a.c");
	assert_true(i.compile_only);
	i = cc("gcc -c @args.rsp");
	assert_false(i.compile_only);
	assert_true(i.has_debug);
	i = cc("gcc -c a.c -MD -MF a.d");
	assert_true(i.has_depfile && i.compile_only);
	i = cc("gcc -c a.c -MMD");
	assert_true(i.has_depfile);
	i = cc("gcc -c a.c -MTa.o");
	assert_true(i.has_depfile);
	i = cc("gcc -c a.c -Wp,-MD,.a.o.d");
	assert_true(i.has_depfile);
	i = cc("gcc -c a.c -MP");        /* -MP alone writes nothing */
	assert_false(i.has_depfile);
	i = cc("gcc -c a.c -g");
	assert_true(i.has_debug);
	i = cc("gcc -c a.c -g -g0");
	assert_false(i.has_debug);
	i = cc("gcc -c a.c -g0 -ggdb3");
	assert_true(i.has_debug);
	i = cc("gcc -c a.c -gdwarf-4");
	assert_true(i.has_debug);
	i = cc("gcc -c a.c -gz -gno-column-info -grecord-gcc-switches");
	assert_false(i.has_debug);
	assert_true(i.compresses_debug);
	i = cc("gcc -c a.c -g -gz=zstd");
	assert_true(i.compresses_debug);
	i = cc("gcc -c a.c -g -gz -gz=none");
	assert_false(i.compresses_debug);
	i = cc("gcc -c a.c -g -Wa,--compress-debug-sections");
	assert_true(i.compresses_debug);
	i = cc("gcc a.o -o a -Wl,--compress-debug-sections=zlib");
	assert_true(i.compresses_debug);
	i = cc("gcc a.o -o a -Wl,--compress-debug-sections=none");
	assert_false(i.compresses_debug);
	i = cc("gcc -c a.c -fmessage-length=80");
	assert_true(i.wraps_diagnostics);
	i = cc("gcc -c a.c -fmessage-length=80 -fmessage-length=0");
	assert_false(i.wraps_diagnostics);
	i = cc("gcc -c a.c");
	assert_false(i.wraps_diagnostics);
	i = cc("gcc -c a.c -g");
	assert_false(i.compresses_debug);
	i = cc("gcc -c @args.rsp");
	assert_true(i.compresses_debug);
	i = cc("clang -c a.c -gline-tables-only");
	assert_true(i.has_debug);
	i = cc("gcc -c a.c -g -ffile-prefix-map=/r=.");
	assert_true(i.has_prefix_map);
	i = cc("gcc -c a.c -g -fdebug-prefix-map=/r=.");
	assert_true(i.has_prefix_map);
	i = cc("gcc -c a.c -fmacro-prefix-map=/r=.");
	assert_false(i.has_prefix_map);
	i = cc("g++ -c a.c");
	assert_true(i.is_cxx);
	i = cc("gcc -c a.cpp");
	assert_true(i.is_cxx);
	i = cc("gcc -c -x c++ a.h");
	assert_true(i.is_cxx && i.compile_only);
	i = cc("gcc -c a.C");
	assert_true(i.is_cxx);
	action_cc_analyze(NULL, 0, &i);
	assert_false(i.is_cc);
}

struct deps {
	char *got[32];
	size_t n;
	int stop_at; /* return -ECANCELED at this call (1-based), 0: never */
};

static int dep_fn(void *arg, const char *path)
{
	struct deps *d = arg;
	assert_true(d->n < 32);
	d->got[d->n++] = strdup(path);
	return d->stop_at && (int)d->n == d->stop_at ? -ECANCELED : 0;
}

static void expect_deps(const char *buf, const char *const *want, size_t nwant)
{
	struct deps d = { 0 };
	int r = action_depfile_parse(buf, strlen(buf), dep_fn, &d);
	if (r != 0)
		fail_msg("parse gave %d for:\n%s", r, buf);
	for (size_t i = 0; i < d.n || i < nwant; i++) {
		if (i >= d.n || i >= nwant || strcmp(d.got[i], want[i]) != 0)
			fail_msg("prerequisite %zu: got \"%s\", want \"%s\"", i, i < d.n ? d.got[i] : "(none)",
				 i < nwant ? want[i] : "(none)");
	}
	for (size_t i = 0; i < d.n; i++)
		free(d.got[i]);
}

/* What action_depfile_parse must answer for the first n bytes of the
 * well-formed depfile s: -EBADMSG when the cut leaves a rule without its
 * ':' (the logical line cut, backslash-newline continuing it, holds no
 * colon) or ends in a lone '$', else 0. */
static int depfile_prefix_verdict(const char *s, size_t n)
{
	size_t start = 0, dollars = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n' && !(i > 0 && s[i - 1] == '\\'))
			start = i + 1;
	bool blank = true, colon = false;
	for (size_t i = start; i < n; i++) {
		blank = blank && (s[i] == ' ' || s[i] == '\\' || s[i] == '\n');
		colon = colon || s[i] == ':';
	}
	while (dollars < n - start && s[n - 1 - dollars] == '$')
		dollars++;
	return (!blank && !colon) || dollars % 2 ? -EBADMSG : 0;
}

static void test_depfile(void **state)
{
	/* gcc 12 -MD -MP, with a header name holding a space, a '$', a '#' */
	const char *mp =
		"obj/main.o: src/main.c /usr/include/stdc-predef.h include/my\\ header.h \\\n"
		" include/cost$$.h include/hash\\#1.h \\\n"
		" /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h\n"
		"/usr/include/stdc-predef.h:\n"
		"include/my\\ header.h:\n"
		"include/cost$$.h:\n"
		"include/hash\\#1.h:\n"
		"/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h:\n";
	const char *mp_want[] = { "src/main.c", "/usr/include/stdc-predef.h", "include/my header.h",
				  "include/cost$.h", "include/hash#1.h",
				  "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h" };
	expect_deps(mp, mp_want, 6);
	/* several targets (-MT a.o -MT a.d), CRLF line ends, a blank line */
	const char *multi = "a.o a.d: a.c \\\r\n  a.h\r\n\r\nb.o: b.c a.h\n";
	const char *multi_want[] = { "a.c", "a.h", "b.c" };
	expect_deps(multi, multi_want, 3);
	/* backslashes before a space: 2N+1 escape it, 2N end the word */
	const char *bs = "t: dir\\\\\\ x.h dir\\\\ y.h c:\\path\\z.h\n";
	const char *bs_want[] = { "dir\\ x.h", "dir\\", "y.h", "c:\\path\\z.h" };
	expect_deps(bs, bs_want, 4);
	/* "target : prereq" with spaces around the colon, no final newline,
	 * a comment, an order-only separator */
	const char *odd = "# generated\nt : a.h # the header\nu: b.h | c.h";
	const char *odd_want[] = { "a.h", "b.h", "c.h" };
	expect_deps(odd, odd_want, 3);
	/* a target alone, an empty file */
	expect_deps("t:\n", NULL, 0);
	expect_deps("", NULL, 0);
	expect_deps("\n\n", NULL, 0);
	/* malformed */
	const char *bad[] = { "a.h b.h\n", "t: a$b\n", ": a.h\n", "t: a.h\nloose\n", "t: a.h $" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct deps d = { 0 };
		if (action_depfile_parse(bad[i], strlen(bad[i]), dep_fn, &d) != -EBADMSG)
			fail_msg("malformed depfile %zu accepted", i);
		for (size_t k = 0; k < d.n; k++)
			free(d.got[k]);
	}
	struct deps d = { 0 };
	assert_int_equal(action_depfile_parse("t: a\0b\n", 7, dep_fn, &d), -EBADMSG);
	for (size_t k = 0; k < d.n; k++)
		free(d.got[k]);
	/* fn's error stops the parse and is returned */
	d = (struct deps){ .stop_at = 2 };
	assert_int_equal(action_depfile_parse(mp, strlen(mp), dep_fn, &d), -ECANCELED);
	assert_int_equal(d.n, 2);
	for (size_t k = 0; k < d.n; k++)
		free(d.got[k]);
	/* never reads past len: every prefix of a valid file is judged as the
	 * file it is (malformed only when cut in a target or after a lone
	 * '$'), and what it lists is the start of the full list, the last
	 * name perhaps cut short */
	for (size_t n = 0; n <= strlen(mp); n++) {
		char *cut = malloc(n ? n : 1);
		memcpy(cut, mp, n);
		d = (struct deps){ 0 };
		int r = action_depfile_parse(cut, n, dep_fn, &d);
		if (r != depfile_prefix_verdict(mp, n))
			fail_msg("prefix of %zu bytes: %d, want %d", n, r, depfile_prefix_verdict(mp, n));
		for (size_t k = 0; r == 0 && k < d.n; k++) {
			assert_true(k < 6);
			/* a backslash cut from what it escapes stays a backslash */
			size_t len = strlen(d.got[k]) - (n && mp[n - 1] == '\\' && k + 1 == d.n);
			if (k + 1 < d.n ? strcmp(d.got[k], mp_want[k]) != 0 : strncmp(d.got[k], mp_want[k], len) != 0)
				fail_msg("prefix of %zu bytes: prerequisite %zu is '%s', not (the start of) '%s'", n, k,
					 d.got[k], mp_want[k]);
		}
		for (size_t k = 0; k < d.n; k++)
			free(d.got[k]);
		free(cut);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relativize_boundaries),
		cmocka_unit_test(test_relativize_roundtrip_random),
		cmocka_unit_test(test_path_check),
		cmocka_unit_test(test_scan_split_everywhere),
		cmocka_unit_test(test_scan_random_vs_memmem),
		cmocka_unit_test(test_root_rewrite),
		cmocka_unit_test(test_depfile_rewrap),
		cmocka_unit_test(test_root_at_locations),
		cmocka_unit_test(test_path_lexical),
		cmocka_unit_test(test_run_ms_plausible),
		cmocka_unit_test(test_key_relocation_and_differences),
		cmocka_unit_test(test_key_pinning),
		cmocka_unit_test(test_key_golden),
		cmocka_unit_test(test_env_default),
		cmocka_unit_test(test_manifest_build),
		cmocka_unit_test(test_manifest_roundtrip_random),
		cmocka_unit_test(test_manifest_truncations_and_flips),
		cmocka_unit_test(test_manifest_grammar_refusals),
		cmocka_unit_test(test_manifest_fuzz),
		cmocka_unit_test(test_record_push_and_encoding),
		cmocka_unit_test(test_listing_digest),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_cc_analyze),
		cmocka_unit_test(test_depfile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
