package build

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/imageref"
)

// RunResult is what Verify saw.
type RunResult struct {
	// Ready is the time from starting the container to its ready condition
	// (in a chroot of the already unpacked image, so no pull: a check that
	// the recipe works, not a cold-start measurement).
	Ready time.Duration
	// Output is the end of the container's output up to that point.
	Output string
}

// Verify runs the image in layoutDir the way a container runtime would and
// waits for r's ready condition: each layer is unpacked into its own
// directory as an overlayfs lower layer (whiteouts as 0/0 devices, opaque
// directories marked), the stack is mounted with a scratch upper directory,
// and the config's entrypoint and cmd run in a chroot of it, as the
// config's user, in its working directory, with its environment, with
// /proc, /dev and the host's resolv.conf and network. The container is
// killed once ready, or after r.Ready.Timeout (ErrNotReady), and all of it
// is removed. Needs root.
func Verify(ctx context.Context, layoutDir string, r *Recipe, opts ...Option) (*RunResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	res, err := verify(ctx, o, layoutDir, r)
	if err != nil {
		return res, fmt.Errorf("running image %s (%s): %w", r.Name, layoutDir, err)
	}
	return res, nil
}

func verify(ctx context.Context, o *options, layoutDir string, r *Recipe) (res *RunResult, err error) {
	t, err := lookTools(false)
	if err != nil {
		return nil, err
	}
	ref, err := imageref.Parse("oci:" + layoutDir)
	if err != nil {
		return nil, err
	}
	a, err := imageref.Read(ctx, ref)
	if err != nil {
		return nil, err
	}
	if a.Image == nil {
		return nil, errors.New("the layout holds an index, not one image")
	}
	cf, err := a.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := a.Image.Layers()
	if err != nil {
		return nil, err
	}
	tmp, err := tempDir(o.cacheDir, "run-"+r.Name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := removeTree(tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	var lowers []string
	for i, l := range layers {
		d := filepath.Join(tmp, "layers", strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := unpack(ctx, l.Uncompressed, d); err != nil {
			digest, _ := l.Digest()
			return nil, fmt.Errorf("unpacking layer %s: %w", digest, err)
		}
		lowers = append(lowers, d)
	}
	slices.Reverse(lowers)
	upper, work, merged := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), filepath.Join(tmp, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	argv := append(slices.Clone(cf.Config.Entrypoint), cf.Config.Cmd...)
	if len(argv) == 0 {
		return nil, errors.New("the image has neither entrypoint nor cmd")
	}
	wd := cf.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	userspec := ""
	if u := cf.Config.User; u != "" && u != "root" && u != "0" && u != "0:0" {
		userspec = "--userspec=" + u
	}
	env := slices.Clone(cf.Config.Env)
	if userspec == "" && !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "HOME=") }) {
		env = append(env, "HOME=/root")
	}
	if r.Ready.Port != 0 {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Ready.Port)), time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("port %d is already in use on this host: cannot tell when the container listens on it", r.Ready.Port)
		}
	}

	script := mountScript + `U=$3 WD=$4
shift 4
exec chroot ${U:+"$U"} "$M" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$WD" "$@"`
	args := append([]string{merged, overlayOptions(lowers, upper, work), userspec, wd}, argv...)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := nsCommand(runCtx, t, script, args, env)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	tail := newTail(16 << 10)
	lineReady := make(chan struct{})
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(o.output, line)
			tail.Write([]byte(line + "\n"))
			if !signalled && r.Ready.MatchLine(line) {
				signalled = true
				close(lineReady)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	portReady := make(chan struct{})
	if r.Ready.Port != 0 {
		go pollPort(runCtx, r.Ready.Port, portReady)
	}
	timer := time.NewTimer(r.Ready.Timeout)
	defer timer.Stop()
	var ready time.Duration
	var waitErr error
	select {
	case <-lineReady:
		ready = time.Since(start)
	case <-portReady:
		ready = time.Since(start)
	case err := <-exited:
		<-scanDone
		select {
		case <-lineReady: // printed its ready line, then exited at once
			return &RunResult{Ready: time.Since(start), Output: tail.String()}, nil
		default:
		}
		return &RunResult{Output: tail.String()}, fmt.Errorf("%w: it exited (%v) first; output ends:\n%s", ErrNotReady, err, tail.String())
	case <-timer.C:
		waitErr = fmt.Errorf("%w: not ready within %s; output ends:\n%s", ErrNotReady, r.Ready.Timeout, tail.String())
	case <-ctx.Done():
		waitErr = ctx.Err()
	}
	cancel() // kills the container: its namespace's init, hence everything in it
	<-exited
	<-scanDone
	if waitErr != nil {
		return &RunResult{Output: tail.String()}, waitErr
	}
	o.logger.InfoContext(ctx, "container ready", "image", r.Name, "after", ready.Round(time.Millisecond))
	return &RunResult{Ready: ready, Output: tail.String()}, nil
}

func unpack(ctx context.Context, open func() (io.ReadCloser, error), dir string) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := extractLayer(ctx, rc, dir); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc) // to the end, so the layout reader checks the digest
	return err
}

func pollPort(ctx context.Context, port int, ready chan<- struct{}) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			close(ready)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
