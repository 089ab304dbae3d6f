package demo_test

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/demo"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
)

// TestDemoPaysOff: the demo shows what coldstart is for. Optimized, its
// lazy start takes at most 0.7 of its cold start before on every named
// network (the container's own start, the same before and after, is much
// of it on fast ones) and at most 0.35 on edge, and its full pull is
// faster too; nothing needs explaining.
func TestDemoPaysOff(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and optimizes the 42 MiB demo image")
	}
	// A stand-in for the 6 MiB demoapp binary, so that no compiler runs.
	bin := make([]byte, 6<<20)
	_, _ = rand.NewChaCha8(sha256.Sum256([]byte("demoapp"))).Read(bin)
	path := filepath.Join(t.TempDir(), "demoapp")
	if err := os.WriteFile(path, append([]byte("\x7fELF"), bin...), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	img, err := demo.Build(ctx, demo.WithBinary(path))
	if err != nil {
		t.Fatal(err)
	}
	res, err := optimize.Image(ctx, img, optimize.WithProfiler(profile.StaticProfiler()), optimize.WithEstimate(true))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	c := res.Images[0].Estimate
	if c == nil {
		t.Fatal("no estimate")
	}
	for i, eb := range c.Before.Estimates {
		ea := c.After.Estimates[i]
		most := 0.7
		if eb.Network == "edge" {
			most = 0.35
		}
		if ea.LazyStartSeconds > eb.LazyStartSeconds*most || ea.FullPullSeconds >= eb.FullPullSeconds {
			t.Errorf("%s: lazy start %.3f s -> %.3f s, full pull %.3f s -> %.3f s: optimizing does not pay off", eb.Network,
				eb.LazyStartSeconds, ea.LazyStartSeconds, eb.FullPullSeconds, ea.FullPullSeconds)
		}
	}
	if len(c.Notes) != 0 {
		t.Errorf("notes on the demo: %q", c.Notes)
	}
	if c.Before.FullPullBytes < 30<<20 || c.After.LazyStartBytes > c.Before.FullPullBytes/5 {
		t.Errorf("the demo pulls %d bytes before, its lazy start %d after: want a realistic image whose start-up reads a small part", c.Before.FullPullBytes, c.After.LazyStartBytes)
	}
}
