package optimize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"

	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fileLayer is a converted layer whose blob is a file.
type fileLayer struct {
	path string
	enc  *layers.Encoded
	mt   types.MediaType
}

func newFileLayer(path string, enc *layers.Encoded) *fileLayer {
	return &fileLayer{path: path, enc: enc, mt: enc.MediaType}
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.enc.Digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.enc.DiffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.enc.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	dec, _, err := layers.Decompress(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &readCloser{Reader: dec, close: func() error { dec.Close(); return f.Close() }}, nil
}

// Descriptor carries the layer annotations into manifests.
func (l *fileLayer) Descriptor() (*v1.Descriptor, error) {
	return &v1.Descriptor{MediaType: l.mt, Size: l.enc.Size, Digest: l.enc.Digest, Annotations: maps.Clone(l.enc.Annotations)}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// outImage is an assembled image: a manifest, a config and layers. It
// implements v1.Image itself, so that Layers returns the layer values it was
// given (ggcr mounts *remote.MountableLayer across repositories only when it
// gets them unwrapped).
type outImage struct {
	rawManifest []byte
	manifest    *v1.Manifest
	rawConfig   []byte
	ls          []v1.Layer
	diffIDs     []v1.Hash
}

func (i *outImage) Layers() ([]v1.Layer, error)         { return append([]v1.Layer(nil), i.ls...), nil }
func (i *outImage) MediaType() (types.MediaType, error) { return i.manifest.MediaType, nil }
func (i *outImage) Size() (int64, error)                { return int64(len(i.rawManifest)), nil }
func (i *outImage) ConfigName() (v1.Hash, error)        { return i.manifest.Config.Digest, nil }
func (i *outImage) RawConfigFile() ([]byte, error)      { return i.rawConfig, nil }
func (i *outImage) Digest() (v1.Hash, error)            { return sha256Hash(i.rawManifest), nil }
func (i *outImage) Manifest() (*v1.Manifest, error)     { return i.manifest.DeepCopy(), nil }
func (i *outImage) RawManifest() ([]byte, error)        { return i.rawManifest, nil }
func (i *outImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(i.rawConfig))
}
func (i *outImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == i.manifest.Config.Digest {
		return partial.ConfigLayer(i)
	}
	for j, d := range i.manifest.Layers {
		if d.Digest == h {
			return i.ls[j], nil
		}
	}
	return nil, fmt.Errorf("image has no layer %s", h)
}
func (i *outImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for j, d := range i.diffIDs {
		if d == h {
			return i.ls[j], nil
		}
	}
	return nil, fmt.Errorf("image has no layer with diff_id %s", h)
}

// assembleImage builds the image that has src's config and manifest with the
// layers replaced by ls (kept[i] says layer i is the source's own, whose
// manifest descriptor stays as it was, but for the annotations keptAnnots
// replaces): config diff_ids are updated (every other config
// field is kept as it is), layer descriptors carry the new digests, sizes,
// media types and annotations, and the manifest gets annots. A nil ls[i]
// drops layer i: the output has no layer for it, and its entry in the
// config's history is marked empty_layer.
func assembleImage(src v1.Image, ls []v1.Layer, kept []bool, keptAnnots map[int]map[string]string, annots map[string]string) (v1.Image, error) {
	m, err := src.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m = m.DeepCopy()
	rawCfg, err := src.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(ls) != len(m.Layers) {
		return nil, fmt.Errorf("manifest has %d layers, %d given", len(m.Layers), len(ls))
	}
	srcCfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	srcDiffIDs := srcCfg.RootFS.DiffIDs
	if len(srcDiffIDs) != len(ls) {
		return nil, fmt.Errorf("config lists %d diff_ids for %d layers", len(srcDiffIDs), len(ls))
	}
	docker := m.MediaType == types.DockerManifestSchema2
	diffIDs := make([]v1.Hash, len(ls))
	for i, l := range ls {
		if l == nil {
			continue
		}
		d, err := partial.Descriptor(l)
		if err != nil {
			return nil, err
		}
		if kept[i] {
			// The source config knows it; asking the layer may
			// decompress it.
			diffIDs[i] = srcDiffIDs[i]
		} else if diffIDs[i], err = l.DiffID(); err != nil {
			return nil, err
		}
		if !kept[i] {
			// A converted layer, from this run or from the conversion
			// cache: its own descriptor, annotations included, in the
			// manifest's flavour, so that a cache hit assembles the same
			// manifest as a miss.
			desc := *d
			if docker && desc.MediaType == types.OCILayer {
				desc.MediaType = types.DockerLayer
			}
			if docker && desc.MediaType == types.OCILayerZStd {
				docker = false // zstd needs an OCI manifest; converted below
			}
			m.Layers[i] = desc
		} else if a, ok := keptAnnots[i]; ok {
			m.Layers[i].Annotations = a
		}
	}
	if m.MediaType == types.DockerManifestSchema2 && !docker {
		m.MediaType = types.OCIManifestSchema1
		m.Config.MediaType = types.OCIConfigJSON
		for i := range m.Layers {
			switch m.Layers[i].MediaType {
			case types.DockerLayer:
				m.Layers[i].MediaType = types.OCILayer
			case types.DockerForeignLayer:
				m.Layers[i].MediaType = types.OCIRestrictedLayer
			}
		}
	}
	for i := range ls {
		if fl, ok := ls[i].(*fileLayer); ok {
			fl.mt = m.Layers[i].MediaType
		}
	}
	var emptied []int
	outLs := make([]v1.Layer, 0, len(ls))
	outDescs := make([]v1.Descriptor, 0, len(ls))
	outIDs := make([]v1.Hash, 0, len(ls))
	for i, l := range ls {
		if l == nil {
			emptied = append(emptied, i)
			continue
		}
		outLs, outDescs, outIDs = append(outLs, l), append(outDescs, m.Layers[i]), append(outIDs, diffIDs[i])
	}
	ls, m.Layers, diffIDs = outLs, outDescs, outIDs
	newCfg, err := replaceDiffIDs(rawCfg, diffIDs, emptied)
	if err != nil {
		return nil, err
	}
	m.Config.Digest, m.Config.Size = sha256Hash(newCfg), int64(len(newCfg))
	if len(annots) > 0 {
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		maps.Copy(m.Annotations, annots)
	}
	rawMan, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &outImage{rawManifest: rawMan, manifest: m, rawConfig: newCfg, ls: ls, diffIDs: diffIDs}, nil
}

// replaceDiffIDs sets rootfs.diff_ids in a raw config and keeps every other
// field, including those ggcr's ConfigFile does not know. emptied lists the
// input layers left out, by index: when the history has one entry per input
// layer (those not marked empty_layer, in order), theirs are marked
// empty_layer, as for a build step that changed no file; a history that
// does not match the layers is left as it is.
func replaceDiffIDs(raw []byte, diffIDs []v1.Hash, emptied []int) ([]byte, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	if h, ok := cfg["history"]; ok && len(emptied) > 0 {
		marked, err := markEmptyLayers(h, len(diffIDs)+len(emptied), emptied)
		if err != nil {
			return nil, err
		}
		cfg["history"] = marked
	}
	var rootfs map[string]json.RawMessage
	if r, ok := cfg["rootfs"]; ok {
		if err := json.Unmarshal(r, &rootfs); err != nil {
			return nil, fmt.Errorf("parsing config rootfs: %w", err)
		}
	}
	if rootfs == nil {
		rootfs = map[string]json.RawMessage{"type": json.RawMessage(`"layers"`)}
	}
	ids, err := json.Marshal(diffIDs)
	if err != nil {
		return nil, err
	}
	rootfs["diff_ids"] = ids
	if cfg["rootfs"], err = json.Marshal(rootfs); err != nil {
		return nil, err
	}
	return marshalAsIs(cfg)
}

// marshalAsIs is json.Marshal without HTML escaping: text such as a
// history's "a && b" stays as the image's author wrote it.
func marshalAsIs(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// markEmptyLayers marks empty_layer the history entries of the layers
// emptied lists (indexes among n layers), when the history has an entry
// for each of the n layers; else (a history that does not parse included:
// runtimes do not read it) it returns the history unchanged. Each entry
// keeps every other field.
func markEmptyLayers(raw json.RawMessage, n int, emptied []int) (json.RawMessage, error) {
	var hist []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &hist); err != nil {
		return raw, nil
	}
	var forLayer []int // the history entry of each layer
	for i, h := range hist {
		var empty bool
		if e, ok := h["empty_layer"]; ok {
			if err := json.Unmarshal(e, &empty); err != nil {
				return raw, nil
			}
		}
		if !empty {
			forLayer = append(forLayer, i)
		}
	}
	if len(forLayer) != n {
		return raw, nil
	}
	for _, li := range emptied {
		h := hist[forLayer[li]]
		if h == nil { // a null entry
			h = map[string]json.RawMessage{}
			hist[forLayer[li]] = h
		}
		h["empty_layer"] = json.RawMessage("true")
	}
	return marshalAsIs(hist)
}

func sha256Hash(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// outIndex is an index whose children were optimized.
type outIndex struct {
	src      v1.ImageIndex
	raw      []byte
	manifest *v1.IndexManifest
	images   map[v1.Hash]v1.Image
	indexes  map[v1.Hash]v1.ImageIndex
}

func (x *outIndex) MediaType() (types.MediaType, error) { return x.manifest.MediaType, nil }
func (x *outIndex) Digest() (v1.Hash, error)            { return sha256Hash(x.raw), nil }
func (x *outIndex) Size() (int64, error)                { return int64(len(x.raw)), nil }
func (x *outIndex) IndexManifest() (*v1.IndexManifest, error) {
	return x.manifest.DeepCopy(), nil
}
func (x *outIndex) RawManifest() ([]byte, error) { return x.raw, nil }
func (x *outIndex) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := x.images[h]; ok {
		return img, nil
	}
	return x.src.Image(h)
}
func (x *outIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	if idx, ok := x.indexes[h]; ok {
		return idx, nil
	}
	return x.src.ImageIndex(h)
}

// optimizeIndex optimizes every image of idx and of the indexes nested in
// it; other entries (attestations, unknown artifacts) stay as they are.
func (o *pipeline) optimizeIndex(ctx context.Context, idx v1.ImageIndex, tmp *tempDir) (v1.ImageIndex, []*ImageResult, error) {
	return o.optimizeIndexDepth(ctx, idx, tmp, nil)
}

func (o *pipeline) optimizeIndexDepth(ctx context.Context, idx v1.ImageIndex, tmp *tempDir, seen []v1.Hash) (v1.ImageIndex, []*ImageResult, error) {
	d, err := idx.Digest()
	if err != nil {
		return nil, nil, err
	}
	for _, s := range seen {
		if s == d {
			return nil, nil, fmt.Errorf("index %s contains itself", d)
		}
	}
	if len(seen) >= maxIndexDepth {
		return nil, nil, fmt.Errorf("index %s: indexes nest more than %d deep", d, maxIndexDepth)
	}
	seen = append(seen, d)
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", d, err)
	}
	out := &outIndex{src: idx, manifest: im.DeepCopy(), images: map[v1.Hash]v1.Image{}, indexes: map[v1.Hash]v1.ImageIndex{}}
	var results []*ImageResult
	changed := false
	for i, desc := range im.Manifests {
		switch {
		case desc.MediaType.IsImage():
			if desc.Platform == nil && desc.Annotations["vnd.docker.reference.type"] != "" {
				continue // an attestation manifest: not a runnable image
			}
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return nil, nil, fmt.Errorf("index %s: image %s: %w", d, desc.Digest, err)
			}
			nimg, ir, err := o.optimizeImage(ctx, img, &desc, tmp)
			if err != nil {
				return nil, nil, err
			}
			results = append(results, ir)
			nd, err := partial.Descriptor(nimg)
			if err != nil {
				return nil, nil, err
			}
			if nd.Digest != desc.Digest {
				changed = true
				out.manifest.Manifests[i].Digest, out.manifest.Manifests[i].Size = nd.Digest, nd.Size
				out.manifest.Manifests[i].MediaType = nd.MediaType
				out.images[nd.Digest] = nimg
			}
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return nil, nil, fmt.Errorf("index %s: index %s: %w", d, desc.Digest, err)
			}
			nchild, irs, err := o.optimizeIndexDepth(ctx, child, tmp, seen)
			if err != nil {
				return nil, nil, err
			}
			results = append(results, irs...)
			nd, err := nchild.Digest()
			if err != nil {
				return nil, nil, err
			}
			if nd != desc.Digest {
				changed = true
				sz, _ := nchild.Size()
				out.manifest.Manifests[i].Digest, out.manifest.Manifests[i].Size = nd, sz
				out.indexes[nd] = nchild
			}
		}
	}
	if !changed {
		return idx, results, nil
	}
	if a := o.annotations(); len(a) > 0 {
		if out.manifest.Annotations == nil {
			out.manifest.Annotations = map[string]string{}
		}
		maps.Copy(out.manifest.Annotations, a)
	}
	if out.raw, err = json.Marshal(out.manifest); err != nil {
		return nil, nil, err
	}
	return out, results, nil
}
