/* spares.h — unnamed files made ahead, so that a restore allocates no inode.
 *
 * A hit restores each output as a new file renamed over its name.  Making
 * a file (allocating its inode) is the one costly step of that on some
 * filesystems: ~0.5 ms on this project's reference ext4 (tools/bench/actions
 * measures it), against ~10 us for the link and the rename.  A worker
 * thread keeps a few unnamed files (O_TMPFILE, mode 0600, the daemon's
 * owner) open in the backing directory; a restore takes one, fills it,
 * gives it its owner and mode and links it under a temporary name, then
 * renames that over the output, as a restore without a spare does.
 *
 * Nothing is made until the first take (a mount that never restores pays
 * nothing); a take that finds none is answered -EAGAIN at once and the
 * worker makes more.  On a filesystem without O_TMPFILE the worker stops
 * trying and every take says -EOPNOTSUPP.
 *
 * Thread-safety: every function may be called from any thread.
 */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

typedef struct fs_spares fs_spares;

/* Starts the worker for files in dirfd (borrowed: it must outlive the
 * spares).  0 or -errno. */
int fs_spares_new(int dirfd, unsigned keep, fs_spares **ret);
/* Stops the worker and closes the files not taken.  Accepts NULL. */
void fs_spares_free(fs_spares *s);

/* An unnamed empty file on device dev, open O_RDWR: the caller owns the
 * fd.  -EAGAIN (none ready; more are being made), -EXDEV (the spares are
 * on another filesystem), -EOPNOTSUPP. */
int fs_spares_take(fs_spares *s, dev_t dev);

/* Closes fd from the worker: the last close of a file whose last name went
 * frees its blocks and inode, which can take a millisecond; a restore that
 * replaced a file hands it over instead of paying that.  Takes fd (closed
 * at once when the worker cannot take it). */
void fs_spares_dispose(fs_spares *s, int fd);

/* Gives the file fd (filled, with its owner and mode) the name `name` in
 * dirfd, replacing what is there.  0 or -errno (fd still unnamed: close
 * it).  The caller's credentials apply to the link and the rename. */
int fs_spares_publish(int fd, int dirfd, const char *name);
