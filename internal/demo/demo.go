package demo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// ModulePath is the module whose testdata/demoapp is compiled.
const ModulePath = "github.com/coldstart-dev/coldstart"

// AppPackage is the demo program, relative to the module root.
const AppPackage = "./testdata/demoapp"

// History lines of the six layers, as a BuildKit build records them.
var createdBy = []string{
	"", // set from the base layer's DiffID, like ADD file:<hex> in /
	"RUN /bin/sh -c apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata # buildkit",
	"RUN /bin/sh -c rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb # buildkit",
	"COPY app /app # buildkit",
	"RUN /bin/sh -c chmod -R g+w /app # buildkit",
	"COPY app /app # buildkit",
}

// Option configures [Build] and [Write].
type Option func(*options) error

type options struct {
	binary     string
	moduleRoot string
	goarch     string
	tag        string
	scale      int
	comp       compression.Compression
	logger     *slog.Logger
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		goarch: runtime.GOARCH,
		tag:    "latest",
		scale:  1,
		comp:   compression.GZip,
		logger: slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithBinary uses a prebuilt demoapp binary instead of compiling one. The
// default is to compile testdata/demoapp.
func WithBinary(path string) Option {
	return func(o *options) error {
		if path == "" {
			return errors.New("demo: WithBinary needs a path")
		}
		o.binary = path
		return nil
	}
}

// WithModuleRoot names the coldstart module directory that holds
// testdata/demoapp. The default is the nearest directory, from the current
// one upwards, whose go.mod declares [ModulePath].
func WithModuleRoot(dir string) Option {
	return func(o *options) error {
		o.moduleRoot = dir
		return nil
	}
}

// WithArch sets the GOARCH the binary is compiled for and the image's
// architecture. The default is the host's, runtime.GOARCH.
func WithArch(goarch string) Option {
	return func(o *options) error {
		if goarch == "" {
			return errors.New("demo: WithArch needs an architecture")
		}
		o.goarch = goarch
		return nil
	}
}

// WithCompression sets the layers' compression. The default is gzip, as
// `docker build` pushes them.
func WithCompression(c compression.Compression) Option {
	return func(o *options) error {
		switch c {
		case compression.None, compression.GZip, compression.ZStd:
			o.comp = c
			return nil
		}
		return fmt.Errorf("demo: unknown compression %q", c)
	}
}

// WithScale makes the filler files (the base's packages, the app's
// assets) n times smaller, for tests that need the image's shape but not
// its bytes. The default is 1: the image is about 42 MiB, of which a
// container reads about 6 MiB at start-up.
func WithScale(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("demo: WithScale(%d): want 1 or more", n)
		}
		o.scale = n
		return nil
	}
}

// WithTag sets the tag [Write] records in the layout. The default is
// "latest".
func WithTag(tag string) Option {
	return func(o *options) error {
		o.tag = tag
		return nil
	}
}

// WithLogger receives a line per step. The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("demo: WithLogger needs a logger")
		}
		o.logger = l
		return nil
	}
}

// Build returns the demo image. Unless [WithBinary] is given it compiles
// testdata/demoapp into a temporary directory, removed on return.
func Build(ctx context.Context, opts ...Option) (v1.Image, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return buildImage(ctx, o)
}

func buildImage(ctx context.Context, o *options) (v1.Image, error) {
	var err error
	bin := o.binary
	if bin == "" {
		root := o.moduleRoot
		if root == "" {
			if root, err = FindModuleRoot(); err != nil {
				return nil, err
			}
		}
		tmp, err := os.MkdirTemp("", "coldstart-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		bin = filepath.Join(tmp, "demoapp")
		o.logger.Info("compiling demoapp", "module", root, "goarch", o.goarch)
		if err := Compile(ctx, root, o.goarch, bin); err != nil {
			return nil, err
		}
	}
	app, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("reading demoapp binary: %w", err)
	}
	return build(app, o)
}

func build(app []byte, o *options) (v1.Image, error) {
	fsLayers := filesystem(app, o.scale)
	adds := make([]mutate.Addendum, 0, len(fsLayers)+1)
	// The second COPY is the first again: compress it once.
	done := map[[sha256.Size]byte]v1.Layer{}
	for i, l := range fsLayers {
		raw := l.Tar()
		sum := sha256.Sum256(raw)
		layer, ok := done[sum]
		if !ok {
			var err error
			if layer, err = testimage.LayerFromTar(raw, o.comp); err != nil {
				return nil, fmt.Errorf("building layer %d: %w", i, err)
			}
			done[sum] = layer
		}
		cb := createdBy[i]
		if i == 0 {
			d, err := layer.DiffID()
			if err != nil {
				return nil, err
			}
			cb = "/bin/sh -c #(nop) ADD file:" + d.Hex + " in / "
		}
		o.logger.Info("built layer", "index", i, "created_by", cb)
		adds = append(adds, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: cb}})
	}
	adds = append(adds,
		mutate.Addendum{History: v1.History{CreatedBy: `ENTRYPOINT ["/app/demoapp"]`, Comment: "buildkit.dockerfile.v0", EmptyLayer: true}},
	)
	cf := v1.ConfigFile{
		Architecture: o.goarch,
		OS:           "linux",
		Config: v1.Config{
			Entrypoint: []string{"/app/demoapp"},
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"TZ=Etc/UTC",
			},
			WorkingDir:   "/app",
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			Labels:       map[string]string{"org.opencontainers.image.title": "coldstart-demo"},
		},
	}
	return testimage.ImageFrom(cf, adds...)
}

// Write builds the demo image and writes it to the OCI layout at dir under
// the tag set by [WithTag]. It returns the image's manifest digest.
func Write(ctx context.Context, dir string, opts ...Option) (v1.Hash, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := buildImage(ctx, o)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := testimage.WriteOCI(dir, o.tag, img); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}

// Compile builds testdata/demoapp of the module at moduleRoot into out, a
// static linux binary for goarch, reproducibly: CGO_ENABLED=0, -trimpath,
// -ldflags="-s -w", -buildvcs=false. It runs the go command found in PATH.
func Compile(ctx context.Context, moduleRoot, goarch, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-buildvcs=false", "-o", abs, AppPackage)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("compiling %s in %s: %w\n%s", AppPackage, moduleRoot, err, b)
	}
	return nil
}

// FindModuleRoot returns the nearest directory, from the current one
// upwards, whose go.mod declares [ModulePath].
func FindModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if mod, err := modulePath(filepath.Join(dir, "go.mod")); err == nil && mod == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("demo: no go.mod of %s above the current directory; run from the coldstart checkout or use WithModuleRoot", ModulePath)
		}
		dir = parent
	}
}

func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", io.ErrUnexpectedEOF
}
