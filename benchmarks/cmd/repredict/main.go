// Command repredict predicts the real-stack starts of a past `make bench`
// run again with the cost model as it is now, and prints each beside what
// the run measured: a change to the model is judged on runs it was not
// fitted to (harness.Repredict).
//
//	go run ./benchmarks/cmd/repredict [-work DIR] [-results FILE] [-within F] IMAGE...
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
	"flag"
	"fmt"
	"os"

	"github.com/coldstart-dev/coldstart/benchmarks/harness"
)

func main() {
	work := flag.String("work", "benchmarks/.work", "the bench's working directory")
	results := flag.String("results", "", "take the measured medians from this results.json (its realStack list)")
	within := flag.Float64("within", 0.15, "the relative error a prediction may have")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: repredict [-work DIR] [-results FILE] [-within F] IMAGE...")
		os.Exit(2)
	}
	ok, n, err := harness.Repredict(context.Background(), *work, *results, *within, flag.Args(), os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "repredict:", err)
		os.Exit(1)
	}
	fmt.Printf("%d of %d within ±%.0f%%\n", ok, n, 100**within)
}
