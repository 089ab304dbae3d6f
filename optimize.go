package coldstart

import (
	"context"
	"fmt"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/report"
)

// Result is what Optimize did.
type Result struct {
	*optimize.Result
	// Source and Destination are the references, as parsed.
	Source, Destination imageref.Ref
	// Comparisons estimates the cold start of every image before and after,
	// in the order of Images (nil with WithCompare(false)): the same as
	// Images[i].Estimate.
	Comparisons []*report.Comparison `json:"-"`
	// CompareError says why the comparison is missing, when it could not
	// be made: the image was written all the same.
	CompareError error `json:"-"`
}

// Optimize reads the image or index src, optimizes it (see the optimize
// package) and writes the result to dst. dst is checked first (a registry
// answers and takes pushes, a directory can be written), so that a
// destination that cannot be written fails before any work. dst is complete
// or untouched: blobs are written before manifests, the index and the tag
// last. dst equal to src needs WithOverwrite. With WithCompare (the default)
// the result also estimates every image's cold start before and after.
func Optimize(ctx context.Context, src, dst string, opts ...Option) (*Result, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	sref, err := parse(src)
	if err != nil {
		return nil, err
	}
	dref, err := parse(dst)
	if err != nil {
		return nil, err
	}
	if imageref.SameDestination(sref, dref) && !o.overwrite {
		return nil, invalid("DST %s is SRC: give --overwrite to replace it (the old image stays until the new one is complete)", dref)
	}
	ro, err := o.refOptions("")
	if err != nil {
		return nil, err
	}
	if err := imageref.CheckWritable(ctx, dref, ro...); err != nil {
		return nil, err
	}
	bases, err := o.readBases(ctx)
	if err != nil {
		return nil, err
	}
	art, err := o.readAll(ctx, sref)
	if err != nil {
		return nil, err
	}
	oo := append(o.optimizeOptions(bases), optimize.WithEstimate(o.compare))
	var res *optimize.Result
	if art.Index != nil {
		res, err = optimize.Index(ctx, art.Index, oo...)
	} else {
		res, err = optimize.Image(ctx, art.Image, oo...)
	}
	if err != nil {
		return nil, fmt.Errorf("optimizing %s: %w", sref, err)
	}
	out := &Result{Result: res, Source: sref, Destination: dref}
	if o.progress != nil {
		ro = append(ro, imageref.WithProgress(pushProgress(res, o.progress)))
	}
	if err := imageref.Write(ctx, dref, &imageref.Artifact{Image: res.Image, Index: res.Index}, ro...); err != nil {
		res.Close()
		return nil, err
	}
	if o.compare {
		for _, ir := range res.Images {
			if ir.Estimate == nil {
				// An image optimized before with these options is returned
				// as it is, unread.
				out.CompareError = fmt.Errorf("image %s was already optimized with these options: nothing to compare", ir.InputDigest)
				out.Comparisons = nil
				break
			}
			ir.Estimate.Before.Image, ir.Estimate.After.Image = sref.String(), dref.String()
			out.Comparisons = append(out.Comparisons, ir.Estimate)
		}
	}
	return out, nil
}

// pushProgress turns the progress of blobs written into the progress of
// the layers that are those blobs (a blob listed twice, or in several
// images, advances each of its layers).
func pushProgress(res *optimize.Result, fn func(optimize.Progress)) func(imageref.Progress) {
	type layerRef struct {
		platform string
		layer    int
	}
	byDigest := map[string][]layerRef{}
	for _, ir := range res.Images {
		for i, l := range ir.Layers {
			byDigest[l.OutputDigest] = append(byDigest[l.OutputDigest], layerRef{ir.Platform, i})
		}
	}
	return func(p imageref.Progress) {
		d := p.Digest.String()
		for _, l := range byDigest[d] {
			fn(optimize.Progress{Phase: optimize.PhasePush, Platform: l.platform, Layer: l.layer, Digest: d, Done: p.Done, Total: p.Total})
		}
	}
}
