/* store.h — the casfs store directory (no FUSE).
 *
 * Location: --store DIR, else $CASFS_STORE, else $XDG_CACHE_HOME/casfs, else
 * $HOME/.cache/casfs.  A store holds a FORMAT file ("casfs-store N"); a store
 * written by a newer format is refused rather than misread.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define CACHE_STORE_FORMAT 1

typedef struct cache_store cache_store;

/* Writes the default store path into buf. Returns 0 or -ENOENT when neither
 * CASFS_STORE, XDG_CACHE_HOME nor HOME is set, -ENAMETOOLONG. */
int cache_store_default_path(char *buf, size_t len);

/* Opens (creating it and its parents when missing) the store at path.
 * Errors: -ENOTDIR (path is a file), -EACCES/-EROFS (not writable),
 * -EPROTO (FORMAT names a newer version), -EINVAL (a non-empty directory
 * that is not a store), other -errno.  On failure, *errmsg (static string)
 * says what is wrong. */
int cache_store_open(const char *path, cache_store **ret, const char **errmsg);
/* Opens the store at path only when it is one already: creates nothing
 * (commands that only read or check a store must not leave an empty store
 * behind a mistyped path).  Errors as cache_store_open, and -ENOENT (path
 * does not exist), -EINVAL (a directory without a FORMAT file). */
int cache_store_open_existing(const char *path, cache_store **ret, const char **errmsg);
void cache_store_close(cache_store *s);
/* Absolute path of the store (owned by s). */
const char *cache_store_path(const cache_store *s);
/* Directory fds of the store, objects/ and tmp/ (owned by s). */
int cache_store_dirfd(const cache_store *s);
int cache_store_objects_fd(const cache_store *s);
int cache_store_tmp_fd(const cache_store *s);
