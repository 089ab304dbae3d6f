package optimize_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize"
)

// FuzzPlan: whatever the layered filesystem, the dedupe plan never changes
// the merged filesystem, as the independent applier of Verify applies it.
// The fuzzer drives the random layer generator, with every kind of entry
// optimizers get wrong, and the target format.
func FuzzPlan(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i*7+1, uint8(2+i%4), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64, nlayers uint8, specials bool) {
		r := rand.New(rand.NewPCG(seed1, seed2))
		ls := testimage.Random(r, allKinds(testimage.RandomOptions{Layers: 1 + int(nlayers%6), Ops: 12, MaxFileSize: 256, Specials: specials}))
		src := buildImage(t, ls)
		format := formats[(seed1^seed2)%uint64(len(formats))]
		out, _ := optimizeImage(t, src, optimize.WithFormat(format), optimize.WithProfiler(nil))
		v, err := optimize.VerifyImage(context.Background(), src, out, optimize.WithTempDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		if !v.OK {
			t.Fatalf("merged filesystem changed: %v", v.Images[0].Differences)
		}
	})
}
