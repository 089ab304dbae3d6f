package report

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/coldstart-dev/coldstart/internal/partialpull"
	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Constants of the partial pull (containers/image 5.23 and
// containers/storage 1.43, as Debian 12's podman 4.3 pulls).
const (
	// PartialPullConcurrency is how many layers containers/image copies at
	// once (its maxParallelDownloads).
	PartialPullConcurrency = 6
	// PingBytes is the registry's answer to the GET /v2/ that
	// containers/image sends before the manifest ("{}").
	PingBytes = 2
)

// openPartial reads, through ra, the TOC of a layer that containers/storage
// pulls partially, as it reads it; nil for a layer it downloads whole
// (no annotation, or a TOC it cannot read).
func openPartial(ra io.ReaderAt, desc v1.Descriptor) *partialpull.Layer {
	if _, ok := partialpull.Pullable(desc.Annotations); !ok || ra == nil {
		return nil
	}
	pl, err := partialpull.Open(ra, desc.Size, desc.Annotations)
	if err != nil {
		return nil
	}
	return pl
}

// previous is what the node holds of an earlier version of the image.
type previous struct {
	digest string
	layers []v1.Hash
	// partial are the TOCs of its layers a node with partial pulls pulled
	// partially, by digest.
	partial map[v1.Hash]*partialpull.Layer
}

// readPrevious reads img, the previous version: its layers' digests and
// the TOCs of its partially pullable layers. The TOCs of layers the image
// estimated has too are taken from there (cur); the others are read from
// their blobs, each downloaded to a temporary file and removed.
func (o *options) readPrevious(ctx context.Context, img v1.Image, cur []*layerInfo) (*previous, error) {
	p := &previous{partial: map[v1.Hash]*partialpull.Layer{}}
	if d, err := img.Digest(); err == nil {
		p.digest = d.String()
	}
	mf, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("previous image: reading the manifest: %w", err)
	}
	known := map[v1.Hash]*layerInfo{}
	for _, l := range cur {
		known[l.desc.Digest] = l
	}
	tmp := ""
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	for i, desc := range mf.Layers {
		p.layers = append(p.layers, desc.Digest)
		if _, ok := partialpull.Pullable(desc.Annotations); !ok || p.partial[desc.Digest] != nil {
			continue
		}
		if l := known[desc.Digest]; l != nil {
			if l.partial != nil {
				p.partial[desc.Digest] = l.partial
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if tmp == "" {
			if tmp, err = os.MkdirTemp(o.tempDir, "coldstart-previous-"); err != nil {
				return nil, fmt.Errorf("creating a temporary directory: %w", err)
			}
		}
		pl, err := readPartial(ctx, img, desc, filepath.Join(tmp, fmt.Sprintf("layer-%d", i)))
		if err != nil {
			return nil, fmt.Errorf("previous image: layer %d %s: %w", i, desc.Digest, err)
		}
		if pl != nil {
			p.partial[desc.Digest] = pl
		}
	}
	return p, nil
}

// readPartial downloads one blob of img to name and reads its TOC as
// containers/storage does; nil when it would not pull it partially.
func readPartial(ctx context.Context, img v1.Image, desc v1.Descriptor, name string) (*partialpull.Layer, error) {
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("opening the blob: %w", err)
	}
	defer rc.Close()
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	defer os.Remove(name)
	defer f.Close()
	n, err := io.Copy(f, ctxReader{ctx, rc})
	if err != nil {
		return nil, fmt.Errorf("reading the blob: %w", err)
	}
	if n != desc.Size {
		return nil, fmt.Errorf("%w: descriptor says %d bytes, blob has %d", layers.ErrSizeMismatch, desc.Size, n)
	}
	return openPartial(f, desc), nil
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// partialLayerStat is what a partial pull fetches of one layer.
type partialLayerStat struct {
	bytes    int64
	requests int
	plan     *partialpull.Plan
}

// partialPull is a node with containers/storage's partial pulls (podman,
// CRI-O): the puller's fixed cost (Rates.PullOverhead), the registry ping, the manifests and the config, one after the
// other; then, PartialPullConcurrency layers at a time, every layer it
// does not hold: a layer it pulls partially costs its TOC reads (and
// parsing the TOC), creating its entries (Rates.PartialEntry each) and copying the files and chunks
// the store has (store: the TOCs of the layers the node pulled
// partially), then one multi-range GET of the rest, decompressed, checked
// and written as it arrives; any other layer is downloaded whole. Then
// the layers downloaded whole are unpacked, in order, and the container
// starts.
func (m *model) partialPull(store *partialpull.Store) (*build, []partialLayerStat) {
	b := m.newBuild(PartialPull)
	stats := make([]partialLayerStat, len(m.layers))
	// The puller's own fixed cost (PullOverhead), counted before the
	// first request.
	init := b.p.work(m.rates.PullOverhead, phaseDownload)
	prev := b.req(PingBytes, 0, phaseDownload, catMetadata, init)
	for _, n := range m.manifests {
		prev = b.req(n, 0, phaseDownload, catMetadata, prev)
	}
	cfg := b.req(m.config, 0, phaseDownload, catMetadata, prev)
	b.downloadTasks = append(b.downloadTasks, cfg)
	pool := b.p.pool(PartialPullConcurrency)
	var whole []int
	seen := map[v1.Hash]bool{}
	for i, l := range m.layers {
		if l.held || seen[l.desc.Digest] {
			continue
		}
		seen[l.desc.Digest] = true
		st := &stats[i]
		pl := l.partial
		if pl == nil {
			b.count(l.idx.Size, catLayer)
			st.bytes, st.requests = l.idx.Size, 1
			b.downloadTasks = append(b.downloadTasks, b.p.add(task{deps: []int{cfg}, pool: pool, request: true, bytes: float64(l.idx.Size), phase: phaseDownload}))
			whole = append(whole, i)
			continue
		}
		comp := layers.Gzip
		if pl.Format == partialpull.ZstdChunked {
			comp = layers.Zstd
		}
		t := cfg
		for k, r := range pl.TOCReads {
			cpu := 0.0
			if k == len(pl.TOCReads)-1 {
				cpu = float64(pl.Entries) * m.rates.TOCEntry
			}
			b.count(r.Length, catMetadata)
			tk := task{deps: []int{t}, pool: -1, request: true, bytes: float64(r.Length), cpu: cpu, phase: phaseDownload}
			if k == 0 {
				tk.pool = pool
			}
			t = b.p.add(tk)
			st.bytes += r.Length
			st.requests++
		}
		plan := pl.Plan(store)
		st.plan = &plan
		// Every entry created; the files the store has copied, their
		// chunks checked.
		t = b.p.work(float64(pl.Entries)*m.rates.partialEntry()+div(float64(plan.CopiedBytes), m.rates.Unpack)+div(float64(plan.CopiedBytes), m.rates.Verify), phaseDownload, t)
		if plan.ResponseBytes > 0 {
			b.count(plan.ResponseBytes, catFiles)
			cpu := m.rates.chunkCPU(comp, plan.FetchedBytes) + div(float64(plan.FetchedBytes), m.rates.Unpack)
			t = b.p.request(float64(plan.ResponseBytes), cpu, phaseDownload, t)
			st.bytes += plan.ResponseBytes
			st.requests++
		}
		b.downloadTasks = append(b.downloadTasks, t)
		b.cost.UnpackBytes += pl.FileBytes
	}
	// containers/image commits the layers when every one is copied: the
	// layers downloaded whole are unpacked then, in order.
	last := b.p.work(0, phaseDownload, b.downloadTasks...)
	for _, i := range whole {
		l := m.layers[i]
		last = b.p.work(m.rates.applyCPU(l.idx.Compression, l.idx.UncompressedSize, l.entries()), phaseUnpack, last)
		if b.unpackFirst < 0 {
			b.unpackFirst = last
		}
		b.cost.UnpackBytes += l.idx.UncompressedSize
	}
	b.unpackLast = last
	b.start = b.p.work(m.start, phaseOnDemand, last)
	return b, stats
}

// partialApplies says whether the report shows the partial pull: an
// earlier version is given, or containers/storage pulls some layer of the
// image partially.
func (m *model) partialApplies(prev *previous) bool {
	if prev != nil {
		return true
	}
	for _, l := range m.layers {
		if l.partial != nil {
			return true
		}
	}
	return false
}

// partialStore is what a partial pull searches for the files it does not
// fetch: the TOCs of the layers the node pulled partially, which are the
// previous version's and the held layers of the image that
// containers/storage pulls partially, each blob once.
func (m *model) partialStore(prev *previous) *partialpull.Store {
	var s partialpull.Store
	added := map[v1.Hash]bool{}
	if prev != nil {
		for _, d := range prev.layers {
			if pl := prev.partial[d]; pl != nil && !added[d] {
				added[d] = true
				s.Add(pl)
			}
		}
	}
	for _, l := range m.layers {
		if l.held && l.partial != nil && !added[l.desc.Digest] {
			added[l.desc.Digest] = true
			s.Add(l.partial)
		}
	}
	return &s
}

// partialEntry is the cost of one entry a partial pull writes:
// Rates.PartialEntry, or UnpackEntry where that is not set.
func (r Rates) partialEntry() float64 {
	if r.PartialEntry > 0 {
		return r.PartialEntry
	}
	return r.UnpackEntry
}
