package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/coldstart-dev/coldstart/benchmarks/build"
	"github.com/coldstart-dev/coldstart/optimize/report"
)

// Repredict predicts again, with the cost model as it is now, the real-stack
// starts of the images that a make bench run left in work (realstack/
// IMAGE.json, profiles/IMAGE.json, the base image build.BaseImage finds),
// exactly as the run predicted them, and writes each beside what was
// measured to w. With results (a results.json, "" for none) the measured
// medians are that file's: an older run's, predicted on the layouts in work,
// which must then be the same images. It returns how many predictions are
// within the relative error within, and of how many. The model takes rates,
// else the node's the run calibrated (realstack/node-rates.json), else its
// defaults.
func Repredict(ctx context.Context, work, results string, within float64, images []string, rates *report.Rates, w io.Writer) (ok, n int, err error) {
	if rates == nil {
		name := filepath.Join(work, "realstack", "node-rates.json")
		if fileExists(name) {
			r, err := report.ReadRatesFile(name)
			if err != nil {
				return 0, 0, err
			}
			rates = &r
			fmt.Fprintf(w, "node's rates: %s\n", name)
		}
	}
	var medians map[string]float64
	if results != "" {
		var res Results
		if err := readJSONFile(results, &res); err != nil {
			return 0, 0, err
		}
		medians = map[string]float64{}
		for _, s := range res.RealStack {
			medians[s.Image+"/"+s.Node+"/"+s.Variant] = s.Seconds
		}
	}
	for _, name := range images {
		var rs realStackResult
		if err := readJSONFile(filepath.Join(work, "realstack", name+".json"), &rs); err != nil {
			return ok, n, err
		}
		prof, err := readProfile(filepath.Join(work, "profiles", name+".json"))
		if err != nil {
			// The run profile the realstack command recorded itself, as
			// the run predicted with it.
			var perr error
			if prof, perr = readProfile(filepath.Join(work, "realstack", "profile-"+name+".json")); perr != nil {
				return ok, n, err
			}
		}
		baseDir, err := build.BaseImage(ctx, name)
		if err != nil {
			return ok, n, err
		}
		base, err := readImage(ctx, "oci:"+baseDir)
		if err != nil {
			return ok, n, err
		}
		nw := report.Network{Name: "link", BytesPerSecond: rs.LinkMBps * 1e6}
		variants := rs.variants()
		for _, s := range rs.Summaries {
			measured := s.Seconds.Median
			if medians != nil {
				m, found := medians[name+"/"+s.Node+"/"+s.Variant]
				if !found {
					continue
				}
				measured = m
			}
			pred, _, err := predictRealStart(ctx, variants[s.Variant], s.Node, prof, nw, base, rates)
			if err != nil {
				return ok, n, fmt.Errorf("%s %s: %w", name, s.Variant, err)
			}
			e, mark := relErr(pred, measured), "  miss"
			n++
			if e >= -within && e <= within {
				ok++
				mark = ""
			}
			fmt.Fprintf(w, "%-7s %-4s %-22s measured %6.2f s  predicted %6.2f s  %+4.0f%%%s\n", name, s.Node, s.Variant, measured, pred, 100*e, mark)
		}
	}
	return ok, n, nil
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
