package layers

import (
	"fmt"
	"io"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
)

// OpenLazy opens the TOC of an eStargz or zstd:chunked blob with
// estargz.Open, with both decompressors. estargz v0.19.1 panics on some
// hostile footers (a TOC offset past the end of the blob): OpenLazy turns
// that into an error wrapping ErrCorrupt.
func OpenLazy(sr *io.SectionReader, opts ...estargz.OpenOption) (r *estargz.Reader, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("%w: unreadable lazy-layer footer or TOC (%v)", ErrCorrupt, p)
		}
	}()
	opts = append([]estargz.OpenOption{estargz.WithDecompressors(new(zstdchunked.Decompressor))}, opts...)
	return estargz.Open(sr, opts...)
}

// ParseFooter is d.ParseFooter, with its panics on hostile footers turned
// into errors wrapping ErrCorrupt: estargz v0.19.1's gzip decompressor
// slices past the end of a short gzip extra field.
func ParseFooter(d estargz.Decompressor, p []byte) (blobPayloadSize, tocOffset, tocSize int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: unreadable lazy-layer footer (%v)", ErrCorrupt, r)
		}
	}()
	return d.ParseFooter(p)
}

// OpenFooter is estargz.OpenFooter (the eStargz footer at the end of sr),
// with its panics on hostile footers turned into errors wrapping
// ErrCorrupt, as ParseFooter.
func OpenFooter(sr *io.SectionReader) (tocOffset, footerSize int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: unreadable lazy-layer footer (%v)", ErrCorrupt, r)
		}
	}()
	return estargz.OpenFooter(sr)
}
