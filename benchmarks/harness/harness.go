// Package harness runs coldstart's end-to-end benchmarks: it builds real
// images from Debian packages (benchmarks/build), measures conversion
// against the reference converter, starts a real registry behind a shaping
// proxy, measures time to ready of a full pull and of lazy starts, compares
// the cost model's predictions with the measurements, and writes the report
// (RESULTS.md, results.json, SVG charts).
//
// Every figure is the median of Runs runs, with min and max, measured side
// by side in one run on one machine; speeds are quoted as ratios.
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/coldstart-dev/coldstart/benchmarks/build"
	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/shaper"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Config says what to run.
type Config struct {
	// Images to benchmark (benchmarks/images names).
	Images []string
	// Runs per figure.
	Runs int
	// Networks to measure time to ready on.
	Networks []report.Network
	// Work is the working directory (binaries, layouts, registry storage).
	Work string
	// Repo is the repository root (for go build).
	Repo   string
	Logger *slog.Logger
	// Progress receives one line per step.
	Progress io.Writer
	// RealStack, when set, also measures every image's variants on the
	// real stack (see RealStackConfig).
	RealStack *RealStackConfig
	// Podman, when set, also measures a new version of some images pulled
	// by podman after the previous one (see PodmanConfig).
	Podman *PodmanConfig
}

// Stat is a median with its min and max.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func stat(xs []float64) Stat {
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

// Conversion is one converter on one image.
type Conversion struct {
	WallSeconds Stat `json:"wallSeconds"`
	CPUSeconds  Stat `json:"cpuSeconds"`
	PeakRSSMiB  Stat `json:"peakRSSMiB"`
	// OutputBytes is the sum of the output layer sizes.
	OutputBytes int64 `json:"outputBytes"`
}

// ImageConversion compares the converters on one image.
type ImageConversion struct {
	Image      string `json:"image"`
	Layers     int    `json:"layers"`
	InputBytes int64  `json:"inputBytes"`
	// Reference is estargz.Build with its defaults; EStargz and ZstdChunked
	// coldstart with an empty cache; Warm coldstart again with a warm cache.
	Reference   Conversion `json:"reference"`
	EStargz     Conversion `json:"estargz"`
	ZstdChunked Conversion `json:"zstdChunked"`
	Warm        Conversion `json:"warm"`
	// Verify is coldstart verify of the input against the eStargz output
	// (the independent oracle, internal/oracle).
	Verify Conversion `json:"verify"`
	// DefaultCold and DefaultWarm are the command a user types, with its
	// defaults (cache on, the before/after comparison on): with an empty
	// cache, and again from the cache it filled.
	DefaultCold Conversion `json:"defaultCold"`
	DefaultWarm Conversion `json:"defaultWarm"`
	// Estimates are the estimated seconds to ready before and after
	// optimizing, per scenario and network (datacenter, cloud, edge), from
	// optimize's comparison.
	Estimates []EstimateRatio `json:"estimates"`
	// BeforeAfter is the SVG picture "coldstart optimize --report" draws
	// of the image's estimated start before and after optimizing.
	BeforeAfter string `json:"-"`
	// Ratios against the reference, of medians: > 1 is faster.
	WallSpeedup float64 `json:"wallSpeedup"`
	CPUSpeedup  float64 `json:"cpuSpeedup"`
	// SizeRatio is coldstart's eStargz output over the reference's; it
	// includes what dedupe removed, so SizeRatioNoDedupe is given too.
	SizeRatio         float64 `json:"sizeRatio"`
	SizeRatioNoDedupe float64 `json:"sizeRatioNoDedupe"`
	WarmSpeedup       float64 `json:"warmSpeedup"`
}

// EstimateRatio is one figure of optimize's comparison: Metric is
// "fullPullSeconds" or "lazyStartSeconds".
type EstimateRatio struct {
	Metric  string  `json:"metric"`
	Network string  `json:"network"`
	Before  float64 `json:"before"`
	After   float64 `json:"after"`
}

// Dedupe is what dedupe removed from one image.
type Dedupe struct {
	Image        string `json:"image"`
	WastedBytes  int64  `json:"wastedBytes"`
	RemovedBytes int64  `json:"removedBytes"`
	Verified     bool   `json:"verified"`
}

// Start is one way of starting an image on one network.
type Start struct {
	Seconds  Stat  `json:"seconds"`
	Bytes    int64 `json:"bytes"`
	Requests int   `json:"requests"`
	// Predicted is the cost model's estimate for the same scenario.
	Predicted float64 `json:"predictedSeconds"`
}

// ImageStart compares the ways of starting one image on one network.
type ImageStart struct {
	Image   string `json:"image"`
	Network string `json:"network"`
	// ProfileFiles is the number of files that must be read before ready
	// (the run profile when it could be recorded, else the static one),
	// and ProfileSource which.
	ProfileFiles  int    `json:"profileFiles"`
	ProfileSource string `json:"profileSource"`
	// FullPull of the original gzip image; ReferenceLazy the reference
	// conversion without a profile (estargz-noopt); Static and Run
	// coldstart's output with its static and its run profile.
	FullPull      Start  `json:"fullPull"`
	ReferenceLazy Start  `json:"referenceLazy"`
	Static        Start  `json:"static"`
	Run           *Start `json:"run,omitempty"`
	// LowerBound is the model's lower bound for coldstart's output.
	LowerBoundBytes   int64   `json:"lowerBoundBytes"`
	LowerBoundSeconds float64 `json:"lowerBoundSeconds"`
	// Speedup is the full pull's median over the best coldstart start's.
	Speedup float64 `json:"speedup"`
}

// Results is everything one run measured.
type Results struct {
	Date       string            `json:"date"`
	Commit     string            `json:"commit"`
	Machine    Machine           `json:"machine"`
	Runs       int               `json:"runs"`
	Conversion []ImageConversion `json:"conversion"`
	Dedupe     []Dedupe          `json:"dedupe"`
	Startup    []ImageStart      `json:"startup"`
	RealStack  []RealStart       `json:"realStack,omitempty"`
	// NodeCalibration is the real stack's node measured before RealStack,
	// whose predictions take their node-side costs from it; nil when it
	// failed (the predictions then take the defaults).
	NodeCalibration *NodeCalibration `json:"nodeCalibration,omitempty"`
	// PodmanUpdate is the podman benchmark, per image.
	PodmanUpdate []PodmanUpdate `json:"podmanUpdate,omitempty"`
	Notes        []string       `json:"notes,omitempty"`
}

// Machine describes where the figures come from.
type Machine struct {
	CPUs   int    `json:"cpus"`
	Model  string `json:"model"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	MemGiB int    `json:"memGiB"`
}

type runner struct {
	cfg       Config
	bin       string // coldstart binary
	ref       string // refconvert binary
	log       *slog.Logger
	res       *Results
	registry  *registrytest.Distribution
	layouts   map[string]string
	recipes   map[string]*build.Recipe
	profiles  map[string]*profile.Profile
	runSource map[string]string
	rates     *report.Rates
}

func (r *runner) step(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// Run runs the benchmarks and returns the results.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Runs < 1 {
		cfg.Runs = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Work, 0o755); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, log: cfg.Logger, layouts: map[string]string{}, recipes: map[string]*build.Recipe{},
		profiles: map[string]*profile.Profile{}, runSource: map[string]string{}}
	r.res = &Results{Date: time.Now().UTC().Format("2006-01-02"), Runs: cfg.Runs, Machine: machine(), Commit: commit(cfg.Repo)}
	if err := r.buildTools(ctx); err != nil {
		return nil, err
	}
	for _, name := range cfg.Images {
		r.step("building image %s", name)
		dir, rec, err := build.Image(ctx, name, build.WithLogger(r.log))
		if err != nil {
			return nil, fmt.Errorf("building image %s: %w", name, err)
		}
		r.layouts[name], r.recipes[name] = dir, rec
	}
	for _, name := range cfg.Images {
		c, err := r.conversion(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("conversion of %s: %w", name, err)
		}
		r.res.Conversion = append(r.res.Conversion, *c)
		d, err := r.dedupe(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("dedupe of %s: %w", name, err)
		}
		r.res.Dedupe = append(r.res.Dedupe, *d)
	}
	if len(cfg.Networks) > 0 {
		regDir := filepath.Join(cfg.Work, "registry")
		_ = os.RemoveAll(regDir)
		if err := os.MkdirAll(regDir, 0o755); err != nil {
			return nil, err
		}
		reg, err := registrytest.LaunchDistribution(regDir)
		if err != nil {
			return nil, err
		}
		r.registry = reg
		defer reg.Stop()
		for _, name := range cfg.Images {
			if err := r.startup(ctx, name); err != nil {
				return nil, fmt.Errorf("time to ready of %s: %w", name, err)
			}
		}
	}
	if cfg.Podman != nil {
		for _, name := range cfg.Podman.Images {
			if r.layouts[name] == "" {
				return nil, fmt.Errorf("podman: image %s is not among the images built", name)
			}
			if err := r.podmanUpdate(ctx, name); err != nil {
				return nil, fmt.Errorf("podman, %s: %w", name, err)
			}
		}
	}
	if cfg.RealStack != nil {
		if err := r.calibrateNode(ctx); err != nil {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("real stack: the node's calibration failed (%v); the predictions take the model's default node costs", err))
		}
		for _, name := range cfg.Images {
			if err := r.realStack(ctx, name); err != nil {
				return nil, fmt.Errorf("real stack, %s: %w", name, err)
			}
		}
	}
	return r.res, nil
}

func (r *runner) buildTools(ctx context.Context) error {
	binDir := filepath.Join(r.cfg.Work, "bin")
	r.bin = filepath.Join(binDir, "coldstart")
	r.ref = filepath.Join(binDir, "refconvert")
	for out, pkg := range map[string]string{r.bin: "./cmd/coldstart", r.ref: "./benchmarks/refconvert"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
		cmd.Dir = r.cfg.Repo
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return nil
}

// measured is one process run.
type measured struct {
	wall, cpu float64
	rssMiB    float64
	stdout    []byte
}

func (r *runner) exec(ctx context.Context, bin string, args ...string) (*measured, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start).Seconds()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, errb.String())
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	m := &measured{wall: wall, stdout: []byte(out.String())}
	if ru != nil {
		m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		m.rssMiB = float64(ru.Maxrss) / 1024
	}
	return m, nil
}

// convertRuns runs a converter Runs times into fresh layouts and returns
// its figures and the last output layout.
func (r *runner) convertRuns(ctx context.Context, name, label string, mk func(out string) (string, []string)) (Conversion, string, error) {
	var wall, cpu, rss []float64
	var last string
	for i := 0; i < r.cfg.Runs; i++ {
		out := filepath.Join(r.cfg.Work, "out", name, fmt.Sprintf("%s-%d", label, i))
		_ = os.RemoveAll(out)
		bin, args := mk(out)
		m, err := r.exec(ctx, bin, args...)
		if err != nil {
			return Conversion{}, "", err
		}
		wall, cpu, rss = append(wall, m.wall), append(cpu, m.cpu), append(rss, m.rssMiB)
		if last != "" {
			_ = os.RemoveAll(last)
		}
		last = out
	}
	size, err := layoutBytes(ctx, last)
	if err != nil {
		return Conversion{}, "", err
	}
	return Conversion{WallSeconds: stat(wall), CPUSeconds: stat(cpu), PeakRSSMiB: stat(rss), OutputBytes: size}, last, nil
}

func (r *runner) conversion(ctx context.Context, name string) (*ImageConversion, error) {
	src := "oci:" + r.layouts[name]
	ic := &ImageConversion{Image: name}
	img, err := readImage(ctx, src)
	if err != nil {
		return nil, err
	}
	ls, _ := img.Layers()
	ic.Layers = len(ls)
	for _, l := range ls {
		n, _ := l.Size()
		ic.InputBytes += n
	}
	r.step("%s: reference converter (estargz.Build defaults) x%d", name, r.cfg.Runs)
	ref, refOut, err := r.convertRuns(ctx, name, "reference", func(out string) (string, []string) {
		return r.ref, []string{src, "oci:" + out}
	})
	if err != nil {
		return nil, err
	}
	ic.Reference = ref
	r.step("%s: coldstart eStargz x%d", name, r.cfg.Runs)
	es, esOut, err := r.convertRuns(ctx, name, "estargz", func(out string) (string, []string) {
		return r.bin, []string{"optimize", "-q", "--compare=false", "--no-cache", src, "oci:" + out}
	})
	if err != nil {
		return nil, err
	}
	ic.EStargz = es
	r.step("%s: coldstart zstd:chunked x%d", name, r.cfg.Runs)
	if ic.ZstdChunked, _, err = r.convertRuns(ctx, name, "zstdchunked", func(out string) (string, []string) {
		return r.bin, []string{"optimize", "-q", "--compare=false", "--no-cache", "--to", "zstdchunked", src, "oci:" + out}
	}); err != nil {
		return nil, err
	}
	r.step("%s: coldstart eStargz without dedupe", name)
	nd, _, err := r.convertRuns(ctx, name, "nodedupe", func(out string) (string, []string) {
		// Every layer converted, as the reference converts them: the
		// encoder's size against the reference's, like for like.
		return r.bin, []string{"optimize", "-q", "--compare=false", "--no-cache", "--no-dedupe", "--infer-base=false", src, "oci:" + out}
	})
	if err != nil {
		return nil, err
	}
	r.step("%s: coldstart with a warm cache x%d", name, r.cfg.Runs)
	// The warm runs write where the first run wrote, as a CI re-run
	// pushes to the registry that already has the first run's blobs.
	cacheDir := filepath.Join(r.cfg.Work, "cache", name)
	_ = os.RemoveAll(cacheDir)
	warmDst := "oci:" + filepath.Join(r.cfg.Work, "out", name, "warm")
	_ = os.RemoveAll(filepath.Join(r.cfg.Work, "out", name, "warm"))
	if _, err := r.exec(ctx, r.bin, "optimize", "-q", "--compare=false", "--cache-dir", cacheDir, src, warmDst); err != nil {
		return nil, err
	}
	if ic.Warm, err = r.timeRuns(ctx, r.bin, "optimize", "-q", "--compare=false", "--cache-dir", cacheDir, src, warmDst); err != nil {
		return nil, err
	}
	ic.Warm.OutputBytes = es.OutputBytes
	r.step("%s: coldstart verify x%d", name, r.cfg.Runs)
	if ic.Verify, err = r.timeRuns(ctx, r.bin, "verify", src, "oci:"+esOut); err != nil {
		return nil, err
	}
	r.step("%s: coldstart optimize with its defaults, empty cache then warm x%d", name, r.cfg.Runs)
	if ic.DefaultCold, ic.DefaultWarm, err = r.defaultPath(ctx, name, src); err != nil {
		return nil, err
	}
	// The before/after picture a user gets: once more from the warm cache,
	// with the comparison on and written by --report (not timed).
	r.step("%s: before/after report", name)
	svg := filepath.Join(r.cfg.Work, "out", name, "before-after.svg")
	m, err := r.exec(ctx, r.bin, "optimize", "-q", "--cache-dir", cacheDir, "--report", svg, "--format", "json",
		"--network", "datacenter", "--network", "cloud", "--network", "edge", src, warmDst)
	if err != nil {
		return nil, err
	}
	var out struct {
		Comparisons []struct {
			Ratios []EstimateRatio `json:"ratios"`
		} `json:"comparisons"`
	}
	if err := json.Unmarshal(m.stdout, &out); err != nil {
		return nil, fmt.Errorf("optimize --format json: %w", err)
	}
	for _, c := range out.Comparisons {
		for _, x := range c.Ratios {
			if x.Network != "" {
				ic.Estimates = append(ic.Estimates, x)
			}
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		return nil, err
	}
	ic.BeforeAfter = string(b)
	ic.WallSpeedup = ratio(ref.WallSeconds.Median, es.WallSeconds.Median)
	ic.CPUSpeedup = ratio(ref.CPUSeconds.Median, es.CPUSeconds.Median)
	ic.SizeRatio = ratio(float64(es.OutputBytes), float64(ref.OutputBytes))
	ic.SizeRatioNoDedupe = ratio(float64(nd.OutputBytes), float64(ref.OutputBytes))
	ic.WarmSpeedup = ratio(es.WallSeconds.Median, ic.Warm.WallSeconds.Median)
	r.layouts[name+"/reference"] = refOut
	r.layouts[name+"/static"] = esOut
	return ic, nil
}

// timeRuns runs bin Runs times and returns its figures.
func (r *runner) timeRuns(ctx context.Context, bin string, args ...string) (Conversion, error) {
	var wall, cpu, rss []float64
	for i := 0; i < r.cfg.Runs; i++ {
		m, err := r.exec(ctx, bin, args...)
		if err != nil {
			return Conversion{}, err
		}
		wall, cpu, rss = append(wall, m.wall), append(cpu, m.cpu), append(rss, m.rssMiB)
	}
	return Conversion{WallSeconds: stat(wall), CPUSeconds: stat(cpu), PeakRSSMiB: stat(rss)}, nil
}

// defaultPath times "coldstart optimize -q SRC DST" as a user runs it
// (the cache and the before/after comparison on): each run with an empty
// cache into a fresh destination, then again from that cache into the
// same destination.
func (r *runner) defaultPath(ctx context.Context, name, src string) (cold, warm Conversion, err error) {
	var cw, cc, cr, ww, wc, wr []float64
	for i := 0; i < r.cfg.Runs; i++ {
		cacheDir := filepath.Join(r.cfg.Work, "cache", name+"-default")
		out := filepath.Join(r.cfg.Work, "out", name, "default")
		_ = os.RemoveAll(cacheDir)
		_ = os.RemoveAll(out)
		m, err := r.exec(ctx, r.bin, "optimize", "-q", "--cache-dir", cacheDir, src, "oci:"+out)
		if err != nil {
			return cold, warm, err
		}
		cw, cc, cr = append(cw, m.wall), append(cc, m.cpu), append(cr, m.rssMiB)
		if m, err = r.exec(ctx, r.bin, "optimize", "-q", "--cache-dir", cacheDir, src, "oci:"+out); err != nil {
			return cold, warm, err
		}
		ww, wc, wr = append(ww, m.wall), append(wc, m.cpu), append(wr, m.rssMiB)
		_ = os.RemoveAll(cacheDir)
		_ = os.RemoveAll(out)
	}
	return Conversion{WallSeconds: stat(cw), CPUSeconds: stat(cc), PeakRSSMiB: stat(cr)},
		Conversion{WallSeconds: stat(ww), CPUSeconds: stat(wc), PeakRSSMiB: stat(wr)}, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (r *runner) dedupe(ctx context.Context, name string) (*Dedupe, error) {
	src := "oci:" + r.layouts[name]
	dst := "oci:" + r.layouts[name+"/static"]
	d := &Dedupe{Image: name}
	m, err := r.exec(ctx, r.bin, "analyze", "--format", "json", src)
	if err != nil {
		return nil, err
	}
	var a struct {
		WastedBytes int64 `json:"wastedBytes"`
	}
	if err := json.Unmarshal(m.stdout, &a); err != nil {
		return nil, err
	}
	d.WastedBytes = a.WastedBytes
	// Every layer deduped, the base named by the image's annotations too
	// (by default it stays whole, for the nodes that hold it).
	m, err = r.exec(ctx, r.bin, "optimize", "-q", "--compare=false", "--no-cache", "--infer-base=false", "--format", "json", src, "oci:"+filepath.Join(r.cfg.Work, "out", name, "dedupe"))
	if err != nil {
		return nil, err
	}
	var res struct {
		RemovedBytes int64 `json:"removedBytes"`
	}
	if err := json.Unmarshal(m.stdout, &res); err != nil {
		return nil, err
	}
	d.RemovedBytes = res.RemovedBytes
	_, err = r.exec(ctx, r.bin, "verify", src, dst)
	d.Verified = err == nil
	return d, nil
}

// startup measures time to ready of one image on every network.
func (r *runner) startup(ctx context.Context, name string) error {
	src := "oci:" + r.layouts[name]
	// The files that must be present: the run profile, else the static one.
	prof, source, err := r.runProfile(ctx, name, src)
	if err != nil {
		return err
	}
	files := prof.Files
	variants := map[string]string{"original": src, "reference": "oci:" + r.layouts[name+"/reference"], "static": "oci:" + r.layouts[name+"/static"]}
	if source == profile.SourceRun {
		pf := filepath.Join(r.cfg.Work, "profiles", name+".json")
		out := filepath.Join(r.cfg.Work, "out", name, "run")
		_ = os.RemoveAll(out)
		if _, err := r.exec(ctx, r.bin, "optimize", "-q", "--compare=false", "--no-cache", "--profile", pf, src, "oci:"+out); err != nil {
			return err
		}
		variants["run"] = "oci:" + out
	}
	refs := map[string]string{}
	for v, from := range variants {
		to := r.registry.Ref("bench/" + name + ":" + v)
		if err := copyImage(ctx, from, to); err != nil {
			return fmt.Errorf("pushing %s: %w", v, err)
		}
		refs[v] = to
	}
	for _, nw := range r.cfg.Networks {
		is := ImageStart{Image: name, Network: nw.Name, ProfileFiles: len(files), ProfileSource: source}
		px, err := shaper.Start("http://"+r.registry.Host, shaper.WithRate(nw.BytesPerSecond), shaper.WithRTT(nw.RTT))
		if err != nil {
			return err
		}
		via := func(ref string) string { return strings.Replace(ref, r.registry.Host, px.Host, 1) }
		// The model's rates, measured just before the measurements they
		// predict, as "coldstart report --measure --calibrate" does: the
		// CPU and disk rates of this machine (they drift on a shared VM),
		// and the registry's time per request through the proxy.
		r.step("%s on %s: calibrating the model's rates", name, nw.Name)
		r.rates = nil
		if rates, err := report.Calibrate(ctx); err == nil {
			if probe, err := lazypull.Probe(ctx, via(refs["original"]), lazypull.DefaultProbeRequests, lazypull.WithInsecure(true)); err == nil {
				rates.Request = max(0, probe-nw.RTT).Seconds()
			}
			r.rates = emulated(rates)
		} else {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s on %s: calibration failed (%v): the model's default rates were used", name, nw.Name, err))
			r.rates = emulated(report.DefaultRates)
		}
		measure := func(v string, full bool) (Start, error) {
			var secs []float64
			var last *lazypull.Result
			for i := 0; i < r.cfg.Runs; i++ {
				var res *lazypull.Result
				var err error
				if full {
					res, err = lazypull.FullPull(ctx, via(refs[v]), lazypull.WithInsecure(true))
				} else {
					res, err = lazypull.Start(ctx, via(refs[v]), files, lazypull.WithInsecure(true))
				}
				if err != nil {
					return Start{}, err
				}
				secs = append(secs, res.Duration.Seconds())
				last = res
			}
			st := Start{Seconds: stat(secs), Bytes: last.Bytes, Requests: last.Requests}
			pred, err := r.predict(ctx, refs[v], prof, nw)
			if err == nil {
				if full {
					st.Predicted = pred.FullPullSeconds
				} else {
					st.Predicted = pred.LazyStartSeconds
				}
			}
			return st, nil
		}
		r.step("%s on %s: full pull x%d", name, nw.Name, r.cfg.Runs)
		if is.FullPull, err = measure("original", true); err != nil {
			px.Close()
			return err
		}
		r.step("%s on %s: reference eStargz lazy start", name, nw.Name)
		if is.ReferenceLazy, err = measure("reference", false); err != nil {
			px.Close()
			return err
		}
		r.step("%s on %s: coldstart (static profile) lazy start", name, nw.Name)
		if is.Static, err = measure("static", false); err != nil {
			px.Close()
			return err
		}
		best := is.Static.Seconds.Median
		if _, ok := refs["run"]; ok {
			r.step("%s on %s: coldstart (run profile) lazy start", name, nw.Name)
			st, err := measure("run", false)
			if err != nil {
				px.Close()
				return err
			}
			is.Run = &st
			best = min(best, st.Seconds.Median)
		}
		if pred, err := r.predict(ctx, refs["static"], prof, nw); err == nil {
			is.LowerBoundBytes = pred.LowerBoundBytes
			is.LowerBoundSeconds = pred.LowerBoundSeconds
		}
		is.Speedup = ratio(is.FullPull.Seconds.Median, best)
		px.Close()
		r.res.Startup = append(r.res.Startup, is)
	}
	return nil
}

// emulated returns rates for the model's predictions of lazypull's
// emulated pulls (report.Rates.BuiltInClient).
func emulated(r report.Rates) *report.Rates {
	r = r.BuiltInClient()
	return &r
}

// prediction is the model's estimate for one image on one network.
type prediction struct {
	FullPullSeconds, LazyStartSeconds, LowerBoundSeconds float64
	LowerBoundBytes                                      int64
}

func (r *runner) predict(ctx context.Context, ref string, prof *profile.Profile, nw report.Network) (*prediction, error) {
	img, err := readImage(ctx, ref)
	if err != nil {
		return nil, err
	}
	opts := []report.Option{report.WithProfile(prof), report.WithNetworks(nw)}
	if r.rates != nil {
		opts = append(opts, report.WithRates(*r.rates))
	}
	rep, err := report.Estimate(ctx, img, opts...)
	if err != nil {
		return nil, err
	}
	if len(rep.Estimates) == 0 {
		return nil, errors.New("no estimate")
	}
	e := rep.Estimates[0]
	return &prediction{FullPullSeconds: e.FullPullSeconds, LazyStartSeconds: e.LazyStartSeconds, LowerBoundSeconds: e.LowerBoundSeconds, LowerBoundBytes: rep.LowerBoundBytes}, nil
}

// runProfile records the run profile of an image (root and fanotify
// needed); without it, the static profile stands in and the results say so.
func (r *runner) runProfile(ctx context.Context, name, src string) (*profile.Profile, string, error) {
	dir := filepath.Join(r.cfg.Work, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	pf := filepath.Join(dir, name+".json")
	args := []string{"profile", "--mode", "run", "--out", pf}
	if rd := r.recipes[name].Ready; rd.Line != "" {
		args = append(args, "--wait-on-line", rd.Line)
	} else if rd.Port != 0 {
		args = append(args, "--wait-on-port", fmt.Sprint(rd.Port))
	}
	args = append(args, src)
	r.step("%s: recording the run profile", name)
	if _, err := r.exec(ctx, r.bin, args...); err != nil {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s: no run profile (%v); the static profile stands in", name, firstLine(err.Error())))
		if _, err := r.exec(ctx, r.bin, "profile", "--out", pf, src); err != nil {
			return nil, "", err
		}
	}
	f, err := os.Open(pf)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	p, err := profile.ReadJSON(f)
	if err != nil {
		return nil, "", err
	}
	return p, p.Source, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func readImage(ctx context.Context, ref string) (v1.Image, error) {
	pr, err := imageref.Parse(ref)
	if err != nil {
		return nil, err
	}
	a, err := imageref.Read(ctx, pr, imageref.WithInsecure(true))
	if err != nil {
		return nil, err
	}
	if a.Image == nil {
		return nil, fmt.Errorf("%s is an index", ref)
	}
	return a.Image, nil
}

func copyImage(ctx context.Context, from, to string) error {
	src, err := imageref.Parse(from)
	if err != nil {
		return err
	}
	dst, err := imageref.Parse(to)
	if err != nil {
		return err
	}
	a, err := imageref.Read(ctx, src, imageref.WithInsecure(true))
	if err != nil {
		return err
	}
	return imageref.Write(ctx, dst, a, imageref.WithInsecure(true))
}

func layoutBytes(ctx context.Context, dir string) (int64, error) {
	img, err := readImage(ctx, "oci:"+dir)
	if err != nil {
		return 0, err
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				m.Model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemGiB = int(uint64(si.Totalram) * uint64(si.Unit) >> 30)
	}
	return m
}

func commit(repo string) string {
	cmd := exec.Command("git", "rev-parse", "--short", "HEAD")
	cmd.Dir = repo
	b, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
