package build_test

import (
	"context"
	"fmt"
	"log"

	"github.com/coldstart-dev/coldstart/benchmarks/build"
)

func ExampleNames() {
	for _, name := range build.Names() {
		r, err := build.Load(name)
		if err != nil {
			log.Fatal(err)
		}
		ready := fmt.Sprintf("line %q", r.Ready.Line)
		if r.Ready.Port != 0 {
			ready = fmt.Sprintf("port %d", r.Ready.Port)
		}
		fmt.Printf("%-6s %d steps, ready on %s\n", name, len(r.Steps), ready)
	}
	// Output:
	// jvm    2 steps, ready on line "^ready: listening on "
	// messy  7 steps, ready on line "^ready: listening on "
	// node   5 steps, ready on port 3000
	// python 3 steps, ready on line "^ready: listening on "
	// shell  4 steps, ready on line "^ready$"
}

// Build (or take from the cache) the python image and run it until ready.
// Needs root and the Debian mirror, so it is compiled but not run by go test.
func ExampleImage() {
	ctx := context.Background()
	dir, recipe, err := build.Image(ctx, "python")
	if err != nil {
		log.Fatal(err)
	}
	res, err := build.Verify(ctx, dir, recipe)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("oci:"+dir, "ready after", res.Ready)
}
