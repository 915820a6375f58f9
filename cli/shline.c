#include "shline.h"

#include <string.h>

static bool plain(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("_-./=+,:@%", c));
}

bool shline_builtin(const char *w)
{
	static const char *const names[] = {
		"!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in", "then",
		"until", "while", ".", ":", "[", "alias", "bg", "break", "cd", "chdir", "command", "continue", "echo",
		"eval", "exec", "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill", "local",
		"printf", "pwd", "read", "readonly", "return", "set", "shift", "test", "times", "trap", "true",
		"type", "ulimit", "umask", "unalias", "unset", "wait",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(w, names[i]))
			return true;
	return false;
}

size_t shline_simple(const char *line, char *buf, size_t bufsize, char **words, size_t max)
{
	size_t n = 0, at = 0;
	const char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n + 1 >= max)
			return 0;
		words[n] = buf + at;
		while (*p && *p != ' ' && *p != '\t') {
			char c = *p;
			if (c == '\'' || c == '"') {
				const char *end = strchr(p + 1, c);
				if (!end)
					return 0;
				for (const char *q = p + 1; q < end; q++)
					if (c == '"' && (*q == '$' || *q == '`' || *q == '\\'))
						return 0;
				size_t l = (size_t)(end - p - 1);
				if (at + l + 1 >= bufsize)
					return 0;
				memcpy(buf + at, p + 1, l);
				at += l;
				p = end + 1;
				continue;
			}
			if (!plain(c))
				return 0;
			if (at + 2 >= bufsize)
				return 0;
			buf[at++] = c;
			p++;
		}
		buf[at++] = '\0';
		/* an assignment, a builtin, a reserved word: the shell's */
		if (n == 0 && (strchr(words[0], '=') || shline_builtin(words[0])))
			return 0;
		n++;
	}
	if (n == 0)
		return 0;
	words[n] = NULL;
	return n;
}

static bool var_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* The identifier at p (var_start, then digits too): its length. */
static size_t ident_len(const char *p)
{
	size_t l = 0;
	if (var_start(*p))
		while (var_start(p[l]) || (p[l] >= '0' && p[l] <= '9'))
			l++;
	return l;
}

static void call_with(const char *p, size_t l, void (*fn)(void *arg, const char *name), void *arg)
{
	char name[256];
	if (l && l < sizeof(name)) {
		memcpy(name, p, l);
		name[l] = '\0';
		fn(arg, name);
	}
}

/* Whether line holds word w, delimited by anything but an identifier
 * character; *after: what follows its first such occurrence, blanks
 * skipped. */
static bool has_word(const char *line, const char *w, const char **after)
{
	size_t wl = strlen(w);
	for (const char *p = strstr(line, w); p; p = strstr(p + 1, w)) {
		bool start = p == line || !(var_start(p[-1]) || (p[-1] >= '0' && p[-1] <= '9') || p[-1] == '-');
		if (start && !ident_len(p + wl) && !(p[wl] >= '0' && p[wl] <= '9') && p[wl] != '-') {
			const char *a = p + wl;
			while (*a == ' ' || *a == '\t')
				a++;
			*after = a;
			return true;
		}
	}
	return false;
}

/* Whether the line reads variables by names it builds or evaluates (so
 * any variable): eval, bash's arithmetic ([[ ]], (( )), let, names in
 * $((...)), which it evaluates again), ${!NAME} and ${!PREFIX@},
 * substrings and subscripts (arithmetic too). */
static bool reads_any(const char *line, const char *bare)
{
	const char *after;
	if (has_word(bare, "eval", &after) || has_word(bare, "let", &after) || strstr(line, "[[") ||
	    strstr(line, "((") || strstr(line, "${!"))
		return true;
	/* a name reference (declare -n r=NAME: $r reads NAME) */
	static const char *const refs[] = { "declare", "typeset", "local" };
	for (size_t i = 0; i < 3; i++)
		for (const char *p = bare; has_word(p, refs[i], &after); p = after) {
			if (after[0] == '-' && memchr(after, 'n', strcspn(after, " \t")))
				return true;
			if (after == p)
				break;
		}
	for (const char *p = strstr(line, "${"); p; p = strstr(p + 2, "${")) {
		size_t l = ident_len(p + 2);
		/* ${N:2} and ${N[i]}; not ${N:-word}, ${N:=w}, ${N:?w}, ${N:+w} */
		if (l && ((p[2 + l] == ':' && !strchr("-=?+", p[3 + l])) || p[2 + l] == '['))
			return true;
	}
	return false;
}

/* Whether the line prints every variable: set, export, readonly, declare
 * or typeset alone or with -p; env or printenv with nothing but options
 * and NAME=VALUE words (no command to run).  bare: the line without
 * quotes and backslashes, as the shell reads the words. */
static bool prints_all(const char *bare)
{
	static const char *const all[] = { "set", "export", "readonly", "declare", "typeset" };
	const char *after;
	for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++)
		for (const char *p = bare; has_word(p, all[i], &after); p = after) {
			/* options alone (declare -x, typeset -p -r, export -p;
			 * set with options sets them) */
			const char *w = after;
			while (i > 0 && (*w == '-' || *w == '+')) {
				w += strcspn(w, " \t;|&<>)\n");
				while (*w == ' ' || *w == '\t')
					w++;
			}
			if (!*w || strchr(";|&<>)\n", *w))
				return true;
			if (after == p)
				break;
		}
	/* bash's completion lists (compgen -v, -e, -A variable) */
	if (has_word(bare, "compgen", &after))
		return true;
	static const char *const envs[] = { "env", "printenv" };
	for (size_t i = 0; i < 2; i++)
		for (const char *p = bare; has_word(p, envs[i], &after); p = after) {
			const char *w = after;
			/* options and assignments, then a command or the end */
			while (*w && !strchr(";|&<>)\n", *w)) {
				size_t wl = strcspn(w, " \t;|&<>)\n");
				size_t il = ident_len(w);
				if (w[0] != '-' && !(il && w[il] == '='))
					break;
				/* env -u NAME, -C DIR: an option with its argument */
				bool arg = wl == 2 && (!strncmp(w, "-u", 2) || !strncmp(w, "-C", 2));
				w += wl;
				while (*w == ' ' || *w == '\t')
					w++;
				if (arg && *w && !strchr(";|&<>)\n", *w)) {
					w += strcspn(w, " \t;|&<>)\n");
					while (*w == ' ' || *w == '\t')
						w++;
				}
			}
			if (!*w || strchr(";|&<>)\n", *w))
				return true;
			if (after == p)
				break;
		}
	return false;
}

/* line with every backslash-newline taken out, as the shell reads it
 * before it splits words (in single quotes one stays: then a name more is
 * keyed, never one less); false when it does not fit. */
static bool spliced(const char *line, char *out, size_t size)
{
	size_t o = 0;
	for (const char *p = line; *p; p++) {
		if (p[0] == '\\' && p[1] == '\n') {
			p++;
			continue;
		}
		if (o + 1 >= size)
			return false;
		out[o++] = *p;
	}
	out[o] = '\0';
	return true;
}

/* line as the shell reads its words once quotes and backslashes are gone,
 * into bare (4096 bytes): false when it does not fit. */
static bool bare_of(const char *line, char bare[4096])
{
	size_t bl = 0;
	for (const char *p = line; *p; p++) {
		if (*p == '\'' || *p == '"' || *p == '\\')
			continue;
		if (bl + 1 >= 4096)
			return false;
		bare[bl++] = *p;
	}
	bare[bl] = '\0';
	return true;
}

static void vars_of(const char *line, void (*fn)(void *arg, const char *name), void *arg);

void shline_vars(const char *line, void (*fn)(void *arg, const char *name), void *arg)
{
	char buf[4096];
	if (!spliced(line, buf, sizeof(buf))) {
		fn(arg, "*");
		return;
	}
	vars_of(buf, fn, arg);
}

static void vars_of(const char *line, void (*fn)(void *arg, const char *name), void *arg)
{
	char bare[4096];
	if (!bare_of(line, bare) || reads_any(line, bare) || prints_all(bare)) {
		fn(arg, "*");
		return;
	}
	for (const char *p = strchr(line, '$'); p; p = strchr(p, '$')) {
		p++;
		if (*p == '{') {
			p++;
			if (*p == '#') /* ${#NAME} */
				p++;
		}
		size_t l = ident_len(p);
		call_with(p, l, fn, arg);
		p += l;
	}
	/* what the shell reads at its start, or for its own work, whatever
	 * the line: startup files and options, field splitting, the time
	 * builtin's format, glob exclusions, the trace's prefix */
	static const char *const always[] = { "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "POSIXLY_CORRECT",
					      "IFS", "TIMEFORMAT", "GLOBIGNORE", "PS4" };
	for (size_t i = 0; i < sizeof(always) / sizeof(*always); i++)
		fn(arg, always[i]);
	/* what the shell reads without a $ in the line: test -v NAME, [ -v NAME ] */
	const char *after;
	for (const char *p = bare; has_word(p, "-v", &after); p = after) {
		call_with(after, ident_len(after), fn, arg);
		if (after == p)
			break;
	}
	if (strchr(line, '~'))
		fn(arg, "HOME");
	if (has_word(bare, "cd", &after) || has_word(bare, "pushd", &after) || has_word(bare, "popd", &after)) {
		fn(arg, "CDPATH");
		fn(arg, "HOME");
		fn(arg, "OLDPWD");
	}
}

const char *shline_unkeyable(const char *whole)
{
	char line[4096], bare[4096];
	if (!spliced(whole, line, sizeof(line)) || !bare_of(line, bare))
		return "the line is longer than casfs reads (4 KiB): split it into recipe lines";
	const char *after;
	bool moves = has_word(bare, "cd", &after) || has_word(bare, "pushd", &after) || has_word(bare, "popd", &after);
	static const char *const decls[] = { "export", "declare", "typeset", "local", "readonly" };
	for (const char *p = bare; *p; p++) {
		if (p != bare && !strchr(";&|(\n", p[-1]))
			continue;
		/* a command: its assignments (and a declaration's words), then
		 * the word it runs */
		const char *w = p + strspn(p, " \t");
		bool decl = false;
		size_t l;
		while ((l = strcspn(w, " \t;&|()<>\n"))) {
			size_t il = ident_len(w);
			bool assign = il && (w[il] == '=' || (w[il] == '+' && w[il + 1] == '='));
			if (assign && il == 4 && !strncmp(w, "PATH", 4))
				return "the line sets PATH, so casfs cannot tell which programs it runs (set PATH in make's environment instead)";
			bool d = false;
			for (size_t i = 0; !decl && i < sizeof(decls) / sizeof(*decls); i++)
				d |= l == strlen(decls[i]) && !strncmp(w, decls[i], l);
			if (!assign && !d && !(decl && (*w == '-' || *w == '+')))
				break;
			decl |= d;
			w += l;
			w += strspn(w, " \t");
		}
		if (decl)
			continue;
		if ((l == 1 && w[0] == '.') || (l == 6 && !strncmp(w, "source", 6)))
			return "the line sources a script, whose reads outside the mount casfs cannot see (run it as a program instead)";
		/* cd DIR then ./tool: relative to a directory casfs does not follow */
		if (moves && l && *w != '/' && memchr(w, '/', l))
			return "the line changes directory and runs a program by a relative path (name it by an absolute path)";
	}
	return NULL;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("_.+/-", c));
}

bool shline_names(const char *whole, void (*fn)(void *arg, const char *name), void *arg)
{
	char name[4096], line[4096];
	if (!spliced(whole, line, sizeof(line)))
		return false;
	for (const char *p = line; *p;) {
		if (!name_char(*p)) {
			p++;
			continue;
		}
		const char *s = p;
		while (name_char(*p))
			p++;
		size_t l = (size_t)(p - s);
		if (s[0] == '-' || l >= sizeof(name))
			continue;
		memcpy(name, s, l);
		name[l] = '\0';
		fn(arg, name);
	}
	return true;
}
