package imageref

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"golang.org/x/sync/errgroup"
)

// pushPlan is what a registry write uploads, in the order it goes.
type pushPlan struct {
	blobs []pushBlob
	// levels holds the child manifests: images first (level 0), then the
	// indexes whose children are all in earlier levels.
	levels [][]pushManifest
	top    remote.Taggable
	topDig v1.Hash
	seen   map[v1.Hash]int // manifest digest -> level
	blobOK map[v1.Hash]bool
}

type pushBlob struct {
	digest v1.Hash
	layer  v1.Layer
}

type pushManifest struct {
	digest v1.Hash
	t      remote.Taggable
}

func planPush(a *Artifact) (*pushPlan, error) {
	p := &pushPlan{seen: map[v1.Hash]int{}, blobOK: map[v1.Hash]bool{}}
	var err error
	if a.Index != nil {
		p.top = a.Index
		if p.topDig, err = a.Index.Digest(); err != nil {
			return nil, err
		}
		if _, err := p.addIndex(a.Index, 0); err != nil {
			return nil, err
		}
		return p, nil
	}
	p.top = a.Image
	if p.topDig, err = a.Image.Digest(); err != nil {
		return nil, err
	}
	if err := p.addImageBlobs(a.Image); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pushPlan) addImageBlobs(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	cl, err := partial.ConfigLayer(img)
	if err != nil {
		return err
	}
	for _, l := range append(ls, cl) {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if !p.blobOK[d] {
			p.blobOK[d] = true
			p.blobs = append(p.blobs, pushBlob{digest: d, layer: l})
		}
	}
	return nil
}

// addIndex adds an index's children and returns the index's level.
func (p *pushPlan) addIndex(idx v1.ImageIndex, depth int) (int, error) {
	if depth > maxNesting {
		return 0, fmt.Errorf("%w: deeper than %d levels", ErrCycle, maxNesting)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return 0, err
	}
	level := 1
	for _, d := range im.Manifests {
		if l, ok := p.seen[d.Digest]; ok {
			level = max(level, l+1)
			continue
		}
		var child remote.Taggable
		var cl int
		switch {
		case d.MediaType.IsIndex():
			ci, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return 0, fmt.Errorf("index child %s: %w", d.Digest, err)
			}
			if cl, err = p.addIndex(ci, depth+1); err != nil {
				return 0, err
			}
			child = ci
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return 0, fmt.Errorf("index child %s: %w", d.Digest, err)
			}
			if err := p.addImageBlobs(img); err != nil {
				return 0, fmt.Errorf("image %s: %w", d.Digest, err)
			}
			child = img
		default:
			return 0, fmt.Errorf("index child %s has media type %q, which is neither an image nor an index", d.Digest, d.MediaType)
		}
		p.seen[d.Digest] = cl
		for len(p.levels) <= cl {
			p.levels = append(p.levels, nil)
		}
		p.levels[cl] = append(p.levels[cl], pushManifest{digest: d.Digest, t: child})
		level = max(level, cl+1)
	}
	return level, nil
}

// pushRemote writes a to a registry: blobs, then child manifests, then the
// manifest that ref names.
func pushRemote(ctx context.Context, ref name.Reference, a *Artifact, o *options) error {
	pusher, err := remote.NewPusher(o.remoteOptions(ctx)...)
	if err != nil {
		return err
	}
	plan, err := planPush(a)
	if errors.Is(err, stream.ErrNotComputed) {
		// A streaming layer's digest is known only once it was uploaded:
		// ggcr's own order (an image's blobs, then its manifest) applies.
		var top remote.Taggable = a.Image
		if a.Index != nil {
			top = a.Index
		}
		return o.explain(pusher.Push(ctx, ref, top))
	}
	if err != nil {
		return err
	}
	repo := ref.Context()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs)
	for _, b := range plan.blobs {
		g.Go(func() error {
			if err := pusher.Upload(gctx, repo, o.counted(b.layer)); err != nil {
				return fmt.Errorf("uploading blob %s: %w", b.digest, o.explain(err))
			}
			// A blob the registry had is not read: it is done all the same.
			o.written(b.layer)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	o.logger.DebugContext(ctx, "blobs uploaded", "ref", ref.String(), "blobs", len(plan.blobs))

	for _, level := range plan.levels {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(o.jobs)
		for _, m := range level {
			g.Go(func() error {
				if err := pusher.Push(gctx, repo.Digest(m.digest.String()), m.t); err != nil {
					return fmt.Errorf("uploading manifest %s: %w", m.digest, o.explain(err))
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}

	if err := pusher.Push(ctx, ref, plan.top); err != nil {
		if _, ok := ref.(name.Tag); ok {
			return fmt.Errorf("uploading manifest %s as tag %s: %w", plan.topDig, ref.Identifier(), o.explain(err))
		}
		return fmt.Errorf("uploading manifest %s: %w", plan.topDig, o.explain(err))
	}
	return nil
}
