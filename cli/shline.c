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
		"until", "while", ".", ":", "[", "alias", "bg", "break", "cd", "command", "continue", "echo",
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

void shline_vars(const char *line, void (*fn)(void *arg, const char *name), void *arg)
{
	char name[256];
	for (const char *p = strchr(line, '$'); p; p = strchr(p, '$')) {
		p++;
		if (*p == '{')
			p++;
		if (!var_start(*p))
			continue;
		size_t l = 0;
		while (var_start(p[l]) || (p[l] >= '0' && p[l] <= '9'))
			l++;
		if (l < sizeof(name)) {
			memcpy(name, p, l);
			name[l] = '\0';
			fn(arg, name);
		}
		p += l;
	}
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("_.+/-", c));
}

void shline_names(const char *line, void (*fn)(void *arg, const char *name), void *arg)
{
	char name[4096];
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
}
