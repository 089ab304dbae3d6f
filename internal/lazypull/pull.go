package lazypull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// Role is what a node does with one layer of the image it starts.
type Role int

// Roles.
const (
	// RoleHeld: the node holds the layer (by digest); nothing is fetched.
	RoleHeld Role = iota
	// RoleLazy: the layer is mounted lazily: footer, TOC, prefetch range,
	// then the chunks of the files read, on demand.
	RoleLazy
	// RoleFull: the layer is downloaded in full and unpacked before the
	// container starts.
	RoleFull
)

func (r Role) String() string {
	switch r {
	case RoleHeld:
		return "held"
	case RoleLazy:
		return "lazy"
	case RoleFull:
		return "full"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Roles decides, per layer, what a node does with it: a layer it holds is
// used as it is; a lazy layer is mounted from the registry; any other layer
// is downloaded and unpacked. containerd 2.4 with stargz-snapshotter 0.19
// treats each layer on its own this way (benchmarks/realstack measured it):
// a layer that is not lazy no longer makes the layers above it download in
// full, as earlier versions did; the start waits for it all the same.
func Roles(lazy, held []bool) []Role {
	out := make([]Role, len(lazy))
	for i := range lazy {
		switch {
		case held[i]:
			out[i] = RoleHeld
		case !lazy[i]:
			out[i] = RoleFull
		default:
			out[i] = RoleLazy
		}
	}
	return out
}

// Mountable reports whether stargz-snapshotter, with its default TOC
// verification, mounts the layer desc describes lazily: its descriptor
// carries the eStargz TOC digest it verifies the TOC against. A zstd:chunked
// layer carries no TOC digest (containers/storage refuses a layer with
// both), so it is downloaded in full unless the node disables verification.
func Mountable(desc v1.Descriptor) bool {
	return desc.Annotations[estargz.TOCJSONDigestAnnotation] != ""
}

// Result is what one measured start cost.
type Result struct {
	// Duration is the time from the first request (the manifest) to ready:
	// every layer mounted or unpacked and, for Start, every start-up file
	// read.
	Duration time.Duration `json:"duration"`
	// Mounted is when every layer was mounted (Start) or downloaded
	// (FullPull), from the first request.
	Mounted time.Duration `json:"mounted"`
	// Unpack is the time spent unpacking whole layers.
	Unpack time.Duration `json:"unpack"`
	// Bytes is the number of response body bytes received; Requests the
	// number of requests sent, authentication excluded.
	Bytes    int64 `json:"bytes"`
	Requests int   `json:"requests"`
	// Fetches lists the requests in the order they were sent.
	Fetches []Fetch `json:"fetches"`
	// Missing lists start-up files that lead to no file in the image.
	Missing []string `json:"missing,omitempty"`
	// Roles says what was done with each layer.
	Roles []Role `json:"roles"`
}

// FullPull measures a node without lazy pulling: it fetches the manifest
// and the config, downloads every layer the node does not hold (at most
// WithConcurrency at a time) to temporary files, checking their digests,
// then decompresses and unpacks them in order into a temporary directory,
// checking their DiffIDs. Everything it wrote is removed before it returns.
func FullPull(ctx context.Context, ref string, opts ...Option) (*Result, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	c, err := newClient(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	defer c.close()
	tmp, err := os.MkdirTemp(o.tempDir, "coldstart-pull-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	img, err := c.image(ctx, o)
	if err != nil {
		return nil, err
	}
	res := &Result{Roles: make([]Role, len(img.manifest.Layers))}
	var full []int
	for i, d := range img.manifest.Layers {
		if o.held[d.Digest] {
			res.Roles[i] = RoleHeld
			continue
		}
		res.Roles[i] = RoleFull
		full = append(full, i)
	}
	p, err := c.pull(ctx, img, full, tmp, o.concurrency, start)
	if err != nil {
		return nil, err
	}
	res.Mounted = p.downloaded
	res.Duration = time.Since(start)
	res.Unpack = p.unpack
	c.finish(res)
	return res, nil
}

func (c *client) finish(res *Result) {
	res.Bytes = c.bytes.Load()
	res.Requests = int(c.requests.Load())
	res.Fetches = c.fetches()
}

// download fetches the layers idx to files in dir, n at a time, checking
// each digest. A blob the image lists twice is fetched once, as a content
// store does.
// pulled is what pull did: the layers' entries, when the last download
// ended (from the start of the measurement) and the time spent unpacking.
type pulled struct {
	unpacked   map[int]*Unpacked
	downloaded time.Duration
	unpack     time.Duration
}

// pull downloads the layers idx (at most n at a time; a blob listed twice
// once) into dir and unpacks them in order into dir/rootfs, checking
// digests and DiffIDs, the way containerd's unpacker does it: layer i is
// applied as soon as it is downloaded and layer i-1 is applied, while the
// later layers are still downloading.
func (c *client) pull(ctx context.Context, img *image, idx []int, dir string, n int, start time.Time) (*pulled, error) {
	rootDir := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()

	paths := make(map[int]string, len(idx))
	done := make(map[int]chan struct{}, len(idx))
	g, gctx := errgroup.WithContext(ctx)
	first := map[v1.Hash]int{}
	var mu sync.Mutex
	var last time.Duration
	// The downloads run on their own limited group, so that the unpacking
	// below is never queued behind them.
	dl, dlctx := errgroup.WithContext(gctx)
	dl.SetLimit(n)
	for _, i := range idx {
		desc := img.manifest.Layers[i]
		if j, ok := first[desc.Digest]; ok {
			paths[i], done[i] = paths[j], done[j]
			continue
		}
		first[desc.Digest] = i
		paths[i] = filepath.Join(dir, fmt.Sprintf("layer-%d", i))
		done[i] = make(chan struct{})
	}
	g.Go(func() error {
		for _, i := range idx {
			if first[img.manifest.Layers[i].Digest] != i {
				continue
			}
			dl.Go(func() error {
				if err := c.downloadBlob(dlctx, i, img.manifest.Layers[i], paths[i]); err != nil {
					return fmt.Errorf("downloading layer %d %s: %w", i, img.manifest.Layers[i].Digest, err)
				}
				mu.Lock()
				last = max(last, time.Since(start))
				mu.Unlock()
				close(done[i])
				return nil
			})
		}
		return dl.Wait()
	})
	p := &pulled{unpacked: map[int]*Unpacked{}}
	g.Go(func() error {
		for _, i := range idx {
			select {
			case <-done[i]:
			case <-gctx.Done():
				return gctx.Err()
			}
			t := time.Now()
			u, err := c.unpackLayer(gctx, img, i, root, paths[i])
			p.unpack += time.Since(t)
			if err != nil {
				return err
			}
			p.unpacked[i] = u
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	p.downloaded = last
	return p, nil
}

func (c *client) downloadBlob(ctx context.Context, i int, desc v1.Descriptor, name string) error {
	resp, err := c.get(ctx, Fetch{Kind: KindBlob, Layer: i, Range: Range{Length: desc.Size}}, "/blobs/"+desc.Digest.String(), nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != desc.Size {
		return fmt.Errorf("%w: descriptor says %d bytes, got %d", layers.ErrSizeMismatch, desc.Size, n)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != desc.Digest.Hex {
		return fmt.Errorf("%w: blob hashes to sha256:%s", layers.ErrDigestMismatch, got)
	}
	return nil
}

// unpackLayer unpacks the downloaded layer i from path into root,
// checking its DiffID, and returns its entries.
func (c *client) unpackLayer(ctx context.Context, img *image, i int, root *os.Root, path string) (*Unpacked, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u, err := Unpack(ctx, root, f)
	if err != nil {
		return nil, fmt.Errorf("unpacking layer %d %s: %w", i, img.manifest.Layers[i].Digest, err)
	}
	if want := img.config.RootFS.DiffIDs[i]; u.DiffID != want {
		return nil, fmt.Errorf("unpacking layer %d %s: %w: config diff_id is %s, layer content hashes to %s",
			i, img.manifest.Layers[i].Digest, layers.ErrDigestMismatch, want, u.DiffID)
	}
	return u, nil
}

// Start measures a lazy start, as containerd with a lazy snapshotter
// (stargz-snapshotter) performs it, and reading the start-up files:
//
//  1. the manifest (and, for an index, the platform's manifest), then the
//     config;
//  2. the layers are given roles (see Roles and Mountable). The lazy ones
//     are mounted one after the other, bottom first: each costs a footer
//     request and a TOC request, then its prefetch range is fetched in the
//     background, its chunks decompressed and checked against the TOC. At
//     the same time the whole layers are downloaded, at most
//     WithConcurrency at a time, then unpacked in order;
//  3. when every layer is mounted, the files are read in the order given:
//     each is resolved through the image's symbolic links; a file of a
//     lazy layer that lies in the prefetch range waits for that prefetch;
//     otherwise the chunks that hold it are fetched, adjacent chunks in one
//     request, decompressed and checked. A file of a held or unpacked layer
//     costs nothing.
//
// Everything written to disk is removed before Start returns.
func Start(ctx context.Context, ref string, files []string, opts ...Option) (*Result, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	c, err := newClient(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	defer c.close()
	tmp, err := os.MkdirTemp(o.tempDir, "coldstart-lazy-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	img, err := c.image(ctx, o)
	if err != nil {
		return nil, err
	}
	n := len(img.manifest.Layers)
	lazy, held := make([]bool, n), make([]bool, n)
	for i, d := range img.manifest.Layers {
		lazy[i], held[i] = Mountable(d), o.held[d.Digest]
	}
	roles := Roles(lazy, held)
	res := &Result{Roles: roles}

	tocs := make([]*TOC, n)
	prefetched := make([]chan error, n)
	var prefetchWG sync.WaitGroup
	var full []int
	for i, r := range roles {
		if r == RoleFull {
			full = append(full, i)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	// Mount the lazy layers, bottom first; prefetch in the background.
	g.Go(func() error {
		mounted := map[v1.Hash]int{}
		for i, r := range roles {
			if r != RoleLazy {
				continue
			}
			desc := img.manifest.Layers[i]
			if j, ok := mounted[desc.Digest]; ok {
				// The same blob again: the snapshotter has it already.
				tocs[i], prefetched[i] = tocs[j], prefetched[j]
				continue
			}
			mounted[desc.Digest] = i
			ra := &blobReaderAt{ctx: gctx, c: c, digest: desc.Digest, layer: i, kinds: []Kind{KindFooter, KindTOC}}
			t, err := OpenTOC(ra, desc.Size)
			if err != nil {
				return fmt.Errorf("mounting layer %d %s: %w", i, desc.Digest, err)
			}
			tocs[i] = t
			ch := make(chan error, 1)
			prefetched[i] = ch
			if t.Prefetch.Length == 0 {
				ch <- nil
				continue
			}
			prefetchWG.Add(1)
			go func() {
				defer prefetchWG.Done()
				dc := &Decompressors{}
				defer dc.Close()
				ch <- c.fetchRange(ctx, i, desc.Digest, t, t.Prefetch, KindPrefetch, "", dc)
			}()
		}
		return nil
	})
	var unpacked map[int]*Unpacked
	g.Go(func() error {
		p, err := c.pull(gctx, img, full, tmp, o.concurrency, start)
		if err != nil {
			return err
		}
		unpacked, res.Unpack = p.unpacked, p.unpack
		return nil
	})
	err = g.Wait()
	if err != nil {
		cancel()
		prefetchWG.Wait()
		return nil, err
	}
	res.Mounted = time.Since(start)

	// The merged filesystem, as the node sees it.
	idxs := make([]*layers.Index, n)
	for i, r := range roles {
		switch r {
		case RoleLazy:
			idxs[i] = tocs[i].Index()
		case RoleFull:
			idxs[i] = &layers.Index{Entries: unpacked[i].Entries}
		default:
			idxs[i] = o.indexes[img.manifest.Layers[i].Digest]
			if idxs[i] == nil {
				idxs[i] = &layers.Index{}
			}
		}
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		cancel()
		prefetchWG.Wait()
		return nil, err
	}
	err = c.readFiles(ctx, img, ov, roles, tocs, prefetched, files, res)
	res.Duration = time.Since(start)
	cancel()
	prefetchWG.Wait()
	if err != nil {
		return nil, err
	}
	c.finish(res)
	return res, nil
}

// readFiles reads the start-up files in order.
func (c *client) readFiles(ctx context.Context, img *image, ov *layers.Overlay, roles []Role, tocs []*TOC,
	prefetched []chan error, files []string, res *Result) error {
	// A blob listed twice is mounted once: what was fetched and waited for
	// goes by TOC.
	waited := map[*TOC]bool{}
	var prefetchErr error
	fetched := map[*TOC]Fetched{}
	dc := &Decompressors{}
	defer dc.Close()
	for _, f := range files {
		ref, ok := Resolve(ov, f)
		if !ok {
			res.Missing = append(res.Missing, f)
			continue
		}
		e := ov.Entry(ref)
		if roles[ref.Layer] != RoleLazy || e.Type != layers.TypeReg {
			continue
		}
		t := tocs[ref.Layer]
		if fetched[t] == nil {
			fetched[t] = Fetched{}
		}
		wait, reqs := t.PlanFile(e.Path, fetched[t])
		if wait && !waited[t] {
			waited[t] = true
			if err := <-prefetched[ref.Layer]; err != nil && prefetchErr == nil {
				prefetchErr = err
			}
		}
		for _, r := range reqs {
			if err := c.fetchRange(ctx, ref.Layer, img.manifest.Layers[ref.Layer].Digest, t, r, KindChunk, f, dc); err != nil {
				return err
			}
		}
	}
	if prefetchErr != nil {
		return prefetchErr
	}
	return nil
}

// fetchRange fetches r of a lazy layer and checks every chunk in it.
func (c *client) fetchRange(ctx context.Context, layer int, digest v1.Hash, t *TOC, r Range, kind Kind, file string, dc *Decompressors) error {
	resp, err := c.get(ctx, Fetch{Kind: kind, Layer: layer, Range: r, Path: file}, "/blobs/"+digest.String(), &r, nil)
	if err != nil {
		return fmt.Errorf("layer %d %s: %w", layer, digest, err)
	}
	defer resp.Body.Close()
	if err := t.Verify(resp.Body, r, dc); err != nil {
		return fmt.Errorf("layer %d %s: bytes %d-%d: %w", layer, digest, r.Offset, r.End(), err)
	}
	return nil
}

// DefaultProbeRequests is how many requests a probe of the registry's time
// per request sends, as coldstart report --measure and the benchmark do.
const DefaultProbeRequests = 15

// Probe measures how long the registry takes to answer a request on a
// warm connection, beyond the network: it fetches the manifest and the
// config once, then sends n small range requests, one after the other, as
// a lazy mount does: the last 51 bytes of each layer blob in turn (of the
// config when the image has no layers). It returns their mean time. On
// loopback that is the registry's (and the client's) own time per request.
func Probe(ctx context.Context, ref string, n int, opts ...Option) (time.Duration, error) {
	if n < 1 {
		return 0, fmt.Errorf("lazypull: probe count must be at least 1, got %d", n)
	}
	o, err := makeOptions(opts)
	if err != nil {
		return 0, err
	}
	c, err := newClient(ctx, ref, o)
	if err != nil {
		return 0, err
	}
	defer c.close()
	img, err := c.image(ctx, o)
	if err != nil {
		return 0, err
	}
	blobs := img.manifest.Layers
	if len(blobs) == 0 {
		blobs = []v1.Descriptor{img.manifest.Config}
	}
	var sum time.Duration
	for i := range n {
		d := blobs[i%len(blobs)]
		k := min(d.Size, 51)
		rng := Range{Offset: d.Size - k, Length: k}
		start := time.Now()
		resp, err := c.get(ctx, Fetch{Kind: KindFooter, Layer: i % len(blobs), Range: rng}, "/blobs/"+d.Digest.String(), &rng, nil)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		sum += time.Since(start)
	}
	// The mean, not the median: a start pays every request, the slow ones
	// too.
	return sum / time.Duration(n), nil
}
