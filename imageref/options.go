package imageref

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/coldstart-dev/coldstart/internal/funcopt"
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
	retry     Retry
	stall     time.Duration
	progress  func(Progress) // nil: none

	secrets *secrets          // credentials seen on the wire, kept out of messages
	rt      http.RoundTripper // the registry transport, built once per call
}

// DefaultJobs is how many blobs are copied at once by default.
const DefaultJobs = 4

// Retry says how registry requests that fail for a reason that may pass
// (a 408, 429, 500, 502, 503 or 504 answer, a reset or refused connection,
// a stall) are tried again.
type Retry struct {
	// Attempts is how many times a request, a blob upload (from its
	// existence check to its commit) or a broken download is tried in all;
	// 1 turns retries off.
	Attempts int
	// Wait is the pause after the first failure; each further pause is
	// twice the one before.
	Wait time.Duration
	// MaxRetryAfter caps how long a Retry-After header on a 429 or 503
	// answer makes the next attempt wait; 0 ignores the header.
	MaxRetryAfter time.Duration
}

// DefaultRetry is the retry policy unless WithRetry says otherwise: 4
// attempts, 1 s, 2 s and 4 s apart (7 s in all before giving up), and
// Retry-After honoured up to a minute.
var DefaultRetry = Retry{Attempts: 4, Wait: time.Second, MaxRetryAfter: time.Minute}

// wait returns the pause after the nth failure (n >= 1).
func (r Retry) wait(n int) time.Duration {
	d := r.Wait
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return d
}

// backoff is the policy in ggcr's terms.
func (r Retry) backoff() remote.Backoff {
	return remote.Backoff{Duration: r.Wait, Factor: 2, Steps: r.Attempts}
}

// DefaultStallTimeout is how long a registry connection may make no
// progress before the request is abandoned and retried, unless
// WithStallTimeout says otherwise.
const DefaultStallTimeout = 2 * time.Minute

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		keychain:  authn.DefaultKeychain,
		logger:    slog.New(slog.DiscardHandler),
		userAgent: "coldstart",
		jobs:      DefaultJobs,
		retry:     DefaultRetry,
		stall:     DefaultStallTimeout,
		secrets:   &secrets{},
	}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
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

// WithLogger sets where debug messages go: images read and written,
// retried requests, waits for Retry-After, resumed downloads (with
// credentials removed). Default: nowhere.
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

// WithRetry sets how failed registry requests are retried (see Retry).
// Default: DefaultRetry.
func WithRetry(r Retry) Option {
	return func(o *options) error {
		if r.Attempts < 1 || r.Wait < 0 || r.MaxRetryAfter < 0 {
			return fmt.Errorf("imageref.WithRetry: %+v: want at least 1 attempt and no negative durations", r)
		}
		o.retry = r
		return nil
	}
}

// WithStallTimeout sets how long a registry request may make no progress
// (no byte sent while sending, no answer, no byte received while the caller
// waits for one) before it is abandoned; an abandoned request counts as a
// failure that WithRetry retries, and an abandoned download resumes where it
// stopped. 0 turns the watch off. Default: DefaultStallTimeout.
func WithStallTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("imageref.WithStallTimeout: negative duration %s", d)
		}
		o.stall = d
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
	if o.rt == nil {
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
		o.rt = &registryTransport{base: rt, retry: o.retry, stall: o.stall, logger: o.logger, secrets: o.secrets}
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithTransport(o.rt),
		remote.WithUserAgent(o.userAgent),
		remote.WithJobs(o.jobs),
		remote.WithRetryBackoff(o.retry.backoff()),
		remote.WithRetryStatusCodes(retryStatusCodes...),
		remote.WithRetryPredicate(o.retryable),
	}
}

// retryable is the retry predicate: retryable, with a debug message.
func (o *options) retryable(err error) bool {
	if !retryable(err) {
		return false
	}
	o.logger.Debug("registry request failed; retrying if attempts remain", "error", o.secrets.scrub(err.Error()))
	return true
}
