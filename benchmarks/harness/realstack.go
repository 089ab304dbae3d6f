package harness

import (
	"context"
	"encoding/json"
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
}

// realStackResult is the part of the realstack command's JSON read here
// (the command is its own module: its types are not imported).
type realStackResult struct {
	RateMbit float64           `json:"rateMbit"`
	LinkMBps float64           `json:"linkMBps"`
	Versions map[string]string `json:"versions"`
	Variants []struct {
		Name   string `json:"name"`
		Layout string `json:"layout"`
		Lazy   bool   `json:"lazy"`
	} `json:"variants"`
	Summaries []struct {
		Variant string `json:"variant"`
		Node    string `json:"node"`
		Seconds Stat   `json:"seconds"`
		Bytes   int64  `json:"bytes"`
		Req     int    `json:"requests"`
		Mode    string `json:"mode"`
		OK      int    `json:"ok"`
		Runs    int    `json:"runs"`
	} `json:"summaries"`
}

// realStack measures an image's variants on the real stack by running the
// realstack command: the layouts this run made are passed as they are,
// the other variants (reference-prioritized, coldstart-keep, -auto and
// -recompress) the command converts with the same coldstart and refconvert
// binaries.
func (r *runner) realStack(ctx context.Context, name string) error {
	rs := r.cfg.RealStack
	runs := rs.Runs
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
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(r.cfg.Repo, "benchmarks", "realstack")
	cmd.Stdout, cmd.Stderr = r.cfg.Progress, r.cfg.Progress
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	var res realStackResult
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", out, err)
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
	layouts := map[string]string{}
	lazy := map[string]bool{}
	for _, v := range res.Variants {
		layouts[v.Name], lazy[v.Name] = v.Layout, v.Lazy
	}
	for _, s := range res.Summaries {
		st := RealStart{Image: name, Network: network, Node: s.Node, Variant: s.Variant, Seconds: s.Seconds.Median,
			Min: s.Seconds.Min, Max: s.Seconds.Max, Bytes: s.Bytes, Requests: s.Req, Mode: s.Mode, OK: s.OK, Runs: s.Runs}
		if prof != nil && nw.BytesPerSecond > 0 {
			var held []v1.Image
			if s.Node == "warm" && baseImg != nil {
				held = append(held, baseImg)
			}
			if p, lb, err := r.estimate(ctx, "oci:"+layouts[s.Variant], prof, nw, held); err == nil {
				st.PredictedSeconds = p.FullPullSeconds
				if lazy[s.Variant] {
					st.PredictedSeconds = p.LazyStartSeconds
					st.StartupFileBytes = lb
				}
			}
		}
		r.res.RealStack = append(r.res.RealStack, st)
	}
	return nil
}

// estimate is the model's estimate of the image ref on nw, and the
// compressed size of its start-up files (the lower bound's chunks).
func (r *runner) estimate(ctx context.Context, ref string, prof *profile.Profile, nw report.Network, held []v1.Image) (*report.NetworkEstimate, int64, error) {
	img, err := readImage(ctx, ref)
	if err != nil {
		return nil, 0, err
	}
	opts := []report.Option{report.WithProfile(prof), report.WithNetworks(nw)}
	if len(held) > 0 {
		opts = append(opts, report.WithBaseImage(held...))
	}
	// The model's default rates, as "coldstart report" uses them: its
	// node-side costs are the real stack's (r.rates, if set, are the
	// loopback emulation's, which has none).
	rep, err := report.Estimate(ctx, img, opts...)
	if err != nil {
		return nil, 0, err
	}
	if len(rep.Estimates) == 0 {
		return nil, 0, fmt.Errorf("no estimate")
	}
	var files int64
	for _, sc := range rep.Scenarios {
		if sc.Scenario == report.LowerBound {
			files = sc.OnDemandBytes
		}
	}
	return &rep.Estimates[0], files, nil
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
