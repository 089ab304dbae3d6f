package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// contextTime is the mtime of the files copy steps add from an image
// directory (the embedded recipes carry none), so that unchanged recipes
// give unchanged copy layers.
var contextTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Image returns the OCI layout of the named benchmark image (see Names),
// building it first unless the cache holds it for the recipe's current
// content (then it returns at once).
//
// A build starts from a cached debootstrap base (made on first use, see
// BaseImage) and runs the recipe's steps like a Dockerfile build: each
// step runs as root in a chroot of the image so far, on an overlayfs whose
// upper directory becomes the step's layer (whiteouts and opaque
// directories converted to their OCI form, gzip-compressed). It needs
// root, unshare, mount and chroot (and debootstrap for a new base), and
// network access to the Debian mirror and to whatever the steps fetch.
//
// The layout holds one image tagged with the name, with manifest
// annotations naming the base (org.opencontainers.image.base.name and
// .digest); InfoFile in it records sizes and the build time. Older builds
// of the same name are removed from the cache.
func Image(ctx context.Context, name string, opts ...Option) (layoutDir string, recipe *Recipe, err error) {
	o, err := makeOptions(opts)
	if err != nil {
		return "", nil, err
	}
	r, err := loadRecipe(o.recipes, name)
	if err != nil {
		return "", nil, err
	}
	b := o.baseOf(r)
	key := imageKey(r.Key, baseKey(b))
	imagesDir := o.cacheDir
	dir := filepath.Join(imagesDir, name+"-"+key)
	if !o.rebuild && cached(dir) {
		o.logger.DebugContext(ctx, "image cached", "image", name, "layout", dir)
		return dir, r, nil
	}
	if _, err := lookTools(false); err != nil {
		return "", nil, fmt.Errorf("building image %s: %w", name, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(imagesDir, "."+name+".lock"))
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	if !o.rebuild && cached(dir) { // built by another process meanwhile
		return dir, r, nil
	}
	if err := buildImage(ctx, o, r, b, key, dir); err != nil {
		return "", nil, fmt.Errorf("building image %s: %w", name, err)
	}
	pruneOld(o, imagesDir, name, dir)
	return dir, r, nil
}

// BaseImage returns the OCI layout of the debootstrap base the named
// image's recipe starts from (one layer), making it first unless the cache
// holds it. Its layer is byte-identical to the bottom layer of the image.
func BaseImage(ctx context.Context, name string, opts ...Option) (layoutDir string, err error) {
	o, err := makeOptions(opts)
	if err != nil {
		return "", err
	}
	r, err := loadRecipe(o.recipes, name)
	if err != nil {
		return "", err
	}
	bt, err := ensureBase(ctx, o, o.baseOf(r))
	if err != nil {
		return "", err
	}
	return bt.layout, nil
}

func imageKey(recipeKey, baseKey string) string {
	h := sha256.Sum256([]byte("image " + recipeKey + " on " + baseKey))
	return hex.EncodeToString(h[:])[:16]
}

func cached(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, InfoFile))
	return err == nil
}

func pruneOld(o *options, imagesDir, name, keep string) {
	old, _ := filepath.Glob(filepath.Join(imagesDir, name+"-*"))
	for _, d := range old {
		if d == keep || strings.Contains(filepath.Base(d), ".old-") {
			continue
		}
		if k := strings.TrimPrefix(filepath.Base(d), name+"-"); len(k) != 16 || strings.Contains(k, "-") {
			continue // another recipe whose name starts with name-
		}
		if err := removeTree(d); err != nil {
			o.logger.Warn("removing an old build", "dir", d, "err", err)
		}
	}
}

// chain is a stack of layer directories, bottom (the base's rootfs) first.
type chain []string

func (c chain) lowers() []string {
	l := slices.Clone(c)
	slices.Reverse(l)
	return l
}

type builtLayer struct {
	upper string
	hist  v1.History
}

func buildImage(ctx context.Context, o *options, r *Recipe, b Base, key, dir string) (err error) {
	bt, err := ensureBase(ctx, o, b)
	if err != nil {
		return err
	}
	t, err := lookTools(false)
	if err != nil {
		return err
	}
	start := time.Now()
	o.logger.InfoContext(ctx, "building image", "image", r.Name, "key", key)
	tmp, err := tempDir(o.cacheDir, r.Name)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := removeTree(tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	env := stepEnv(r.Config.Env)
	sb := &stepBuilder{ctx: ctx, o: o, t: t, r: r, env: env, tmp: tmp}
	if o.caFile != "" {
		sb.caDir = filepath.Join(tmp, "ca")
		if err := stageCA(o.caFile, sb.caDir); err != nil {
			return err
		}
		sb.env = mergeEnv(append(slices.Clone(defaultEnv), caEnv...), env)
	}

	stages := map[string]chain{}
	for _, name := range slices.Sorted(maps.Keys(r.Stages)) {
		c := chain{bt.rootfs}
		for i, s := range r.Stages[name].Steps {
			l, err := sb.step(c, s, nil, fmt.Sprintf("stage %s step %d", name, i+1))
			if err != nil {
				return err
			}
			c = append(c, l.upper)
		}
		stages[name] = c
	}
	c := chain{bt.rootfs}
	var layers []builtLayer
	for i, s := range r.Steps {
		l, err := sb.step(c, s, stages, fmt.Sprintf("step %d", i+1))
		if err != nil {
			return err
		}
		c = append(c, l.upper)
		layers = append(layers, l)
	}

	img, err := bt.image(ctx)
	if err != nil {
		return err
	}
	baseInfo, err := ReadInfo(bt.layout)
	if err != nil {
		return err
	}
	info := &Info{Name: r.Name, Key: key, Builder: Version, Base: bt.key, Layers: baseInfo.Layers}
	blobs := filepath.Join(tmp, "blobs")
	if err := os.Mkdir(blobs, 0o755); err != nil {
		return err
	}
	for i, l := range layers {
		blob := filepath.Join(blobs, fmt.Sprintf("%02d.tar.gz", i+1))
		li, err := writeLayer(ctx, l.upper, blob, nil)
		if err != nil {
			return fmt.Errorf("writing the layer of step %d: %w", i+1, err)
		}
		if img, err = mutate.Append(img, mutate.Addendum{
			Layer:     &fileLayer{path: blob, info: li},
			MediaType: types.OCILayer,
			History:   l.hist,
		}); err != nil {
			return err
		}
		info.Layers = append(info.Layers, LayerInfo{CreatedBy: l.hist.CreatedBy, Digest: li.Digest, DiffID: li.DiffID, Size: li.Size, TarSize: li.TarSize})
	}
	if img, err = configure(img, r, bt); err != nil {
		return err
	}
	layout := filepath.Join(tmp, "layout")
	if err := writeLayout(ctx, layout, r.Name, img); err != nil {
		return err
	}
	info.Built = time.Now().UTC()
	info.Duration = time.Since(start)
	if err := writeInfo(layout, info); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := replaceDir(layout, dir); err != nil {
		return err
	}
	comp, uncomp := info.Sizes()
	o.logger.InfoContext(ctx, "built image", "image", r.Name, "layers", len(info.Layers),
		"compressed", comp, "uncompressed", uncomp, "took", info.Duration.Round(time.Second), "layout", dir)
	return nil
}

// configure sets the recipe's config and the base annotations.
func configure(img v1.Image, r *Recipe, bt *base) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	now := time.Now().UTC().Truncate(time.Second)
	cf.Created = v1.Time{Time: now}
	cf.Architecture, cf.OS = runtime.GOARCH, "linux"
	cfg := &cf.Config
	cfg.Entrypoint = slices.Clone(r.Config.Entrypoint)
	cfg.Cmd = slices.Clone(r.Config.Cmd) // like docker: ENTRYPOINT resets the base's CMD
	cfg.Env = mergeEnv(cfg.Env, r.Config.Env)
	cfg.WorkingDir = r.Config.WorkingDir
	cfg.User = r.Config.User
	cfg.ExposedPorts = nil
	for _, p := range r.Config.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	cfg.Labels = map[string]string{
		specs.AnnotationTitle:            r.Name,
		specs.AnnotationDescription:      r.Description,
		"dev.coldstart.benchmark.recipe": r.Key,
	}
	for k, v := range r.Config.Labels {
		cfg.Labels[k] = v
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	out, ok := mutate.Annotations(img, map[string]string{
		specs.AnnotationBaseImageName:   "debian:" + bt.Suite + "-" + bt.Variant,
		specs.AnnotationBaseImageDigest: bt.digest.String(),
	}).(v1.Image)
	if !ok {
		return nil, errors.New("mutate.Annotations did not return an image")
	}
	return out, nil
}

type stepBuilder struct {
	ctx   context.Context
	o     *options
	t     *tools
	r     *Recipe
	env   []string
	tmp   string
	caDir string // holds ca.crt for run steps, or ""
	n     int
}

// caEnv points the usual tools at the CA bundle mounted for run steps.
var caEnv = []string{
	"SSL_CERT_FILE=/mnt/ca.crt",
	"CURL_CA_BUNDLE=/mnt/ca.crt",
	"REQUESTS_CA_BUNDLE=/mnt/ca.crt",
	"PIP_CERT=/mnt/ca.crt",
	"NODE_EXTRA_CA_CERTS=/mnt/ca.crt",
	"npm_config_cafile=/mnt/ca.crt",
}

func stageCA(file, dir string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the build CA bundle: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ca.crt"), b, 0o644)
}

// step runs one step on top of c and returns its upper directory and
// history entry.
func (sb *stepBuilder) step(c chain, s Step, stages map[string]chain, what string) (builtLayer, error) {
	sb.n++
	dir := filepath.Join(sb.tmp, fmt.Sprintf("%02d", sb.n))
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return builtLayer{}, err
		}
	}
	hist := v1.History{CreatedBy: createdBy(s), Comment: s.Comment}
	sb.o.logger.InfoContext(sb.ctx, "step", "image", sb.r.Name, "step", what, "cmd", hist.CreatedBy)
	fmt.Fprintf(sb.o.output, "== %s %s: %s\n", sb.r.Name, what, hist.CreatedBy)
	start := time.Now()
	opts := overlayOptions(c.lowers(), upper, work)
	var err error
	if s.Run != "" {
		caMount := ""
		if sb.caDir != "" {
			caMount = `if [ -d "$M/mnt" ]; then
	mount --bind ` + shellQuote(sb.caDir) + ` "$M/mnt"
	mount -o remount,bind,ro "$M/mnt"
fi
`
		}
		err = nsRun(sb.ctx, sb.t, mountScript+caMount+`exec chroot "$M" /bin/sh -c "$3"`,
			[]string{merged, opts, s.Run}, sb.env, sb.o.output)
	} else {
		err = sb.copy(dir, merged, opts, s, stages)
	}
	if err != nil {
		return builtLayer{}, fmt.Errorf("%s (%s): %w", what, hist.CreatedBy, err)
	}
	// The work directory and mount point are overlayfs scratch; only the
	// upper directory is the layer.
	if err := os.RemoveAll(work); err != nil {
		return builtLayer{}, err
	}
	hist.Created = v1.Time{Time: time.Now().UTC().Truncate(time.Second)}
	sb.o.logger.DebugContext(sb.ctx, "step done", "image", sb.r.Name, "step", what, "took", time.Since(start).Round(time.Millisecond))
	return builtLayer{upper: upper, hist: hist}, nil
}

// copyScript runs in the chroot of the image being built: $1 is the source
// (below /mnt, where the build context or stage is mounted), $2 the
// destination, $3 the owner or "".
const copyScript = `set -eu
umask 022
src=$1 dst=$2 owner=$3
if [ -d "$src" ] && [ ! -L "$src" ]; then
	mkdir -p "$dst"
	cp -dR --preserve=mode,timestamps,links "$src/." "$dst/"
	if [ -n "$owner" ]; then
		chown -h "$owner" "$dst"
		for e in "$src"/* "$src"/.[!.]* "$src"/..?*; do
			if [ -e "$e" ] || [ -L "$e" ]; then chown -Rh "$owner" "$dst/${e##*/}"; fi
		done
	fi
else
	case "$dst" in
	*/) mkdir -p "$dst"; dst="$dst${src##*/}" ;;
	*) mkdir -p "${dst%/*}/" ;;
	esac
	cp -d --preserve=mode,timestamps "$src" "$dst"
	if [ -n "$owner" ]; then chown -h "$owner" "$dst"; fi
fi
`

func (sb *stepBuilder) copy(dir, merged, opts string, s Step, stages map[string]chain) error {
	var mountSrc, src string
	if s.From != "" {
		// The stage's tree, read-only, at /mnt of the chroot.
		lowers := stages[s.From].lowers()
		mountSrc = `mount -t overlay overlay -o ` + shellQuote(overlayOptions(lowers, "", "")) + ` "$M/mnt"` + "\n"
		src = path.Join("/mnt", s.Copy)
	} else {
		ctxDir := filepath.Join(dir, "context")
		if err := stageContext(sb.r.files, s, ctxDir); err != nil {
			return fmt.Errorf("staging %s: %w", s.Copy, err)
		}
		mountSrc = `mount --bind ` + shellQuote(ctxDir) + ` "$M/mnt"` + "\n" +
			`mount -o remount,bind,ro "$M/mnt"` + "\n"
		src = path.Join("/mnt", path.Base(s.Copy))
	}
	script := mountScript + `[ -d "$M/mnt" ] || { echo "the image has no /mnt to mount the copy source on" >&2; exit 1; }
` + mountSrc + `exec chroot "$M" /bin/sh -c "$3" sh "$4" "$5" "$6"`
	return nsRun(sb.ctx, sb.t, script, []string{merged, opts, copyScript, src, s.To, s.Chown}, sb.env, sb.o.output)
}

// stageContext copies a copy step's source out of the recipe directory into
// dir (as dir/BASENAME), with the step's mode on regular files (0644 by
// default), 0755 directories and contextTime mtimes.
func stageContext(files fs.FS, s Step, dir string) error {
	mode := uint32(0o644)
	if s.Mode != "" {
		m, err := parseMode(s.Mode)
		if err != nil {
			return err
		}
		mode = m
	}
	dst := filepath.Join(dir, path.Base(s.Copy))
	var dirs []string
	err := fs.WalkDir(files, s.Copy, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, s.Copy), "/")
		out := filepath.Join(dst, filepath.FromSlash(rel))
		if d.IsDir() {
			dirs = append(dirs, out)
			return os.MkdirAll(out, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		in, err := files.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, in); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Chmod(out, fs.FileMode(mode&0o777)|modeBits(mode)); err != nil {
			return err
		}
		return os.Chtimes(out, contextTime, contextTime)
	})
	if err != nil {
		return err
	}
	for _, d := range slices.Backward(dirs) {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
		if err := os.Chtimes(d, contextTime, contextTime); err != nil {
			return err
		}
	}
	return nil
}

func modeBits(m uint32) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}
