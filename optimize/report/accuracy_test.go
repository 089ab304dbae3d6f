package report

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// Host files that make a realistic Debian python image: libraries as a
// Debian base has them, the python 3.11 standard library, a small app.
var (
	hostLibPrefixes = []string{"ld-linux", "libc.", "libm.", "libz.", "libexpat", "libffi", "libsqlite3", "libssl", "libcrypto",
		"libbz2", "liblzma", "libuuid", "libreadline", "libncurses", "libtinfo", "libmpdec", "libgdbm", "libdb-", "libpthread",
		"libdl", "librt", "libresolv", "libnss", "libgcc_s", "libstdc++", "libselinux", "libpcre", "libacl", "libattr", "libcap",
		"libgmp", "libsystemd", "libzstd", "liblz4", "libgcrypt", "libgpg-error", "libkrb5", "libk5crypto", "libgssapi",
		"libcom_err", "libkeyutils", "libtirpc", "libnsl", "libsasl", "libldap", "libcurl", "libnghttp2", "libidn2",
		"libunistring", "libpsl", "libssh2", "librtmp", "libgnutls", "libhogweed", "libnettle", "libp11-kit", "libtasn1",
		"libbrotli", "libxml2", "libicu", "libsemanage", "libsepol", "libaudit", "libpam", "libblkid", "libmount", "libudev"}
	hostBins = []string{"bash", "dash", "sh", "ls", "cat", "cp", "mv", "rm", "mkdir", "env", "grep", "sed", "tar", "gzip", "find",
		"sort", "head", "tail", "chmod", "chown", "ln", "date", "id", "uname", "sleep", "touch", "tr", "wc", "xargs", "dpkg",
		"apt", "apt-get", "perl", "python3.11", "python3", "openssl", "curl", "gpgv", "stat", "du", "df"}
	hostEtc = []string{"passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "localtime", "ssl/certs/ca-certificates.crt",
		"debian_version", "os-release", "bash.bashrc", "profile"}
)

const accuracyApp = `import os, sys, json, re, collections, logging, argparse, datetime, decimal, urllib.parse
import http.server, socketserver, email.message, sqlite3, hashlib, base64, random, threading
logging.basicConfig(level=logging.INFO)
print(json.dumps({"ready": True}))
`

// hostTar writes a tar of host paths (relative to /) to a file.
func hostTar(t *testing.T, name string, add func(w *tar.Writer, put func(string))) string {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	seenDirs := map[string]bool{}
	var dirs func(p string)
	dirs = func(p string) {
		d := filepath.Dir(p)
		if d == "." || d == "/" || seenDirs[d] {
			return
		}
		dirs(d)
		seenDirs[d] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(p string) {
		fi, err := os.Lstat(p)
		if err != nil {
			return
		}
		dirs(p)
		rel := strings.TrimPrefix(p, "/")
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: rel, Linkname: target, Mode: 0o777, ModTime: fi.ModTime()}); err != nil {
				t.Fatal(err)
			}
		case fi.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return
			}
			defer in.Close()
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Size: fi.Size(), Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()}); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(tw, in); err != nil {
				t.Fatal(err)
			}
		case fi.IsDir():
			if !seenDirs[p] {
				seenDirs[p] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: fi.ModTime()}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	add(tw, put)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return name
}

func walkHost(put func(string), root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			put(p)
		}
		return nil
	})
}

// gzipFile compresses a tar file at level 6, as docker does.
func gzipFile(t *testing.T, tarPath string) testLayer {
	t.Helper()
	in, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(tarPath + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(out, 6)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return fileLayer(t, out.Name(), "", nil)
}

func fileLayer(t *testing.T, path string, mt string, annots map[string]string) testLayer {
	t.Helper()
	var opts []tarball.LayerOption
	if mt != "" {
		opts = append(opts, tarball.WithMediaType(types.MediaType(mt)))
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(path) }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return testLayer{layer: l, annots: annots}
}

// encodeFile encodes a tar file with layers.Encode.
func encodeFile(t *testing.T, tarPath, out string, opt layers.EncodeOptions) testLayer {
	t.Helper()
	in, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, _ := in.Stat()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := layers.Encode(context.Background(), io.NewSectionReader(in, 0, fi.Size()), f, opt)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return fileLayer(t, out, string(enc.MediaType), enc.Annotations)
}

// TestPredictionAccuracy builds a realistic python image from this
// machine's Debian files (about 60 MB of gzip), converts it to eStargz with
// and without its start-up files first, pushes the three images to Debian's
// docker-registry, and measures full pulls and lazy starts through the
// shaping proxy on the cloud and edge networks. Each prediction must land
// within 20% of its measurement (medians of COLDSTART_ACCURACY_RUNS runs,
// default 1, each calibrated just before). It takes a few minutes per run:
// set COLDSTART_ACCURACY=1 to run it; COLDSTART_ACCURACY_NETWORKS (e.g.
// "edge;200Mbit,20ms") and COLDSTART_ACCURACY_IMAGES narrow it;
// COLDSTART_ACCURACY_PUSH=HOST:PORT also pushes the images there.
func TestPredictionAccuracy(t *testing.T) {
	if os.Getenv("COLDSTART_ACCURACY") == "" {
		t.Skip("set COLDSTART_ACCURACY=1 to measure the model against real pulls (a few minutes)")
	}
	if _, err := os.Stat("/usr/lib/python3.11/os.py"); err != nil {
		registrytest.SkipOrFail(t, "this experiment needs Debian's python3.11 on the host: %v", err)
	}
	reg := registrytest.StartDistribution(t)
	dir := t.TempDir()
	ctx := context.Background()

	baseTar := hostTar(t, filepath.Join(dir, "base.tar"), func(tw *tar.Writer, put func(string)) {
		for _, l := range []struct{ name, target string }{{"bin", "usr/bin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}, {"sbin", "usr/sbin"}} {
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: l.name, Linkname: l.target, Mode: 0o777})
		}
		put("/usr/lib64/ld-linux-x86-64.so.2")
		ents, _ := os.ReadDir("/usr/lib/x86_64-linux-gnu")
		for _, e := range ents {
			for _, p := range hostLibPrefixes {
				if strings.HasPrefix(e.Name(), p) {
					put("/usr/lib/x86_64-linux-gnu/" + e.Name())
					break
				}
			}
		}
		for _, b := range hostBins {
			if b != "python3.11" && b != "python3" {
				put("/usr/bin/" + b)
			}
		}
		for _, e := range hostEtc {
			put("/etc/" + e)
		}
		walkHost(put, "/usr/share/zoneinfo")
		walkHost(put, "/usr/share/perl")
	})
	pyTar := hostTar(t, filepath.Join(dir, "python.tar"), func(tw *tar.Writer, put func(string)) {
		put("/usr/bin/python3.11")
		put("/usr/bin/python3")
		walkHost(put, "/usr/lib/python3.11")
	})
	appTar := hostTar(t, filepath.Join(dir, "app.tar"), func(tw *tar.Writer, put func(string)) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755})
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "app/main.py", Mode: 0o644, Size: int64(len(accuracyApp))})
		_, _ = tw.Write([]byte(accuracyApp))
	})
	tars := []string{baseTar, pyTar, appTar}
	cfg := v1.Config{Entrypoint: []string{"python3", "/app/main.py"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}

	var gz []testLayer
	for _, p := range tars {
		gz = append(gz, gzipFile(t, p))
	}
	gzImg := testImage(t, cfg, gz...)

	// The start-up files, resolved to each layer's entries, as the
	// optimizer prioritizes them.
	o, err := makeOptions([]Option{WithTempDir(dir)})
	if err != nil {
		t.Fatal(err)
	}
	gzReport, prof, err := o.estimateProfile(ctx, gzImg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("profile: %d paths, %d files, %d bytes, %d missing, warnings %v", gzReport.Profile.Paths, gzReport.Profile.Files,
		gzReport.Profile.Bytes, len(gzReport.Profile.Missing), gzReport.Profile.Warnings)
	mf, _ := gzImg.Manifest()
	cf, _ := gzImg.ConfigFile()
	ls, err := o.readLayers(ctx, gzImg, mf, cf, dir)
	if err != nil {
		t.Fatal(err)
	}
	idxs := make([]*layers.Index, len(ls))
	for i, l := range ls {
		idxs[i] = l.idx
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		t.Fatal(err)
	}
	first := make([][]string, len(ls))
	for _, p := range prof.Files {
		if ref, ok := lazypull.Resolve(ov, p); ok {
			first[ref.Layer] = append(first[ref.Layer], ov.Entry(ref).Path)
		}
	}
	var opt, plain []testLayer
	for i, p := range tars {
		opt = append(opt, encodeFile(t, p, fmt.Sprintf("%s.opt.esgz", p), layers.EncodeOptions{Prioritized: first[i]}))
		plain = append(plain, encodeFile(t, p, fmt.Sprintf("%s.plain.esgz", p), layers.EncodeOptions{}))
	}
	images := []struct {
		name string
		img  v1.Image
	}{{"gzip", gzImg}, {"estargz-optimized", testImage(t, cfg, opt...)}, {"estargz-no-profile", testImage(t, cfg, plain...)}}
	for _, im := range images {
		pushTo(t, reg.Ref("accuracy/"+im.name+":1"), im.img)
		if host := os.Getenv("COLDSTART_ACCURACY_PUSH"); host != "" {
			// Also to another registry, to experiment with afterwards.
			pushTo(t, host+"/accuracy/"+im.name+":1", im.img)
		}
	}
	if prof != nil && os.Getenv("COLDSTART_ACCURACY_PUSH") != "" {
		var b strings.Builder
		for _, f := range prof.Files {
			b.WriteString(f + "\n")
		}
		_ = os.WriteFile(filepath.Join(os.TempDir(), "coldstart-accuracy-profile.txt"), []byte(b.String()), 0o644)
	}

	type row struct {
		image, network, scenario string
		measured, predicted      float64
		mounted, predMounted     float64
		bytes, requests          int
	}
	var rows []row
	worst := 0.0
	nets := []Network{Cloud, Edge}
	if s := os.Getenv("COLDSTART_ACCURACY_NETWORKS"); s != "" {
		nets = nil
		for _, x := range strings.Split(s, ";") {
			n, err := ParseNetwork(x)
			if err != nil {
				t.Fatal(err)
			}
			nets = append(nets, n)
		}
	}
	runs := 1
	if v := os.Getenv("COLDSTART_ACCURACY_RUNS"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &runs); err != nil || runs < 1 {
			t.Fatalf("COLDSTART_ACCURACY_RUNS=%q", v)
		}
	}
	median := func(xs []float64) float64 {
		ys := append([]float64(nil), xs...)
		sort.Float64s(ys)
		if n := len(ys); n%2 == 0 {
			return (ys[n/2-1] + ys[n/2]) / 2
		}
		return ys[len(ys)/2]
	}
	for _, net := range nets {
		for _, im := range images {
			if only := os.Getenv("COLDSTART_ACCURACY_IMAGES"); only != "" && !strings.Contains(only, im.name) {
				continue
			}
			var meas, pred, mnt, pmnt [2][]float64
			var bytesMeasured [2]int64
			var reqs [2]int
			for range runs {
				// Calibrate right before measuring: this machine may be
				// shared, and its load changes.
				rates, err := Calibrate(ctx, WithTempDir(dir))
				if err != nil {
					t.Fatal(err)
				}
				r, err := Estimate(ctx, im.img, WithProfile(prof), WithRates(rates), WithMeasurement(reg.Ref("accuracy/"+im.name+":1")),
					WithShaping(net), WithNetworks(net), WithTempDir(dir))
				if err != nil {
					t.Fatal(err)
				}
				m := r.Measured
				for k, ru := range []Run{m.FullPull, m.LazyStart} {
					if ru.Bytes != ru.PredictedBytes || ru.Requests != ru.PredictedRequests {
						t.Errorf("%s on %s, %s: measured %d bytes in %d requests, predicted %d in %d", im.name, net.Name, []string{"full pull", "lazy start"}[k],
							ru.Bytes, ru.Requests, ru.PredictedBytes, ru.PredictedRequests)
					}
					meas[k] = append(meas[k], ru.Seconds)
					pred[k] = append(pred[k], ru.PredictedSeconds)
					mnt[k] = append(mnt[k], ru.MountedSeconds)
					pmnt[k] = append(pmnt[k], ru.PredictedMountedSeconds)
					bytesMeasured[k], reqs[k] = ru.Bytes, ru.Requests
				}
				load, _ := os.ReadFile("/proc/loadavg")
				t.Logf("%s on %s: full %.2f/%.2f s, lazy %.2f/%.2f s (measured/predicted); registry %.1f ms per request; load %s",
					im.name, net.Name, m.FullPull.Seconds, m.FullPull.PredictedSeconds, m.LazyStart.Seconds, m.LazyStart.PredictedSeconds,
					m.RequestSeconds*1000, strings.TrimSpace(string(load)))
			}
			for k, sc := range []string{"full pull", "lazy start"} {
				mm, pp := median(meas[k]), median(pred[k])
				rows = append(rows, row{im.name, net.Name, sc, mm, pp, median(mnt[k]), median(pmnt[k]), int(bytesMeasured[k]), reqs[k]})
				e := (pp - mm) / mm
				worst = math.Max(worst, math.Abs(e))
				if math.Abs(e) > 0.2 {
					t.Errorf("%s on %s, %s: measured %.2f s, predicted %.2f s (%+.0f%%, medians of %d)", im.name, net.Name, sc, mm, pp, e*100, runs)
				}
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].network < rows[j].network })
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-20s %-7s %-11s %9s %9s %7s %9s %9s %12s %8s\n", "IMAGE", "NETWORK", "SCENARIO", "MEASURED", "PREDICTED", "ERROR",
		"MOUNTED", "PREDICTED", "BYTES", "REQUESTS")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-20s %-7s %-11s %8.2fs %8.2fs %+6.0f%% %8.2fs %8.2fs %12d %8d\n", r.image, r.network, r.scenario, r.measured, r.predicted,
			(r.predicted-r.measured)/r.measured*100, r.mounted, r.predMounted, r.bytes, r.requests)
	}
	t.Logf("%s\nworst error %.0f%%", b.String(), worst*100)
}
