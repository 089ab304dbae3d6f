package imageref

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures Read, Write and SelectPlatforms.
type Option func(*options) error

type options struct {
	insecure  bool
	keychain  authn.Keychain
	transport http.RoundTripper // nil: remote.DefaultTransport
	platforms PlatformSpec
	logger    *slog.Logger
	userAgent string
	jobs      int
}

// DefaultJobs is how many blobs are copied at once by default.
const DefaultJobs = 4

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		keychain:  authn.DefaultKeychain,
		logger:    slog.New(slog.DiscardHandler),
		userAgent: "coldstart",
		jobs:      DefaultJobs,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithInsecure lets registry references use plain HTTP, and HTTPS without
// certificate verification (when the transport is the default one), like
// skopeo's --tls-verify=false. Registries on localhost and 127.0.0.1 use
// plain HTTP without it. Default: false.
func WithInsecure(insecure bool) Option {
	return func(o *options) error {
		o.insecure = insecure
		return nil
	}
}

// WithKeychain sets where registry credentials come from. Default:
// authn.DefaultKeychain (the Docker config, $DOCKER_CONFIG/config.json, and
// its credential helpers).
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) error {
		if kc == nil {
			return errors.New("imageref.WithKeychain: nil keychain")
		}
		o.keychain = kc
		return nil
	}
}

// WithTransport sets the HTTP transport for registries. Default:
// remote.DefaultTransport (with TLS verification off under WithInsecure).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("imageref.WithTransport: nil transport")
		}
		o.transport = rt
		return nil
	}
}

// WithPlatforms selects platforms, as SelectPlatforms does: Read returns the
// selection, Write writes it. Default: every platform (the artifact as
// stored).
func WithPlatforms(spec PlatformSpec) Option {
	return func(o *options) error {
		o.platforms = spec
		return nil
	}
}

// WithLogger sets where debug messages go. Default: nowhere.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		o.logger = l
		return nil
	}
}

// WithUserAgent sets the User-Agent sent to registries (ggcr appends its
// own). Default: "coldstart".
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		o.userAgent = ua
		return nil
	}
}

// WithJobs sets how many blobs are copied at once when writing to a registry
// or a layout. Default: DefaultJobs.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("imageref.WithJobs: %d jobs; want at least 1", n)
		}
		o.jobs = n
		return nil
	}
}

func (o *options) nameRef(r Ref) (name.Reference, error) {
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(r.Name, nopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidReference, r.Name, err)
	}
	return ref, nil
}

func (o *options) remoteOptions(ctx context.Context) []remote.Option {
	rt := o.transport
	if rt == nil {
		rt = remote.DefaultTransport
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
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithTransport(rt),
		remote.WithUserAgent(o.userAgent),
		remote.WithJobs(o.jobs),
	}
}
