package optimize

import (
	"context"
	"fmt"

	"github.com/coldstart-dev/coldstart/internal/progress"
	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// Analysis describes one image: its layers, and the bytes in them that no
// container sees.
type Analysis struct {
	Digest   string          `json:"digest"`
	Platform string          `json:"platform,omitempty"`
	Layers   []LayerAnalysis `json:"layers"`
	// TotalSize is the sum of the compressed layer sizes; UncompressedSize
	// the sum of the layer tar sizes.
	TotalSize        int64 `json:"totalSize"`
	UncompressedSize int64 `json:"uncompressedSize"`
	// Files is the number of paths in the merged filesystem.
	Files int `json:"files"`
	// FileBytes is the sum of the sizes of all regular-file entries of all
	// layers.
	FileBytes int64 `json:"fileBytes"`
	// WastedBytes is the sum of the sizes of regular-file entries that are
	// not visible in the merged filesystem because a later layer overwrote
	// them, deleted them, hid them under an opaque directory or replaced an
	// ancestor directory.
	WastedBytes int64 `json:"wastedBytes"`
	// Efficiency is 1 - WastedBytes/FileBytes (1 for an image without files).
	Efficiency float64 `json:"efficiency"`
	// ReaddBytes counts regular files re-added identically above their
	// visible lower copy; CopyUpBytes those copied up only to change mode,
	// owner or mtime; DuplicateBytes the extra copies of one content stored
	// at several visible paths.
	ReaddBytes     int64 `json:"readdBytes"`
	CopyUpBytes    int64 `json:"copyUpBytes"`
	DuplicateBytes int64 `json:"duplicateBytes"`
	// TopWasted lists the largest wasted files.
	TopWasted []WastedFile `json:"topWasted"`
	// ForeignLayers counts non-distributable layers, which are not read.
	ForeignLayers int `json:"foreignLayers,omitempty"`
}

// LayerAnalysis describes one layer.
type LayerAnalysis struct {
	Digest           string `json:"digest"`
	DiffID           string `json:"diffID,omitempty"`
	MediaType        string `json:"mediaType"`
	Size             int64  `json:"size"`
	UncompressedSize int64  `json:"uncompressedSize"`
	Files            int    `json:"files"`
	WastedBytes      int64  `json:"wastedBytes"`
	Lazy             string `json:"lazy,omitempty"`
	TOCDigest        string `json:"tocDigest,omitempty"`
	Foreign          bool   `json:"foreign,omitempty"`
	CreatedBy        string `json:"createdBy,omitempty"`
}

// WastedFile is one regular file that no container sees.
type WastedFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Layer  int    `json:"layer"`
	Reason string `json:"reason"`
	By     int    `json:"by"`
}

// topWasted is how many wasted files an Analysis lists.
const topWasted = 20

// IndexImage indexes every layer of img, at most WithConcurrency at a time,
// and checks each layer's DiffID against the config.
func IndexImage(ctx context.Context, img v1.Image, opts ...Option) ([]*layers.Index, error) {
	o, err := newPipeline(opts)
	if err != nil {
		return nil, err
	}
	return o.indexImage(ctx, img, "")
}

// indexImage indexes every layer of img, the image of platform ("" for a
// single image) in progress reports.
func (o *pipeline) indexImage(ctx context.Context, img v1.Image, platform string) ([]*layers.Index, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("reading config: image has no config")
	}
	if len(cfg.RootFS.DiffIDs) != len(ls) {
		return nil, fmt.Errorf("config lists %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(ls))
	}
	image := ""
	if d, err := img.Digest(); err == nil {
		image = d.String()
	}
	out := make([]*layers.Index, len(ls))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency)
	for i, l := range ls {
		g.Go(func() error {
			if o.progress != nil {
				l = o.pulled(l, platform, i)
			}
			idx, err := o.index(gctx, l, cfg.RootFS.DiffIDs[i], image)
			if err != nil {
				return fmt.Errorf("layer %d: %w", i, err)
			}
			if !idx.Foreign && idx.DiffID != cfg.RootFS.DiffIDs[i] {
				return fmt.Errorf("layer %d %s: %w: config diff_id is %s, layer content hashes to %s",
					i, idx.Digest, layers.ErrDigestMismatch, cfg.RootFS.DiffIDs[i], idx.DiffID)
			}
			out[i] = idx
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// Analyze indexes every layer of img and measures what no container sees.
func Analyze(ctx context.Context, img v1.Image, opts ...Option) (*Analysis, error) {
	o, err := newPipeline(opts)
	if err != nil {
		return nil, err
	}
	idxs, err := o.indexImage(ctx, img, "")
	if err != nil {
		return nil, err
	}
	// Paths as containerd lands them, as Image plans them.
	idxs, _ = resolveSymlinkParents(idxs)
	ov, err := layers.Merge(idxs...)
	if err != nil {
		return nil, err
	}
	a := &Analysis{Layers: []LayerAnalysis{}, TopWasted: []WastedFile{}}
	if d, err := img.Digest(); err == nil {
		a.Digest = d.String()
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if cfg.OS != "" {
		a.Platform = cfg.OS + "/" + cfg.Architecture
		if cfg.Variant != "" {
			a.Platform += "/" + cfg.Variant
		}
	}
	created := layerHistory(cfg)
	for i, idx := range idxs {
		la := LayerAnalysis{
			Digest:           idx.Digest.String(),
			MediaType:        string(idx.MediaType),
			Size:             idx.Size,
			UncompressedSize: idx.UncompressedSize,
			WastedBytes:      ov.Waste(i),
			Lazy:             string(idx.Lazy),
			Foreign:          idx.Foreign,
		}
		if i < len(created) {
			la.CreatedBy = created[i]
		}
		if !idx.Foreign {
			la.DiffID = idx.DiffID.String()
		} else {
			a.ForeignLayers++
		}
		if idx.TOCDigest.Hex != "" {
			la.TOCDigest = idx.TOCDigest.String()
		}
		for ei := range idx.Entries {
			e := &idx.Entries[ei]
			if !e.Type.IsMarker() {
				la.Files++
			}
			if e.Type == layers.TypeReg {
				a.FileBytes += e.Size
			}
		}
		a.Layers = append(a.Layers, la)
		a.TotalSize += idx.Size
		a.UncompressedSize += idx.UncompressedSize
		a.WastedBytes += la.WastedBytes
	}
	a.Files = len(ov.Paths())
	a.Efficiency = 1
	if a.FileBytes > 0 {
		a.Efficiency = 1 - float64(a.WastedBytes)/float64(a.FileBytes)
	}
	for _, w := range ov.WastedPaths() {
		if len(a.TopWasted) == topWasted {
			break
		}
		a.TopWasted = append(a.TopWasted, WastedFile{Path: "/" + w.Path, Size: w.Size, Layer: w.Ref.Layer, Reason: w.Reason.String(), By: w.By})
	}
	for _, r := range ov.Readds() {
		e := ov.Entry(r.Upper)
		if e.Type != layers.TypeReg {
			continue
		}
		if r.Identical {
			a.ReaddBytes += e.Size
		} else {
			a.CopyUpBytes += e.Size
		}
	}
	for _, g := range ov.DuplicateContent() {
		a.DuplicateBytes += g.Size * int64(len(g.Paths)-1)
	}
	return a, nil
}

// layerHistory returns the created_by of each non-empty history entry, in
// layer order.
func layerHistory(cfg *v1.ConfigFile) []string {
	var out []string
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			out = append(out, h.CreatedBy)
		}
	}
	if len(out) != len(cfg.RootFS.DiffIDs) {
		return nil
	}
	return out
}

// pulled returns l whose reads are reported as PhasePull of layer i.
func (o *pipeline) pulled(l v1.Layer, platform string, i int) v1.Layer {
	d, err := l.Digest()
	if err != nil {
		return l
	}
	size, err := l.Size()
	if err != nil {
		return l
	}
	digest := d.String()
	return progress.Layer(l, func(n int64) {
		o.progress(Progress{Phase: PhasePull, Platform: platform, Layer: i, Digest: digest, Done: n, Total: size})
	})
}

// platformOf is the platform a descriptor names, "" for none.
func platformOf(desc *v1.Descriptor) string {
	if desc == nil || desc.Platform == nil {
		return ""
	}
	return desc.Platform.String()
}
