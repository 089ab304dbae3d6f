// Package podman runs the real podman (Debian's 4.3.1: containers/storage
// 1.43, containers/image 5.23) hermetically, for the tests and the
// benchmarks that judge coldstart's zstd:chunked and eStargz layers and the
// cost model's partial-pull scenario against it.
//
// A [Store] is a private podman: its own storage, run state, storage.conf,
// registries.conf, containers.conf and signature policy in a temporary
// directory, the runc runtime, cgroupfs, file events; partial pulls on or
// off. Containers run with --ulimit nofile=1024:1024 --ulimit
// nproc=1024:1024 and no network. [Store.Close] removes the containers,
// images, storage and mounts, whatever state the store is in.
//
// One thing podman 4.3 run as root keeps outside any store it is given:
// containers/image's blob info cache,
// /var/lib/containers/cache/blob-info-cache-v1.boltdb (digest pairs and
// the repositories blobs were seen in). It can only point podman at layers
// that the private store itself holds, so it changes nothing a store
// pulls; it is left as podman leaves it.
//
// A [Proxy] is a reverse proxy in front of a registry that records every
// request: the Range asked and the body bytes sent, which is what the
// registry served.
package podman

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/coldstart-dev/coldstart/internal/mountinfo"
)

// Check returns an error naming what is missing to run podman here: podman
// and runc on the PATH (apt-get install podman runc), and root (the
// private stores use overlay storage).
func Check() error {
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (apt-get install podman runc)", tool)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("podman runs as root here (private overlay storage)")
	}
	return nil
}

// Busybox returns the static /bin/busybox (apt-get install busybox-static),
// which test images run.
func Busybox() ([]byte, error) {
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("no static /bin/busybox (apt-get install busybox-static): %w", err)
	}
	if !bytes.HasPrefix(b, []byte("\x7fELF")) {
		return nil, errors.New("/bin/busybox is not an ELF binary (apt-get install busybox-static)")
	}
	return b, nil
}

// Store is a private podman.
type Store struct {
	// Dir holds everything of the store.
	Dir  string
	env  []string
	args []string
}

// NewStore writes the configuration of a private store in a new temporary
// directory under tmp ("" for the system's); pulls from registry (a
// HOST:PORT, or several separated by commas) use plain HTTP. partial turns
// containers/storage's partial pulls (enable_partial_images) on. Close
// removes it.
func NewStore(tmp, registry string, partial bool) (*Store, error) {
	dir, err := os.MkdirTemp(tmp, "coldstart-podman-")
	if err != nil {
		return nil, err
	}
	// podman refuses a run root of more than 50 characters.
	if rr := filepath.Join(dir, "runroot"); len(rr) > 50 {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("podman store in %s: the run root %s is longer than the 50 characters podman takes; use a shorter directory", tmp, rr)
	}
	s := &Store{Dir: dir}
	var regs strings.Builder
	for _, r := range strings.Split(registry, ",") {
		fmt.Fprintf(&regs, "\n[[registry]]\nlocation = %q\ninsecure = true\n", r)
	}
	files := map[string]string{
		"storage.conf": fmt.Sprintf(`[storage]
driver = "overlay"
graphroot = %q
runroot = %q

[storage.options]
pull_options = {enable_partial_images = "%t", use_hard_links = "false", ostree_repos = ""}
`, filepath.Join(dir, "root"), filepath.Join(dir, "runroot"), partial),
		"registries.conf": "unqualified-search-registries = []\n" + regs.String(),
		"containers.conf": `[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
`,
		"policy.json": `{"default":[{"type":"insecureAcceptAnything"}]}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.env = append(os.Environ(),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"TMPDIR="+filepath.Join(dir, "tmp"),
	)
	s.args = []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"),
		"--tmpdir", filepath.Join(dir, "libpod"), "--storage-driver", "overlay",
		"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
	}
	return s, nil
}

// Command returns the podman command for args on the store.
func (s *Store) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, s.args...), args...)...)
	cmd.Env = s.env
	// podman's children (conmon, the container) outlive a killed podman;
	// Close ends them through podman itself.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// Podman runs podman with args on the store and returns its output; the
// error carries the end of stderr.
func (s *Store) Podman(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	cmd := s.Command(ctx, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), e.String(), fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, LastLines(e.String(), 20))
	}
	return o.String(), e.String(), nil
}

// Pull pulls ref with debug logging and returns the log (stderr).
func (s *Store) Pull(ctx context.Context, ref string) (string, error) {
	_, e, err := s.Podman(ctx, "--log-level", "debug", "pull", "--signature-policy", filepath.Join(s.Dir, "policy.json"), ref)
	return e, err
}

// RunArgs are the arguments of every container the store runs: removed at
// exit, no network, the image as pulled, the limits these tests and
// benchmarks use.
var RunArgs = []string{"--rm", "--network", "none", "--pull", "never",
	"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}

// Files lists what a container of ref sees: find / -xdev inside it, sorted.
func (s *Store) Files(ctx context.Context, ref string) ([]string, error) {
	args := append(append([]string{"run"}, RunArgs...), "--entrypoint", "/bin/find", ref, "/", "-xdev")
	o, _, err := s.Podman(ctx, args...)
	if err != nil {
		return nil, err
	}
	out := strings.Split(strings.TrimSpace(o), "\n")
	sort.Strings(out)
	return out, nil
}

// RunUntil starts a container of ref (its own entrypoint), waits until a
// line of its output matches ready, then removes the container. It returns
// the time from the start of podman run to that line, and fails when the
// container exits first or timeout passes.
func (s *Store) RunUntil(ctx context.Context, ref string, ready *regexp.Regexp, timeout time.Duration) (time.Duration, error) {
	name := fmt.Sprintf("coldstart-%d-%d", os.Getpid(), time.Now().UnixNano())
	args := append(append([]string{"run"}, RunArgs...), "--name", name, ref)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := s.Command(rctx, args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return 0, err
	}
	pw.Close()
	found := make(chan bool, 1)
	finished := make(chan struct{})
	var out bytes.Buffer
	go func() {
		defer close(finished)
		sc := bufio.NewScanner(pr)
		ok := false
		for sc.Scan() {
			if ok {
				continue
			}
			out.WriteString(sc.Text() + "\n")
			if ready.MatchString(sc.Text()) {
				ok = true
				found <- true
			}
		}
		if !ok {
			found <- false
		}
	}()
	var ok bool
	var took time.Duration
	select {
	case ok = <-found:
		took = time.Since(start)
	case <-rctx.Done():
	}
	// The container is done with, ready or not: remove it (podman run
	// --rm then exits), then collect the command and the reader.
	_, _, rmErr := s.Podman(context.WithoutCancel(ctx), "rm", "--force", "--time", "0", name)
	waitErr := cmd.Wait()
	pr.Close()
	<-finished
	switch {
	case ok:
		return took, nil
	case rctx.Err() != nil:
		return 0, fmt.Errorf("podman run %s: no line matching %q within %v:\n%s", ref, ready, timeout, LastLines(out.String(), 20))
	}
	return 0, fmt.Errorf("podman run %s: exited before a line matched %q (%v, %v):\n%s", ref, ready, waitErr, rmErr, LastLines(out.String(), 20))
}

// Close removes the containers, images and storage of the store, then
// unmounts whatever is still mounted under it, deepest first, and deletes
// it. It is safe to call more than once.
func (s *Store) Close() error {
	if _, err := os.Stat(s.Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx := context.Background()
	_, _, _ = s.Podman(ctx, "rm", "--all", "--force", "--time", "0")
	_, _, _ = s.Podman(ctx, "rmi", "--all", "--force")
	_, _, _ = s.Podman(ctx, "system", "reset", "--force")
	var errs []error
	mounts, _ := mountinfo.UnderSelf(s.Dir)
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, fmt.Errorf("removing the podman store: %w", err))
	}
	return errors.Join(errs...)
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var (
	partialOK   = regexp.MustCompile(`Retrieved partial blob (sha256:[0-9a-f]{64})`)
	partialFail = regexp.MustCompile(`Failed to retrieve partial blob: ((?:[^"\\]|\\.)*)`)
	skipped     = regexp.MustCompile(`Skipping blob (sha256:[0-9a-f]{64}) \(already present\)`)
)

// PartialBlobs returns the digests of the blobs a pull's debug log says
// were retrieved partially.
func PartialBlobs(log string) []string { return submatches(partialOK, log) }

// PartialFailures returns why a pull's debug log says partial retrievals
// failed (each followed by a full download).
func PartialFailures(log string) []string { return submatches(partialFail, log) }

// SkippedBlobs returns the digests of the blobs a pull's debug log says
// were already present.
func SkippedBlobs(log string) []string { return submatches(skipped, log) }

func submatches(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}
