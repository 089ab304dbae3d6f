// Package profile finds the start-up working set of a container image: the
// files its entrypoint reads when a container starts, in first-access order.
//
// Lazy pulling (eStargz, zstd:chunked) pays off only when those files sit
// first in each layer, so that one prefetch fetches them and nothing else
// blocks the start. A [Profile] is that ordered list. It comes from one of
// three sources:
//
//   - [Static] predicts it without running anything (Source "static").
//   - The subpackage [github.com/coldstart-dev/coldstart/optimize/profile/run]
//     records it (Source "run"): it starts the entrypoint in a sandbox (an
//     overlay of the image's filesystem, new namespaces) and records with
//     fanotify every file of the image the process tree opens. Linux and
//     root only.
//   - [ReadFile] and [Parse] import it from a file (see below).
//
// [Profile.WriteJSON] and [ReadJSON] store a profile.
//
// A [Profiler] finds the profile of a v1.Image over its merged filesystem,
// under a name that keys cached profiles: [StaticProfiler] is Static as a
// Profiler, [ReadFile] and [Parse] return one, [ProfilerFunc] makes one of a
// function. The optimize and report packages take any Profiler.
//
// # Profile files
//
// [Parse] (and [ReadFile]) recognise a profile file by its content:
//
//   - the JSON that WriteJSON writes, an object with "files" ([ReadJSON]);
//   - the JSON-lines record of "ctr-remote image optimize --record-out", the
//     file that "nerdctl image convert --estargz-record-in" reads: one
//     {"path": "..."} object per line ([ReadRecordIn]);
//   - a path list ([ReadPathList]): text, one path per line in priority
//     order, "#" comments, and the wildcards "*", "?" and "[...]" within a
//     path element and "**" across elements, expanded against each image's
//     filesystem in sorted order. Paths are resolved through symbolic links
//     inside the image; the links and the entry reached are listed.
//
// A directory in a path list means that directory alone: traces name the
// directories a program lists, not everything below them. "DIR/**" means
// every file below DIR. Data in none of the three formats, such as binary
// data (a control character other than tab in a path list), is an error
// that names the file and the formats, wrapping [ErrInvalidProfile].
//
// # The filesystem
//
// Static reads the image through [FS], an abstract read-only view of the
// merged root filesystem with absolute, slash-separated paths. [DirFS] serves
// a host directory as an image root. Every path is resolved by the profiler
// itself, element by element, inside the image root: absolute link targets
// start again at the root, ".." stops at the root, more than 40 links fail
// like ELOOP. Nothing outside the root is ever read, whatever the links say.
//
// # What Static follows
//
// The order of Files is the order in which the kernel, the loader and the
// interpreters open the files; the entrypoint comes first.
//
//   - The command: Entrypoint followed by Cmd. argv[0] without a slash is
//     looked up in the config's PATH (default [DefaultPath]) like execvp: the
//     first executable regular file wins. Relative paths start at
//     WorkingDir (default "/"). Every symbolic link on the way is listed
//     before the file it leads to: on a merged-/usr Debian image "/bin/sh"
//     lists "/bin", "/usr/bin/sh" and then "/usr/bin/dash".
//   - ELF programs: the interpreter (PT_INTERP) right after the program,
//     because the kernel maps it at exec; then, for glibc,
//     /etc/ld.so.preload and the libraries it names, /etc/ld.so.cache, and
//     the DT_NEEDED libraries breadth-first in load order. A library is
//     searched in DT_RPATH (of the object and its loaders, when it has no
//     DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH ($ORIGIN, $LIB and $PLATFORM
//     expanded), then /etc/ld.so.cache, parsed in glibc's current format
//     (or, without a usable cache, the directories of /etc/ld.so.conf and its
//     includes), then the default directories: /lib/TRIPLET and
//     /usr/lib/TRIPLET for the ELF machine's multiarch tuple (x86_64-linux-gnu,
//     aarch64-linux-gnu, ...), /lib64 and /usr/lib64 on 64-bit machines,
//     /lib and /usr/lib. Candidates of another machine or class are skipped
//     as the loader skips them. musl programs search LD_LIBRARY_PATH, their
//     RPATH/RUNPATH, then /etc/ld-musl-ARCH.path or musl's defaults.
//     ld.so.conf itself is not listed: only ldconfig reads it.
//   - After the first program's libraries, once: the files libc and common
//     runtimes read at start when present: /etc/nsswitch.conf, /etc/passwd,
//     /etc/group, /etc/hosts, /etc/host.conf (read at the first host name
//     lookup), /etc/resolv.conf, /etc/localtime and its
//     target, /usr/share/locale/locale.alias,
//     /usr/lib/locale/locale-archive (or the files of
//     /usr/lib/locale/C.utf8), iconv's gconv-modules.cache, and the first
//     CA bundle found (/etc/ssl/certs/ca-certificates.crt and the usual
//     alternatives).
//   - "#!" scripts: the script, then its interpreter as the kernel runs it
//     (the rest of the line is one argument), recursively; chains deeper
//     than 5 interpreters stop with a warning, like the kernel's ELOOP.
//     "#!/usr/bin/env X" looks X up in PATH, and env's options (-S, -i,
//     -u, -C, NAME=VALUE) are understood. Wrappers such as tini, dumb-init,
//     gosu, su-exec, nohup, nice and timeout are followed to the command they
//     start.
//   - Shell scripts (sh, bash, dash, ash, ... and busybox sh; also "sh -c"):
//     a small tokenizer reads quotes, comments, line continuations,
//     here-documents, case patterns and function definitions, and takes the
//     first word of every simple command (after "exec", "command", "&&",
//     ";", "|", ...). Builtins and functions are skipped; "." and "source"
//     read the named script in place; "cd", "export", "set --" and
//     "shift" update the state. $VAR, ${VAR:-default}, $1 and "$@" expand
//     from the environment, earlier assignments and the script's arguments,
//     so the common `exec "$@"` of an entrypoint script reaches Cmd; an
//     unquoted argument with *, ? or [ expands to the names it matches in
//     the image (a leading dot only explicitly), or stays as written.
//     Command substitutions cannot be known and are skipped. Every command
//     found is resolved and followed like the entrypoint, in text order,
//     whether or not the branch it sits in would run; a text file without
//     "#!" that a shell runs is read as a script of that shell. A program is
//     followed once per argument list, so scripts that run themselves end.
//   - Utilities that read the files their command line names (cat, cp,
//     head, tail, tac, wc, sort, base64, md5sum and the sha*sum tools, also
//     as busybox applets): the operands, after the options and their values;
//     not cp's destination; a directory cp -r, -R or -a copies is read down
//     to 8 levels.
//   - Python (argv[0] or its target named python, python3, pythonX.Y): the
//     standard library is found as CPython finds it (PYTHONHOME, or the
//     first ancestor of the real executable holding lib/pythonX.Y/os.py;
//     pyvenv.cfg of a virtual environment is read and listed). Then, in
//     CPython's order: encodings/__init__, codecs, encodings/aliases,
//     encodings/utf_8, io, abc, site, os, stat, _collections_abc,
//     posixpath, genericpath, _sitebuiltins; the .pth files of the user,
//     virtual environment, or system site directories (Debian's
//     dist-packages included) in sorted order, with their "import" lines and
//     path lines; sitecustomize and usercustomize if present; then the main
//     script (sys.path[0] is its real directory) or, for -m, runpy and the
//     module (and its __main__), or the -c code. Imports are read with a
//     small tokenizer (strings and comments skipped; "import a.b",
//     "from x import y", relative imports, parenthesised lists) and followed
//     depth-first in source order as the interpreter executes them: parent
//     packages first, package __init__ files, submodules named by "from
//     package import name", extension modules (.so, with their ELF
//     libraries). "if TYPE_CHECKING:" blocks are left out, and so are the
//     "if __name__ == '__main__':" blocks of imported modules; the imports
//     of an "except" block are followed only when an import of its "try"
//     block fails (a missing private module such as _speedups, or a known
//     built-in such as math, counts as compiled into the interpreter).
//     Imports inside function bodies run when the function is called: the
//     profiler follows those of the main module's functions, then those of
//     the module-level functions and classes of the modules the main module
//     imports itself that its code names, and of the definitions those
//     name within the same module (argparse.ArgumentParser names
//     HelpFormatter, whose __init__ imports shutil); deeper ones are left
//     out. CPython 3.11 and later have os, site, codecs, io, abc, stat,
//     posixpath and a few more frozen into the interpreter: they are not
//     listed (their imports are followed), unless -X frozen_modules=off or
//     PYTHON_FROZEN_MODULES=off.
//     What the standard library's C code imports by name, which no import
//     statement shows, is followed too: _decimal imports numbers and
//     collections as it initialises (_pickle, _elementtree and _asyncio
//     likewise), socket's name lookups import the idna codec, and _ssl and
//     _hashlib read OpenSSL's configuration (found as for Node.js below).
//     A source module is listed as the file Python reads: its
//     __pycache__/NAME.cpython-XY.pyc when the header's mtime and size match
//     the source, otherwise the .pyc followed by the .py, and the profile
//     warns "python bytecode is stale for N modules (e.g. X): python will
//     recompile at every start"; without a .pyc, the .py.
//   - Node.js (node, nodejs): OpenSSL's configuration, which node reads
//     at start (--openssl-config, OPENSSL_CONF, else the first of
//     /usr/lib/ssl/openssl.cnf, /usr/local/ssl/openssl.cnf,
//     /etc/ssl/openssl.cnf, /etc/pki/tls/openssl.cnf that exists); the
//     built-ins a build keeps out of the binary (configure's
//     --shared-builtin-NAME-path, as Debian's nodejs does for acorn,
//     cjs-module-lexer and undici), which node reads as it boots: the
//     NODE_SHARED_BUILTIN_*_PATH defines of the configuration embedded in
//     the .rodata section of the node executable or of libnode; preloads
//     (-r, --require, --import, also in NODE_OPTIONS), the entry script and its require("x"), import ... from
//     "x", import "x" and export ... from "x" graph, resolved as Node.js
//     does: relative paths with the .js, .json, .node, .mjs and .cjs
//     extensions and index files, package.json "main" and "exports" (string,
//     subpath map with "*", conditions node/require/import/default in the
//     package's order), node_modules directories walking up from the real
//     path of the requiring module, NODE_PATH and the global folders. The
//     package.json files read are listed before the module they lead to;
//     native addons (.node) bring their ELF libraries. Core modules and
//     dynamic import() are left out.
//   - Java (java): @argfiles, the -jar file, then, in the order HotSpot
//     opens them under JAVA_HOME (the real java binary's ../): lib/jvm.cfg,
//     lib/server/libjvm.so and its libraries, libjimage.so, lib/modules
//     (rt.jar on JDK 8), libjava.so, the class data sharing archive
//     lib/server/classes.jsa, the libjsvml, libnio, libnet and libzip
//     libraries, conf/security/java.security, conf/logging.properties,
//     libextnet.so and conf/net.properties (each when present: a JDK 17
//     serving on the network reads them all at start); then -javaagent
//     jars and the jars of -cp/-classpath/--class-path/CLASSPATH ("dir/*"
//     expanded in sorted order) and of the module path. JDK_JAVA_OPTIONS and
//     JAVA_TOOL_OPTIONS are read. A jar manifest's Class-Path is not.
//
// # Bounds and errors
//
// A file that is missing, unreadable, not an executable format or malformed
// becomes a warning in the profile, never a failure: Static fails only when
// its context is done, its FS is nil or an option is invalid. The work is
// bounded everywhere: [WithMaxFiles] caps the list, [WithMaxDepth] the
// nesting of processes, [WithMaxReadBytes] the bytes read from one script or
// source file, [WithMaxModules] the Python and Node.js modules visited; one
// script follows at most 1000 commands and a profile 20000; ELF
// headers are read with every size checked before any allocation (program
// headers up to 64 KiB, the interpreter path up to 4 KiB, the dynamic
// section up to 1 MiB). Section headers are never read, so stripped
// binaries work the same. At most 100 warnings are kept.
//
// Static is deterministic: the same FS and Config give the same Files in the
// same order, on any machine. The library is silent; [WithLogger] receives
// debug records of what it follows.
package profile
