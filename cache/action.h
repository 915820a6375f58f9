/* action.h — the action cache's pure logic: keys, manifests, their
 * encoding, and matching a manifest against the current state of a tree
 * through callbacks.  No FUSE, no knowledge of the mount: fs/ records what
 * a command did and answers the probes; cli/ builds the key material.
 *
 * Vocabulary
 *   root     the directory every recorded path is relative to: `casfs exec
 *            --root DIR`, else the Bazel sandbox execroot holding the cwd
 *            (.../sandbox/<strategy>/<N>/execroot/<ws>), else the mount
 *            point.  The same action under another root has the same key.
 *   key      what identifies an action: toolchain digests, argv, cwd and the
 *            relevant environment, with every occurrence of the root path
 *            replaced by a placeholder (action_relativize), plus the umask
 *            and (added by the daemon) the caller's uid.
 *   manifest one observed run of an action: what it read (inputs), what it
 *            wrote (outputs), its stdout/stderr, exit status and run time.
 *            A key holds several manifests, newest first.
 *
 * Paths in a manifest are relative and never contain "." or ".." components
 * or empty components, in one of three scopes:
 *   ACTION_SCOPE_ROOT   relative to the root ("src/a.c"; "" is the root);
 *   ACTION_SCOPE_MOUNT  relative to the mount point, for files on the mount
 *                       but outside the root (inputs only);
 *   ACTION_SCOPE_ABS    absolute path outside the mount ("/usr/include/x.h",
 *                       stored with its leading '/'), learned from compilers'
 *                       dependency output (inputs only).
 *
 * Keys persist across casfs versions: ACTION_KEY_VERSION is hashed into
 * every key; change it whenever the key material or its encoding changes.
 *
 * Errors are -errno.  Everything here is reentrant.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hasher.h"

#define ACTION_KEY_VERSION 1
#define ACTION_MANIFEST_VERSION 1
/* Manifests kept per key (the oldest beyond this is dropped). */
#define ACTION_MAX_MANIFESTS 8
/* stdout/stderr up to this size live inside the manifest; larger ones are
 * blobs of the store named by digest. */
#define ACTION_INLINE_MAX (64 * 1024)

/* ---- paths and the root -------------------------------------------------- */

/* Replaces every occurrence of `root` in s that ends at a path boundary
 * (followed by '/', the end of s, or a byte that cannot be part of a file
 * name component: anything but [A-Za-z0-9._+~@%-]) by the two bytes
 * "\x01R".  root is absolute without a trailing slash, except "/" which
 * never matches (a root of "/" relativizes nothing).  Returns a malloc'd
 * string or NULL (ENOMEM). */
char *action_relativize(const char *s, const char *root);
/* The inverse: "\x01R" replaced by root.  Returns malloc'd or NULL. */
char *action_absolutize(const char *s, const char *root);

/* Checks a manifest path: relative, no "", "." or ".." components, no
 * "//", no trailing '/', at most PATH_MAX bytes ("" alone is allowed for
 * the root itself).  ACTION_SCOPE_ABS paths are absolute with the same
 * rules after the leading '/'.  Returns 0 or -EINVAL. */
int action_path_check(int scope, const char *path);

/* True when `needle` (the root path) occurs in the bytes.  The scanner
 * form finds occurrences that straddle chunk boundaries. */
typedef struct action_scan {
	const char *needle;
	size_t len;
	size_t matched;  /* internal: bytes of needle matched at the end of the last chunk */
	bool found;
	/* internal KMP table, allocated by init */
	size_t *fail;
} action_scan;
int action_scan_init(action_scan *s, const char *needle);
void action_scan_feed(action_scan *s, const void *data, size_t len);
void action_scan_free(action_scan *s);

/* ---- keys ---------------------------------------------------------------- */

typedef struct action_key_in {
	const hasher_digest *tools; /* the executable's digest first, then e.g. */
	size_t ntools;              /* the compiler proper the driver runs      */
	const char *root;           /* absolute, no trailing slash              */
	const char *cwd;            /* absolute                                 */
	const char *const *argv;    /* argv[0] as given                         */
	size_t argc;
	const char *const *env;     /* "NAME=VALUE" of the relevant variables   */
	size_t nenv;                /* (order does not matter: sorted inside)   */
	uint32_t umask;
	uint32_t flags;             /* ACTION_KF_*: options that change results */
} action_key_in;

/* Key flags: run modes that make results differ. */
#define ACTION_KF_CACHE_FAILURES 0x1u /* non-zero exits are recorded too */
#define ACTION_KF_DEPFILE        0x2u /* casfs added -MD -MF to a compile */

/* Serializes the key material into a malloc'd byte string (the cwd and
 * every argument and env value relativized against root; length-prefixed
 * fields, so no two different inputs serialize alike).  The daemon hashes
 * this with the caller's uid into the final key (action_key_final). */
int action_key_material(const action_key_in *in, uint8_t **ret, size_t *ret_len);
/* XXH3-128 over ACTION_KEY_VERSION, uid and the material. */
void action_key_final(const uint8_t *material, size_t len, uint32_t uid, hasher_digest *ret);

/* The default allowlist of environment variables that change results
 * (compiler search paths, locale of diagnostics, SOURCE_DATE_EPOCH, PATH,
 * ...): NULL-terminated.  Documented in docs/ACTIONS.md. */
extern const char *const action_env_default[];
/* True when `name` (without '=') is in the list (NULL-terminated). */
bool action_env_listed(const char *const *list, const char *name);

/* ---- manifests ------------------------------------------------------------ */

enum action_scope { ACTION_SCOPE_ROOT = 0, ACTION_SCOPE_MOUNT = 1, ACTION_SCOPE_ABS = 2 };

enum action_in_kind {
	ACTION_IN_FILE = 1,   /* a regular file was read: its digest            */
	ACTION_IN_ABSENT,     /* a name was looked up and did not exist         */
	ACTION_IN_DIR,        /* a directory was listed: action_listing_digest  */
	ACTION_IN_SYMLINK,    /* a symlink was read: digest of its target text  */
	ACTION_IN_EXISTS,     /* a stat-only probe: exists, with type `type`    */
};

enum action_digest_kind {
	ACTION_DIGEST_PLAIN = 0,    /* hasher_digest_fd                         */
	ACTION_DIGEST_C_SOURCE = 1, /* hasher_c_source_digest                   */
	ACTION_DIGEST_AR = 2,       /* hasher_ar_digest                         */
};

typedef struct action_input {
	uint8_t kind;         /* enum action_in_kind */
	uint8_t scope;        /* enum action_scope */
	uint8_t digest_kind;  /* enum action_digest_kind (ACTION_IN_FILE) */
	uint32_t type;        /* S_IFMT bits (ACTION_IN_EXISTS) */
	char *path;
	hasher_digest digest; /* FILE, DIR, SYMLINK */
} action_input;

enum action_out_kind {
	ACTION_OUT_FILE = 1,  /* a regular file with content `digest`           */
	ACTION_OUT_DIR,       /* a directory that must exist                    */
	ACTION_OUT_SYMLINK,   /* a symlink with `target` (relativized)          */
	ACTION_OUT_REMOVED,   /* a name that existed before and was removed     */
};

typedef struct action_output {
	uint8_t kind;         /* enum action_out_kind */
	uint32_t mode;        /* permission bits (07777) of FILE and DIR */
	char *path;           /* ACTION_SCOPE_ROOT */
	hasher_digest digest; /* FILE */
	uint64_t size;        /* FILE */
	char *target;         /* SYMLINK */
} action_output;

/* A captured stream: inline bytes, or a blob of the store. */
typedef struct action_stream {
	uint64_t size;
	bool inline_data;     /* size <= ACTION_INLINE_MAX */
	uint8_t *data;        /* inline_data: size bytes (malloc'd) */
	hasher_digest digest; /* always: XXH3-128 of the bytes */
} action_stream;

#define ACTION_F_EMBEDS_ROOT 0x1u /* an output contains the root path: reuse
				     only at root_at_record unless relocation
				     is asked for */

typedef struct action_manifest {
	action_input *in;
	size_t nin;
	action_output *out;
	size_t nout;
	action_stream out_stdout, out_stderr;
	int32_t exit_status;  /* as from waitpid's WEXITSTATUS; signals are never cached */
	uint64_t run_ms;      /* wall time of the recorded run */
	int64_t created_ns;
	uint32_t flags;       /* ACTION_F_* */
	char *root_at_record; /* absolute root of the recorded run */
} action_manifest;

/* Frees everything a manifest owns (not m itself).  Accepts zeroed. */
void action_manifest_clear(action_manifest *m);

/* Appends a copy of an input/output (paths and target strdup'ed); inputs
 * with the same (scope, path) as an earlier one are dropped: the first
 * observation of a path is what the command saw.  0 or -ENOMEM/-EINVAL
 * (bad path: action_path_check). */
int action_manifest_add_input(action_manifest *m, const action_input *in);
int action_manifest_add_output(action_manifest *m, const action_output *out);
/* Sorts inputs and outputs by (scope, path) so that equal runs encode
 * alike, keeping the relative order of nothing else. */
void action_manifest_sort(action_manifest *m);

/* Encoding: a grammar at the top of action.c (magic, version, counts,
 * length-prefixed fields, XXH3-64 checksum of everything before it).
 * decode rejects anything malformed with -EBADMSG and a newer version with
 * -EPROTO; it never reads past len. */
int action_manifest_encode(const action_manifest *m, uint8_t **ret, size_t *ret_len);
int action_manifest_decode(const uint8_t *buf, size_t len, action_manifest *ret);

/* The value stored under a key: up to ACTION_MAX_MANIFESTS encoded
 * manifests, newest first. */
typedef struct action_record {
	action_manifest *m;
	size_t n;
} action_record;
int action_record_encode(const action_record *r, uint8_t **ret, size_t *ret_len);
int action_record_decode(const uint8_t *buf, size_t len, action_record *ret);
void action_record_clear(action_record *r);
/* Puts m (ownership moves into r) first; drops an older manifest with the
 * same inputs (same paths, kinds and digests) and the oldest beyond
 * ACTION_MAX_MANIFESTS. */
int action_record_push(action_record *r, action_manifest *m);
/* Removes manifest i (its outputs' blobs are gone, say). */
void action_record_remove(action_record *r, size_t i);

/* ---- listings ------------------------------------------------------------ */

typedef struct action_dirent {
	const char *name;
	uint8_t type;         /* DT_* */
} action_dirent;
/* Digest of a directory's entries, order-independent (sorted by name
 * inside; "." and ".." and the reserved name ".casfs" are ignored). */
int action_listing_digest(const action_dirent *e, size_t n, hasher_digest *ret);

/* ---- matching ------------------------------------------------------------- */

/* The probe answers what a recorded input looks like now, in the current
 * root: it fills `have` (kind, type, digest of want->digest_kind, ...) for
 * want->path in want->scope.  Returns 0 (have filled; kind ACTION_IN_ABSENT
 * when the name does not exist), or -errno when it cannot tell (that
 * counts as a difference). */
typedef int (*action_probe_fn)(void *arg, const action_input *want, action_input *have);

/* True when `have` is what `want` recorded. */
bool action_input_equal(const action_input *want, const action_input *have);

/* Checks every input in order.  Returns -1 when all match, else the index
 * of the first input that differs. */
ssize_t action_manifest_match(const action_manifest *m, action_probe_fn probe, void *arg);

/* ---- compilers ------------------------------------------------------------ */

/* What casfs knows about a command line. */
typedef struct action_cc_info {
	bool is_cc;          /* gcc, g++, cc, c++, clang, clang++ (any -<ver>
				suffix or <triplet>- prefix) */
	bool compile_only;   /* -c or -S, no -E/-M/-MM alone, one or more sources */
	bool has_depfile;    /* -MD/-MMD/-M/-MM/-MF/-MT/-MQ given by the user */
	bool has_debug;      /* -g* other than -g0 */
	bool has_prefix_map; /* -ffile-prefix-map= or -fdebug-prefix-map= */
	bool is_cxx;
} action_cc_info;
void action_cc_analyze(const char *const *argv, size_t argc, action_cc_info *ret);

/* Parses a make-style dependency file (what gcc -MD writes): calls fn for
 * every prerequisite path, unescaped ("\ " and "$$", line continuations),
 * never for targets.  Returns 0 or -EBADMSG. */
int action_depfile_parse(const char *buf, size_t len,
			 int (*fn)(void *arg, const char *path), void *arg);
