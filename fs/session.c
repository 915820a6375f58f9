/* session.c — see session.h. */
#include "session.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

struct sessions {
	_Atomic unsigned live;
};

int sessions_new(struct sessions **ret)
{
	struct sessions *ss = calloc(1, sizeof(*ss));
	if (!ss)
		return -ENOMEM;
	*ret = ss;
	return 0;
}

void sessions_free(struct sessions *ss)
{
	free(ss);
}

struct session *session_of_caller(struct sessions *ss, pid_t tid)
{
	(void)tid;
	if (!ss || atomic_load_explicit(&ss->live, memory_order_relaxed) == 0)
		return NULL;
	return NULL;
}

void session_put(struct session *s)
{
	(void)s;
}
