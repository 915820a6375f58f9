/* ccdeps.h — what a gcc or clang compile reads outside the mount.
 *
 * The daemon sees only the mount.  For a compile, the client learns the
 * rest from the compiler itself:
 *   - the headers it read: its dependency output (-MD: casfs adds
 *     `-MD -MF <private file>` when the command has no dependency option;
 *     a user's -MD file is read; after -MMD/-MM, which leave system headers
 *     out, one extra preprocessing pass `-E -M` lists them);
 *   - the names it would have found first: the include search chain
 *     (`-E -v`, remembered per compiler and options), so that for every
 *     header found in one directory, its name in every earlier directory
 *     outside the mount is recorded as absent (a header that would newly
 *     shadow it there makes a miss), and the chain's directories that do
 *     not exist are recorded as absent too;
 *   - the names it asked __has_include about: read from the files it read,
 *     each recorded in every directory of the chain outside the mount
 *     (the file there, or its absence).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "hasher.h"

/* A small per-user cache the daemon keeps for the client (KV_GET/PUT). */
typedef struct ccdeps_cache {
	int (*get)(void *arg, const char *key, char *val, size_t size); /* 0 or -ENOENT */
	void (*put)(void *arg, const char *key, const char *val);
	/* The daemon's __has_include scans of files on the mount the run read
	 * (rels: mount-relative; NULL: not asked): res[i] (malloc'd, lens[i]
	 * bytes, the HISCAN answer of fs/actions.c) or NULL where it gave none
	 * (res is zeroed by the caller).  0 or -errno; the member NULL: the
	 * client scans every file itself. */
	int (*scan)(void *arg, char *const *rels, size_t n, char **res, size_t *lens);
	void *arg;
} ccdeps_cache;

/* A compile and where it runs. */
typedef struct ccdeps_compile {
	const char *prog;          /* the compiler, resolved */
	const hasher_digest *tool; /* its digest */
	char **argv;               /* as the user gave it */
	bool cxx;
	const char *cwd, *mnt;     /* as this process sees them (real paths) */
} ccdeps_compile;

/* What an input outside the mount is. */
enum ccdeps_kind {
	CCDEPS_FILE,   /* a file read */
	CCDEPS_ABSENT, /* a name that must stay absent */
	CCDEPS_LINK,   /* a symlink on the way to a directory of the search
			  chain: where it leads must stay the same */
};

/* Called for every input outside the mount (kind: enum ccdeps_kind).
 * Paths are absolute. */
typedef void (*ccdeps_add_fn)(void *arg, int kind, const char *path);

/* After the compile ran: reports its inputs outside the mount.  depfile is
 * the dependency file that lists system headers too (casfs's own, or the
 * user's -MD one), or NULL to learn them by a preprocessing pass.  Returns
 * 0, or -errno when they cannot be learned (the run is then not cached). */
int ccdeps_collect(const ccdeps_compile *cc, const char *depfile, const ccdeps_cache *cache, ccdeps_add_fn add,
		   void *arg);

/* After a link ran with `-Wl,--dependency-file=depfile` (ld 2.35): reports
 * the objects, archives and libraries it read outside the mount.  0 or
 * -errno. */
int ccdeps_link(const ccdeps_compile *cc, const char *depfile, ccdeps_add_fn add, void *arg);

/* True when argv's dependency options write a complete list (-MD or -M,
 * not -MMD/-MM); *file is the -MF file (NULL: the default name). */
bool ccdeps_user_complete(char **argv, const char **file);

/* The dependency file a compile's argv asks for as a side output (-MD or
 * -MMD): its -MF name, else the -o name with its suffix replaced by .d, as
 * gcc names it; written into buf (size bytes).  NULL when there is none
 * (no -MD/-MMD, -M/-MM writing to stdout, no name, or too long). */
const char *ccdeps_user_depfile(char **argv, char *buf, size_t size);
