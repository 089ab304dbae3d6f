package layers_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
)

// TestOverlayMatchesReference builds random layered filesystems and checks
// the overlay view against testimage.Apply, a naive applier that extracts
// the layers into an in-memory tree.
func TestOverlayMatchesReference(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 40
	}
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 42))
		ls := testimage.Random(r, testimage.RandomOptions{Layers: 2 + int(seed%5), Specials: seed%3 == 0})
		if err := checkAgainstReference(ls); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func checkAgainstReference(ls []testimage.Layer) error {
	var tars [][]byte
	var idxs []*layers.Index
	for i, l := range ls {
		var buf bytes.Buffer
		if err := l.WriteTar(&buf); err != nil {
			return err
		}
		tars = append(tars, buf.Bytes())
		idx, err := layers.IndexReader(context.Background(), bytes.NewReader(buf.Bytes()))
		if err != nil {
			return fmt.Errorf("indexing layer %d: %w", i, err)
		}
		idxs = append(idxs, idx)
	}
	ref, err := testimage.Apply(tars...)
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		return err
	}
	// Every reference node is visible in the overlay, from the same entry.
	for _, node := range ref.Nodes() {
		r, ok := ov.Lookup(node.Path)
		if !ok {
			if node.Path == "." {
				continue // the root exists without an entry
			}
			return fmt.Errorf("%s: in the reference, not visible in the overlay", node.Path)
		}
		if r.Layer != node.Origin.Layer || r.Entry != node.Origin.Entry {
			return fmt.Errorf("%s: overlay says %v, reference says layer %d entry %d", node.Path, r, node.Origin.Layer, node.Origin.Entry)
		}
		e := ov.Entry(r)
		if e.HasContent() {
			d := "sha256:" + hex.EncodeToString(e.Digest[:])
			if d != node.Digest || e.Size != node.Size {
				return fmt.Errorf("%s: content %s (%d bytes), reference %s (%d bytes)", node.Path, d, e.Size, node.Digest, node.Size)
			}
		}
		if e.Type != layers.TypeHardlink && (e.Mode != node.Mode || e.UID != node.UID || e.GID != node.GID) {
			return fmt.Errorf("%s: mode/owner %o %d:%d, reference %o %d:%d", node.Path, e.Mode, e.UID, e.GID, node.Mode, node.UID, node.GID)
		}
	}
	if got, want := len(ov.Paths()), ref.Len(); got != want && got != want-1 {
		return fmt.Errorf("overlay has %d paths, reference %d", got, want)
	}
	var wasted int64
	for i := range idxs {
		wasted += ov.Waste(i)
	}
	want, err := testimage.WastedBytes(tars...)
	if err != nil {
		return err
	}
	if wasted != want {
		return fmt.Errorf("wasted %d bytes, reference %d", wasted, want)
	}
	return nil
}
