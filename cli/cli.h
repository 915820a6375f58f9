/* cli.h — shared pieces of the casfs command. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <stdint.h>

#include "blob.h"
#include "ctl.h"

#define CASFS_FUSE_FSTYPE "fuse.casfs"

/* Exit status of every casfs command (and of mount.casfs), as `casfs help`
 * documents it. */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILURE = 1, /* a runtime failure; fsck: problems remain */
	CLI_EXIT_USAGE = 2,   /* a bad command, option or argument */
};

/* Prints "casfs: <message>\n" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: prints one line "casfs: <message> (see 'casfs CMD --help')"
 * to stderr (CMD NULL: 'casfs help') and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The usage error for what getopt_long answered c ('?': unknown option,
 * ':': missing value; the option string starts with ':' and opterr is 0),
 * naming the option as the user gave it.  Returns CLI_EXIT_USAGE. */
int cli_option_error(const char *cmd, int c, char **argv);

/* Makes path absolute without resolving symlinks of the last component (a
 * stale mount cannot be stat'ed).  Returns 0 or -errno (-ENOENT for "",
 * which names nothing, as for the kernel). */
int cli_abspath(const char *path, char *buf, size_t len);

/* realpath(3) into resolved (PATH_MAX bytes), with the real paths of the
 * directories it met remembered for the rest of the process: a compile's
 * client resolves hundreds of headers in a handful of directories, and
 * realpath reads every component of every path again (a readlink each).
 * An absolute path whose last component is a plain name and not a symlink
 * costs one lstat once its directory is known; anything else is realpath.
 * For a process that lives as long as one command: a directory renamed or
 * replaced by a symlink meanwhile keeps its old resolution.  NULL with
 * errno as realpath. */
char *cli_realpath(const char *path, char *resolved);

/* Calls fn for every casfs mount in /proc/self/mountinfo with its mount
 * point and device; stops early when fn returns non-zero and returns that
 * value. */
int cli_for_each_mount(int (*fn)(const char *mountpoint, dev_t dev, void *arg), void *arg);
bool cli_is_casfs_mount(const char *abs_mountpoint);
/* True when dev (a file's st_dev) is a casfs mount's: only then do its
 * user.casfs.* xattrs and ioctls come from casfs. */
bool cli_dev_is_casfs(dev_t dev);

/* Queries the daemon behind a mount. Returns 0 or -errno (-ENOTCONN: stale;
 * -EPROTO: the daemon is of another casfs version). */
int cli_ctl_info(const char *mountpoint, struct casfs_ctl_info *ret);
int cli_ctl_stats(const char *mountpoint, struct casfs_ctl_stats *ret);

/* Sizes: "5G", "500M", "1.5GiB", "123456", "10KB" (K/M/G/T are powers of
 * 1024).  Returns 0, -EINVAL (syntax) or -ERANGE (too large); prints
 * nothing. */
int cli_parse_size(const char *s, uint64_t *ret);
/* Option values: all|none (ingest), auto|none|zstd (compression), a zstd
 * level 1-22.  Each returns 0, or -EINVAL leaving *ret untouched; none
 * prints (mount and put word their errors differently). */
int cli_parse_ingest(const char *s, bool *ret_all);
int cli_parse_compression(const char *s, cache_put_mode *ret);
int cli_parse_level(const char *s, int *ret);

int cmd_mount(int argc, char **argv);
int cmd_mount_helper(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_hash(int argc, char **argv);
/* store_cmd.c: the content store without a mount. */
int cmd_put(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_store(int argc, char **argv);
/* exec.c: the action cache's client. */
int cmd_exec(int argc, char **argv);
int cmd_exec_launcher(int argc, char **argv); /* argv[0] casfs-exec */
int cmd_exec_shell(int argc, char **argv);    /* argv[0] casfs-sh */

/* Prints the totals of the store at store_path (NULL: the default store):
 * path, blobs, logical and stored bytes, compression ratio, dedup savings,
 * evictions, corrupt blobs found, limit.  Text with human sizes, or with
 * json one JSON object (exact byte counts, no newline; preceded by a comma
 * when json_comma) to embed in other output.  A store that does not exist
 * is printed empty ("exists": false) and not created.  Opens the store's
 * index: do not call it while this process has that index open.  Returns
 * 0, or 1 after a "casfs: " error line (then nothing went to stdout). */
int cli_print_store_stats(const char *store_path, bool json, bool json_comma);
