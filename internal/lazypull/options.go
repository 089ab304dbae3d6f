package lazypull

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/coldstart-dev/coldstart/internal/funcopt"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultConcurrency is how many whole layers are downloaded at once, as
// containerd does (its default max_concurrent_downloads).
const DefaultConcurrency = 3

// Option configures Start and FullPull.
type Option func(*options) error

type options struct {
	transport   http.RoundTripper
	insecure    bool
	keychain    authn.Keychain
	platform    *v1.Platform
	held        map[v1.Hash]bool
	indexes     map[v1.Hash]*layers.Index
	concurrency int
	tempDir     string
	logger      *slog.Logger
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		keychain:    authn.DefaultKeychain,
		held:        map[v1.Hash]bool{},
		indexes:     map[v1.Hash]*layers.Index{},
		concurrency: DefaultConcurrency,
		logger:      slog.New(slog.DiscardHandler),
	}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	return o, nil
}

// WithTransport sets the HTTP transport under authentication. The default
// is a new http.Transport per call, so that no connection is reused from
// an earlier measurement.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("lazypull: nil transport")
		}
		o.transport = rt
		return nil
	}
}

// WithInsecure talks plain HTTP to the registry. The default is HTTPS,
// except for localhost and 127.0.0.1, which are always plain HTTP.
func WithInsecure(on bool) Option {
	return func(o *options) error {
		o.insecure = on
		return nil
	}
}

// WithKeychain sets where credentials come from. The default is the Docker
// config (authn.DefaultKeychain).
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) error {
		if kc == nil {
			return errors.New("lazypull: nil keychain")
		}
		o.keychain = kc
		return nil
	}
}

// WithPlatform selects the image of an index. The default is the only
// image, or linux on the running architecture.
func WithPlatform(p v1.Platform) Option {
	return func(o *options) error {
		o.platform = &p
		return nil
	}
}

// WithHeld marks layers (by compressed digest) that the node already holds:
// nothing is fetched for them. The default is none: a cold node.
func WithHeld(digests ...v1.Hash) Option {
	return func(o *options) error {
		for _, d := range digests {
			o.held[d] = true
		}
		return nil
	}
}

// WithLayerIndex tells Start what a held layer contains, so that a file a
// held layer provides, or hides, resolves as it does on the node. Without
// it a held layer's entries are unknown, and start-up files found in no
// other layer are taken to be in the held layers.
func WithLayerIndex(digest v1.Hash, idx *layers.Index) Option {
	return func(o *options) error {
		if idx == nil {
			return errors.New("lazypull: nil layer index")
		}
		o.indexes[digest] = idx
		return nil
	}
}

// WithConcurrency sets how many whole layers are downloaded at once. The
// default is DefaultConcurrency.
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("lazypull: concurrency must be at least 1, got %d", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithTempDir sets where downloaded layers and the unpacked filesystem go
// (removed before returning). The default is os.TempDir().
func WithTempDir(dir string) Option {
	return func(o *options) error {
		o.tempDir = dir
		return nil
	}
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("lazypull: nil logger")
		}
		o.logger = l
		return nil
	}
}
