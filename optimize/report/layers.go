package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layers describes an image by what a caller that read it already has in
// hand (the optimizer does), so that an estimate reads nothing again: the
// sizes of its manifest and config, and per layer its descriptor, its index
// and, for an eStargz or zstd:chunked layer, random access to its blob,
// through which only the footer and the TOC are read.
type Layers struct {
	// Digest and Platform name the image in the report.
	Digest, Platform string
	// ManifestBytes and ConfigBytes are the sizes of the manifest and the
	// config blob.
	ManifestBytes, ConfigBytes int64
	Layers                     []LayerData
}

// LayerData is one layer of Layers.
type LayerData struct {
	// Descriptor is the layer's descriptor in the manifest, annotations
	// included (a lazy puller mounts a layer whose descriptor says so).
	Descriptor v1.Descriptor
	// Index is the layer's index: its entries, sizes and compression. For
	// a lazy layer it may be nil: the TOC gives the entries, the
	// descriptor the sizes.
	Index *layers.Index
	// Blob reads the compressed blob; nil for a layer that is not lazy.
	Blob io.ReaderAt
}

// EstimateLayers is Estimate for an image described by l. It needs the
// start-up files (WithProfile): there is no filesystem to profile.
// Measurement is not supported.
func EstimateLayers(ctx context.Context, l *Layers, opts ...Option) (*Report, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	in, err := o.given(l)
	if err != nil {
		return nil, err
	}
	return o.estimateInputs(ctx, in, nil, nil)
}

// CompareLayers is Compare for two images described by before and after,
// with the start-up files of WithProfile.
func CompareLayers(ctx context.Context, before, after *Layers, opts ...Option) (*Comparison, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.measureRef != "" {
		return nil, errors.New("report: CompareLayers does not measure")
	}
	bi, err := o.given(before)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	ai, err := o.given(after)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	b, err := o.estimateInputs(ctx, bi, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	a, err := o.estimateInputs(ctx, ai, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	return newComparison(b, a), nil
}

// given turns Layers into the model's inputs, opening the lazy layers'
// TOCs.
func (o *options) given(l *Layers) (*inputs, error) {
	if o.profile == nil {
		return nil, errors.New("report: estimating given layers needs WithProfile")
	}
	in := &inputs{digest: l.Digest, platform: l.Platform, manifestBytes: l.ManifestBytes, configBytes: l.ConfigBytes}
	for i, ld := range l.Layers {
		li := &layerInfo{desc: ld.Descriptor, idx: ld.Index, partial: openPartial(ld.Blob, ld.Descriptor)}
		if ld.Blob != nil && (ld.Index == nil || ld.Index.Lazy != layers.NotLazy) {
			t, err := lazypull.OpenTOC(ld.Blob, ld.Descriptor.Size)
			switch {
			case err == nil:
				li.toc = t
				li.mountable = lazypull.Mountable(ld.Descriptor)
				if li.idx == nil {
					li.idx = tocIndex(t, ld.Descriptor)
				}
			case ld.Index == nil:
				return nil, fmt.Errorf("layer %d %s: %w", i, ld.Descriptor.Digest, err)
			}
		}
		if li.idx == nil {
			return nil, fmt.Errorf("layer %d %s: no index", i, ld.Descriptor.Digest)
		}
		in.layers = append(in.layers, li)
	}
	return in, nil
}

// tocIndex is the index of a lazy layer made from its TOC and descriptor.
func tocIndex(t *lazypull.TOC, d v1.Descriptor) *layers.Index {
	idx := *t.Index()
	idx.Digest, idx.Size, idx.MediaType = d.Digest, d.Size, d.MediaType
	idx.Compression = layers.Gzip
	if t.Format == layers.ZstdChunked {
		idx.Compression = layers.Zstd
	}
	// What a full pull unpacks besides the TOC's entries: the landmarks,
	// and eStargz's TOC entry.
	idx.Special = nil
	for range t.Landmarks {
		idx.Special = append(idx.Special, layers.Special{Name: layers.PrefetchLandmark})
	}
	if t.Format == layers.EStargz {
		idx.Special = append(idx.Special, layers.Special{Name: layers.TOCName})
	}
	if n, err := strconv.ParseInt(d.Annotations["io.containers.estargz.uncompressed-size"], 10, 64); err == nil {
		idx.UncompressedSize = n
	}
	return &idx
}
