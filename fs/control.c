/* control.c — access(2) and the ioctls: the control interface the casfs
 * CLI talks to (ctl.h): mount info and counters on the mount root, a
 * file's digest on any regular file. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "actions.h"
#include "casns.h"
#include "ops.h"
#include "req.h"
#include "session.h"
#include "trace.h"

void op_access(fuse_req_t r, fuse_ino_t ino, int mask)
{
	struct req q;
	req_begin(&q, r, CASFS_C_access);
	if (fs_is_virtual(ino)) {
		casns_access(&q, ino, mask);
		return;
	}
	ino_node *n;
	char name[16];
	int fd = req_node_fd(&q, ino, &n);
	if (fd < 0)
		return;
	snprintf(name, sizeof(name), "%d", fd);
	int rc = faccessat(FS->proc_fd, name, mask, AT_EACCESS);
	int e = errno;
	struct stat st;
	if (q.sess && fs_stat_fd(fd, &st) == 0)
		trace_exists(session_trace(q.sess), n, &st);
	ino_node_fd_put(FS->tbl, n);
	req_err(&q, rc < 0 ? e : 0);
}

static void fill_stats(struct casfs_ctl_stats *s)
{
	ino_stats is;
	struct timespec now;
	memset(s, 0, sizeof(*s));
	s->version = CASFS_CTL_VERSION;
	s->count = CASFS_C_COUNT;
	clock_gettime(CLOCK_MONOTONIC, &now);
	s->uptime_ms = (uint64_t)(now.tv_sec - FS->started.tv_sec) * 1000 +
		       (uint64_t)((now.tv_nsec - FS->started.tv_nsec) / 1000000);
	for (int i = 0; i < CASFS_C_COUNT; i++)
		s->counters[i] = atomic_load_explicit(&FS->counters[i], memory_order_relaxed);
	ino_table_stats(FS->tbl, &is);
	s->counters[CASFS_C_nodes] = is.nodes;
	s->counters[CASFS_C_fd_cache_open] = is.fds_open;
	s->counters[CASFS_C_fd_cache_capacity] = is.fd_cache_cap;
	s->counters[CASFS_C_fd_cache_hits] = is.fd_hits;
	s->counters[CASFS_C_fd_cache_misses] = is.fd_misses;
	s->counters[CASFS_C_fd_cache_evictions] = is.fd_evictions;
	s->counters[CASFS_C_reopen_by_handle] = is.reopen_by_handle;
	s->counters[CASFS_C_reopen_by_path] = is.reopen_by_path;
	s->counters[CASFS_C_stale_handles] = is.stale;
	s->counters[CASFS_C_nodes_revived] = is.revived;
	if (FS->dg) {
		digest_counters dc;
		digests_counters(FS->dg, &dc);
		s->counters[CASFS_C_files_hashed_streaming] = dc.files_hashed_streaming;
		s->counters[CASFS_C_files_hashed_by_reread] = dc.files_hashed_by_reread;
		s->counters[CASFS_C_files_hashed_by_store_read] = dc.files_hashed_by_store_read;
		s->counters[CASFS_C_files_hashed_on_demand] = dc.files_hashed_on_demand;
		s->counters[CASFS_C_bytes_hashed] = dc.bytes_hashed;
		s->counters[CASFS_C_digest_index_hits] = dc.digest_index_hits;
		s->counters[CASFS_C_index_writes] = dc.index_writes;
		s->counters[CASFS_C_index_errors] = dc.index_errors;
		s->counters[CASFS_C_sha256_streamed] = dc.sha256_streamed;
		s->counters[CASFS_C_sha256_by_read] = dc.sha256_by_read;
		s->counters[CASFS_C_sha256_index_hits] = dc.sha256_index_hits;
	}
}

static void ioctl_digest(struct req *q, fuse_ino_t ino)
{
	ino_node *n;
	struct casfs_ctl_digest dg;
	memset(&dg, 0, sizeof(dg));
	int fd = req_node_fd(q, ino, &n);
	if (fd < 0)
		return;
	int rc = n->type != S_IFREG ? -EISDIR : fs_req_digest_hex(q, n, fd, dg.hex);
	ino_node_fd_put(FS->tbl, n);
	if (rc < 0)
		req_err(q, -rc);
	else
		req_ioctl(q, 0, &dg, sizeof(dg));
}

void op_ioctl(fuse_req_t r, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
	      unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct req q;
	req_begin(&q, r, CASFS_C_ioctl);
	if (flags & FUSE_IOCTL_COMPAT) {
		req_err(&q, ENOSYS);
		return;
	}
	if (fs_is_virtual(ino)) {
		struct ctlfile *cf = cmd == CASFS_IOC_CALL ? casns_ctlfile(ino, fi) : NULL;
		if (cf && in_bufsz >= sizeof(struct casfs_ctl_call) && out_bufsz >= sizeof(struct casfs_ctl_call))
			actions_call(&q, cf, in_buf);
		else
			casns_ioctl(&q, ino, cmd, out_bufsz);
		return;
	}
	if (ino == FUSE_ROOT_ID && cmd == CASFS_IOC_INFO && out_bufsz >= sizeof(struct casfs_ctl_info)) {
		struct casfs_ctl_info info = { .version = CASFS_CTL_VERSION, .pid = getpid() };
		info.handle_mode = ino_table_handle_mode(FS->tbl);
		info.writeback = FS->o.writeback;
		snprintf(info.backing, sizeof(info.backing), "%s", FS->o.backing_path);
		snprintf(info.store, sizeof(info.store), "%s", cache_store_path(FS->o.store));
		req_ioctl(&q, 0, &info, sizeof(info));
		return;
	}
	if (ino == FUSE_ROOT_ID && cmd == CASFS_IOC_STATS && out_bufsz >= sizeof(struct casfs_ctl_stats)) {
		struct casfs_ctl_stats s;
		fill_stats(&s);
		req_ioctl(&q, 0, &s, sizeof(s));
		return;
	}
	if (cmd == CASFS_IOC_DIGEST && out_bufsz >= sizeof(struct casfs_ctl_digest)) {
		ioctl_digest(&q, ino);
		return;
	}
	req_err(&q, ENOTTY);
}
