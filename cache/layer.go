package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"maps"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// descriptorOf returns l's descriptor as a manifest would carry it, with the
// annotations copied.
func descriptorOf(l v1.Layer) (*v1.Descriptor, error) {
	d, err := partial.Descriptor(l)
	if err != nil {
		return nil, err
	}
	c := *d
	c.Annotations = maps.Clone(d.Annotations)
	c.Data = nil
	if c.Digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("digest %s: only sha256 blobs are cached", c.Digest)
	}
	if c.Size < 0 {
		return nil, fmt.Errorf("digest %s: negative size %d", c.Digest, c.Size)
	}
	return &c, nil
}

// storedLayer is a v1.Layer whose descriptor and DiffID were recorded in a
// store, and whose bytes come from open and are verified as they are read.
type storedLayer struct {
	desc   v1.Descriptor
	diffID v1.Hash
	open   func() (io.ReadCloser, error)
}

var _ v1.Layer = (*storedLayer)(nil)

// Digest implements v1.Layer.
func (l *storedLayer) Digest() (v1.Hash, error) { return l.desc.Digest, nil }

// DiffID implements v1.Layer: the DiffID that was Put.
func (l *storedLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size implements v1.Layer.
func (l *storedLayer) Size() (int64, error) { return l.desc.Size, nil }

// MediaType implements v1.Layer.
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

// Descriptor returns the descriptor that was Put, annotations included, so
// that manifests built from this layer carry them (see partial.Descriptor).
func (l *storedLayer) Descriptor() (*v1.Descriptor, error) {
	d := l.desc
	d.Annotations = maps.Clone(l.desc.Annotations)
	return &d, nil
}

// Compressed implements v1.Layer. Reading to EOF fails with an error
// wrapping ErrDigestMismatch if the bytes are not those that were Put.
func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	return newVerifier(rc, l.desc.Digest, l.desc.Size), nil
}

// Uncompressed implements v1.Layer: gzip and zstd blobs are decompressed,
// anything else is returned as is.
func (l *storedLayer) Uncompressed() (io.ReadCloser, error) {
	// The extender only adds decompression on top of l.Compressed.
	ext, err := partial.CompressedToLayer(l)
	if err != nil {
		return nil, err
	}
	return ext.Uncompressed()
}

// verifier checks size and digest of what passes through it: reading past
// the expected size, or reaching EOF with the wrong size or digest, is an
// error wrapping ErrDigestMismatch.
type verifier struct {
	rc     io.ReadCloser
	h      hash.Hash
	want   v1.Hash
	size   int64
	n      int64
	failed error
}

func newVerifier(rc io.ReadCloser, want v1.Hash, size int64) *verifier {
	return &verifier{rc: rc, h: sha256.New(), want: want, size: size}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.failed != nil {
		return 0, v.failed
	}
	n, err := v.rc.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.n > v.size {
		v.failed = fmt.Errorf("%w: blob %s is larger than %d bytes", ErrDigestMismatch, v.want, v.size)
		return n, v.failed
	}
	if err == io.EOF {
		if v.n != v.size {
			v.failed = fmt.Errorf("%w: blob %s has %d bytes, want %d", ErrDigestMismatch, v.want, v.n, v.size)
			return n, v.failed
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Hex {
			v.failed = fmt.Errorf("%w: blob %s hashes to sha256:%s", ErrDigestMismatch, v.want, got)
			return n, v.failed
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }
