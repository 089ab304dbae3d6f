package layers_test

import (
	"bytes"
	"io"
	"testing"

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
