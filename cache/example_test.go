package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The optimizer's loop: ask the cache, convert on a miss, Put the result.
func Example() {
	dir, err := os.MkdirTemp("", "coldstart-cache-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c, err := cache.NewDir(dir, cache.WithMaxSize(64<<20))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	key := "layer/sha256:" + strings.Repeat("ab", 32) + "/estargz"

	for range 2 {
		l, err := c.Get(ctx, key)
		if errors.Is(err, cache.ErrNotFound) {
			fmt.Println("miss: converting")
			converted := static.NewLayer([]byte("converted layer bytes"), types.OCILayer)
			if err := c.Put(ctx, key, converted); err != nil {
				log.Fatal(err)
			}
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		digest, _ := l.Digest()
		rc, _ := l.Compressed()
		b, _ := io.ReadAll(rc)
		rc.Close()
		fmt.Printf("hit: %s %q\n", digest, b)
	}
	entries, _ := c.List(ctx)
	fmt.Println(len(entries), "entry,", entries[0].Size, "bytes")
	// Output:
	// miss: converting
	// hit: sha256:e7f9a6d2af43a74995384da9045cfdb1c77f6d5c73ca44397321704c64d1148b "converted layer bytes"
	// 1 entry, 21 bytes
}

// A registry store: the layer Get returns is mountable, so pushing it to
// another repository of the same registry mounts the blob.
func ExampleNewRegistry() {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	ctx := context.Background()
	c, err := cache.NewRegistry(host + "/ci/coldstart-cache:v1")
	if err != nil {
		log.Fatal(err)
	}
	const key = "index/sha256:0123"
	if err := cache.PutBytes(ctx, c, key, "application/vnd.coldstart.layer-index.v1+json", []byte(`{"entries":[]}`)); err != nil {
		log.Fatal(err)
	}
	l, err := c.Get(ctx, key)
	if err != nil {
		log.Fatal(err)
	}
	_, mountable := l.(*remote.MountableLayer)
	b, desc, err := cache.GetBytes(ctx, c, key, 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("mountable:", mountable)
	fmt.Println(desc.MediaType, desc.Digest)
	fmt.Println(string(b))
	// Output:
	// mountable: true
	// application/vnd.coldstart.layer-index.v1+json sha256:d801aa1fb7ddcc330a5e3173372ea6af4a3d08ec58074478e85aa5603e926658
	// {"entries":[]}
}
