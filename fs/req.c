/* req.c — the request context (see req.h). */
#include "req.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_fast.h"
#include "session.h"
#include "trace.h"

void req_begin(struct req *q, fuse_req_t r, enum casfs_counter op)
{
	const struct fuse_ctx *c = fuse_req_ctx(r);
	fs_request_thread = true;
	atomic_fetch_add_explicit(&FS->counters[op], 1, memory_order_relaxed);
	q->r = r;
	q->tid = c->pid;
	q->uid = c->uid;
	q->gid = c->gid;
	q->sess = q->tid ? session_of_caller(FS->ss, q->tid) : NULL;
	if (q->sess && trace_watching(session_trace(q->sess)) && session_caller_compiles(q->tid))
		trace_compiler(session_trace(q->sess));
}

/* Every reply ends here. */
static void req_end(struct req *q)
{
	if (q->sess) {
		session_put(q->sess);
		q->sess = NULL;
	}
}

void req_err(struct req *q, int err)
{
	if (err)
		COUNT(replies_error);
	fuse_reply_err(q->r, err);
	req_end(q);
}

void req_none(struct req *q)
{
	fuse_reply_none(q->r);
	req_end(q);
}

int req_entry(struct req *q, const struct fuse_entry_param *e)
{
	int r = fuse_reply_entry(q->r, e);
	req_end(q);
	return r;
}

int req_create(struct req *q, const struct fuse_entry_param *e, const struct fuse_file_info *fi)
{
	int r = fuse_reply_create(q->r, e, fi);
	req_end(q);
	return r;
}

void req_attr(struct req *q, const struct stat *st, double timeout)
{
	struct stat told = *st;
	fs_told_stat(&told);
	fuse_reply_attr(q->r, &told, timeout);
	req_end(q);
}

void req_readlink(struct req *q, const char *link)
{
	fuse_reply_readlink(q->r, link);
	req_end(q);
}

int req_open(struct req *q, const struct fuse_file_info *fi)
{
	int r = fuse_reply_open(q->r, fi);
	req_end(q);
	return r;
}

void req_write(struct req *q, size_t count)
{
	fuse_reply_write(q->r, count);
	req_end(q);
}

void req_buf(struct req *q, const void *buf, size_t size)
{
	fuse_reply_buf(q->r, buf, size);
	req_end(q);
}

void req_data(struct req *q, struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags)
{
	fuse_reply_data(q->r, bufv, flags);
	req_end(q);
}

void req_statfs(struct req *q, const struct statvfs *sv)
{
	fuse_reply_statfs(q->r, sv);
	req_end(q);
}

void req_xattr_size(struct req *q, size_t size)
{
	fuse_reply_xattr(q->r, size);
	req_end(q);
}

void req_lseek(struct req *q, off_t off)
{
	fuse_reply_lseek(q->r, off);
	req_end(q);
}

void req_ioctl(struct req *q, int result, const void *buf, size_t size)
{
	fuse_reply_ioctl(q->r, result, buf, size);
	req_end(q);
}

void req_xattr(struct req *q, size_t size, const char *buf, ssize_t len, int err)
{
	if (len < 0)
		req_err(q, err);
	else if (size == 0)
		req_xattr_size(q, (size_t)len);
	else if ((size_t)len > size)
		req_err(q, ERANGE);
	else
		req_buf(q, buf, (size_t)len);
}

ino_node *req_node(struct req *q, fuse_ino_t id)
{
	ino_node *n = ino_table_get(FS->tbl, id);
	if (!n) {
		COUNT(stale_ids);
		req_err(q, ESTALE);
	}
	return n;
}

int req_node_fd(struct req *q, fuse_ino_t id, ino_node **ret_n)
{
	ino_node *n = req_node(q, id);
	if (!n)
		return -1;
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0) {
		req_err(q, -fd);
		return -1;
	}
	*ret_n = n;
	return fd;
}

/* ---- set-user-ID and set-group-ID ------------------------------------------ */

/* Whether the caller is in group gid: its fs group, else (rarely needed)
 * its supplementary groups, which libfuse reads from /proc. */
static bool req_in_group(struct req *q, gid_t gid)
{
	if (q->gid == gid)
		return true;
	gid_t groups[64];
	int n = fuse_req_getgroups(q->r, 64, groups);
	for (int i = 0; i < n && i < 64; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

int req_kill_suidgid(struct req *q, int fd)
{
	struct stat st;
	char name[16];
	int r = fs_stat_fd(fd, &st);
	if (r < 0)
		return r;
	mode_t kill = 0;
	if (!S_ISREG(st.st_mode))
		return 0;
	if (st.st_mode & S_ISUID)
		kill |= S_ISUID;
	if ((st.st_mode & S_ISGID) && ((st.st_mode & S_IXGRP) || !req_in_group(q, st.st_gid)))
		kill |= S_ISGID;
	if (!kill)
		return 0;
	snprintf(name, sizeof(name), "%d", fd);
	if (fchmodat(FS->proc_fd, name, st.st_mode & 07777 & ~kill, 0) < 0)
		return -errno;
	COUNT(setid_killed);
	return 1;
}

/* ---- credentials ---------------------------------------------------------- */

/* After setfsuid() to a non-zero uid the kernel drops the file-system
 * capabilities from this thread's effective set.  We raise DAC_OVERRIDE and
 * DAC_READ_SEARCH again: the kernel already checked permissions
 * (default_permissions) with the caller's full group list, which a worker
 * thread does not have.  FOWNER and FSETID stay dropped, so set-gid
 * inheritance and stripping behave as for the caller on ext4. */
static int capset_thread(const uint32_t eff[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	for (int i = 0; i < 2; i++) {
		d[i].effective = eff[i];
		d[i].permitted = FS->cap_prm[i];
		d[i].inheritable = FS->cap_inh[i];
	}
	return (int)syscall(SYS_capset, &h, d);
}

/* Each worker thread gets its own umask (unshare(CLONE_FS)) so that a
 * create applies the caller's: the backing then skips it where the parent
 * directory has a default ACL, as POSIX says (FUSE_CAP_DONT_MASK: the
 * kernel sends mode and umask apart). */
static _Thread_local bool own_fs;

static void umask_enter(struct req *q)
{
	if (!own_fs)
		own_fs = unshare(CLONE_FS) == 0;
	if (own_fs)
		umask(fuse_req_ctx(q->r)->umask);
}

void req_creds_enter(struct req *q)
{
	umask_enter(q);
	q->creds = false;
	if (!FS->root_daemon || (q->uid == 0 && q->gid == 0))
		return;
	/* Raw syscalls: per thread, unlike glibc's process-wide wrappers. */
	syscall(SYS_setfsgid, q->gid);
	syscall(SYS_setfsuid, q->uid);
	uint32_t eff[2] = { FS->cap_eff[0], FS->cap_eff[1] };
	eff[0] &= ~((1u << CAP_CHOWN) | (1u << CAP_FOWNER) | (1u << CAP_FSETID) |
		    (1u << CAP_LINUX_IMMUTABLE) | (1u << CAP_MKNOD));
	eff[1] &= ~(1u << (CAP_MAC_OVERRIDE - 32));
	capset_thread(eff);
	q->creds = true;
}

void req_creds_owner(const struct req *q, uid_t *ret_uid, gid_t *ret_gid)
{
	bool caller = FS->root_daemon && !(q->uid == 0 && q->gid == 0);
	*ret_uid = caller ? q->uid : geteuid();
	*ret_gid = caller ? q->gid : getegid();
}

mode_t req_umask(const struct req *q)
{
	return fuse_req_ctx(q->r)->umask;
}

void req_creds_leave(struct req *q)
{
	if (own_fs)
		umask(0);
	if (!q->creds)
		return;
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	capset_thread(FS->cap_eff);
	q->creds = false;
}
