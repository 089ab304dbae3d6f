package profile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
)

// DefaultPath is the PATH a container gets when the image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxShebangDepth bounds a chain of "#!" interpreters, like the kernel's
// limit on nested binfmt handlers.
const maxShebangDepth = 5

// binprmBufSize is how much of a file the kernel reads to recognise it.
const binprmBufSize = 256

// Static predicts, without running anything, which files the image's
// entrypoint reads at start, in first-access order.
//
// It follows Entrypoint+Cmd through PATH and symbolic links, ELF interpreters
// and libraries, "#!" chains, the commands of shell scripts, and the import
// graphs of Python, Node.js and Java programs; see the package documentation
// for the rules. Whatever it cannot follow becomes a warning in the profile.
// It fails only when ctx is done, fsys is nil or an option is invalid. The
// same fsys and cfg always give the same profile.
func Static(ctx context.Context, fsys FS, cfg Config, opts ...Option) (*Profile, error) {
	if fsys == nil {
		return nil, errors.New("profile: Static: nil FS")
	}
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.config != nil {
		return nil, errors.New("profile: Static: WithConfig is for StaticProfiler; Static takes its Config as an argument")
	}
	return static(ctx, fsys, cfg, o)
}

func static(ctx context.Context, fsys FS, cfg Config, o *options) (*Profile, error) {
	if fsys == nil {
		return nil, errors.New("profile: Static: nil FS")
	}
	c := newCore(ctx, fsys, o)
	env := parseEnv(cfg.Env)
	if _, ok := env["PATH"]; !ok {
		env["PATH"] = DefaultPath
	}
	cwd := cfg.WorkingDir
	if cwd == "" || !path.IsAbs(cwd) {
		cwd = cleanAbs("/", cwd)
	}
	cwd = path.Clean(cwd)
	if _, ok := env["HOME"]; !ok {
		env["HOME"] = c.homeDir(cfg.User)
	}
	argv := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	o.logger.Debug("profile: static", "argv", argv, "cwd", cwd)
	if len(argv) == 0 || argv[0] == "" {
		c.warnf("the image config has no Entrypoint or Cmd: nothing to profile")
	} else {
		c.run(argv, env, cwd, frame{})
	}
	if c.err != nil {
		return nil, fmt.Errorf("profiling: %w", c.err)
	}
	c.finish()
	return c.profile(SourceStatic), nil
}

// parseEnv turns KEY=VALUE pairs into a map; a later pair wins.
func parseEnv(kv []string) map[string]string {
	env := make(map[string]string, len(kv))
	for _, e := range kv {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			continue
		}
		env[k] = v
	}
	return env
}

func copyEnv(env map[string]string) map[string]string {
	c := make(map[string]string, len(env))
	for k, v := range env {
		c[k] = v
	}
	return c
}

// frame bounds recursion: depth counts nested processes, interp counts the
// "#!" interpreters of the current exec.
type frame struct {
	depth  int
	interp int
	shell  bool // started by a shell, which runs ENOEXEC text files itself
}

// run starts the command argv the way a runtime or a shell does: argv[0] is
// looked up in PATH when it has no slash.
func (c *core) run(argv []string, env map[string]string, cwd string, fr frame) {
	if c.stopped() {
		return
	}
	if fr.depth > c.o.maxDepth {
		c.warnf("%s: processes nested deeper than %d levels are not followed (see WithMaxDepth)", argv[0], c.o.maxDepth)
		return
	}
	if strings.Contains(argv[0], "/") {
		c.exec(cleanAbs(cwd, argv[0]), argv, env, cwd, fr)
		return
	}
	file, ok := c.lookPath(argv[0], env["PATH"], cwd)
	if !ok {
		c.warnf("%s: command not found in PATH %s", argv[0], env["PATH"])
		return
	}
	c.exec(file, argv, env, cwd, fr)
}

// exec emulates execve(file, argv): it records the file and the links to it,
// then follows what the kernel does with it (ELF: map the interpreter;
// "#!": run the interpreter) and what the started program reads.
func (c *core) exec(file string, argv []string, env map[string]string, cwd string, fr frame) {
	if c.stopped() {
		return
	}
	r, err := c.resolve(file)
	if err != nil {
		c.warnf("%s: %v", file, imagepath.Underlying(err))
		return
	}
	if !r.Info.Mode().IsRegular() {
		c.warnf("%s: cannot be executed: it is %s", file, imagepath.Describe(r.Info.Mode()))
		return
	}
	c.recordAll(r.Links, r.Real)
	// The same program with the same arguments reads the same files again:
	// following it once is enough, and it stops scripts that run themselves.
	key := strings.Join(append([]string{r.Real, cwd, env["PATH"]}, argv...), "\x00")
	if c.execSeen[key] {
		return
	}
	c.execSeen[key] = true
	head, err := c.readHead(r.Real, binprmBufSize)
	if err != nil {
		c.warnf("%s: %v", r.Real, imagepath.Underlying(err))
		return
	}
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		info, err := c.elf.open(r.Real)
		if err != nil {
			c.warnf("%s: %v", r.Real, err)
			return
		}
		p := c.elf.loadProgram(file, r.Real, info, env, cwd)
		c.elf.startFiles(p)
		c.program(&execution{proc: p, file: file, real: r.Real, argv: argv, env: env, cwd: cwd, fr: fr})
	case bytes.HasPrefix(head, []byte("#!")):
		if fr.interp >= maxShebangDepth {
			c.warnf("%s: more than %d nested #! interpreters: the kernel would fail with ELOOP", file, maxShebangDepth)
			return
		}
		interp, arg, ok := parseShebang(head)
		if !ok {
			c.warnf("%s: malformed #! line", r.Real)
			return
		}
		nargv := []string{interp}
		if arg != "" {
			nargv = append(nargv, arg)
		}
		nargv = append(nargv, file)
		nargv = append(nargv, argv[1:]...)
		ip := cleanAbs(cwd, interp)
		if _, ok := c.resolveFile(ip); !ok {
			c.warnf("%s: interpreter %s not found in the image", file, interp)
			return
		}
		c.exec(ip, nargv, env, cwd, frame{depth: fr.depth, interp: fr.interp + 1})
	case fr.shell && !bytes.ContainsRune(head, 0):
		// A shell runs a text file that exec refuses as a script of its own.
		if src, ok := c.readText(r.Real); ok {
			c.shell.script(src, r.Real, argv[1:], copyEnv(env), cwd, frame{depth: fr.depth})
		}
	default:
		c.warnf("%s: not an ELF binary or a #! script: exec would fail with ENOEXEC", r.Real)
	}
}

// parseShebang splits a "#!" line as Linux does: the interpreter path, then
// the rest of the line as one optional argument.
func parseShebang(head []byte) (interp, arg string, ok bool) {
	line := head[2:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	s := strings.Trim(string(line), " \t\r")
	if s == "" {
		return "", "", false
	}
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], strings.Trim(s[i:], " \t"), true
	}
	return s, "", true
}

// program hands a started program to the analyzer of its kind, chosen by
// its name: shells run their script, Python, Node.js and Java load their
// code; wrappers (env, tini, gosu, ...) start another command, which the
// core follows itself.
func (c *core) program(x *execution) {
	name := path.Base(x.argv[0])
	base := path.Base(x.real)
	if name == "busybox" || (base == "busybox" && name == base) {
		if len(x.argv) < 2 {
			return
		}
		x.argv = x.argv[1:]
		name = path.Base(x.argv[0])
	}
	k := programKind(name)
	if k == kindOther {
		k = programKind(base)
	}
	switch k {
	case kindOther:
	case kindWrapper:
		if inner, nenv, ncwd := unwrap(name, x.argv, x.env, x.cwd); len(inner) > 0 {
			c.run(inner, nenv, ncwd, frame{depth: x.fr.depth + 1})
		}
	default:
		c.analyzers[k].start(x)
	}
}

type kind int

const (
	kindOther kind = iota
	kindShell
	kindPython
	kindNode
	kindJava
	kindWrapper
	kindReader
)

func programKind(name string) kind {
	switch name {
	case "sh", "bash", "dash", "ash", "ksh", "mksh", "zsh", "hush", "rbash", "posh", "yash":
		return kindShell
	case "node", "nodejs":
		return kindNode
	case "java":
		return kindJava
	case "env", "nohup", "nice", "timeout", "gosu", "su-exec", "tini", "tini-static", "dumb-init", "catatonit", "setpriv", "chroot", "stdbuf", "ionice", "taskset", "setsid":
		return kindWrapper
	}
	if pythonVersion(name) != "" || name == "python" || name == "python3" || name == "python2" {
		return kindPython
	}
	if fileReaders[name] {
		return kindReader
	}
	return kindOther
}

// unwrap returns the command a wrapper program starts, with the environment
// and working directory it gets.
func unwrap(name string, argv []string, env map[string]string, cwd string) ([]string, map[string]string, string) {
	args := argv[1:]
	// opts lists the options that take a separate argument.
	skip := func(opts string) {
		for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
			a := args[0]
			args = args[1:]
			if a == "--" {
				return
			}
			if !strings.Contains(a, "=") && strings.Contains(" "+opts+" ", " "+a+" ") && len(args) > 0 {
				args = args[1:]
			}
		}
	}
	switch name {
	case "env":
		env = copyEnv(env)
		for len(args) > 0 {
			a := args[0]
			switch {
			case a == "--":
				args = args[1:]
			case a == "-S" || a == "--split-string":
				if len(args) < 2 {
					return nil, env, cwd
				}
				args = append(strings.Fields(args[1]), args[2:]...)
				continue
			case strings.HasPrefix(a, "-S"):
				args = append(strings.Fields(a[2:]), args[1:]...)
				continue
			case strings.HasPrefix(a, "--split-string="):
				args = append(strings.Fields(strings.TrimPrefix(a, "--split-string=")), args[1:]...)
				continue
			case a == "-C" || a == "--chdir":
				if len(args) < 2 {
					return nil, env, cwd
				}
				cwd = cleanAbs(cwd, args[1])
				args = args[2:]
				continue
			case a == "-u" || a == "--unset":
				if len(args) < 2 {
					return nil, env, cwd
				}
				delete(env, args[1])
				args = args[2:]
				continue
			case a == "-i" || a == "--ignore-environment" || a == "-":
				env = map[string]string{}
				args = args[1:]
				continue
			case strings.HasPrefix(a, "-"):
				args = args[1:]
				continue
			case strings.Contains(a, "="):
				k, v, _ := strings.Cut(a, "=")
				env[k] = v
				args = args[1:]
				continue
			}
			break
		}
		if _, ok := env["PATH"]; !ok {
			// env without PATH searches confstr's default path.
			env["PATH"] = "/bin:/usr/bin"
		}
	case "nohup", "setsid":
		skip("")
	case "nice":
		skip("-n --adjustment")
	case "ionice":
		skip("-c -n -p -P -u --class --classdata")
	case "taskset":
		skip("")
		if len(args) > 0 {
			args = args[1:] // the CPU mask
		}
	case "stdbuf":
		skip("-i -o -e")
	case "timeout":
		skip("-s -k --signal --kill-after")
		if len(args) > 0 {
			args = args[1:] // the duration
		}
	case "gosu", "su-exec", "chroot":
		skip("")
		if len(args) > 0 {
			args = args[1:] // the user, or the new root
		}
		if name == "chroot" {
			return nil, env, cwd // a new root is not followed
		}
	case "setpriv":
		skip("--reuid --regid --groups --inh-caps --ambient-caps --bounding-set --securebits --pdeathsig --selinux-label --apparmor-profile --landlock-access --landlock-rule")
	case "tini", "tini-static":
		skip("-p -e")
	case "dumb-init":
		skip("-r --rewrite")
	case "catatonit":
		skip("")
	}
	return args, env, cwd
}

// homeDir finds the home directory of the config's user in /etc/passwd;
// "/root" for root or when the user is not listed, like runc.
func (c *core) homeDir(user string) string {
	u, _, _ := strings.Cut(user, ":")
	if u == "" || u == "0" || u == "root" {
		return "/root"
	}
	r, ok := c.resolveFile("/etc/passwd")
	if !ok {
		return "/"
	}
	b, ok := c.readText(r.Real)
	if !ok {
		return "/"
	}
	_, numeric := strconv.Atoi(u)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 6 {
			continue
		}
		if (numeric == nil && f[2] == u) || f[0] == u {
			if path.IsAbs(f[5]) {
				return path.Clean(f[5])
			}
		}
	}
	return "/"
}
