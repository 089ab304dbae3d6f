package layers

import (
	"errors"

	"github.com/coldstart-dev/coldstart/layers/lazy"
)

// Sentinel errors. Every error returned by this package that falls in one of
// these classes wraps the sentinel, so callers can test with errors.Is while
// the message still names the layer, the entry and the cause.
var (
	// ErrUnsafePath: a tar entry (or hard link target) has an absolute path
	// or climbs out of the layer root with "..".
	ErrUnsafePath = errors.New("unsafe path in layer")

	// ErrNotTar: the (decompressed) layer bytes are not a tar archive.
	ErrNotTar = errors.New("layer is not a tar archive")

	// ErrCorrupt: the compressed stream, or a lazy layer's footer or TOC,
	// is corrupt or truncated. It is lazy.ErrCorrupt, which the format
	// packages return.
	ErrCorrupt = lazy.ErrCorrupt

	// ErrDigestMismatch: the bytes read do not hash to the digest that the
	// descriptor or config promised.
	ErrDigestMismatch = errors.New("digest mismatch")

	// ErrSizeMismatch: the number of bytes read differs from the descriptor.
	ErrSizeMismatch = errors.New("size mismatch")

	// ErrTooManyEntries: the layer has more entries than WithMaxEntries allows.
	ErrTooManyEntries = errors.New("too many entries in layer")

	// ErrLayerTooLarge: the layer inflates past WithMaxSize.
	ErrLayerTooLarge = errors.New("layer too large")

	// ErrUnknownMediaType: the layer media type is not one this package reads.
	ErrUnknownMediaType = errors.New("unknown layer media type")
)
