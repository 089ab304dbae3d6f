package imageref

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestSelectPlatformsIndex(t *testing.T) {
	ctx := context.Background()
	tree := newTestTree(t)
	orig, err := tree.idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	origNested, err := tree.nested.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	a := &Artifact{Index: tree.idx}

	t.Run("all keeps the index", func(t *testing.T) {
		for _, s := range []PlatformSpec{{}, {All: true}} {
			got, err := SelectPlatforms(ctx, a, s)
			if err != nil {
				t.Fatal(err)
			}
			if got != a {
				t.Errorf("SelectPlatforms(%s) returned a new artifact", s)
			}
		}
	})

	t.Run("one platform gives the child image", func(t *testing.T) {
		for p, key := range map[string]string{
			"linux/amd64":    "linux/amd64",
			"linux/arm64/v8": "linux/arm64",
			"linux/arm/v7":   "linux/arm/v7",
			"linux/s390x":    "linux/s390x", // in the nested index
		} {
			got, err := SelectPlatforms(ctx, a, spec(t, p))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if got.IsIndex() {
				t.Fatalf("%s: got an index", p)
			}
			want := tree.images[key]
			if !equalBytes(rawOf(t, got.Image), rawOf(t, want)) {
				t.Errorf("%s: manifest differs from the original child's", p)
			}
			d, err := got.Descriptor()
			if err != nil {
				t.Fatal(err)
			}
			if d.Digest != digestOf(t, want) {
				t.Errorf("%s: descriptor digest %s, want %s", p, d.Digest, digestOf(t, want))
			}
		}
	})

	t.Run("ambiguous", func(t *testing.T) {
		_, err := SelectPlatforms(ctx, a, spec(t, "linux/arm"))
		if !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("got %v, want ErrAmbiguous", err)
		}
		for _, s := range []string{"linux/arm/v6", "linux/arm/v7"} {
			if !contains(err.Error(), s) {
				t.Errorf("error %q does not list %s", err, s)
			}
		}
	})

	t.Run("not found lists what is there", func(t *testing.T) {
		_, err := SelectPlatforms(ctx, a, spec(t, "linux/amd64,windows/amd64"))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		for _, s := range []string{"windows/amd64", "linux/amd64", "linux/ppc64le"} {
			if !contains(err.Error(), s) {
				t.Errorf("error %q does not mention %s", err, s)
			}
		}
	})

	t.Run("several platforms keep children byte-identical", func(t *testing.T) {
		got, err := SelectPlatforms(ctx, a, spec(t, "linux/amd64,linux/s390x"))
		if err != nil {
			t.Fatal(err)
		}
		if !got.IsIndex() {
			t.Fatal("want an index")
		}
		if err := validate.Index(got.Index); err != nil {
			t.Fatalf("validate.Index: %v", err)
		}
		im, err := got.Index.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 2 {
			t.Fatalf("got %d entries, want 2: %+v", len(im.Manifests), im.Manifests)
		}
		if diff := cmp.Diff(orig.Manifests[0], im.Manifests[0]); diff != "" {
			t.Errorf("amd64 entry changed (-orig +got):\n%s", diff)
		}
		if im.Manifests[1].MediaType != types.OCIImageIndex || im.Manifests[1].Digest == orig.Manifests[5].Digest {
			t.Errorf("nested entry = %+v; want a rebuilt nested index", im.Manifests[1])
		}
		nested, err := got.Index.ImageIndex(im.Manifests[1].Digest)
		if err != nil {
			t.Fatal(err)
		}
		nm, err := nested.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]v1.Descriptor{origNested.Manifests[0]}, nm.Manifests); diff != "" {
			t.Errorf("nested entries (-want +got):\n%s", diff)
		}
		img, err := nested.Image(origNested.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		if !equalBytes(rawOf(t, img), rawOf(t, tree.images["linux/s390x"])) {
			t.Error("s390x manifest is not byte-identical")
		}
		if _, err := got.Index.Image(orig.Manifests[1].Digest); !errors.Is(err, ErrNotFound) {
			t.Errorf("dropped arm64 image still served: %v", err)
		}
		// Deterministic: the same selection gives the same bytes.
		again, err := SelectPlatforms(ctx, a, spec(t, "linux/s390x, linux/amd64"))
		if err != nil {
			t.Fatal(err)
		}
		if !equalBytes(rawOf(t, got.Index), rawOf(t, again.Index)) {
			t.Error("selection is not deterministic")
		}
	})

	t.Run("whole nested index kept as is", func(t *testing.T) {
		got, err := SelectPlatforms(ctx, a, spec(t, "linux/s390x,linux/ppc64le,linux/arm64"))
		if err != nil {
			t.Fatal(err)
		}
		im, err := got.Index.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		want := []v1.Descriptor{orig.Manifests[1], orig.Manifests[5]}
		if diff := cmp.Diff(want, im.Manifests); diff != "" {
			t.Errorf("entries (-want +got):\n%s", diff)
		}
		if err := validate.Index(got.Index); err != nil {
			t.Fatalf("validate.Index: %v", err)
		}
	})

	t.Run("everything selected returns the original", func(t *testing.T) {
		small := buildIndex(t,
			entry{img: tree.images["linux/amd64"], plat: pp("linux/amd64")},
			entry{img: tree.images["linux/arm64"], plat: pp("linux/arm64")},
		)
		got, err := SelectPlatforms(ctx, &Artifact{Index: small}, spec(t, "linux/arm64,linux/amd64"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Index != small {
			t.Error("want the original index back")
		}
	})
}

func TestSelectPlatformsImage(t *testing.T) {
	ctx := context.Background()
	a := &Artifact{Image: testImage(t, 1, plat("linux/amd64"))}
	got, err := SelectPlatforms(ctx, a, spec(t, "linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if got != a {
		t.Error("matching image not returned as is")
	}
	_, err = SelectPlatforms(ctx, a, spec(t, "linux/arm64"))
	if !errors.Is(err, ErrPlatformMismatch) {
		t.Fatalf("got %v, want ErrPlatformMismatch", err)
	}
	if !contains(err.Error(), "linux/amd64") || !contains(err.Error(), "linux/arm64") {
		t.Errorf("error %q does not name both the image's and the requested platform", err)
	}
	if _, err := SelectPlatforms(ctx, a, spec(t, "linux/amd64,linux/arm64")); !errors.Is(err, ErrPlatformMismatch) {
		t.Errorf("two platforms on a single image: got %v, want ErrPlatformMismatch", err)
	}
}

// loopIndex is a fake index whose entries point at other loopIndexes, to
// build cycles that content addressing would otherwise prevent.
type loopIndex struct {
	name  string
	next  map[v1.Hash]*loopIndex
	order []v1.Hash
}

func (l *loopIndex) digest() v1.Hash {
	h, _, _ := v1.SHA256(strings.NewReader(l.name))
	return h
}
func (l *loopIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }
func (l *loopIndex) Digest() (v1.Hash, error)            { return l.digest(), nil }
func (l *loopIndex) Size() (int64, error)                { return 100, nil }
func (l *loopIndex) RawManifest() ([]byte, error)        { return []byte("{}"), nil }
func (l *loopIndex) IndexManifest() (*v1.IndexManifest, error) {
	m := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, h := range l.order {
		m.Manifests = append(m.Manifests, v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: 100})
	}
	return m, nil
}
func (l *loopIndex) Image(h v1.Hash) (v1.Image, error) { return nil, errors.New("no images") }
func (l *loopIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	if n, ok := l.next[h]; ok {
		return n, nil
	}
	return nil, errors.New("no such index")
}

func link(from, to *loopIndex) {
	if from.next == nil {
		from.next = map[v1.Hash]*loopIndex{}
	}
	from.next[to.digest()] = to
	from.order = append(from.order, to.digest())
}

func TestSelectPlatformsCycle(t *testing.T) {
	ctx := context.Background()
	self := &loopIndex{name: "s"}
	link(self, self)
	a, b := &loopIndex{name: "a"}, &loopIndex{name: "bb"}
	link(a, b)
	link(b, a)
	// A chain deeper than maxNesting, without a cycle.
	chain := []*loopIndex{{name: "c"}}
	for i := 1; i <= maxNesting+1; i++ {
		n := &loopIndex{name: fmt.Sprintf("c%d", i)}
		chain = append(chain, n)
		link(chain[i-1], n)
	}
	for name, idx := range map[string]v1.ImageIndex{"self": self, "pair": a, "deep": chain[0]} {
		for _, s := range []string{"linux/amd64", "linux/amd64,linux/arm64"} {
			_, err := SelectPlatforms(ctx, &Artifact{Index: idx}, spec(t, s))
			if !errors.Is(err, ErrCycle) {
				t.Errorf("%s, %s: got %v, want ErrCycle", name, s, err)
			}
		}
		// Writing a layout walks the tree too.
		err := tryWrite("oci:"+t.TempDir()+"/out", &Artifact{Index: idx})
		if !errors.Is(err, ErrCycle) {
			t.Errorf("%s: Write got %v, want ErrCycle", name, err)
		}
	}
}
