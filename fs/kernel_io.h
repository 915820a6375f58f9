/* kernel_io.h — casfs reads and writes /dev/fuse itself (libfuse's custom
 * io) to use what the kernel offers and libfuse 3.14 cannot ask for:
 *
 *   FUSE_HANDLE_KILLPRIV_V2: the kernel stops asking security.capability
 *     (a GETXATTR round trip) before every write(2), and leaves killing
 *     set-user-ID and set-group-ID bits to casfs, telling it where: WRITE
 *     (FUSE_WRITE_KILL_SUIDGID), OPEN and CREATE with O_TRUNC
 *     (FUSE_OPEN_KILL_SUIDGID), SETATTR of the size or owner
 *     (FATTR_KILL_SUIDGID, which libfuse passes as FUSE_SET_ATTR_KILL_SUID).
 *     The first two reach the handlers as FS_KILL_SUIDGID in fi->flags.
 *     A chown(-1, -1) comes with no mark at all, as a SETATTR that sets
 *     nothing: op_setattr kills there too, as ext4 does.
 *   FUSE_PASSTHROUGH (protocol 7.40): an open file whose reads and writes
 *     the kernel sends straight to a backing file registered by casfs, never
 *     through the daemon (needs CAP_SYS_ADMIN).
 *
 * Thread-safety: every function may be called from any thread once
 * kio_install returned.  The INIT exchange happens once, before any other
 * request.
 */
#pragma once
#include <fuse_lowlevel.h>
#include <stdbool.h>

/* Set by the reader in a WRITE's, OPEN's or CREATE's open flags (fi->flags)
 * when the kernel asks casfs to kill suid/sgid; no open flag uses bit 31.
 * A handler clears it before using the flags. */
#define FS_KILL_SUIDGID (1u << 31)

struct kio_options {
	bool killpriv_v2;  /* ask for FUSE_HANDLE_KILLPRIV_V2 */
	bool passthrough;  /* ask for FUSE_PASSTHROUGH when the kernel offers it */
};

/* Takes over se's /dev/fuse reads and writes (and those of the clones the
 * multi-threaded loop makes: libfuse hands each its own fd).  After
 * fuse_session_mount, before the loop.  Returns 0 or -errno. */
int kio_install(struct fuse_session *se, const struct kio_options *o);

/* What the kernel agreed to at INIT (false before). */
bool kio_killpriv_v2(void);
bool kio_passthrough(void);

/* Registers fd (any open fd of a regular backing file) as a passthrough
 * backing file.  Returns its id (> 0) or -errno (-EOPNOTSUPP when
 * passthrough was not negotiated). */
int kio_backing_open(int fd);
/* Releases an id of kio_backing_open.  The kernel keeps the backing file
 * for the files opened with it. */
void kio_backing_close(int id);
/* The OPEN reply this thread sends until kio_open_reply_done asks the
 * kernel for passthrough to backing id (FOPEN_PASSTHROUGH; the kernel
 * refuses every other open flag but noflush and direct_io beside it). */
void kio_open_reply_passthrough(int id);
void kio_open_reply_done(void);
