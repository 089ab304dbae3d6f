package optimize

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// WithEstimate makes Image and Index estimate the cold start of every image
// before and after, on a node that holds none of its layers, on the networks
// of WithNetworks (ImageResult.Estimate). It reads nothing again: the input
// layers' indexes are in hand, the converted layers' TOCs are read from
// their local blobs or from the conversion cache. The default is off.
func WithEstimate(on bool) Option {
	return func(o *options) error { o.estimate = on; return nil }
}

// tocTailMediaType is the cache record of a lazy layer's footer and TOC.
const tocTailMediaType types.MediaType = "application/vnd.coldstart.toc-tail.v1"

// estimateImage compares the input image with the output, from what
// optimizeImage has in hand.
func (o *pipeline) estimateImage(ctx context.Context, in, out v1.Image, idxs []*layers.Index, ls, outLs []v1.Layer, p *plan, ir *ImageResult, prio, warnings []string, tmp *tempDir) (*report.Comparison, error) {
	blobs := newBlobReaders(tmp)
	defer blobs.close()
	before, err := imageLayers(in)
	if err != nil {
		return nil, err
	}
	after, err := imageLayers(out)
	if err != nil {
		return nil, err
	}
	j := 0 // the output layer of input layer i
	for i := range ls {
		before.Layers[i].Index = idxs[i]
		if idxs[i].Lazy != layers.NotLazy {
			if before.Layers[i].Blob, err = blobs.whole(ls[i]); err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
		}
		lr := &ir.Layers[i]
		if lr.Action == ActionDropped {
			continue
		}
		a := &after.Layers[j]
		j++
		switch {
		case lr.Action == ActionKept:
			a.Index = idxs[i]
			a.Blob = before.Layers[i].Blob
		case o.encode.Format.Lazy():
			// The index comes from the TOC (see report.LayerData).
			if a.Blob, err = blobs.lazy(ctx, o, outLs[i]); err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
		default:
			a.Index = plainOutputIndex(idxs, i, p.layers[i], a.Descriptor)
		}
	}
	prof := &profile.Profile{Source: "optimize", Files: prio, Warnings: warnings}
	if o.profiler != nil {
		prof.Source = o.profiler.Name()
	}
	return report.CompareLayers(ctx, before, after, report.WithProfile(prof), report.WithNetworks(o.networks...), report.WithRates(o.rates),
		report.WithLogger(o.logger), report.WithTempDir(o.tempDir))
}

// imageLayers describes img's manifest, config and layer descriptors.
func imageLayers(img v1.Image) (*report.Layers, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	l := &report.Layers{Digest: d.String(), ManifestBytes: int64(len(raw)), ConfigBytes: m.Config.Size}
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" {
		l.Platform = cf.OS + "/" + cf.Architecture
	}
	for _, desc := range m.Layers {
		l.Layers = append(l.Layers, report.LayerData{Descriptor: desc})
	}
	return l, nil
}

// plainOutputIndex is the index of a layer rewritten as plain gzip or zstd
// (whose entries keep their order): the kept entries, the directories added
// before them and the links that became files.
func plainOutputIndex(idxs []*layers.Index, li int, lp *layerPlan, desc v1.Descriptor) *layers.Index {
	in := idxs[li]
	out := &layers.Index{Digest: desc.Digest, Size: desc.Size, MediaType: desc.MediaType, Compression: layers.Gzip}
	if desc.MediaType == types.OCILayerZStd {
		out.Compression = layers.Zstd
	}
	remap := make([]int, len(in.Entries))
	var tarBytes int64 = 1024 // the end-of-archive blocks
	add := func(e layers.Entry) {
		tarBytes += 512 + (e.Size+511)&^511
		out.Entries = append(out.Entries, e)
	}
	for ei, e := range in.Entries {
		remap[ei] = -1
		if !lp.keep[ei] {
			continue
		}
		for _, d := range lp.dirs[ei] {
			dir := *d
			dir.LinkIndex = -1
			add(dir)
		}
		if ls, ok := lp.links[ei]; ok && ls.relink == "" {
			f := idxs[ls.file.Layer].Entries[ls.file.Entry]
			e.Type, e.Size, e.Digest, e.Linkname, e.LinkIndex = f.Type, f.Size, f.Digest, f.Linkname, -1
		} else if e.Type == layers.TypeHardlink && e.LinkIndex >= 0 {
			e.LinkIndex = remap[e.LinkIndex]
		}
		remap[ei] = len(out.Entries)
		add(e)
	}
	out.UncompressedSize = tarBytes
	return out
}

// blobReaders gives random access to lazy blobs for their footers and TOCs.
type blobReaders struct {
	tmp    *tempDir
	temps  []*os.File // copies, removed by close
	opened []*os.File // converted blobs, which stay until Result.Close
}

func newBlobReaders(tmp *tempDir) *blobReaders { return &blobReaders{tmp: tmp} }

func (b *blobReaders) close() {
	for _, f := range b.temps {
		b.tmp.discard(f)
	}
	for _, f := range b.opened {
		f.Close()
	}
}

// lazy returns the footer and TOC of a converted lazy layer: its local blob
// when this run wrote it, else the tail the conversion cache keeps with it,
// else the whole blob.
func (b *blobReaders) lazy(ctx context.Context, o *pipeline, l v1.Layer) (io.ReaderAt, error) {
	if fl, ok := l.(*fileLayer); ok {
		f, err := os.Open(fl.path)
		if err != nil {
			return nil, err
		}
		b.opened = append(b.opened, f)
		return f, nil
	}
	if o.cache != nil {
		if d, err := l.Digest(); err == nil {
			if data, _, err := cache.GetBytes(ctx, o.cache, "toc/v1/"+d.String(), maxRecord); err == nil && len(data) > 8 {
				return &tailReaderAt{off: int64(binary.BigEndian.Uint64(data)), tail: data[8:]}, nil
			}
		}
	}
	return b.whole(l)
}

// whole copies a layer's blob to a temporary file.
func (b *blobReaders) whole(l v1.Layer) (io.ReaderAt, error) {
	f, err := b.tmp.create("estimate-*")
	if err != nil {
		return nil, err
	}
	b.temps = append(b.temps, f)
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := io.Copy(f, rc); err != nil {
		return nil, fmt.Errorf("reading blob: %w", err)
	}
	return f, nil
}

// tailReaderAt serves the last bytes of a blob, from off on.
type tailReaderAt struct {
	off  int64
	tail []byte
}

func (t *tailReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < t.off || off-t.off > int64(len(t.tail)) {
		return 0, fmt.Errorf("offset %d outside the blob tail kept from %d", off, t.off)
	}
	n := copy(p, t.tail[off-t.off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// storeTOCTail keeps a converted lazy layer's footer and TOC in the cache,
// so that a later run that reuses the layer can estimate with it without
// reading the blob.
func (m *memory) storeTOCTail(ctx context.Context, path string, enc *layers.Encoded, origin cache.Origin) {
	if m.c == nil || !enc.Format.Lazy() {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	t, err := lazypull.OpenTOC(f, enc.Size)
	if err != nil {
		m.logger.Warn("conversion cache: reading the TOC of a converted layer", "layer", enc.Digest, "err", err)
		return
	}
	from := enc.Size
	for _, r := range t.Reads {
		from = min(from, r.Offset)
	}
	data := make([]byte, 8+enc.Size-from)
	binary.BigEndian.PutUint64(data, uint64(from))
	if _, err := f.ReadAt(data[8:], from); err != nil && !errors.Is(err, io.EOF) {
		return
	}
	if err := cache.PutBytesFrom(ctx, m.c, "toc/v1/"+enc.Digest.String(), tocTailMediaType, data, origin); err != nil {
		m.logger.Warn("conversion cache: storing a TOC", "layer", enc.Digest, "err", err)
	}
}
