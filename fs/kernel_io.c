/* kernel_io.c — casfs's own /dev/fuse reader and writer (see kernel_io.h).
 *
 * libfuse 3.14 reads requests into its buffer through kio_read and sends
 * replies through kio_writev; both see the raw protocol:
 *   - the INIT request says what the kernel offers; its reply (libfuse's,
 *     matched by the request's unique id) gets the flags casfs wants and
 *     libfuse cannot name: FUSE_HANDLE_KILLPRIV_V2 and FUSE_PASSTHROUGH;
 *   - WRITE, OPEN and CREATE requests carry the kernel's "kill suid/sgid"
 *     flags in fields libfuse drops; they are copied into the open flags
 *     libfuse does pass (FS_KILL_SUIDGID);
 *   - an OPEN reply that a handler marked (kio_open_reply_passthrough) asks
 *     for passthrough to a backing id, in the field 7.40 gave it.
 * Nothing else is touched.  libfuse calls these with the fd of the thread's
 * clone of the device (clone_fd), or the session's.
 */
#include "kernel_io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* Protocol 7.40, newer than Debian 12's <linux/fuse.h> (7.38). */
#define KIO_PASSTHROUGH_FLAGS2 (1u << (37 - 32)) /* FUSE_PASSTHROUGH, in flags2 */
#define KIO_FOPEN_PASSTHROUGH (1u << 7)
struct kio_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define KIO_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct kio_backing_map)
#define KIO_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
/* In 7.40's fuse_init_out, max_stack_depth is the word after flags2
 * (unused[0] in 7.38's), and fuse_open_out's padding is backing_id. */
/* Passthrough over one plain filesystem (the backing must not be stacked
 * itself, e.g. an overlayfs: its registration then fails and the file is
 * served as before); the mount can still be a lower layer of an overlay. */
#define KIO_MAX_STACK_DEPTH 1

static struct {
	struct kio_options o;
	int fd;                       /* the session's device fd (ioctls) */
	_Atomic uint64_t init_unique; /* the INIT being answered; 0: none */
	_Atomic uint64_t offered;     /* the kernel's INIT flags | flags2 << 32 */
	_Atomic bool killpriv_v2, passthrough;
} kio;

static _Thread_local int open_reply_backing; /* > 0: the OPEN reply to patch */

static ssize_t kio_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	ssize_t r = read(fd, buf, len);
	if (r < (ssize_t)sizeof(struct fuse_in_header))
		return r;
	struct fuse_in_header *h = buf;
	size_t body = (size_t)r - sizeof(*h);
	void *arg = h + 1;
	switch (h->opcode) {
	case FUSE_WRITE:
		if (body >= sizeof(struct fuse_write_in)) {
			struct fuse_write_in *w = arg;
			if (w->write_flags & FUSE_WRITE_KILL_SUIDGID)
				w->flags |= FS_KILL_SUIDGID;
		}
		break;
	case FUSE_OPEN:
		if (body >= sizeof(struct fuse_open_in)) {
			struct fuse_open_in *o = arg;
			if (o->open_flags & FUSE_OPEN_KILL_SUIDGID)
				o->flags |= FS_KILL_SUIDGID;
		}
		break;
	case FUSE_CREATE:
		if (body >= sizeof(struct fuse_create_in)) {
			struct fuse_create_in *c = arg;
			if (c->open_flags & FUSE_OPEN_KILL_SUIDGID)
				c->flags |= FS_KILL_SUIDGID;
		}
		break;
	case FUSE_INIT:
		if (body >= offsetof(struct fuse_init_in, flags) + sizeof(uint32_t)) {
			const struct fuse_init_in *in = arg;
			uint64_t f = in->flags;
			if ((in->flags & FUSE_INIT_EXT) &&
			    body >= offsetof(struct fuse_init_in, flags2) + sizeof(uint32_t))
				f |= (uint64_t)in->flags2 << 32;
			atomic_store(&kio.offered, f);
			atomic_store(&kio.init_unique, h->unique);
		}
		break;
	}
	return r;
}

/* Adds casfs's wishes to libfuse's INIT reply o (len bytes). */
static void init_reply_patch(struct fuse_init_out *o, size_t len)
{
	uint64_t offered = atomic_load(&kio.offered);
	if (kio.o.killpriv_v2 && (offered & FUSE_HANDLE_KILLPRIV_V2)) {
		o->flags |= FUSE_HANDLE_KILLPRIV_V2;
		atomic_store(&kio.killpriv_v2, true);
	}
	/* the kernel refuses passthrough beside the writeback cache */
	if (kio.o.passthrough && (offered & ((uint64_t)KIO_PASSTHROUGH_FLAGS2 << 32)) &&
	    (o->flags & FUSE_INIT_EXT) && !(o->flags & FUSE_WRITEBACK_CACHE) &&
	    len >= offsetof(struct fuse_init_out, unused) + sizeof(uint32_t)) {
		o->flags2 |= KIO_PASSTHROUGH_FLAGS2;
		o->unused[0] = KIO_MAX_STACK_DEPTH;
		atomic_store(&kio.passthrough, true);
	}
}

static ssize_t kio_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	uint64_t u = atomic_load_explicit(&kio.init_unique, memory_order_relaxed);
	if (u && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
		const struct fuse_out_header *oh = iov[0].iov_base;
		if (oh->unique == u) {
			atomic_store(&kio.init_unique, 0);
			if (oh->error == 0 && iov[1].iov_len >= offsetof(struct fuse_init_out, flags2) + sizeof(uint32_t))
				init_reply_patch(iov[1].iov_base, iov[1].iov_len);
		}
	}
	if (open_reply_backing > 0 && count == 2 && iov[1].iov_len == sizeof(struct fuse_open_out)) {
		struct fuse_open_out *oo = iov[1].iov_base;
		oo->open_flags = (oo->open_flags & FOPEN_NOFLUSH) | KIO_FOPEN_PASSTHROUGH;
		oo->padding = (uint32_t)open_reply_backing;
		open_reply_backing = 0;
	}
	return writev(fd, iov, count);
}

static ssize_t kio_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			       unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

int kio_install(struct fuse_session *se, const struct kio_options *o)
{
	static const struct fuse_custom_io io = {
		.read = kio_read,
		.writev = kio_writev,
		.splice_send = kio_splice_send,
	};
	kio.o = *o;
	kio.fd = fuse_session_fd(se);
	return fuse_session_custom_io(se, &io, kio.fd);
}

bool kio_killpriv_v2(void)
{
	return atomic_load(&kio.killpriv_v2);
}

bool kio_passthrough(void)
{
	return atomic_load(&kio.passthrough);
}

int kio_backing_open(int fd)
{
	if (!atomic_load(&kio.passthrough))
		return -EOPNOTSUPP;
	struct kio_backing_map m = { .fd = fd };
	int id = ioctl(kio.fd, KIO_IOC_BACKING_OPEN, &m);
	return id < 0 ? -errno : id;
}

void kio_backing_close(int id)
{
	uint32_t i = (uint32_t)id;
	(void)ioctl(kio.fd, KIO_IOC_BACKING_CLOSE, &i);
}

void kio_open_reply_passthrough(int id)
{
	open_reply_backing = id;
}

void kio_open_reply_done(void)
{
	open_reply_backing = 0;
}
