package cache_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestValidateKey(t *testing.T) {
	for _, ok := range []string{
		"layer/sha256:0123abcd", "index/sha256:ff", "a", "A.b_c-d:e/f", strings.Repeat("k", cache.MaxKeyLength),
		"layer/v1/estargz/sha256:00", ".hidden", "x.y",
	} {
		if err := cache.ValidateKey(ok); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{
		"", "a..b", "../etc/passwd", "layer/..", "with space", "tab\t", "new\nline", "semi;colon", "q?", "per%cent",
		"uni\u00e9", "back\\slash", "star*", strings.Repeat("k", cache.MaxKeyLength+1),
	} {
		err := cache.ValidateKey(bad)
		if !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
}

func TestInvalidKeysRejectedByStores(t *testing.T) {
	ctx := context.Background()
	d, err := cache.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := newLayer(t, []byte("x"), nil)
	if err := d.Put(ctx, "a b", l); !errors.Is(err, cache.ErrInvalidKey) {
		t.Errorf("Dir.Put: %v, want ErrInvalidKey", err)
	}
	if _, err := d.Get(ctx, "../x"); !errors.Is(err, cache.ErrInvalidKey) {
		t.Errorf("Dir.Get: %v, want ErrInvalidKey", err)
	}
	r, err := cache.NewRegistry("127.0.0.1:1/cache:tag")
	if err != nil {
		t.Fatal(err)
	}
	// Rejected before any request (the address does not answer).
	if err := r.Put(ctx, "a b", l); !errors.Is(err, cache.ErrInvalidKey) {
		t.Errorf("Registry.Put: %v, want ErrInvalidKey", err)
	}
	if _, err := r.Get(ctx, ""); !errors.Is(err, cache.ErrInvalidKey) {
		t.Errorf("Registry.Get: %v, want ErrInvalidKey", err)
	}
}

func TestOptionsForTheWrongStore(t *testing.T) {
	if _, err := cache.NewDir(t.TempDir(), cache.WithInsecure(true)); err == nil || !strings.Contains(err.Error(), "WithInsecure") {
		t.Errorf("NewDir(WithInsecure) = %v, want an error naming the option", err)
	}
	if _, err := cache.NewRegistry("example.com/c:t", cache.WithMaxSize(1)); err == nil || !strings.Contains(err.Error(), "WithMaxSize") {
		t.Errorf("NewRegistry(WithMaxSize) = %v, want an error naming the option", err)
	}
	for _, bad := range []cache.Option{cache.WithMaxSize(-1), cache.WithMaxEntries(0), cache.WithLogger(nil), cache.WithKeychain(nil), cache.WithTransport(nil)} {
		if _, err := cache.NewRegistry("example.com/c:t", bad); err == nil {
			t.Error("bad option accepted")
		}
	}
	for _, ref := range []string{"example.com/c@sha256:" + strings.Repeat("0", 64), "UPPER/Case:t", "example.com/c:bad tag"} {
		if _, err := cache.NewRegistry(ref); err == nil {
			t.Errorf("NewRegistry(%q) accepted", ref)
		}
	}
	r, err := cache.NewRegistry("example.com/team/cache")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Tag().Name(); got != "example.com/team/cache:latest" {
		t.Errorf("Tag() = %s", got)
	}
}

func TestBytesRoundTrip(t *testing.T) {
	ctx := context.Background()
	d, err := cache.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const mt = types.MediaType("application/vnd.coldstart.layer-index.v1+json")
	data := []byte(`{"entries":[]}`)
	if err := cache.PutBytes(ctx, d, "index/sha256:aa", mt, data); err != nil {
		t.Fatal(err)
	}
	got, desc, err := cache.GetBytes(ctx, d, "index/sha256:aa", 1024)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) || desc.MediaType != mt || desc.Digest != sha(data) || desc.Size != int64(len(data)) {
		t.Errorf("GetBytes = %q %+v", got, desc)
	}
	if _, _, err := cache.GetBytes(ctx, d, "index/sha256:aa", 3); err == nil || errors.Is(err, cache.ErrNotFound) {
		t.Errorf("GetBytes over the limit = %v, want an error that is not a miss", err)
	}
	if _, _, err := cache.GetBytes(ctx, d, "index/sha256:bb", 1024); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("GetBytes of a missing key = %v, want ErrNotFound", err)
	}
}
