package testimage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// errNotImageOrIndex is returned by WriteOCI for other values.
var errNotImageOrIndex = errors.New("testimage: WriteOCI needs a v1.Image or v1.ImageIndex")

// RefNameAnnotation is the OCI layout annotation that holds a tag.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Image returns a linux/amd64 OCI image with the given container config and
// layers: diff_ids follow the layers, there is one history entry per layer
// (created_by "testimage layer N"), and every timestamp is [Epoch].
func Image(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{
			Layer:   l,
			History: v1.History{CreatedBy: fmt.Sprintf("testimage layer %d", i)},
		}
	}
	return ImageFrom(v1.ConfigFile{Config: cfg}, adds...)
}

// ImageFrom returns an OCI image whose config file starts from cf and gets
// one diff_id and one history entry per addendum. In cf, an empty
// Architecture or OS defaults to amd64 and linux, a zero Created to [Epoch];
// its History and RootFS are replaced. A zero History.Created in an addendum
// becomes [Epoch].
func ImageFrom(cf v1.ConfigFile, adds ...mutate.Addendum) (v1.Image, error) {
	cf = *cf.DeepCopy()
	if cf.Architecture == "" {
		cf.Architecture = "amd64"
	}
	if cf.OS == "" {
		cf.OS = "linux"
	}
	if cf.Created.IsZero() {
		cf.Created = v1.Time{Time: Epoch}
	}
	cf.History = nil
	cf.RootFS = v1.RootFS{Type: "layers"}

	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err := mutate.ConfigFile(base, &cf)
	if err != nil {
		return nil, err
	}
	adds = slices.Clone(adds)
	for i := range adds {
		if adds[i].History.Created.IsZero() {
			adds[i].History.Created = v1.Time{Time: Epoch}
		}
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	// Resolve now so that a bad layer fails here, not in a later reader.
	if _, err := img.Digest(); err != nil {
		return nil, err
	}
	return img, nil
}

// Index returns an OCI image index with one manifest per platform, in
// sorted platform order. Keys are "os/arch" or "os/arch/variant" (as
// v1.ParsePlatform reads them). Each image's config os, architecture and
// variant are set to its key's, so the returned index may reference images
// whose digests differ from the ones given.
func Index(images map[string]v1.Image) (v1.ImageIndex, error) {
	keys := make([]string, 0, len(images))
	for k := range images {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	adds := make([]mutate.IndexAddendum, 0, len(keys))
	for _, k := range keys {
		p, err := v1.ParsePlatform(k)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", k, err)
		}
		if p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("platform %q: want os/arch[/variant]", k)
		}
		img := images[k]
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("platform %q: reading config: %w", k, err)
		}
		if cf.OS != p.OS || cf.Architecture != p.Architecture || cf.Variant != p.Variant {
			cf = cf.DeepCopy()
			cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
			if img, err = mutate.ConfigFile(img, cf); err != nil {
				return nil, fmt.Errorf("platform %q: %w", k, err)
			}
		}
		mt, err := img.MediaType()
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{MediaType: mt, Platform: p},
		})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx, adds...), nil
}

// WriteOCI writes an image or an index (v1.Image or v1.ImageIndex) to the
// OCI image layout at dir, creating the layout if needed. A non-empty tag is
// recorded as the "org.opencontainers.image.ref.name" annotation and
// replaces any manifest the layout already had under that tag.
func WriteOCI(dir, tag string, imageOrIndex any) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "index.json")); !errors.Is(statErr, fs.ErrNotExist) {
			return fmt.Errorf("opening OCI layout %s: %w", dir, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("creating OCI layout %s: %w", dir, err)
		}
	}
	var opts []layout.Option
	matcher := func(v1.Descriptor) bool { return false }
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{RefNameAnnotation: tag}))
		matcher = match.Annotation(RefNameAnnotation, tag)
	}
	switch v := imageOrIndex.(type) {
	case v1.Image:
		err = p.ReplaceImage(v, matcher, opts...)
	case v1.ImageIndex:
		err = p.ReplaceIndex(v, matcher, opts...)
	default:
		return fmt.Errorf("%w, not %T", errNotImageOrIndex, imageOrIndex)
	}
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return nil
}
