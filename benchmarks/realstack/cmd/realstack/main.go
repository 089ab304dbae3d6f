// Command realstack measures time to ready of image variants on the real
// lazy-pulling stack (containerd v2, stargz-snapshotter, runc, Debian's
// docker-registry behind a tbf-shaped veth link) and prints JSON: every
// run, and per variant and node the median, min and max seconds, bytes,
// requests and whether the layers were remote snapshots.
//
// Measure given layouts:
//
//	realstack -image python -ready-line '^ready: ' -base BASE_DIR \
//	    -variant original=DIR -variant coldstart=DIR2 ...
//
// Or convert the standard variant set from the original first (exec'ing
// the coldstart CLI and the reference converter, as benchmarks/harness
// does), recording the run profile when none is given:
//
//	realstack -image python -ready-line '^ready: ' -original DIR -base BASE_DIR \
//	    -coldstart BIN -refconvert BIN [-profile RUN.json] [-variants LIST]
//
// -tables FILE.json... prints the tables of earlier results without
// measuring. The variant named "original" is pulled in full with overlayfs; every
// other one lazily through the stargz snapshotter. Needs Linux and root;
// the stack's binaries are built into -bin on first use.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coldstart-dev/coldstart/benchmarks/realstack"
)

type variantFlags []string

func (v *variantFlags) String() string     { return strings.Join(*v, ",") }
func (v *variantFlags) Set(s string) error { *v = append(*v, s); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "realstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("realstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var variants variantFlags
	image := fs.String("image", "image", "image name for the results")
	fs.Var(&variants, "variant", "NAME=DIR: an OCI layout to measure (repeatable)")
	original := fs.String("original", "", "OCI layout of the original image: convert the variants from it")
	names := fs.String("variants", strings.Join(realstack.StandardVariants, ","), "with -original: the variants to make and measure")
	base := fs.String("base", "", "OCI layout of the base image (warm nodes hold it; the keep and auto variants keep it)")
	coldstart := fs.String("coldstart", "", "the coldstart CLI, for -original")
	refconvert := fs.String("refconvert", "", "the reference converter (benchmarks/refconvert), for -original")
	profile := fs.String("profile", "", "run profile JSON for the prioritized variants (default: recorded with coldstart profile --mode run)")
	nodes := fs.String("nodes", "cold,warm", "node kinds: cold, warm")
	rate := fs.Float64("rate", 100, "the registry link's rate in Mbit/s (0: unshaped)")
	runs := fs.Int("runs", 3, "runs per variant and node")
	recipe := fs.String("recipe", "", "read the ready condition from a benchmark recipe.json (benchmarks/images/NAME/recipe.json)")
	installOnly := fs.Bool("install", false, "only build the stack's binaries into -bin, then exit")
	readyLine := fs.String("ready-line", "", "ready when a line of the container's output matches this regexp")
	readyPort := fs.Int("ready-port", 0, "ready when this TCP port accepts connections (host network)")
	readyTimeout := fs.Duration("ready-timeout", 120*time.Second, "give up on a run after this long")
	prefetch := fs.Int64("prefetch-size", realstack.DefaultPrefetchSize, "prefetch size the lazy pulls ask for when a layer has no landmark (ctr-remote rpull's)")
	work := fs.String("work", "", "working directory (default: benchmarks/.work/realstack/run below the module's repository)")
	bin := fs.String("bin", "", "directory of the stack's binaries (default: benchmarks/.work/realstack/bin), built when missing")
	out := fs.String("out", "", "write the JSON here (default: stdout)")
	table := fs.Bool("table", true, "print a Markdown table of the summaries on stderr")
	tables := fs.Bool("tables", false, "measure nothing: print the Markdown tables of the result JSON files given as arguments on stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tables {
		return printTables(fs.Args(), stdout)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ready := realstack.Ready{Port: *readyPort, Timeout: *readyTimeout}
	if *recipe != "" {
		if err := readRecipeReady(*recipe, readyLine, readyPort, &ready); err != nil {
			return err
		}
	}
	if *readyLine != "" {
		re, err := regexp.Compile(*readyLine)
		if err != nil {
			return fmt.Errorf("-ready-line: %w", err)
		}
		ready.Line = re
	}
	if ready.Line == nil && ready.Port == 0 && !*installOnly {
		return errors.New("give -ready-line, -ready-port or -recipe")
	}
	mod, err := realstack.FindModule(".")
	if err != nil {
		return err
	}
	stateDir := filepath.Join(mod, "..", ".work", "realstack")
	if *work == "" {
		*work = filepath.Join(stateDir, "run")
	}
	if *bin == "" {
		*bin = filepath.Join(stateDir, "bin")
	}
	*bin, _ = filepath.Abs(*bin)
	progress := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	progress("installing the stack into %s (go build; skipped when up to date)", *bin)
	if err := realstack.Install(ctx, mod, *bin, stderr); err != nil {
		return err
	}
	if *installOnly {
		return nil
	}

	cfg := realstack.Config{Image: *image, Base: *base, RateMbit: *rate, Runs: *runs, Ready: ready,
		PrefetchSize: *prefetch, Work: *work, Bin: *bin, Progress: stderr}
	for _, n := range strings.Split(*nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.Nodes = append(cfg.Nodes, n)
		}
	}
	for _, v := range variants {
		name, dir, ok := strings.Cut(v, "=")
		if !ok || name == "" || dir == "" {
			return fmt.Errorf("-variant %q: want NAME=DIR", v)
		}
		cfg.Variants = append(cfg.Variants, realstack.Variant{Name: name, Layout: strings.TrimPrefix(dir, "oci:"),
			Lazy: name != realstack.VariantOriginal})
	}
	if *original != "" {
		want := strings.Split(*names, ",")
		conv := realstack.Converters{Coldstart: *coldstart, Refconvert: *refconvert, Profile: *profile, Base: *base}
		if *rate > 0 {
			// The link, with no added round trip (the bench adds none).
			conv.Network = fmt.Sprintf("%gMbit,0ms", *rate)
		}
		if conv.Profile == "" && (slices.Contains(want, realstack.VariantReferencePrioritized) || slices.Contains(want, realstack.VariantColdstartRun)) {
			conv.Profile = filepath.Join(*work, "profile-"+*image+".json")
			if _, err := os.Stat(conv.Profile); err != nil {
				progress("recording the run profile (coldstart profile --mode run)")
				if err := realstack.RecordProfile(ctx, *coldstart, *original, conv.Profile, ready, stderr); err != nil {
					return err
				}
			}
		}
		progress("converting the variants")
		vs, err := realstack.Convert(ctx, conv, strings.TrimPrefix(*original, "oci:"), filepath.Join(*work, "variants", *image), want, stderr)
		if err != nil {
			return err
		}
		cfg.Variants = append(cfg.Variants, vs...)
	}
	if len(cfg.Variants) == 0 {
		return errors.New("nothing to measure: give -variant NAME=DIR or -original DIR")
	}
	// The standard variants in their order, others after them.
	rank := func(v realstack.Variant) int {
		if i := slices.Index(realstack.StandardVariants, v.Name); i >= 0 {
			return i
		}
		return len(realstack.StandardVariants)
	}
	slices.SortStableFunc(cfg.Variants, func(a, b realstack.Variant) int { return rank(a) - rank(b) })
	res, err := realstack.Bench(ctx, cfg)
	if err != nil && res == nil {
		return err
	}
	if res != nil && res.Summaries == nil {
		res.Summaries = realstack.Summarize(cfg.Image, cfg.Variants, cfg.Nodes, res.Runs)
	}
	b, merr := json.MarshalIndent(res, "", "  ")
	if merr != nil {
		return merr
	}
	b = append(b, '\n')
	if *out != "" {
		if werr := os.WriteFile(*out, b, 0o644); werr != nil {
			return werr
		}
	} else if _, werr := stdout.Write(b); werr != nil {
		return werr
	}
	if *table {
		realstack.WriteTable(stderr, res)
	}
	return err
}

// readRecipeReady reads the "ready" object of a benchmark recipe.json:
// {"line": RE, "port": N, "timeout": "60s"}.
func readRecipeReady(path string, line *string, port *int, ready *realstack.Ready) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r struct {
		Ready struct {
			Line    string `json:"line"`
			Port    int    `json:"port"`
			Timeout string `json:"timeout"`
		} `json:"ready"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if r.Ready.Line != "" {
		*line = r.Ready.Line
	}
	if r.Ready.Port != 0 {
		*port = r.Ready.Port
		ready.Port = r.Ready.Port
	}
	if r.Ready.Timeout != "" {
		d, err := time.ParseDuration(r.Ready.Timeout)
		if err != nil {
			return fmt.Errorf("%s: ready.timeout: %w", path, err)
		}
		// The recipe's timeout is for a local start; a pull over a
		// shaped link takes longer, so it only raises the default.
		ready.Timeout = max(ready.Timeout, d)
	}
	return nil
}

// printTables prints the table of each result file.
func printTables(files []string, w io.Writer) error {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var res realstack.Result
		if err := json.Unmarshal(b, &res); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		realstack.WriteTable(w, &res)
	}
	return nil
}
