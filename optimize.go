package coldstart

import (
	"context"
	"fmt"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Result is what Optimize did.
type Result struct {
	*optimize.Result
	// Source and Destination are the references, as parsed.
	Source, Destination imageref.Ref
	// Comparisons estimates the cold start of every image before and after,
	// in the order of Images (nil with WithCompare(false)).
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
	oo := o.optimizeOptions(bases)
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
	if err := imageref.Write(ctx, dref, &imageref.Artifact{Image: res.Image, Index: res.Index}, ro...); err != nil {
		res.Close()
		return nil, err
	}
	if o.compare {
		out.Comparisons, out.CompareError = o.compareBeforeAfter(ctx, art, res, bases)
	}
	return out, nil
}

// compareBeforeAfter estimates the cold-start cost of every input image and
// its output, platform by platform.
func (o *options) compareBeforeAfter(ctx context.Context, in *imageref.Artifact, res *optimize.Result, bases []v1.Image) ([]*report.Comparison, error) {
	var before, after []v1.Image
	if in.Index != nil {
		bi, err := optimize.IndexImages(ctx, in.Index)
		if err != nil {
			return nil, err
		}
		ai, err := optimize.IndexImages(ctx, res.Index)
		if err != nil {
			return nil, err
		}
		if len(bi) != len(ai) {
			return nil, fmt.Errorf("%d images before, %d after", len(bi), len(ai))
		}
		for i := range bi {
			before, after = append(before, bi[i].Image), append(after, ai[i].Image)
		}
	} else {
		before, after = []v1.Image{in.Image}, []v1.Image{res.Image}
	}
	var out []*report.Comparison
	for i := range before {
		c, err := report.Compare(ctx, before[i], after[i], o.reportOptions(bases)...)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
