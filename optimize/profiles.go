package optimize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FileProfiler returns a Profiler that reads start-up files from a file:
// a profile JSON document ({"files": [...]}, as "coldstart profile" writes),
// a ctr-remote / nerdctl record file (JSON lines of {"path": ...}), or a
// plain list of paths, one per line, with "*", "?" and "**" wildcards
// expanded against each image's filesystem in sorted order.
func FileProfiler(path string) (Profiler, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	sum := sha256.Sum256(data)
	name := "file/" + hex.EncodeToString(sum[:])
	trimmed := bytes.TrimSpace(data)
	var probe map[string]json.RawMessage
	switch {
	case json.Unmarshal(trimmed, &probe) == nil && probe["files"] != nil:
		p, err := profile.ReadJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
		return ProfilerFunc(name, func(context.Context, v1.Image, profile.FS) (*profile.Profile, error) { return p, nil }), nil
	case bytes.HasPrefix(trimmed, []byte("{")):
		p, err := profile.ReadRecordIn(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
		return ProfilerFunc(name, func(context.Context, v1.Image, profile.FS) (*profile.Profile, error) { return p, nil }), nil
	}
	return ProfilerFunc(name, func(_ context.Context, _ v1.Image, fsys profile.FS) (*profile.Profile, error) {
		p, err := profile.ReadPathList(bytes.NewReader(data), fsys)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
		return p, nil
	}), nil
}

// ProfileImage runs profiler (StaticProfiler when nil) over img's merged
// filesystem and returns its profile, with Image set to img's digest.
func ProfileImage(ctx context.Context, img v1.Image, profiler Profiler, opts ...Option) (*profile.Profile, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if profiler == nil {
		profiler = StaticProfiler
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	idxs, err := o.indexImage(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		return nil, err
	}
	tmp, err := newTempDir(o.tempDir)
	if err != nil {
		return nil, err
	}
	defer tmp.remove()
	tars := newLayerTars(ctx, ls, tmp)
	defer tars.close()
	p, err := profiler.Profile(ctx, img, newImageFS(ov, tars))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	p.Image = d.String()
	return p, nil
}
