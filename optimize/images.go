package optimize

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxIndexDepth bounds how deeply image indexes may nest.
const maxIndexDepth = 8

// PlatformImage is one image of an index with the descriptor the index
// gives it.
type PlatformImage struct {
	Descriptor v1.Descriptor
	Image      v1.Image
}

// IndexImages lists the images of idx and of the indexes nested in it, depth
// first in document order. Entries that are neither images nor indexes are
// skipped; a cycle or nesting deeper than 8 is an error.
func IndexImages(ctx context.Context, idx v1.ImageIndex) ([]PlatformImage, error) {
	var out []PlatformImage
	err := walkIndex(ctx, idx, nil, &out)
	return out, err
}

func walkIndex(ctx context.Context, idx v1.ImageIndex, seen []v1.Hash, out *[]PlatformImage) error {
	d, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("reading index digest: %w", err)
	}
	for _, s := range seen {
		if s == d {
			return fmt.Errorf("index %s contains itself", d)
		}
	}
	if len(seen) >= maxIndexDepth {
		return fmt.Errorf("index %s: indexes nest more than %d deep", d, maxIndexDepth)
	}
	seen = append(seen, d)
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("index %s: reading manifest: %w", d, err)
	}
	for _, desc := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case desc.MediaType.IsImage():
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return fmt.Errorf("index %s: image %s: %w", d, desc.Digest, err)
			}
			*out = append(*out, PlatformImage{Descriptor: desc, Image: img})
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return fmt.Errorf("index %s: index %s: %w", d, desc.Digest, err)
			}
			if err := walkIndex(ctx, child, seen, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// IndexAnalysis is the analysis of every image of an index.
type IndexAnalysis struct {
	Digest string      `json:"digest"`
	Images []*Analysis `json:"images"`
}

// AnalyzeIndex analyzes every image of idx.
func AnalyzeIndex(ctx context.Context, idx v1.ImageIndex, opts ...Option) (*IndexAnalysis, error) {
	imgs, err := IndexImages(ctx, idx)
	if err != nil {
		return nil, err
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	out := &IndexAnalysis{Digest: d.String()}
	for _, pi := range imgs {
		a, err := Analyze(ctx, pi.Image, opts...)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", pi.Descriptor.Digest, err)
		}
		if p := pi.Descriptor.Platform; p != nil {
			a.Platform = p.String()
		}
		out.Images = append(out.Images, a)
	}
	return out, nil
}

// WriteText renders every image's analysis in turn as text whose lines fit
// in width columns (see Analysis.WriteText).
func (ia *IndexAnalysis) WriteText(w io.Writer, width int) error {
	for i, a := range ia.Images {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := a.WriteText(w, width); err != nil {
			return err
		}
	}
	return nil
}

// Write renders every image's analysis in turn; JSON is one object with an
// "images" array.
func (ia *IndexAnalysis) Write(w interface{ Write([]byte) (int, error) }, format string) error {
	if format == FormatJSON {
		return writeJSON(w, ia)
	}
	for i, a := range ia.Images {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := a.Write(w, format); err != nil {
			return err
		}
	}
	return nil
}
