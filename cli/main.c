/* main.c — the casfs command: dispatches subcommands. */
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
	"  hash [--c-source | --archive] FILE...\n"
	"                     digests in xxh128sum format (from casfs without reading)\n"
	"  put [--store DIR] [--compression auto|none|zstd] [--level N] FILE...\n"
	"                     store files' contents; prints digests as xxh128sum does\n"
	"  get [--store DIR] HEX DEST\n"
	"                     restore content HEX as file DEST (or as DEST/HEX)\n"
	"  gc [--store DIR] [--max-size SIZE]\n"
	"                     evict least recently used contents down to the store's\n"
	"                     limit (--max-size sets it: 5G, 500M...; default 5 GiB)\n"
	"  fsck [--store DIR] [--repair]\n"
	"                     verify the stored contents and the index (exit 1: problems)\n"
	"  store [--store DIR] [--json]\n"
	"                     the store's contents, sizes, compression, dedup, limit\n"
	"  exec [--root DIR] [--explain] [--cache-failures] [--relocate] -- CMD [ARGS...]\n"
	"                     run CMD under the action cache: a recorded run whose\n"
	"                     inputs are unchanged is replayed instead (also as the\n"
	"                     compiler launcher casfs-exec, and make's SHELL=casfs-sh)\n"
	"  help               this text; 'casfs COMMAND --help' for one command\n"
	"  version            print the version\n"
	"\n"
	"mount.casfs (and mount.fuse.casfs) is the helper that makes\n"
	"'mount -t fuse.casfs SRC DIR' and /etc/fstab lines work.\n";

int main(int argc, char **argv)
{
	const char *self = basename(argv[0]);
	if (!strcmp(self, "mount.casfs") || !strcmp(self, "mount.fuse.casfs"))
		return cmd_mount_helper(argc, argv);
	if (!strcmp(self, "casfs-exec"))
		return cmd_exec_launcher(argc, argv);
	if (!strcmp(self, "casfs-sh"))
		return cmd_exec_shell(argc, argv);
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	argc--;
	argv++;
	if (!strcmp(cmd, "mount"))
		return cmd_mount(argc, argv);
	if (!strcmp(cmd, "umount") || !strcmp(cmd, "unmount"))
		return cmd_umount(argc, argv);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc, argv);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(cmd, "hash"))
		return cmd_hash(argc, argv);
	if (!strcmp(cmd, "put"))
		return cmd_put(argc, argv);
	if (!strcmp(cmd, "get"))
		return cmd_get(argc, argv);
	if (!strcmp(cmd, "gc"))
		return cmd_gc(argc, argv);
	if (!strcmp(cmd, "fsck"))
		return cmd_fsck(argc, argv);
	if (!strcmp(cmd, "store"))
		return cmd_store(argc, argv);
	if (!strcmp(cmd, "exec"))
		return cmd_exec(argc, argv);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("casfs %s\n", CASFS_VERSION);
		return 0;
	}
	cli_error("unknown command '%s' (see casfs help)", cmd);
	return 2;
}
