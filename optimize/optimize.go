package optimize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/ctxio"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// Action is what happened to one layer.
type Action string

// Actions.
const (
	// ActionKept: the output layer is the input layer, byte-identical.
	ActionKept Action = "kept"
	// ActionRewritten: the layer was converted in this run.
	ActionRewritten Action = "rewritten"
	// ActionReused: the converted layer came from the conversion cache.
	ActionReused Action = "reused"
	// ActionDropped: dedupe left nothing in the layer, so the output has no
	// layer for it (its history entry, when the config's history lists
	// one per layer, is marked empty_layer). A lazy puller mounts every
	// layer in turn, an empty one too.
	ActionDropped Action = "dropped"
)

// LayerResult says what was done to one layer and why.
type LayerResult struct {
	InputDigest  string `json:"inputDigest"`
	OutputDigest string `json:"outputDigest"`
	Action       Action `json:"action"`
	Reason       string `json:"reason"`
	// MediaType of the output layer.
	MediaType string `json:"mediaType"`
	// SizeBefore and SizeAfter are the compressed sizes.
	SizeBefore int64 `json:"sizeBefore"`
	SizeAfter  int64 `json:"sizeAfter"`
	// DroppedEntries and DroppedBytes count what dedupe removed.
	DroppedEntries int   `json:"droppedEntries,omitempty"`
	DroppedBytes   int64 `json:"droppedBytes,omitempty"`
	// Prioritized is the number of start-up entries put first: moved to
	// the front, or, in a recompressed base layer, copied ahead of its
	// unchanged stream.
	Prioritized int    `json:"prioritized,omitempty"`
	TOCDigest   string `json:"tocDigest,omitempty"`
}

// ImageResult says what was done to one image.
type ImageResult struct {
	Platform     string        `json:"platform,omitempty"`
	InputDigest  string        `json:"inputDigest"`
	OutputDigest string        `json:"outputDigest"`
	Layers       []LayerResult `json:"layers"`
	// BasePolicy is the policy applied to base layers ("" without a base)
	// and BasePolicyReason why it was chosen.
	BasePolicy       string `json:"basePolicy,omitempty"`
	BasePolicyReason string `json:"basePolicyReason,omitempty"`
	// StartupFiles is the number of start-up paths prioritized, and
	// ProfileWarnings what the profiler could not follow.
	StartupFiles    int      `json:"startupFiles"`
	ProfileWarnings []string `json:"profileWarnings,omitempty"`
	// MissingPrioritized lists start-up paths not found in the image.
	MissingPrioritized []string `json:"missingPrioritized,omitempty"`
	// OnDemand lists the start-up files left out of the prefetch sections:
	// large files read in part, through mmap (WithSparseLimit).
	OnDemand []string `json:"onDemand,omitempty"`
	// Estimate compares the cold start before and after (WithEstimate).
	Estimate *report.Comparison `json:"estimate,omitempty"`
	// CacheHits and CacheMisses count converted layers found in, and not
	// found in, the conversion cache.
	CacheHits    int   `json:"cacheHits"`
	CacheMisses  int   `json:"cacheMisses"`
	BytesBefore  int64 `json:"bytesBefore"`
	BytesAfter   int64 `json:"bytesAfter"`
	RemovedBytes int64 `json:"removedBytes"`
}

// Result says what Image or Index did. The image or index it returns reads the
// converted layers from temporary files until Close is called: write it
// first.
type Result struct {
	// Digest is the digest of the output image or index.
	Digest string         `json:"digest"`
	Images []*ImageResult `json:"images"`
	// BytesBefore and BytesAfter sum the compressed layer sizes of every
	// image; RemovedBytes sums the file bytes dedupe dropped.
	BytesBefore  int64 `json:"bytesBefore"`
	BytesAfter   int64 `json:"bytesAfter"`
	RemovedBytes int64 `json:"removedBytes"`
	// Layers lists every layer result of every image, in order.
	Layers []LayerResult `json:"layers"`
	// CacheHits and CacheMisses sum the images' cache counts.
	CacheHits   int `json:"cacheHits"`
	CacheMisses int `json:"cacheMisses"`

	Image v1.Image      `json:"-"`
	Index v1.ImageIndex `json:"-"`

	tmp *tempDir
}

// Close removes the temporary files behind the output and releases the
// layers reused from the cache.
func (r *Result) Close() error {
	if r == nil || r.tmp == nil {
		return nil
	}
	return r.tmp.remove()
}

// reuse returns the converted layer stored under key, or nil.
func (m *memory) reuse(ctx context.Context, key string, tmp *tempDir) v1.Layer {
	l, err := m.c.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, cache.ErrNotFound) {
			m.logger.Warn("conversion cache: reading layer", "key", key, "err", err)
		}
		return nil
	}
	if c, ok := l.(io.Closer); ok {
		tmp.hold(c)
	}
	return l
}

// describeReused fills a layer result from a layer out of the cache.
func describeReused(lr *LayerResult, l v1.Layer) error {
	d, err := partial.Descriptor(l)
	if err != nil {
		return err
	}
	lr.OutputDigest = d.Digest.String()
	lr.SizeAfter = d.Size
	lr.MediaType = string(d.MediaType)
	if t := d.Annotations[estargz.TOCJSONDigestAnnotation]; t != "" {
		lr.TOCDigest = t
	}
	return nil
}

// Image optimizes one image. See the package documentation for what it
// does. On success the caller must Close the result after writing its
// output (Result.Image).
func Image(ctx context.Context, img v1.Image, opts ...Option) (*Result, error) {
	return run(ctx, opts, func(o *pipeline, tmp *tempDir, res *Result) error {
		out, ir, err := o.optimizeImage(ctx, img, nil, tmp)
		if err != nil {
			return err
		}
		res.Image, res.Images = out, []*ImageResult{ir}
		return nil
	})
}

// Index optimizes every image of an index, and of the indexes nested in it;
// other entries (attestations, unknown artifacts) stay as they are. On
// success the caller must Close the result after writing its output
// (Result.Index).
func Index(ctx context.Context, idx v1.ImageIndex, opts ...Option) (*Result, error) {
	return run(ctx, opts, func(o *pipeline, tmp *tempDir, res *Result) error {
		out, irs, err := o.optimizeIndex(ctx, idx, tmp)
		if err != nil {
			return err
		}
		res.Index, res.Images = out, irs
		return nil
	})
}

// pipeline is one optimization: the options and what the steps share (the
// memory of the conversion cache is one of the options').
type pipeline struct {
	*options
	// inferred says which layer was taken for the base's, and why
	// (WithInferredBase); "" when none was.
	inferred string
}

// newPipeline makes the options of a call.
func newPipeline(opts []Option) (*pipeline, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return &pipeline{options: o}, nil
}

// run makes the pipeline and the temporary directory, runs fn and sums the
// images' figures into the result.
func run(ctx context.Context, opts []Option, fn func(o *pipeline, tmp *tempDir, res *Result) error) (_ *Result, err error) {
	o, err := newPipeline(opts)
	if err != nil {
		return nil, err
	}
	if err := o.resolveBases(ctx); err != nil {
		return nil, err
	}
	tmp, err := newTempDir(o.tempDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tmp.remove()
		}
	}()
	res := &Result{tmp: tmp}
	if err := fn(o, tmp, res); err != nil {
		return nil, err
	}
	var d v1.Hash
	if res.Index != nil {
		d, err = res.Index.Digest()
	} else {
		d, err = res.Image.Digest()
	}
	if err != nil {
		return nil, err
	}
	res.Digest = d.String()
	res.Layers = []LayerResult{}
	for _, ir := range res.Images {
		res.BytesBefore += ir.BytesBefore
		res.BytesAfter += ir.BytesAfter
		res.RemovedBytes += ir.RemovedBytes
		res.CacheHits += ir.CacheHits
		res.CacheMisses += ir.CacheMisses
		res.Layers = append(res.Layers, ir.Layers...)
	}
	return res, nil
}

// optimizeImage optimizes one image. desc is its descriptor in an index, if
// any.
func (o *pipeline) optimizeImage(ctx context.Context, img v1.Image, desc *v1.Descriptor, tmp *tempDir) (v1.Image, *ImageResult, error) {
	inDigest, err := img.Digest()
	if err != nil {
		return nil, nil, fmt.Errorf("reading image digest: %w", err)
	}
	o = o.withInferredBase(img)
	wrap := func(err error) error { return fmt.Errorf("image %s: %w", inDigest, err) }
	if m, err := img.Manifest(); err == nil && m.Annotations[AnnotationOptions] == o.fingerprint() {
		ir := &ImageResult{InputDigest: inDigest.String(), OutputDigest: inDigest.String(), Layers: []LayerResult{}}
		if desc != nil && desc.Platform != nil {
			ir.Platform = desc.Platform.String()
		}
		for _, l := range m.Layers {
			ir.Layers = append(ir.Layers, LayerResult{InputDigest: l.Digest.String(), OutputDigest: l.Digest.String(),
				Action: ActionKept, Reason: "already optimized with these options", MediaType: string(l.MediaType),
				SizeBefore: l.Size, SizeAfter: l.Size})
			ir.BytesBefore += l.Size
			ir.BytesAfter += l.Size
		}
		return img, ir, nil
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, nil, wrap(fmt.Errorf("listing layers: %w", err))
	}
	if o.cache != nil {
		if out, ir, ok := o.replay(ctx, img, ls, inDigest, tmp); ok {
			ir.Platform = ""
			if desc != nil && desc.Platform != nil {
				ir.Platform = desc.Platform.String()
			}
			return out, ir, nil
		}
	}
	idxs, err := o.indexImage(ctx, img, platformOf(desc))
	if err != nil {
		return nil, nil, wrap(err)
	}
	idxs, moved := resolveSymlinkParents(idxs)
	ov, err := layers.Merge(idxs...)
	if err != nil {
		return nil, nil, wrap(err)
	}
	ir := &ImageResult{InputDigest: inDigest.String(), Layers: make([]LayerResult, len(ls))}
	if desc != nil && desc.Platform != nil {
		ir.Platform = desc.Platform.String()
	}
	tars := newSpool(ctx, ls, tmp)
	defer tars.Close()
	prio, warnings, err := o.startupFiles(ctx, img, newImageFS(ov, tars))
	if err != nil {
		return nil, nil, wrap(err)
	}
	roles, reasons := o.roles(idxs, ov, prio, moved, ir)
	o = o.withTopFormat(ir.BasePolicy)
	p := makePlan(ov, roles, reasons, moved, o.dedupe, o.encode.Format)
	profiling := o.profiling()
	var runtimeFiles []string
	if profiling {
		runtimeFiles = unnamedRuntimeFiles(prio)
	}
	p.prioritize(runtimeFiles, prio, o.sparseLimit)
	if n := convertedPrefix(roles); n > 0 && profiling {
		// A base converted as it is gets the start-up files of the base
		// alone first, so it stays the same for every image on it.
		if base, err := layers.Merge(idxs[:n]...); err == nil {
			p.prioritizeBase(base, baseStartupFiles(ctx, base, tars, o.logger), o.sparseLimit)
		}
	}
	ir.MissingPrioritized = p.missing
	ir.OnDemand = p.sparse
	ir.StartupFiles = len(prio)
	ir.ProfileWarnings = warnings

	var dropped []bool
	if o.dedupe {
		dropped = p.emptyLayers()
	}
	out := make([]v1.Layer, len(ls))
	keys := make([]string, len(ls))
	keptAnnots := map[int]map[string]string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency)
	for i := range ls {
		lp := p.layers[i]
		idx := idxs[i]
		lr := &ir.Layers[i]
		lr.InputDigest = idx.Digest.String()
		lr.SizeBefore = idx.Size
		lr.Reason = lp.reason
		keep := func() {
			out[i] = ls[i]
			lr.Action = ActionKept
			lr.OutputDigest = lr.InputDigest
			lr.SizeAfter = idx.Size
			lr.MediaType = string(idx.MediaType)
			if idx.TOCDigest.Hex != "" {
				lr.TOCDigest = idx.TOCDigest.String()
			}
		}
		if lp.role == RoleKeep {
			keep()
			if idx.Lazy != layers.NotLazy {
				a, err := o.keptLazyAnnotations(ctx, ls[i], idx, tmp)
				if err != nil {
					return nil, nil, wrap(fmt.Errorf("layer %d %s: %w", i, idx.Digest, err))
				}
				if a != nil {
					keptAnnots[i] = a
					lr.Reason += "; its lazy-pull annotations, missing or wrong, re-derived from the blob"
				}
			}
			continue
		}
		lr.DroppedEntries = lp.droppedFiles
		lr.DroppedBytes = lp.droppedBytes
		if dropped != nil && dropped[i] {
			lr.Action = ActionDropped
			lr.Reason = "no container sees anything in it: no layer in the output"
			continue
		}
		key := ""
		if o.cache != nil {
			key = o.layerKey(idx, lp, idxs)
			keys[i] = key
			if cl := o.mem.reuse(ctx, key, tmp); cl != nil {
				out[i] = cl
				lr.Action = ActionReused
				lr.Reason += " (reused from the conversion cache)"
				lr.Prioritized = len(lp.prioritized)
				if err := describeReused(lr, cl); err != nil {
					return nil, nil, wrap(err)
				}
				ir.CacheHits++
				continue
			}
			ir.CacheMisses++
		}
		g.Go(func() error {
			nl, enc, err := o.convertLayer(gctx, ls[i], tars, i, idxs, lp, tmp, ir.Platform)
			var refused *notRecompressibleError
			if errors.As(err, &refused) {
				keep()
				lr.Reason = "base image layer: kept byte-identical, as " + refused.why
				return nil
			}
			if err != nil {
				return fmt.Errorf("layer %d %s: %w", i, idx.Digest, err)
			}
			if key != "" {
				from := cache.Origin{Image: inDigest.String(), Layer: idx.Digest.String()}
				if err := o.cache.Put(gctx, key, cache.From(nl, from)); err != nil {
					o.logger.Warn("conversion cache: storing layer", "layer", idx.Digest, "err", err)
				}
				o.mem.storeTOCTail(gctx, nl.(*fileLayer).path, enc, from)
			}
			out[i] = nl
			lr.Action = ActionRewritten
			lr.OutputDigest = enc.Digest.String()
			lr.SizeAfter = enc.Size
			lr.MediaType = string(enc.MediaType)
			lr.Prioritized = len(lp.prioritized) - len(enc.MissingPrioritized)
			if enc.TOCDigest.Hex != "" {
				lr.TOCDigest = enc.TOCDigest.String()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, wrap(err)
	}
	for _, lr := range ir.Layers {
		ir.BytesBefore += lr.SizeBefore
		ir.BytesAfter += lr.SizeAfter
		ir.RemovedBytes += lr.DroppedBytes
	}
	changed := len(keptAnnots) > 0
	for i := range ls {
		if ir.Layers[i].Action != ActionKept {
			changed = true
		}
	}
	if !changed {
		ir.OutputDigest = ir.InputDigest
		if o.estimate {
			if ir.Estimate, err = o.estimateImage(ctx, img, img, idxs, ls, ls, p, ir, prio, warnings, tmp); err != nil {
				return nil, nil, wrap(fmt.Errorf("estimating the cold start: %w", err))
			}
		}
		o.storeRecord(ctx, inDigest, ir, keys, keptAnnots)
		return img, ir, nil
	}
	kept := make([]bool, len(ls))
	for i := range ls {
		kept[i] = ir.Layers[i].Action == ActionKept
	}
	newImg, err := assembleImage(img, out, kept, keptAnnots, o.annotations())
	if err != nil {
		return nil, nil, wrap(err)
	}
	d, err := newImg.Digest()
	if err != nil {
		return nil, nil, wrap(err)
	}
	ir.OutputDigest = d.String()
	if o.estimate {
		if ir.Estimate, err = o.estimateImage(ctx, img, newImg, idxs, ls, out, p, ir, prio, warnings, tmp); err != nil {
			return nil, nil, wrap(fmt.Errorf("estimating the cold start: %w", err))
		}
	}
	o.storeRecord(ctx, inDigest, ir, keys, keptAnnots)
	return newImg, ir, nil
}

// keptLazyAnnotations returns the annotations the descriptor of a kept lazy
// layer must carry so that its puller can verify it (derived from the blob,
// every other annotation kept), or nil when it carries them already.
func (o *pipeline) keptLazyAnnotations(ctx context.Context, l v1.Layer, idx *layers.Index, tmp *tempDir) (map[string]string, error) {
	d, err := partial.Descriptor(l)
	if err != nil {
		return nil, err
	}
	have := d.Annotations
	var blob *io.SectionReader
	switch idx.Lazy {
	case layers.ZstdChunked:
		complete := true
		for _, k := range layers.ZstdChunkedAnnotationKeys {
			complete = complete && have[k] != ""
		}
		if complete {
			return nil, nil // checked by VerifyImage
		}
		f, err := tmp.create("kept-*")
		if err != nil {
			return nil, err
		}
		defer tmp.discard(f)
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("reading blob: %w", err)
		}
		n, err := io.Copy(f, ctxio.Reader(ctx, rc))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading blob: %w", err)
		}
		blob = io.NewSectionReader(f, 0, n)
	}
	want, err := layers.LazyAnnotations(blob, idx)
	if err != nil {
		return nil, fmt.Errorf("deriving lazy-pull annotations: %w", err)
	}
	same := true
	for k, v := range want {
		same = same && have[k] == v
	}
	if same {
		return nil, nil
	}
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out, nil
}

// withTopFormat is the pipeline that converts the layers above a base
// under the base policy applied: without WithFormat, the layers above a
// recompressed base are written in its format, zstd:chunked for
// containerd (WithFormat says why).
func (o *pipeline) withTopFormat(policy string) *pipeline {
	if o.formatSet || policy != BaseRecompress.String() || o.encode.Format == layers.FormatZstdChunkedContainerd {
		return o
	}
	oc := *o.options
	oc.encode.Format = layers.FormatZstdChunkedContainerd
	return &pipeline{options: &oc, inferred: o.inferred}
}

// roles decides, per layer, whether it is kept, converted or rewritten.
func (o *pipeline) roles(idxs []*layers.Index, ov *layers.Overlay, files []string, moved []map[int]layers.Moved, ir *ImageResult) ([]Role, []string) {
	roles := make([]Role, len(idxs))
	reasons := make([]string, len(idxs))
	policy := o.basePolicy
	if len(o.baseLayers) > 0 {
		if policy == BaseAuto {
			policy, ir.BasePolicyReason = o.chooseBasePolicy(idxs, ov, files, moved)
		} else {
			ir.BasePolicyReason = "set by option"
		}
		ir.BasePolicy = policy.String()
		if o.inferred != "" {
			ir.BasePolicyReason = o.inferred + "; " + ir.BasePolicyReason
		}
	}
	for i, idx := range idxs {
		roles[i], reasons[i] = RoleRewrite, "converted"
		switch {
		case idx.Foreign:
			roles[i], reasons[i] = RoleKeep, "foreign (non-distributable) layer: left as it is"
		case o.cachedLayers[idx.Digest]:
			roles[i], reasons[i] = RoleKeep, "cached on nodes (given digest): kept byte-identical"
		case o.baseLayers[idx.Digest] && policy == BaseKeep:
			roles[i], reasons[i] = RoleKeep, "base image layer: kept byte-identical"
		case o.baseLayers[idx.Digest] && policy == BaseRecompress:
			roles[i], reasons[i] = RoleRecompress, "base image layer: recompressed to zstd:chunked for containerd, its tar stream unchanged, so nodes that hold the base reuse it (start-up files are copied ahead of the stream, for the prefetch)"
		case o.baseLayers[idx.Digest]:
			roles[i], reasons[i] = RoleConvert, "base image layer: converted as it is, so every image on this base shares it"
		case idx.Lazy != layers.NotLazy && !o.force:
			roles[i], reasons[i] = RoleKeep, fmt.Sprintf("already %s: kept byte-identical", idx.Lazy)
		case o.dedupe:
			reasons[i] = "deduped and converted"
		}
	}
	return roles, reasons
}

// convertLayer writes the layer's kept entries to a temporary tar, encodes
// it into a temporary blob, and returns a layer backed by that blob.
func (o *pipeline) convertLayer(ctx context.Context, l v1.Layer, tars *layers.Spool, li int, idxs []*layers.Index, lp *layerPlan, tmp *tempDir, platform string) (v1.Layer, *layers.Encoded, error) {
	idx := idxs[li]
	if lp.role == RoleRecompress {
		return o.recompressLayer(ctx, tars, li, idx, lp, tmp, platform)
	}
	var rc io.Reader
	if extracted := tars.Spooled(li); extracted != nil {
		// Already decompressed for the profiler: read that copy.
		rc = io.NewSectionReader(extracted, 0, idx.UncompressedSize)
	} else {
		blob, err := l.Compressed()
		if err != nil {
			return nil, nil, fmt.Errorf("opening blob: %w", err)
		}
		defer blob.Close()
		rc = blob
	}
	tarFile, err := tmp.create("tar-*")
	if err != nil {
		return nil, nil, err
	}
	defer tmp.discard(tarFile)
	rp := layers.RewritePlan{Keep: func(i int) bool { return lp.keep[i] }, Moved: lp.moved}
	if len(lp.links) > 0 {
		rp.Links = make(map[int]layers.LinkSource, len(lp.links))
		for i, ls := range lp.links {
			if ls.relink != "" {
				rp.Links[i] = layers.LinkSource{Relink: ls.relink}
				continue
			}
			f := ls.file
			fe := &idxs[f.Layer].Entries[f.Entry]
			rp.Links[i] = layers.LinkSource{File: fe, Open: func() (io.ReadCloser, error) {
				t, err := tars.Tar(f.Layer)
				if err != nil {
					return nil, fmt.Errorf("layer %d: %w", f.Layer, err)
				}
				return io.NopCloser(io.NewSectionReader(t, fe.DataOffset, fe.Size)), nil
			}}
		}
	}
	if len(lp.dirs) > 0 {
		rp.Dirs = lp.dirs
	}
	n, err := layers.Rewrite(ctx, rc, idx, rp, tarFile)
	if err != nil {
		return nil, nil, err
	}
	eo := o.encode
	if lp.role == RoleRewrite || lp.role == RoleConvert {
		eo.Prioritized = lp.prioritized
		eo.OnDemand = lp.onDemand
	}
	eo.StartupLevel = o.startupLevelFor(eo.Format)
	eo.Progress = o.convertProgress(platform, li, idx, n)
	return encodeToBlob(ctx, io.NewSectionReader(tarFile, 0, n), eo, tmp, nil)
}

// encodeToBlob encodes src into a temporary blob and returns a layer backed
// by it. check (nil: none) may refuse the result, and then the blob goes.
func encodeToBlob(ctx context.Context, src *io.SectionReader, eo layers.EncodeOptions, tmp *tempDir, check func(*layers.Encoded) error) (v1.Layer, *layers.Encoded, error) {
	blob, err := tmp.create("blob-*")
	if err != nil {
		return nil, nil, err
	}
	enc, err := layers.Encode(ctx, src, blob, eo)
	if err == nil && check != nil {
		err = check(enc)
	}
	if err == nil {
		err = blob.Close()
	}
	if err != nil {
		tmp.discard(blob)
		return nil, nil, err
	}
	return newFileLayer(blob.Name(), enc), enc, nil
}

// convertProgress is the encoder's progress callback for layer li, which
// reports PhaseConvert events of total bytes; nil without a progress
// function.
func (o *pipeline) convertProgress(platform string, li int, idx *layers.Index, total int64) func(int64) {
	if o.progress == nil {
		return nil
	}
	digest := idx.Digest.String()
	var done int64
	var mu sync.Mutex
	return func(k int64) {
		mu.Lock()
		done += k
		d := done
		mu.Unlock()
		o.progress(Progress{Phase: PhaseConvert, Platform: platform, Layer: li, Digest: digest, Done: d, Total: total})
	}
}

// notRecompressibleError says why a base layer cannot be recompressed (and
// so stays byte-identical): why completes "kept byte-identical, as".
type notRecompressibleError struct{ why string }

func (e *notRecompressibleError) Error() string { return e.why }

// recompressLayer encodes layer li's tar stream as it is into zstd:chunked
// for containerd, without prioritized files. It returns a
// *notRecompressibleError for a layer recompressRefusal refuses, and when
// the encoder had to change the stream (it keeps one entry per name, and
// drops PAX global headers), which would change the layer's DiffID: then
// the blob is discarded.
func (o *pipeline) recompressLayer(ctx context.Context, tars *layers.Spool, li int, idx *layers.Index, lp *layerPlan, tmp *tempDir, platform string) (v1.Layer, *layers.Encoded, error) {
	if why := recompressRefusal(idx, lp.moved); why != "" {
		return nil, nil, &notRecompressibleError{why: why}
	}
	src, err := tars.Tar(li)
	if err != nil {
		return nil, nil, err
	}
	eo := o.encode
	eo.Format = layers.FormatZstdChunkedContainerd
	eo.Prioritized = lp.prioritized // copied ahead of the stream, which stays as it is
	eo.OnDemand = lp.onDemand
	eo.KeepOrder = true
	eo.Level = 0 // the format's default: the target's level is for its own compression
	eo.StartupLevel = o.startupLevelFor(eo.Format)
	eo.Progress = o.convertProgress(platform, li, idx, idx.UncompressedSize)
	return encodeToBlob(ctx, io.NewSectionReader(src, 0, idx.UncompressedSize), eo, tmp, func(enc *layers.Encoded) error {
		if enc.DiffID != idx.DiffID {
			return &notRecompressibleError{why: fmt.Sprintf("recompressing it would change its tar stream (DiffID %s would become %s)", idx.DiffID, enc.DiffID)}
		}
		return nil
	})
}

// Phase names the work a Progress event reports on.
type Phase string

// The phases, in the order a layer goes through them.
const (
	// PhasePull: the source layer's blob is read and indexed; Done and
	// Total count its compressed bytes. A layer whose index comes from the
	// conversion cache is not read, and not reported.
	PhasePull Phase = "pull"
	// PhaseConvert: the layer's kept entries are encoded; Done and Total
	// count uncompressed tar bytes.
	PhaseConvert Phase = "convert"
	// PhasePush: the output layer's blob is written to the destination;
	// Done and Total count its compressed bytes. The optimize package does
	// not write; the coldstart package reports this phase.
	PhasePush Phase = "push"
)

// Progress reports the bytes of one layer done in one phase.
type Progress struct {
	Phase Phase
	// Platform is the image's in an index, "" for a single image.
	Platform string
	// Layer is the layer's position in its image (0 is the base), as
	// ImageResult.Layers numbers them.
	Layer int
	// Digest is the layer's: the input's for pull and convert, the
	// output's for push.
	Digest string
	// Done and Total count bytes: compressed for pull and push,
	// uncompressed tar bytes for convert.
	Done, Total int64
}

// tempDir holds the temporary files of one Image or Index call, and the layers
// reused from the cache that must be closed with them.
type tempDir struct {
	dir     string
	mu      sync.Mutex
	closers []io.Closer
}

func (t *tempDir) hold(c io.Closer) {
	t.mu.Lock()
	t.closers = append(t.closers, c)
	t.mu.Unlock()
}

func newTempDir(parent string) (*tempDir, error) {
	d, err := os.MkdirTemp(parent, "coldstart-")
	if err != nil {
		return nil, fmt.Errorf("creating temporary directory: %w", err)
	}
	return &tempDir{dir: d}, nil
}

func (t *tempDir) create(pattern string) (*os.File, error) {
	f, err := os.CreateTemp(t.dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("creating temporary file: %w", err)
	}
	return f, nil
}

func (t *tempDir) discard(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

func (t *tempDir) remove() error {
	t.mu.Lock()
	var errs []error
	for _, c := range t.closers {
		errs = append(errs, c.Close())
	}
	t.closers = nil
	t.mu.Unlock()
	if err := os.RemoveAll(t.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
