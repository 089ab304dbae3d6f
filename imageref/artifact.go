package imageref

import (
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// Artifact is what a reference points to: a single image or an image index.
// Exactly one of Image and Index is set.
type Artifact struct {
	Image v1.Image
	Index v1.ImageIndex
}

// IsIndex reports whether a is an image index.
func (a *Artifact) IsIndex() bool {
	return a.Index != nil
}

// Descriptor returns the descriptor of a's manifest: media type, digest and
// size, and for an image read out of an index, its platform and annotations
// there. For an image read from a docker archive whose layers are stored
// uncompressed this compresses every layer to learn their digests.
func (a *Artifact) Descriptor() (*v1.Descriptor, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	if a.Index != nil {
		return partial.Descriptor(a.Index)
	}
	return partial.Descriptor(a.Image)
}

// Digest returns the digest of a's manifest.
func (a *Artifact) Digest() (v1.Hash, error) {
	if err := a.validate(); err != nil {
		return v1.Hash{}, err
	}
	if a.Index != nil {
		return a.Index.Digest()
	}
	return a.Image.Digest()
}

func (a *Artifact) validate() error {
	switch {
	case a == nil:
		return errors.New("nil artifact")
	case a.Image == nil && a.Index == nil:
		return errors.New("artifact has neither an image nor an index")
	case a.Image != nil && a.Index != nil:
		return errors.New("artifact has both an image and an index; set one")
	}
	return nil
}
