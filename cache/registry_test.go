package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// onBackends runs f against the in-process registry and against a real
// registry server (Debian's docker-registry), each as a subtest given the
// registry's host.
func onBackends(t *testing.T, f func(t *testing.T, host string)) {
	t.Run("inprocess", func(t *testing.T) {
		f(t, registrytest.New(t).Host)
	})
	t.Run("distribution", func(t *testing.T) {
		f(t, registrytest.StartDistribution(t).Host)
	})
}

func newRegistry(t *testing.T, ref string, opts ...cache.Option) *cache.Registry {
	t.Helper()
	r, err := cache.NewRegistry(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistryRoundTrip(t *testing.T) {
	onBackends(t, func(t *testing.T, host string) {
		ctx := context.Background()
		ref := host + "/ci/cache:coldstart"
		w := newRegistry(t, ref)
		const key = "layer/sha256:aaaa"
		if _, err := w.Get(ctx, key); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get without a cache manifest = %v, want ErrNotFound", err)
		}
		l := newLayer(t, noise("reg", 6000), stargzAnn)
		if err := w.Put(ctx, key, l); err != nil {
			t.Fatal(err)
		}
		// Another process (a new value) sees it.
		r := newRegistry(t, ref)
		got, err := r.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		checkLayer(t, got, l)
		ml, ok := got.(*remote.MountableLayer)
		if !ok {
			t.Fatalf("Get returned %T, want *remote.MountableLayer", got)
		}
		if want := host + "/ci/cache@" + l.digest.String(); ml.Reference.String() != want {
			t.Errorf("Reference = %s, want %s", ml.Reference, want)
		}
		if _, err := r.Get(ctx, "layer/other"); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Get of another key = %v, want ErrNotFound", err)
		}

		// The cache manifest, as documented.
		tag, _ := name.NewTag(ref)
		desc, err := remote.Get(tag)
		if err != nil {
			t.Fatal(err)
		}
		var m v1.Manifest
		if err := json.Unmarshal(desc.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		if desc.MediaType != types.OCIManifestSchema1 || m.ArtifactType != cache.ArtifactType ||
			m.Config.MediaType != types.OCIEmptyJSON || m.Config.Digest != sha([]byte("{}")) || len(m.Layers) != 1 {
			t.Fatalf("cache manifest:\n%s", desc.Manifest)
		}
		e := m.Layers[0]
		if e.Digest != l.digest || e.Size != int64(len(l.gz)) || e.MediaType != l.mt ||
			e.Annotations[cache.AnnotationKey] != key || e.Annotations[cache.AnnotationDiffID] != sha(l.raw).String() ||
			e.Annotations[cache.AnnotationCreated] == "" || e.Annotations["io.containers.estargz.uncompressed-size"] != "4096" {
			t.Errorf("entry %+v", e)
		}

		// Putting the same key again leaves the manifest alone; another
		// value replaces the entry; small blobs go the same way.
		if err := r.Put(ctx, key, l); err != nil {
			t.Fatal(err)
		}
		if d2, _ := remote.Head(tag); d2.Digest != desc.Digest {
			t.Error("the manifest changed on a Put of the same entry")
		}
		l2 := newLayer(t, noise("reg2", 100), nil)
		if err := r.Put(ctx, key, l2); err != nil {
			t.Fatal(err)
		}
		const mt = types.MediaType("application/vnd.coldstart.layer-index.v1+json")
		if err := cache.PutBytes(ctx, r, "index/sha256:aaaa", mt, []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		got, err = w.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		checkLayer(t, got, l2)
		b, bd, err := cache.GetBytes(ctx, w, "index/sha256:aaaa", 100)
		if err != nil || string(b) != `{"v":1}` || bd.MediaType != mt {
			t.Errorf("GetBytes = %q, %+v, %v", b, bd, err)
		}
		es, err := w.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 2 || es[0].Key != "index/sha256:aaaa" || es[1].Key != key || es[1].Digest != l2.digest || es[1].LastUsed.IsZero() {
			t.Errorf("List = %+v", es)
		}
	})
}

// Writers with separate Registry values (as separate CI jobs would be) put
// entries at the same time: none is lost.
func TestRegistryParallelWriters(t *testing.T) {
	onBackends(t, func(t *testing.T, host string) {
		ctx := context.Background()
		ref := host + "/shared/cache:main"
		writers, perWriter := 6, 4
		if strings.HasSuffix(t.Name(), "/distribution") {
			writers, perWriter = 4, 3 // a real server is slower; the race is the same
		}
		logger, logs := newLogger(slog.LevelDebug)
		var wg sync.WaitGroup
		errs := make(chan error, writers*perWriter)
		for w := range writers {
			r := newRegistry(t, ref, cache.WithLogger(logger))
			wg.Go(func() {
				for i := range perWriter {
					k := fmt.Sprintf("layer/w%d-%d", w, i)
					if err := r.Put(ctx, k, newLayer(t, noise(k, 500), nil)); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		r := newRegistry(t, ref)
		es, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range es {
			keys = append(keys, e.Key)
		}
		var want []string
		for w := range writers {
			for i := range perWriter {
				want = append(want, fmt.Sprintf("layer/w%d-%d", w, i))
			}
		}
		slices.Sort(want)
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Errorf("keys (-want +got):\n%s", diff)
		}
		for _, k := range want {
			got, err := r.Get(ctx, k)
			if err != nil {
				t.Error(err)
				continue
			}
			checkLayer(t, got, newLayer(t, noise(k, 500), nil))
		}
		t.Logf("retries after lost updates: %d", len(logs.lines("lost to a concurrent writer")))
	})
}

func TestRegistryMaxEntries(t *testing.T) {
	ctx := context.Background()
	host := registrytest.New(t).Host
	clk := newClock()
	r := newRegistry(t, host+"/c:t", cache.WithMaxEntries(3), cache.WithClock(clk.now))
	for _, k := range []string{"e", "d", "c", "b", "a"} {
		if err := r.Put(ctx, k, newLayer(t, noise(k, 10), nil)); err != nil {
			t.Fatal(err)
		}
	}
	es, err := newRegistry(t, host+"/c:t").List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range es {
		keys = append(keys, e.Key)
	}
	// e and d were put first, so they went first.
	if diff := cmp.Diff([]string{"a", "b", "c"}, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

// A tag that holds something else is never overwritten.
func TestRegistryRefusesForeignTag(t *testing.T) {
	ctx := context.Background()
	host := registrytest.New(t).Host
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(host + "/app:latest")
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, tag.String())
	err = r.Put(ctx, "k", newLayer(t, []byte("x"), nil))
	if err == nil || !strings.Contains(err.Error(), "not a coldstart cache manifest") {
		t.Errorf("Put on an image tag = %v", err)
	}
	if _, err := r.Get(ctx, "k"); err == nil || errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get on an image tag = %v, want an error that is not a miss", err)
	}
	want, _ := img.Digest()
	if d, _ := remote.Head(tag); d.Digest != want {
		t.Error("the image tag was overwritten")
	}
	if err := r.Put(ctx, "k", &testLayer{gz: []byte("x"), raw: []byte("x"), digest: sha([]byte("x")), mt: types.OCILayer,
		ann: map[string]string{cache.AnnotationKey: "forged"}}); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("Put with a reserved annotation = %v", err)
	}
}

// An entry whose blob the registry lost is a miss, and is dropped; a Put
// drops it too when the registry rejects a manifest naming it.
func TestRegistryMissingBlob(t *testing.T) {
	ctx := context.Background()
	d := registrytest.StartDistribution(t)
	logger, logs := newLogger(slog.LevelWarn)
	r := newRegistry(t, d.Ref("c:t"), cache.WithLogger(logger))
	layers := map[string]*testLayer{}
	for _, k := range []string{"gone", "kept", "lost"} {
		layers[k] = newLayer(t, noise(k, 300), nil)
		if err := r.Put(ctx, k, layers[k]); err != nil {
			t.Fatal(err)
		}
	}
	deleteBlob := func(h v1.Hash) {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+d.Host+"/v2/c/blobs/"+h.String(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("deleting the blob: %s", resp.Status)
		}
	}
	keys := func() []string {
		es, err := newRegistry(t, d.Ref("c:t")).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ks []string
		for _, e := range es {
			ks = append(ks, e.Key)
		}
		return ks
	}

	deleteBlob(layers["gone"].digest)
	if _, err := r.Get(ctx, "gone"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Get of an entry without its blob = %v, want ErrNotFound", err)
	}
	if n := len(logs.lines("level=WARN", "removed", "gone", "missing")); n != 1 {
		t.Errorf("%d warn lines, want 1:\n%s", n, logs)
	}
	if diff := cmp.Diff([]string{"kept", "lost"}, keys()); diff != "" {
		t.Errorf("keys after the Get (-want +got):\n%s", diff)
	}

	// distribution refuses a manifest naming a blob it lacks: Put drops
	// that entry rather than failing forever.
	deleteBlob(layers["lost"].digest)
	layers["new"] = newLayer(t, noise("new", 300), nil)
	if err := newRegistry(t, d.Ref("c:t")).Put(ctx, "new", layers["new"]); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"kept", "new"}, keys()); diff != "" {
		t.Errorf("keys after the Put (-want +got):\n%s", diff)
	}
	for _, k := range []string{"kept", "new"} {
		got, err := r.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		checkLayer(t, got, layers[k])
	}
}

// recorded is one request that went through recordingProxy.
type recorded struct {
	method, path string
	query        url.Values
	status       int
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// recordingProxy forwards to the registry at target and records every
// request with its response status.
func recordingProxy(t *testing.T, target string) (string, func() []recorded) {
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	var mu sync.Mutex
	var log []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		mu.Lock()
		log = append(log, recorded{r.Method, r.URL.Path, r.URL.Query(), sw.status})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(log)
	}
}

// Pushing an image made of cached layers to another repository of the same
// registry mounts the blobs instead of uploading them.
func TestRegistryCrossRepoMount(t *testing.T) {
	ctx := context.Background()
	d := registrytest.StartDistribution(t)
	host, requests := recordingProxy(t, d.Host)
	l := newLayer(t, noise("mount", 20000), stargzAnn)
	if err := newRegistry(t, host+"/coldstart/cache:v1").Put(ctx, "layer/m", l); err != nil {
		t.Fatal(err)
	}
	before := len(requests())

	got, err := newRegistry(t, host+"/coldstart/cache:v1").Get(ctx, "layer/m")
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), got)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := name.NewTag(host + "/team/app:optimized")
	if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	var mounts, uploads int
	for _, r := range requests()[before:] {
		if !strings.HasPrefix(r.path, "/v2/team/app/blobs/uploads/") {
			continue
		}
		switch {
		case r.method == http.MethodPost && r.query.Get("mount") == l.digest.String():
			if r.query.Get("from") != "coldstart/cache" || r.status != http.StatusCreated {
				t.Errorf("mount request from=%q answered %d, want from coldstart/cache and 201", r.query.Get("from"), r.status)
			}
			mounts++
		case (r.method == http.MethodPut || r.method == http.MethodPatch) && r.query.Get("digest") == l.digest.String():
			uploads++
		case r.method == http.MethodPatch:
			// The config blob's upload; the layer's bytes would be
			// recognised by their digest on the final PUT.
		}
	}
	if mounts != 1 || uploads != 0 {
		t.Errorf("layer pushed with %d mounts and %d uploads, want 1 mount and no upload; requests:\n%v", mounts, uploads, requests()[before:])
	}
	// The pushed manifest carries the cached descriptor's annotations, and
	// the blob is readable from the new repository.
	pushed, err := remote.Image(dst)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pushed.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stargzAnn, m.Layers[0].Annotations); diff != "" {
		t.Errorf("pushed layer annotations (-want +got):\n%s", diff)
	}
	pl, err := pushed.LayerByDigest(l.digest)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := pl.Compressed()
	if b := readAll(t, rc, err); string(b) != string(l.gz) {
		t.Error("the mounted blob differs")
	}
}
