// Command repredict predicts the real-stack starts of a past `make bench`
// run again with the cost model as it is now, and prints each beside what
// the run measured: a change to the model is judged on runs it was not
// fitted to.
//
//	go run ./benchmarks/cmd/repredict [-work DIR] [-results FILE] [-within F] IMAGE...
//
// It reads what the run left in the work directory: realstack/IMAGE.json
// (the variants' layouts, the link's measured rate and the medians),
// profiles/IMAGE.json (the run profile) and the base image the warm node
// held (build.BaseImage, as make bench finds it). With -results, the medians come from that results.json instead (an
// older run's, from git), predicted on the layouts of the work directory:
// those must be the same images, which holds for every variant whose
// converter has not changed since.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coldstart-dev/coldstart/benchmarks/build"
	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// realStack is the part of the realstack command's JSON read here.
type realStack struct {
	LinkMBps float64 `json:"linkMBps"`
	Variants []struct {
		Name   string `json:"name"`
		Layout string `json:"layout"`
		Lazy   bool   `json:"lazy"`
	} `json:"variants"`
	Summaries []struct {
		Variant string `json:"variant"`
		Node    string `json:"node"`
		Seconds struct {
			Median float64 `json:"median"`
		} `json:"seconds"`
	} `json:"summaries"`
}

func main() {
	work := flag.String("work", "benchmarks/.work", "the bench's working directory")
	results := flag.String("results", "", "take the measured medians from this results.json (its realStack list)")
	within := flag.Float64("within", 0.15, "the error a prediction may have")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: repredict [-work DIR] [-results FILE] [-within F] IMAGE...")
		os.Exit(2)
	}
	if err := run(context.Background(), *work, *results, *within, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "repredict:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, work, results string, within float64, images []string) error {
	var medians map[string]float64
	if results != "" {
		m, err := readMedians(results)
		if err != nil {
			return err
		}
		medians = m
	}
	n, ok := 0, 0
	for _, name := range images {
		var rs realStack
		if err := readJSON(filepath.Join(work, "realstack", name+".json"), &rs); err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(work, "profiles", name+".json"))
		if err != nil {
			return err
		}
		prof, err := profile.ReadJSON(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		baseDir, err := build.BaseImage(ctx, name)
		if err != nil {
			return err
		}
		base, err := readImage(ctx, "oci:"+baseDir)
		if err != nil {
			return err
		}
		layouts, lazy := map[string]string{}, map[string]bool{}
		for _, v := range rs.Variants {
			layouts[v.Name], lazy[v.Name] = v.Layout, v.Lazy
		}
		nw := report.Network{Name: "link", BytesPerSecond: rs.LinkMBps * 1e6}
		for _, s := range rs.Summaries {
			measured := s.Seconds.Median
			if medians != nil {
				m, found := medians[name+"/"+s.Node+"/"+s.Variant]
				if !found {
					continue
				}
				measured = m
			}
			img, err := readImage(ctx, "oci:"+layouts[s.Variant])
			if err != nil {
				return err
			}
			opts := []report.Option{report.WithProfile(prof), report.WithNetworks(nw)}
			if s.Node == "warm" {
				opts = append(opts, report.WithBaseImage(base))
			}
			rep, err := report.Estimate(ctx, img, opts...)
			if err != nil {
				return fmt.Errorf("%s %s: %w", name, s.Variant, err)
			}
			pred := rep.Estimates[0].FullPullSeconds
			if lazy[s.Variant] {
				pred = rep.Estimates[0].LazyStartSeconds
			}
			e := pred/measured - 1
			mark := ""
			n++
			if e >= -within && e <= within {
				ok++
			} else {
				mark = "  miss"
			}
			fmt.Printf("%-7s %-4s %-22s measured %6.2f s  predicted %6.2f s  %+4.0f%%%s\n", name, s.Node, s.Variant, measured, pred, 100*e, mark)
		}
	}
	fmt.Printf("%d of %d within ±%.0f%%\n", ok, n, 100*within)
	return nil
}

func readMedians(path string) (map[string]float64, error) {
	var res struct {
		RealStack []struct {
			Image   string  `json:"image"`
			Node    string  `json:"node"`
			Variant string  `json:"variant"`
			Seconds float64 `json:"seconds"`
		} `json:"realStack"`
	}
	if err := readJSON(path, &res); err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, s := range res.RealStack {
		m[s.Image+"/"+s.Node+"/"+s.Variant] = s.Seconds
	}
	return m, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readImage(ctx context.Context, ref string) (v1.Image, error) {
	r, err := imageref.Parse(ref)
	if err != nil {
		return nil, err
	}
	a, err := imageref.Read(ctx, r)
	if err != nil {
		return nil, err
	}
	if a.Image == nil {
		return nil, fmt.Errorf("%s: not a single image", ref)
	}
	return a.Image, nil
}
