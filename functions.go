package coldstart

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/profile/run"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Verify checks that dst shows a container the same filesystem as src, for
// every image (see optimize.VerifyImages): as a full pull and as a lazy pull
// present it, every layer's digests, and every lazy layer's TOC and
// annotations. A Verification whose OK is false is not an error.
func Verify(ctx context.Context, src, dst string, opts ...Option) (*optimize.Verification, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	var sides [2][]optimize.PlatformImage
	for i, s := range []string{src, dst} {
		ref, err := parse(s)
		if err != nil {
			return nil, err
		}
		art, err := o.readAll(ctx, ref)
		if err != nil {
			return nil, err
		}
		if art.Index == nil {
			sides[i] = []optimize.PlatformImage{{Image: art.Image}}
			continue
		}
		imgs, err := optimize.IndexImages(ctx, art.Index)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		for _, pi := range imgs {
			if pi.Descriptor.Platform == nil && pi.Descriptor.Annotations["vnd.docker.reference.type"] != "" {
				continue // an attestation
			}
			sides[i] = append(sides[i], pi)
		}
	}
	v, err := optimize.VerifyImages(ctx, sides[0], sides[1], o.optimizeOptions(nil)...)
	if err != nil {
		return nil, fmt.Errorf("verifying %s against %s: %w", dst, src, err)
	}
	return v, nil
}

// Analysis is what Analyze found: Image for a single image, Index for an
// index.
type Analysis struct {
	Image *optimize.Analysis
	Index *optimize.IndexAnalysis
}

// Write renders the analysis as text, JSON or Markdown.
func (a *Analysis) Write(w io.Writer, format string) error {
	if a.Index != nil {
		return a.Index.Write(w, format)
	}
	return a.Image.Write(w, format)
}

// WriteText renders the analysis as text whose lines fit in width columns
// (0: no limit): long paths lose their middle to "…".
func (a *Analysis) WriteText(w io.Writer, width int) error {
	if a.Index != nil {
		return a.Index.WriteText(w, width)
	}
	return a.Image.WriteText(w, width)
}

// Analyze measures the image (or every image of the index) ref names, per
// layer its sizes, files, lazy format and wasted bytes.
func Analyze(ctx context.Context, ref string, opts ...Option) (*Analysis, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	r, err := parse(ref)
	if err != nil {
		return nil, err
	}
	art, err := o.readAll(ctx, r)
	if err != nil {
		return nil, err
	}
	a := &Analysis{}
	if art.Index != nil {
		a.Index, err = optimize.AnalyzeIndex(ctx, art.Index, o.optimizeOptions(nil)...)
	} else {
		a.Image, err = optimize.Analyze(ctx, art.Image, o.optimizeOptions(nil)...)
	}
	if err != nil {
		return nil, fmt.Errorf("analyzing %s: %w", r, err)
	}
	return a, nil
}

// ErrCannotRun is wrapped by Profile's error when WithRun asks to run an
// image this machine cannot start (another architecture).
var ErrCannotRun = errors.New("cannot run the image here")

// Profile finds the files the image ref names reads at start-up, in
// first-access order: with the static profiler by default, with
// WithProfiler's, or by running it (WithRun). WithProfileConfig changes the
// entrypoint, command, environment or user first.
func Profile(ctx context.Context, ref string, opts ...Option) (*profile.Profile, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.runMode {
		// Fail early, before reading anything.
		if err := run.Supported(); err != nil {
			return nil, err
		}
	}
	one, err := o.readOne(ctx, ref)
	if err != nil {
		return nil, err
	}
	cf, err := one.img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%s: reading config: %w", one.ref, err)
	}
	pc := profile.ConfigOf(cf.Config)
	if o.editConfig != nil {
		if err := o.editConfig(&pc); err != nil {
			return nil, err
		}
	}
	if len(pc.Entrypoint)+len(pc.Cmd) == 0 {
		return nil, invalid("%s has no Entrypoint or Cmd: give one", one.ref)
	}
	var p *profile.Profile
	if o.runMode {
		ro := append([]run.Option{run.WithLogger(o.logger), run.WithConfig(pc), run.WithIndexOptions(o.limits...)}, o.run...)
		if o.tempDir != "" {
			ro = append(ro, run.WithTempDir(o.tempDir))
		}
		p, err = run.Image(ctx, one.img, ro...)
		if errors.Is(err, run.ErrPlatform) {
			return nil, fmt.Errorf("%w: %s is a %s/%s image: %w", ErrCannotRun, one.ref, cf.OS, cf.Architecture, err)
		}
	} else {
		prof := o.profiler
		if prof == nil {
			prof = profile.StaticProfiler(profile.WithConfig(pc), profile.WithLogger(o.logger))
		}
		p, err = optimize.ProfileImage(ctx, one.img, prof, o.optimizeOptions(nil)...)
	}
	if err != nil {
		return nil, fmt.Errorf("profiling %s: %w", one.ref, err)
	}
	return p, nil
}

// Report estimates what a cold start of the image ref names costs (see the
// report package): bytes, requests and seconds of a full pull, a lazy start
// and the lower bound (and a partial pull, see WithPrevious), on the
// networks WithReportOptions names, for a node that holds WithBases' layers
// and WithPrevious' image. report.WithMeasurement measures it for
// real; it needs a registry reference, whose name this function passes.
func Report(ctx context.Context, ref string, opts ...Option) (*report.Report, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	bases, err := o.readBases(ctx)
	if err != nil {
		return nil, err
	}
	one, err := o.readOne(ctx, ref)
	if err != nil {
		return nil, err
	}
	ro := []report.Option{report.WithImageName(one.ref.String())}
	if one.indexBytes > 0 {
		ro = append(ro, report.WithIndexManifest(one.indexBytes))
	}
	if o.measure {
		if one.ref.Transport != imageref.TransportRegistry {
			return nil, invalid("measuring needs a registry image, not %s", one.ref)
		}
		ro = append(ro, report.WithMeasurement(one.ref.Name), report.WithInsecure(o.insecure))
		if p, err := v1.ParsePlatform(o.platforms); err == nil && o.platforms != "" && o.platforms != "all" {
			ro = append(ro, report.WithPlatform(*p))
		}
	}
	if o.previous != "" {
		prev, err := o.readOne(ctx, o.previous)
		if err != nil {
			return nil, fmt.Errorf("previous %s: %w", o.previous, err)
		}
		ro = append(ro, report.WithPrevious(prev.img))
	}
	ro = append(ro, o.reportOptions(bases)...)
	r, err := report.Estimate(ctx, one.img, ro...)
	if err != nil {
		return nil, fmt.Errorf("reporting on %s: %w", one.ref, err)
	}
	return r, nil
}

// Compare estimates the images before and after with the same start-up
// files (found in before) and puts them side by side with after/before
// ratios.
func Compare(ctx context.Context, before, after string, opts ...Option) (*report.Comparison, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	bases, err := o.readBases(ctx)
	if err != nil {
		return nil, err
	}
	b, err := o.readOne(ctx, before)
	if err != nil {
		return nil, err
	}
	a, err := o.readOne(ctx, after)
	if err != nil {
		return nil, err
	}
	ro := o.reportOptions(bases)
	if b.indexBytes > 0 {
		ro = append(ro, report.WithIndexManifest(b.indexBytes))
	}
	c, err := report.Compare(ctx, b.img, a.img, ro...)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", b.ref, a.ref, err)
	}
	c.Before.Image, c.After.Image = b.ref.String(), a.ref.String()
	return c, nil
}
