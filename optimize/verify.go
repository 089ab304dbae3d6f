package optimize

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/opencontainers/go-digest"
)

// maxDifferences is how many differences a Verification lists per image.
const maxDifferences = 20

// Verification is the outcome of Verify.
type Verification struct {
	OK     bool                 `json:"ok"`
	Images []*ImageVerification `json:"images"`
}

// ImageVerification compares one image of the source with its counterpart.
type ImageVerification struct {
	Platform string `json:"platform,omitempty"`
	Source   string `json:"source"`
	Target   string `json:"target"`
	// Paths is the number of paths compared.
	Paths int `json:"paths"`
	// Differences lists the first differences of the merged filesystems
	// and of lazy layer verification.
	Differences []string `json:"differences,omitempty"`
	// LazyLayers is the number of lazy layers whose TOC and chunks verified.
	LazyLayers int `json:"lazyLayers"`
}

// Verify checks that dst has the same merged filesystem as src (paths,
// types, modes, owners, mtimes, link targets, device numbers, xattrs and
// content) for every image, matched by platform, and that every eStargz and
// zstd:chunked layer of dst verifies: its TOC against the descriptor's TOC
// digest and every chunk against the TOC. src and dst are each a v1.Image
// or a v1.ImageIndex.
func Verify(ctx context.Context, src, dst any, opts ...Option) (*Verification, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	sImgs, err := imagesOf(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dImgs, err := imagesOf(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	v := &Verification{OK: true}
	if len(sImgs) != len(dImgs) {
		v.OK = false
		v.Images = append(v.Images, &ImageVerification{Differences: []string{
			fmt.Sprintf("source has %d images, target %d", len(sImgs), len(dImgs))}})
		return v, nil
	}
	for i := range sImgs {
		iv, err := o.verifyImage(ctx, sImgs[i], dImgs[i])
		if err != nil {
			return nil, err
		}
		if len(iv.Differences) > 0 {
			v.OK = false
		}
		v.Images = append(v.Images, iv)
	}
	return v, nil
}

func imagesOf(ctx context.Context, x any) ([]PlatformImage, error) {
	switch s := x.(type) {
	case v1.Image:
		return []PlatformImage{{Image: s}}, nil
	case v1.ImageIndex:
		imgs, err := IndexImages(ctx, s)
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
	return nil, fmt.Errorf("got %T, want a v1.Image or v1.ImageIndex", x)
}

func (o *options) verifyImage(ctx context.Context, s, d PlatformImage) (*ImageVerification, error) {
	iv := &ImageVerification{}
	if p := s.Descriptor.Platform; p != nil {
		iv.Platform = p.String()
		if dp := d.Descriptor.Platform; dp == nil || !dp.Equals(*p) {
			iv.Differences = append(iv.Differences, fmt.Sprintf("platform %s has no counterpart in the target", p))
			return iv, nil
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
	sIdx, err := o.indexImage(ctx, s.Image)
	if err != nil {
		return nil, fmt.Errorf("source image %s: %w", sd, err)
	}
	dIdx, err := o.indexImage(ctx, d.Image)
	if err != nil {
		return nil, fmt.Errorf("target image %s: %w", dd, err)
	}
	sOv, err := layers.Merge(sIdx...)
	if err != nil {
		return nil, err
	}
	dOv, err := layers.Merge(dIdx...)
	if err != nil {
		return nil, err
	}
	add := func(format string, args ...any) {
		if len(iv.Differences) < maxDifferences {
			iv.Differences = append(iv.Differences, fmt.Sprintf(format, args...))
		}
	}
	paths := unionSorted(sOv.Paths(), dOv.Paths())
	iv.Paths = len(paths)
	for _, p := range paths {
		sr, sok := sOv.Lookup(p)
		dr, dok := dOv.Lookup(p)
		switch {
		case !dok:
			add("/%s: missing in the target", p)
		case !sok:
			add("/%s: only in the target", p)
		default:
			if diff := entryDiff(sOv.Entry(sr), dOv.Entry(dr)); diff != "" {
				add("/%s: %s", p, diff)
			}
		}
	}
	dls, err := d.Image.Layers()
	if err != nil {
		return nil, err
	}
	for i, idx := range dIdx {
		if idx.Lazy == layers.NotLazy {
			continue
		}
		if err := o.verifyLazy(ctx, dls[i], idx); err != nil {
			add("layer %d %s: %v", i, idx.Digest, err)
			continue
		}
		iv.LazyLayers++
	}
	return iv, nil
}

func unionSorted(a, b []string) []string {
	seen := make(map[string]bool, len(a))
	out := append([]string(nil), a...)
	for _, p := range a {
		seen[p] = true
	}
	for _, p := range b {
		if !seen[p] {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// entryDiff describes how two visible entries differ, "" when they do not.
func entryDiff(a, b *layers.Entry) string {
	var d []string
	ta, tb := effectiveType(a), effectiveType(b)
	if ta != tb {
		return fmt.Sprintf("type %s, target has %s", ta, tb)
	}
	if a.Mode != b.Mode {
		d = append(d, fmt.Sprintf("mode %o, target %o", a.Mode, b.Mode))
	}
	if a.UID != b.UID || a.GID != b.GID {
		d = append(d, fmt.Sprintf("owner %d:%d, target %d:%d", a.UID, a.GID, b.UID, b.GID))
	}
	if !a.ModTime.Equal(b.ModTime) {
		d = append(d, fmt.Sprintf("mtime %s, target %s", a.ModTime.UTC().Format("2006-01-02T15:04:05Z"), b.ModTime.UTC().Format("2006-01-02T15:04:05Z")))
	}
	if a.HasContent() || b.HasContent() {
		if a.Size != b.Size || a.Digest != b.Digest {
			d = append(d, fmt.Sprintf("content %s (%d bytes), target %s (%d bytes)", a.ContentDigest(), a.Size, b.ContentDigest(), b.Size))
		}
	}
	if a.Type == layers.TypeSymlink && a.Linkname != b.Linkname {
		d = append(d, fmt.Sprintf("link target %q, target %q", a.Linkname, b.Linkname))
	}
	if a.Devmajor != b.Devmajor || a.Devminor != b.Devminor {
		d = append(d, fmt.Sprintf("device %d,%d, target %d,%d", a.Devmajor, a.Devminor, b.Devmajor, b.Devminor))
	}
	if !sameXattrs(a.Xattrs, b.Xattrs) {
		d = append(d, "xattrs differ")
	}
	return strings.Join(d, "; ")
}

func effectiveType(e *layers.Entry) layers.EntryType {
	if e.Type == layers.TypeHardlink {
		return layers.TypeReg
	}
	return e.Type
}

func sameXattrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// verifyLazy opens a lazy layer with estargz, verifies its TOC against the
// descriptor and every chunk against the TOC.
func (o *options) verifyLazy(ctx context.Context, l v1.Layer, idx *layers.Index) error {
	f, err := os.CreateTemp(o.tempDir, "coldstart-verify-*")
	if err != nil {
		return err
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	n, err := io.Copy(f, rc)
	rc.Close()
	if err != nil {
		return err
	}
	sr := io.NewSectionReader(f, 0, n)
	r, err := layers.OpenLazy(sr)
	if err != nil {
		return fmt.Errorf("opening TOC: %w", err)
	}
	var ver estargz.TOCEntryVerifier
	desc, _ := partial.Descriptor(l)
	want := ""
	if desc != nil {
		want = desc.Annotations["containerd.io/snapshot/stargz/toc.digest"]
	}
	if want != "" {
		dg, err := digest.Parse(want)
		if err != nil {
			return fmt.Errorf("TOC digest annotation: %w", err)
		}
		if ver, err = r.VerifyTOC(dg); err != nil {
			return fmt.Errorf("verifying TOC: %w", err)
		}
	} else if ver, err = r.Verifiers(); err != nil {
		return fmt.Errorf("verifying TOC: %w", err)
	}
	root, ok := r.Lookup("")
	if !ok {
		return fmt.Errorf("TOC has no root")
	}
	var walk func(e *estargz.TOCEntry) error
	walk = func(e *estargz.TOCEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Type == "reg" && e.Size > 0 {
			if err := verifyFile(r, ver, e); err != nil {
				return fmt.Errorf("%s: %w", e.Name, err)
			}
		}
		var cerr error
		e.ForeachChild(func(_ string, c *estargz.TOCEntry) bool {
			cerr = walk(c)
			return cerr == nil
		})
		return cerr
	}
	return walk(root)
}

func verifyFile(r *estargz.Reader, ver estargz.TOCEntryVerifier, e *estargz.TOCEntry) error {
	fr, err := r.OpenFile(e.Name)
	if err != nil {
		return err
	}
	for off := int64(0); off < e.Size; {
		ce, ok := r.ChunkEntryForOffset(e.Name, off)
		if !ok {
			return fmt.Errorf("no chunk at offset %d", off)
		}
		v, err := ver.Verifier(ce)
		if err != nil {
			return err
		}
		if _, err := io.Copy(v, io.NewSectionReader(fr, ce.ChunkOffset, ce.ChunkSize)); err != nil {
			return err
		}
		if !v.Verified() {
			return fmt.Errorf("chunk at offset %d does not match its digest", ce.ChunkOffset)
		}
		off = ce.ChunkOffset + ce.ChunkSize
	}
	return nil
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
			fmt.Fprintf(w, "  %s\n", d)
		}
	}
	return nil
}
