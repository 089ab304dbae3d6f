package optimize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sort"
	"sync"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of the small records kept in the conversion cache.
const (
	indexMediaType   types.MediaType = "application/vnd.coldstart.layer-index.v1+gob"
	profileMediaType types.MediaType = "application/vnd.coldstart.profile.v1+json"
	recordMediaType  types.MediaType = "application/vnd.coldstart.image-record.v1+json"
	// maxRecord bounds what is read back for an index or a profile.
	maxRecord = 1 << 30
)

// AnnotationOptions is set on the manifest of every optimized image: the
// fingerprint of the options it was made with. Optimizing an image that
// carries the fingerprint of the current options returns it unchanged.
const AnnotationOptions = "dev.coldstart.options"

var (
	depsOnce sync.Once
	deps     string
)

// libraryVersions names the versions of the compression libraries the
// encoder uses; a new version may compress to other bytes.
func libraryVersions() string {
	depsOnce.Do(func() {
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			deps = "unknown"
			return
		}
		var parts []string
		for _, m := range bi.Deps {
			switch m.Path {
			case "github.com/klauspost/compress", "github.com/containerd/stargz-snapshotter/estargz":
				v := m.Version
				if m.Replace != nil {
					v = m.Replace.Path + "@" + m.Replace.Version
				}
				parts = append(parts, m.Path+"@"+v)
			}
		}
		sort.Strings(parts)
		deps = fmt.Sprint(parts)
	})
	return deps
}

func hashJSON(v any) string {
	b, _ := json.Marshal(v)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// encodeFingerprint covers everything of the encoding that shapes bytes.
func (o *options) encodeFingerprint() map[string]any {
	return map[string]any{
		"format": o.encode.Format.String(), "level": o.encode.Level, "chunk": o.encode.ChunkSize,
		"startupLevel": o.startupLevelFor(o.encode.Format),
		"encoder":      o.encode.Format.EncoderVersion(), "libs": libraryVersions(),
		"gzipDefault": layers.DefaultGzipLevel, "zstdDefault": layers.DefaultZstdLevel, "chunkDefault": layers.DefaultChunkSize,
	}
}

// fingerprint covers every option that shapes the output image.
func (o *options) fingerprint() string {
	digests := func(m map[v1.Hash]bool) []string {
		var out []string
		for h, ok := range m {
			if ok {
				out = append(out, h.String())
			}
		}
		sort.Strings(out)
		return out
	}
	prof := ""
	if o.profiler != nil {
		prof = o.profiler.Name()
	}
	var nets []string
	for _, n := range o.networks {
		nets = append(nets, fmt.Sprintf("%s/%g/%s", n.Name, n.BytesPerSecond, n.RTT))
	}
	enc := o.encodeFingerprint()
	if !o.formatSet {
		// The default format, which each image resolves from the rest
		// (pipeline.withTopFormat).
		oc := *o
		oc.encode.Format = layers.FormatEStargz
		enc = oc.encodeFingerprint()
		enc["format"] = "auto"
	}
	return hashJSON(map[string]any{
		"networks": nets, "encode": enc, "dedupe": o.dedupe, "force": o.force, "basePolicy": o.basePolicy.String(),
		"base": digests(o.baseLayers), "cached": digests(o.cachedLayers), "profiler": prof, "prioritized": o.prioritized,
		"sparseLimit": o.sparseLimit,
	})
}

// layerKey is the cache key of one converted layer: its input DiffID and
// everything that shapes the output.
func (o *options) layerKey(idx *layers.Index, lp *layerPlan, idxs []*layers.Index) string {
	dropped := []int{}
	if lp.role == RoleRewrite || lp.role == RoleConvert {
		for i, k := range lp.keep {
			if !k {
				dropped = append(dropped, i)
			}
		}
	}
	prio := lp.prioritized
	if lp.role == RoleKeep {
		prio = nil
	}
	k := map[string]any{
		"diffID": idx.DiffID.String(), "role": int(lp.role), "dropped": dropped, "prioritized": prio,
		"encode": o.encodeFingerprint(),
	}
	if lp.role == RoleRecompress {
		// Recompressed into its own format, whatever the target's.
		// "checks": the layers it refuses (notRecompressibleError); 2
		// refuses cross-layer hard links and directories without an entry,
		// 3 entries written through a symlinked directory.
		k["recompress"] = layers.FormatZstdChunkedContainerd.EncoderVersion()
		k["checks"] = 3
		k["recompressStartupLevel"] = o.startupLevelFor(layers.FormatZstdChunkedContainerd)
	}
	if len(lp.onDemand) > 0 && lp.role != RoleKeep {
		k["onDemand"] = lp.onDemand
	}
	if len(lp.links) > 0 {
		// What hard links to lower files become depends on those files.
		k["links"] = linksKey(lp, idxs)
	}
	if len(lp.moved) > 0 && (lp.role == RoleRewrite || lp.role == RoleConvert) {
		// Entries written where containerd lands them.
		k["moved"] = movedKey(lp.moved)
	}
	if len(lp.dirs) > 0 {
		// So do the directories added from the layers below.
		var dirs []any
		for _, i := range slices.Sorted(maps.Keys(lp.dirs)) {
			for _, d := range lp.dirs[i] {
				dirs = append(dirs, []any{i, d.Path, d.Mode, d.UID, d.GID, d.ModTime.UnixNano(), d.Xattrs})
			}
		}
		k["dirs"] = dirs
	}
	return "layer/sha256:" + hashJSON(k)
}

// linksKey describes, in entry order, what each replaced hard link becomes.
func linksKey(lp *layerPlan, idxs []*layers.Index) []any {
	is := make([]int, 0, len(lp.links))
	for i := range lp.links {
		is = append(is, i)
	}
	sort.Ints(is)
	var out []any
	for _, i := range is {
		ls := lp.links[i]
		if ls.relink != "" {
			out = append(out, []any{i, "relink", ls.relink})
			continue
		}
		f := &idxs[ls.file.Layer].Entries[ls.file.Entry]
		out = append(out, []any{i, f.Type.String(), f.Size, f.ContentDigest().String(), f.Linkname, f.Devmajor, f.Devminor, f.Xattrs})
	}
	return out
}

// memory is what the optimizer keeps in the conversion cache and finds
// there again: layer indexes, profiles, converted layers, their TOC tails
// and image records. Without a cache it remembers nothing.
type memory struct {
	c      cache.Cache // nil: no cache
	logger *slog.Logger
}

// cachedIndex returns the index of l from the cache, or nil.
// diffID comes from the image config: asking the layer may decompress it.
func (m *memory) cachedIndex(ctx context.Context, l v1.Layer, diffID v1.Hash) (*layers.Index, string) {
	if m.c == nil || diffID.Hex == "" {
		return nil, ""
	}
	dgst, err := l.Digest()
	if err != nil {
		return nil, ""
	}
	key := "index/v1/" + diffID.Hex
	b, _, err := cache.GetBytes(ctx, m.c, key, maxRecord)
	if err != nil {
		if !errors.Is(err, cache.ErrNotFound) {
			m.logger.Warn("conversion cache: reading layer index", "key", key, "err", err)
		}
		return nil, key
	}
	var idx layers.Index
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&idx); err != nil {
		m.logger.Warn("conversion cache: bad layer index", "key", key, "err", err)
		return nil, key
	}
	if idx.Digest != dgst || idx.DiffID != diffID {
		return nil, key
	}
	return &idx, key
}

func (m *memory) storeIndex(ctx context.Context, key string, idx *layers.Index, from cache.Origin) {
	if m.c == nil || key == "" || idx.Foreign {
		return
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(idx); err != nil {
		m.logger.Warn("conversion cache: encoding layer index", "err", err)
		return
	}
	if err := cache.PutBytesFrom(ctx, m.c, key, indexMediaType, buf.Bytes(), from); err != nil {
		m.logger.Warn("conversion cache: storing layer index", "key", key, "err", err)
	}
}

// profileKey is the cache key of an image's profile: the image config
// (which names every layer's DiffID) and the profiler.
func (o *options) profileKey(img v1.Image) (string, bool) {
	if o.cache == nil || o.profiler == nil {
		return "", false
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return "", false
	}
	return "profile/v1/" + hashJSON([]string{cfg.String(), o.profiler.Name()}), true
}

func (m *memory) cachedProfile(ctx context.Context, key string) *profile.Profile {
	b, _, err := cache.GetBytes(ctx, m.c, key, maxRecord)
	if err != nil {
		return nil
	}
	p, err := profile.ReadJSON(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return p
}

func (m *memory) storeProfile(ctx context.Context, key string, p *profile.Profile, from cache.Origin) {
	var buf bytes.Buffer
	if err := p.WriteJSON(&buf); err != nil {
		return
	}
	if err := cache.PutBytesFrom(ctx, m.c, key, profileMediaType, buf.Bytes(), from); err != nil {
		m.logger.Warn("conversion cache: storing profile", "key", key, "err", err)
	}
}

// imageRecord is what the conversion cache keeps of one optimized image:
// its result and the cache key of each converted layer ("" for a kept
// one). Optimizing the same image with the same options again then needs
// neither the layer indexes, nor the merge, nor the plan: only the layers.
type imageRecord struct {
	Result    ImageResult `json:"result"`
	LayerKeys []string    `json:"layerKeys"`
	// KeptAnnotations are the descriptor annotations of kept lazy layers
	// that were re-derived from their blobs, by layer.
	KeptAnnotations map[int]map[string]string `json:"keptAnnotations,omitempty"`
}

// recordKey is the cache key of an image's record: the input image (its
// manifest digest names its config and every layer) and the fingerprint
// of every option that shapes the output, the profiler included.
func (o *options) recordKey(in v1.Hash) string {
	// The record holds the estimate too: a new cost model makes new
	// records. A record names its layers' keys: a planner that decides
	// otherwise (planVersion) must not replay an old plan's layers.
	return "image/v1/" + hashJSON([]string{in.String(), o.fingerprint(), "model " + report.ModelVersion, "plan " + planVersion})
}

// planVersion changes when the plan decides differently for some input,
// so that no image record made before is replayed: 2 names entries where
// containerd lands them through a symlinked directory, keeps the symlinks
// a kept layer applies through, and has the fixes to hard links, markers
// and kept layers' directories found by FuzzPlanRoles; 3 puts the files
// containerd reads to create a container (report.RuntimeFiles) first; 4
// drops the layers dedupe empties (ActionDropped).
const planVersion = "4"

func (o *pipeline) storeRecord(ctx context.Context, in v1.Hash, ir *ImageResult, keys []string, keptAnnots map[int]map[string]string) {
	if o.cache == nil {
		return
	}
	b, err := json.Marshal(imageRecord{Result: *ir, LayerKeys: keys, KeptAnnotations: keptAnnots})
	if err != nil {
		return
	}
	if err := cache.PutBytesFrom(ctx, o.cache, o.recordKey(in), recordMediaType, b, cache.Origin{Image: in.String()}); err != nil {
		o.logger.Warn("conversion cache: storing image record", "image", in, "err", err)
	}
}

// replay rebuilds an image optimized before with the same options from its
// record and the cached layers. It reports false, and the caller optimizes
// as usual, when the record or a layer is missing or unreadable, or when
// the rebuilt image's digest is not the one recorded: a replay is
// byte-identical or does not happen.
func (o *pipeline) replay(ctx context.Context, img v1.Image, ls []v1.Layer, in v1.Hash, tmp *tempDir) (v1.Image, *ImageResult, bool) {
	key := o.recordKey(in)
	b, _, err := cache.GetBytes(ctx, o.cache, key, maxRecord)
	if err != nil {
		return nil, nil, false
	}
	var rec imageRecord
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.LayerKeys) != len(ls) || len(rec.Result.Layers) != len(ls) || rec.Result.InputDigest != in.String() {
		o.logger.Warn("conversion cache: unusable image record", "image", in)
		return nil, nil, false
	}
	ir := rec.Result
	if o.estimate && ir.Estimate == nil {
		return nil, nil, false // recorded without the estimate, which needs the layers read
	}
	if !o.estimate {
		ir.Estimate = nil
	}
	ir.Layers = append([]LayerResult(nil), rec.Result.Layers...)
	ir.CacheHits, ir.CacheMisses = 0, 0
	out := make([]v1.Layer, len(ls))
	kept := make([]bool, len(ls))
	changed := len(rec.KeptAnnotations) > 0
	for i, k := range rec.LayerKeys {
		lr := &ir.Layers[i]
		if k == "" && lr.Action == ActionDropped {
			changed = true // out[i] stays nil: dropped
			continue
		}
		if k == "" {
			if lr.Action != ActionKept {
				return nil, nil, false
			}
			out[i], kept[i] = ls[i], true
			continue
		}
		l := o.mem.reuse(ctx, k, tmp)
		if l == nil {
			return nil, nil, false
		}
		if lr.Action == ActionRewritten {
			lr.Action = ActionReused
			lr.Reason += " (reused from the conversion cache)"
		}
		if err := describeReused(lr, l); err != nil {
			return nil, nil, false
		}
		out[i] = l
		changed = true
		ir.CacheHits++
	}
	if !changed {
		if ir.OutputDigest != in.String() {
			return nil, nil, false
		}
		return img, &ir, true
	}
	newImg, err := assembleImage(img, out, kept, rec.KeptAnnotations, o.withTopFormat(ir.BasePolicy).annotations())
	if err != nil {
		return nil, nil, false
	}
	d, err := newImg.Digest()
	if err != nil || d.String() != rec.Result.OutputDigest {
		o.logger.Warn("conversion cache: an image record rebuilt another image: optimizing", "image", in, "recorded", rec.Result.OutputDigest, "rebuilt", d)
		return nil, nil, false
	}
	o.logger.Debug("conversion cache: image record replayed", "image", in, "output", d)
	return newImg, &ir, true
}
