/* io.h — whole reads and writes, and reopening a file through its fd, for
 * every module above hasher/: the store's blob files, the daemon's backing
 * files, the command's pipes and the control file's buffers.
 *
 * Each transfer retries after EINTR and after a short read or write until
 * it is whole (or a read reaches the end of the file).  Errors are -errno.
 * No state is kept: every function may be called from any thread.
 */
#pragma once
#include <stddef.h>
#include <sys/types.h>

/* The `off` that reads or writes at the fd's own file offset (and moves
 * it), as read(2) and write(2) do, instead of at a given offset. */
#define CACHE_IO_CUR ((off_t)-1)

/* Reads len bytes at off into buf, fewer only at the end of the file.
 * Returns the byte count, or -errno (bytes read before the error are not
 * counted: the caller sees the error). */
ssize_t cache_io_read(int fd, void *buf, size_t len, off_t off);

/* Writes all len bytes of buf at off.  Returns 0, or -errno (-EIO for a
 * write that wrote nothing). */
int cache_io_write(int fd, const void *buf, size_t len, off_t off);

/* The same for a caller that must report a partial write (a reply to a
 * write request): returns the bytes written, all of them or those written
 * before an error stopped it, or -errno when the error came first. */
ssize_t cache_io_write_some(int fd, const void *buf, size_t len, off_t off);

/* Opens the inode behind fd (an O_PATH fd is fine) with flags (O_NOFOLLOW
 * dropped, O_CLOEXEC added) through /proc/self/fd/N, a magic link to the
 * very inode, not a lookup of its path.  proc_fd: an fd of /proc/self/fd,
 * or -1 to go through the path "/proc/self/fd".  Returns the new fd, or
 * -errno. */
int cache_io_reopen(int proc_fd, int fd, int flags);
