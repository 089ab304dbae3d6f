package cache_test

import (
	"context"
	"testing"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-cmp/cmp"
)

// TestOrigin: both stores record what an entry was made from, List returns
// it, and Get returns exactly what was Put (descriptor, annotations,
// DiffID, bytes): the origin is beside the entry, not in it.
func TestOrigin(t *testing.T) {
	ctx := context.Background()
	from := cache.Origin{Image: "sha256:" + hex64("i"), Layer: "sha256:" + hex64("l")}
	stores := map[string]interface {
		cache.Cache
		List(context.Context) ([]cache.EntryInfo, error)
	}{
		"dir":      newDir(t),
		"registry": newRegistry(t, registrytest.New(t).Ref("ci/cache:v1")),
	}
	for name, c := range stores {
		t.Run(name, func(t *testing.T) {
			l := newLayer(t, noise("origin"+name, 5000), stargzAnn)
			if err := c.Put(ctx, "layer/a", cache.From(l, from)); err != nil {
				t.Fatal(err)
			}
			if err := c.Put(ctx, "layer/plain", newLayer(t, noise("plain", 100), nil)); err != nil {
				t.Fatal(err)
			}
			if err := cache.PutBytesFrom(ctx, c, "image/r", "application/json", []byte("{}"), cache.Origin{Image: from.Image}); err != nil {
				t.Fatal(err)
			}
			got, err := c.Get(ctx, "layer/a")
			if err != nil {
				t.Fatal(err)
			}
			checkLayer(t, got, l)
			es, err := c.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]*cache.Origin{"layer/a": &from, "layer/plain": nil, "image/r": {Image: from.Image}}
			if len(es) != len(want) {
				t.Fatalf("%d entries, want %d: %+v", len(es), len(want), es)
			}
			for _, e := range es {
				if diff := cmp.Diff(want[e.Key], e.From); diff != "" {
					t.Errorf("%s: origin (-want +got):\n%s", e.Key, diff)
				}
			}
			if s := from.String(); s != "image sha256:"+hex64("i")[:12]+", layer sha256:"+hex64("l")[:12] {
				t.Errorf("Origin.String() = %q", s)
			}
		})
	}
}

// hex64 is 64 hex digits made from s.
func hex64(s string) string { return sha([]byte(s)).Hex }
