package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/imageref"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// baseVersion changes when the way a base is made changes.
const baseVersion = "2"

// base is a cached debootstrap base.
type base struct {
	Base
	key    string
	dir    string // cache entry
	rootfs string // the tree, the bottom lower directory of every step
	layout string // the base as a one-layer OCI image
	digest v1.Hash
}

func (o *options) baseOf(r *Recipe) Base {
	b := r.Base
	if o.mirror != "" {
		b.Mirror = o.mirror
	}
	b.Mirror = strings.TrimRight(b.Mirror, "/")
	b.Include = slices.Sorted(slices.Values(b.Include))
	return b
}

func baseKey(b Base) string {
	h := sha256.New()
	fmt.Fprintf(h, "debootstrap base %s\nsuite %s\nvariant %s\nmirror %s\ninclude %s\narch %s\n",
		baseVersion, b.Suite, b.Variant, b.Mirror, strings.Join(b.Include, ","), runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (b Base) createdBy() string {
	s := "debootstrap --variant=" + b.Variant
	if len(b.Include) > 0 {
		s += " --include=" + strings.Join(b.Include, ",")
	}
	return s + " " + b.Suite + " " + b.Mirror
}

// ensureBase returns the cached base for b, making it first if needed.
func ensureBase(ctx context.Context, o *options, b Base) (*base, error) {
	key := baseKey(b)
	dir := filepath.Join(o.cacheDir, "base", b.Suite+"-"+b.Variant+"-"+key)
	bt := &base{Base: b, key: key, dir: dir, rootfs: filepath.Join(dir, "rootfs"), layout: filepath.Join(dir, "layout")}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := bt.load(ctx); err == nil {
		o.logger.DebugContext(ctx, "base cached", "base", dir)
		return bt, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(o.cacheDir, "base", "."+key+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := bt.load(ctx); err == nil { // made by another process meanwhile
		return bt, nil
	} else if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	t, err := lookTools(true)
	if err != nil {
		return nil, err
	}
	if err := makeBase(ctx, o, t, bt); err != nil {
		return nil, fmt.Errorf("making base %s: %w", b.createdBy(), err)
	}
	if err := bt.load(ctx); err != nil {
		return nil, err
	}
	return bt, nil
}

func (b *base) load(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(b.rootfs, "etc", "os-release")); err != nil {
		return err
	}
	ref, err := imageref.Parse("oci:" + b.layout)
	if err != nil {
		return err
	}
	a, err := imageref.Read(ctx, ref)
	if err != nil {
		return err
	}
	if a.Image == nil {
		return errors.New("base layout holds an index")
	}
	b.digest, err = a.Image.Digest()
	return err
}

func (b *base) image(ctx context.Context) (v1.Image, error) {
	ref, err := imageref.Parse("oci:" + b.layout)
	if err != nil {
		return nil, err
	}
	a, err := imageref.Read(ctx, ref)
	if err != nil {
		return nil, err
	}
	return a.Image, nil
}

func makeBase(ctx context.Context, o *options, t *tools, b *base) (err error) {
	start := time.Now()
	tmp, err := tempDir(o.cacheDir, "base")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := removeTree(tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	rootfs := filepath.Join(tmp, "rootfs")
	args := []string{t.debootstrap, "--variant=" + b.Variant}
	if len(b.Include) > 0 {
		args = append(args, "--include="+strings.Join(b.Include, ","))
	}
	args = append(args, b.Suite, rootfs, b.Mirror)
	o.logger.InfoContext(ctx, "making base", "cmd", b.createdBy())
	// In its own namespaces, so the /proc and /sys debootstrap mounts in the
	// target go away with it even when it is killed.
	if err := nsRun(ctx, t, `exec "$@"`, args, append(defaultEnv, "LANG=C.UTF-8"), o.output); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	if err := tidyBase(rootfs, b.Base); err != nil {
		return err
	}
	layout := filepath.Join(tmp, "layout")
	blob := filepath.Join(tmp, "layer.tar.gz")
	li, err := writeLayer(ctx, rootfs, blob, skipMounts)
	if err != nil {
		return fmt.Errorf("writing base layer: %w", err)
	}
	created := time.Now().UTC().Truncate(time.Second)
	img, err := mutate.Append(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1),
		mutate.Addendum{
			Layer:     &fileLayer{path: blob, info: li},
			MediaType: types.OCILayer,
			History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: b.createdBy()},
		})
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = runtime.GOARCH, "linux", v1.Time{Time: created}
	cf.Config.Env = slices.Clone(defaultEnv)
	cf.Config.Cmd = []string{"bash"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := writeLayout(ctx, layout, b.Suite+"-"+b.Variant, img); err != nil {
		return err
	}
	if err := writeInfo(layout, &Info{
		Name: "base", Key: b.key, Builder: Version, Base: b.key, Built: time.Now().UTC(), Duration: time.Since(start),
		Layers: []LayerInfo{{CreatedBy: b.createdBy(), Digest: li.Digest, DiffID: li.DiffID, Size: li.Size, TarSize: li.TarSize}},
	}); err != nil {
		return err
	}
	if err := os.Remove(blob); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.dir), 0o755); err != nil {
		return err
	}
	if err := replaceDir(tmp, b.dir); err != nil {
		return err
	}
	o.logger.InfoContext(ctx, "made base", "dir", b.dir, "took", time.Since(start).Round(time.Second))
	return nil
}

// skipMounts leaves out what a container runtime mounts over: the contents
// of /dev, /proc and /sys.
func skipMounts(rel string) bool {
	for _, p := range []string{"dev/", "proc/", "sys/"} {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	return false
}

// tidyBase turns a fresh debootstrap tree into what Debian's container
// images look like: no package lists or caches, no device nodes, an empty
// resolv.conf, deb822 sources for the suite, its updates and security, and
// dpkg's force-unsafe-io.
func tidyBase(rootfs string, b Base) error {
	for _, dir := range []string{"var/lib/apt/lists", "dev"} {
		if err := removeChildren(filepath.Join(rootfs, dir), nil); err != nil {
			return err
		}
	}
	isCache := func(name string) bool { return strings.HasSuffix(name, ".bin") || strings.HasSuffix(name, ".deb") }
	for _, dir := range []string{"var/cache/apt", "var/cache/apt/archives"} {
		if err := removeChildren(filepath.Join(rootfs, dir), isCache); err != nil {
			return err
		}
	}
	for name, content := range map[string]string{"etc/resolv.conf": "", "etc/hostname": "localhost\n"} {
		p := filepath.Join(rootfs, name)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(rootfs, "etc/apt/sources.list")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/apt/sources.list.d/debian.sources"), []byte(debianSources(b)), 0o644); err != nil {
		return err
	}
	// As in Debian's official images: dpkg does not fsync every file it
	// unpacks (a build that loses power is rerun anyway). Without it,
	// installing many small packages on overlayfs takes minutes.
	return os.WriteFile(filepath.Join(rootfs, "etc/dpkg/dpkg.cfg.d/docker-apt-speedup"), []byte("force-unsafe-io\n"), 0o644)
}

// debianSources is the deb822 sources file of a base: the suite, and for a
// release (not sid) its -updates and -security suites.
func debianSources(b Base) string {
	const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
	entry := func(uri, suites string) string {
		return "Types: deb\nURIs: " + uri + "\nSuites: " + suites + "\nComponents: main\nSigned-By: " + keyring + "\n"
	}
	release := b.Suite != "sid" && b.Suite != "unstable" && b.Suite != "experimental"
	if !release {
		return entry(b.Mirror, b.Suite)
	}
	s := entry(b.Mirror, b.Suite+" "+b.Suite+"-updates")
	if strings.HasSuffix(b.Mirror, "/debian") {
		s += "\n" + entry(b.Mirror+"-security", b.Suite+"-security")
	}
	return s
}

func removeChildren(dir string, match func(string) bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if match != nil && (e.IsDir() || !match(e.Name())) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// writeLayout writes img to a new OCI layout at dir, tagged tag.
func writeLayout(ctx context.Context, dir, tag string, img v1.Image) error {
	ref, err := imageref.Parse("oci:" + dir + ":" + tag)
	if err != nil {
		return err
	}
	return imageref.Write(ctx, ref, &imageref.Artifact{Image: img})
}

// replaceDir moves the finished tree src to dst, replacing what was there.
func replaceDir(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	old := dst + ".old-" + filepath.Base(src)
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return removeTree(old)
}
