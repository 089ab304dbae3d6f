package realstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireTools: CI sets COLDSTART_REQUIRE_TOOLS=1 to turn skips for a
// missing tool into failures, as in the main module.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("COLDSTART_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s (COLDSTART_REQUIRE_TOOLS=1)", msg)
	}
	t.Skip(msg)
}

func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// zstdContainerd names the smoke test's zstd:chunked-for-containerd variant.
const zstdContainerd = "coldstart-zstd:chunked-containerd"

// TestSmoke runs the whole stack once: it builds the stack and the
// coldstart CLI, makes the demo image offline, converts it with coldstart
// optimize (defaults, and --to zstd:chunked-containerd), pushes them to the
// registry behind a 100 Mbit/s link, and starts each on a cold node until
// the ready line. The converted images must be mounted from remote
// snapshots only, with no fallback to a download; the original is a full
// overlayfs pull.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the real stack takes minutes: not in -short")
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "the real stack needs root")
	}
	if err := CheckHost(); err != nil {
		skipOrFail(t, "%v", err)
	}
	// A Ctrl-C cancels the run, so that everything is stopped and
	// removed on the way out instead of the test binary dying.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 25*time.Minute)
	defer cancel()

	mod, err := FindModule(".")
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(mod, "..", "..")
	tmp := t.TempDir()
	start := time.Now()
	bin := filepath.Join(repo, "benchmarks", ".work", "realstack", "bin")
	if err := Install(ctx, mod, bin, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("stack installed in %s", time.Since(start).Round(time.Second))
	cli := filepath.Join(tmp, "coldstart")
	goCmd(t, repo, "build", "-trimpath", "-o", cli, "./cmd/coldstart")
	demo := filepath.Join(tmp, "demo")
	goCmd(t, repo, "run", "./internal/demo/mkdemo", demo)
	t.Logf("coldstart CLI and demo image built at %s", time.Since(start).Round(time.Second))

	vs, err := Convert(ctx, Converters{Coldstart: cli}, demo, filepath.Join(tmp, "variants"),
		[]string{VariantOriginal, VariantColdstart}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// zstd:chunked for containerd: the snapshotter verifies its TOC by the
	// stargz TOC digest and prefetches up to the TOC's landmark.
	zc := filepath.Join(tmp, "variants", zstdContainerd)
	if out, err := exec.CommandContext(ctx, cli, "optimize", "-q", "--compare=false", "--no-cache", "--to", "zstd:chunked-containerd", "oci:"+demo, "oci:"+zc).CombinedOutput(); err != nil {
		t.Fatalf("optimize --to zstd:chunked-containerd: %v\n%s", err, out)
	}
	vs = append(vs, Variant{Name: zstdContainerd, Layout: zc, Lazy: true})
	res, err := Bench(ctx, Config{
		Image: "demo", Variants: vs, Nodes: []string{Cold}, RateMbit: 100, Runs: 1,
		Ready: Ready{Line: regexp.MustCompile(`^ready$`), Timeout: 60 * time.Second},
		Work:  filepath.Join(tmp, "work"), Bin: bin,
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	WriteTable(&b, res)
	t.Log(b.String())
	for _, r := range res.Runs {
		if r.Error != "" {
			t.Errorf("%s: %s", r.Variant, r.Error)
		}
	}
	for _, s := range res.Summaries {
		switch s.Variant {
		case VariantColdstart, zstdContainerd:
			if s.Mode != "remote" || s.RemoteLayers != s.Layers || s.Layers == 0 {
				t.Errorf("coldstart output: %d of %d layers remote snapshots (%s), want all: the snapshotter fell back to downloading", s.RemoteLayers, s.Layers, s.Mode)
			}
		case VariantOriginal:
			if s.RemoteLayers != 0 {
				t.Errorf("original: %d remote layers on an overlayfs pull", s.RemoteLayers)
			}
		}
	}
	for _, r := range res.Runs {
		if (r.Variant == VariantColdstart || r.Variant == zstdContainerd) && r.Error == "" && r.FUSEMounts == 0 {
			t.Errorf("coldstart output: no stargz FUSE mount while the container ran")
		}
		if r.Error == "" && r.Traffic.Requests == 0 {
			t.Errorf("%s: the registry logged no request", r.Variant)
		}
	}

	// Nothing left behind: no mount below the work directory, no
	// namespace, no process of the node.
	if m := mountsBelow(tmp); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), fmt.Sprintf("csrs-%d", os.Getpid())) {
		t.Errorf("network namespace left: %s", out)
	}
	t.Logf("smoke test took %s", time.Since(start).Round(time.Second))
}
