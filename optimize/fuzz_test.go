package optimize_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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

// FuzzPlanRoles is FuzzPlan with the rest of what optimize does to layers:
// a base image (the first layers) under each base policy, layers cached on
// nodes (kept byte-identical), prioritized files that reorder the rewritten
// and converted layers behind a prefetch landmark, dedupe off, and chunks
// smaller than the files.
func FuzzPlanRoles(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i*5+3, uint8(2+i%4), uint8(i*37), uint8(i))
	}
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64, nlayers, roles, pick uint8) {
		planRoles(t, seed1, seed2, nlayers, roles, pick, false)
	})
}

// FuzzPlanSymlinks is FuzzPlanRoles with files, directories and whiteouts
// written through symlinks to directories, which containerd follows and a
// lazy puller does not.
func FuzzPlanSymlinks(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i*3+11, uint8(2+i%4), uint8(i*53), uint8(i))
	}
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64, nlayers, roles, pick uint8) {
		planRoles(t, seed1, seed2, nlayers, roles, pick, true)
	})
}

// planRoles is one input of FuzzPlanRoles (FuzzPlanSymlinks with
// symlinks).
func planRoles(t *testing.T, seed1, seed2 uint64, nlayers, roles, pick uint8, symlinks bool) {
	fmts := append(append([]layers.Format{}, formats...), layers.FormatZstdChunkedContainerd)
	policies := []optimize.BasePolicy{optimize.BaseKeep, optimize.BaseConvert, optimize.BaseRecompress, optimize.BaseAuto}
	{
		r := rand.New(rand.NewPCG(seed1, seed2))
		ls := testimage.Random(r, allKinds(testimage.RandomOptions{Layers: 1 + int(nlayers%6), Ops: 12, MaxFileSize: 256, Specials: roles&1 == 0, SymlinkParents: symlinks}))
		src := buildImage(t, ls)
		format := fmts[int(pick)%len(fmts)]
		opts := []optimize.Option{optimize.WithFormat(format), optimize.WithProfiler(nil)}

		// Bits 1-3: cached layers 0-2.
		srcLayers, err := src.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i := range min(3, len(srcLayers)) {
			if roles&(2<<i) != 0 {
				d, err := srcLayers[i].Digest()
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, optimize.WithCachedLayers(d))
			}
		}
		// Bits 4-5: that many layers are the base; bits 6-7 its policy.
		if k := int(roles>>4) & 3; k > 0 && k < len(ls) {
			policy := policies[int(roles>>6)%len(policies)]
			if policy == optimize.BaseRecompress && format != layers.FormatEStargz && format != layers.FormatZstdChunkedContainerd {
				policy = optimize.BaseKeep
			}
			opts = append(opts, optimize.WithBaseImage(buildImage(t, ls[:k])), optimize.WithBasePolicy(policy))
		}
		// Prioritized files: a random part of the merged filesystem's paths
		// (directories and symlinks too), in random order, and a missing one.
		paths, err := mergedPaths(src, symlinks)
		if err != nil {
			t.Fatal(err)
		}
		var prio []string
		for _, p := range paths {
			if r.IntN(2) == 0 {
				prio = append(prio, "/"+p)
			}
		}
		r.Shuffle(len(prio), func(i, j int) { prio[i], prio[j] = prio[j], prio[i] })
		opts = append(opts, optimize.WithPrioritizedFiles(append(prio, "/missing")))
		// Now and then no dedupe, and chunks smaller than the files.
		dedupe, chunk := r.IntN(4) != 0, 0
		if r.IntN(3) == 0 {
			chunk = 1 + r.IntN(200)
		}
		opts = append(opts, optimize.WithDedupe(dedupe), optimize.WithChunkSize(chunk))

		out, _ := optimizeImage(t, src, opts...)
		v, err := optimize.VerifyImage(context.Background(), src, out, optimize.WithTempDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		if !v.OK {
			t.Fatalf("%s, options %08b, dedupe %v, chunk size %d: merged filesystem changed: %v", format, roles, dedupe, chunk, v.Images[0].Differences)
		}
	}
}

// mergedPaths lists the paths of img's merged filesystem, sorted: as
// containerd applies it (the oracle) when layers write through symlinked
// directories, which testimage.Apply does not follow.
func mergedPaths(img v1.Image, symlinks bool) ([]string, error) {
	var paths []string
	if !symlinks {
		tree, err := testimage.ApplyImage(img)
		if err != nil {
			return nil, err
		}
		for _, n := range tree.Nodes() {
			paths = append(paths, n.Path)
		}
		return paths, nil
	}
	ls, err := oracle.ReadV1Image(context.Background(), img, 1)
	if err != nil {
		return nil, err
	}
	fs, err := oracle.Apply(ls...)
	if err != nil {
		return nil, err
	}
	for _, n := range fs.Nodes() {
		paths = append(paths, n.Path)
	}
	slices.Sort(paths)
	return paths, nil
}
