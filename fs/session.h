/* session.h — action-cache sessions: which process trees `casfs exec`
 * registered, and which session a request's caller belongs to.
 *
 * A session covers the strict descendants of the process that registered
 * it (the exec client, its "root"): children, grandchildren, double forks
 * (the client is a child subreaper, so orphans stay below it), setsid,
 * processes in nested pid namespaces (the kernel gives the daemon their
 * pids in its own namespace).  The root itself is not traced.
 *
 * Attribution: a request carries the caller's thread id.  The first time a
 * thread is seen while a session is live, the daemon opens a pidfd of it
 * and walks its parents with the kernel's PIDFD_GET_INFO (Linux 6.13; no
 * /proc read, which could wait for a task in the middle of execve while it
 * waits for us) up to a registered root.  A root is held by its pidfd, so
 * its pid cannot name another process while it is registered; a parent's
 * pidfd counts only if the child still names that parent after it was
 * opened (else the parent died and its pid may be reused).  The answer is
 * cached per thread with the thread's pidfd: a cached answer is used only
 * while that pidfd says the thread is alive, so a thread id reused by a new
 * process (pid_max is small) is never attributed from the cache.  Nothing
 * of this runs while no session is live.
 *
 * Thread-safety: every function may be called from any FUSE worker.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sessions;
struct session;
struct trace;

int sessions_new(struct sessions **ret);
/* Ends what is left (ended, not recorded).  Accepts NULL. */
void sessions_free(struct sessions *ss);

/* Registers a session rooted at the process of thread `tid` (the caller of
 * the registering request), for user uid; the trace is owned by the
 * session from now on.  Returns 0 and a referenced session, or -errno
 * (-ESRCH: the root is gone). */
int session_begin(struct sessions *ss, pid_t tid, uid_t uid, struct trace *tr, struct session **ret);
/* Ends a session: no request is attributed to it any more.  The caller
 * keeps its reference. */
void session_end(struct sessions *ss, struct session *s);

/* The live session the thread `tid` (a request's caller, in the daemon's
 * pid namespace) belongs to, referenced (release with session_put), or
 * NULL.  Costs one atomic load while no session is live. */
struct session *session_of_caller(struct sessions *ss, pid_t tid);
void session_ref(struct session *s);
void session_put(struct session *s);

uint64_t session_id(const struct session *s);
uid_t session_uid(const struct session *s);
struct trace *session_trace(struct session *s);
bool session_ended(const struct session *s);

/* True when the thread tid runs a compiler proper (cc1, cc1plus, f951,
 * lto1, a clang): its name as the kernel keeps it (/proc/<tid>/comm, which
 * takes no lock an execve holds). */
bool session_caller_compiles(pid_t tid);

/* How many sessions are live now. */
unsigned sessions_live(const struct sessions *ss);
/* Calls fn for every live session but `except` (NULL: none), under the
 * sessions' lock: fn must not call into ss. */
void sessions_each_live(struct sessions *ss, const struct session *except,
			void (*fn)(void *arg, struct session *s), void *arg);
