/* Unit tests for cli/shline.c: which recipe lines casfs-sh may run without
 * a shell, their words, and the names a line holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "shline.h"

/* The words joined by '|', or "" when the line needs the shell. */
static const char *split(const char *line)
{
	static char out[1024];
	char buf[512], *words[16];
	size_t n = shline_simple(line, buf, sizeof(buf), words, 16);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, "|");
		strcat(out, words[i]);
	}
	if (n)
		assert_null(words[n]);
	return out;
}

static void test_simple(void **state)
{
	static const struct {
		const char *line, *want;
	} cases[] = {
		{ "gcc -c a.c -o a.o", "gcc|-c|a.c|-o|a.o" },
		{ "  gcc\t-O2   -c a.c  ", "gcc|-O2|-c|a.c" },
		{ "gcc -DX=1 -I../inc -c lib/a.c -o build/a.o", "gcc|-DX=1|-I../inc|-c|lib/a.c|-o|build/a.o" },
		{ "gcc '-DMSG=\"hi there\"' -c a.c", "gcc|-DMSG=\"hi there\"|-c|a.c" },
		{ "gcc \"-DA=b c\" x'y'z -c a.c", "gcc|-DA=b c|xyz|-c|a.c" },
		{ "cc '' x", "cc||x" },
		{ "/usr/bin/gcc -Wl,--as-needed,-z,now -o p a.o b.o", "/usr/bin/gcc|-Wl,--as-needed,-z,now|-o|p|a.o|b.o" },
		{ "ar rcs libx.a a.o b.o", "ar|rcs|libx.a|a.o|b.o" },
		{ "x@y %z", "x@y|%z" },
		/* what only the shell may run */
		{ "", "" },
		{ "   ", "" },
		{ "gcc -c $SRC", "" },
		{ "gcc -c \"$SRC\"", "" },
		{ "gcc -c `cat f`", "" },
		{ "gcc -c a\\ b.c", "" },
		{ "gcc -c *.c", "" },
		{ "gcc -c a?.c", "" },
		{ "gcc -c [ab].c", "" },
		{ "gcc -c ~/a.c", "" },
		{ "gcc -c a.c > log", "" },
		{ "gcc -c a.c 2>&1", "" },
		{ "gcc -c a.c < in", "" },
		{ "gcc -c a.c | tee log", "" },
		{ "gcc -c a.c; echo done", "" },
		{ "gcc -c a.c && touch stamp", "" },
		{ "gcc -c a.c || true", "" },
		{ "(gcc -c a.c)", "" },
		{ "{ gcc -c a.c; }", "" },
		{ "gcc -c a.c &", "" },
		{ "gcc -c a.c # note", "" },
		{ "gcc -c a.c\ntouch x", "" },
		{ "CC=gcc make", "" },
		{ "'A=b' cmd", "" },
		{ "echo hi", "" },
		{ "'echo' hi", "" },
		{ "cd sub", "" },
		{ "test -f x", "" },
		{ "[ -f x ]", "" },
		{ "true", "" },
		{ "exec gcc -c a.c", "" },
		{ "if true; then :; fi", "" },
		{ "gcc 'unterminated", "" },
		{ "gcc \"unterminated", "" },
		{ "a b c d e f g h i j k l m n o p", "" }, /* 16 words: no room for NULL */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = split(cases[i].line);
		if (strcmp(got, cases[i].want))
			fail_msg("line \"%s\": got \"%s\", want \"%s\"", cases[i].line, got, cases[i].want);
	}
}

static void test_small_buffer(void **state)
{
	char buf[8], *words[4];
	assert_int_equal(shline_simple("gcc -c abcdefgh.c", buf, sizeof(buf), words, 4), 0);
	assert_int_equal(shline_simple("gcc -c", buf, sizeof(buf), words, 4), 2);
	assert_string_equal(words[1], "-c");
}

static void collect(void *arg, const char *name)
{
	char *out = arg;
	if (out[0])
		strcat(out, "|");
	strcat(out, name);
}

static void test_names(void **state)
{
	char out[512] = "";
	shline_names("mkdir -p build && CC=gcc-12 $(MAKE) -C sub; /usr/bin/x86_64-linux-gnu-gcc-12 -c \"a b.c\" | tee x.log",
		     collect, out);
	assert_string_equal(out, "mkdir|build|CC|gcc-12|MAKE|sub|/usr/bin/x86_64-linux-gnu-gcc-12|a|b.c|tee|x.log");
	out[0] = '\0';
	shline_names("", collect, out);
	assert_string_equal(out, "");
}

/* collect, without the names every line has (shline_vars' "always") */
static const char *const always = "|BASH_ENV|ENV|SHELLOPTS|BASHOPTS|POSIXLY_CORRECT|IFS|TIMEFORMAT|GLOBIGNORE|PS4|";

static void collect_own(void *arg, const char *name)
{
	char probe[64];
	snprintf(probe, sizeof(probe), "|%s|", name);
	if (!strstr(always, probe))
		collect(arg, name);
}

static void test_vars(void **state)
{
	static const struct {
		const char *line, *want;
	} cases[] = {
		{ "echo $A ${B_2} ${C:-x} ${G:+y} $$ $1 $@ $? \"$D\" '$E' \\$F $ ${", "A|B_2|C|G|D|E|F" },
		{ "no variables", "" },
		{ "echo ${#LEN} > o", "LEN" },
		{ "echo ~/lib > o", "HOME" },
		{ "cd x && cat f", "CDPATH|HOME|OLDPWD" },
		{ "c\"d\" x && cat f", "CDPATH|HOME|OLDPWD" }, /* quotes do not hide a word */
		{ "abcd x; cdx; mkcd", "" },                   /* not cd */
		{ "set -e; gcc -O2 -c a.c", "" },              /* set with arguments prints nothing */
		{ "env CC=gcc make; export X=1", "" },          /* env running a command */
		/* names built or evaluated at run time, and lines that print
		 * every variable: the whole environment */
		{ "echo $((FOO + 1)) > o", "*" },
		{ "Y=Z; eval \"echo \\${$Y}\"", "*" },
		{ "[[ N -gt 3 ]] && echo big", "*" },
		{ "let R=N+1", "*" },
		{ "echo ${!P} ${x:N} ${a[N]}", "*" },
		{ "x=abc; echo ${x:1}", "*" },
		{ "set > vars.txt", "*" },
		{ "env | sort > o", "*" },
		{ "'env' | wc -l", "*" },
		{ "en\"\"v | wc -l", "*" },
		{ "env X=1 | wc -l", "*" },
		{ "env -u X -0 | wc -c", "*" },
		{ "export -p > o", "*" },
		{ "declare -x > o", "*" },
		{ "typeset -r -i", "*" },
		{ "compgen -v", "*" },
		{ "echo $VER\\\nSION > o", "VERSION" }, /* a line splice */
		{ "test -v FOO && echo y", "FOO" },
		{ "[ -v BAR ] || echo n", "BAR" },
		{ "env\n", "*" },
		{ "declare -n r=FOO; echo \"$r\" > o", "*" },
		{ "local -rn r=FOO", "*" },
		{ "export\ntrue", "*" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char out[512] = "";
		shline_vars(cases[i].line, collect_own, out);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("shline_vars(\"%s\"): \"%s\", not \"%s\"", cases[i].line, out, cases[i].want);
	}
	/* and those every line has */
	char out[512] = "";
	shline_vars("true", collect, out);
	assert_string_equal(out, "BASH_ENV|ENV|SHELLOPTS|BASHOPTS|POSIXLY_CORRECT|IFS|TIMEFORMAT|GLOBIGNORE|PS4");
}

/* Lines whose programs cannot be told from their words. */
static void test_unkeyable(void **state)
{
	(void)state;
	static const char *const yes[] = {
		"PATH=/opt/t:$PATH mytool > o", "export PATH=/x; tool", "PATH+=:/x tool", ". ./env.sh; make",
		"true && source cfg.sh", "cd sub && ./gen.sh > o", "pushd d; tools/run",
	};
	static const char *const no[] = {
		"find . -name '*.c' > o", "echo PATH=x > o", "cd sub && make", "./gen.sh > o", "MYPATH=1 tool",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
		if (!shline_unkeyable(yes[i]))
			fail_msg("shline_unkeyable(\"%s\"): NULL", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
		if (shline_unkeyable(no[i]))
			fail_msg("shline_unkeyable(\"%s\"): \"%s\"", no[i], shline_unkeyable(no[i]));
	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_non_null(shline_unkeyable(big));
	assert_false(shline_names(big, collect, NULL));
}

static void test_builtin(void **state)
{
	assert_true(shline_builtin("cd"));
	assert_true(shline_builtin("echo"));
	assert_true(shline_builtin("["));
	assert_false(shline_builtin("gcc"));
	assert_false(shline_builtin("ec"));
	assert_false(shline_builtin("cdx"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_small_buffer),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_vars),
		cmocka_unit_test(test_unkeyable),
		cmocka_unit_test(test_builtin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
