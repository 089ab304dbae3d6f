// Command bench regenerates coldstart's benchmark report: it builds the
// benchmark images from Debian packages, measures conversion against the
// reference converter and time to ready on a shaped loopback registry, and
// writes benchmarks/RESULTS.md, results.json and the SVG charts.
//
//	go run ./benchmarks/cmd/bench [-quick] [-runs N] [-out DIR]
//
// It needs Linux, root (debootstrap, chroot, fanotify for run profiles) and
// Debian's docker-registry; `make bench` installs what is missing. Unless
// -realstack-rate 0 (or -quick), it also measures every image on the real
// stack with benchmarks/realstack (runc, fuse3 and skopeo from Debian), and
// unless -podman "" (or -quick), a new version of the python image pulled
// partially by podman after the old one (podman and runc from Debian).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/coldstart-dev/coldstart/benchmarks/build"
	"github.com/coldstart-dev/coldstart/benchmarks/harness"
	"github.com/coldstart-dev/coldstart/optimize/report"
)

func main() {
	quick := flag.Bool("quick", false, "a small subset for CI: the shell image, one run, the edge network")
	runs := flag.Int("runs", 3, "runs per figure (median, min, max)")
	out := flag.String("out", "benchmarks", "directory for RESULTS.md, results.json and the charts")
	work := flag.String("work", "benchmarks/.work", "working directory (images, binaries, registry storage)")
	images := flag.String("images", "", "comma-separated images (default: all; -quick: shell)")
	networks := flag.String("networks", "cloud,edge", "networks for time to ready: names or RATE,RTT, separated by ';'")
	realRate := flag.Float64("realstack-rate", 100, "also measure on the real stack (benchmarks/realstack) at this link rate in Mbit/s; 0: off (-quick: off)")
	realNodes := flag.String("realstack-nodes", "cold,warm", "node kinds for the real stack")
	realRuns := flag.String("realstack-runs", "", "runs on the real stack per image, as IMAGE=N separated by ','; other images: -runs")
	podmanImages := flag.String("podman", "python", "images whose new version (one layer changed) podman pulls partially after the old one, comma-separated; \"\": off (-quick: off)")
	podmanNet := flag.String("podman-network", harness.DefaultPodmanNetwork.Name, "the podman benchmark's shaped link, RATE,RTT")
	render := flag.Bool("render", false, "write RESULTS.md and the charts in -out again from its results.json (after a change to the writer), measuring nothing")
	flag.Parse()
	if *render {
		if err := harness.Render(*out, "make bench"); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := harness.Config{Runs: *runs, Work: *work, Progress: os.Stderr}
	cfg.Images = build.Names()
	if *images != "" {
		cfg.Images = strings.Split(*images, ",")
	}
	nets := *networks
	if *quick {
		cfg.Runs = 1
		if *images == "" {
			cfg.Images = []string{"shell"}
		}
		nets = "edge"
	}
	for _, n := range strings.Split(nets, ";") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		for _, part := range splitNetworks(n) {
			nw, err := report.ParseNetwork(part)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(2)
			}
			cfg.Networks = append(cfg.Networks, nw)
		}
	}
	if *podmanImages != "" && !*quick {
		nw, err := report.ParseNetwork(*podmanNet)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -podman-network:", err)
			os.Exit(2)
		}
		pc := &harness.PodmanConfig{Network: nw}
		for _, name := range strings.Split(*podmanImages, ",") {
			if slices.Contains(cfg.Images, name) {
				pc.Images = append(pc.Images, name)
			}
		}
		if len(pc.Images) > 0 {
			cfg.Podman = pc
		}
	}
	if *realRate > 0 && !*quick {
		imageRuns, err := parseImageRuns(*realRuns, build.Names())
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -realstack-runs:", err)
			os.Exit(2)
		}
		cfg.RealStack = &harness.RealStackConfig{RateMbit: *realRate, Nodes: strings.Split(*realNodes, ","), ImageRuns: imageRuns}
	}
	repo, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	cfg.Repo = repo
	cfg.Work, _ = filepath.Abs(cfg.Work)
	res, err := harness.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	command := "make bench"
	if *quick {
		command = "make bench-quick"
	}
	if err := harness.Write(*out, res, command); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", filepath.Join(*out, "RESULTS.md"))
}

// splitNetworks splits "cloud,edge" into names but keeps "100Mbit,50ms"
// (a custom RATE,RTT) whole.
func splitNetworks(s string) []string {
	parts := strings.Split(s, ",")
	var out []string
	for i := 0; i < len(parts); i++ {
		p := strings.TrimSpace(parts[i])
		if i+1 < len(parts) && len(p) > 0 && p[0] >= '0' && p[0] <= '9' {
			out = append(out, p+","+strings.TrimSpace(parts[i+1]))
			i++
			continue
		}
		out = append(out, p)
	}
	return out
}

// parseImageRuns parses IMAGE=N pairs separated by commas, IMAGE one of
// images.
func parseImageRuns(spec string, images []string) (map[string]int, error) {
	m := map[string]int{}
	if spec == "" {
		return m, nil
	}
	for _, kv := range strings.Split(spec, ",") {
		name, n, ok := strings.Cut(kv, "=")
		runs, err := strconv.Atoi(n)
		if !ok || name == "" || err != nil || runs < 1 {
			return nil, fmt.Errorf("%q: want IMAGE=N, N at least 1", kv)
		}
		if !slices.Contains(images, name) {
			return nil, fmt.Errorf("%q: no bench image %s (images: %s)", kv, name, strings.Join(images, ", "))
		}
		m[name] = runs
	}
	return m, nil
}
