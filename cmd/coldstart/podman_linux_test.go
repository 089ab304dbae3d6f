package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/podman"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"
)

// Tests with the real podman (Debian's 4.3.1: containers/storage 1.43,
// containers/image 5.23), each in a private store (internal/podman),
// pulling through a counting proxy from Debian's docker-registry.

// podmanTools skips (or fails, see registrytest.RequireTools) when podman,
// runc or a static busybox is missing, or when not root.
func podmanTools(t *testing.T) (busybox []byte) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs podman")
	}
	if err := podman.Check(); err != nil {
		registrytest.SkipOrFail(t, "%v", err)
	}
	b, err := podman.Busybox()
	if err != nil {
		registrytest.SkipOrFail(t, "%v", err)
	}
	return b
}

// podmanStore is a private podman for one test.
type podmanStore struct{ *podman.Store }

// newPodmanStore makes a private store whose pulls from registry (a
// loopback host) use plain HTTP; partial says whether partial
// (zstd:chunked / eStargz) pulls are enabled. Everything it leaves behind
// is removed when the test ends.
func newPodmanStore(t *testing.T, registry string, partial bool) *podmanStore {
	t.Helper()
	s, err := podman.NewStore("", registry, partial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return &podmanStore{s}
}

// pull pulls ref with debug logging and returns the log.
func (p *podmanStore) pull(t *testing.T, ref string) string {
	t.Helper()
	log, err := p.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// files lists what a container of ref sees: find / -xdev inside it.
func (p *podmanStore) files(t *testing.T, ref string) []string {
	t.Helper()
	out, err := p.Files(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readAsNobody reads /app/main.sh in a container of ref as user 65534:
// what a container that does not run as root can reach.
func (p *podmanStore) readAsNobody(t *testing.T, ref string) {
	t.Helper()
	args := append(append([]string{"run"}, podman.RunArgs...), "--user", "65534:65534", "--entrypoint", "/bin/sh", ref, "-c", "cat /app/main.sh >/dev/null && echo readable")
	out, errb, err := p.Podman(context.Background(), args...)
	if err != nil || !strings.Contains(out, "readable") {
		t.Errorf("a container of %s running as user 65534 cannot read /app/main.sh: %v\n%s%s", ref, err, out, podman.LastLines(errb, 10))
	}
}

// newBlobProxy starts a counting proxy in front of registry, stopped when
// the test ends.
func newBlobProxy(t *testing.T, registry string) *podman.Proxy {
	t.Helper()
	px, err := podman.NewProxy(registry)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	return px
}

// podmanImage writes an OCI layout of podman.Image (a busybox base and
// the application layer app) and returns it with the paths of the merged
// filesystem.
func podmanImage(t *testing.T, busybox []byte, app testimage.Layer) (layout string, want []string) {
	t.Helper()
	img, err := podman.Image(busybox, app)
	if err != nil {
		t.Fatal(err)
	}
	layout = t.TempDir()
	if err := testimage.WriteOCI(layout, "", img); err != nil {
		t.Fatal(err)
	}
	tree, err := testimage.ApplyImage(img)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"/"}
	for _, p := range tree.Paths() {
		if p != "." {
			want = append(want, "/"+p)
		}
	}
	sort.Strings(want)
	return "oci:" + layout, want
}

// podmanApp is an application layer with the kinds of entries real layers
// hold: a large file, an empty file, a symlink, a hard link, files owned by
// others, a copy of a base file, a whiteout of a base file.
func podmanApp() testimage.Layer {
	return testimage.Layer{
		testimage.Dir("app", 0o755),
		testimage.File("app/main.sh", "#!/bin/sh\necho ready\n", testimage.Mode(0o755)),
		testimage.File("app/data.bin", podman.PseudoRandom("data", 600<<10), testimage.Mode(0o644)),
		testimage.File("app/empty", "", testimage.Mode(0o600)),
		testimage.Symlink("app/start", "main.sh"),
		testimage.Hardlink("app/main-hard", "app/main.sh"),
		testimage.File("app/owned", "by 1000\n", testimage.Mode(0o640), testimage.Owner(1000, 1000)),
		testimage.File("app/passwd.copy", "root:x:0:0:root:/root:/bin/sh\n", testimage.Mode(0o644)),
		testimage.Dir("app/cache", 0o750, testimage.Owner(1000, 1000)),
		testimage.Whiteout("etc/motd"),
	}
}

// optimizeTo converts src into dst in format to, every layer converted, and
// returns the digests of the output's layers.
func optimizeTo(t *testing.T, src, dst, to string) []string {
	t.Helper()
	if _, stderr, code := run(t, "optimize", "--to", to, "--base-policy", "convert", "--compare=false", src, dst); code != 0 {
		t.Fatalf("optimize --to %s: exit %d: %s", to, code, stderr)
	}
	return imageLayers(t, dst)
}

// podmanAdds is what podman 4.3 and runc may put into every container of
// these images, beside the image's own files: the files it bind-mounts from
// its run state (/etc/hosts, /etc/hostname, /etc/resolv.conf, and
// /run/.containerenv, which says "this is a container") and the /etc/mtab
// symlink to /proc/mounts it creates when an image has none. /proc, /sys
// and /dev are in the image; find -xdev does not go into them.
var podmanAdds = map[string]bool{
	"/etc/hosts": true, "/etc/hostname": true, "/etc/resolv.conf": true, "/run/.containerenv": true,
	"/etc/mtab": true,
}

// containerDiff returns the files of got that are neither in want nor
// podman's own, and the files of want missing from got.
func containerDiff(want, got []string) (extra, missing []string) {
	in := map[string]bool{}
	for _, p := range want {
		in[p] = true
	}
	seen := map[string]bool{}
	for _, p := range got {
		seen[p] = true
		if !in[p] && !podmanAdds[p] {
			extra = append(extra, p)
		}
	}
	for _, p := range want {
		if !seen[p] {
			missing = append(missing, p)
		}
	}
	return extra, missing
}

// TestPodmanZstdChunked: podman takes coldstart's zstd:chunked as its own.
// A container sees exactly the input's files (no prefetch landmark or other
// metadata entry), whether podman pulls partially or downloads the layers,
// and pulling the zstd:chunked version next to the eStargz version of the
// same image takes the partial path for every layer, with no fallback to a
// full download.
func TestPodmanZstdChunked(t *testing.T) {
	busybox := podmanTools(t)
	start := time.Now()
	reg := registrytest.StartDistribution(t)
	px := newBlobProxy(t, reg.Host)
	src, want := podmanImage(t, busybox, podmanApp())
	zstd := optimizeTo(t, src, reg.Ref("app:zstdchunked"), "zstdchunked")
	esgz := optimizeTo(t, src, reg.Ref("app:estargz"), "estargz")
	zref, eref := px.Host+"/app:zstdchunked", px.Host+"/app:estargz"

	check := func(t *testing.T, p *podmanStore, ref string) {
		t.Helper()
		extra, missing := containerDiff(want, p.files(t, ref))
		if len(extra) > 0 {
			t.Errorf("files in a container of %s that are not in the input: %q", ref, extra)
		}
		if len(missing) > 0 {
			t.Errorf("files of the input missing from a container of %s: %q", ref, missing)
		}
		// A partially pulled layer without an entry for the root left
		// the root 0700 (containers/storage 1.43).
		p.readAsNobody(t, ref)
	}
	t.Run("partial", func(t *testing.T) {
		p := newPodmanStore(t, px.Host, true)
		log := p.pull(t, zref)
		if m := podman.PartialBlobs(log); len(m) != len(zstd) {
			t.Errorf("podman pulled %d of %d layers partially:\n%s", len(m), len(zstd), podman.LastLines(log, 30))
		}
		check(t, p, zref)
	})
	t.Run("full", func(t *testing.T) {
		p := newPodmanStore(t, px.Host, false)
		p.pull(t, zref)
		check(t, p, zref)
	})
	t.Run("next-to-estargz", func(t *testing.T) {
		p := newPodmanStore(t, px.Host, true)
		elog := p.pull(t, eref)
		if m := podman.PartialBlobs(elog); len(m) != len(esgz) {
			t.Errorf("podman pulled %d of %d eStargz layers partially:\n%s", len(m), len(esgz), podman.LastLines(elog, 30))
		}
		px.Take()
		log := p.pull(t, zref)
		for _, m := range podman.PartialFailures(log) {
			t.Errorf("podman fell back to a full download: %s", m)
		}
		got := map[string]bool{}
		for _, m := range podman.PartialBlobs(log) {
			got[m] = true
		}
		for _, d := range zstd {
			if !got[d] {
				t.Errorf("layer %s was not pulled partially", d)
			}
		}
		// The registry agrees: no zstd:chunked layer was downloaded whole.
		var served int64
		for _, r := range px.Take() {
			if r.Method != http.MethodGet || !strings.Contains(r.Path, "/blobs/") {
				continue
			}
			if d := path.Base(r.Path); slices.Contains(zstd, d) {
				served += r.Bytes
				if r.Range == "" {
					t.Errorf("GET %s without a Range: a full download (%d bytes)", d, r.Bytes)
				}
			}
		}
		t.Logf("zstd:chunked pulled next to eStargz: %d blob bytes served", served)
		check(t, p, zref)
	})
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// zstdLayer is a zstd:chunked layer as its TOC describes it.
type zstdLayer struct {
	Size        int64 // of the blob
	ManifestLen int64 // of the compressed TOC
	Entries     []struct {
		Name      string `json:"name"`
		Type      string `json:"type"`
		Size      int64  `json:"size"`
		Digest    string `json:"digest"`
		Offset    int64  `json:"offset"`
		EndOffset int64  `json:"endOffset"`
	}
}

// zstdLayers reads the TOC of every layer of the image ref, found the way
// containers/storage finds it: at the position its annotation gives.
func zstdLayers(t *testing.T, ref string) map[string]*zstdLayer {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out := map[string]*zstdLayer{}
	for _, d := range m.Layers {
		var off, n, un, typ int64
		if _, err := fmt.Sscanf(d.Annotations["io.containers.zstd-chunked.manifest-position"], "%d:%d:%d:%d", &off, &n, &un, &typ); err != nil {
			t.Fatalf("layer %s: manifest position: %v", d.Digest, err)
		}
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		blob, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		toc, err := dec.DecodeAll(blob[off:off+n], nil)
		if err != nil {
			t.Fatalf("layer %s: TOC: %v", d.Digest, err)
		}
		z := &zstdLayer{Size: d.Size, ManifestLen: n}
		if err := json.Unmarshal(toc, z); err != nil {
			t.Fatalf("layer %s: TOC: %v", d.Digest, err)
		}
		out[d.Digest.String()] = z
	}
	return out
}

// TestPodmanUpdate: after pulling v1 of a zstd:chunked image, pulling v2,
// whose application layer changed in a few files, skips the unchanged base
// layer and fetches from the changed one its TOC and the compressed ranges
// of the files podman does not hold already (by content digest), nothing
// else; coldstart report --previous v1 predicts those bytes and requests.
func TestPodmanUpdate(t *testing.T) {
	busybox := podmanTools(t)
	reg := registrytest.StartDistribution(t)
	px := newBlobProxy(t, reg.Host)
	src1, _ := podmanImage(t, busybox, podman.AppVersion(false))
	src2, want2 := podmanImage(t, busybox, podman.AppVersion(true))
	l1 := optimizeTo(t, src1, reg.Ref("app:v1"), "zstdchunked")
	l2 := optimizeTo(t, src2, reg.Ref("app:v2"), "zstdchunked")
	if len(l1) != 2 || len(l2) != 2 || l1[0] != l2[0] || l1[1] == l2[1] {
		t.Fatalf("v1 layers %v, v2 layers %v: want the same base and another application layer", l1, l2)
	}
	toc1, toc2 := zstdLayers(t, reg.Ref("app:v1")), zstdLayers(t, reg.Ref("app:v2"))
	have := map[string]bool{}
	for _, z := range toc1 {
		for _, e := range z.Entries {
			if e.Type == "reg" && e.Size > 0 {
				have[e.Digest] = true
			}
		}
	}
	app := toc2[l2[1]]
	var changed, changedBytes int64
	for _, e := range app.Entries {
		if e.Type == "reg" && e.Size > 0 && !have[e.Digest] {
			changed++
			changedBytes += e.EndOffset - e.Offset
		}
	}

	p := newPodmanStore(t, px.Host, true)
	p.pull(t, px.Host+"/app:v1")
	px.Take()
	start := time.Now()
	log := p.pull(t, px.Host+"/app:v2")
	took := time.Since(start)
	for _, m := range podman.PartialFailures(log) {
		t.Errorf("podman fell back to a full download: %s", m)
	}
	var served, gets int64
	var ranges []string
	for _, r := range px.Take() {
		if r.Method != http.MethodGet || !strings.Contains(r.Path, "/blobs/") {
			continue
		}
		switch path.Base(r.Path) {
		case l2[0]:
			t.Errorf("the unchanged base layer was fetched: %+v", r)
		case l2[1]:
			gets++
			served += r.Bytes
			ranges = append(ranges, fmt.Sprintf("%d range(s)", strings.Count(r.Range, ",")+1))
			if r.Range == "" {
				t.Errorf("the application layer was downloaded whole (%d bytes)", r.Bytes)
			}
		}
	}
	// One GET for the TOC, one multi-range GET for the missing files; each
	// range of a multipart answer carries a few header lines.
	floor := app.ManifestLen + changedBytes
	if served < floor || served > floor+changed*200+1024 {
		t.Errorf("served %d bytes of the application layer; TOC %d + %d changed files %d = %d", served, app.ManifestLen, changed, changedBytes, floor)
	}
	t.Logf("v2 pull after v1: %v; application layer: %d of %d blob bytes in %d GETs (%s): TOC %d + %d changed files %d",
		took.Round(time.Millisecond), served, app.Size, gets, strings.Join(ranges, ", "), app.ManifestLen, changed, changedBytes)
	// What coldstart report --previous predicts for the application layer:
	// exactly what the registry served.
	stdout, stderr, code := run(t, "report", reg.Ref("app:v2"), "--previous", reg.Ref("app:v1"), "--format", "json", "--network", "edge")
	if code != 0 {
		t.Fatalf("report --previous: exit %d: %s", code, stderr)
	}
	var rep struct {
		Layers []struct {
			PartialPullBytes    int64 `json:"partialPullBytes"`
			PartialPullRequests int64 `json:"partialPullRequests"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Layers) != 2 {
		t.Fatalf("report --previous: %v\n%s", err, stdout)
	}
	if l := rep.Layers[1]; l.PartialPullBytes != served || l.PartialPullRequests != gets || rep.Layers[0].PartialPullRequests != 0 {
		t.Errorf("report --previous predicts %+v of the layers; the registry served %d bytes in %d GETs of the application layer", rep.Layers, served, gets)
	}
	extra, missing := containerDiff(want2, p.files(t, px.Host+"/app:v2"))
	if len(extra)+len(missing) > 0 {
		t.Errorf("container of v2: extra %q, missing %q", extra, missing)
	}
}

// TestPodmanZstdChunkedContainerd: zstd:chunked for containerd is a zstd
// stream podman reads as it is. It carries the stargz TOC digest, not
// containers/storage's manifest checksum, so podman with partial pulls on
// finds no zstd:chunked TOC to pull by and downloads each layer whole;
// either way a container sees exactly the input's files (the TOC's
// landmark is in no tar stream), and one that does not run as root reaches
// them.
func TestPodmanZstdChunkedContainerd(t *testing.T) {
	busybox := podmanTools(t)
	reg := registrytest.StartDistribution(t)
	src, want := podmanImage(t, busybox, podmanApp())
	optimizeTo(t, src, reg.Ref("app:containerd"), "zstd:chunked-containerd")
	ref := reg.Host + "/app:containerd"
	for _, partial := range []bool{true, false} {
		t.Run(fmt.Sprintf("partial=%v", partial), func(t *testing.T) {
			p := newPodmanStore(t, reg.Host, partial)
			log := p.pull(t, ref)
			if m := podman.PartialBlobs(log); len(m) > 0 {
				t.Errorf("podman pulled %d layers partially", len(m))
			}
			extra, missing := containerDiff(want, p.files(t, ref))
			if len(extra) > 0 {
				t.Errorf("files in a container that are not in the input: %q", extra)
			}
			if len(missing) > 0 {
				t.Errorf("files of the input missing from a container: %q", missing)
			}
			p.readAsNobody(t, ref)
		})
	}
}
