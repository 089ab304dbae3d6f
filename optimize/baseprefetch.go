package optimize

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
)

// baseShell is the program whose start names the base's start-up files:
// every image has its loader and C library, and nearly every base has it.
const baseShell = "/bin/sh"

// baseStartupFiles returns what every container on the base reads first:
// the files containerd reads to create it (withRuntimeFiles) and, in the
// order the loader reads them, the files the static profile of
// baseShell names (the dynamic loader, its cache, the C library), less
// baseShell itself and the links to it. base is the merged
// base layers alone (the first layers of the image, so tars serves them),
// which makes the answer, and the converted base, the same for every image
// on that base. When the base has no baseShell, or its start cannot be
// followed, only the runtime files are named; a base with none of these
// is converted without a prefetch section.
func baseStartupFiles(ctx context.Context, base *layers.Overlay, tars *layers.Spool, log *slog.Logger) []string {
	final, links, ok := base.Resolve(baseShell)
	if !ok {
		return withRuntimeFiles(nil)
	}
	self := map[string]bool{"/" + base.Entry(final).Path: true}
	for _, r := range links {
		self["/"+base.Entry(r).Path] = true
	}
	fsys := profile.ImageFS(base, func(i int) (io.ReaderAt, error) { return tars.Tar(i) })
	p, err := profile.Static(ctx, fsys, profile.Config{Entrypoint: []string{baseShell}})
	if err != nil {
		log.Debug("base start-up files: profiling the base's shell failed", "err", err)
		return withRuntimeFiles(nil)
	}
	var files []string
	for _, f := range p.Files {
		if fr, _, ok := base.Resolve(f); self[path.Clean(f)] || ok && self["/"+base.Entry(fr).Path] {
			continue
		}
		files = append(files, f)
	}
	return withRuntimeFiles(files)
}

// withRuntimeFiles returns the start-up files files with the runtime files
// they do not name (unnamedRuntimeFiles) put first.
func withRuntimeFiles(files []string) []string {
	if rt := unnamedRuntimeFiles(files); rt != nil {
		return append(rt, files...)
	}
	return files
}

// unnamedRuntimeFiles returns the files of report.RuntimeFiles that files
// do not name. containerd reads them to create the container, before its
// program starts, and a run profile does not see it; a static profile
// names them.
func unnamedRuntimeFiles(files []string) []string {
	named := map[string]bool{}
	for _, f := range files {
		named[path.Clean(f)] = true
	}
	var out []string
	for _, f := range report.RuntimeFiles {
		if !named[f] {
			out = append(out, f)
		}
	}
	return out
}

// prioritizeBase puts paths (absolute, resolved through the symlinks of
// base, the merged base layers alone) first in the layers converted as they
// are (RoleConvert) that hold them.
func (p *plan) prioritizeBase(base *layers.Overlay, paths []string, sparseLimit int64) {
	eachResolved(base, paths, nil, nil, func(r layers.Ref) {
		lp := p.layers[r.Layer]
		e := base.Entry(r)
		if lp.role == RoleConvert && !readInPartOver(e, sparseLimit) {
			lp.prioritized = append(lp.prioritized, e.Path)
		}
	})
}

// convertedPrefix is the number of leading layers that are converted as
// they are: the base, under BaseConvert.
func convertedPrefix(roles []Role) int {
	n := 0
	for n < len(roles) && roles[n] == RoleConvert {
		n++
	}
	return n
}

// withInferredBase returns the pipeline that optimizes img: o itself, or,
// under WithInferredBase when no base image is given and img's manifest
// names the image it was built on, a copy in which img's first layer is a
// base layer, unless that layer is lazy already (a TOC annotation),
// foreign or cached.
func (o *pipeline) withInferredBase(img v1.Image) *pipeline {
	if !o.inferBase || len(o.baseImages) > 0 {
		return o
	}
	m, err := img.Manifest()
	if err != nil || len(m.Layers) == 0 {
		return o
	}
	digest, name := m.Annotations[specs.AnnotationBaseImageDigest], m.Annotations[specs.AnnotationBaseImageName]
	if digest == "" && name == "" {
		return o
	}
	l := m.Layers[0]
	if o.cachedLayers[l.Digest] || !l.MediaType.IsDistributable() {
		return o
	}
	for _, k := range append([]string{estargz.TOCJSONDigestAnnotation}, layers.ZstdChunkedAnnotationKeys...) {
		if l.Annotations[k] != "" {
			return o
		}
	}
	named := name
	if named == "" {
		named = digest
	}
	oc := *o.options
	oc.baseLayers = maps.Clone(o.baseLayers)
	oc.baseLayers[l.Digest] = true
	return &pipeline{options: &oc, inferred: fmt.Sprintf("layer 0 taken for the base's: the image names its base, %s, and no --base was given", named)}
}
