package realstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Node kinds.
const (
	// Cold: containerd and snapshotter state removed, both restarted,
	// the page cache dropped just before the pull.
	Cold = "cold"
	// Warm: a node that holds the base image: after the same wipe and
	// restart, the base image is pulled and unpacked (with the snapshotter
	// the variant uses) and written back, the page cache is dropped, then
	// the variant is measured. The two nodes differ only in the base they
	// hold on disk: a base just pulled is not in the page cache of a node
	// that pulled it long before, and the runtime's own binaries are read
	// from disk on both.
	Warm = "warm"
)

// Variant is one encoding of the benchmarked image.
type Variant struct {
	// Name labels the variant in the results (original, coldstart, ...).
	Name string `json:"name"`
	// Layout is an OCI image layout directory holding one image.
	Layout string `json:"layout"`
	// Lazy pulls through the stargz snapshotter with its label handler;
	// otherwise the image is pulled in full and unpacked by overlayfs.
	Lazy bool `json:"lazy"`
}

// Config says what Bench measures.
type Config struct {
	// Image names the benchmarked image in the results.
	Image    string
	Variants []Variant
	// Base is the OCI layout of the base image a warm node holds;
	// required for Warm.
	Base string
	// Nodes are Cold and/or Warm.
	Nodes []string
	// RateMbit is the registry link's rate (0: unshaped).
	RateMbit float64
	// Runs per variant and node.
	Runs  int
	Ready Ready
	// PrefetchSize for the lazy pulls (DefaultPrefetchSize when 0).
	PrefetchSize int64
	// Work is the run's working directory: registry storage, the node's
	// state. Required.
	Work string
	// Bin holds the stack's binaries (see Install). Required.
	Bin string
	// Progress receives one line per step.
	Progress io.Writer
}

// RunRecord is one measured start.
type RunRecord struct {
	Variant string `json:"variant"`
	Node    string `json:"node"`
	Run     int    `json:"run"`
	RunResult
	// Traffic is what the registry served from the start of the pull
	// until the ready condition held (requests completed by then).
	Traffic Traffic `json:"traffic"`
	// LoadAvg is the machine's 1-minute load average when the run
	// started: the benchmark machines are shared.
	LoadAvg float64 `json:"loadAvg"`
	Error   string  `json:"error,omitempty"`
}

// Stat is a median with its min and max.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// NewStat summarizes xs (the median of an even count is the mean of the
// middle two).
func NewStat(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// Summary is one variant on one kind of node over its runs.
type Summary struct {
	Image   string `json:"image"`
	Variant string `json:"variant"`
	Node    string `json:"node"`
	Seconds Stat   `json:"seconds"`
	// Bytes and Requests (every request), BlobGETs and RangeGETs: medians
	// over the runs of what the registry served before ready.
	Bytes     int64 `json:"bytes"`
	Requests  int   `json:"requests"`
	BlobGETs  int   `json:"blobGETs"`
	RangeGETs int   `json:"rangeGETs"`
	// Layers, RemoteLayers and HeldLayers as in the runs (those of the
	// run with the fewest remote layers); Mode is "remote" when every
	// layer of every run was a remote snapshot or held before the pull,
	// "fallback" when a lazy pull downloaded a layer, "full" for the
	// overlayfs pulls, "none" when no run succeeded.
	Layers       int    `json:"layers"`
	RemoteLayers int    `json:"remoteLayers"`
	HeldLayers   int    `json:"heldLayers"`
	Mode         string `json:"mode"`
	// Split is the median of each part of the time to ready
	// (RunResult's PullSeconds, SnapshotSeconds, TaskSeconds and
	// StartSeconds, and the program's start to ready).
	Split Split `json:"split"`
	// OK runs of Runs; failed runs have an Error in their RunRecord.
	OK   int `json:"ok"`
	Runs int `json:"runs"`
}

// Split is where a start's time goes, in seconds: the medians of the runs.
type Split struct {
	Pull     float64 `json:"pull"`
	Snapshot float64 `json:"snapshot"`
	Task     float64 `json:"task"`
	Start    float64 `json:"start"`
	Program  float64 `json:"program"`
}

// Result is everything one Bench measured.
type Result struct {
	Image    string  `json:"image"`
	RateMbit float64 `json:"rateMbit"`
	// LinkMBps is the link's measured throughput: one GET of the largest
	// blob through the shaped link, in MB/s (10^6 bytes).
	LinkMBps float64           `json:"linkMBps"`
	Versions map[string]string `json:"versions"`
	// Variants are what was measured, with their layouts.
	Variants  []Variant   `json:"variants"`
	Summaries []Summary   `json:"summaries"`
	Runs      []RunRecord `json:"runs"`
}

func (c *Config) step(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// Bench pushes the variants (and the base) to a registry behind a link
// shaped to RateMbit, and measures each variant Runs times on each kind
// of node, interleaving the variants. A run that fails is recorded with
// its error and the others go on; Bench returns an error only when the
// setup fails. Everything it starts is stopped and removed before it
// returns, on every path.
func Bench(ctx context.Context, cfg Config) (res *Result, err error) {
	if cfg.Runs < 1 {
		cfg.Runs = 1
	}
	if len(cfg.Nodes) == 0 {
		cfg.Nodes = []string{Cold}
	}
	for _, nk := range cfg.Nodes {
		if nk != Cold && nk != Warm {
			return nil, fmt.Errorf("unknown node kind %q (cold or warm)", nk)
		}
		if nk == Warm && cfg.Base == "" {
			return nil, errors.New("a warm node needs the base image (Base)")
		}
	}
	if err := CheckHost(); err != nil {
		return nil, err
	}
	work, err := filepath.Abs(cfg.Work)
	if err != nil {
		return nil, err
	}
	res = &Result{Image: cfg.Image, RateMbit: cfg.RateMbit, Versions: Versions(cfg.Bin), Variants: cfg.Variants}
	regDir := filepath.Join(work, "registry")
	_ = os.RemoveAll(regDir)
	cfg.step("starting the registry (link %g Mbit/s)", cfg.RateMbit)
	reg, err := StartRegistry(ctx, RegistryConfig{Dir: regDir, RateMbit: cfg.RateMbit})
	if err != nil {
		return nil, err
	}
	defer func() {
		reg.Stop()
		_ = os.RemoveAll(regDir)
	}()

	refs := map[string]string{}
	repo := "bench/" + sanitize(cfg.Image)
	for _, v := range cfg.Variants {
		refs[v.Name] = reg.Ref(repo + ":" + sanitize(v.Name))
		cfg.step("pushing %s", v.Name)
		if err := Push(ctx, v.Layout, refs[v.Name]); err != nil {
			return nil, err
		}
	}
	baseRef := ""
	if cfg.Base != "" {
		baseRef = reg.Ref(repo + ":base")
		cfg.step("pushing the base image")
		if err := Push(ctx, cfg.Base, baseRef); err != nil {
			return nil, err
		}
	}
	if len(cfg.Variants) > 0 {
		if mbps, err := linkThroughput(ctx, cfg.Variants[0].Layout, reg, repo+":"+sanitize(cfg.Variants[0].Name)); err == nil {
			res.LinkMBps = mbps
			cfg.step("link throughput: %.1f MB/s", mbps)
		} else {
			cfg.step("link throughput not measured: %v", err)
		}
	}

	node, err := NewNode(NodeConfig{Bin: cfg.Bin, Dir: filepath.Join(work, "node"), Registry: reg.Host})
	if err != nil {
		return nil, err
	}
	defer func() { _ = node.Wipe() }()

	for _, nk := range cfg.Nodes {
		for i := range cfg.Runs {
			for _, v := range cfg.Variants {
				if err := ctx.Err(); err != nil {
					return res, err
				}
				rec := RunRecord{Variant: v.Name, Node: nk, Run: i + 1, LoadAvg: loadAvg()}
				if err := measureOne(ctx, &cfg, node, reg, v, refs[v.Name], baseRef, nk, i, &rec); err != nil {
					if ctx.Err() != nil {
						return res, ctx.Err()
					}
					rec.Error = err.Error()
					cfg.step("%s on a %s node, run %d: FAILED: %v", v.Name, nk, i+1, firstLine(err.Error()))
				} else {
					cfg.step("%s on a %s node, run %d: %.2f s, %.1f MB, %d requests, layers: %d remote + %d held of %d (load %.1f)",
						v.Name, nk, i+1, rec.Seconds, float64(rec.Traffic.Bytes)/1e6, rec.Traffic.Requests, rec.RemoteLayers, rec.HeldLayers, rec.Layers, rec.LoadAvg)
				}
				res.Runs = append(res.Runs, rec)
			}
		}
	}
	res.Summaries = Summarize(cfg.Image, cfg.Variants, cfg.Nodes, res.Runs)
	return res, nil
}

func measureOne(ctx context.Context, cfg *Config, node *Node, reg *Registry, v Variant, ref, baseRef, nk string, i int, rec *RunRecord) error {
	if err := node.Wipe(); err != nil {
		return fmt.Errorf("wiping the node: %w", err)
	}
	if err := node.Start(ctx); err != nil {
		return err
	}
	sn := SnapshotterOverlay
	if v.Lazy {
		sn = SnapshotterStargz
	}
	if nk == Warm {
		if err := node.Pull(ctx, baseRef, sn); err != nil {
			return fmt.Errorf("warming the node with the base image: %w", err)
		}
		// The unpacked base is written back now, not during the run.
		syscall.Sync()
	}
	if err := DropCaches(); err != nil {
		return fmt.Errorf("dropping the page cache: %w", err)
	}
	from, err := reg.LogOffset()
	if err != nil {
		return err
	}
	to := int64(-1)
	r, err := node.Run(ctx, ref, fmt.Sprintf("%s-%s-%d", sanitize(v.Name), nk, i+1), RunOptions{
		Snapshotter: sn, Lazy: v.Lazy, PrefetchSize: cfg.PrefetchSize, Ready: cfg.Ready,
		AtReady: func() { to, _ = reg.LogOffset() },
	})
	if err != nil {
		return err
	}
	rec.RunResult = *r
	if to < 0 {
		return errors.New("registry log offset at ready not read")
	}
	rec.Traffic, err = reg.Traffic(from, to)
	return err
}

// Summarize groups runs by variant and node, in the order given.
func Summarize(image string, variants []Variant, nodes []string, runs []RunRecord) []Summary {
	var out []Summary
	for _, nk := range nodes {
		for _, v := range variants {
			s := Summary{Image: image, Variant: v.Name, Node: nk, Mode: "full", RemoteLayers: -1}
			var secs, bytes, reqs, blobs, ranges []float64
			var pull, snap, task, start, prog []float64
			for _, r := range runs {
				if r.Variant != v.Name || r.Node != nk {
					continue
				}
				s.Runs++
				if r.Error != "" {
					continue
				}
				s.OK++
				secs = append(secs, r.Seconds)
				bytes = append(bytes, float64(r.Traffic.Bytes))
				reqs = append(reqs, float64(r.Traffic.Requests))
				blobs = append(blobs, float64(r.Traffic.BlobGETs))
				ranges = append(ranges, float64(r.Traffic.RangeGETs))
				pull, snap = append(pull, r.PullSeconds), append(snap, r.SnapshotSeconds)
				task, start = append(task, r.TaskSeconds), append(start, r.StartSeconds)
				prog = append(prog, r.Seconds-r.PullSeconds-r.SnapshotSeconds-r.TaskSeconds-r.StartSeconds)
				s.Layers = r.Layers
				if s.RemoteLayers < 0 || r.RemoteLayers < s.RemoteLayers {
					s.RemoteLayers, s.HeldLayers = r.RemoteLayers, r.HeldLayers
				}
			}
			if s.RemoteLayers < 0 {
				s.RemoteLayers = 0
			}
			switch {
			case s.OK == 0:
				s.Mode = "none"
			case v.Lazy && s.RemoteLayers+s.HeldLayers == s.Layers:
				s.Mode = "remote"
			case v.Lazy:
				s.Mode = "fallback"
			}
			s.Seconds = NewStat(secs)
			s.Bytes = int64(NewStat(bytes).Median)
			s.Requests = int(NewStat(reqs).Median)
			s.BlobGETs = int(NewStat(blobs).Median)
			s.RangeGETs = int(NewStat(ranges).Median)
			s.Split = Split{Pull: NewStat(pull).Median, Snapshot: NewStat(snap).Median, Task: NewStat(task).Median,
				Start: NewStat(start).Median, Program: NewStat(prog).Median}
			out = append(out, s)
		}
	}
	return out
}

// Push copies the image in an OCI layout to ref over plain HTTP with
// skopeo, keeping every blob byte-identical.
func Push(ctx context.Context, layout, ref string) error {
	out, err := exec.CommandContext(ctx, "skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
		"oci:"+layout, "docker://"+ref).CombinedOutput()
	if err != nil {
		return fmt.Errorf("skopeo copy oci:%s docker://%s: %v: %s", layout, ref, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkThroughput GETs the largest layer of the image in layout from the
// registry and returns the rate in MB/s.
func linkThroughput(ctx context.Context, layout string, reg *Registry, repoTag string) (float64, error) {
	m, err := readLayoutManifest(layout)
	if err != nil {
		return 0, err
	}
	var big ocispec.Descriptor
	for _, l := range m.Layers {
		if l.Size > big.Size {
			big = l
		}
	}
	if big.Size == 0 {
		return 0, errors.New("no layers")
	}
	repo, _, _ := strings.Cut(repoTag, ":")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+reg.Host+"/v2/"+repo+"/blobs/"+big.Digest.String(), nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET blob: %s", resp.Status)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, s)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// loadAvg is the 1-minute load average (0 when unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscanf(string(b), "%g", &l)
	return l
}
