package layers_test

import (
	"bytes"
	"context"
	"sort"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/google/go-cmp/cmp"
)

// indexTar indexes an uncompressed layer built by testimage.
func indexTar(t testing.TB, l testimage.Layer) *layers.Index {
	t.Helper()
	var buf bytes.Buffer
	if err := l.WriteTar(&buf); err != nil {
		t.Fatal(err)
	}
	idx, err := layers.IndexReader(context.Background(), &buf)
	if err != nil {
		t.Fatalf("indexing: %v", err)
	}
	return idx
}

func merge(t testing.TB, ls ...testimage.Layer) *layers.Overlay {
	t.Helper()
	var idxs []*layers.Index
	for _, l := range ls {
		idxs = append(idxs, indexTar(t, l))
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		t.Fatal(err)
	}
	return ov
}

// statusOf returns "path@layer" -> reason for every non-marker entry.
func statusOf(ov *layers.Overlay) map[string]string {
	out := map[string]string{}
	for li, idx := range ov.Layers() {
		for ei := range idx.Entries {
			e := &idx.Entries[ei]
			if e.Type.IsMarker() {
				continue
			}
			st := ov.Status(layers.Ref{Layer: li, Entry: ei})
			key := e.Path + "@" + string(rune('0'+li))
			out[key] = st.Reason.String()
		}
	}
	return out
}

func TestOverlayRules(t *testing.T) {
	F := testimage.File
	D := func(n string) testimage.Entry { return testimage.Dir(n, 0o755) }
	tests := []struct {
		name   string
		layers []testimage.Layer
		want   map[string]string
		paths  []string
		wasted int64
	}{{
		name: "overwrite",
		layers: []testimage.Layer{
			{D("etc"), F("etc/a", "one"), F("etc/b", "bb")},
			{F("etc/a", "three")},
		},
		want:   map[string]string{"etc@0": "visible", "etc/a@0": "overwritten", "etc/b@0": "visible", "etc/a@1": "visible"},
		paths:  []string{"etc", "etc/a", "etc/b"},
		wasted: 3,
	}, {
		name: "whiteout file and dir",
		layers: []testimage.Layer{
			{D("a"), F("a/x", "xx"), D("b"), F("b/y", "yyy"), F("c", "c")},
			{testimage.Whiteout("a"), testimage.Whiteout("c")},
		},
		want:   map[string]string{"a@0": "deleted", "a/x@0": "deleted", "b@0": "visible", "b/y@0": "visible", "c@0": "deleted"},
		paths:  []string{"b", "b/y"},
		wasted: 3,
	}, {
		name: "opaque dir keeps its own layer's children",
		layers: []testimage.Layer{
			{D("d"), F("d/old", "1234"), D("d/sub"), F("d/sub/z", "z")},
			{D("d"), testimage.Opaque("d"), F("d/new", "n")},
		},
		want:   map[string]string{"d@0": "overwritten", "d/old@0": "hidden by opaque dir", "d/sub@0": "hidden by opaque dir", "d/sub/z@0": "hidden by opaque dir", "d@1": "visible", "d/new@1": "visible"},
		paths:  []string{"d", "d/new"},
		wasted: 5,
	}, {
		name: "dir replaced by file and back",
		layers: []testimage.Layer{
			{D("p"), F("p/in", "inside")},
			{F("p", "now a file")},
			{D("p"), F("p/again", "a")},
		},
		want:   map[string]string{"p@0": "overwritten", "p/in@0": "ancestor replaced", "p@1": "overwritten", "p@2": "visible", "p/again@2": "visible"},
		paths:  []string{"p", "p/again"},
		wasted: int64(len("inside") + len("now a file")),
	}, {
		name: "duplicate entries in one layer: later wins, not counted as waste",
		layers: []testimage.Layer{
			{F("f", "first"), F("f", "second")},
		},
		want:   map[string]string{"f@0": "visible"},
		paths:  []string{"f"},
		wasted: 0,
	}, {
		name: "whiteout in the same layer as the file does not hide it",
		layers: []testimage.Layer{
			{F("f", "lower")},
			{testimage.Whiteout("f"), F("f", "upper")},
		},
		want:   map[string]string{"f@0": "deleted", "f@1": "visible"},
		paths:  []string{"f"},
		wasted: 5,
	}, {
		name: "whiteout with nothing under it",
		layers: []testimage.Layer{
			{F("a", "a")},
			{testimage.Whiteout("nothing")},
		},
		want:  map[string]string{"a@0": "visible"},
		paths: []string{"a"},
	}, {
		name: "dot-slash names",
		layers: []testimage.Layer{
			{testimage.Dir("./", 0o755), D("./x"), F("./x/f", "f")},
			{F("x/f", "g")},
		},
		want:   map[string]string{".@0": "visible", "x@0": "visible", "x/f@0": "overwritten", "x/f@1": "visible"},
		paths:  []string{".", "x", "x/f"},
		wasted: 1,
	}, {
		name: "hard link keeps content of a shadowed target",
		layers: []testimage.Layer{
			{F("bin/a", "program"), testimage.Hardlink("bin/b", "bin/a")},
			{testimage.Whiteout("bin/a")},
		},
		want:   map[string]string{"bin/a@0": "deleted", "bin/b@0": "visible"},
		paths:  []string{"bin/b"},
		wasted: 7,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ov := merge(t, tc.layers...)
			if diff := cmp.Diff(tc.want, statusOf(ov)); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.paths, ov.Paths()); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			var wasted int64
			for i := range ov.Layers() {
				wasted += ov.Waste(i)
			}
			if wasted != tc.wasted {
				t.Errorf("wasted = %d, want %d", wasted, tc.wasted)
			}
		})
	}
}

func TestHardlinkContent(t *testing.T) {
	ov := merge(t,
		testimage.Layer{testimage.File("a", "content"), testimage.Hardlink("b", "a")},
		testimage.Layer{testimage.Hardlink("c", "a")},
	)
	ra, _ := ov.Lookup("a")
	for _, p := range []string{"b", "c"} {
		r, ok := ov.Lookup(p)
		if !ok {
			t.Fatalf("%s not visible", p)
		}
		if got, want := ov.Entry(r).Digest, ov.Entry(ra).Digest; got != want {
			t.Errorf("%s: digest %x, want the target's %x", p, got, want)
		}
	}
	rb, _ := ov.Lookup("b")
	if ov.Entry(rb).LinkIndex != 0 {
		t.Errorf("b LinkIndex = %d, want 0", ov.Entry(rb).LinkIndex)
	}
}

func TestReaddsAndCopyUps(t *testing.T) {
	F := testimage.File
	ov := merge(t,
		testimage.Layer{F("app/bin", "binary"), F("app/conf", "conf"), F("app/data", "data")},
		testimage.Layer{F("app/bin", "binary", testimage.Mode(0o775)), F("app/conf", "conf")},
		testimage.Layer{testimage.Whiteout("app/data"), F("app/data", "data")},
	)
	var got []string
	for _, r := range ov.Readds() {
		kind := "copy-up"
		if r.Identical {
			kind = "identical"
		}
		got = append(got, ov.Entry(r.Upper).Path+" "+kind)
	}
	sort.Strings(got)
	// app/data is re-added after a whiteout: dropping it would not bring the
	// lower copy back, so it is not a re-add.
	want := []string{"app/bin copy-up", "app/conf identical"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("readds (-want +got):\n%s", diff)
	}
}

func TestDuplicateContent(t *testing.T) {
	ov := merge(t, testimage.Layer{
		testimage.File("a", "same"), testimage.File("b", "same"), testimage.File("c", "other"), testimage.File("d", ""), testimage.File("e", ""),
	})
	g := ov.DuplicateContent()
	if len(g) != 1 || !cmp.Equal(g[0].Paths, []string{"a", "b"}) {
		t.Fatalf("duplicates = %+v", g)
	}
}

func TestInScope(t *testing.T) {
	ov := merge(t,
		testimage.Layer{testimage.Dir("d", 0o755), testimage.File("d/x", "x"), testimage.File("dx", "not under d")},
		testimage.Layer{testimage.Whiteout("d"), testimage.Opaque("e")},
	)
	idx := ov.Layers()[1]
	var got []string
	for ei := range idx.Entries {
		ov.InScope(layers.Ref{Layer: 1, Entry: ei}, func(r layers.Ref) bool {
			got = append(got, idx.Entries[ei].Path+":"+ov.Entry(r).Path)
			return true
		})
	}
	want := []string{"d:d", "d:d/x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("in scope (-want +got):\n%s", diff)
	}
}

// TestHardlinkToCrossLayerLink: a link to a link whose target is in a lower
// layer has the lower file's content.
func TestHardlinkToCrossLayerLink(t *testing.T) {
	ov := merge(t, testimage.Layer{testimage.File("a", "lower content")},
		testimage.Layer{testimage.Hardlink("b", "a"), testimage.Hardlink("c", "b")})
	ra, _ := ov.Lookup("a")
	want := ov.Entry(ra)
	for _, p := range []string{"b", "c"} {
		r, ok := ov.Lookup(p)
		if !ok {
			t.Fatalf("%s is not visible", p)
		}
		if e := ov.Entry(r); e.Size != want.Size || e.Digest != want.Digest {
			t.Errorf("%s: %d bytes %x, want %d bytes %x", p, e.Size, e.Digest[:4], want.Size, want.Digest[:4])
		}
	}
}
