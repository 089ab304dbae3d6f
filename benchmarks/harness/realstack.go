package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/coldstart-dev/coldstart/benchmarks/build"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RealStackConfig turns on the measurements on the real stack
// (benchmarks/realstack: containerd v2 + stargz-snapshotter + runc,
// Debian's docker-registry behind a tbf-shaped veth link).
type RealStackConfig struct {
	// RateMbit is the link's rate in Mbit/s. No RTT is added (netem is
	// missing on the benchmark machines).
	RateMbit float64
	// Nodes are "cold" and/or "warm".
	Nodes []string
	// Runs per variant and node (Config.Runs when 0).
	Runs int
	// ImageRuns overrides Runs for the images it names. Sub-second starts
	// spread more, relative to their median, than long ones, and cost
	// little to repeat.
	ImageRuns map[string]int
}

// RealStart is one variant of one image on one kind of node on the real
// stack: the median of the runs with min and max, what the registry
// served before ready, and the cost model's prediction.
type RealStart struct {
	Image   string  `json:"image"`
	Network string  `json:"network"`
	Node    string  `json:"node"`
	Variant string  `json:"variant"`
	Seconds float64 `json:"seconds"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Bytes   int64   `json:"bytes"`
	// Requests is every request the registry logged before ready.
	Requests int `json:"requests"`
	// Mode is "remote" (every layer a remote snapshot), "fallback" (a
	// lazy pull downloaded layers) or "full" (overlayfs pull).
	Mode             string  `json:"mode"`
	OK               int     `json:"ok"`
	Runs             int     `json:"runs"`
	PredictedSeconds float64 `json:"predictedSeconds"`
	// StartupFileBytes is the compressed size of the start-up files in
	// this variant's layers (the model's lower bound, less its metadata):
	// the least a start must fetch of them. 0 when not known.
	StartupFileBytes int64 `json:"startupFileBytes,omitempty"`
	// Split is where the time went (medians of the runs), when the
	// realstack command recorded it.
	Split *RealSplit `json:"split,omitempty"`
}

// RealSplit splits a real-stack start, in seconds: the pull; the
// container's creation (its snapshot prepared, which waits for every lazy
// layer's prefetch); the runtime's part (the task created and started);
// and the program's own start to ready.
type RealSplit struct {
	Pull     float64 `json:"pull"`
	Snapshot float64 `json:"snapshot"`
	Runtime  float64 `json:"runtime"`
	Program  float64 `json:"program"`
}

// realStackResult is the part of the realstack command's JSON read here
// (the command is its own module: its types are not imported).
type realStackResult struct {
	RateMbit  float64           `json:"rateMbit"`
	LinkMBps  float64           `json:"linkMBps"`
	Versions  map[string]string `json:"versions"`
	Variants  []realVariant     `json:"variants"`
	Summaries []struct {
		Variant string `json:"variant"`
		Node    string `json:"node"`
		Seconds Stat   `json:"seconds"`
		Bytes   int64  `json:"bytes"`
		Req     int    `json:"requests"`
		Mode    string `json:"mode"`
		OK      int    `json:"ok"`
		Runs    int    `json:"runs"`
		Split   *struct {
			Pull     float64 `json:"pull"`
			Snapshot float64 `json:"snapshot"`
			Task     float64 `json:"task"`
			Start    float64 `json:"start"`
			Program  float64 `json:"program"`
		} `json:"split"`
	} `json:"summaries"`
}

// realVariant is one variant of a realstack result: its OCI layout and
// whether the real stack mounts it lazily.
type realVariant struct {
	Name   string `json:"name"`
	Layout string `json:"layout"`
	Lazy   bool   `json:"lazy"`
}

// realStack measures an image's variants on the real stack by running the
// realstack command: the layouts this run made are passed as they are,
// the other variants (reference-prioritized, coldstart-keep, -auto and
// -recompress) the command converts with the same coldstart and refconvert
// binaries.
func (r *runner) realStack(ctx context.Context, name string) error {
	rs := r.cfg.RealStack
	runs := rs.Runs
	if n := rs.ImageRuns[name]; n > 0 {
		runs = n
	}
	if runs < 1 {
		runs = r.cfg.Runs
	}
	base, err := build.BaseImage(ctx, name, build.WithLogger(r.log))
	if err != nil {
		return err
	}
	work := filepath.Join(r.cfg.Work, "realstack")
	out := filepath.Join(work, name+".json")
	args := []string{"run", "./cmd/realstack", "-image", name, "-rate", fmt.Sprint(rs.RateMbit), "-runs", fmt.Sprint(runs),
		"-nodes", strings.Join(rs.Nodes, ","), "-work", work, "-out", out, "-table=false",
		"-base", base, "-original", r.layouts[name], "-coldstart", r.bin, "-refconvert", r.ref,
		"-variant", "reference=" + r.layouts[name+"/reference"], "-variant", "coldstart=" + r.layouts[name+"/static"]}
	converted := []string{"original", "reference-prioritized", "coldstart-keep", "coldstart-auto", "coldstart-recompress"}
	pf := filepath.Join(r.cfg.Work, "profiles", name+".json")
	prof, perr := readProfile(pf)
	if perr == nil && prof.Source == profile.SourceRun {
		args = append(args, "-profile", pf)
		if run := filepath.Join(r.cfg.Work, "out", name, "run"); fileExists(filepath.Join(run, "index.json")) {
			args = append(args, "-variant", "coldstart-run="+run)
		} else {
			converted = append(converted, "coldstart-run")
		}
	} else {
		converted = append(converted, "coldstart-run")
	}
	args = append(args, "-variants", strings.Join(converted, ","))
	if rd := r.recipes[name].Ready; rd.Line != "" {
		args = append(args, "-ready-line", rd.Line)
	} else {
		args = append(args, "-ready-port", fmt.Sprint(rd.Port))
	}
	r.step("%s: real stack, %g Mbit/s, %s nodes, x%d (benchmarks/realstack)", name, rs.RateMbit, strings.Join(rs.Nodes, "+"), runs)
	res, err := r.runRealStack(ctx, args, out)
	if err != nil {
		return err
	}
	network := fmt.Sprintf("%gMbit", res.RateMbit)
	r.res.Notes = append(r.res.Notes, fmt.Sprintf("real stack, %s: link %g Mbit/s (tbf), measured %.1f MB/s, no added RTT; %s",
		name, res.RateMbit, res.LinkMBps, versions(res.Versions)))
	// The model's estimate for the same scenario: this link's measured
	// rate, no RTT, the run profile (else the static one), the base held
	// on a warm node.
	nw := report.Network{Name: network, BytesPerSecond: res.LinkMBps * 1e6}
	if prof == nil {
		// The run profile the command recorded itself.
		prof, _ = readProfile(filepath.Join(work, "profile-"+name+".json"))
	}
	baseImg, _ := readImage(ctx, "oci:"+base)
	variants := res.variants()
	for _, s := range res.Summaries {
		st := RealStart{Image: name, Network: network, Node: s.Node, Variant: s.Variant, Seconds: s.Seconds.Median,
			Min: s.Seconds.Min, Max: s.Seconds.Max, Bytes: s.Bytes, Requests: s.Req, Mode: s.Mode, OK: s.OK, Runs: s.Runs}
		if sp := s.Split; sp != nil {
			st.Split = &RealSplit{Pull: sp.Pull, Snapshot: sp.Snapshot, Runtime: sp.Task + sp.Start, Program: sp.Program}
		}
		if prof != nil && nw.BytesPerSecond > 0 {
			if p, lb, err := predictRealStart(ctx, variants[s.Variant], s.Node, prof, nw, baseImg, r.nodeRates()); err == nil {
				st.PredictedSeconds = p
				if variants[s.Variant].Lazy {
					st.StartupFileBytes = lb
				}
			}
		}
		r.res.RealStack = append(r.res.RealStack, st)
	}
	return nil
}

// runRealStack runs the realstack command (go run ./cmd/realstack args in
// benchmarks/realstack) and reads the JSON it wrote to out.
func (r *runner) runRealStack(ctx context.Context, args []string, out string) (*realStackResult, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(r.cfg.Repo, "benchmarks", "realstack")
	cmd.Stdout, cmd.Stderr = r.cfg.Progress, r.cfg.Progress
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	var res realStackResult
	if err := readJSONFile(out, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// nodeRates are the node's calibrated rates, nil when not calibrated.
func (r *runner) nodeRates() *report.Rates {
	if r.res.NodeCalibration == nil {
		return nil
	}
	return &r.res.NodeCalibration.Rates
}

// variants indexes the result's variants by name.
func (res *realStackResult) variants() map[string]realVariant {
	m := map[string]realVariant{}
	for _, v := range res.Variants {
		m[v.Name] = v
	}
	return m
}

// predictRealStart is the model's time to ready for variant v on a node of
// the real stack: on nw, with the profile, holding base on a warm node (nil:
// none); a full pull, or a lazy start for a lazy variant. It also returns
// the compressed size of the start-up files (the lower bound's chunks).
func predictRealStart(ctx context.Context, v realVariant, node string, prof *profile.Profile, nw report.Network, base v1.Image, rates *report.Rates) (float64, int64, error) {
	img, err := readImage(ctx, "oci:"+v.Layout)
	if err != nil {
		return 0, 0, err
	}
	opts := []report.Option{report.WithProfile(prof), report.WithNetworks(nw)}
	if node == "warm" && base != nil {
		opts = append(opts, report.WithBaseImage(base))
	}
	if rates != nil {
		opts = append(opts, report.WithRates(*rates))
	}
	// The node's calibrated rates (calibrateNode), else the model's default
	// rates, as "coldstart report" uses them (r.rates, if set, are the
	// loopback emulation's, which has no node-side costs).
	rep, err := report.Estimate(ctx, img, opts...)
	if err != nil {
		return 0, 0, err
	}
	if len(rep.Estimates) == 0 {
		return 0, 0, fmt.Errorf("no estimate")
	}
	var files int64
	for _, sc := range rep.Scenarios {
		if sc.Scenario == report.LowerBound {
			files = sc.OnDemandBytes
		}
	}
	e := rep.Estimates[0]
	if v.Lazy {
		return e.LazyStartSeconds, files, nil
	}
	return e.FullPullSeconds, files, nil
}

func readProfile(path string) (*profile.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return profile.ReadJSON(f)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func versions(v map[string]string) string {
	var parts []string
	for _, k := range []string{"containerd", "stargz-snapshotter", "runc", "docker-registry"} {
		if v[k] != "" {
			parts = append(parts, k+" "+strings.TrimPrefix(strings.TrimPrefix(v[k], "runc version "), "docker-registry "))
		}
	}
	return strings.Join(parts, ", ")
}
