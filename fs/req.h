/* req.h — the request context: every handler starts with req_begin and
 * ends with exactly one req_* reply.
 *
 * A context knows the caller (thread id, uid, gid, as libfuse's
 * fuse_req_ctx gives them), the action-cache session the caller belongs to
 * (NULL when none: the common case costs one atomic load), and counts the
 * request and its reply in one place.  Handlers look node ids up through
 * req_node / req_node_fd, which answer ESTALE for an id that names no node.
 *
 * Replies follow fuse_lowlevel.h: req_entry, req_create and every
 * readdirplus entry add one kernel reference (nlookup) to the node; when
 * the caller was interrupted (the reply returns -ENOENT) the kernel took no
 * reference, and the caller of req_entry/req_create must undo its own.
 */
#pragma once
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

#include "state.h"

struct session;

struct req {
	fuse_req_t r;
	pid_t tid;             /* caller's thread id (0: none, e.g. RELEASE) */
	uid_t uid;
	gid_t gid;
	struct session *sess;  /* the caller's session, referenced; or NULL */
	bool creds;            /* req_creds_enter changed this thread's ids */
};

/* Starts a request: counts it (counter `op`), takes the caller and its
 * session. */
void req_begin(struct req *q, fuse_req_t r, enum casfs_counter op);

/* Replies.  err is a positive errno; req_err(q, 0) is success for the
 * requests whose reply is a bare status.  Each ends the context. */
void req_err(struct req *q, int err);
void req_none(struct req *q);
int req_entry(struct req *q, const struct fuse_entry_param *e);
int req_create(struct req *q, const struct fuse_entry_param *e, const struct fuse_file_info *fi);
void req_attr(struct req *q, const struct stat *st, double timeout);
void req_readlink(struct req *q, const char *link);
int req_open(struct req *q, const struct fuse_file_info *fi);
void req_write(struct req *q, size_t count);
void req_buf(struct req *q, const void *buf, size_t size);
void req_data(struct req *q, struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags);
void req_statfs(struct req *q, const struct statvfs *sv);
void req_xattr_size(struct req *q, size_t size);
void req_lseek(struct req *q, off_t off);
void req_ioctl(struct req *q, int result, const void *buf, size_t size);
/* A getxattr/listxattr answer: len bytes of buf (len < 0: error err); a
 * size probe (size 0) gets the length, a short buffer ERANGE. */
void req_xattr(struct req *q, size_t size, const char *buf, ssize_t len, int err);

/* The node behind a real (non-virtual) id; on failure replies ESTALE and
 * returns NULL. */
ino_node *req_node(struct req *q, fuse_ino_t id);
/* The node and a pinned fd of it (release with ino_node_fd_put); on
 * failure replies and returns -1. */
int req_node_fd(struct req *q, fuse_ino_t id, ino_node **ret_n);

/* Kills set-user-ID and set-group-ID on the file open as fd (any fd, O_PATH
 * too) where the kernel asked (FUSE_HANDLE_KILLPRIV_V2): what ext4 does for
 * a writer or truncater without CAP_FSETID, whom the kernel already told
 * apart.  Set-user-ID always goes; set-group-ID when the group may execute
 * or the caller is not in the file's group.  Returns 1 when a bit went, 0
 * when there was none, or -errno. */
int req_kill_suidgid(struct req *q, int fd);

/* Credentials: a root daemon creates files as the caller (fsuid/fsgid of
 * this thread, capabilities it must not use dropped); no-op otherwise.
 * Every req_creds_enter is paired with req_creds_leave before replying. */
void req_creds_enter(struct req *q);
void req_creds_leave(struct req *q);
/* Who owns a file made between req_creds_enter and req_creds_leave (the
 * caller, or the daemon when it does not switch), before a set-group-ID
 * directory gives its group; and the umask that applies to it. */
void req_creds_owner(const struct req *q, uid_t *ret_uid, gid_t *ret_gid);
mode_t req_umask(const struct req *q);
