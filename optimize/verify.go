package optimize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/coldstart-dev/coldstart/internal/ctxio"
	"github.com/coldstart-dev/coldstart/internal/oracle"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// maxDifferences is how many differences a Verification lists per image.
const maxDifferences = 20

// Verification is the outcome of VerifyImage, VerifyIndex and VerifyImages.
type Verification struct {
	OK     bool                 `json:"ok"`
	Images []*ImageVerification `json:"images"`
}

// ImageVerification compares one image of the source with its counterpart.
type ImageVerification struct {
	// Platform is OS/ARCH[/VARIANT]: the index's, or for a single image
	// its config's.
	Platform string `json:"platform,omitempty"`
	Source   string `json:"source"`
	Target   string `json:"target"`
	// Paths is the number of paths compared.
	Paths int `json:"paths"`
	// Differences lists the first differences of the merged filesystems,
	// of the layers' digests and of lazy layer verification.
	Differences []string `json:"differences,omitempty"`
	// LazyLayers is the number of lazy layers whose TOC and chunks verified.
	LazyLayers int `json:"lazyLayers"`
}

// VerifyImage checks that dst shows a container the same filesystem as src, for
// every image, matched by platform, as each puller presents it:
//
//   - a full pull (containerd, podman): every layer's tar stream applied
//     in order. The eStargz TOC and prefetch landmarks at the root of an
//     eStargz layer, which a full pull extracts from any eStargz layer,
//     are left out;
//   - a lazy pull (stargz-snapshotter): every eStargz and zstd:chunked
//     layer as the estargz reader presents it from its TOC, every other
//     layer's tar stream;
//   - containers/storage's partial pull of zstd:chunked, which shows
//     every TOC entry: a prefetch landmark in such a layer is a file the
//     input did not have.
//
// It compares paths, types, modes, owners, mtimes, content, symlink targets,
// device numbers, xattrs and which paths are hard links of one another: a
// link made a copy is a difference, unless the link named a file of a
// lower layer (lazy pullers, and containerd's overlayfs applier, cannot
// link across layers, so the optimizer writes such a link as a copy). Every layer's digest, size and DiffID must
// match the manifest and config; every lazy layer's TOC must verify against
// the descriptor's TOC digest (eStargz, which stargz-snapshotter requires)
// or its manifest checksum and position (zstd:chunked, which
// containers/storage reads), and every chunk against the TOC.
//
// The judge shares no code with the optimizer: layers are applied by an
// independent applier written from containerd's semantics (an inode model
// for hard links, whiteouts, opaque directories), and lazy layers are read
// with the estargz reader. Each layer of both images is read once, layers
// in parallel (WithConcurrency).
func VerifyImage(ctx context.Context, src, dst v1.Image, opts ...Option) (*Verification, error) {
	return VerifyImages(ctx, []PlatformImage{{Image: src}}, []PlatformImage{{Image: dst}}, opts...)
}

// VerifyIndex is VerifyImage for every image of two indexes, matched by
// platform; attestation manifests are left out.
func VerifyIndex(ctx context.Context, src, dst v1.ImageIndex, opts ...Option) (*Verification, error) {
	s, err := runnableImages(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	d, err := runnableImages(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	return VerifyImages(ctx, s, d, opts...)
}

// VerifyImages is VerifyImage for lists of images, matched by position and
// platform (see IndexImages).
func VerifyImages(ctx context.Context, src, dst []PlatformImage, opts ...Option) (*Verification, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	res := &Verification{OK: true}
	if len(src) != len(dst) {
		res.OK = false
		res.Images = append(res.Images, &ImageVerification{Differences: []string{
			fmt.Sprintf("source has %d images, target %d", len(src), len(dst))}})
		return res, nil
	}
	v := &verifier{tempDir: o.tempDir, concurrency: o.concurrency}
	for i := range src {
		iv, err := v.verifyImage(ctx, src[i], dst[i])
		if err != nil {
			return nil, err
		}
		if len(iv.Differences) > 0 {
			res.OK = false
		}
		res.Images = append(res.Images, iv)
	}
	return res, nil
}

// verifier judges targets against their sources.
type verifier struct {
	tempDir     string
	concurrency int
}

// runnableImages lists the images of an index that run: attestation
// manifests are left out.
func runnableImages(ctx context.Context, idx v1.ImageIndex) ([]PlatformImage, error) {
	imgs, err := IndexImages(ctx, idx)
	if err != nil {
		return nil, err
	}
	var out []PlatformImage
	for _, pi := range imgs {
		if pi.Descriptor.Platform == nil && pi.Descriptor.Annotations["vnd.docker.reference.type"] != "" {
			continue
		}
		out = append(out, pi)
	}
	return out, nil
}

// verifyImage compares one image pair.
func (v *verifier) verifyImage(ctx context.Context, s, d PlatformImage) (*ImageVerification, error) {
	iv := &ImageVerification{}
	if p := s.Descriptor.Platform; p != nil {
		iv.Platform = p.String()
		if dp := d.Descriptor.Platform; dp == nil || !dp.Equals(*p) {
			iv.Differences = append(iv.Differences, fmt.Sprintf("platform %s has no counterpart in the target", p))
			return iv, nil
		}
	}
	if iv.Platform == "" {
		// A single image: its platform is in its config.
		if cf, err := s.Image.ConfigFile(); err == nil && cf != nil {
			if p := cf.Platform(); p != nil && p.OS != "" {
				iv.Platform = p.String()
			}
		}
	}
	sd, err := s.Image.Digest()
	if err != nil {
		return nil, err
	}
	dd, err := d.Image.Digest()
	if err != nil {
		return nil, err
	}
	iv.Source, iv.Target = sd.String(), dd.String()
	add := func(format string, args ...any) {
		if len(iv.Differences) < maxDifferences {
			iv.Differences = append(iv.Differences, fmt.Sprintf(format, args...))
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.concurrency)
	sLayers, err := v.readVerifyLayers(gctx, g, s.Image, false)
	if err != nil {
		g.Wait()
		return nil, fmt.Errorf("source image %s: %w", sd, err)
	}
	dLayers, err := v.readVerifyLayers(gctx, g, d.Image, true)
	if err != nil {
		g.Wait()
		return nil, fmt.Errorf("target image %s: %w", dd, err)
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, l := range sLayers {
		if len(l.problems) > 0 {
			return nil, fmt.Errorf("source image %s: layer %d %s: %s", sd, l.index, l.digest, l.problems[0])
		}
	}
	full := func(ls []*verifyLayer) []*oracle.Layer {
		out := make([]*oracle.Layer, len(ls))
		for i, l := range ls {
			out[i] = l.tar
		}
		return out
	}
	want, err := oracle.Apply(full(sLayers)...)
	if err != nil {
		return nil, fmt.Errorf("source image %s: %w", sd, err)
	}
	crossLinked := crossLayerLinked(want)
	broken := false
	for _, l := range dLayers {
		for _, p := range l.problems {
			add("layer %d %s: %s", l.index, l.digest, p)
			broken = true
		}
		if l.lazy != nil {
			iv.LazyLayers++
		}
	}
	if broken {
		return iv, nil
	}
	views := []struct {
		name   string
		layers []*oracle.Layer
	}{{"full pull", full(dLayers)}}
	if iv.LazyLayers > 0 {
		lazy := make([]*oracle.Layer, len(dLayers))
		for i, l := range dLayers {
			lazy[i] = l.tar
			if l.lazy != nil {
				lazy[i] = l.lazy
			}
		}
		views = append(views, struct {
			name   string
			layers []*oracle.Layer
		}{"lazy pull", lazy})
	}
	for _, view := range views {
		got, err := oracle.Apply(view.layers...)
		if err != nil {
			add("%s: %v", view.name, err)
			continue
		}
		c := oracle.Compare(want, got, oracle.MaxDifferences(maxDifferences))
		iv.Paths = max(iv.Paths, c.Paths)
		for _, diff := range c.Differences {
			if diff.Field == "hardlinks" && crossLinked(diff.Path) {
				// A hard link to a file of a lower layer becomes a copy
				// (a lazy puller, and containerd's overlayfs applier,
				// resolve links inside one layer): those paths may stop
				// sharing an inode. Links inside one layer must not.
				continue
			}
			add("%s: %s", view.name, diff.Msg)
		}
	}
	return iv, nil
}

// crossLayerLinked returns a test of whether a path of fs shares its inode
// through a hard link that names a file of a lower layer
// (oracle.NoteCrossLayerLink). When fs dropped notes, every path passes.
func crossLayerLinked(fs *oracle.FS) func(p string) bool {
	notes, dropped := fs.Notes()
	if dropped > 0 {
		return func(string) bool { return true }
	}
	var links []string
	for _, n := range notes {
		if n.Kind == oracle.NoteCrossLayerLink {
			links = append(links, n.Path)
		}
	}
	if len(links) == 0 {
		return func(string) bool { return false }
	}
	var inodes map[string]int
	linked := map[int]bool{}
	return func(p string) bool {
		if inodes == nil {
			inodes = map[string]int{}
			for _, n := range fs.Nodes() {
				inodes[n.Path] = n.Inode
			}
			for _, l := range links {
				if ino, ok := inodes[l]; ok {
					linked[ino] = true
				}
			}
		}
		ino, ok := inodes[p]
		return ok && linked[ino]
	}
}

// verifyLayer is one layer as VerifyImages read it.
type verifyLayer struct {
	index  int
	digest v1.Hash
	// tar is the layer as a full pull applies it.
	tar *oracle.Layer
	// lazy is the layer as stargz-snapshotter presents it, for eStargz
	// and zstd:chunked layers; nil for others.
	lazy *oracle.Layer
	// problems found in the layer (digests, annotations, TOC).
	problems []string
}

// readVerifyLayers starts reading every layer of img in g, each once; the
// layers are filled in when g is done. With lazy (the target), blobs are
// kept in temporary files until their TOC is checked.
func (v *verifier) readVerifyLayers(ctx context.Context, g *errgroup.Group, img v1.Image, lazy bool) ([]*verifyLayer, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(cf.RootFS.DiffIDs) != len(ls) {
		return nil, fmt.Errorf("config lists %d diff_ids for %d layers", len(cf.RootFS.DiffIDs), len(ls))
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if len(m.Layers) != len(ls) {
		return nil, fmt.Errorf("manifest lists %d layers, the image has %d", len(m.Layers), len(ls))
	}
	out := make([]*verifyLayer, len(ls))
	for i, l := range ls {
		// The manifest's descriptor, with the annotations pullers read.
		desc := &m.Layers[i]
		vl := &verifyLayer{index: i, digest: desc.Digest}
		out[i] = vl
		side := "source"
		if lazy {
			side = "target"
		}
		g.Go(func() error {
			if err := v.readVerifyLayer(ctx, l, desc, cf.RootFS.DiffIDs[i], lazy, vl); err != nil {
				return fmt.Errorf("%s layer %d %s: %w", side, i, desc.Digest, err)
			}
			return nil
		})
	}
	return out, nil
}

// readVerifyLayer reads one layer blob once: it checks its digest, size
// and DiffID, reads its tar stream with the independent applier's reader
// and, when lazy, keeps the blob in a temporary file to read its TOC with
// the estargz reader afterwards.
func (v *verifier) readVerifyLayer(ctx context.Context, l v1.Layer, desc *v1.Descriptor, diffID v1.Hash, lazy bool, vl *verifyLayer) error {
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("opening blob: %w", err)
	}
	defer rc.Close()
	blobHash := sha256.New()
	var blobFile *os.File
	sinks := []io.Writer{blobHash}
	if lazy {
		if blobFile, err = os.CreateTemp(v.tempDir, "coldstart-verify-*"); err != nil {
			return err
		}
		defer func() { blobFile.Close(); os.Remove(blobFile.Name()) }()
		sinks = append(sinks, blobFile)
	}
	counted := &countingHashReader{r: ctxio.Reader(ctx, rc), h: io.MultiWriter(sinks...)}
	dec, err := oracle.Decompress(counted)
	if err != nil {
		vl.problems = append(vl.problems, err.Error())
		return nil
	}
	defer dec.Close()
	diffHash := sha256.New()
	t, err := oracle.ReadLayer(io.TeeReader(dec, diffHash))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		vl.problems = append(vl.problems, err.Error())
		return nil
	}
	// Hash what follows the tar stream too, as the digests cover it.
	if _, err := io.Copy(diffHash, dec); err != nil {
		vl.problems = append(vl.problems, fmt.Sprintf("reading past the tar stream: %v", err))
		return nil
	}
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return fmt.Errorf("reading blob: %w", err)
	}
	if got := hashOf(blobHash); got != desc.Digest {
		vl.problems = append(vl.problems, fmt.Sprintf("blob hashes to %s, the manifest says %s", got, desc.Digest))
	}
	if counted.n != desc.Size {
		vl.problems = append(vl.problems, fmt.Sprintf("blob has %d bytes, the manifest says %d", counted.n, desc.Size))
	}
	if got := hashOf(diffHash); got != diffID {
		vl.problems = append(vl.problems, fmt.Sprintf("uncompressed layer hashes to %s, the config's diff_id is %s", got, diffID))
	}
	vl.tar = withoutEStargzMetadata(t)
	if !lazy || len(vl.problems) > 0 {
		return nil
	}
	return v.readLazyView(blobFile, counted.n, desc, vl)
}

// readLazyView reads a lazy layer's TOC view and checks what its pullers
// verify; a layer that is not lazy is left alone.
func (v *verifier) readLazyView(f *os.File, size int64, desc *v1.Descriptor, vl *verifyLayer) error {
	format := lazyFormatOf(f, size)
	annots := desc.Annotations
	if format == "" {
		if annots[estargz.TOCJSONDigestAnnotation] != "" || annots[zstdchunked.ManifestChecksumAnnotation] != "" {
			vl.problems = append(vl.problems, "its annotations say it is lazy, but it has no eStargz or zstd:chunked footer")
		}
		return nil
	}
	var topts []oracle.TOCOption
	// A zstd:chunked layer with the stargz TOC digest is the flavour for
	// stargz-snapshotter, which verifies its TOC the way it does eStargz's.
	forContainerd := format == "zstd:chunked" && annots[estargz.TOCJSONDigestAnnotation] != ""
	switch {
	case forContainerd:
		for _, k := range zstdChunkedKeys {
			if annots[k[0]] != "" {
				vl.problems = append(vl.problems, fmt.Sprintf("zstd:chunked layer with both %s and %s: containers/storage refuses it", estargz.TOCJSONDigestAnnotation, k[0]))
			}
		}
		fallthrough
	case format == "eStargz":
		want := annots[estargz.TOCJSONDigestAnnotation]
		if want == "" {
			vl.problems = append(vl.problems, fmt.Sprintf("eStargz layer without the %s annotation: stargz-snapshotter cannot verify it", estargz.TOCJSONDigestAnnotation))
			break
		}
		dg, err := digest.Parse(want)
		if err != nil {
			vl.problems = append(vl.problems, fmt.Sprintf("annotation %s: %v", estargz.TOCJSONDigestAnnotation, err))
			break
		}
		topts = append(topts, oracle.WithTOCDigest(dg))
	case format == "zstd:chunked":
		vl.problems = append(vl.problems, checkZstdChunkedAnnotations(f, size, annots)...)
	}
	lz, err := oracle.ReadTOC(f, size, topts...)
	if err != nil {
		vl.problems = append(vl.problems, fmt.Sprintf("%s TOC: %v", format, err))
		return nil
	}
	if format == "zstd:chunked" && !forContainerd {
		for _, h := range lz.Hidden {
			if h.Path == oracle.PrefetchLandmark || h.Path == oracle.NoPrefetchLandmark {
				vl.problems = append(vl.problems, fmt.Sprintf("zstd:chunked layer has /%s, which podman and CRI-O extract as a file", h.Path))
			}
		}
	}
	if v := annots[estargz.StoreUncompressedSizeAnnotation]; v != "" && v != strconv.FormatInt(vl.tar.Bytes, 10) {
		vl.problems = append(vl.problems, fmt.Sprintf("annotation %s is %s, the layer has %d bytes uncompressed", estargz.StoreUncompressedSizeAnnotation, v, vl.tar.Bytes))
	}
	vl.lazy = lz
	return nil
}

// safeFooter runs a footer parser of estargz's, turning its panics on
// hostile footers (v0.19.1's gzip one slices past a short extra field) into
// errors. verify keeps its own, as it shares no code with the optimizer.
func safeFooter(parse func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable lazy-layer footer (%v)", r)
		}
	}()
	return parse()
}

// lazyFormatOf reads a blob's footer the way the estargz reader does:
// "eStargz", "zstd:chunked" or "".
func lazyFormatOf(f io.ReaderAt, size int64) string {
	sr := io.NewSectionReader(f, 0, size)
	if err := safeFooter(func() error { _, _, err := estargz.OpenFooter(sr); return err }); err == nil {
		return "eStargz"
	}
	if size >= zstdchunked.FooterSize {
		footer := make([]byte, zstdchunked.FooterSize)
		if _, err := f.ReadAt(footer, size-zstdchunked.FooterSize); err == nil {
			var d zstdchunked.Decompressor
			if err := safeFooter(func() error { _, _, _, err := d.ParseFooter(footer); return err }); err == nil {
				return "zstd:chunked"
			}
		}
	}
	return ""
}

// zstdChunkedKeys pairs the manifest checksum and position annotations of
// containers/storage before 1.48 and after.
var zstdChunkedKeys = [][2]string{
	{zstdchunked.ManifestChecksumAnnotation, zstdchunked.ManifestPositionAnnotation},
	{"io.github.containers.zstd-chunked.manifest-checksum", "io.github.containers.zstd-chunked.manifest-position"},
}

// checkZstdChunkedAnnotations checks what containers/storage reads before a
// partial pull: the manifest position (offset:length:uncompressed
// length:type) must point at the TOC frame the footer points at, and the
// checksum must be the digest of those compressed bytes. At least one pair
// of annotations must be there.
func checkZstdChunkedAnnotations(f io.ReaderAt, size int64, annots map[string]string) []string {
	var problems []string
	footer := make([]byte, zstdchunked.FooterSize)
	if _, err := f.ReadAt(footer, size-zstdchunked.FooterSize); err != nil {
		return []string{fmt.Sprintf("reading the zstd:chunked footer: %v", err)}
	}
	var d zstdchunked.Decompressor
	var tocOff, tocLen int64
	err := safeFooter(func() (err error) { _, tocOff, tocLen, err = d.ParseFooter(footer); return err })
	if err != nil || tocOff < 0 || tocLen <= 0 || tocOff+tocLen > size {
		return []string{fmt.Sprintf("zstd:chunked footer does not point at a TOC (%v)", err)}
	}
	ctoc := make([]byte, tocLen)
	if _, err := f.ReadAt(ctoc, tocOff); err != nil {
		return []string{fmt.Sprintf("reading the zstd:chunked TOC: %v", err)}
	}
	sum := sha256.Sum256(ctoc)
	checksum := "sha256:" + hex.EncodeToString(sum[:])
	var tocJSON bytes.Buffer
	dr, err := d.DecompressTOC(bytes.NewReader(ctoc))
	if err == nil {
		_, err = io.Copy(&tocJSON, dr)
		dr.Close()
	}
	if err != nil {
		return []string{fmt.Sprintf("decompressing the zstd:chunked TOC: %v", err)}
	}
	manifestType := binary.LittleEndian.Uint64(footer[24:32])
	position := fmt.Sprintf("%d:%d:%d:%d", tocOff, tocLen, tocJSON.Len(), manifestType)
	found := false
	for _, keys := range zstdChunkedKeys {
		c, p := annots[keys[0]], annots[keys[1]]
		if c == "" && p == "" {
			continue
		}
		found = true
		if c != checksum {
			problems = append(problems, fmt.Sprintf("annotation %s is %q, the TOC frame hashes to %s", keys[0], c, checksum))
		}
		if p != position {
			problems = append(problems, fmt.Sprintf("annotation %s is %q, the footer and TOC say %s", keys[1], p, position))
		}
	}
	if !found {
		problems = append(problems, fmt.Sprintf("zstd:chunked layer without the %s and %s annotations: containers/storage cannot pull it partially", zstdChunkedKeys[0][0], zstdChunkedKeys[0][1]))
	}
	return problems
}

// withoutEStargzMetadata leaves out the root entries a full pull extracts
// from any eStargz layer: the TOC, which ends the tar stream, and the
// prefetch landmarks. A layer whose stream does not end with the TOC is
// returned as it is.
func withoutEStargzMetadata(l *oracle.Layer) *oracle.Layer {
	n := len(l.Entries)
	if n == 0 || l.Entries[n-1].Path != oracle.TOCName || l.Entries[n-1].Type != oracle.TypeFile {
		return l
	}
	out := *l
	out.Entries = make([]oracle.Entry, 0, n)
	for _, e := range l.Entries {
		switch e.Path {
		case oracle.TOCName, oracle.PrefetchLandmark, oracle.NoPrefetchLandmark:
			if e.Type == oracle.TypeFile {
				continue
			}
		}
		out.Entries = append(out.Entries, e)
	}
	return &out
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// countingHashReader copies what is read through it to h and counts it.
type countingHashReader struct {
	r io.Reader
	h io.Writer
	n int64
}

func (c *countingHashReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 {
		if _, werr := c.h.Write(p[:n]); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// Write renders the verification as text or JSON.
func (v *Verification) Write(w io.Writer, format string) error {
	if format == FormatJSON {
		return writeJSON(w, v)
	}
	for _, iv := range v.Images {
		name := iv.Platform
		if name == "" {
			name = "image"
		}
		if len(iv.Differences) == 0 {
			fmt.Fprintf(w, "%s: OK: %d paths equal, %d lazy layers verified\n", name, iv.Paths, iv.LazyLayers)
			continue
		}
		fmt.Fprintf(w, "%s: %d difference(s):\n", name, len(iv.Differences))
		for _, d := range iv.Differences {
			fmt.Fprintf(w, "  %s\n", strings.TrimSpace(d))
		}
	}
	return nil
}
