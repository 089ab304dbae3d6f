// Command repredict predicts the real-stack starts of a past `make bench`
// run again with the cost model as it is now, and prints each beside what
// the run measured: a change to the model is judged on runs it was not
// fitted to (harness.Repredict).
//
//	go run ./benchmarks/cmd/repredict [-work DIR] [-results FILE] [-within F] [-rates FILE | -calibrate | -default-rates] IMAGE...
//
// It reads what the run left in the work directory (realstack/IMAGE.json,
// profiles/IMAGE.json) and the base image the warm node held. With
// -results, the measured medians come from that results.json instead (an
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

	"github.com/coldstart-dev/coldstart/benchmarks/harness"
	"github.com/coldstart-dev/coldstart/optimize/report"
)

func main() {
	work := flag.String("work", "benchmarks/.work", "the bench's working directory")
	results := flag.String("results", "", "take the measured medians from this results.json (its realStack list)")
	within := flag.Float64("within", 0.15, "the relative error a prediction may have")
	ratesFile := flag.String("rates", "", "predict with these rates (a JSON file of report.Rates, as report --format json prints them) instead of the node's the run calibrated (realstack/node-rates.json) or the defaults")
	defaults := flag.Bool("default-rates", false, "predict with the model's default rates")
	calibrate := flag.Bool("calibrate", false, "predict with the rates report.Calibrate measures on this machine")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: repredict [-work DIR] [-results FILE] [-within F] IMAGE...")
		os.Exit(2)
	}
	ctx := context.Background()
	var rates *report.Rates
	switch {
	case btoi(*ratesFile != "")+btoi(*calibrate)+btoi(*defaults) > 1:
		fmt.Fprintln(os.Stderr, "repredict: -rates, -calibrate and -default-rates exclude each other")
		os.Exit(2)
	case *defaults:
		r := report.DefaultRates
		rates = &r
	case *ratesFile != "":
		r, err := report.ReadRatesFile(*ratesFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "repredict:", err)
			os.Exit(1)
		}
		rates = &r
	case *calibrate:
		r, err := report.Calibrate(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "repredict:", err)
			os.Exit(1)
		}
		b, _ := json.Marshal(r)
		fmt.Printf("calibrated rates: %s\n", b)
		rates = &r
	}
	ok, n, err := harness.Repredict(ctx, *work, *results, *within, flag.Args(), rates, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "repredict:", err)
		os.Exit(1)
	}
	fmt.Printf("%d of %d within ±%.0f%%\n", ok, n, 100**within)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
