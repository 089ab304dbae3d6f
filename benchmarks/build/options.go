package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/coldstart-dev/coldstart/benchmarks/images"
)

// Errors returned (wrapped) by this package; test with errors.Is.
var (
	// ErrUnknownImage: no recipe of that name.
	ErrUnknownImage = errors.New("unknown benchmark image")
	// ErrInvalidRecipe: a recipe.json that does not parse or check.
	ErrInvalidRecipe = errors.New("invalid recipe")
	// ErrUnsupported: building or running needs Linux, root, and the
	// debootstrap, unshare, mount and chroot commands.
	ErrUnsupported = errors.New("cannot build benchmark images here")
	// ErrStepFailed: a build step exited non-zero; the error holds the end
	// of its output.
	ErrStepFailed = errors.New("build step failed")
	// ErrNotReady: a verified container exited or timed out before its
	// ready condition held.
	ErrNotReady = errors.New("container did not become ready")
)

// Option configures Image, BaseImage and Verify.
type Option func(*options) error

type options struct {
	cacheDir string
	recipes  fs.FS
	mirror   string
	rebuild  bool
	logger   *slog.Logger
	output   io.Writer
	caFile   string
}

// hostCABundle is Debian's bundle of trusted CA certificates.
const hostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// defaultCacheDir is benchmarks/.work/images below the module root that
// contains the working directory, or coldstart/benchmark-images in the
// user's cache directory outside the module.
func defaultCacheDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/coldstart-dev/coldstart\n") {
			return filepath.Join(dir, "benchmarks", ".work", "images"), nil
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	uc, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (give one with WithCacheDir): %w", err)
	}
	return filepath.Join(uc, "coldstart", "benchmark-images"), nil
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		recipes: images.FS,
		logger:  slog.New(slog.DiscardHandler),
		output:  io.Discard,
	}
	if _, err := os.Stat(hostCABundle); err == nil {
		o.caFile = hostCABundle
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.cacheDir == "" {
		d, err := defaultCacheDir()
		if err != nil {
			return nil, err
		}
		o.cacheDir = d
	}
	abs, err := filepath.Abs(o.cacheDir)
	if err != nil {
		return nil, err
	}
	// The cache's paths go into overlayfs mount options, which split on
	// ',' and ':'.
	if strings.ContainsAny(abs, ",:\n") {
		return nil, fmt.Errorf("cache directory %q: overlayfs cannot use paths with ',' or ':'", abs)
	}
	o.cacheDir = abs
	return o, nil
}

// WithCacheDir sets where bases, images and temporary build trees are kept.
// The default is benchmarks/.work/images in the coldstart module that holds
// the working directory (git-ignored), or coldstart/benchmark-images in the
// user's cache directory when run elsewhere. The directory must be on a
// filesystem that can be an overlayfs upper layer (ext4, xfs, btrfs; not
// overlayfs or tmpfs without xattrs).
func WithCacheDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("WithCacheDir: empty directory")
		}
		o.cacheDir = dir
		return nil
	}
}

// WithMirror sets the Debian mirror debootstrap and apt use, overriding the
// recipe's base mirror (default DefaultMirror). The mirror is part of the
// cache key of the base and of every image on it.
func WithMirror(url string) Option {
	return func(o *options) error {
		if err := checkMirror(url); err != nil {
			return fmt.Errorf("WithMirror: %w", err)
		}
		o.mirror = strings.TrimRight(url, "/")
		return nil
	}
}

// WithRebuild builds the image again even when the cache holds it. The
// debootstrap base is still taken from the cache. The default is false.
func WithRebuild(on bool) Option {
	return func(o *options) error {
		o.rebuild = on
		return nil
	}
}

// WithLogger receives what the builder does (cache hits, steps, sizes) at
// debug and info level. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithOutput receives the output of debootstrap and of every build step,
// and, in Verify, of the container. The default discards it; errors still
// carry the end of a failed command's output.
func WithOutput(w io.Writer) Option {
	return func(o *options) error {
		if w == nil {
			return errors.New("WithOutput: nil writer")
		}
		o.output = w
		return nil
	}
}

// WithRecipes reads recipes from fsys (NAME/recipe.json and the files of its
// copy steps) instead of the embedded benchmarks/images tree.
func WithRecipes(fsys fs.FS) Option {
	return func(o *options) error {
		if fsys == nil {
			return errors.New("WithRecipes: nil file system")
		}
		o.recipes = fsys
		return nil
	}
}

// WithBuildCA makes run steps trust the CA certificates in file (PEM): it is
// mounted read-only at /mnt/ca.crt during run steps, never stored in a
// layer, and named by SSL_CERT_FILE, CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE,
// PIP_CERT, NODE_EXTRA_CA_CERTS and npm_config_cafile (a recipe's own env
// wins). This lets steps download over HTTPS behind a TLS-inspecting proxy
// whose CA the host trusts but the image does not. The default is the
// host's /etc/ssl/certs/ca-certificates.crt when it exists; "" turns it off.
func WithBuildCA(file string) Option {
	return func(o *options) error {
		if file != "" {
			if _, err := os.Stat(file); err != nil {
				return fmt.Errorf("WithBuildCA: %w", err)
			}
		}
		o.caFile = file
		return nil
	}
}
