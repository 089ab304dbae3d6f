package imageref

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Names inside an OCI image layout.
const (
	layoutIndexFile   = "index.json"
	layoutMarkerFile  = "oci-layout"
	layoutBlobsDir    = "blobs"
	annotationRefName = specs.AnnotationRefName

	// Manifests and configs are read into memory; these bound how much.
	maxManifestSize = 4 << 20
	maxConfigSize   = 64 << 20
)

var hexDigest = map[string]*regexp.Regexp{
	"sha256": regexp.MustCompile(`^[a-f0-9]{64}$`),
	"sha512": regexp.MustCompile(`^[a-f0-9]{128}$`),
}

// newHasher returns a hash for a digest algorithm, and checks hex (if not
// empty) is well formed for it, so digests from untrusted manifests cannot
// name paths outside blobs/.
func newHasher(h v1.Hash) (hash.Hash, error) {
	re, ok := hexDigest[h.Algorithm]
	if !ok {
		return nil, fmt.Errorf("unsupported digest algorithm in %q", h.String())
	}
	if h.Hex != "" && !re.MatchString(h.Hex) {
		return nil, fmt.Errorf("malformed digest %q", h.String())
	}
	if h.Algorithm == "sha512" {
		return sha512.New(), nil
	}
	return sha256.New(), nil
}

// layoutReader reads an OCI image layout, verifying every blob against its
// digest and size.
type layoutReader struct {
	dir string
}

func (l *layoutReader) blobPath(h v1.Hash) (string, error) {
	if _, err := newHasher(h); err != nil {
		return "", err
	}
	if h.Hex == "" {
		return "", fmt.Errorf("malformed digest %q", h.String())
	}
	return filepath.Join(l.dir, layoutBlobsDir, h.Algorithm, h.Hex), nil
}

// openLayout checks dir is a layout and parses its index.json.
func openLayout(dir string) (*layoutReader, *v1.IndexManifest, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("layout directory %s does not exist: %w", dir, err)
	}
	if err != nil {
		return nil, nil, err
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("%w: %s is not a directory", ErrNotLayout, dir)
	}
	raw, err := os.ReadFile(filepath.Join(dir, layoutIndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s has no %s", ErrNotLayout, dir, layoutIndexFile)
	}
	if err != nil {
		return nil, nil, err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, nil, fmt.Errorf("%w: parsing %s: %w", ErrNotLayout, filepath.Join(dir, layoutIndexFile), err)
	}
	return &layoutReader{dir: dir}, &im, nil
}

// pick finds the index.json entry for tag ("" = the only entry).
func pick(im *v1.IndexManifest, dir, tag string) (v1.Descriptor, error) {
	if tag == "" {
		switch len(im.Manifests) {
		case 1:
			return im.Manifests[0], nil
		case 0:
			return v1.Descriptor{}, fmt.Errorf("%w: layout %s holds no images", ErrNotFound, dir)
		}
		return v1.Descriptor{}, fmt.Errorf("%w: layout %s holds %d images (%s); name one with oci:%s:TAG",
			ErrAmbiguous, dir, len(im.Manifests), tagList(im), dir)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		if d.Annotations[annotationRefName] == tag {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return v1.Descriptor{}, fmt.Errorf("%w: no image tagged %q in layout %s (it has: %s)", ErrNotFound, tag, dir, tagList(im))
	}
	return v1.Descriptor{}, fmt.Errorf("%w: %d entries tagged %q in layout %s", ErrAmbiguous, len(found), tag, dir)
}

func tagList(im *v1.IndexManifest) string {
	if len(im.Manifests) == 0 {
		return "nothing"
	}
	var names []string
	for _, d := range im.Manifests {
		if n := d.Annotations[annotationRefName]; n != "" {
			names = append(names, n)
		} else {
			names = append(names, "untagged "+d.Digest.String())
		}
	}
	return strings.Join(names, ", ")
}

// readSmall reads a manifest or config blob into memory and verifies it.
func (l *layoutReader) readSmall(d v1.Descriptor, what string, limit int64) ([]byte, error) {
	if d.Size > limit {
		return nil, fmt.Errorf("%s: blob %s: %d bytes is more than the %d allowed", what, d.Digest, d.Size, limit)
	}
	rc, err := l.open(d, what)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// open opens a blob; reading it to EOF verifies digest and size.
func (l *layoutReader) open(d v1.Descriptor, what string) (io.ReadCloser, error) {
	p, err := l.blobPath(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s: blob %s is not in %s", ErrMissingBlob, what, d.Digest, filepath.Join(l.dir, layoutBlobsDir))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: blob %s: %w", what, d.Digest, err)
	}
	h, _ := newHasher(d.Digest)
	return &verifyReader{rc: f, h: h, want: d.Digest, size: d.Size, what: what}, nil
}

// verifyReader hashes what it reads and, at EOF, fails unless the content
// had the expected digest and size.
type verifyReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want v1.Hash
	size int64 // <0: unknown
	n    int64
	what string
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		return n, fmt.Errorf("%w: %s: blob %s is larger than the %d bytes its descriptor says", ErrDigestMismatch, v.what, v.want, v.size)
	}
	if errors.Is(err, io.EOF) {
		if v.size >= 0 && v.n != v.size {
			return n, fmt.Errorf("%w: %s: blob %s has %d bytes, its descriptor says %d", ErrDigestMismatch, v.what, v.want, v.n, v.size)
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Hex {
			return n, fmt.Errorf("%w: %s: blob %s hashes to %s:%s", ErrDigestMismatch, v.what, v.want, v.want.Algorithm, got)
		}
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.rc.Close() }

// image reads the image manifest d.
func (l *layoutReader) image(d v1.Descriptor) (v1.Image, error) {
	if !d.MediaType.IsImage() {
		return nil, fmt.Errorf("manifest %s has media type %q, not an image", d.Digest, d.MediaType)
	}
	raw, err := l.readSmall(d, "image manifest", maxManifestSize)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing image manifest %s: %w", d.Digest, err)
	}
	return partial.CompressedToImage(&layoutImage{l: l, desc: d, raw: raw, manifest: m})
}

// index reads the image index manifest d.
func (l *layoutReader) index(d v1.Descriptor) (v1.ImageIndex, error) {
	if !d.MediaType.IsIndex() {
		return nil, fmt.Errorf("manifest %s has media type %q, not an index", d.Digest, d.MediaType)
	}
	raw, err := l.readSmall(d, "index manifest", maxManifestSize)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing index manifest %s: %w", d.Digest, err)
	}
	return &layoutIndex{l: l, desc: d, raw: raw, manifest: m}, nil
}

// artifact reads what d points to.
func (l *layoutReader) artifact(d v1.Descriptor) (*Artifact, error) {
	switch {
	case d.MediaType.IsIndex():
		idx, err := l.index(d)
		if err != nil {
			return nil, err
		}
		return &Artifact{Index: idx}, nil
	case d.MediaType.IsImage():
		img, err := l.image(d)
		if err != nil {
			return nil, err
		}
		return &Artifact{Image: img}, nil
	}
	return nil, fmt.Errorf("entry %s has media type %q, which is neither an image nor an index", d.Digest, d.MediaType)
}

// check verifies that every blob a needs is present with the right size
// (configs and manifests are also hashed). Non-distributable layers may be
// absent.
func (l *layoutReader) check(ctx context.Context, a *Artifact) error {
	d, err := a.Digest()
	if err != nil {
		return err
	}
	if a.Index != nil {
		return l.checkIndex(ctx, a.Index, indexPath{d})
	}
	return l.checkImage(a.Image, d)
}

func (l *layoutReader) checkIndex(ctx context.Context, idx v1.ImageIndex, path indexPath) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			sub, err := path.enter(d.Digest)
			if err != nil {
				return err
			}
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := l.checkIndex(ctx, child, sub); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			if err := l.checkImage(img, d.Digest); err != nil {
				return err
			}
		default:
			if err := l.checkBlob(d, "blob of index "+path[len(path)-1].String()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *layoutReader) checkImage(img v1.Image, digest v1.Hash) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	for i, d := range m.Layers {
		if !d.MediaType.IsDistributable() {
			continue
		}
		if err := l.checkBlob(d, fmt.Sprintf("layer %d of image %s", i+1, digest)); err != nil {
			return err
		}
	}
	return nil
}

func (l *layoutReader) checkBlob(d v1.Descriptor, what string) error {
	p, err := l.blobPath(d.Digest)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s: blob %s is not in %s", ErrMissingBlob, what, d.Digest, filepath.Join(l.dir, layoutBlobsDir))
	}
	if err != nil {
		return err
	}
	if fi.Size() != d.Size {
		return fmt.Errorf("%w: %s: blob %s has %d bytes, its descriptor says %d", ErrDigestMismatch, what, d.Digest, fi.Size(), d.Size)
	}
	return nil
}

// layoutImage is an image manifest in a layout (a partial.CompressedImageCore).
type layoutImage struct {
	l        *layoutReader
	desc     v1.Descriptor
	raw      []byte
	manifest *v1.Manifest
}

func (i *layoutImage) MediaType() (types.MediaType, error) { return i.desc.MediaType, nil }
func (i *layoutImage) RawManifest() ([]byte, error)        { return slices.Clone(i.raw), nil }
func (i *layoutImage) Descriptor() (*v1.Descriptor, error) { return i.desc.DeepCopy(), nil }

func (i *layoutImage) RawConfigFile() ([]byte, error) {
	return i.l.readSmall(i.manifest.Config, "config of image "+i.desc.Digest.String(), maxConfigSize)
}

func (i *layoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.manifest.Config.Digest {
		return &layoutBlob{l: i.l, desc: i.manifest.Config, what: "config of image " + i.desc.Digest.String()}, nil
	}
	for n, d := range i.manifest.Layers {
		if d.Digest == h {
			return &layoutBlob{l: i.l, desc: d, what: fmt.Sprintf("layer %d of image %s", n+1, i.desc.Digest)}, nil
		}
	}
	return nil, fmt.Errorf("%w: blob %s is not part of image %s", ErrNotFound, h, i.desc.Digest)
}

// layoutBlob is a layer (or config) blob in a layout (a partial.CompressedLayer).
type layoutBlob struct {
	l    *layoutReader
	desc v1.Descriptor
	what string
}

func (b *layoutBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *layoutBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *layoutBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *layoutBlob) Descriptor() (*v1.Descriptor, error) { return b.desc.DeepCopy(), nil }
func (b *layoutBlob) Compressed() (io.ReadCloser, error) {
	return b.l.open(b.desc, b.what)
}

// layoutIndex is an index manifest in a layout.
type layoutIndex struct {
	l        *layoutReader
	desc     v1.Descriptor
	raw      []byte
	manifest *v1.IndexManifest
}

func (x *layoutIndex) MediaType() (types.MediaType, error) { return x.desc.MediaType, nil }
func (x *layoutIndex) Digest() (v1.Hash, error)            { return x.desc.Digest, nil }
func (x *layoutIndex) Size() (int64, error)                { return x.desc.Size, nil }
func (x *layoutIndex) RawManifest() ([]byte, error)        { return slices.Clone(x.raw), nil }
func (x *layoutIndex) Descriptor() (*v1.Descriptor, error) { return x.desc.DeepCopy(), nil }
func (x *layoutIndex) IndexManifest() (*v1.IndexManifest, error) {
	return x.manifest.DeepCopy(), nil
}

func (x *layoutIndex) child(h v1.Hash) (v1.Descriptor, error) {
	for _, d := range x.manifest.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("%w: manifest %s is not in index %s", ErrNotFound, h, x.desc.Digest)
}

func (x *layoutIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return x.l.image(d)
}

func (x *layoutIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return x.l.index(d)
}
