package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/faultproxy"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestMain points XDG_CACHE_HOME at a temporary directory, which also moves
// the go command's default build cache: pin GOCACHE to the real one first
// (init runs before TestMain), so that building the demo app and the CLI
// binary stays incremental.
func init() {
	if os.Getenv("GOCACHE") == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			os.Setenv("GOCACHE", filepath.Join(dir, "go-build"))
		}
	}
}

// cliBinary builds the coldstart command into a temporary directory.
func cliBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the CLI with")
	}
	bin := filepath.Join(t.TempDir(), "coldstart")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running coldstart process.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliEnv is the environment of a CLI process: its own home, Docker config,
// cache and temporary directory.
type cliEnv struct {
	bin          string
	home, tmp    string
	cache, tmpTo string // XDG_CACHE_HOME, --tmpdir
}

func newCLIEnv(t *testing.T, bin string) *cliEnv {
	t.Helper()
	base := t.TempDir()
	e := &cliEnv{bin: bin, home: filepath.Join(base, "home"), tmp: filepath.Join(base, "tmp"),
		cache: filepath.Join(base, "cache"), tmpTo: filepath.Join(base, "tmpdir")}
	for _, d := range []string{e.home, e.tmp, e.cache, e.tmpTo} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *cliEnv) start(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.home, "TMPDIR="+e.tmp, "XDG_CACHE_HOME="+e.cache, "DOCKER_CONFIG="+e.home)
	p := &proc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// await waits until ch is closed; the process ending first is a failure.
func (p *proc) await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-p.done:
		t.Fatalf("coldstart ended (%v) before %s:\n%s", p.err, what, p.out)
	case <-time.After(2 * time.Minute):
		t.Fatalf("no %s within 2 minutes:\n%s", what, p.out)
	}
}

// wait waits for the process to end and returns its exit code (-1 for a
// signal).
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("coldstart still running after 2 minutes:\n%s", p.out)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// files lists the files and directories under dir (not dir itself).
func files(t *testing.T, dir string) []string {
	t.Helper()
	var fs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			fs = append(fs, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return fs
}

// blobPresent asks the registry directly whether repo holds blob d.
func blobPresent(t *testing.T, reg *registrytest.Distribution, repo, d string) bool {
	t.Helper()
	resp, err := http.Head("http://" + reg.Host + "/v2/" + repo + "/blobs/" + d)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// outputBlobs optimizes src into a layout (the output is deterministic, so
// a push of the same run has the same blobs) and returns the image digest
// and its blobs: layers and config.
func outputBlobs(t *testing.T, src string) (digest string, blobs []string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	stdout, stderr, code := run(t, "optimize", "--no-cache", "--format", "json", "oci:"+src, "oci:"+out)
	if code != 0 {
		t.Fatalf("optimize to a layout: exit %d: %s", code, stderr)
	}
	digest = jsonDigest(t, stdout)
	for _, l := range imageLayers(t, "oci:"+out) {
		if !slices.Contains(blobs, l) {
			blobs = append(blobs, l)
		}
	}
	ref, _ := imageref.Parse("oci:" + out)
	a, err := imageref.Read(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Image.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	blobs = append(blobs, cfg.String())
	slices.Sort(blobs)
	return digest, blobs
}

// TestInterrupted kills and interrupts the coldstart binary at points of
// its work and checks what it leaves behind: a destination tag that still
// points at the old image, blobs a re-run reuses, and no temporary files.
func TestInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI and the demo image, starts a registry, kills processes")
	}
	start := time.Now()
	bin := cliBinary(t)
	t.Logf("built the CLI in %s", time.Since(start).Round(time.Millisecond))
	reg := registrytest.StartDistribution(t)
	p := faultproxy.New(t, reg.Host)
	start = time.Now()
	src := demoLayout(t)
	t.Logf("demo image in %s", time.Since(start).Round(time.Millisecond))
	want, blobs := outputBlobs(t, src)
	t.Logf("output %s, blobs %v", want, blobs)

	// kill runs optimize until the proxy holds the request rule selects,
	// SIGKILLs it there, checks that the tag still points at the old image,
	// and runs optimize again to the end. It returns the blobs that were
	// missing before the re-run.
	kill := func(t *testing.T, repo string, rule faultproxy.Rule, args ...string) (missing []string) {
		t.Helper()
		copyImage(t, "oci:"+src, reg.Ref(repo+":v1"))
		old := tagDigest(t, reg, repo+":v1")
		p.ClearRules()
		p.ResetCounts()
		g := faultproxy.NewGate()
		rule.Fault = faultproxy.Hold(g)
		p.Inject(rule)
		e := newCLIEnv(t, bin)
		proc := e.start(t, args...)
		proc.await(t, g.Reached(), fmt.Sprintf("%s request", rule.Kind))
		if err := proc.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if code := proc.wait(t); code != -1 {
			t.Errorf("killed process exit code %d", code)
		}
		p.ClearRules() // the held request is dropped once the proxy sees its client gone
		if !p.WaitIdle(time.Minute) {
			t.Fatal("the proxy is still busy a minute after the kill")
		}
		if got := tagDigest(t, reg, repo+":v1"); got != old {
			t.Fatalf("tag moved to %s after the kill (old %s)", got, old)
		}
		for _, b := range blobs {
			if !blobPresent(t, reg, repo, b) {
				missing = append(missing, b)
			}
		}
		p.ResetCounts()
		proc = e.start(t, args...)
		if code := proc.wait(t); code != 0 {
			t.Fatalf("re-run: exit %d:\n%s", code, proc.out)
		}
		if got := tagDigest(t, reg, repo+":v1"); got != want {
			t.Errorf("after the re-run the tag is %s, want %s", got, want)
		}
		// Every blob was asked for first; only the missing ones went up.
		var committed []string
		for _, r := range p.Requests() {
			if r.Kind == faultproxy.KindBlobPut && r.Status == http.StatusCreated {
				committed = append(committed, r.Target)
			}
		}
		slices.Sort(committed)
		if !slices.Equal(committed, missing) {
			t.Errorf("re-run uploaded %v, want only the missing %v", committed, missing)
		}
		if n := p.Count(faultproxy.KindBlobHead); n != len(blobs) {
			t.Errorf("re-run checked %d blobs, want %d", n, len(blobs))
		}
		if n := p.Count(faultproxy.KindManifestPut); n != 1 {
			t.Errorf("re-run put %d manifests, want 1", n)
		}
		return missing
	}

	t.Run("kill at the third blob commit", func(t *testing.T) {
		missing := kill(t, "blobkill", faultproxy.Rule{Kind: faultproxy.KindBlobPut, Nth: 3},
			"optimize", "--quiet", "oci:"+src, p.Ref("blobkill:v1"))
		if len(missing) == 0 || len(missing) == len(blobs) {
			t.Errorf("%d of %d blobs missing after the kill; want some but not all", len(missing), len(blobs))
		}
	})
	t.Run("kill at the manifest", func(t *testing.T) {
		missing := kill(t, "manikill", faultproxy.Rule{Kind: faultproxy.KindManifestPut},
			"optimize", "--quiet", "oci:"+src, p.Ref("manikill:v1"))
		if len(missing) != 0 {
			t.Errorf("blobs %v missing after a kill at the manifest", missing)
		}
	})
	t.Run("kill an overwrite of the source", func(t *testing.T) {
		ref := p.Ref("overwrite:v1")
		e := newCLIEnv(t, bin)
		if code := e.start(t, "optimize", ref, ref).wait(t); code != 2 {
			t.Errorf("DST == SRC without --overwrite: exit %d, want 2", code)
		}
		kill(t, "overwrite", faultproxy.Rule{Kind: faultproxy.KindManifestPut},
			"optimize", "--quiet", "--overwrite", ref, ref)
	})

	// Temporary files go away on every exit: an error, an interrupt while
	// reading, an interrupt while pushing, success.
	copyImage(t, "oci:"+src, reg.Ref("tmpsrc:v1"))
	broken := filepath.Join(t.TempDir(), "broken")
	copyImage(t, "oci:"+src, "oci:"+broken)
	truncateBiggestBlob(t, broken)
	corrupt, _ := layoutWith(t, fixture(t, "bad-corrupt.tar.gz"), types.OCILayer)
	for _, tc := range []struct {
		name   string
		args   func(e *cliEnv) []string
		hold   *faultproxy.Rule
		code   int
		sigint bool
	}{
		{name: "broken source", code: 1,
			args: func(e *cliEnv) []string { return []string{"oci:" + broken, "oci:" + filepath.Join(e.home, "out")} }},
		{name: "corrupt layer", code: 1,
			args: func(e *cliEnv) []string { return []string{"oci:" + corrupt, "oci:" + filepath.Join(e.home, "out")} }},
		{name: "interrupt while reading", code: 1, sigint: true, hold: &faultproxy.Rule{Kind: faultproxy.KindBlobGet, Nth: 3},
			args: func(e *cliEnv) []string { return []string{p.Ref("tmpsrc:v1"), "oci:" + filepath.Join(e.home, "out")} }},
		{name: "interrupt while pushing", code: 1, sigint: true, hold: &faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Nth: 2},
			args: func(e *cliEnv) []string { return []string{"oci:" + src, p.Ref("tmpdst:v1")} }},
		{name: "success", code: 0,
			args: func(e *cliEnv) []string { return []string{"oci:" + src, "oci:" + filepath.Join(e.home, "out")} }},
	} {
		t.Run("temp files/"+tc.name, func(t *testing.T) {
			p.ClearRules()
			e := newCLIEnv(t, bin)
			g := faultproxy.NewGate()
			if tc.hold != nil {
				r := *tc.hold
				r.Fault = faultproxy.Hold(g)
				p.Inject(r)
			}
			proc := e.start(t, append([]string{"optimize", "--quiet", "--tmpdir", e.tmpTo}, tc.args(e)...)...)
			if tc.sigint {
				proc.await(t, g.Reached(), "the held request")
				during := append(files(t, e.tmpTo), files(t, e.tmp)...)
				t.Logf("%d temporary files and directories while held", len(during))
				if strings.Contains(tc.name, "pushing") && len(during) == 0 {
					t.Error("no temporary files while pushing: the test checks nothing")
				}
				if err := proc.cmd.Process.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
			}
			code := proc.wait(t)
			p.ClearRules()
			g.Release()
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, proc.out)
			}
			if tc.sigint && !strings.Contains(proc.out.String(), "interrupt signal received") {
				t.Errorf("interrupted run says %q", proc.out)
			}
			for _, dir := range []string{e.tmp, e.tmpTo, filepath.Join(e.cache, "coldstart", "tmp")} {
				if left := files(t, dir); len(left) != 0 {
					t.Errorf("left in %s: %v", dir, left)
				}
			}
			if tc.code != 0 {
				if _, err := os.Stat(filepath.Join(e.home, "out")); !os.IsNotExist(err) {
					t.Errorf("a failed run created the destination layout (%v)", err)
				}
			}
		})
	}
	if got := tagDigest(t, reg, "tmpdst:v1"); got != "" {
		t.Errorf("interrupted push created tmpdst:v1 (%s)", got)
	}
}

// truncateBiggestBlob breaks a layout: its biggest blob loses its second
// half.
func truncateBiggestBlob(t *testing.T, dir string) {
	t.Helper()
	blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	var biggest string
	var size int64
	for _, b := range blobs {
		if fi, err := os.Stat(b); err == nil && fi.Size() > size {
			biggest, size = b, fi.Size()
		}
	}
	if err := os.Truncate(biggest, size/2); err != nil {
		t.Fatal(err)
	}
}
