package imageref

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxNesting bounds how deep image indexes may nest. Real images nest one
// or two levels; anything deeper is treated like a cycle.
const maxNesting = 16

// indexPath tracks the chain of indexes being walked, to detect cycles.
type indexPath []v1.Hash

// enter returns the path with h appended, or ErrCycle if h is already on it
// or the path is too deep.
func (p indexPath) enter(h v1.Hash) (indexPath, error) {
	if slices.Contains(p, h) {
		return nil, fmt.Errorf("%w: index %s lists index %s, which contains it (%s)", ErrCycle, p[len(p)-1], h, p.chain(h))
	}
	if len(p) >= maxNesting {
		return nil, fmt.Errorf("%w: indexes nested more than %d deep (%s)", ErrCycle, maxNesting, p.chain(h))
	}
	return append(slices.Clip(p), h), nil
}

func (p indexPath) chain(next v1.Hash) string {
	parts := make([]string, 0, len(p)+1)
	for _, h := range p {
		parts = append(parts, h.String())
	}
	return strings.Join(append(parts, next.String()), " -> ")
}

// leaf is an image entry of an index tree.
type leaf struct {
	desc   v1.Descriptor
	parent v1.ImageIndex
}

// collectLeaves lists the image entries of idx and its nested indexes,
// depth first in document order.
func collectLeaves(ctx context.Context, idx v1.ImageIndex, path indexPath, out *[]leaf) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("reading index %s: %w", path[len(path)-1], err)
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			sub, err := path.enter(d.Digest)
			if err != nil {
				return err
			}
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return fmt.Errorf("reading index %s: %w", d.Digest, err)
			}
			if err := collectLeaves(ctx, child, sub, out); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			*out = append(*out, leaf{desc: d, parent: idx})
		}
	}
	return nil
}

// SelectPlatforms applies spec to a:
//   - spec keeps everything (IsAll): a is returned as it is;
//   - a is an image: it is returned if its platform (from its config) matches
//     every platform in spec, else the error (ErrPlatformMismatch) names the
//     image's platform;
//   - a is an index and spec names one platform: the one image for it is
//     returned (ErrAmbiguous if several images match, e.g. "linux/arm" with
//     both arm/v6 and arm/v7);
//   - a is an index and spec names several: an index with only the matching
//     images is returned. Kept entries, child manifests and nested indexes
//     that lose nothing are byte-identical to the original; nested indexes
//     that lose entries are rebuilt, and dropped when left empty; entries
//     that are not images (and image entries without a platform, such as
//     attestations) are dropped. If nothing is dropped the original index is
//     returned.
//
// Every platform in spec must match at least one image (ErrNotFound names
// the platforms available). Nested indexes are followed; one that contains
// itself gives ErrCycle.
func SelectPlatforms(ctx context.Context, a *Artifact, spec PlatformSpec) (*Artifact, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	if spec.IsAll() {
		return a, nil
	}
	if a.Image != nil {
		return selectImage(a, spec)
	}
	top, err := a.Index.Digest()
	if err != nil {
		return nil, fmt.Errorf("digest of index: %w", err)
	}
	path := indexPath{top}
	var leaves []leaf
	if err := collectLeaves(ctx, a.Index, path, &leaves); err != nil {
		return nil, err
	}
	keep := map[v1.Hash]bool{}
	for _, want := range spec.Platforms {
		var found []leaf
		for _, l := range leaves {
			if l.desc.Platform == nil || !platformMatches(*l.desc.Platform, want) {
				continue
			}
			if !slices.ContainsFunc(found, func(f leaf) bool { return f.desc.Digest == l.desc.Digest }) {
				found = append(found, l)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%w: no image for platform %s in index %s (it has: %s)", ErrNotFound, want.String(), top, available(leaves))
		}
		if len(spec.Platforms) == 1 {
			if len(found) > 1 {
				var names []string
				for _, f := range found {
					names = append(names, platformString(f.desc.Platform)+" "+f.desc.Digest.String())
				}
				return nil, fmt.Errorf("%w: platform %s matches %d images in index %s (%s); name one exactly",
					ErrAmbiguous, want.String(), len(found), top, strings.Join(names, ", "))
			}
			img, err := found[0].parent.Image(found[0].desc.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading image %s (%s): %w", found[0].desc.Digest, platformString(found[0].desc.Platform), err)
			}
			return &Artifact{Image: img}, nil
		}
		for _, f := range found {
			keep[f.desc.Digest] = true
		}
	}
	out, _, err := filterIndex(ctx, a.Index, keep, path)
	if err != nil {
		return nil, err
	}
	return &Artifact{Index: out}, nil
}

// available lists the platforms of leaves, in order, without repeats.
func available(leaves []leaf) string {
	var names []string
	for _, l := range leaves {
		if l.desc.Platform == nil {
			continue
		}
		s := platformString(l.desc.Platform)
		if !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return "no platforms"
	}
	return strings.Join(names, ", ")
}

func selectImage(a *Artifact, spec PlatformSpec) (*Artifact, error) {
	cfg, err := a.Image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	have := cfg.Platform()
	var missing []string
	for _, want := range spec.Platforms {
		if have == nil || !platformMatches(*have, want) {
			missing = append(missing, want.String())
		}
	}
	if len(missing) > 0 {
		d, err := a.Image.Digest()
		if err != nil {
			return nil, fmt.Errorf("digest of image: %w", err)
		}
		return nil, fmt.Errorf("%w: image %s is a single image for %s; %s requested", ErrPlatformMismatch, d, platformString(have), strings.Join(missing, ", "))
	}
	return a, nil
}

// filterIndex returns idx with only the image entries in keep. kept is false
// when nothing is left.
func filterIndex(ctx context.Context, idx v1.ImageIndex, keep map[v1.Hash]bool, path indexPath) (out v1.ImageIndex, kept bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, false, fmt.Errorf("reading index %s: %w", path[len(path)-1], err)
	}
	changed := false
	var descs []v1.Descriptor
	nested := map[v1.Hash]v1.ImageIndex{}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			sub, err := path.enter(d.Digest)
			if err != nil {
				return nil, false, err
			}
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, false, fmt.Errorf("reading index %s: %w", d.Digest, err)
			}
			fc, ok, err := filterIndex(ctx, child, keep, sub)
			if err != nil {
				return nil, false, err
			}
			switch {
			case !ok:
				changed = true
			case fc == child:
				descs = append(descs, d)
			default:
				nd := *d.DeepCopy()
				if nd.Digest, err = fc.Digest(); err != nil {
					return nil, false, err
				}
				if nd.Size, err = fc.Size(); err != nil {
					return nil, false, err
				}
				nested[nd.Digest] = fc
				descs = append(descs, nd)
				changed = true
			}
		case d.MediaType.IsImage() && keep[d.Digest]:
			descs = append(descs, d)
		default:
			changed = true
		}
	}
	if len(descs) == 0 {
		return nil, false, nil
	}
	if !changed {
		return idx, true, nil
	}
	mt, err := idx.MediaType()
	if err != nil {
		return nil, false, err
	}
	fm := im.DeepCopy()
	fm.Manifests = descs
	fi, err := newFilteredIndex(idx, mt, fm, nested)
	if err != nil {
		return nil, false, err
	}
	return fi, true, nil
}

// filteredIndex is an index with some entries of base removed. Children are
// served by base, so their manifests stay byte-identical.
type filteredIndex struct {
	base      v1.ImageIndex
	mediaType types.MediaType
	manifest  *v1.IndexManifest
	raw       []byte
	digest    v1.Hash
	nested    map[v1.Hash]v1.ImageIndex
}

func newFilteredIndex(base v1.ImageIndex, mt types.MediaType, m *v1.IndexManifest, nested map[v1.Hash]v1.ImageIndex) (*filteredIndex, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return &filteredIndex{base: base, mediaType: mt, manifest: m, raw: raw, digest: h, nested: nested}, nil
}

func (f *filteredIndex) MediaType() (types.MediaType, error) { return f.mediaType, nil }
func (f *filteredIndex) Digest() (v1.Hash, error)            { return f.digest, nil }
func (f *filteredIndex) Size() (int64, error)                { return int64(len(f.raw)), nil }
func (f *filteredIndex) RawManifest() ([]byte, error)        { return slices.Clone(f.raw), nil }

func (f *filteredIndex) IndexManifest() (*v1.IndexManifest, error) {
	return f.manifest.DeepCopy(), nil
}

func (f *filteredIndex) has(h v1.Hash) bool {
	return slices.ContainsFunc(f.manifest.Manifests, func(d v1.Descriptor) bool { return d.Digest == h })
}

func (f *filteredIndex) Image(h v1.Hash) (v1.Image, error) {
	if !f.has(h) {
		return nil, fmt.Errorf("%w: image %s is not in index %s", ErrNotFound, h, f.digest)
	}
	return f.base.Image(h)
}

func (f *filteredIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	if !f.has(h) {
		return nil, fmt.Errorf("%w: index %s is not in index %s", ErrNotFound, h, f.digest)
	}
	if n, ok := f.nested[h]; ok {
		return n, nil
	}
	return f.base.ImageIndex(h)
}
