/* main.c — the casfs command: dispatches subcommands, and serves as the
 * mount(8) helper (mount.casfs, mount.fuse.casfs, or mount.fuse3's
 * `casfs SOURCE MOUNTPOINT -o OPTS`). */
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "casfs_config.h"
#include "cli.h"

static const char usage[] =
	"usage: casfs COMMAND [ARGS...]\n"
	"\n"
	"casfs is a FUSE filesystem for builds: mounted over a build directory it\n"
	"serves the files that live in a backing directory, with kernel caching,\n"
	"and knows every file's XXH3-128 digest (xattr user.casfs.xxh128).  A\n"
	"shared store keeps each content once; every directory of a mount reaches\n"
	"any content as .casfs/cas/HEX.\n"
	"\n"
	"commands:\n"
	"  mount [--store DIR] [--backing DIR] [--ingest=all] [-f] [-o OPTS] MOUNTPOINT\n"
	"                     mount casfs over MOUNTPOINT\n"
	"  umount [--lazy] MOUNTPOINT\n"
	"                     unmount (also a stale mount of a killed daemon)\n"
	"  status             list casfs mounts, their backing directory, store, pid\n"
	"  stats [--json] [MOUNTPOINT...]\n"
	"                     request and cache counters of the mounts, store totals\n"
	"  hash [--c-source | --archive] [-v] FILE...\n"
	"                     digests in xxh128sum format (from casfs without reading)\n"
	"  put [--store DIR] [--compression auto|none|zstd] [--level N] FILE...\n"
	"                     store files' contents; prints digests as xxh128sum does\n"
	"  get [--store DIR] HEX DEST\n"
	"                     restore content HEX as file DEST (or as DEST/HEX)\n"
	"  gc [--store DIR] [--max-size SIZE]\n"
	"                     evict least recently used contents down to the store's\n"
	"                     limit (--max-size sets it: 5G, 500M...; default 5 GiB)\n"
	"  fsck [--store DIR] [--repair]\n"
	"                     verify the stored contents and the index\n"
	"  store [--store DIR] [--json]\n"
	"                     the store's contents, sizes, compression, dedup, limit\n"
	"  exec [--root DIR] [--explain] [--cache-failures] [--relocate] -- CMD [ARGS...]\n"
	"                     run CMD under the action cache: a recorded run whose\n"
	"                     inputs are unchanged is replayed instead (also as the\n"
	"                     compiler launcher casfs-exec, and make's SHELL=casfs-sh)\n"
	"  help               this text; 'casfs COMMAND --help' for one command\n"
	"  version            print the version\n"
	"\n"
	"Only put and mount create a store; get, gc, fsck and store refuse a path\n"
	"that is not one.\n"
	"\n"
	"mount.casfs (installed also as mount.fuse.casfs) is the mount(8) helper:\n"
	"  mount -t fuse.casfs /abs/backing /mountpoint -o store=DIR\n"
	"  fstab: /abs/backing  /mountpoint  fuse.casfs  defaults,store=DIR  0 0\n"
	"The source is the backing directory's absolute path (the mount point\n"
	"itself to serve its own contents).  'casfs SOURCE MOUNTPOINT -o OPTS', as\n"
	"mount.fuse3 calls it, works the same.  See 'casfs mount --help'.\n"
	"\n"
	"Exit status of every command (and of mount.casfs):\n"
	"  0  success\n"
	"  1  failure: one 'casfs: ' line on stderr per problem says what and how\n"
	"     to fix it (fsck: problems remain; hash, put: some FILE failed)\n"
	"  2  usage error: a bad command, option or argument (one 'casfs: ' line)\n";

typedef int (*cmd_fn)(int argc, char **argv);

static const struct {
	const char *name;
	cmd_fn fn;
} commands[] = {
	{ "mount", cmd_mount },   { "umount", cmd_umount }, { "unmount", cmd_umount },
	{ "status", cmd_status }, { "stats", cmd_stats },   { "hash", cmd_hash },
	{ "put", cmd_put },       { "get", cmd_get },       { "gc", cmd_gc },
	{ "fsck", cmd_fsck },     { "store", cmd_store },   { "exec", cmd_exec },
};

/* mount.fuse3 (Debian's fallback for a type fuse.casfs without its own
 * helper) runs `casfs SOURCE MOUNTPOINT -o OPTS`: SOURCE is an absolute
 * path, or a word that mount(8) left alone because nothing of that name was
 * in its current directory (the helper refuses it with the reason). */
static bool is_helper_call(int argc, char **argv)
{
	if (argv[1][0] == '/')
		return true;
	return argc >= 3 && argv[2][0] == '/' && (!strcmp(argv[1], "casfs") || !strcmp(argv[1], "none"));
}

int main(int argc, char **argv)
{
	const char *self = basename(argv[0]);
	if (!strcmp(self, "mount.casfs") || !strcmp(self, "mount.fuse.casfs"))
		return cmd_mount_helper(argc, argv);
	if (!strcmp(self, "casfs-exec"))
		return cmd_exec_launcher(argc, argv);
	if (!strcmp(self, "casfs-sh"))
		return cmd_exec_shell(argc, argv);
	if (argc < 2)
		return cli_usage_error(NULL, "give a COMMAND");
	const char *cmd = argv[1];
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		if (argc > 2)
			return cli_usage_error(NULL, "help takes no argument; for one command: casfs %s --help",
					       argv[2]);
		fputs(usage, stdout);
		return CLI_EXIT_OK;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		if (argc > 2)
			return cli_usage_error(NULL, "version takes no argument");
		printf("casfs %s\n", CASFS_VERSION);
		return CLI_EXIT_OK;
	}
	if (is_helper_call(argc, argv))
		return cmd_mount_helper(argc, argv);
	return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
