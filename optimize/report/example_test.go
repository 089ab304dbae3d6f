package report_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"sort"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// estargzLayer writes files (name: content) as a tar and encodes it as an
// eStargz layer with the files first listed first.
func estargzLayer(files map[string]string, first ...string) mutate.Addendum {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, n := range names {
		mode := int64(0o644)
		if strings.Contains(n, "bin/") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n]))}); err != nil {
			log.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			log.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}
	tarBytes := raw.Bytes()
	var out bytes.Buffer
	enc, err := layers.Encode(context.Background(), io.NewSectionReader(bytes.NewReader(tarBytes), 0, int64(len(tarBytes))), &out,
		layers.EncodeOptions{Prioritized: first})
	if err != nil {
		log.Fatal(err)
	}
	blob := out.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil },
		tarball.WithMediaType(enc.MediaType))
	if err != nil {
		log.Fatal(err)
	}
	return mutate.Addendum{Layer: layer, Annotations: enc.Annotations}
}

// Estimate an image of two eStargz layers on a network where only round
// trips count: the full pull takes three (manifest, config, layers), the
// lazy start six to mount (manifest, config, footer and TOC of each layer)
// and one more for the file outside the prefetch range.
func ExampleEstimate() {
	base := estargzLayer(map[string]string{
		"etc/hosts":      "127.0.0.1 localhost\n",
		"usr/bin/server": "#!/bin/sh\nexec sleep 1\n",
	}, "usr/bin/server")
	app := estargzLayer(map[string]string{"app/config.json": "{}\n"})
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		Config: v1.Config{Entrypoint: []string{"/usr/bin/server"}}})
	if err != nil {
		log.Fatal(err)
	}
	if img, err = mutate.Append(img, base, app); err != nil {
		log.Fatal(err)
	}
	fast := report.Rates{GzipDecompress: 1e12, ZstdDecompress: 1e12, Verify: 1e12, Unpack: 1e12}
	r, err := report.Estimate(context.Background(), img,
		report.WithProfile(&profile.Profile{Source: profile.SourceFile, Files: []string{"/usr/bin/server", "/app/config.json"}}),
		report.WithRates(fast),
		report.WithNetworks(report.Network{Name: "round trips", RTT: 10 * time.Millisecond}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("full pull: %d requests\n", r.FullPullRequests)
	fmt.Printf("lazy start: %d requests\n", r.LazyStartRequests)
	for _, e := range r.Estimates {
		fmt.Printf("%s: full pull %.3f s, lazy start %.3f s\n", e.Network, e.FullPullSeconds, e.LazyStartSeconds)
	}
	// Output:
	// full pull: 4 requests
	// lazy start: 8 requests
	// round trips: full pull 0.030 s, lazy start 0.070 s
}

func ExampleParseNetwork() {
	for _, s := range []string{"edge", "200Mbit,20ms"} {
		n, err := report.ParseNetwork(s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n)
	}
	// Output:
	// edge (100 Mbit/s, 50 ms)
	// 200Mbit,20ms (200 Mbit/s, 20 ms)
}

// ExampleReadRates reads a node's rates (what benchmarks/harness writes to
// node-rates.json after calibrating the real stack's node): the fields
// given replace the defaults. ScaleNode makes a node's costs a factor of
// the defaults'.
func ExampleReadRates() {
	r, err := report.ReadRates(strings.NewReader(`{"runtimeStartSeconds": 0.093}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("runtime start %.3f s, lazy mount %.3f s\n", r.RuntimeStart, r.LazyMount)
	half := report.DefaultRates.ScaleNode(0.5)
	fmt.Printf("at half the cost: runtime start %.4f s, lazy mount %.3f s\n", half.RuntimeStart, half.LazyMount)
	_, err = report.ReadRates(strings.NewReader(`{"lazyMountSeconds": -1}`))
	fmt.Println(err)
	// Output:
	// runtime start 0.093 s, lazy mount 0.030 s
	// at half the cost: runtime start 0.0925 s, lazy mount 0.015 s
	// reading rates: lazyMountSeconds cannot be used: a rate must be positive, a cost not negative, a fraction within 0 and 1
}
