package report_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/podman"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// partialPullTolerance is how far the bytes a partial pull is predicted to
// fetch may be from what the registry served. The model writes down the
// registry's multipart headers exactly, so the prediction has so far been
// exact; the tolerance leaves room for a registry whose headers differ by a
// few bytes per range.
const partialPullTolerance = 0.005

// TestPodmanPartialPull: the partial-pull scenario predicts what the real
// podman (Debian's 4.3.1, containers/storage 1.43) fetches, request for
// request and byte for byte: a cold partial pull of v1, then v2, whose
// application layer changed in eleven files, after v1 (WithPrevious), for
// coldstart's zstd:chunked and eStargz. Bytes and requests are what
// Debian's docker-registry served, counted by a proxy: the ping, the
// manifest, the config and the blobs.
func TestPodmanPartialPull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs podman")
	}
	if err := podman.Check(); err != nil {
		registrytest.SkipOrFail(t, "%v", err)
	}
	busybox, err := podman.Busybox()
	if err != nil {
		registrytest.SkipOrFail(t, "%v", err)
	}
	ctx := context.Background()
	reg := registrytest.StartDistribution(t)
	px, err := podman.NewProxy(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	prof := &profile.Profile{Source: profile.SourceFile, Files: []string{"/bin/sh", "/app/main.sh"}}
	for _, f := range []layers.Format{layers.FormatZstdChunked, layers.FormatEStargz} {
		t.Run(f.String(), func(t *testing.T) {
			var imgs [2]v1.Image
			var refs [2]string
			for i, v2 := range []bool{false, true} {
				src, err := podman.Image(busybox, podman.AppVersion(v2))
				if err != nil {
					t.Fatal(err)
				}
				res, err := optimize.Image(ctx, src, optimize.WithFormat(f))
				if err != nil {
					t.Fatal(err)
				}
				defer res.Close()
				tag := strings.ReplaceAll(f.String(), ":", "") + []string{"-v1", "-v2"}[i]
				r, err := name.ParseReference(reg.Ref("app:"+tag), name.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				if err := remote.Write(r, res.Image); err != nil {
					t.Fatal(err)
				}
				imgs[i], refs[i] = res.Image, px.Host+"/app:"+tag
			}
			store, err := podman.NewStore("", px.Host, true)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := store.Close(); err != nil {
					t.Error(err)
				}
			}()
			px.Take()
			for i, opts := range [][]report.Option{nil, {report.WithPrevious(imgs[0])}} {
				log, err := store.Pull(ctx, refs[i])
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range podman.PartialFailures(log) {
					t.Errorf("podman fell back to a full download: %s", m)
				}
				var served int64
				var requests int
				var appBytes int64
				app := layerDigest(t, imgs[i], 1)
				for _, r := range px.Take() {
					if r.Method != http.MethodGet {
						t.Errorf("%s %s", r.Method, r.Path)
					}
					served += r.Bytes
					requests++
					if r.Blob() == app {
						appBytes += r.Bytes
					}
				}
				rep, err := report.Estimate(ctx, imgs[i], append(opts, report.WithProfile(prof), report.WithNetworks(report.Edge))...)
				if err != nil {
					t.Fatal(err)
				}
				if rep.PartialPullBytes == nil {
					t.Fatal("no partial pull in the report")
				}
				pb, pr := *rep.PartialPullBytes, *rep.PartialPullRequests
				what := []string{"v1, cold", "v2 after v1"}[i]
				t.Logf("%s: podman fetched %d bytes in %d requests (application layer %d of %d); predicted %d bytes in %d requests",
					what, served, requests, appBytes, rep.Layers[1].Size, pb, pr)
				if pr != requests {
					t.Errorf("%s: predicted %d requests, the registry served %d", what, pr, requests)
				}
				if d := float64(pb-served) / float64(served); d > partialPullTolerance || d < -partialPullTolerance {
					t.Errorf("%s: predicted %d bytes, the registry served %d (%+.2f%%)", what, pb, served, 100*d)
				}
				if i == 1 {
					if !slices.Contains(podman.PartialBlobs(log), app) {
						t.Errorf("v2's application layer was not pulled partially")
					}
					if appBytes*10 > rep.Layers[1].Size {
						t.Errorf("v2 after v1: %d bytes of the %d-byte application layer fetched: not far below its size", appBytes, rep.Layers[1].Size)
					}
					if rep.Layers[1].PartialPullBytes != appBytes {
						t.Errorf("v2 after v1: predicted %d bytes of the application layer, the registry served %d", rep.Layers[1].PartialPullBytes, appBytes)
					}
				}
			}
		})
	}
}

func layerDigest(t *testing.T, img v1.Image, i int) string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[i].Digest.String()
}
