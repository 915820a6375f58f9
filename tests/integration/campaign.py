#!/usr/bin/env python3
"""A randomized campaign against casfs's action cache.

Run by test_campaign.sh on a live mount:

    campaign.py MOUNT OUTSIDE

MOUNT is a casfs mount point, OUTSIDE a directory that is not on it.  The
environment gives CASFS (the casfs binary) and CASFS_SH (casfs-sh).

A small C project is built action by action through `casfs exec`, round
after round: six sources; headers in three -I directories with one header
name in several of them (and a shared -I directory on the mount outside
the root, first on the list), a directory of headers reached through a
symlink, a header symlink, -idirafter, an -isystem and a CPATH directory
outside the mount, a directory beside the root reached with -I../../outer;
a generated header, directories that recipes list, a script, a response
file, a Makefile.  Actions: compiles (from the root and from src/, by
absolute path, with absolute -I, through a symlinked working directory,
through a response file, through casfs-sh, behind env), a link, ar, the
program run, listings, a tar, stdin, a file open on fd 3, mkdir, >>, ln,
mv, chmod, deep, sparse, renamed, removed and read-back outputs, streams
over 64 KiB.

Before each round the project is mutated at random: edits of code,
comments and whitespace (in place, renamed over, or through the hard link
in the previous root), syntax errors, headers added, removed, shadowed and
unshadowed, directories swapped and renamed, -I flags reordered, the
allowlisted (CPATH, SOURCE_DATE_EPOCH, LC_ALL) and other environment
variables and the umask changed, the headers outside the mount edited (also
keeping size and mtime), added and removed, the whole tree relocated to a
new .../<N>/execroot/proj (copied, hard-linked with cp -al, or a symlink
farm with cp -as), -g with and without prefix maps and -gz, a script
chmod'ed, files added to and removed from listed directories, symlinks
retargeted, outputs damaged, removed, given to another owner or a user.*
attribute.  Some rounds also run
`make -j2 -k SHELL=casfs-sh`.

The oracle, for every action: its outputs (every file's bytes, mode, owner,
group and user.* attributes,
directories, symlinks, absences, in the project and in the outside output
directory), stdout, stderr and exit status through casfs exec must equal a
plain run of the same command, at the same place, with the same
environment, from the same prior state (the state before casfs exec is put
back before the plain run).  A miss always passes (the command ran); a hit
that differs fails, with the seed, round, command, the round's mutations
and casfs's --explain.  The campaign also fails when too few actions hit in
rounds where nothing an action observes changed (no-op rounds, pure
relocations): a campaign where nothing hits proves nothing.

Environment:
  CASFS_CAMPAIGN_SEED    the seed (default: random, printed); replays a run
  CASFS_CAMPAIGN_ROUNDS  rounds after the first build (default 12, at least 2;
                         round 1 changes nothing, round 2 relocates the tree,
                         the last one changes nothing)
  CASFS_CAMPAIGN_AVOID   comma-separated features to leave out, to look past
                         a wrong result already known (printed when used):
                         stdin, output-exists, mmd, probe-mode, probe-size,
                         ancestor-map, outside-output, outside-absence,
                         link-source, mtime, sh-outside (also leaves out
                         make), root-hidden, dir-setgid, wrapped-compiler,
                         env-unlisted, output-link, listed-mode (ls -F),
                         cwd-transformed (pwd | tr), has-include-outside
                         (extra.h put outside the mount where
                         __has_include found it nowhere), inherited-fd
                         (actions run with data/empty.txt open on fd 3),
                         output-owned (outputs given to nobody or a user.*
                         attribute between rounds)

test_campaign.sh runs seed 1 by default, without mtime and
cwd-transformed: actions that meet questions casfs leaves open
(docs/ACTIONS.md: modification times, a root path the command
transforms), kept with CASFS_CAMPAIGN_OPEN=1.

Prints "ok"/"FAIL" lines, "#" comments and a closing "N passed, N failed".
Python 3.11, standard library only.
"""

import json
import os
import random
import shlex
import shutil
import stat
import subprocess
import sys
import time
import traceback

FEATURES = ("stdin", "output-exists", "mmd", "probe-mode", "probe-size",
            "ancestor-map", "outside-output", "outside-absence", "link-source", "mtime",
            "sh-outside", "root-hidden", "dir-setgid", "wrapped-compiler", "env-unlisted",
            "output-link", "listed-mode", "cwd-transformed", "has-include-outside",
            "inherited-fd", "output-owned")
# a hit rate below this in rounds where nothing observed changed fails
MIN_PURE_HIT_SHARE = 0.6
CMD_TIMEOUT = 180
MAX_FAIL_LINES = 40


class Campaign:
    """One campaign: the project, its state, the oracle and the tallies."""

    def __init__(self, mnt, outside, seed, rounds, avoid):
        self.casfs = os.environ["CASFS"]
        self.casfs_sh = os.environ["CASFS_SH"]
        self.mnt = mnt
        self.base = os.path.join(mnt, "campaign", "sb")
        # a symlink to the current root, as a working directory
        self.cur = os.path.join(mnt, "campaign", "cur")
        # headers on the mount outside every root, by absolute -I
        self.shared = os.path.join(mnt, "campaign", "shared")
        self.sys = os.path.join(outside, "sys")
        self.cpath_out = os.path.join(outside, "cpath")
        self.outo = os.path.join(outside, "o")
        self.stdin_file = os.path.join(outside, "stdin.txt")
        self.seed = seed
        self.rounds = rounds
        self.avoid = avoid
        self.rng = random.Random(seed)
        self.passed = 0
        self.failed = 0
        self.fail_lines = 0
        self.round = 0
        self.round_muts = []
        self.n_root = 0
        self.root = None
        self.prev_root = None
        # project state the mutations change
        self.iorder = ["inc1", "inc2", "inc3"]
        self.gmode = "none"
        self.mmd = False
        self.env = {"SOURCE_DATE_EPOCH": "1700000000", "LC_ALL": "C",
                    "CAMPAIGN_NOISE": "0"}
        self.cpath = None          # None, "root" or "out"
        self.umask = 0o022
        self.edits = 0
        self.extra_headers = []    # unrelated headers added
        self.opt_at = None         # the -I directory holding opt.h, or None
        self.data_n = 0
        self.counters = None
        self.failed_first = {}     # action name -> round of its first wrong result
        self.known = set()         # paths seen, relative to the root (outside: absolute)
        # statistics
        self.pure_actions = 0
        self.pure_hits = 0
        self.total_hits = 0
        self.total_actions = 0
        self.miss_differs = 0

    # ------------------------------------------------------------ output --
    def ok(self, msg):
        print("ok " + msg, flush=True)
        self.passed += 1

    def fail(self, msg):
        self.failed += 1
        self.fail_lines += 1
        if self.fail_lines <= MAX_FAIL_LINES:
            print("FAIL " + msg, flush=True)
        elif self.fail_lines == MAX_FAIL_LINES + 1:
            print("# (further FAIL lines counted, not printed)", flush=True)

    def note(self, msg):
        print("# " + msg, flush=True)

    def has(self, feature):
        return feature not in self.avoid

    # ------------------------------------------------------------- files --
    def p(self, rel):
        return os.path.join(self.root, rel)

    def write(self, path, text, mode=None):
        if not os.path.isabs(path):
            path = self.p(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        if mode is not None:
            os.chmod(path, mode)

    def edit(self, rel, text):
        """Changes the file REL to TEXT as an editor or a tool would: in
        place, by writing a new file and renaming it over, or through its
        hard link in the previous root (after cp -al).  Returns how."""
        path = self.p(rel)
        how = self.rng.choice(["in place", "renamed over", "through its hard link"])
        if how == "through its hard link" and self.prev_root:
            old = os.path.join(self.prev_root, rel)
            try:
                same = os.path.samestat(os.lstat(old), os.lstat(path))
            except FileNotFoundError:
                same = False
            if same and stat.S_ISREG(os.lstat(path).st_mode):
                with open(old, "w") as f:
                    f.write(text)
                return " (through its hard link in %s)" % os.path.relpath(self.prev_root, self.base)
        if how == "renamed over" and os.path.isfile(path):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            tmp = path + ".tmp~"
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, mode)
            os.rename(tmp, path)
            return " (renamed over)"
        self.write(rel, text)
        return ""

    def read(self, rel):
        with open(self.p(rel)) as f:
            return f.read()

    def remove(self, path):
        if not os.path.isabs(path):
            path = self.p(path)
        if os.path.lexists(path):
            os.unlink(path)

    # ------------------------------------------------------------ project --
    def create_project(self):
        self.n_root = 1
        self.root = os.path.join(self.base, "1", "execroot", "proj")
        os.makedirs(self.root)
        for d in (self.sys, self.cpath_out, self.outo):
            os.makedirs(d, exist_ok=True)
        self.write("src/main.c", (
            '#include <stdio.h>\n#include "common.h"\n#include "gen.h"\n'
            '#include <sysdefs.h>\n'
            'int fa(void);\nint fb(void);\nint fc(void);\nint fd(void);\nint fe(void);\n'
            '/*@*/\n'
            'int main(void)\n{\n'
            '    printf("%d %d %d %d %d %d %s %d\\n", fa(), fb(), fc(), fd(), fe(),\n'
            '           COMMON_VAL, GEN_NAME, SYS_LEVEL);\n'
            '    return 0;\n}\n'))
        self.write("src/a.c", (
            '#include "common.h"\n#include "util.h"\n'
            '#if __has_include("opt.h")\n#include "opt.h"\n#else\n'
            '#define OPT_VAL 0\n#endif\n'
            '/*@*/\n'
            'int fa(void)\n{\n    int unused_a = 1;\n'
            '    return UTIL(COMMON_VAL) + OPT_VAL;\n}\n'))
        self.write("src/b.c", (
            '#include "link.h"\n#include <late.h>\n'
            '/*@*/\n'
            'int fb(void)\n{\n    return LINK_VAL + LATE_VAL;\n}\n'))
        self.write("src/c.c", (
            '#include <sysdefs.h>\n'
            '#if __has_include(<extra.h>)\n#include <extra.h>\n#else\n'
            '#define EXTRA_VAL 0\n#endif\n'
            '/*@*/\n'
            'const char c_stamp[] = __DATE__ " " __TIME__;\n'
            'int fc(void)\n{\n'
            '    return SYS_LEVEL + EXTRA_VAL + (int)sizeof c_stamp;\n}\n'))
        self.write("src/d.c", (
            '#include "common.h"\n#include "gen.h"\n#include "dirl.h"\n'
            '/*@*/\n'
            'int fd(void)\n{\n'
            '    return COMMON_VAL * 2 + DIRL_VAL + (int)sizeof GEN_NAME;\n}\n'))
        self.write("inc1/util.h", "#define UTIL(x) ((x) * 3)\n")
        self.write("inc2/common.h", "#define COMMON_VAL 2\n")
        self.write("inc3/common.h", "#define COMMON_VAL 3\n")
        self.write("hdrs/real1.h", "#define LINK_VAL 11\n")
        self.write("hdrs/real2.h", "#define LINK_VAL 22\n")
        os.symlink("../hdrs/real1.h", self.p("inc2/link.h"))
        self.write("late/late.h", "#define LATE_VAL 100\n")
        self.write("cpath/extra.h", "#define EXTRA_VAL 40\n")
        self.write(os.path.join(self.shared, "shared.h"), "#define SHARED_VAL 7\n")
        self.write(os.path.join(self.root, "..", "outer", "outer.h"), "#define OUTER_VAL 8\n")
        self.write("src/e.c", (
            '#if __has_include("outer.h")\n#include "outer.h"\n#else\n#define OUTER_VAL 0\n#endif\n'
            '#include "shared.h"\n'
            '/*@*/\n'
            'int fe(void)\n{\n    return OUTER_VAL + SHARED_VAL;\n}\n'))
        self.write("hdrs_a/dirl.h", "#define DIRL_VAL 5\n")
        self.write("hdrs_b/dirl.h", "#define DIRL_VAL 6\n")
        os.symlink("hdrs_a", self.p("incl"))
        self.write(os.path.join(self.sys, "sysdefs.h"), "#define SYS_LEVEL 1\n")
        self.write("gen/gen.in", "name=first\n")
        self.write("gen/mkgen.sh", (
            "#!/bin/sh\n# gen/gen.h from gen/gen.in\n"
            "sed -n 's/^name=\\(.*\\)$/#define GEN_NAME \"\\1\"/p' gen/gen.in"
            " > gen/gen.h\n"))
        self.write("data/alpha.txt", "alpha\n")
        self.write("data/Beta.txt", "beta\n")
        self.write("data/empty.txt", "")
        self.write("data/sub/x.txt", "x\n")
        self.write("scripts/tool.sh", '#!/bin/sh\necho "tool v1"\n', 0o644)
        self.write(self.stdin_file, "stdin one\n")
        self.write("Makefile", (
            "# built by the campaign with make -j2 SHELL=casfs-sh\n"
            "OBJS = build/main.o build/a.o build/b.o build/c.o build/d.o build/e.o\n"
            "build/prog: $(OBJS)\n"
            "\tgcc -o $@ $(OBJS)\n"
            "build/%.o: src/%.c | build\n"
            "\tgcc $(FLAGS) -MD -MF build/$*.d -c $< -o $@\n"
            "build:\n"
            "\tmkdir -p build\n"
            "-include $(OBJS:.o=.d)\n"))
        for d in ("obj", "out"):
            os.makedirs(self.p(d), exist_ok=True)
        os.symlink(os.path.relpath(self.root, os.path.dirname(self.cur)), self.cur)

    # ---------------------------------------------------------- mutations --
    def sources(self):
        return ["src/main.c", "src/a.c", "src/b.c", "src/c.c", "src/d.c", "src/e.c"]

    def edit_source(self, kind):
        src = self.rng.choice(self.sources())
        text = self.read(src)
        self.edits += 1
        k = self.edits
        if kind == "code":
            line = "int edit_%d = %d;\n" % (k, self.rng.randrange(1000))
        elif kind == "comment":
            line = "/* comment %d */\n" % k
        else:
            line = self.rng.choice(["\n", "   \n", "\t\n"])
        text = text.replace("/*@*/\n", line + "/*@*/\n", 1)
        return "%s edit of %s%s" % (kind, src, self.edit(src, text))

    def mut_break_or_fix(self):
        src = self.rng.choice(self.sources())
        text = self.read(src)
        bad = "int broken_here = ;\n"
        if bad in text:
            return "fixed the syntax error in " + src + self.edit(src, text.replace(bad, "", 1))
        return "a syntax error in " + src + self.edit(src, text.replace("/*@*/\n", bad + "/*@*/\n", 1))

    def mut_edit_header(self):
        # (mut_swap_dirs moves inc1-3's headers between the directories)
        h, fmt = self.rng.choice([hf for hf in [
            ("inc1/util.h", "#define UTIL(x) ((x) * %d)\n"),
            ("inc2/common.h", "#define COMMON_VAL %d\n"),
            ("inc3/common.h", "#define COMMON_VAL %d\n"),
            ("hdrs/real1.h", "#define LINK_VAL %d\n"),
            ("hdrs/real2.h", "#define LINK_VAL %d\n"),
            ("late/late.h", "#define LATE_VAL %d\n"),
            ("cpath/extra.h", "#define EXTRA_VAL %d\n"),
        ] if os.path.exists(self.p(hf[0]))])
        if self.rng.random() < 0.3:
            return "comment edit of " + h + self.edit(h, self.read(h) + "/* note %d */\n" % self.rng.randrange(100))
        return "edit of " + h + self.edit(h, fmt % self.rng.randrange(2, 500))

    def mut_add_header(self):
        d = self.rng.choice(["inc1", "inc2", "inc3", "gen", "src"])
        name = "%s/unused%d.h" % (d, len(self.extra_headers) + self.edits)
        self.write(name, "#define UNUSED_%d 1\n" % len(self.extra_headers))
        self.extra_headers.append(name)
        return "added the unrelated header " + name

    def mut_remove_header(self):
        if self.extra_headers:
            name = self.extra_headers.pop(self.rng.randrange(len(self.extra_headers)))
            self.remove(name)
            return "removed the unrelated header " + name
        return self.mut_toggle_shadow()

    def mut_toggle_shadow(self):
        if os.path.lexists(self.p("inc1/common.h")):
            self.remove("inc1/common.h")
            return "removed the shadowing inc1/common.h"
        self.write("inc1/common.h", "#define COMMON_VAL %d\n" % self.rng.randrange(10, 99))
        return "added inc1/common.h (shadows inc2's and inc3's)"

    def mut_move_opt(self):
        where = self.rng.choice([w for w in (None, "inc1", "inc2", "inc3") if w != self.opt_at])
        if self.opt_at:
            self.remove(self.opt_at + "/opt.h")
        if where:
            self.write(where + "/opt.h", "#define OPT_VAL %d\n" % self.rng.randrange(1, 50))
        was, self.opt_at = self.opt_at, where
        return "opt.h (tested with __has_include) from %s to %s" % (was or "nowhere", where or "nowhere")

    def mut_swap_dirs(self):
        a, b = self.rng.sample(["inc1", "inc2", "inc3"], 2)
        os.rename(self.p(a), self.p("swap.tmp"))
        os.rename(self.p(b), self.p(a))
        os.rename(self.p("swap.tmp"), self.p(b))
        swap = {a: b, b: a}
        if self.opt_at in swap:
            self.opt_at = swap[self.opt_at]
        self.extra_headers = [swap.get(h.split("/")[0], h.split("/")[0]) + "/" + h.split("/", 1)[1]
                              for h in self.extra_headers]
        return "swapped the directories %s and %s (renames)" % (a, b)

    def mut_rename_sub(self):
        if os.path.isdir(self.p("data/sub")):
            os.rename(self.p("data/sub"), self.p("data/sub2"))
            return "renamed data/sub to data/sub2"
        os.rename(self.p("data/sub2"), self.p("data/sub"))
        return "renamed data/sub2 to data/sub"

    def mut_dir_symlink(self):
        new = "hdrs_b" if os.readlink(self.p("incl")) == "hdrs_a" else "hdrs_a"
        os.unlink(self.p("incl"))
        os.symlink(new, self.p("incl"))
        return "the include directory incl retargeted to " + new

    def mut_umask(self):
        self.umask = self.rng.choice([m for m in (0o022, 0o077, 0o002) if m != self.umask])
        return "umask %03o" % self.umask

    def mut_odd_name(self):
        self.data_n += 1
        name = "data/%s%d.txt" % (self.rng.choice(["with space ", "\u00e9t\u00e9-", "-dash", "a\tb"]),
                                  self.data_n)
        self.write(name, "odd %d\n" % self.data_n)
        return "added %r" % name

    def mut_outside_same_size(self):
        path = os.path.join(self.sys, "sysdefs.h")
        st = os.stat(path)
        with open(path) as f:
            old = f.read()
        v = int(old.split()[-1])
        new = old.replace(str(v), str(v + 1) if str(v + 1)[-1] != "0" and len(str(v + 1)) == len(str(v))
                          else str(v - 1), 1)
        with open(path, "w") as f:
            f.write(new)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return "edit of sysdefs.h outside the mount keeping its size and mtime"

    def mut_touch(self):
        src = self.rng.choice(self.sources() + ["inc1/util.h", "gen/gen.in"])
        os.utime(self.p(src))
        return "touched " + src

    def mut_junk(self):
        if os.path.lexists(self.p("out/junk.txt")):
            self.remove("out/junk.txt")
            return "removed out/junk.txt"
        self.write("out/junk.txt", "junk\n")
        return "made out/junk.txt"

    def mut_shared(self):
        c = self.rng.randrange(3)
        if c == 0:
            self.write(os.path.join(self.shared, "shared.h"),
                       "#define SHARED_VAL %d\n" % self.rng.randrange(8, 99))
            return "edit of shared.h on the mount outside the root"
        path = os.path.join(self.shared, "common.h")
        if os.path.lexists(path):
            os.unlink(path)
            return "removed common.h from the shared directory (outside the root, first on the -I list)"
        self.write(path, "#define COMMON_VAL %d\n" % self.rng.randrange(100, 200))
        return "added common.h to the shared directory (outside the root, first on the -I list)"

    def mut_outer(self):
        path = os.path.join(self.root, "..", "outer", "outer.h")
        if os.path.lexists(path) and self.rng.random() < 0.3:
            os.unlink(path)
            return "removed ../outer/outer.h beside the root"
        self.write(path, "#define OUTER_VAL %d\n" % self.rng.randrange(9, 99))
        return "edit of ../outer/outer.h beside the root"

    def mut_obj_symlink(self):
        obj = self.p("obj")
        if not os.path.islink(obj):
            os.rename(obj, self.p("objs_1"))
            os.symlink("objs_1", obj)
            return "obj/ moved to objs_1/, obj a symlink to it"
        new = "objs_2" if os.readlink(obj) == "objs_1" else "objs_1"
        if not os.path.isdir(self.p(new)):
            shutil.copytree(self.p(os.readlink(obj)), self.p(new), symlinks=True)
        os.unlink(obj)
        os.symlink(new, obj)
        return "obj retargeted to " + new

    def mut_user_file_in_output_dir(self):
        if os.path.isdir(self.p("out/deep/er")) and self.rng.random() < 0.5:
            self.write("out/deep/er/user.txt", "the user's\n")
            return "put out/deep/er/user.txt in an output directory"
        shutil.rmtree(self.p("out/deep"), ignore_errors=True)
        return "removed the output directory out/deep"

    def mut_output_link(self):
        name = self.rng.choice(["out/run.txt", "out/tool.txt", "out/date.txt"])
        if os.path.islink(self.p(name)) or (os.path.exists(self.p(name)) and
                                            os.stat(self.p(name)).st_nlink > 1):
            self.remove(name)
            return "removed the link " + name
        self.remove(name)
        if self.rng.random() < 0.5:
            os.makedirs(self.p("elsewhere"), exist_ok=True)
            os.symlink("../elsewhere/" + os.path.basename(name), self.p(name))
            return "%s made a symlink to elsewhere/" % name
        self.write("elsewhere/kept.txt", "kept\n")
        os.link(self.p("elsewhere/kept.txt"), self.p(name))
        return "%s made a hard link of elsewhere/kept.txt" % name

    def mut_reorder(self):
        old = list(self.iorder)
        while self.iorder == old:
            self.rng.shuffle(self.iorder)
        return "-I order " + " ".join(self.iorder)

    def mut_cpath(self):
        self.cpath = self.rng.choice([c for c in (None, "root", "out") if c != self.cpath])
        return "CPATH " + (self.cpath_value() or "unset")

    def cpath_value(self):
        if self.cpath == "root":
            return self.p("cpath")
        if self.cpath == "out":
            return self.cpath_out
        return None

    def mut_sde(self):
        self.env["SOURCE_DATE_EPOCH"] = str(1700000000 + self.rng.randrange(1, 10) * 86461)
        return "SOURCE_DATE_EPOCH=" + self.env["SOURCE_DATE_EPOCH"]

    def mut_lc_all(self):
        self.env["LC_ALL"] = "C.UTF-8" if self.env["LC_ALL"] == "C" else "C"
        return "LC_ALL=" + self.env["LC_ALL"]

    def mut_noise(self):
        self.env["CAMPAIGN_NOISE"] = str(self.rng.randrange(10 ** 6))
        return "CAMPAIGN_NOISE (not allowlisted) = " + self.env["CAMPAIGN_NOISE"]

    def mut_edit_sys(self):
        self.write(os.path.join(self.sys, "sysdefs.h"),
                   "#define SYS_LEVEL %d\n" % self.rng.randrange(2, 900))
        return "edit of the -isystem header sysdefs.h outside the mount"

    def mut_outside_late(self):
        late = os.path.join(self.sys, "late.h")
        if os.path.lexists(late):
            os.unlink(late)
            return "removed late.h from the -isystem directory outside the mount"
        self.write(late, "#define LATE_VAL %d\n" % self.rng.randrange(200, 300))
        return "added late.h to the -isystem directory outside the mount (shadows -idirafter late/)"

    def mut_outside_extra(self):
        extra = os.path.join(self.cpath_out, "extra.h")
        if os.path.lexists(extra):
            os.unlink(extra)
            return "removed extra.h from the CPATH directory outside the mount"
        self.write(extra, "#define EXTRA_VAL %d\n" % self.rng.randrange(300, 400))
        return "added extra.h to the CPATH directory outside the mount"

    def mut_gmode(self):
        modes = ["none", "g", "g-map"]
        if self.has("ancestor-map"):
            modes.append("g-ancestor")
        if self.has("root-hidden"):
            modes.append("gz")
        self.gmode = self.rng.choice([m for m in modes if m != self.gmode])
        return "debug mode " + self.gmode

    def mut_mmd(self):
        self.mmd = not self.mmd
        return "src/c.c compiled %s -MMD" % ("with" if self.mmd else "without")

    def mut_chmod_script(self):
        mode = stat.S_IMODE(os.stat(self.p("scripts/tool.sh")).st_mode)
        os.chmod(self.p("scripts/tool.sh"), mode ^ 0o111)
        return "chmod %o scripts/tool.sh" % (mode ^ 0o111)

    def mut_edit_script(self):
        return "edit of scripts/tool.sh" + self.edit(
            "scripts/tool.sh", '#!/bin/sh\necho "tool v%d"\n' % self.rng.randrange(2, 99))

    def mut_data(self):
        choice = self.rng.randrange(4)
        self.data_n += 1
        if choice == 0:
            name = "data/%s%d.txt" % (self.rng.choice(["n", "N", "_"]), self.data_n)
            self.write(name, "new %d\n" % self.data_n)
            return "added " + name
        if choice == 1:
            name = "data/sub/s%d.txt" % self.data_n
            self.write(name, "sub %d\n" % self.data_n)
            return "added " + name
        if choice == 2:
            files = sorted(n for n in os.listdir(self.p("data")) if n.endswith(".txt"))
            if len(files) > 2:
                name = "data/" + self.rng.choice(files)
                self.remove(name)
                return "removed " + name
        e = self.p("data/empty.txt")
        if os.path.exists(e) and os.path.getsize(e) > 0:
            self.write("data/empty.txt", "")
            return "emptied data/empty.txt"
        self.write("data/empty.txt", "now full\n")
        return "filled data/empty.txt"

    def mut_retarget(self):
        link = [d + "/link.h" for d in ("inc1", "inc2", "inc3") if os.path.islink(self.p(d + "/link.h"))][0]
        cur = os.readlink(self.p(link))
        new = "../hdrs/real2.h" if cur.endswith("real1.h") else "../hdrs/real1.h"
        os.unlink(self.p(link))
        os.symlink(new, self.p(link))
        return "%s retargeted to %s" % (link, new)

    def mut_gen_in(self):
        return "edit of gen/gen.in" + self.edit("gen/gen.in", "name=%s\n" % self.rng.choice(
            ["first", "second", "third", "fourth", "x%d" % self.edits]))

    def mut_stdin(self):
        self.write(self.stdin_file, "stdin %d\n" % self.rng.randrange(1000))
        return "another standard input"

    def mut_rm_outside_outputs(self):
        for n in os.listdir(self.outo):
            os.unlink(os.path.join(self.outo, n))
        return "removed the outputs outside the mount"

    def mut_damage_output(self):
        outs = []
        for d in ("obj", "out", "build"):
            if os.path.isdir(self.p(d)):
                outs += [d + "/" + n for n in sorted(os.listdir(self.p(d)))
                         if os.path.isfile(self.p(d + "/" + n))]
        if not outs:
            return "no output to damage"
        o = self.rng.choice(outs)
        if self.rng.random() < 0.5:
            self.remove(o)
            return "removed the output " + o
        with open(self.p(o), "r+b") as f:
            f.truncate(max(0, os.path.getsize(self.p(o)) // 2))
        return "truncated the output " + o

    def mut_own_output(self):
        outs = []
        for d in ("obj", "out"):
            if os.path.isdir(self.p(d)):
                outs += [d + "/" + n for n in sorted(os.listdir(self.p(d)))
                         if os.path.isfile(self.p(d + "/" + n)) and not os.path.islink(self.p(d + "/" + n))]
        if not outs:
            return "no output to own"
        o = self.rng.choice(outs)
        if self.rng.random() < 0.5:
            os.chown(self.p(o), 65534, 65534)
            return "gave the output %s to nobody" % o
        os.setxattr(self.p(o), "user.campaign", b"%d" % self.rng.randrange(1000))
        return "set user.campaign on the output " + o

    def relocate(self, how=None):
        old = self.prev_root = self.root
        self.n_root += 1
        self.root = os.path.join(self.base, str(self.n_root), "execroot", "proj")
        os.makedirs(os.path.dirname(self.root))
        # a copy, hard links (cp -al), or a tree of absolute symlinks to the
        # previous root's files, as Bazel's sandboxes are (cp -as; their
        # outputs are never symlinks, so they are dropped)
        how = how or self.rng.choice(["cp -a", "cp -a", "cp -al", "cp -al", "cp -as"])
        keep = how != "cp -as" and self.rng.random() < 0.3
        subprocess.run(how.split() + [old, self.root], check=True)
        old_outer = os.path.join(old, "..", "outer")
        if os.path.isdir(old_outer):
            subprocess.run(["cp", "-a", old_outer, os.path.join(self.root, "..", "outer")], check=True)
        os.unlink(self.cur)
        os.symlink(os.path.relpath(self.root, os.path.dirname(self.cur)), self.cur)
        if not keep:
            for d in ("obj", "out", "build", "objs_1", "objs_2"):
                if os.path.islink(self.p(d)):
                    os.unlink(self.p(d))
                shutil.rmtree(self.p(d), ignore_errors=True)
                if d in ("obj", "out"):
                    os.makedirs(self.p(d))
            self.remove("gen/gen.h")
        return "relocated to %s (%s, outputs %s)" % (
            os.path.relpath(self.root, self.mnt), how, "kept" if keep else "dropped")

    def mutations(self):
        """The table of random mutations: (weight, function, feature)."""
        return [
            (4, lambda: self.edit_source("code"), None),
            (2, lambda: self.edit_source("comment"), None),
            (2, lambda: self.edit_source("whitespace"), None),
            (1, self.mut_break_or_fix, None),
            (3, self.mut_edit_header, None),
            (1, self.mut_add_header, None),
            (1, self.mut_remove_header, None),
            (2, self.mut_toggle_shadow, None),
            (2, self.mut_move_opt, None),
            (2, self.mut_reorder, None),
            (2, self.mut_cpath, None),
            (1, self.mut_sde, None),
            (2, self.mut_lc_all, None),
            (1, self.mut_noise, None),
            (2, self.mut_edit_sys, None),
            (1, self.mut_outside_late, "outside-absence"),
            (1, self.mut_outside_extra, "has-include-outside"),
            (2, self.relocate, None),
            (2, self.mut_gmode, None),
            (1, self.mut_mmd, "mmd"),
            (2, self.mut_chmod_script, None),
            (1, self.mut_edit_script, None),
            (2, self.mut_data, None),
            (2, self.mut_retarget, None),
            (1, self.mut_gen_in, None),
            (1, self.mut_stdin, "stdin"),
            (1, self.mut_rm_outside_outputs, "outside-output"),
            (2, self.mut_damage_output, None),
            (2, self.mut_swap_dirs, None),
            (1, self.mut_rename_sub, None),
            (2, self.mut_dir_symlink, None),
            (1, self.mut_umask, "output-exists"),
            (1, self.mut_odd_name, None),
            (1, self.mut_outside_same_size, None),
            (1, self.mut_touch, None),
            (1, self.mut_junk, None),
            (2, self.mut_shared, None),
            (1, self.mut_outer, None),
            (1, self.mut_obj_symlink, None),
            (1, self.mut_user_file_in_output_dir, None),
            (1, self.mut_output_link, "output-link"),
            (1, self.mut_own_output, "output-owned"),
        ]

    def relocation_pure(self, desc):
        """Whether a relocation changes nothing the actions observe: -g
        without a map and -gz hold the root; an ancestor's map pins the key;
        a symlink farm's links are other inputs than the files; outputs kept
        are present where the runs recorded at the other root saw none."""
        return (self.gmode not in ("g", "g-ancestor", "gz") and "cp -as" not in desc
                and "outputs kept" not in desc)

    def mutate(self):
        """Mutates the project for the round; returns (descriptions, pure)."""
        r = self.round
        if r == 1:
            # the outputs are there now, as they were not in round 0: what
            # saw them absent misses once (their presence is an input)
            return ["none (a no-op round, outputs present now)"], False
        if r == 2:
            desc = self.relocate(self.rng.choice(["cp -a", "cp -al"]))
            return [desc], self.relocation_pure(desc)
        if r == self.rounds:
            # the last round: nothing changes, nearly everything must hit
            return ["none (a no-op round, the last)"], True
        x = self.rng.random()
        if x < 0.12:
            return ["none (a no-op round)"], True
        if x < 0.27:
            # the symlinks of a farm are other inputs than the files they replace
            desc = self.relocate()
            return [desc], self.relocation_pure(desc)
        if x < 0.32:
            return [self.mut_noise()], True
        table = [(w, f) for w, f, feat in self.mutations() if feat is None or self.has(feat)]
        total = sum(w for w, _ in table)
        descs = []
        for _ in range(self.rng.choice([1, 1, 2, 2, 3])):
            y = self.rng.random() * total
            for w, f in table:
                y -= w
                if y < 0:
                    descs.append(f())
                    break
        return descs, False

    # ------------------------------------------------------------ actions --
    def gflags(self):
        if self.gmode == "g":
            return ["-g"]
        if self.gmode == "g-map":
            return ["-g", "-ffile-prefix-map=%s=." % self.root]
        if self.gmode == "g-ancestor":
            return ["-g", "-fdebug-prefix-map=%s=/S" % self.base]
        if self.gmode == "gz":
            return ["-g", "-gz"]
        return []

    def cflags(self, up=""):
        f = ["-std=c11", "-O1", "-Wall"] + self.gflags()
        f += ["-I" + self.shared] + ["-I" + up + d for d in self.iorder] + ["-I" + up + "incl"]
        f += ["-I" + up + "gen", "-isystem", self.sys, "-idirafter", up + "late"]
        return f

    def actions(self):
        """The round's actions in order: (name, argv, cwd relative to the
        root, stdin path or None)."""
        cc = ["gcc"] + self.cflags()
        a = [
            ("gen", ["sh", "gen/mkgen.sh"], "", None),
            ("cc main", cc + ["-c", "src/main.c", "-o", "obj/main.o"], "", None),
            ("cc a (absolute source)", cc + ["-c", self.p("src/a.c"), "-o", "obj/a.o"], "", None),
            ("cc b", cc + ["-c", "src/b.c", "-o", "obj/b.o"], "", None),
            ("cc c", cc + (["-MMD", "-MF", "obj/c.d"] if self.mmd and self.has("mmd") else [])
             + ["-c", "src/c.c", "-o", "obj/c.o"], "", None),
            ("cc d (from src/)", ["gcc"] + self.cflags("../") + ["-c", "d.c", "-o", "../obj/d.o"],
             "src", None),
            ("cc e (from src/, -I../../outer beside the root)",
             ["gcc"] + self.cflags("../") + ["-I../../outer", "-c", "e.c", "-o", "../obj/e.o"],
             "src", None),
            ("link", ["gcc", "-o", "out/prog", "obj/main.o", "obj/a.o", "obj/b.o", "obj/c.o",
                      "obj/d.o", "obj/e.o"], "", None),
            ("run", ["sh", "-c", "out/prog > out/run.txt"], "", None),
            ("ar", ["sh", "-c", "rm -f out/libx.a && ar rcs out/libx.a obj/a.o obj/b.o"], "", None),
            ("ls data", ["sh", "-c", "ls data > out/data.lst"], "", None),
            ("find data", ["sh", "-c", "find data | sort"], "", None),
            ("cat data", ["sh", "-c", "cat data/*.txt | wc -c > out/data.size"], "", None),
            ("date", ["sh", "-c", 'date -u -d "@$SOURCE_DATE_EPOCH" +%F > out/date.txt'], "", None),
            ("tool", ["sh", "-c", "sh scripts/tool.sh > out/tool.txt"], "", None),
            ("cc b (working directory through a symlink)",
             cc + ["-c", "src/b.c", "-o", "obj/b2.o"], self.cur, None),
            ("cc d (absolute -I)", ["gcc"] + self.cflags(self.root + "/")
             + ["-c", "src/d.c", "-o", "obj/d2.o"], "", None),
            ("response file", ["sh", "-c", 'printf "%s\\n" "$@" > obj/d3.rsp', "sh"]
             + self.cflags() + ["-c", "src/d.c", "-o", "obj/d3.o"], "", None),
            ("cc @response file", ["gcc", "@obj/d3.rsp"], "", None),
            ("rm an output", ["rm", "-f", "out/junk.txt"], "", None),
            ("chmod an output", ["sh", "-c", "cat scripts/tool.sh > out/t2.sh && chmod 700 out/t2.sh"],
             "", None),
            ("deep outputs", ["sh", "-c", "mkdir -p out/deep/er && cp gen/gen.in out/deep/er/gen.copy"
                              " && ln -sfn er/gen.copy out/deep/link"], "", None),
            ("big stdout", ["sh", "-c", "seq 1 $((20000 + $(cat data/*.txt | wc -c)))"], "", None),
            ("big stderr", ["sh", "-c", "seq 1 $((15000 + $(wc -c < gen/gen.in))) >&2"], "", None),
            ("renamed output", ["sh", "-c", "cat gen/gen.in > out/tmp.$$ && mv out/tmp.$$ out/renamed.txt"],
             "", None),
            ("reads its own output", ["sh", "-c", "wc -c < gen/gen.in > out/own.tmp && "
                                      "cat out/own.tmp data/alpha.txt > out/own.txt"], "", None),
            ("temporary directory", ["sh", "-c", "mkdir -p out/tmpd && cat gen/gen.in > out/tmpd/t && "
                                     "cat out/tmpd/t data/alpha.txt > out/tmpd.copy && rm -rf out/tmpd"],
             "", None),
            ("absolute symlink output", ["sh", "-c", 'ln -sfn "$PWD/gen/gen.in" out/abs.link'], "", None),
            ("sparse output", ["sh", "-c", "rm -f out/sparse.bin && truncate -s 200000 out/sparse.bin"
                               " && cat gen/gen.in >> out/sparse.bin"], "", None),
        ]
        if self.has("probe-mode"):
            a += [
                ("tool if executable", ["sh", "-c", "if [ -x scripts/tool.sh ]; then scripts/tool.sh;"
                                        " else echo not executable; fi > out/toolx.txt"], "", None),
                ("cp script", ["cp", "scripts/tool.sh", "out/tool.copy"], "", None),
            ]
        if self.has("listed-mode"):
            a.append(("ls -F", ["ls", "-F", "scripts"], "", None))
        if self.has("probe-size"):
            a.append(("test -s", ["sh", "-c", 'for f in data/*.txt; do [ -s "$f" ] && echo "$f";'
                                  " done > out/nonempty.txt"], "", None))
        if self.has("stdin"):
            a.append(("stdin", ["sh", "-c", "tr a-z A-Z > out/stdin.txt"], "", self.stdin_file))
        if self.has("output-exists"):
            a.append(("mkdir", ["mkdir", "out/made"], "", None))
            a.append(("append", ["sh", "-c", "cat gen/gen.in >> out/log.txt"], "", None))
        if self.has("link-source"):
            a += [
                ("hard link output", ["ln", "-f", "obj/a.o", "out/a-hard.o"], "", None),
                ("stage", ["cp", "gen/gen.in", "out/staged.txt"], "", None),
                ("mv the staged file", ["mv", "out/staged.txt", "out/moved.txt"], "", None),
            ]
        if self.has("sh-outside"):
            a.append(("cc c through casfs-sh", ["casfs-sh", "-c", shlex.join(
                cc + ["-MD", "-MF", "obj/c_sh.d", "-c", "src/c.c", "-o", "obj/c_sh.o"])], "", None))
        if self.has("cwd-transformed"):
            a.append(("the working directory, transformed",
                      ["sh", "-c", "pwd | tr / _ > out/where.txt"], "", None))
        if self.has("wrapped-compiler"):
            a.append(("cc c through env", ["env"] + cc + ["-c", "src/c.c", "-o", "obj/c_env.o"], "", None))
        if self.has("env-unlisted"):
            a.append(("a variable not on the allowlist",
                      ["sh", "-c", 'echo "$CAMPAIGN_NOISE" > out/noise.txt'], "", None))
        if self.has("dir-setgid"):
            a.append(("set-group-ID directory output",
                      ["sh", "-c", "mkdir -p out/shared && chmod 2775 out/shared"], "", None))
        if self.has("mtime"):
            a.append(("tar", ["tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner",
                              "-cf", "out/data.tar", "data"], "", None))
        if self.has("inherited-fd"):
            fd3 = ("fd3", "data/empty.txt")
            a.append(("reads fd 3", ["sh", "-c", "cat <&3 > out/fd3.txt"], "", fd3))
            a.append(("cc b with fd 3 open", cc + ["-c", "src/b.c", "-o", "obj/b3.o"], "", fd3))
        if self.has("outside-output"):
            a.append(("cc b to outside the mount",
                      cc + ["-c", "src/b.c", "-o", os.path.join(self.outo, "b.o")], "", None))
        return a

    def run_env(self, cwd):
        env = dict(os.environ)
        for k in ("CPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
            env.pop(k, None)
        env.update(self.env)
        if self.cpath_value():
            env["CPATH"] = self.cpath_value()
        env["PWD"] = cwd
        return env

    # -------------------------------------------------------------- state --
    def snapshot(self, when):
        """{absolute path: entry} of the project and the outside outputs;
        entries are what Campaign.entry gives.  The tree is
        walked by listing it; every path seen before (relative to the root)
        is also looked up by name, and one that exists but was not listed
        is a failure (a stale listing, which every other program sees too).
        WHEN says what ran last, for that message."""
        snap = {}
        for top in (self.root, self.outo):
            stack = [top]
            while stack:
                d = stack.pop()
                st = os.lstat(d)
                snap[d] = self.entry(d)
                with os.scandir(d) as it:
                    names = sorted(e.name for e in it if e.name != ".casfs")
                for n in names:
                    p = os.path.join(d, n)
                    e = self.entry(p)
                    if e[0] == "d":
                        stack.append(p)
                    else:
                        snap[p] = e
        unlisted = []
        for k in sorted(self.known):
            p = k if os.path.isabs(k) else os.path.normpath(os.path.join(self.root, k))
            if p in snap or not os.path.lexists(p) or os.path.realpath(os.path.dirname(p)) != os.path.dirname(p):
                continue
            unlisted.append(self.rel(p))
            snap[p] = self.entry(p)
        if unlisted:
            self.fail("round %d, %s: a listing of its directory does not show %s, which exists "
                      "(every program that lists it is told it does not); round's mutations: %s; "
                      "replay: CASFS_CAMPAIGN_SEED=%d CASFS_CAMPAIGN_ROUNDS=%d%s" % (
                          self.round, when, ", ".join(unlisted), "; ".join(self.round_muts),
                          self.seed, self.rounds, self.avoid_text()))
        for p in snap:
            self.known.add(self.rel(p))
        return snap

    @staticmethod
    def entry(p):
        """(kind, mode, bytes or target, mtime_ns, (dev, inode), meta) of P;
        meta: (uid, gid, its user.* attributes but casfs's own) of a file,
        (uid, gid, ()) of anything else."""
        st = os.lstat(p)
        ident = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(st.st_mode):
            return ("d", stat.S_IMODE(st.st_mode), None, st.st_mtime_ns, ident, (st.st_uid, st.st_gid, ()))
        if stat.S_ISLNK(st.st_mode):
            return ("l", 0, os.readlink(p), st.st_mtime_ns, ident, (st.st_uid, st.st_gid, ()))
        if stat.S_ISREG(st.st_mode):
            xattrs = tuple(sorted((n, os.getxattr(p, n)) for n in os.listxattr(p)
                                  if n.startswith("user.") and not n.startswith("user.casfs.")))
            with open(p, "rb") as f:
                return ("f", stat.S_IMODE(st.st_mode), f.read(), st.st_mtime_ns, ident,
                        (st.st_uid, st.st_gid, xattrs))
        return ("o", stat.S_IMODE(st.st_mode), None, st.st_mtime_ns, ident, (st.st_uid, st.st_gid, ()))

    @staticmethod
    def same(a, b):
        return a[:3] == b[:3] and a[5] == b[5]

    @staticmethod
    def link_groups(snap):
        """{path: sorted tuple of the snapshot's files sharing its inode}."""
        by_ino = {}
        for p, e in snap.items():
            if e[0] == "f":
                by_ino.setdefault(e[4], []).append(p)
        return {p: tuple(sorted(g)) for g in by_ino.values() for p in g}

    def restore(self, pre, cur):
        """Puts the tree back to the snapshot PRE (CUR: what is there now):
        contents, modes, symlinks, file mtimes, and which files are hard
        links of each other.  A file that differs is made anew (writing it
        in place would change its other links too)."""
        for p in sorted(cur, reverse=True):
            if p not in pre or cur[p][0] != pre[p][0]:
                if cur[p][0] == "d":
                    shutil.rmtree(p)
                elif os.path.lexists(p):
                    os.unlink(p)
        pre_links, cur_links = self.link_groups(pre), self.link_groups(cur)
        made = {}
        for p in sorted(pre):
            kind, mode, data, mtime, ident, meta = pre[p]
            c = cur.get(p)
            if c is not None and c[0] != kind:
                c = None
            if kind == "d":
                if c is None:
                    os.mkdir(p)
                if c is None or c[5][:2] != meta[:2]:
                    os.lchown(p, meta[0], meta[1])
                if c is None or c[1] != mode:
                    os.chmod(p, mode)
            elif kind == "l":
                if c is None or c[2] != data:
                    if os.path.lexists(p):
                        os.unlink(p)
                    os.symlink(data, p)
                if c is None or c[2] != data or c[5][:2] != meta[:2]:
                    os.lchown(p, meta[0], meta[1])
            elif kind == "f":
                group = pre_links[p]
                if c is not None and c[1:4] == (mode, data, mtime) and c[5] == meta and cur_links[p] == group:
                    continue
                if os.path.lexists(p):
                    os.unlink(p)
                if ident in made:
                    os.link(made[ident], p)
                    continue
                with open(p, "wb") as f:
                    f.write(data)
                os.chown(p, meta[0], meta[1])
                os.chmod(p, mode)
                for n, v in meta[2]:
                    os.setxattr(p, n, v)
                os.utime(p, ns=(mtime, mtime))
                made[ident] = p
                # its other links that were already right are now apart
                for q in group:
                    if q < p and os.path.lexists(q):
                        os.unlink(q)
                        os.link(p, q)

    def describe_diff(self, a, b):
        """What differs between the snapshots A (casfs) and B (fresh run)."""
        out = []
        for p in sorted(set(a) | set(b)):
            x, y = a.get(p), b.get(p)
            if x is not None and y is not None and self.same(x, y):
                continue
            out.append("%s: %s, fresh %s" % (self.rel(p), self.entry_text(x), self.entry_text(y)))
        return out

    def rel(self, p):
        if p.startswith(self.root + "/") or p == self.root:
            return os.path.relpath(p, self.root)
        return p

    @staticmethod
    def entry_text(e):
        if e is None:
            return "absent"
        if e[0] == "f":
            d = e[2]
            txt = repr(d[:60]) if len(d) <= 60 and b"\0" not in d else "%d bytes" % len(d)
            meta = " owner %d:%d" % e[5][:2] + "".join(" %s=%r" % a for a in e[5][2])
            return "file %o %s%s" % (e[1], txt, meta)
        if e[0] == "l":
            return "symlink -> " + e[2]
        if e[0] == "d":
            return "directory %o" % e[1]
        return "other"

    # ------------------------------------------------------------ running --
    def read_counters(self):
        r = subprocess.run([self.casfs, "stats", "--json", self.mnt], capture_output=True,
                           timeout=CMD_TIMEOUT)
        for m in json.loads(r.stdout)["mounts"]:
            if m["mountpoint"] == self.mnt:
                return m["counters"]
        raise RuntimeError("casfs stats does not list " + self.mnt)

    def run(self, argv, cwd, stdin):
        """STDIN: a path, None (/dev/null), or ("fd3", root-relative path):
        /dev/null on stdin and that file (or /dev/null where it is missing)
        open for reading on descriptor 3, which a shell outside casfs opens
        and execs the command (casfs exec, or the plain one) with."""
        if isinstance(stdin, tuple):
            path = self.p(stdin[1])
            argv = ["sh", "-c", 'f=$1; shift; exec "$@" 3<"$f"', "sh",
                    path if os.path.exists(path) else os.devnull] + argv
            stdin = None
        with open(stdin or os.devnull, "rb") as fin:
            try:
                r = subprocess.run(argv, cwd=cwd, env=self.run_env(cwd), stdin=fin,
                                   capture_output=True, timeout=CMD_TIMEOUT, umask=self.umask)
                return r.returncode, r.stdout, r.stderr
            except subprocess.TimeoutExpired:
                return "timeout", b"", b""

    def explain(self, argv, cwd, cached_argv):
        """casfs's decision for the command; casfs-sh has no --explain, so
        it is run again with CASFS_LOG=debug (the caller restores the tree)."""
        env = self.run_env(cwd)
        if cached_argv[0] == self.casfs_sh:
            env["CASFS_LOG"] = "debug"
            r = subprocess.run(cached_argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=CMD_TIMEOUT, umask=self.umask)
            return " | ".join(l for l in r.stderr.decode(errors="replace").splitlines()
                              if l.startswith("casfs: "))
        r = subprocess.run([self.casfs, "exec", "--explain", "--"] + argv, cwd=cwd, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=CMD_TIMEOUT,
                           umask=self.umask)
        return (r.stdout + r.stderr).decode(errors="replace").strip().replace("\n", " | ")

    def delta(self, before, after):
        return {k: after[k] - before[k] for k in ("action_hits", "action_misses", "action_uncacheable")}

    def check(self, name, argv, cwd, stdin, cached_argv, make=False):
        """Runs CACHED_ARGV (the command through casfs) and ARGV plainly
        from the same state; judges the result.  Returns the counter deltas."""
        pre = self.snapshot("before " + name)
        before = self.counters
        c_rc, c_out, c_err = self.run(cached_argv, cwd, stdin)
        self.counters = self.read_counters()
        d = self.delta(before, self.counters)
        post_c = self.snapshot("after a casfs exec of " + name)
        self.restore(pre, post_c)
        f_rc, f_out, f_err = self.run(argv, cwd, stdin)
        post_f = self.snapshot("after a plain run of " + name)
        diffs = []
        if c_rc != f_rc:
            diffs.append("exit status %s, fresh %s" % (c_rc, f_rc))
        if make:
            # -j2: the order of the recipes' output varies
            c_out, f_out = sorted(c_out.splitlines()), sorted(f_out.splitlines())
            c_err, f_err = sorted(c_err.splitlines()), sorted(f_err.splitlines())
        if c_out != f_out:
            diffs.append("stdout %r, fresh %r" % (c_out[:300], f_out[:300]))
        if c_err != f_err:
            diffs.append("stderr %r, fresh %r" % (c_err[:300], f_err[:300]))
        diffs += self.describe_diff(post_c, post_f)
        hit = d["action_hits"] > 0
        cmd = "(cd %s && %s)" % (shlex.quote(self.rel(cwd) or "."), shlex.join(argv))
        if diffs and hit:
            self.restore(pre, post_f)
            expl = "" if make else self.explain(argv, cwd, cached_argv)
            self.counters = self.read_counters()
            if name in self.failed_first:
                self.fail("round %d, %s: again a hit that differs from a fresh run (first in "
                          "round %d): %s; round's mutations: %s" % (
                              self.round, name, self.failed_first[name], "; ".join(diffs)[:200],
                              "; ".join(self.round_muts)))
            else:
                self.failed_first[name] = self.round
                self.fail("round %d, %s: a hit that differs from a fresh run: %s; command: %s; "
                          "environment: %s; round's mutations: %s; explain: %s; "
                          "replay: CASFS_CAMPAIGN_SEED=%d CASFS_CAMPAIGN_ROUNDS=%d%s" % (
                              self.round, name, "; ".join(diffs), cmd, self.env_text(),
                              "; ".join(self.round_muts), expl or "(make: see the recipes' hits)",
                              self.seed, self.rounds, self.avoid_text()))
            post_c2 = self.snapshot("after --explain of " + name)
            self.restore(post_f, post_c2)
        elif diffs:
            self.miss_differs += 1
            self.note("round %d, %s: a miss that differs from a fresh run (the command is not "
                      "deterministic, or the traced run went wrong): %s; command: %s" % (
                          self.round, name, "; ".join(diffs), cmd))
        return d

    def env_text(self):
        e = " ".join("%s=%s" % kv for kv in sorted(self.env.items()))
        return e + " CPATH=" + (self.cpath_value() or "(unset)") + " umask %03o" % self.umask

    def avoid_text(self):
        return " CASFS_CAMPAIGN_AVOID=" + ",".join(sorted(self.avoid)) if self.avoid else ""

    def make_flags(self):
        return " ".join(shlex.quote(f) for f in self.cflags())

    def run_round(self, make):
        hits = misses = unc = 0
        acts = self.actions()
        for name, argv, cwd_rel, stdin in acts:
            cwd = self.p(cwd_rel) if cwd_rel else self.root
            if argv[0] == "casfs-sh":
                # a recipe line as make SHELL=casfs-sh runs it
                d = self.check(name, ["/bin/sh"] + argv[1:], cwd, stdin, [self.casfs_sh] + argv[1:])
            else:
                d = self.check(name, argv, cwd, stdin, [self.casfs, "exec", "--"] + argv)
            hits += d["action_hits"] > 0
            misses += d["action_hits"] == 0
            unc += d["action_uncacheable"]
        mtext = ""
        mh = mm = 0
        if make:
            flags = "FLAGS=" + self.make_flags()
            base = ["make", "-j2", "-k", "-s", "--no-print-directory", "-Otarget", flags]
            d = self.check("make -j2 -k SHELL=casfs-sh", base, self.root, None,
                           base + ["SHELL=" + self.casfs_sh], make=True)
            mh, mm = d["action_hits"], d["action_misses"]
            mtext = "; make -j2 -k SHELL=casfs-sh: %d hits, %d misses" % (mh, mm)
        return len(acts), hits, misses, unc, mtext, mh

    def main(self):
        self.note("seed %d: CASFS_CAMPAIGN_SEED=%d CASFS_CAMPAIGN_ROUNDS=%d%s replays this run" % (
            self.seed, self.seed, self.rounds, self.avoid_text()))
        if self.avoid:
            self.note("left out (CASFS_CAMPAIGN_AVOID): " + ", ".join(sorted(self.avoid)))
        self.create_project()
        self.counters = self.read_counters()
        first = self.counters
        t0 = time.monotonic()
        try:
            for r in range(self.rounds + 1):
                self.round = r
                fails_before = self.failed
                if r == 0:
                    muts, pure = ["none (the first build)"], False
                else:
                    muts, pure = self.mutate()
                self.round_muts = muts
                make = self.has("sh-outside") and (r in (1, 2) or (r > 2 and self.rng.random() < 0.3))
                t = time.monotonic()
                n, hits, misses, unc, mtext, mh = self.run_round(make)
                self.total_actions += n
                self.total_hits += hits
                if pure:
                    self.pure_actions += n
                    self.pure_hits += hits
                self.note("round %d (%s)%s: %d actions: %d hits, %d misses (%d uncacheable)%s; %.1f s" % (
                    r, "; ".join(muts), " [nothing observed changed]" if pure else "", n, hits,
                    misses, unc, mtext, time.monotonic() - t))
                if self.failed == fails_before:
                    self.ok("round %d: every hit equals a fresh run (%d hits of %d actions%s)" % (
                        r, hits, n, ", make %d hits" % mh if make else ""))
        except Exception:
            self.fail("round %d: the campaign itself failed (replay: CASFS_CAMPAIGN_SEED=%d "
                      "CASFS_CAMPAIGN_ROUNDS=%d%s): %s" % (
                          self.round, self.seed, self.rounds, self.avoid_text(),
                          traceback.format_exc().replace("\n", " | ")))
        self.note("%d rounds in %.0f s: %d of %d actions hit; %d misses differed from their "
                  "fresh run" % (self.rounds + 1, time.monotonic() - t0, self.total_hits,
                                 self.total_actions, self.miss_differs))
        hits = self.counters["action_hits"] - first["action_hits"]
        saved = self.counters["action_time_saved_ms"] - first["action_time_saved_ms"]
        wall = (time.monotonic() - t0) * 1000
        if saved <= wall * 2 + 1000:
            self.ok("the recorded run times are plausible: %d hits saved %d ms (the campaign "
                    "took %.0f ms)" % (hits, saved, wall))
        else:
            self.fail("the recorded run times are not plausible: %d hits saved %d ms, more "
                      "than the whole campaign took (%.0f ms)" % (hits, saved, wall))
        share = self.pure_hits / self.pure_actions if self.pure_actions else 0.0
        if self.pure_actions and share >= MIN_PURE_HIT_SHARE:
            self.ok("the campaign exercised hits: %d of %d actions hit in rounds where nothing "
                    "they observe changed (%.0f%%, at least %.0f%% required)" % (
                        self.pure_hits, self.pure_actions, share * 100, MIN_PURE_HIT_SHARE * 100))
        else:
            self.fail("the campaign exercised too few hits: %d of %d actions hit in rounds where "
                      "nothing they observe changed (at least %.0f%% required); seed %d" % (
                          self.pure_hits, self.pure_actions, MIN_PURE_HIT_SHARE * 100, self.seed))
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 else 1


def main():
    if len(sys.argv) != 3:
        print("usage: campaign.py MOUNT OUTSIDE", file=sys.stderr)
        return 2
    mnt, outside = (os.path.realpath(a) for a in sys.argv[1:])
    seed_s = os.environ.get("CASFS_CAMPAIGN_SEED", "")
    seed = int(seed_s) if seed_s else int.from_bytes(os.urandom(4), "big")
    rounds = int(os.environ.get("CASFS_CAMPAIGN_ROUNDS", "") or 12)
    if rounds < 2:
        print("campaign.py: CASFS_CAMPAIGN_ROUNDS=%d: at least 2 (round 2 is the first whose "
              "hits count)" % rounds, file=sys.stderr)
        return 2
    avoid = {a for a in os.environ.get("CASFS_CAMPAIGN_AVOID", "").split(",") if a}
    bad = avoid - set(FEATURES)
    if bad:
        print("campaign.py: unknown CASFS_CAMPAIGN_AVOID feature(s) %s; known: %s" % (
            ", ".join(sorted(bad)), ", ".join(FEATURES)), file=sys.stderr)
        return 2
    return Campaign(mnt, outside, seed, rounds, avoid).main()


if __name__ == "__main__":
    sys.exit(main())
