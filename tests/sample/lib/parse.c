#include "sample/parse.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

int parse_int_list(const char *s, struct ivec *iv)
{
	int count = 0;
	while (*s) {
		while (*s == ',' || isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		char *end;
		errno = 0;
		long v = strtol(s, &end, 0);
		if (end == s || errno)
			return -1;
		iv_push(iv, v);
		count++;
		s = end;
		if (*s && *s != ',' && !isspace((unsigned char)*s))
			return -1;
	}
	return count;
}
