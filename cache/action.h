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
 * ROOT paths move with the root; MOUNT and ABS paths name the same file at
 * every root.  That is right for names that do not depend on the root, and
 * the key keeps it so: a key whose cwd or arguments reach outside the root
 * by a relative name is pinned to its root (action_key_material).
 *
 * Keys persist across casfs versions: ACTION_KEY_VERSION is hashed into
 * every key; change it whenever the key material or its encoding changes.
 *
 * Errors are -errno.  Everything here is reentrant; an object (manifest,
 * record, scanner) is used by one thread at a time.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hasher.h"

#define ACTION_KEY_VERSION 2
#define ACTION_MANIFEST_VERSION 2
/* Manifests kept per key (the oldest beyond this is dropped). */
#define ACTION_MAX_MANIFESTS 8
/* stdout/stderr up to this size live inside the manifest; larger ones are
 * blobs of the store named by digest. */
#define ACTION_INLINE_MAX (64 * 1024)

/* ---- paths and the root -------------------------------------------------- */

/* Replaces every occurrence of `root` in s that stands for the root
 * directory by the two bytes "\x01R", and writes a literal \x01 byte of s
 * as "\x01\x01", so the result is unambiguous and action_absolutize
 * inverts it exactly.  An occurrence stands for the root when
 *   - it ends at a path boundary: the end of s, '/', or a byte that cannot
 *     continue a file name (anything but [A-Za-z0-9._+~@%-] and bytes
 *     >= 0x80, which UTF-8 names use): "/a/b" matches in "/a/b/x",
 *     "-I/a/b", "/a/b:/c", "-ffile-prefix-map=/a/b=." but not in "/a/bc",
 *     "/a/b.d" or "/a/bé";
 *   - it is not followed by a ".." component ("/a/b/../x" leaves the root);
 *   - it does not continue a longer path: it is not preceded by '/', nor by
 *     a run of name bytes that is preceded by '/' ("/x/a/b", "/x-I/a/b") or
 *     that starts with anything but '-' or '@' (an option such as "-I",
 *     "-L", "-isystem", or a response file "@"; "build/a/b" is a relative
 *     path, not the root).
 * Replacing an occurrence that is not the root would let two different
 * commands share a key; leaving one costs only a hit at another root.
 * root is absolute without a trailing slash, except "/" which never matches
 * (a root of "/" relativizes nothing).  Returns a malloc'd string, or NULL
 * with errno ENOMEM, or EINVAL for a root that is not absolute, ends in
 * '/', or contains \x01. */
char *action_relativize(const char *s, const char *root);
/* The inverse: "\x01R" replaced by root, "\x01\x01" by \x01.  Returns a
 * malloc'd string, or NULL with errno ENOMEM, or EINVAL when s has a \x01
 * followed by anything else (it did not come from action_relativize). */
char *action_absolutize(const char *s, const char *root);
/* An absolute path with empty and "." components dropped and each "x/.."
 * pair taken out as text (a symlink's ".." is not followed: a spelling,
 * not a resolution), into out (size bytes; a longer result is cut at a
 * component).  "/" for the root. */
void action_path_lexical(const char *path, char *out, size_t size);

/* Checks a manifest path: relative, no "", "." or ".." components, no
 * "//", no trailing '/', shorter than PATH_MAX ("" alone is allowed for
 * the root itself).  ACTION_SCOPE_ABS paths are absolute with the same
 * rules after the leading '/' ("/" alone is allowed).  Returns 0 or
 * -EINVAL (also for an unknown scope). */
int action_path_check(int scope, const char *path);

/* Finds `needle` (the root path) anywhere in a stream of bytes fed in
 * chunks, also across chunk boundaries (KMP).  Every occurrence counts,
 * boundaries or not: an output that merely contains the root's text is
 * treated as embedding it. */
typedef struct action_scan {
	char *needle;    /* internal copy */
	size_t len;
	size_t matched;  /* internal: bytes of needle matched at the end of the last chunk */
	bool found;      /* the result: set once the needle was seen */
	size_t *fail;    /* internal KMP table */
} action_scan;
/* 0, -EINVAL (empty needle), -ENOMEM.  Free with action_scan_free. */
int action_scan_init(action_scan *s, const char *needle);
void action_scan_feed(action_scan *s, const void *data, size_t len);
/* Accepts a zeroed or freed scanner. */
void action_scan_free(action_scan *s);

/* Text that names paths under the root with the root spelled out (a
 * compiler's dependency file, its diagnostics), as it would read had the
 * run been made at root `to` instead of `from`: every occurrence of `from`
 * followed by '/' becomes `to`.  -EINVAL when an occurrence is followed by
 * anything else (the root itself, or a longer name such as ROOT0 of a root
 * ROOT: no rewrite can be trusted), or when `from` holds a character that
 * such text escapes (space, tab, newline, '#', '$', '\\', ':').  With
 * ret NULL, only checks.  Else *ret (malloc'd, also when len is 0) and
 * *ret_len.  0, -EINVAL, -ENOMEM. */
int action_root_rewrite(const uint8_t *in, size_t len, const char *from, const char *to, uint8_t **ret,
			size_t *ret_len);
/* A make rule as gcc writes a dependency file (libcpp's mkdeps): the
 * targets, ':', the prerequisites, each name after the first on a line
 * preceded by a space, and " \\\n" before a name that would take the line
 * past column 72; then the rest (-MP's "name:" lines) as it is.  in's first
 * rule written so into *ret (malloc'd) and *ret_len: a dependency file moved
 * to a root of another length breaks its lines where gcc would there.
 * 0, -EINVAL (no rule ending in ':' on its first line), -ENOMEM. */
int action_depfile_rewrap(const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len);
/* Whether every occurrence of root in a compiler's diagnostics stands
 * where the compiler writes a location: at a line's start ("ROOT/a.c:3:1:
 * warning", "ROOT/a.c: In function"), or after "In file included from " or
 * the spaces and "from " that continue it, colour escapes (ESC [ ... m/K)
 * allowed before it.  Anywhere else it is text quoted from a file (a
 * #warning, a source line under a caret) that a run at another root writes
 * unchanged, so the rewrite above would be wrong. */
/* With read, each location's path under the root (what follows "ROOT/"
 * up to ':', ',' or the line's end) must also be one read(arg, rel, len)
 * says the compile read: a #line or linemarker copied from another root
 * puts that root at a location too, and a compile at another root writes
 * it unchanged. */
bool action_root_at_locations(const uint8_t *in, size_t len, const char *root,
			      bool (*read)(void *arg, const char *rel, size_t rel_len), void *arg);

/* ---- keys ---------------------------------------------------------------- */

typedef struct action_key_in {
	const hasher_digest *tools; /* digests of the toolchain; clients leave */
	size_t ntools;              /* this empty: the daemon appends them      */
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
#define ACTION_KF_STDIN_FILE     0x4u /* stdin is a regular file: its digest
					 is in the key (the daemon's part) */

/* Serializes the key material into a malloc'd byte string (length-prefixed
 * fields, so no two different inputs serialize alike; env sorted; the cwd
 * and every argument and env value relativized against root).  The same
 * action under another root serializes alike, except that the material is
 * pinned to its root (the root is included literally) when the cwd is not
 * under the root, or when a relative name in an argument or env value
 * climbs with ".." above the root from the cwd ("-I../../inc" run one
 * directory below the root): such names lead to different files at another
 * root while the manifest would check the old ones.  The daemon hashes this
 * with the caller's uid into the final key (action_key_final).
 * Returns 0, -EINVAL (no argv, an env entry without '=', a root or cwd that
 * is not absolute), -ENOMEM. */
int action_key_material(const action_key_in *in, uint8_t **ret, size_t *ret_len);
/* XXH3-128 over a domain string, ACTION_KEY_VERSION, uid and the XXH3-128
 * of the material (so it needs no allocation). */
void action_key_final(const uint8_t *material, size_t len, uint32_t uid, hasher_digest *ret);

/* The default allowlist of environment variables that change results
 * (compiler search paths, locale and time zone, SOURCE_DATE_EPOCH, PATH,
 * the dynamic linker's, ...): NULL-terminated.  Documented in
 * docs/ACTIONS.md. */
extern const char *const action_env_default[];
/* True when `name` is in the list (NULL-terminated).  name may be a bare
 * name or "NAME=VALUE" (compared up to the '='). */
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
	uint8_t digest_kind;  /* enum action_digest_kind (ACTION_IN_FILE; else 0) */
	uint32_t type;        /* S_IFMT bits (ACTION_IN_EXISTS; else 0) */
	uint32_t mode;        /* permission bits, 07777 (FILE, EXISTS; else 0):
				 what `cp -p` or a stat shows */
	uint64_t size;        /* EXISTS of a regular file (what `test -s` sees);
				 else 0 */
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
	uint32_t mode;        /* permission bits (07777) of FILE and DIR; else 0;
				 a DIR's may have ACTION_MODE_SGID_CLEARED */
	char *path;           /* ACTION_SCOPE_ROOT, not "" */
	hasher_digest digest; /* FILE */
	uint64_t size;        /* FILE */
	char *target;         /* SYMLINK (non-empty); else NULL */
	bool root_text;       /* FILE: text naming paths under the root (a
				 dependency file): restored through
				 action_root_rewrite at another root */
} action_output;

/* In a DIR output's mode: its parent hands the set-group-ID bit down and
 * the run cleared it (chmod g-s).  A DIR without S_ISGID and without this
 * inherited the bit: the parent where it is restored decides. */
#define ACTION_MODE_SGID_CLEARED 010000u

/* A captured stream: inline bytes, or a blob of the store. */
typedef struct action_stream {
	uint64_t size;
	bool inline_data;     /* exactly when size <= ACTION_INLINE_MAX */
	uint8_t *data;        /* inline_data: size bytes (malloc'd; NULL when 0) */
	hasher_digest digest; /* always: XXH3-128 of the bytes */
} action_stream;

#define ACTION_F_EMBEDS_ROOT 0x1u /* an output contains the root path: reuse
				     only at root_at_record unless relocation
				     is asked for */
#define ACTION_F_STREAMS_ROOT_TEXT 0x2u /* stdout/stderr name paths under the
					   root: replayed through
					   action_root_rewrite at another root */
#define ACTION_F_STDIN_EOF 0x4u /* the run read its stdin (a regular file) to
				   its end: a hit leaves it there too */
#define ACTION_F_MERGED_STREAMS 0x8u /* stdout and stderr were one open file
					(>log 2>&1, a terminal): out_stdout
					holds both, in the order written */
#define ACTION_F_ALL (ACTION_F_EMBEDS_ROOT | ACTION_F_STREAMS_ROOT_TEXT | ACTION_F_STDIN_EOF | ACTION_F_MERGED_STREAMS)

struct action_seen;

typedef struct action_manifest {
	action_input *in;
	size_t nin;
	action_output *out;
	size_t nout;
	action_stream out_stdout, out_stderr;
	int32_t exit_status;  /* 0..255, as from waitpid's WEXITSTATUS; signals are never cached */
	uint64_t run_ms;      /* wall time of the recorded run */
	int64_t created_ns;
	uint32_t flags;       /* ACTION_F_* */
	char *root_at_record; /* absolute root of the recorded run */
	struct action_seen *seen; /* internal: the paths added so far */
} action_manifest;

/* Frees everything a manifest owns (not m itself) and zeroes it.  Accepts
 * zeroed. */
void action_manifest_clear(action_manifest *m);

/* Appends a copy of an input (path strdup'ed); an input with the same
 * (scope, path) as an earlier one is dropped: the first observation of a
 * path is what the command saw.  0, -EINVAL (bad path: action_path_check;
 * unknown kind, scope or digest kind; digest_kind or type set where the
 * kind has none), -ENOMEM.  O(1) per call. */
int action_manifest_add_input(action_manifest *m, const action_input *in);
/* Appends a copy of an output (path and target strdup'ed); an output with
 * the same path as an earlier one replaces it in place: the last state of
 * a name is what a hit must recreate.  0, -EINVAL (bad path or "", unknown
 * kind, mode beyond 07777 or set on a kind without one, a symlink without
 * target or a target elsewhere), -ENOMEM. */
int action_manifest_add_output(action_manifest *m, const action_output *out);
/* Sorts inputs by (scope, path) and outputs by path (bytewise) so that
 * equal runs encode alike. */
void action_manifest_sort(action_manifest *m);

/* m's recorded run time in ms, for the time a hit saves.  Stores written by
 * earlier casfs versions hold runs whose measure wrapped (about 1.8e13 ms:
 * a negative nanosecond difference taken as unsigned); anything beyond a
 * week is such a value and says nothing: 0. */
#define ACTION_RUN_MS_MAX (7ull * 24 * 3600 * 1000)
uint64_t action_manifest_run_ms(const action_manifest *m);

/* Encoding: a grammar at the top of action.c (magic, version, counts,
 * length-prefixed fields, a trailing checksum: the first 8 bytes of the
 * XXH3-128 of everything before it).  encode refuses what decode would
 * refuse (-EINVAL), so decode(encode(m)) == m and an accepted buffer
 * re-encodes to the same bytes.  decode rejects anything malformed with
 * -EBADMSG and a newer version with -EPROTO; it never reads past len;
 * *ret is written only on success. */
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
/* Frees every manifest and zeroes r.  Accepts zeroed. */
void action_record_clear(action_record *r);
/* Sorts m and puts it first; ownership of its contents moves into r and *m
 * is zeroed.  Drops an older manifest with the same inputs (same scopes,
 * paths, kinds, types and digests) and the oldest beyond
 * ACTION_MAX_MANIFESTS.  0, or -ENOMEM with r and m unchanged. */
int action_record_push(action_record *r, action_manifest *m);
/* Removes manifest i (its outputs' blobs are gone, say); i >= r->n is a
 * no-op. */
void action_record_remove(action_record *r, size_t i);

/* ---- listings ------------------------------------------------------------ */

typedef struct action_dirent {
	const char *name;
	uint8_t type;         /* DT_* */
	uint16_t mode;        /* permission bits (07777); for a symlink its
				 target's st_mode, type included (0: none) */
	uint64_t size;        /* a regular file's (a symlink's target's) size,
				 else 0 */
} action_dirent;
/* Digest of a directory's entries (names, types, permission bits and
 * regular files' sizes: what `ls -F` or a glob and `test -s` see of a
 * directory they list; the kernel answers their stats from the attributes
 * the listing gave it), order-independent (sorted by name inside; "." and
 * ".." and the reserved name ".casfs" are ignored).  0 or -ENOMEM. */
int action_listing_digest(const action_dirent *e, size_t n, hasher_digest *ret);

/* ---- matching ------------------------------------------------------------- */

/* The probe answers what a recorded input looks like now, in the current
 * root.  `have` arrives zeroed; the probe fills kind, type and digest in
 * the terms of want->kind, for want->path in want->scope:
 *   absent name                        → ACTION_IN_ABSENT
 *   FILE: a regular file               → ACTION_IN_FILE, digest of
 *                                        want->digest_kind (content-aware
 *                                        digests of a file that is not C
 *                                        source or not an archive: any
 *                                        error, which counts as a change)
 *   DIR: a directory                   → ACTION_IN_DIR, listing digest
 *   SYMLINK: a symlink                 → ACTION_IN_SYMLINK, digest of target
 *   anything else that exists          → ACTION_IN_EXISTS with its S_IFMT type
 * Returns 0 (have filled), or -errno when it cannot tell (that counts as a
 * difference).  have->path is not used. */
typedef int (*action_probe_fn)(void *arg, const action_input *want, action_input *have);

/* True when `have` is what `want` recorded (kind; then digest kind, digest
 * and mode, or type, mode and size; scopes and paths are not compared). */
bool action_input_equal(const action_input *want, const action_input *have);

/* Checks every input in order (sorted: by scope, then path).  Returns -1
 * when all match, else the index of the first input that differs or could
 * not be probed. */
ssize_t action_manifest_match(const action_manifest *m, action_probe_fn probe, void *arg);

/* ---- compilers ------------------------------------------------------------ */

/* What casfs knows about a command line. */
typedef struct action_cc_info {
	bool is_cc;          /* the basename of argv[0] is gcc, g++, cc, c++,
				clang or clang++, with any -<version> suffix
				and <triplet>- prefix (not gcc-ar, ccache, ...) */
	bool compile_only;   /* -c or -S, no -E/-M/-MM, one or more sources,
				no response file (@file: unknown options) */
	bool has_depfile;    /* -MD/-MMD/-M/-MM/-MF/-MT/-MQ or -Wp,-MD,... given
				by the user */
	bool has_debug;      /* -g* (last wins; -g0 turns it off) or a response
				file: debug info (with columns) may be written */
	bool has_prefix_map; /* -ffile-prefix-map= or -fdebug-prefix-map= */
	bool compresses_debug; /* -gz[=zlib|zstd], -Wa,/-Wl,--compress-debug-
				  sections (not =none), or a response file:
				  debug info, with the root's path in it, may
				  be compressed where a scan cannot see it */
	bool wraps_diagnostics; /* -fmessage-length=N, N > 0: diagnostics
				   break their lines where the root's length
				   puts them, which moving them does not redo */
	bool is_cxx;         /* a C++ driver (g++, c++, clang++), -x c++, or a
				C++ source (.cc .cp .cxx .cpp .CPP .c++ .C .ii) */
	unsigned sources;    /* sources it compiles (named by suffix, after
				-x, or -): a link that compiles when > 0 */
} action_cc_info;
void action_cc_analyze(const char *const *argv, size_t argc, action_cc_info *ret);

/* Parses a make-style dependency file (what gcc -MD writes): calls fn once
 * for every distinct prerequisite path, unescaped ("\ ", "\#", "$$",
 * backslash-newline continuations), in order of first appearance, never
 * for targets (also not for the "header:" rules of -MP).  Returns 0,
 * -EBADMSG (a rule without ':', a lone '$', a NUL byte), -ENOMEM, or the
 * first non-zero value fn returned (parsing stops there). */
int action_depfile_parse(const char *buf, size_t len,
			 int (*fn)(void *arg, const char *path), void *arg);
