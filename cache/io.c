/* io.c — see io.h. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

/* The one transfer loop: moves up to len bytes between buf and fd (at off,
 * or at the fd's offset), retrying after EINTR and short transfers; a read
 * of 0 bytes is the end of the file, a write of 0 bytes an error.  Returns
 * 0 or -errno; *moved gets the bytes moved, on error too. */
static int io_loop(int fd, char *buf, size_t len, off_t off, bool writing, size_t *moved)
{
	size_t done = 0;
	int r = 0;
	while (done < len) {
		char *p = buf + done;
		size_t want = len - done;
		ssize_t n;
		if (writing)
			n = off == CACHE_IO_CUR ? write(fd, p, want) : pwrite(fd, p, want, off + (off_t)done);
		else
			n = off == CACHE_IO_CUR ? read(fd, p, want) : pread(fd, p, want, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			r = writing ? -EIO : 0;
			break;
		}
		done += (size_t)n;
	}
	*moved = done;
	return r;
}

ssize_t cache_io_read(int fd, void *buf, size_t len, off_t off)
{
	size_t done;
	int r = io_loop(fd, buf, len, off, false, &done);
	return r < 0 ? r : (ssize_t)done;
}

int cache_io_write(int fd, const void *buf, size_t len, off_t off)
{
	size_t done;
	return io_loop(fd, (char *)buf, len, off, true, &done);
}

ssize_t cache_io_write_some(int fd, const void *buf, size_t len, off_t off)
{
	size_t done;
	int r = io_loop(fd, (char *)buf, len, off, true, &done);
	return done || r == 0 ? (ssize_t)done : r;
}

int cache_io_reopen(int proc_fd, int fd, int flags)
{
	char name[32];
	if (proc_fd >= 0)
		snprintf(name, sizeof(name), "%d", fd);
	else
		snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
	int r = openat(proc_fd >= 0 ? proc_fd : AT_FDCWD, name, (flags & ~O_NOFOLLOW) | O_CLOEXEC);
	return r < 0 ? -errno : r;
}
