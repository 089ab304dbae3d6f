package cache

import (
	"context"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Origin says what a cache entry was made from, so that an entry can be
// traced back to the image and the layer it came from. Stores record it
// beside the entry (List returns it); it changes neither the key nor the
// bytes nor the descriptor that Get returns.
type Origin struct {
	// Image is the digest of the image (its manifest) the entry was made
	// for.
	Image string `json:"image,omitempty"`
	// Layer is the digest of the input layer the entry was made from (a
	// converted layer, a layer index, a TOC); empty for entries about a
	// whole image (a profile, an image record).
	Layer string `json:"layer,omitempty"`
}

// IsZero reports whether o says nothing.
func (o Origin) IsZero() bool { return o == Origin{} }

// String is "image DIGEST, layer DIGEST" with digests shortened to 12 hex
// digits, or "-".
func (o Origin) String() string {
	var parts []string
	if o.Image != "" {
		parts = append(parts, "image "+short(o.Image))
	}
	if o.Layer != "" {
		parts = append(parts, "layer "+short(o.Layer))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// From returns l marked as made from o: a store's Put records o with the
// entry. l's digest, descriptor (annotations included), DiffID and bytes
// are l's own.
func From(l v1.Layer, o Origin) v1.Layer {
	return &originLayer{Layer: l, origin: o}
}

// PutBytesFrom is PutBytes for a blob made from o.
func PutBytesFrom(ctx context.Context, c Cache, key string, mt types.MediaType, data []byte, o Origin) error {
	return c.Put(ctx, key, From(static.NewLayer(data, mt), o))
}

// originLayer is a layer with the Origin Put records.
type originLayer struct {
	v1.Layer
	origin Origin
}

// Descriptor keeps the wrapped layer's descriptor, annotations included.
func (l *originLayer) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(l.Layer) }

// unwrapOrigin returns the layer From wrapped, or l.
func unwrapOrigin(l v1.Layer) v1.Layer {
	if ol, ok := l.(*originLayer); ok {
		return ol.Layer
	}
	return l
}

// originOf returns the Origin l was marked with by From, or nil.
func originOf(l v1.Layer) *Origin {
	if ol, ok := l.(*originLayer); ok && !ol.origin.IsZero() {
		o := ol.origin
		return &o
	}
	return nil
}

// short cuts "sha256:<hex>" to 12 hex digits.
func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
