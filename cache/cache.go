package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/internal/ctxio"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Sentinel errors. Errors returned by this package wrap one of these when the
// condition applies, so callers can test with errors.Is; the message around
// it names the key, digest or reference involved.
var (
	// ErrNotFound: no entry is stored under the key, or the entry was
	// unusable (a corrupt, truncated or missing blob) and was dropped. A
	// caller treats it as a miss: convert, then Put.
	ErrNotFound = errors.New("not in cache")
	// ErrInvalidKey: a key is empty, longer than MaxKeyLength, contains a
	// character outside [A-Za-z0-9._:/-] or the sequence "..".
	ErrInvalidKey = errors.New("invalid cache key")
	// ErrConflict: the registry store could not record an entry in its cache
	// manifest because concurrent writers kept replacing it; the blob was
	// uploaded. Retrying the Put later is safe.
	ErrConflict = errors.New("cache manifest update conflict")
	// ErrDigestMismatch: content did not hash to the digest, or have the
	// size, that its descriptor names.
	ErrDigestMismatch = errors.New("digest mismatch")
)

// MaxKeyLength is the longest key accepted, in bytes.
const MaxKeyLength = 200

// Cache maps keys to blobs: converted layers, and small metadata blobs such
// as serialized layer indexes (see PutBytes and GetBytes).
//
// A key is an opaque string chosen by the caller, e.g.
// "layer/sha256:<hex>"; see ValidateKey. The caller makes the key cover
// everything that shapes the stored bytes, so that equal keys mean equal
// output.
type Cache interface {
	// Get returns the layer stored under key, or an error wrapping
	// ErrNotFound. The layer's Descriptor() carries the media type,
	// digest, size and annotations that were Put, DiffID() the DiffID that
	// was Put, and Compressed() the bytes, checked against the digest and
	// size as they are read.
	Get(ctx context.Context, key string) (v1.Layer, error)
	// Put stores l (its compressed bytes, descriptor annotations and
	// DiffID) under key. Putting a key again replaces the entry.
	Put(ctx context.Context, key string, l v1.Layer) error
}

// EntryInfo describes one entry of a store.
type EntryInfo struct {
	// Key the entry is stored under.
	Key string `json:"key"`
	// Digest, Size and MediaType of the stored blob.
	Digest    v1.Hash         `json:"digest"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
	// LastUsed is when the entry was last Put or returned by Get (Dir), or
	// when it was last Put (Registry).
	LastUsed time.Time `json:"lastUsed"`
	// From is what the entry was made from, when its Put said (see From);
	// nil for entries Put without an Origin.
	From *Origin `json:"from,omitempty"`
}

// ValidateKey reports whether key can name a cache entry: 1 to MaxKeyLength
// bytes of [A-Za-z0-9._:/-], without "..". The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLength:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidKey, len(key), MaxKeyLength)
	case strings.Contains(key, ".."):
		return fmt.Errorf("%w: %q contains \"..\"", ErrInvalidKey, key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			c == '.' || c == '_' || c == ':' || c == '/' || c == '-' {
			continue
		}
		return fmt.Errorf("%w: %q has %q at byte %d; use [A-Za-z0-9._:/-]", ErrInvalidKey, key, c, i)
	}
	return nil
}

// PutBytes stores a small blob, such as a serialized layer index, under key
// with the given media type. Its DiffID is its digest (it is stored as is).
func PutBytes(ctx context.Context, c Cache, key string, mt types.MediaType, data []byte) error {
	return c.Put(ctx, key, static.NewLayer(data, mt))
}

// GetBytes returns the blob stored under key and its descriptor, reading at
// most limit bytes: a larger blob is an error (a caller storing small blobs
// never sees one). A miss wraps ErrNotFound.
func GetBytes(ctx context.Context, c Cache, key string, limit int64) ([]byte, *v1.Descriptor, error) {
	l, err := c.Get(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	if c, ok := l.(io.Closer); ok {
		defer c.Close()
	}
	desc, err := descriptorOf(l)
	if err != nil {
		return nil, nil, fmt.Errorf("reading cache entry %s: %w", key, err)
	}
	if desc.Size > limit {
		return nil, nil, fmt.Errorf("reading cache entry %s: %d bytes, more than the limit of %d", key, desc.Size, limit)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, nil, fmt.Errorf("reading cache entry %s: %w", key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.Grow(int(desc.Size))
	if _, err := io.Copy(&buf, ctxio.Reader(ctx, rc)); err != nil {
		return nil, nil, fmt.Errorf("reading cache entry %s: %w", key, err)
	}
	return buf.Bytes(), desc, nil
}
