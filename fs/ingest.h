/* ingest.h — storing contents of the mount in the store, off the request
 * path (see ingest.c). */
#pragma once
#include "digest.h"

struct ingest;

/* Starts the worker (it also runs gc when the store is over its limit).
 * Returns 0 or -errno. */
int ingest_new(struct ingest **ret);
/* Stops the worker after the queue drains. Accepts NULL. */
void ingest_free(struct ingest *g);
/* Queues n (a regular file whose content has digest d) for the store.
 * Waits while the queue is full, but never on a thread serving a request
 * (fs_request_thread, state.h): a RELEASE does not wait for the store, the
 * queue grows past its bound instead. */
void ingest_queue(struct ingest *g, ino_node *n, const hasher_digest *d);

/* With -o ingest=all, every file written through the mount is queued at
 * the last close of its writers: subscribe this (arg: the ingest). */
extern const digests_subscriber ingest_subscriber;
