/* exec_main.c — casfs-exec and casfs-sh: the action cache's client alone.
 *
 * `casfs exec` starts the whole casfs binary, which links libfuse, LMDB and
 * zstd for its other commands: loading them costs every cached command
 * ~0.2 ms, a hit's biggest fixed cost after the spawn itself.  This binary
 * holds only the client (cli/exec.c), so the launcher (CC="casfs-exec gcc",
 * CMAKE_<LANG>_COMPILER_LAUNCHER) and make's shell start as fast as the
 * system allows.  Run as casfs-sh it is the shell; under any other name,
 * the launcher. */
#include <libgen.h>
#include <string.h>

#include "cli.h"

int main(int argc, char **argv)
{
	if (!strcmp(basename(argv[0]), "casfs-sh"))
		return cmd_exec_shell(argc, argv);
	return cmd_exec_launcher(argc, argv);
}
