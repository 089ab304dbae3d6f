package layers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"

	"github.com/coldstart-dev/coldstart/layers"
)

// TestOpenLazyHostileFooter: a footer whose TOC offset lies past the end of
// the blob makes estargz.Open panic; OpenLazy returns an error.
func TestOpenLazyHostileFooter(t *testing.T) {
	// Found by FuzzOpenTOC (internal/lazypull/testdata/fuzz): a legacy
	// footer that names a TOC offset past the end of the blob.
	blob := []byte("\x1f\x8b\b$000000\x16\x000000000000000001STARGZ0000000000000")
	_, err := layers.OpenLazy(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))))
	if err == nil {
		t.Fatal("hostile footer accepted")
	}
	t.Log(err)
}

// TestHostileGzipExtraField: estargz v0.19.1's gzip footer parser slices
// past a short gzip extra field (found by FuzzOpenTOC, seed 8af133e3dfc95e02).
// Every footer reader of this package returns an error instead, and
// indexing such a blob (a gzip layer as far as its first bytes go) does not
// panic either.
func TestHostileGzipExtraField(t *testing.T) {
	blob := []byte("\x1f\x8b\b$000000\x10\x00SG\x16\x0000000000000000000000000000000000000")
	sr := io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob)))
	if _, _, _, err := layers.ParseFooter(new(estargz.GzipDecompressor), blob); !errors.Is(err, layers.ErrCorrupt) {
		t.Errorf("ParseFooter: %v, want an error wrapping ErrCorrupt", err)
	}
	if _, _, err := layers.OpenFooter(sr); !errors.Is(err, layers.ErrCorrupt) {
		t.Errorf("OpenFooter: %v, want an error wrapping ErrCorrupt", err)
	}
	if _, err := layers.OpenLazy(sr); err == nil {
		t.Error("OpenLazy accepted it")
	}
	if _, err := layers.IndexReader(context.Background(), bytes.NewReader(blob)); err == nil {
		t.Error("IndexReader accepted it")
	}
}
