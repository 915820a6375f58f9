/* hiscan.h — the __has_include queries a C or C++ file makes.
 *
 * A name a compile asks __has_include (or __has_include_next) about is not
 * in its dependency file when no directory held it or when it was found
 * and not included; the action cache must still record what the search
 * would have found.  This module finds the queries in a file's text, as
 * the preprocessor would: after line splices are removed and comments
 * replaced by spaces.  It reports each query's name and whether it was
 * spelled "name" (searched from the querying file's directory first) or
 * <name>; what the search finds is the caller's business.
 *
 * Pure: used by the exec client (files outside the mount) and by the
 * daemon (files on the mount that the run read).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* One query: quote is true for "name", false for <name>; name is not
 * NUL-terminated.  Returns 0 to go on, or -errno to stop the scan. */
typedef int (*hiscan_fn)(void *arg, bool quote, const char *name, size_t len);

/* Whether text can hold a query at all: the token as it is, or a line
 * splice joining two identifier characters (which could make one).  At
 * memchr's speed; most headers are ruled out by this alone. */
bool hiscan_maybe(const char *text, size_t len);

/* Calls fn for every query in text (len bytes, modified in place).
 * Returns 0, -ENOLINK for a query whose name cannot be read (a macro in
 * its place: #define HI __has_include, __has_include(MACRO)), or fn's
 * error. */
int hiscan(char *text, size_t len, hiscan_fn fn, void *arg);
