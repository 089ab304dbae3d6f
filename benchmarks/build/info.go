package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// InfoFile is the file, next to index.json in every layout the builder
// makes, that records how the image was built.
const InfoFile = "build.json"

// Info records one build: what was built, from which recipe, how long it
// took and what each layer weighs.
type Info struct {
	// Name is the recipe's name, or "base" for a debootstrap base.
	Name string `json:"name"`
	// Key is the cache key the layout is stored under.
	Key string `json:"key"`
	// Builder is the builder Version.
	Builder string `json:"builder"`
	// Base is the key of the debootstrap base the image starts from.
	Base string `json:"base"`
	// Built is when the build finished.
	Built time.Time `json:"built"`
	// Duration is the build's wall time; for an image it excludes making
	// the base (see the base's own Info).
	Duration time.Duration `json:"duration"`
	// Layers are the image's layers, bottom first.
	Layers []LayerInfo `json:"layers"`
}

// LayerInfo describes one layer of a built image.
type LayerInfo struct {
	// CreatedBy is the step, as in the image's history.
	CreatedBy string  `json:"createdBy"`
	Digest    v1.Hash `json:"digest"`
	DiffID    v1.Hash `json:"diffID"`
	// Size is the gzip blob's size; TarSize the uncompressed tar's.
	Size    int64 `json:"size"`
	TarSize int64 `json:"tarSize"`
}

// Sizes returns the total compressed and uncompressed size of the layers.
func (i *Info) Sizes() (compressed, uncompressed int64) {
	for _, l := range i.Layers {
		compressed += l.Size
		uncompressed += l.TarSize
	}
	return compressed, uncompressed
}

// ReadInfo reads the InfoFile of a layout made by Image or BaseImage.
func ReadInfo(layoutDir string) (*Info, error) {
	b, err := os.ReadFile(filepath.Join(layoutDir, InfoFile))
	if err != nil {
		return nil, err
	}
	var i Info
	if err := json.Unmarshal(b, &i); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(layoutDir, InfoFile), err)
	}
	return &i, nil
}

func writeInfo(layoutDir string, i *Info) error {
	b, err := json.MarshalIndent(i, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(layoutDir, InfoFile), append(b, '\n'), 0o644)
}
