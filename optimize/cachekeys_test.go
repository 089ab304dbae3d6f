package optimize

import (
	"testing"

	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestLayerKey: every input that shapes a converted layer changes its key,
// and nothing else does.
func TestLayerKey(t *testing.T) {
	idx := &layers.Index{DiffID: v1.Hash{Algorithm: "sha256", Hex: "aa"}, Digest: v1.Hash{Algorithm: "sha256", Hex: "bb"}}
	base := func() (*options, *layerPlan) {
		o, err := makeOptions(nil)
		if err != nil {
			t.Fatal(err)
		}
		return o, &layerPlan{role: RoleRewrite, keep: []bool{true, false, true}, prioritized: []string{"bin/app"}}
	}
	o, lp := base()
	want := o.layerKey(idx, lp, nil)
	if again := o.layerKey(idx, lp, nil); again != want {
		t.Fatal("the key is not stable")
	}
	changes := map[string]func(o *options, lp *layerPlan, idx *layers.Index){
		"diffID":      func(_ *options, _ *layerPlan, idx *layers.Index) { idx.DiffID.Hex = "cc" },
		"dropped":     func(_ *options, lp *layerPlan, _ *layers.Index) { lp.keep = []bool{true, true, true} },
		"prioritized": func(_ *options, lp *layerPlan, _ *layers.Index) { lp.prioritized = []string{"bin/other"} },
		"order":       func(_ *options, lp *layerPlan, _ *layers.Index) { lp.prioritized = []string{"bin/app", "etc/x"} },
		"role":        func(_ *options, lp *layerPlan, _ *layers.Index) { lp.role = RoleConvert },
		"format":      func(o *options, _ *layerPlan, _ *layers.Index) { o.encode.Format = layers.FormatZstdChunked },
		"level":       func(o *options, _ *layerPlan, _ *layers.Index) { o.encode.Level = 9 },
		"chunk size":  func(o *options, _ *layerPlan, _ *layers.Index) { o.encode.ChunkSize = 1 << 20 },
		"hard links": func(_ *options, lp *layerPlan, _ *layers.Index) {
			lp.links = map[int]linkSource{2: {relink: "bin/app"}}
		},
		"parent dirs": func(_ *options, lp *layerPlan, _ *layers.Index) {
			lp.dirs = map[int][]*layers.Entry{0: {{Path: "bin", Type: layers.TypeDir, Mode: 0o700}}}
		},
	}
	for name, change := range changes {
		o, lp := base()
		idx2 := *idx
		change(o, lp, &idx2)
		if got := o.layerKey(&idx2, lp, nil); got == want {
			t.Errorf("changing the %s does not change the key", name)
		}
	}
	same := map[string]func(o *options, lp *layerPlan, idx *layers.Index){
		"compressed digest": func(_ *options, _ *layerPlan, idx *layers.Index) { idx.Digest.Hex = "dd" },
		"concurrency":       func(o *options, _ *layerPlan, _ *layers.Index) { o.concurrency = 7 },
		"workers":           func(o *options, _ *layerPlan, _ *layers.Index) { o.encode.Workers = 2 },
		"temp dir":          func(o *options, _ *layerPlan, _ *layers.Index) { o.tempDir = "/elsewhere" },
		"reason":            func(_ *options, lp *layerPlan, _ *layers.Index) { lp.reason = "other words" },
	}
	for name, change := range same {
		o, lp := base()
		idx2 := *idx
		change(o, lp, &idx2)
		if got := o.layerKey(&idx2, lp, nil); got != want {
			t.Errorf("changing the %s changes the key", name)
		}
	}
	// A hard link that becomes a file of a lower layer: the key follows
	// that file's content.
	lower := []*layers.Index{{Entries: []layers.Entry{{Type: layers.TypeReg, Size: 3, Digest: [32]byte{1}}}}, idx}
	o, lp = base()
	lp.links = map[int]linkSource{2: {file: layers.Ref{Layer: 0, Entry: 0}}}
	k0 := o.layerKey(idx, lp, lower)
	lower[0].Entries[0].Digest = [32]byte{2}
	if o.layerKey(idx, lp, lower) == k0 {
		t.Error("the content of the file a hard link becomes does not change the key")
	}
	// A converted (not rewritten) layer drops only the markers that others
	// of its layer cover: the key follows what it drops, and what it puts
	// first (the base's own start-up files).
	o, lp = base()
	lp.role = RoleConvert
	k1 := o.layerKey(idx, lp, nil)
	lp.keep = []bool{true, true, true}
	if o.layerKey(idx, lp, nil) == k1 {
		t.Error("a converted layer's key does not depend on the entries it drops")
	}
	lp.keep = []bool{true, false, true}
	lp.prioritized = nil
	if o.layerKey(idx, lp, nil) == k1 {
		t.Error("a converted layer's key does not depend on the files it puts first")
	}
}
