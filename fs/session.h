/* session.h — action-cache sessions: which process trees `casfs exec`
 * registered, and which session a request's caller belongs to. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

struct sessions;
struct session;

int sessions_new(struct sessions **ret);
/* Accepts NULL. */
void sessions_free(struct sessions *ss);

/* The session the thread `tid` (a request's caller, in the daemon's pid
 * namespace) belongs to, referenced (release with session_put), or NULL.
 * Costs one atomic load while no session is live. */
struct session *session_of_caller(struct sessions *ss, pid_t tid);
void session_put(struct session *s);
