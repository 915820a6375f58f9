/* Unit tests for cache/hiscan.c: the __has_include queries of a file as
 * the preprocessor sees them (line splices removed, comments replaced by
 * a space), the spellings that only ask whether the operator exists, and
 * the ones casfs cannot read (a macro in the name's place). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hiscan.h"

/* The queries of text, as "<name>" / "\"name\"" joined by spaces, or
 * "ENOLINK". */
struct got {
	char s[512];
	int calls;
};

static int collect(void *arg, bool quote, const char *name, size_t len)
{
	struct got *g = arg;
	size_t l = strlen(g->s);
	snprintf(g->s + l, sizeof(g->s) - l, "%s%c%.*s%c", l ? " " : "", quote ? '"' : '<', (int)len, name,
		 quote ? '"' : '>');
	g->calls++;
	return 0;
}

static const char *scan(const char *text, struct got *g)
{
	memset(g, 0, sizeof(*g));
	char *buf = strdup(text);
	assert_non_null(buf);
	int r = hiscan(buf, strlen(text), collect, g);
	free(buf);
	if (r == -ENOLINK)
		return "ENOLINK";
	assert_int_equal(r, 0);
	return g->s;
}

static void test_queries(void **state)
{
	(void)state;
	struct got g;
	assert_string_equal(scan("#include <stdio.h>\nint x;\n", &g), "");
	assert_int_equal(g.calls, 0);
	assert_string_equal(scan("#if __has_include(<a.h>)\n#endif\n", &g), "<a.h>");
	assert_string_equal(scan("#if __has_include ( \"b/c.h\" ) && __has_include_next(<d.h>)\n", &g),
			    "\"b/c.h\" <d.h>");
	assert_string_equal(scan("#if defined __has_include\n#if __has_include(<e.h>)\n#endif\n#endif\n", &g),
			    "<e.h>");
}

static void test_comments_and_splices(void **state)
{
	(void)state;
	struct got g;
	/* a comment between the operator and its parenthesis is a space */
	assert_string_equal(scan("#if __has_include/* x */(<a.h>)\n", &g), "<a.h>");
	/* a splice inside the operator's name joins it */
	assert_string_equal(scan("#if __has_incl\\\nude(<b.h>)\n", &g), "<b.h>");
	assert_string_equal(scan("#if __has_incl\\\r\nude(<c.h>)\n", &g), "<c.h>");
	/* in a comment: no query */
	assert_string_equal(scan("// __has_include(<a.h>)\n/* __has_include(<b.h>) */\n", &g), "");
	/* in a string literal: reported (more than the search looks at is
	 * safe, less never) */
	assert_string_equal(scan("const char *s = \"__has_include(<a.h>)\";\n", &g), "<a.h>");
	/* a longer identifier is not the operator */
	assert_string_equal(scan("int my__has_include(int); int __has_include_nextx;\n", &g), "");
}

static void test_unreadable(void **state)
{
	(void)state;
	struct got g;
	assert_string_equal(scan("#define HI __has_include\n#if HI(<a.h>)\n#endif\n", &g), "ENOLINK");
	assert_string_equal(scan("#define H <a.h>\n#if __has_include(H)\n#endif\n", &g), "ENOLINK");
	assert_string_equal(scan("#if __has_include(<a.h\n#endif\n", &g), "ENOLINK");
	assert_string_equal(scan("#if __has_include(<>)\n", &g), "ENOLINK");
	/* only asking whether it is defined */
	assert_string_equal(scan("#ifdef __has_include\n#endif\n#ifndef __has_include\n#endif\n", &g), "");
	assert_string_equal(scan("#if defined(__has_include) || defined __has_include_next\n#endif\n", &g), "");
}

static void test_maybe(void **state)
{
	(void)state;
	const char *no = "#include <stdio.h>\n#define A 1 \\\n  + 2\n";
	assert_false(hiscan_maybe(no, strlen(no)));
	const char *yes = "#if __has_include(<a.h>)\n";
	assert_true(hiscan_maybe(yes, strlen(yes)));
	/* a splice between identifier characters might make the token */
	const char *split = "__has_in\\\nclude";
	assert_true(hiscan_maybe(split, strlen(split)));
	const char *chain = "x\\\n\\\ny";
	assert_true(hiscan_maybe(chain, strlen(chain)));
	/* whatever hiscan_maybe rules out has no query */
	struct got g;
	assert_string_equal(scan(no, &g), "");
}

static int stop(void *arg, bool quote, const char *name, size_t len)
{
	(void)arg, (void)quote, (void)name, (void)len;
	return -ENAMETOOLONG;
}

static void test_callback_error_stops(void **state)
{
	(void)state;
	char text[] = "#if __has_include(<a.h>) || __has_include(<b.h>)\n";
	assert_int_equal(hiscan(text, strlen(text), stop, NULL), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queries),
		cmocka_unit_test(test_comments_and_splices),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_maybe),
		cmocka_unit_test(test_callback_error_stops),
	};
	return cmocka_run_group_tests_name("hiscan", tests, NULL, NULL);
}
