/* actions.h — the daemon's side of `casfs exec`: the .casfs/ctl file, and
 * looking actions up, restoring their outputs, recording new runs (the
 * protocol is in ctl.h, the pure logic in cache/action.h, what a run is
 * seen to do in trace.h). */
#pragma once
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include "ctl.h"
#include "req.h"

struct ctlfile;

/* An open .casfs/ctl of the real directory `dir`.  NULL on ENOMEM. */
struct ctlfile *actions_ctl_open(fuse_ino_t dir);
/* Closes it; a session begun through it and not ended is ended unrecorded
 * (the client was killed).  Accepts NULL. */
void actions_ctl_release(struct ctlfile *cf);
/* The last response, from offset off: bytes copied, or -errno. */
ssize_t actions_ctl_read(struct ctlfile *cf, void *buf, size_t size, off_t off);

/* Serves one CASFS_IOC_CALL (replies). */
void actions_call(struct req *q, struct ctlfile *cf, const struct casfs_ctl_call *in);

/* Stops the daemon's action work (sessions still live are abandoned). */
void actions_shutdown(void);
