package cache

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/coldstart-dev/coldstart/internal/funcopt"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures NewDir and NewRegistry. An option that does not apply to
// the store being created (WithMaxSize for a Registry, WithKeychain for a
// Dir, ...) is an error.
type Option func(*options) error

// DefaultMaxSize is the default size cap of a directory store: 10 GiB.
const DefaultMaxSize int64 = 10 << 30

// DefaultMaxEntries is the default number of entries a registry store's
// cache manifest keeps.
const DefaultMaxEntries = 4096

type options struct {
	logger *slog.Logger
	now    func() time.Time

	// Dir only.
	maxSize int64

	// Registry only.
	maxEntries int
	insecure   bool
	keychain   authn.Keychain
	transport  http.RoundTripper
	userAgent  string
	settle     time.Duration // minimum wait before re-reading the manifest
	attempts   int

	dirOnly, registryOnly []string // names of the options given
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		logger:     slog.New(slog.DiscardHandler),
		now:        time.Now,
		maxSize:    DefaultMaxSize,
		maxEntries: DefaultMaxEntries,
		keychain:   authn.DefaultKeychain,
		userAgent:  "coldstart",
		settle:     25 * time.Millisecond,
		attempts:   8,
	}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	return o, nil
}

// WithLogger sets where the store logs what it does (debug) and the corrupt
// entries it drops (warn). Default: nowhere.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("cache.WithLogger: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithMaxSize caps the bytes a directory store holds (blobs and entry
// records). After each Put the least recently used entries are evicted
// until the store is under the cap; the entry just written is never
// evicted, even when it alone is larger. Default: DefaultMaxSize (10 GiB).
// Directory store only.
func WithMaxSize(n int64) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("cache.WithMaxSize: negative size %d", n)
		}
		o.maxSize = n
		o.dirOnly = append(o.dirOnly, "WithMaxSize")
		return nil
	}
}

// WithMaxEntries caps the entries of a registry store's cache manifest (a
// registry limits a manifest's size; distribution's limit, 4 MiB, holds
// about 8000 entries). Past the cap, the entries Put longest ago are
// dropped from the manifest. Default: DefaultMaxEntries (4096). Registry
// store only.
func WithMaxEntries(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("cache.WithMaxEntries: %d; want at least 1", n)
		}
		o.maxEntries = n
		o.registryOnly = append(o.registryOnly, "WithMaxEntries")
		return nil
	}
}

// WithInsecure lets the registry reference use plain HTTP, and HTTPS
// without certificate verification (with the default transport).
// Registries on localhost and 127.0.0.1 use plain HTTP without it. Default:
// false. Registry store only.
func WithInsecure(insecure bool) Option {
	return func(o *options) error {
		o.insecure = insecure
		o.registryOnly = append(o.registryOnly, "WithInsecure")
		return nil
	}
}

// WithKeychain sets where registry credentials come from. Default:
// authn.DefaultKeychain (the Docker config and its credential helpers).
// Registry store only.
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) error {
		if kc == nil {
			return errors.New("cache.WithKeychain: nil keychain")
		}
		o.keychain = kc
		o.registryOnly = append(o.registryOnly, "WithKeychain")
		return nil
	}
}

// WithTransport sets the HTTP transport for the registry. Default:
// remote.DefaultTransport (with TLS verification off under WithInsecure).
// Registry store only.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("cache.WithTransport: nil transport")
		}
		o.transport = rt
		o.registryOnly = append(o.registryOnly, "WithTransport")
		return nil
	}
}

// WithUserAgent sets the User-Agent sent to the registry (ggcr appends its
// own). Default: "coldstart". Registry store only.
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		o.userAgent = ua
		o.registryOnly = append(o.registryOnly, "WithUserAgent")
		return nil
	}
}

func (o *options) check(store string, reject []string) error {
	if len(reject) > 0 {
		return fmt.Errorf("cache: %s does not apply to a %s store", reject[0], store)
	}
	return nil
}

func (o *options) httpTransport() http.RoundTripper {
	if o.transport != nil {
		return o.transport
	}
	rt := remote.DefaultTransport
	if o.insecure {
		if t, ok := rt.(*http.Transport); ok {
			t = t.Clone()
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{}
			}
			t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for with WithInsecure
			rt = t
		}
	}
	return rt
}
