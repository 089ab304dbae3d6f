//go:build linux

package run

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/profile/internal/elfhdr"
	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
	"golang.org/x/sys/unix"
)

func supported() error {
	if euid := os.Geteuid(); euid != 0 {
		return fmt.Errorf("%w: running as uid %d, not root (mounting an overlay and watching it with fanotify need root)", ErrUnsupported, euid)
	}
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY)
	if err != nil {
		return fmt.Errorf("%w: fanotify_init: %v", ErrUnsupported, err)
	}
	unix.Close(fd)
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		return fmt.Errorf("%w: /proc/self/exe: %v", ErrUnsupported, err)
	}
	return nil
}

// maxOutputTail is how many of the last output lines an error quotes.
const maxOutputTail = 5

func record(ctx context.Context, fill Filler, cfg profile.Config, o *options) (p *profile.Profile, err error) {
	cleanStale(o.tempDir, o.logger)
	ws, err := newWorkspace(o.tempDir)
	if err != nil {
		return nil, err
	}
	o.logger.Debug("profile: run workspace", "dir", ws.dir)
	defer func() {
		if rerr := ws.remove(); rerr != nil {
			o.logger.Warn("profile: run workspace not removed", "dir", ws.dir, "err", rerr)
			if err == nil {
				p, err = nil, rerr
			}
		}
	}()
	if err := fill(ctx, ws.path("lower")); err != nil {
		return nil, fmt.Errorf("writing the image's root filesystem: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lower, err := os.OpenRoot(ws.path("lower"))
	if err != nil {
		return nil, err
	}
	defer lower.Close()
	img := profile.DirFS(ws.path("lower"))
	u, err := lookupUser(img, cfg.User)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEntrypoint, err)
	}
	dir := path.Join("/", cfg.WorkingDir)
	ic := initConfig{
		Lower:    ws.path("lower"),
		Upper:    ws.path("upper"),
		Work:     ws.path("work"),
		Merged:   ws.path("merged"),
		Argv:     append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...),
		Env:      runEnv(cfg.Env, u.home, o.hostname),
		Dir:      dir,
		UID:      u.uid,
		GID:      u.gid,
		Groups:   u.groups,
		Hostname: o.hostname,
	}
	w, err := newWatcher(lower, o.maxFiles, ic.Merged)
	if err != nil {
		return nil, err
	}
	defer w.close()
	sb := &sandbox{o: o, cfg: ic, w: w}
	warnings, err := sb.run(ctx)
	if err != nil {
		return nil, err
	}
	files, execs, wwarn := w.result()
	files = addInterpreters(img, files, execs, o.logger)
	if len(files) > o.maxFiles {
		files = files[:o.maxFiles]
	}
	return &profile.Profile{Source: profile.SourceRun, Files: files, Warnings: append(warnings, wwarn...),
		ReadySeconds: sb.ready.Seconds()}, nil
}

// runEnv is the process environment: env with later duplicates winning,
// plus PATH, HOSTNAME and HOME when unset, as container runtimes add them.
func runEnv(env []string, home, hostname string) []string {
	vals := map[string]string{}
	var keys []string
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if _, seen := vals[k]; !seen {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, d := range [][2]string{{"PATH", profile.DefaultPath}, {"HOSTNAME", hostname}, {"HOME", home}} {
		if _, ok := vals[d[0]]; !ok {
			keys = append(keys, d[0])
			vals[d[0]] = d[1]
		}
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + vals[k]
	}
	return out
}

// runUser is the identity the entrypoint runs with.
type runUser struct {
	uid, gid int
	groups   []int
	home     string
}

// lookupUser resolves an image config's User ("", "name", "uid",
// "name:group", "uid:gid", ...) through the image's /etc/passwd and
// /etc/group, as container runtimes do: a name must exist; a numeric uid
// that passwd does not list gets gid 0 and home "/". Supplementary groups
// are the groups of /etc/group that list the user.
func lookupUser(fsys profile.FS, spec string) (runUser, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	passwd := readSmall(fsys, "/etc/passwd")
	u := runUser{home: "/"}
	name := ""
	found := false
	uid, numErr := strconv.Atoi(userPart)
	for _, line := range strings.Split(passwd, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 7 {
			continue
		}
		if (numErr == nil && f[2] == userPart) || (numErr != nil && f[0] == userPart) {
			pu, err1 := strconv.Atoi(f[2])
			pg, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				continue
			}
			name, u.uid, u.gid, found = f[0], pu, pg, true
			if path.IsAbs(f[5]) {
				u.home = path.Clean(f[5])
			}
			break
		}
	}
	switch {
	case !found && numErr != nil:
		return u, fmt.Errorf("user %q is not in the image's /etc/passwd", userPart)
	case !found:
		if uid < 0 {
			return u, fmt.Errorf("user %q: negative uid", userPart)
		}
		u.uid, u.gid = uid, 0
		if uid == 0 {
			u.home = "/root"
		}
	}
	groups := readSmall(fsys, "/etc/group")
	if hasGroup && groupPart != "" {
		gid, err := strconv.Atoi(groupPart)
		if err != nil {
			gid = -1
			for _, line := range strings.Split(groups, "\n") {
				f := strings.Split(line, ":")
				if len(f) >= 3 && f[0] == groupPart {
					if g, err := strconv.Atoi(f[2]); err == nil {
						gid = g
						break
					}
				}
			}
			if gid < 0 {
				return u, fmt.Errorf("group %q is not in the image's /etc/group", groupPart)
			}
		}
		if gid < 0 {
			return u, fmt.Errorf("group %q: negative gid", groupPart)
		}
		u.gid = gid
	}
	u.groups = []int{u.gid}
	if name != "" {
		for _, line := range strings.Split(groups, "\n") {
			f := strings.Split(line, ":")
			if len(f) < 4 {
				continue
			}
			g, err := strconv.Atoi(f[2])
			if err != nil || g == u.gid {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == name {
					u.groups = append(u.groups, g)
					break
				}
			}
		}
	}
	return u, nil
}

// readSmall reads at most 1 MiB of the image file name; "" when it cannot.
func readSmall(fsys profile.FS, name string) string {
	f, err := fsys.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

// addInterpreters makes sure the ELF interpreter of every program the
// process executed is listed right after the program: the kernel maps it at
// exec. fanotify normally reports it already; this covers kernels that do
// not.
func addInterpreters(fsys profile.FS, files, execs []string, logger *slog.Logger) []string {
	listed := map[string]bool{}
	for _, f := range files {
		listed[f] = true
	}
	for _, prog := range execs {
		interp := elfInterpreter(fsys, prog)
		if interp == "" || listed[interp] {
			continue
		}
		listed[interp] = true
		logger.Debug("profile: ELF interpreter not reported by fanotify: added", "program", prog, "interpreter", interp)
		at := len(files)
		for i, f := range files {
			if f == prog {
				at = i + 1
				break
			}
		}
		files = append(files[:at], append([]string{interp}, files[at:]...)...)
	}
	return files
}

// elfInterpreter returns the real path, in the image, of prog's PT_INTERP
// when it is a regular file; "" otherwise.
func elfInterpreter(fsys profile.FS, prog string) string {
	f, err := fsys.Open(prog)
	if err != nil {
		return ""
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return ""
	}
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	info, err := elfhdr.Parse(ra, fi.Size())
	if err != nil || info.Interp == "" || !path.IsAbs(info.Interp) {
		return ""
	}
	r, err := imagepath.Resolve(fsys, path.Clean(info.Interp))
	if err != nil || !r.Info.Mode().IsRegular() {
		return ""
	}
	return r.Real
}

// sandbox is one start of the entrypoint.
type sandbox struct {
	o   *options
	cfg initConfig
	w   *watcher

	cmd    *exec.Cmd
	exited chan error // the set-up process (then the entrypoint) ended
	// ready is the time from the go-ahead to exec the entrypoint to the
	// ready line or port; 0 when the run ended otherwise.
	ready time.Duration
}

// outputTail keeps the last lines the process wrote.
type outputTail struct {
	lines []string
}

func (t *outputTail) add(s string) {
	if len(t.lines) == maxOutputTail {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:maxOutputTail-1]
	}
	t.lines = append(t.lines, s)
}

func (t *outputTail) String() string {
	if len(t.lines) == 0 {
		return ""
	}
	return " (output: " + strings.Join(t.lines, " | ") + ")"
}

// run starts the sandbox, waits for the end of the run and tears it down.
// It returns the warnings of the run.
func (s *sandbox) run(ctx context.Context) ([]string, error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer ctlW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		return nil, err
	}
	defer statusR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		statusW.Close()
		return nil, err
	}
	defer outR.Close()
	s.cmd = &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{initArg0},
		Env:        []string{initEnv + "=1"},
		Dir:        "/",
		Stdout:     outW,
		Stderr:     outW,
		ExtraFiles: []*os.File{ctlR, statusW},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	s.exited = make(chan error, 1)
	started := make(chan error, 1)
	go func() {
		// The sandbox dies with this thread (Pdeathsig), so the thread is
		// kept for this goroutine alone and ends with it, after the
		// sandbox is gone.
		runtime.LockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.exited <- s.cmd.Wait()
	}()
	err = <-started
	ctlR.Close()
	statusW.Close()
	outW.Close()
	if err != nil {
		return nil, fmt.Errorf("starting the sandbox: %w", err)
	}
	pid := s.cmd.Process.Pid
	s.o.logger.Debug("profile: sandbox started", "pid", pid)

	var tail outputTail
	lineMatched := make(chan struct{})
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		s.copyOutput(outR, &tail, lineMatched)
	}()
	msgs := make(chan string, 16)
	stopMsgs := make(chan struct{})
	defer close(stopMsgs)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(statusR)
		for sc.Scan() {
			select {
			case msgs <- sc.Text():
			case <-stopMsgs:
				return
			}
		}
	}()
	// Everything below ends with the sandbox gone and the output read.
	var exitErr error
	exited := false
	finish := func() {
		if !exited {
			_ = s.cmd.Process.Kill()
			exitErr = <-s.exited
			exited = true
		}
		<-outDone
	}

	cfgJSON, err := json.Marshal(s.cfg)
	if err != nil {
		finish()
		return nil, err
	}
	if _, err := ctlW.Write(append(cfgJSON, '\n')); err != nil {
		finish()
		return nil, fmt.Errorf("starting the sandbox: %w%s", err, tail.String())
	}
	var warnings []string
	execSeen := false
	var goAt time.Time
	var startErr error
setup:
	for {
		select {
		case m, ok := <-msgs:
			switch {
			case !ok:
				break setup
			case m == msgMounted:
				if err := s.w.mark(fmt.Sprintf("/proc/%d/root%s", pid, s.cfg.Merged)); err != nil {
					finish()
					return nil, err
				}
				s.w.start()
				goAt = time.Now()
				if _, err := ctlW.Write([]byte(msgGo + "\n")); err != nil {
					startErr = fmt.Errorf("starting the sandbox: %w", err)
				}
				ctlW.Close()
			case strings.HasPrefix(m, msgWarn):
				warnings = append(warnings, strings.TrimPrefix(m, msgWarn))
			case m == msgExec:
				execSeen = true
			case strings.HasPrefix(m, msgErrUser+" "):
				startErr = fmt.Errorf("%w: %s", ErrEntrypoint, strings.TrimPrefix(m, msgErrUser+" "))
			case strings.HasPrefix(m, msgErr+" "):
				startErr = fmt.Errorf("setting up the sandbox: %s", strings.TrimPrefix(m, msgErr+" "))
			}
		case <-ctx.Done():
			finish()
			s.stopWatcher()
			return nil, ctx.Err()
		}
	}
	if startErr == nil && !execSeen {
		startErr = errors.New("the sandbox set-up process ended before starting the entrypoint")
	}
	if startErr != nil {
		finish()
		s.stopWatcher()
		if !errors.Is(startErr, ErrEntrypoint) {
			startErr = fmt.Errorf("%w%s", startErr, tail.String())
		}
		return nil, startErr
	}
	s.o.logger.Debug("profile: entrypoint started", "argv", s.cfg.Argv)

	portOpen := make(chan struct{})
	stopProbe := make(chan struct{})
	defer close(stopProbe)
	probeErr := make(chan error, 1)
	if s.o.waitPort > 0 {
		go probePort(pid, s.o.waitPort, portOpen, stopProbe, probeErr)
	}
	timer := time.NewTimer(s.o.period)
	defer timer.Stop()
	var reason string
	select {
	case exitErr = <-s.exited:
		exited = true
		reason = "exit"
	case <-timer.C:
		reason = "period"
	case <-lineMatched:
		reason = "line"
		s.ready = time.Since(goAt)
	case <-portOpen:
		reason = "port"
		s.ready = time.Since(goAt)
	case <-ctx.Done():
		finish()
		s.stopWatcher()
		return nil, ctx.Err()
	}
	finish()
	s.o.logger.Info("profile: run ended", "reason", reason)
	if err := s.stopWatcher(); err != nil {
		return nil, err
	}
	if s.w.ignoreErr != nil {
		s.o.logger.Debug("profile: fanotify ignore mark failed", "err", s.w.ignoreErr)
	}
	if reason == "exit" {
		if w := exitWarning(exitErr); w != "" {
			warnings = append(warnings, w+tail.String())
		}
	}
	if reason != "line" && s.o.waitLine != nil {
		warnings = append(warnings, fmt.Sprintf("no output line matched %q before %s", s.o.waitLine.String(), endDescription(reason, s.o.period)))
	}
	if reason != "port" && s.o.waitPort > 0 {
		msg := fmt.Sprintf("port %d accepted no connection before %s", s.o.waitPort, endDescription(reason, s.o.period))
		select {
		case err := <-probeErr:
			msg += fmt.Sprintf(" (probe failed: %v)", err)
		default:
		}
		warnings = append(warnings, msg)
	}
	return warnings, nil
}

func (s *sandbox) stopWatcher() error {
	select {
	case <-s.w.done:
		return s.w.err
	default:
	}
	if !s.w.started() {
		return nil
	}
	return s.w.finish()
}

func endDescription(reason string, period time.Duration) string {
	switch reason {
	case "exit":
		return "the process exited"
	case "period":
		return fmt.Sprintf("the end of the period (%v)", period)
	case "line":
		return "an output line matched"
	case "port":
		return "the port opened"
	}
	return "the run ended"
}

// exitWarning describes an exit that is not a success.
func exitWarning(err error) string {
	if err == nil {
		return ""
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("the entrypoint was killed by signal %v", ws.Signal())
		}
		return fmt.Sprintf("the entrypoint exited with status %d", ee.ExitCode())
	}
	return fmt.Sprintf("the entrypoint ended: %v", err)
}

// copyOutput copies the process's output to the configured writer, keeps
// its last lines and closes matched at the first line that matches.
func (s *sandbox) copyOutput(r io.Reader, tail *outputTail, matched chan struct{}) {
	br := bufio.NewReaderSize(r, 64<<10)
	var re *regexp.Regexp = s.o.waitLine
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			_, _ = s.o.output.Write(line)
			text := strings.TrimRight(string(line), "\r\n")
			tail.add(text)
			if re != nil && re.MatchString(text) {
				close(matched)
				re = nil
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// probePort tries to connect to port on the loopback interface of the
// network namespace of process pid until it succeeds or stop is closed.
func probePort(pid, port int, found chan<- struct{}, stop <-chan struct{}, failed chan<- error) {
	// This thread enters the sandbox's network namespace and is never
	// given back: it ends with this goroutine.
	runtime.LockOSThread()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		failed <- err
		return
	}
	err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	f.Close()
	if err != nil {
		failed <- fmt.Errorf("setns: %w", err)
		return
	}
	addrs := []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), net.JoinHostPort("::1", strconv.Itoa(port))}
	for {
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", a, 500*time.Millisecond)
			if err == nil {
				c.Close()
				close(found)
				return
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
