package imageref

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/coldstart-dev/coldstart/internal/ctxio"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

const layoutMarker = `{"imageLayoutVersion":"1.0.0"}` + "\n"

// layoutWriter adds an artifact to an OCI image layout. It records every
// file and directory it creates, so a failed write can be undone.
type layoutWriter struct {
	dir  string
	log  *slog.Logger
	jobs int

	dirMu    sync.Mutex // serializes mkdirAll
	mu       sync.Mutex
	created  []string
	inflight map[v1.Hash]*pending
	o        *options
}

type pending struct {
	done chan struct{}
	err  error
}

func writeLayout(ctx context.Context, ref Ref, a *Artifact, o *options) (err error) {
	w := &layoutWriter{dir: ref.Path, log: o.logger, jobs: o.jobs, inflight: map[v1.Hash]*pending{}, o: o}
	defer func() {
		if err != nil {
			w.rollback()
		}
	}()
	if err := w.prepare(); err != nil {
		return err
	}
	var desc v1.Descriptor
	if a.Index != nil {
		d, err := a.Index.Digest()
		if err != nil {
			return err
		}
		if desc, err = w.writeIndex(ctx, a.Index, indexPath{d}); err != nil {
			return err
		}
	} else {
		if desc, err = w.writeImage(ctx, a.Image); err != nil {
			return err
		}
	}
	if err := w.ensureMarker(); err != nil {
		return err
	}
	return w.updateIndex(ctx, desc, ref.Tag)
}

func (w *layoutWriter) track(path string) {
	w.mu.Lock()
	w.created = append(w.created, path)
	w.mu.Unlock()
}

// rollback removes what this write created: files, then directories,
// deepest first (concurrent writers may have recorded a directory before its
// parent). Directories are only removed when empty.
func (w *layoutWriter) rollback() {
	w.mu.Lock()
	defer w.mu.Unlock()
	paths := slices.Clone(w.created)
	slices.SortStableFunc(paths, func(a, b string) int { return len(b) - len(a) })
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Debug("rollback: could not remove", "path", p, "err", err)
		}
	}
	w.created = nil
}

// mkdirAll creates dir and missing parents, recording each.
func (w *layoutWriter) mkdirAll(dir string) error {
	w.dirMu.Lock()
	defer w.dirMu.Unlock()
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // created meanwhile by someone else: not ours
			}
			return err
		}
		w.track(missing[i])
	}
	return nil
}

// prepare creates the layout directory if missing, or checks an existing one
// is a layout (or empty) before anything is written into it.
func (w *layoutWriter) prepare() error {
	fi, err := os.Stat(w.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return w.mkdirAll(w.dir)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s exists and is not a directory", ErrNotLayout, w.dir)
	}
	marker, errM := os.ReadFile(filepath.Join(w.dir, layoutMarkerFile))
	index, errI := os.ReadFile(filepath.Join(w.dir, layoutIndexFile))
	if errors.Is(errM, fs.ErrNotExist) && errors.Is(errI, fs.ErrNotExist) {
		entries, err := os.ReadDir(w.dir)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return fmt.Errorf("%w: %s is not empty and has neither %s nor %s; use an empty or new directory", ErrNotLayout, w.dir, layoutMarkerFile, layoutIndexFile)
		}
		return nil
	}
	if errM == nil {
		var v struct {
			Version string `json:"imageLayoutVersion"`
		}
		if err := json.Unmarshal(marker, &v); err != nil || len(v.Version) < 2 || v.Version[:2] != "1." {
			return fmt.Errorf("%w: %s: want imageLayoutVersion 1.x", ErrNotLayout, filepath.Join(w.dir, layoutMarkerFile))
		}
	} else if !errors.Is(errM, fs.ErrNotExist) {
		return errM
	}
	if errI == nil {
		if _, _, err := parseIndexJSON(index); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrNotLayout, filepath.Join(w.dir, layoutIndexFile), err)
		}
	} else if !errors.Is(errI, fs.ErrNotExist) {
		return errI
	}
	return nil
}

func (w *layoutWriter) writeIndex(ctx context.Context, idx v1.ImageIndex, path indexPath) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range im.Manifests {
		var got v1.Descriptor
		switch {
		case d.MediaType.IsIndex():
			sub, err := path.enter(d.Digest)
			if err != nil {
				return v1.Descriptor{}, err
			}
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("reading index %s: %w", d.Digest, err)
			}
			if got, err = w.writeIndex(ctx, child, sub); err != nil {
				return v1.Descriptor{}, err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("reading image %s (%s): %w", d.Digest, platformString(d.Platform), err)
			}
			if got, err = w.writeImage(ctx, img); err != nil {
				return v1.Descriptor{}, fmt.Errorf("image %s (%s): %w", d.Digest, platformString(d.Platform), err)
			}
		default:
			return v1.Descriptor{}, fmt.Errorf("index %s lists %s of media type %q, which cannot be copied", path[len(path)-1], d.Digest, d.MediaType)
		}
		if got.Digest != d.Digest {
			return v1.Descriptor{}, fmt.Errorf("%w: index %s lists %s, but its manifest hashes to %s", ErrDigestMismatch, path[len(path)-1], d.Digest, got.Digest)
		}
	}
	return w.putManifest(ctx, idx)
}

func (w *layoutWriter) writeImage(ctx context.Context, img v1.Image) (v1.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.jobs)
	for i, l := range layers {
		g.Go(func() error {
			if err := w.writeLayer(gctx, l); err != nil {
				return fmt.Errorf("layer %d: %w", i+1, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return v1.Descriptor{}, err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Descriptor{}, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := w.putBytes(ctx, cfgName, cfg); err != nil {
		return v1.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	return w.putManifest(ctx, img)
}

type manifestLike interface {
	MediaType() (types.MediaType, error)
	RawManifest() ([]byte, error)
	Digest() (v1.Hash, error)
}

func (w *layoutWriter) putManifest(ctx context.Context, m manifestLike) (v1.Descriptor, error) {
	mt, err := m.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	raw, err := m.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := m.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := w.putBytes(ctx, d, raw); err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	return v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: d}, nil
}

func (w *layoutWriter) writeLayer(ctx context.Context, l v1.Layer) error {
	mt, err := l.MediaType()
	if err != nil {
		return err
	}
	d, err := l.Digest()
	streaming := errors.Is(err, stream.ErrNotComputed)
	if err != nil && !streaming {
		return err
	}
	if !mt.IsDistributable() {
		w.log.Debug("skipping non-distributable layer", "digest", d.String(), "mediaType", string(mt))
		return nil
	}
	size := int64(-1)
	if !streaming {
		if size, err = l.Size(); err != nil {
			return err
		}
	}
	if streaming {
		d = v1.Hash{Algorithm: "sha256"}
		return w.putBlob(ctx, d, size, l.Compressed)
	}
	if err := w.putBlob(ctx, d, size, w.o.counted(l).Compressed); err != nil {
		return err
	}
	// A blob the layout had is not read: it is done all the same.
	w.o.written(l)
	return nil
}

func (w *layoutWriter) putBytes(ctx context.Context, d v1.Hash, b []byte) error {
	return w.putBlob(ctx, d, int64(len(b)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

// putBlob stores a blob with digest want (Hex empty: not known yet, as for
// streaming layers) and size (-1: not known). An existing blob of that
// digest and size is kept. Concurrent calls for one digest write it once.
func (w *layoutWriter) putBlob(ctx context.Context, want v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	if _, err := newHasher(want); err != nil {
		return err
	}
	if want.Hex != "" {
		w.mu.Lock()
		if p, ok := w.inflight[want]; ok {
			w.mu.Unlock()
			select {
			case <-p.done:
				return p.err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		p := &pending{done: make(chan struct{})}
		w.inflight[want] = p
		w.mu.Unlock()
		defer close(p.done)
		p.err = w.storeBlob(ctx, want, size, open)
		return p.err
	}
	return w.storeBlob(ctx, want, size, open)
}

func (w *layoutWriter) storeBlob(ctx context.Context, want v1.Hash, size int64, open func() (io.ReadCloser, error)) (err error) {
	dir := filepath.Join(w.dir, layoutBlobsDir, want.Algorithm)
	if want.Hex != "" {
		if fi, err := os.Stat(filepath.Join(dir, want.Hex)); err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size) {
			w.log.Debug("blob already in layout", "digest", want.String())
			return nil
		}
	}
	if err := w.mkdirAll(dir); err != nil {
		return err
	}
	label := want.Hex
	if label == "" {
		label = "stream"
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+label+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	rc, err := open()
	if err != nil {
		return err
	}
	h, _ := newHasher(want)
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxio.Reader(ctx, rc))
	if err != nil {
		rc.Close()
		return err
	}
	// Streaming layers compute their digest on Close.
	if err := rc.Close(); err != nil {
		return err
	}
	got := v1.Hash{Algorithm: want.Algorithm, Hex: hex.EncodeToString(h.Sum(nil))}
	if want.Hex != "" && got != want {
		return fmt.Errorf("%w: blob %s: its content hashes to %s", ErrDigestMismatch, want, got)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("%w: blob %s: %d bytes, expected %d", ErrDigestMismatch, want, n, size)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	final := filepath.Join(dir, got.Hex)
	existing, statErr := os.Lstat(final)
	if statErr == nil && existing.Mode().IsRegular() && existing.Size() == n {
		// Already there (a streaming layer, or a concurrent writer):
		// content-addressed, so ours is redundant.
		os.Remove(tmp.Name())
		return nil
	}
	// Absent, or present with the wrong size (corrupt): put ours in place.
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	if statErr != nil {
		w.track(final)
	}
	w.log.Debug("wrote blob", "digest", got.String(), "size", n)
	return nil
}

// ensureMarker writes the oci-layout file if it is missing.
func (w *layoutWriter) ensureMarker() error {
	p := filepath.Join(w.dir, layoutMarkerFile)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return w.writeFileAtomic(layoutMarkerFile, []byte(layoutMarker))
}

// writeFileAtomic replaces dir/name with data via a temporary file.
func (w *layoutWriter) writeFileAtomic(name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(w.dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	final := filepath.Join(w.dir, name)
	_, statErr := os.Lstat(final)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		w.track(final)
	}
	syncDir(w.dir)
	return nil
}

// updateIndex adds desc to index.json under tag.
func (w *layoutWriter) updateIndex(ctx context.Context, desc v1.Descriptor, tag string) error {
	unlock, err := lockDir(w.dir)
	if err != nil {
		return fmt.Errorf("locking %s: %w", w.dir, err)
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	p := filepath.Join(w.dir, layoutIndexFile)
	old, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	updated, changed, err := addToIndexJSON(old, desc, tag)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if !changed {
		w.log.Debug("index.json already lists the image", "digest", desc.Digest.String(), "tag", tag)
		return nil
	}
	if err := w.writeFileAtomic(layoutIndexFile, updated); err != nil {
		return err
	}
	w.log.Debug("updated index.json", "digest", desc.Digest.String(), "tag", tag)
	return nil
}

// parseIndexJSON splits an index.json into its top-level members and its
// manifest entries, keeping each as raw JSON.
func parseIndexJSON(raw []byte) (map[string]json.RawMessage, []json.RawMessage, error) {
	doc := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, nil, err
	}
	var entries []json.RawMessage
	if m, ok := doc["manifests"]; ok && string(m) != "null" {
		if err := json.Unmarshal(m, &entries); err != nil {
			return nil, nil, fmt.Errorf("manifests: %w", err)
		}
	}
	for i, e := range entries {
		var d v1.Descriptor
		if err := json.Unmarshal(e, &d); err != nil {
			return nil, nil, fmt.Errorf("manifests[%d]: %w", i, err)
		}
	}
	return doc, entries, nil
}

// addToIndexJSON returns index.json (old, or a new one when nil) with desc
// added under tag. Entries with the same tag are replaced (in the position of
// the first); other entries, and top-level members other than "manifests",
// are kept as they were (re-indented). Without a tag, desc is appended
// unless an untagged entry already has its digest.
func addToIndexJSON(old []byte, desc v1.Descriptor, tag string) ([]byte, bool, error) {
	doc := map[string]json.RawMessage{
		"schemaVersion": json.RawMessage(`2`),
		"mediaType":     json.RawMessage(`"` + string(types.OCIImageIndex) + `"`),
	}
	var entries []json.RawMessage
	if old != nil {
		var err error
		if doc, entries, err = parseIndexJSON(old); err != nil {
			return nil, false, err
		}
	}
	nd := v1.Descriptor{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest}
	if tag != "" {
		nd.Annotations = map[string]string{annotationRefName: tag}
	}
	newEntry, err := json.Marshal(nd)
	if err != nil {
		return nil, false, err
	}

	var out []json.RawMessage
	changed, placed := false, false
	for _, e := range entries {
		var d v1.Descriptor
		if err := json.Unmarshal(e, &d); err != nil {
			return nil, false, err
		}
		name, named := d.Annotations[annotationRefName]
		switch {
		case tag != "" && named && name == tag:
			if placed {
				changed = true // a second entry with this tag: drop it
				continue
			}
			placed = true
			var compact bytes.Buffer
			if err := json.Compact(&compact, e); err != nil {
				return nil, false, err
			}
			if !bytes.Equal(compact.Bytes(), newEntry) {
				changed = true
			}
			out = append(out, newEntry)
		case tag == "" && (!named || name == "") && d.Digest == desc.Digest:
			placed = true
			out = append(out, e)
		default:
			out = append(out, e)
		}
	}
	if !placed {
		out = append(out, newEntry)
		changed = true
	}
	if old != nil && !changed {
		return old, false, nil
	}
	manifests, err := json.Marshal(out)
	if err != nil {
		return nil, false, err
	}
	doc["manifests"] = manifests

	// Known members first, in the spec's order, then the rest sorted.
	var buf bytes.Buffer
	buf.WriteByte('{')
	keys := []string{}
	for _, k := range []string{"schemaVersion", "mediaType", "artifactType", "manifests"} {
		if _, ok := doc[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range doc {
		switch k {
		case "schemaVersion", "mediaType", "artifactType", "manifests":
		default:
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for i, k := range append(keys, rest...) {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(doc[k])
	}
	buf.WriteByte('}')
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, buf.Bytes(), "", "  "); err != nil {
		return nil, false, err
	}
	pretty.WriteByte('\n')
	return pretty.Bytes(), true, nil
}
