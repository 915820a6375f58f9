/*
 * shline: what casfs-sh can tell about a shell command line (make's recipe
 * line) without running a shell.
 *
 *   shline_simple   one simple command with nothing the shell would
 *                   expand (no $, `, \, globs, ~, redirections, operators,
 *                   assignments, comments, shell builtins or keywords):
 *                   its words, so casfs-sh can run the program itself (and
 *                   a compile gets the compiler's handling);
 *   shline_names    every bare word of any line, the candidates for the
 *                   programs it may run;
 *   shline_vars     the variables a line may expand.
 *
 * Pure functions over strings; no allocation.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* Splits line into words (unquoted and '…'/"…" quoted parts joined, as the
 * shell would) in buf, pointers in words (NULL-terminated).  Returns the
 * word count, or 0 when the line needs the shell (or does not fit: buf of
 * bufsize bytes, max words). */
size_t shline_simple(const char *line, char *buf, size_t bufsize, char **words, size_t max);

/* True for a word the shell runs itself (a builtin or a reserved word). */
bool shline_builtin(const char *word);

/* Calls fn for every maximal run of [A-Za-z0-9_.+/-] in line, its
 * backslash-newlines taken out, that does not start with '-' (in order,
 * duplicates included), copied into a NUL-terminated buffer of at most 4096
 * bytes (longer runs are skipped).  False, calling nothing, for a line of
 * 4 KiB or more. */
bool shline_names(const char *line, void (*fn)(void *arg, const char *name), void *arg);

/* Calls fn for the name of every variable the line may expand: $NAME,
 * ${NAME...}, ${#NAME} (NAME: a letter or '_', then letters, digits, '_';
 * at most 255 bytes), wherever they appear (quotes and escapes are not
 * interpreted, so this may name more than the shell expands, never fewer);
 * those the shell reads without a $ in the line: HOME for a ~, CDPATH, HOME
 * and OLDPWD for cd/pushd/popd; and those every shell may read for any line
 * (BASH_ENV, ENV, SHELLOPTS, BASHOPTS, POSIXLY_CORRECT, IFS, TIMEFORMAT,
 * GLOBIGNORE, PS4).  A line that can read any variable gives "*" alone:
 * one that prints them all (set, export, readonly, declare, typeset alone
 * or with -p; env or printenv with no command; quotes removed first), or
 * builds or evaluates names (eval, let, [[, ((, $((...)), ${!...},
 * ${NAME:offset}, ${NAME[...]}), or a line longer than 4095 bytes. */
void shline_vars(const char *line, void (*fn)(void *arg, const char *name), void *arg);

/* Why what a line runs cannot be keyed from its words, or NULL: it sets
 * PATH, sources a script, or changes directory and names something by a
 * relative path. */
const char *shline_unkeyable(const char *line);
