// Command refconvert is the reference converter of the benchmarks: it
// converts every layer of an image to eStargz with estargz.Build and its
// defaults (stdlib gzip at BestCompression, no prioritized files), the way
// nerdctl image convert --estargz and ctr-remote image optimize --no-optimize
// call it, and writes the converted image.
//
//	go run ./benchmarks/refconvert [-prioritize FILE] SRC DST
//
// With -prioritize, every layer is built with the files FILE lists
// prioritized, in its order (estargz.WithPrioritizedFiles, files a layer
// lacks skipped), as ctr-remote image optimize does with the files it
// recorded. FILE is a profile JSON ({"files": [...]}, what coldstart
// profile writes) or a list of paths, one per line.
//
// SRC and DST are image references (oci:DIR, docker-archive:FILE, or a
// registry). It prints one JSON line: layers converted and output bytes.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	prioritize := flag.String("prioritize", "", "file listing the paths to prioritize (profile JSON or one path a line)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: refconvert [-prioritize FILE] SRC DST")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	var files []string
	if *prioritize != "" {
		var err error
		if files, err = readPaths(*prioritize); err != nil {
			fmt.Fprintln(os.Stderr, "refconvert:", err)
			os.Exit(1)
		}
	}
	if err := run(context.Background(), flag.Arg(0), flag.Arg(1), files); err != nil {
		fmt.Fprintln(os.Stderr, "refconvert:", err)
		os.Exit(1)
	}
}

// readPaths reads a profile JSON's "files" or a list of paths.
func readPaths(name string) ([]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var p struct {
			Files []string `json:"files"`
		}
		if err := json.Unmarshal(t, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return p.Files, nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

func run(ctx context.Context, srcArg, dstArg string, prioritized []string) error {
	src, err := imageref.Parse(srcArg)
	if err != nil {
		return err
	}
	dst, err := imageref.Parse(dstArg)
	if err != nil {
		return err
	}
	art, err := imageref.Read(ctx, src, imageref.WithInsecure(true))
	if err != nil {
		return err
	}
	if art.Image == nil {
		return fmt.Errorf("%s is an index: give one platform", src)
	}
	img := art.Image
	tmp, err := os.MkdirTemp("", "refconvert-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	cfg := cf.DeepCopy()
	cfg.RootFS.DiffIDs = nil
	cfg.History = nil
	out, err := mutate.ConfigFile(base, cfg)
	if err != nil {
		return err
	}
	var total int64
	for i, l := range ls {
		nl, ann, size, err := convert(tmp, i, l, prioritized)
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		total += size
		h := v1.History{}
		if i < len(cf.History) {
			h = cf.History[i]
		}
		if out, err = mutate.Append(out, mutate.Addendum{Layer: nl, Annotations: ann, History: h, MediaType: types.OCILayer}); err != nil {
			return err
		}
	}
	if err := imageref.Write(ctx, dst, &imageref.Artifact{Image: out}, imageref.WithInsecure(true)); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"layers": len(ls), "bytes": total})
}

// convert runs estargz.Build with its defaults on one layer, with the
// prioritized files (those the layer has) first when there are any.
func convert(tmp string, i int, l v1.Layer, prioritized []string) (v1.Layer, map[string]string, int64, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, nil, 0, err
	}
	tarPath := fmt.Sprintf("%s/layer-%d.tar", tmp, i)
	f, err := os.Create(tarPath)
	if err != nil {
		rc.Close()
		return nil, nil, 0, err
	}
	n, err := io.Copy(f, rc)
	rc.Close()
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	var opts []estargz.Option
	if len(prioritized) > 0 {
		var missed []string
		opts = append(opts, estargz.WithPrioritizedFiles(prioritized), estargz.WithAllowPrioritizeNotFound(&missed))
	}
	blob, err := estargz.Build(io.NewSectionReader(f, 0, n), opts...)
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	outPath := fmt.Sprintf("%s/layer-%d.esgz", tmp, i)
	of, err := os.Create(outPath)
	if err != nil {
		return nil, nil, 0, err
	}
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(of, h), blob)
	blob.Close()
	f.Close()
	os.Remove(tarPath)
	if cerr := of.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, 0, err
	}
	usize, err := blob.UncompressedSize()
	if err != nil {
		return nil, nil, 0, err
	}
	ann := map[string]string{
		estargz.TOCJSONDigestAnnotation:         blob.TOCDigest().String(),
		estargz.StoreUncompressedSizeAnnotation: fmt.Sprint(usize),
	}
	diffID, err := v1.NewHash(blob.DiffID().String())
	if err != nil {
		return nil, nil, 0, err
	}
	nl := &fileLayer{path: outPath, size: size, diffID: diffID,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}}
	return nl, ann, size, nil
}

// fileLayer is a converted blob on disk with the digests estargz.Build and
// the copy computed, so that nothing is read again to describe it.
type fileLayer struct {
	path           string
	size           int64
	digest, diffID v1.Hash
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}
