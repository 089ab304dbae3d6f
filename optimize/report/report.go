package report

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// Version is the version of the report's JSON document.
const Version = 1

// RuntimeFiles are the files containerd reads from an image's filesystem
// to create a container, before its program starts: the process's user and
// groups come from them (with no user in the image config, root's
// additional groups). A run profile does not see these reads.
var RuntimeFiles = []string{"/etc/passwd", "/etc/group"}

// ModelVersion changes whenever the model would estimate other figures for
// the same image: estimates kept elsewhere (the optimizer's image records)
// are made anew.
const ModelVersion = "11"

// Scenario names one way of starting the image.
type Scenario string

// The scenarios.
const (
	// FullPull: a node without lazy pulling downloads every layer it does
	// not hold, then unpacks them.
	FullPull Scenario = "full-pull"
	// LazyStart: a node with a lazy snapshotter mounts the lazy layers,
	// downloads the others (see lazypull.Roles) and reads the start-up
	// files on demand.
	LazyStart Scenario = "lazy-start"
	// LowerBound: the TOCs and the chunks of exactly the start-up files, in
	// the fewest requests, as parallel as possible.
	LowerBound Scenario = "lower-bound"
	// IfOptimized: a lazy start after converting every layer that is not
	// lazy yet with the profile (an estimate; nothing is written).
	IfOptimized Scenario = "if-optimized"
	// PartialPull: a node with containers/storage's partial pulls
	// (podman, CRI-O) fetches the TOC of every eStargz or zstd:chunked
	// layer it does not hold and then only the files it holds in no layer
	// it pulled partially (WithPrevious), all before the container starts;
	// it downloads the other layers whole.
	PartialPull Scenario = "partial-pull"
)

// Title is the scenario as a table shows it.
func (s Scenario) Title() string {
	switch s {
	case FullPull:
		return "full pull"
	case LazyStart:
		return "lazy start"
	case LowerBound:
		return "lower bound"
	case IfOptimized:
		return "if optimized"
	case PartialPull:
		return "partial pull (podman)"
	}
	return string(s)
}

// Where a start-up file comes from in a lazy start.
const (
	WhereHeld     = "held"
	WhereLayer    = "whole layer"
	WherePrefetch = "prefetch"
	WhereOnDemand = "on demand"
)

// Report is the cold-start cost of one image on one node.
type Report struct {
	Version  int    `json:"version"`
	Image    string `json:"image,omitempty"`
	Digest   string `json:"digest"`
	Platform string `json:"platform,omitempty"`
	// Profile summarizes the start-up files.
	Profile ProfileSummary `json:"profile"`
	// Held lists the layers the node holds, by digest.
	Held []string `json:"held,omitempty"`
	// Previous is the digest of the earlier version of the image the node
	// holds (WithPrevious).
	Previous string  `json:"previous,omitempty"`
	Layers   []Layer `json:"layers"`
	// Bytes and requests of each scenario (the same figures as in
	// Scenarios, for scripts).
	FullPullBytes       int64  `json:"fullPullBytes"`
	FullPullRequests    int    `json:"fullPullRequests"`
	LazyStartBytes      int64  `json:"lazyStartBytes"`
	LazyStartRequests   int    `json:"lazyStartRequests"`
	LowerBoundBytes     int64  `json:"lowerBoundBytes"`
	LowerBoundRequests  int    `json:"lowerBoundRequests"`
	IfOptimizedBytes    *int64 `json:"ifOptimizedBytes,omitempty"`
	IfOptimizedRequests *int   `json:"ifOptimizedRequests,omitempty"`
	// PartialPullBytes and PartialPullRequests are set when the partial
	// pull applies: WithPrevious, or a layer that containers/storage pulls
	// partially.
	PartialPullBytes    *int64 `json:"partialPullBytes,omitempty"`
	PartialPullRequests *int   `json:"partialPullRequests,omitempty"`
	// Scenarios details each scenario's bytes.
	Scenarios []ScenarioCost `json:"scenarios"`
	// Estimates holds the estimated seconds to ready, per network.
	Estimates []NetworkEstimate `json:"estimates"`
	// TopFiles are the start-up files that cost the most, on the slowest
	// network estimated.
	TopFiles []FileCost `json:"topFiles"`
	// Rates are the CPU rates used.
	Rates Rates `json:"rates"`
	// Measured holds a real pull and a real lazy start, if measured.
	Measured *Measurement `json:"measured,omitempty"`
	// Budgets holds the budget checks, if any.
	Budgets []BudgetResult `json:"budgets,omitempty"`
}

// ProfileSummary describes the start-up files.
type ProfileSummary struct {
	Source string `json:"source"`
	// Paths is the number of paths in the profile; Files the number of
	// regular files they lead to, Bytes their size.
	Paths int   `json:"paths"`
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Missing lists the paths that lead to nothing in the image.
	Missing  []string `json:"missing,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Layer describes one layer and what a lazy start costs for it.
type Layer struct {
	Index     int    `json:"index"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	// Format is "estargz", "zstd:chunked", "gzip", "zstd", "none" or
	// "foreign".
	Format           string `json:"format"`
	Size             int64  `json:"size"`
	UncompressedSize int64  `json:"uncompressedSize"`
	Entries          int    `json:"entries"`
	Held             bool   `json:"held,omitempty"`
	// Role is what a lazy start does with it: "held", "lazy" or "full".
	Role string `json:"role"`
	// TOCBytes, PrefetchBytes and OnDemandBytes are what a lazy start
	// fetches of it: footer and TOC, prefetch range, chunks read on demand.
	TOCBytes         int64 `json:"tocBytes,omitempty"`
	PrefetchBytes    int64 `json:"prefetchBytes,omitempty"`
	OnDemandBytes    int64 `json:"onDemandBytes,omitempty"`
	OnDemandRequests int   `json:"onDemandRequests,omitempty"`
	// StartupFiles and StartupBytes: the start-up files it provides.
	StartupFiles int    `json:"startupFiles"`
	StartupBytes int64  `json:"startupBytes"`
	Note         string `json:"note,omitempty"`
	// PartialPullBytes and PartialPullRequests are what a partial pull
	// fetches of it (TOC and files, or the whole blob); PartialPullFiles
	// the files it fetches, PartialPullCopied the files it copies from
	// layers the node pulled partially. Set when the partial pull applies.
	PartialPullBytes    int64 `json:"partialPullBytes,omitempty"`
	PartialPullRequests int   `json:"partialPullRequests,omitempty"`
	PartialPullFiles    int   `json:"partialPullFiles,omitempty"`
	PartialPullCopied   int   `json:"partialPullCopied,omitempty"`
}

// ScenarioCost is what one scenario fetches.
type ScenarioCost struct {
	Scenario Scenario `json:"scenario"`
	Bytes    int64    `json:"bytes"`
	Requests int      `json:"requests"`
	// MetadataBytes: the registry ping, manifests, config, footers and
	// TOCs. LayerBytes: whole layers. PrefetchBytes: prefetch ranges.
	// OnDemandBytes: chunks read on demand. FileBytes: the multi-range
	// responses of a partial pull (the files it lacks, multipart headers
	// included).
	MetadataBytes int64 `json:"metadataBytes"`
	LayerBytes    int64 `json:"layerBytes"`
	PrefetchBytes int64 `json:"prefetchBytes"`
	OnDemandBytes int64 `json:"onDemandBytes"`
	FileBytes     int64 `json:"fileBytes,omitempty"`
	// UnpackBytes is the uncompressed size of the layers unpacked.
	UnpackBytes int64 `json:"unpackBytes"`
	// Estimated is set when part of the figures is estimated (layers not
	// lazy yet).
	Estimated bool `json:"estimated,omitempty"`
}

// NetworkEstimate is the estimated time to ready on one network.
type NetworkEstimate struct {
	Network            string   `json:"network"`
	BytesPerSecond     float64  `json:"bytesPerSecond"`
	RTTSeconds         float64  `json:"rttSeconds"`
	FullPullSeconds    float64  `json:"fullPullSeconds"`
	LazyStartSeconds   float64  `json:"lazyStartSeconds"`
	LowerBoundSeconds  float64  `json:"lowerBoundSeconds"`
	IfOptimizedSeconds *float64 `json:"ifOptimizedSeconds,omitempty"`
	PartialPullSeconds *float64 `json:"partialPullSeconds,omitempty"`
	// Phases splits each scenario's time into the segments of the chart.
	Phases []Phases `json:"phases"`
}

// Phases is one scenario's time, split: downloading (manifests, config,
// TOCs and whole layers, until every layer is mounted; prefetch ranges
// start then too), decompressing and unpacking whole layers, the start-up
// fetches once the layers are mounted: waiting for the prefetch still
// under way and fetching chunks on demand (OnDemand, which is time, not
// only on-demand bytes: a lazy start whose start-up files are all in the
// prefetch spends it waiting for the prefetch), and the container's start.
// They add up to Total.
type Phases struct {
	Scenario Scenario `json:"scenario"`
	Download float64  `json:"downloadSeconds"`
	Unpack   float64  `json:"unpackSeconds"`
	OnDemand float64  `json:"onDemandSeconds"`
	// Start is the container's own start (Rates.ContainerStart), and for
	// a lazy start the reading of start-up files through the snapshotter.
	Start float64 `json:"startSeconds"`
	Total float64 `json:"totalSeconds"`
}

// FileCost is what one start-up file costs in a lazy start.
type FileCost struct {
	// Path is the path profiled; File the regular file it leads to.
	Path  string `json:"path"`
	File  string `json:"file"`
	Layer int    `json:"layer"`
	Size  int64  `json:"size"`
	// Where: "held", "whole layer", "prefetch" or "on demand".
	Where string `json:"where"`
	// Bytes and Requests fetched on demand for it.
	Bytes    int64 `json:"bytes"`
	Requests int   `json:"requests"`
	// Seconds is the time spent fetching and reading its bytes on the
	// network named.
	Seconds float64 `json:"seconds"`
	Network string  `json:"network"`
}

// Estimate computes the cold-start cost of img: it reads every layer once
// (at most DefaultConcurrency at a time; lazy layers' TOCs are read from
// the blob), finds the start-up files (WithProfile, WithProfiler, or
// profile.Static over the image's merged filesystem), and models a full
// pull, a lazy start, the lower bound and, when some layer is not lazy, the
// lazy start after optimizing, on every network. With WithMeasurement it
// also measures a real full pull and lazy start.
//
// Temporary files (the layer blobs, and the layer tars the static profiler
// reads) are removed before Estimate returns, whatever happens.
func Estimate(ctx context.Context, img v1.Image, opts ...Option) (*Report, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return o.estimate(ctx, img, nil)
}

// estimateProfile is estimate that also returns the profile used.
func (o *options) estimateProfile(ctx context.Context, img v1.Image) (*Report, *profile.Profile, error) {
	var used *profile.Profile
	r, err := o.estimateWith(ctx, img, nil, &used)
	return r, used, err
}

// estimate does the work; given, when not nil, replaces the profile (so
// that Compare uses one profile for both images).
func (o *options) estimate(ctx context.Context, img v1.Image, given *profile.Profile) (*Report, error) {
	return o.estimateWith(ctx, img, given, nil)
}

func (o *options) estimateWith(ctx context.Context, img v1.Image, given *profile.Profile, used **profile.Profile) (*Report, error) {
	tmp, err := os.MkdirTemp(o.tempDir, "coldstart-report-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	in := &inputs{img: img, tmp: tmp}
	if d, err := img.Digest(); err == nil {
		in.digest = d.String()
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	in.manifestBytes = int64(len(raw))
	mf, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	in.configBytes = mf.Config.Size
	cfg, err := img.ConfigFile()
	if err != nil || cfg == nil {
		return nil, fmt.Errorf("reading the config: %w", errors.Join(err, errors.New("no config")))
	}
	in.platform = platformOf(cfg)
	if in.layers, err = o.readLayers(ctx, img, mf, cfg, tmp); err != nil {
		return nil, err
	}
	return o.estimateInputs(ctx, in, given, used)
}

// inputs is what the model is built from: read from an image by
// estimateWith, or given by a caller that read them already (Layers).
type inputs struct {
	digest, platform           string
	manifestBytes, configBytes int64
	layers                     []*layerInfo
	// img and tmp serve the profiler when no profile is given; nil and ""
	// for given inputs, which need a profile.
	img v1.Image
	tmp string
}

func platformOf(cfg *v1.ConfigFile) string {
	if cfg.OS == "" {
		return ""
	}
	p := cfg.OS + "/" + cfg.Architecture
	if cfg.Variant != "" {
		p += "/" + cfg.Variant
	}
	return p
}

// estimateInputs builds the model of in and estimates every scenario.
func (o *options) estimateInputs(ctx context.Context, in *inputs, given *profile.Profile, used **profile.Profile) (*Report, error) {
	r := &Report{Version: Version, Image: o.name, Digest: in.digest, Platform: in.platform, Rates: o.rates, Layers: []Layer{}, TopFiles: []FileCost{}}
	m := &model{config: in.configBytes, rates: o.rates, concurrency: o.concurrency, layers: in.layers}
	if o.indexBytes > 0 {
		m.manifests = append(m.manifests, o.indexBytes)
	}
	m.manifests = append(m.manifests, in.manifestBytes)
	var err error

	held := map[v1.Hash]bool{}
	for d := range o.held {
		held[d] = true
	}
	heldChains := map[v1.Hash]bool{} // the snapshots of the held images
	for i, b := range o.baseImages {
		ls, err := b.Layers()
		if err != nil {
			return nil, fmt.Errorf("base image %d: listing layers: %w", i, err)
		}
		for _, l := range ls {
			d, err := l.Digest()
			if err != nil {
				return nil, fmt.Errorf("base image %d: %w", i, err)
			}
			held[d] = true
		}
		if err := addChains(heldChains, b); err != nil {
			return nil, fmt.Errorf("base image %d: %w", i, err)
		}
	}
	var prev *previous
	if o.previous != nil {
		if prev, err = o.readPrevious(ctx, o.previous, m.layers); err != nil {
			return nil, err
		}
		r.Previous = prev.digest
		for _, d := range prev.layers {
			held[d] = true
		}
		if err := addChains(heldChains, o.previous); err != nil {
			return nil, fmt.Errorf("previous image: %w", err)
		}
	}
	var diffIDs []v1.Hash
	for _, l := range m.layers {
		diffIDs = append(diffIDs, l.idx.DiffID)
	}
	chains := chainIDs(diffIDs)
	for i, l := range m.layers {
		l.held = held[l.desc.Digest]
		l.snapshot = !l.held && i < len(chains) && heldChains[chains[i]]
		if l.onNode() {
			r.Held = append(r.Held, l.desc.Digest.String())
		}
	}
	sort.Strings(r.Held)
	idxs := make([]*layers.Index, len(m.layers))
	for i, l := range m.layers {
		idxs[i] = l.idx
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		return nil, err
	}

	prof := given
	if prof == nil && o.profile != nil {
		prof = o.profile
	}
	if prof == nil {
		if in.img == nil {
			return nil, errors.New("report: estimating given layers needs WithProfile")
		}
		prof, err = o.findProfile(ctx, in.img, ov, m.layers, in.tmp)
		if err != nil {
			return nil, err
		}
	}
	if used != nil {
		*used = prof
	}
	m.start = o.rates.containerStart(prof)
	r.Profile = ProfileSummary{Source: prof.Source, Paths: len(prof.Files), Warnings: prof.Warnings}
	seen := map[layers.Ref]bool{}
	for _, p := range prof.Files {
		ref, ok := lazypull.Resolve(ov, p)
		if !ok {
			r.Profile.Missing = append(r.Profile.Missing, p)
			continue
		}
		e := ov.Entry(ref)
		if (e.Type != layers.TypeReg && e.Type != layers.TypeHardlink) || seen[ref] {
			continue
		}
		seen[ref] = true
		m.files = append(m.files, startFile{profiled: p, resolved: "/" + e.Path, ref: ref, entry: e})
		r.Profile.Files++
		r.Profile.Bytes += e.Size
	}
	if m.start > 0 {
		for _, p := range RuntimeFiles {
			if ref, ok := lazypull.Resolve(ov, p); ok {
				if e := ov.Entry(ref); e.Type == layers.TypeReg || e.Type == layers.TypeHardlink {
					m.runtimeFiles = append(m.runtimeFiles, startFile{profiled: p, resolved: "/" + e.Path, ref: ref, entry: e})
				}
			}
		}
	}

	full, lazy, lower := m.fullPull(), m.lazyStart(false), m.lowerBound()
	builds := []*build{full, lazy, lower}
	var whatIf *build
	for i, l := range m.layers {
		if !l.onNode() && !l.mountable && lazy.roles[i] != lazypull.RoleHeld && !l.idx.Foreign {
			whatIf = m.lazyStart(true)
			builds = append(builds, whatIf)
			break
		}
	}
	for _, b := range builds {
		r.Scenarios = append(r.Scenarios, b.cost)
	}
	r.FullPullBytes, r.FullPullRequests = full.cost.Bytes, full.cost.Requests
	r.LazyStartBytes, r.LazyStartRequests = lazy.cost.Bytes, lazy.cost.Requests
	r.LowerBoundBytes, r.LowerBoundRequests = lower.cost.Bytes, lower.cost.Requests
	if whatIf != nil {
		r.IfOptimizedBytes, r.IfOptimizedRequests = &whatIf.cost.Bytes, &whatIf.cost.Requests
	}
	var partial *build
	var partialStats []partialLayerStat
	if m.partialApplies(prev) {
		partial, partialStats = m.partialPull(m.partialStore(prev))
		builds = append(builds, partial)
		r.Scenarios = append(r.Scenarios, partial.cost)
		r.PartialPullBytes, r.PartialPullRequests = &partial.cost.Bytes, &partial.cost.Requests
	}

	nets := append([]Network(nil), o.networks...)
	for _, b := range o.budgets {
		nets = addNetwork(nets, b.Network)
	}
	if o.shaping != nil {
		nets = addNetwork(nets, *o.shaping)
	}
	for _, n := range nets {
		r.Estimates = append(r.Estimates, estimateOn(n, builds))
	}
	r.Layers = m.layerSummaries(lazy)
	for i, st := range partialStats {
		r.Layers[i].PartialPullBytes, r.Layers[i].PartialPullRequests = st.bytes, st.requests
		if st.plan != nil {
			r.Layers[i].PartialPullFiles, r.Layers[i].PartialPullCopied = st.plan.FetchedFiles, st.plan.CopiedFiles
		}
	}
	r.TopFiles = m.topFiles(lazy, nets, o.topFiles)
	for _, b := range o.budgets {
		for _, e := range r.Estimates {
			if e.Network == b.Network.Name || e.BytesPerSecond == b.Network.BytesPerSecond && e.RTTSeconds == b.Network.RTT.Seconds() {
				r.Budgets = append(r.Budgets, BudgetResult{Network: e.Network, Budget: b.Seconds, Estimate: e.LazyStartSeconds,
					Exceeded: e.LazyStartSeconds > b.Seconds})
				break
			}
		}
	}
	if o.measureRef != "" {
		if err := o.measure(ctx, r, m, prof); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// addNetwork appends n unless a network of that name, or of the same rate
// and RTT, is there.
func addNetwork(nets []Network, n Network) []Network {
	for _, x := range nets {
		if x.Name == n.Name || x.BytesPerSecond == n.BytesPerSecond && x.RTT == n.RTT {
			return nets
		}
	}
	return append(nets, n)
}

// chainIDs are the chain IDs of a stack of layers with these DiffIDs, by
// which containerd names the snapshot of each: the first layer's DiffID,
// then the digest of "PARENT DIFFID". It stops at a layer whose DiffID is
// unknown (a foreign layer's).
func chainIDs(diffIDs []v1.Hash) []v1.Hash {
	var out []v1.Hash
	for i, d := range diffIDs {
		if d.Hex == "" {
			break
		}
		if i > 0 {
			sum := sha256.Sum256([]byte(out[i-1].String() + " " + d.String()))
			d = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		}
		out = append(out, d)
	}
	return out
}

// addChains adds the chain IDs of img's layers to m.
func addChains(m map[v1.Hash]bool, img v1.Image) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the config: %w", err)
	}
	for _, c := range chainIDs(cfg.RootFS.DiffIDs) {
		m[c] = true
	}
	return nil
}

// roundSeconds keeps 0.1 ms: enough for any figure, stable in JSON.
func roundSeconds(s float64) float64 { return math.Round(s*1e4) / 1e4 }

// estimateOn simulates every scenario on n.
func estimateOn(n Network, builds []*build) NetworkEstimate {
	e := NetworkEstimate{Network: n.Name, BytesPerSecond: n.BytesPerSecond, RTTSeconds: n.RTT.Seconds()}
	for _, b := range builds {
		ph := b.phases(simulate(&b.p, n))
		ph.Download, ph.Unpack, ph.OnDemand, ph.Start, ph.Total = roundSeconds(ph.Download), roundSeconds(ph.Unpack), roundSeconds(ph.OnDemand), roundSeconds(ph.Start), roundSeconds(ph.Total)
		e.Phases = append(e.Phases, ph)
		switch b.scen {
		case FullPull:
			e.FullPullSeconds = ph.Total
		case LazyStart:
			e.LazyStartSeconds = ph.Total
		case LowerBound:
			e.LowerBoundSeconds = ph.Total
		case IfOptimized:
			t := ph.Total
			e.IfOptimizedSeconds = &t
		case PartialPull:
			t := ph.Total
			e.PartialPullSeconds = &t
		}
	}
	return e
}

// readLayers reads every layer once: its index, and its TOC when lazy. The
// blobs stay in tmp for the static profiler.
func (o *options) readLayers(ctx context.Context, img v1.Image, mf *v1.Manifest, cfg *v1.ConfigFile, tmp string) ([]*layerInfo, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	if len(ls) != len(mf.Layers) || len(ls) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("the manifest lists %d layers, the config %d diff_ids", len(mf.Layers), len(cfg.RootFS.DiffIDs))
	}
	out := make([]*layerInfo, len(ls))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency)
	for i, l := range ls {
		g.Go(func() error {
			li, err := readLayer(gctx, l, mf.Layers[i], filepath.Join(tmp, fmt.Sprintf("layer-%d", i)), o.indexOpts)
			if err != nil {
				return fmt.Errorf("reading layer %d %s: %w", i, mf.Layers[i].Digest, err)
			}
			if !li.idx.Foreign && li.idx.DiffID != cfg.RootFS.DiffIDs[i] {
				return fmt.Errorf("reading layer %d %s: %w: config diff_id is %s, layer content hashes to %s",
					i, mf.Layers[i].Digest, layers.ErrDigestMismatch, cfg.RootFS.DiffIDs[i], li.idx.DiffID)
			}
			out[i] = li
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// readLayer indexes one layer, keeping its blob in the file name.
func readLayer(ctx context.Context, l v1.Layer, desc v1.Descriptor, name string, iopts []layers.Option) (*layerInfo, error) {
	li := &layerInfo{desc: desc}
	if layers.IsForeign(desc.MediaType) {
		li.idx = &layers.Index{Digest: desc.Digest, Size: desc.Size, MediaType: desc.MediaType, Foreign: true}
		return li, nil
	}
	if !layers.KnownMediaType(desc.MediaType) {
		return nil, fmt.Errorf("%w %q", layers.ErrUnknownMediaType, desc.MediaType)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("opening the blob: %w", err)
	}
	defer rc.Close()
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx, err := layers.IndexReader(ctx, io.TeeReader(rc, f), iopts...)
	if err != nil {
		return nil, err
	}
	if idx.Digest != desc.Digest {
		return nil, fmt.Errorf("%w: blob hashes to %s", layers.ErrDigestMismatch, idx.Digest)
	}
	if idx.Size != desc.Size {
		return nil, fmt.Errorf("%w: descriptor says %d bytes, blob has %d", layers.ErrSizeMismatch, desc.Size, idx.Size)
	}
	idx.MediaType = desc.MediaType
	li.idx, li.blob = idx, name
	li.partial = openPartial(f, desc)
	if idx.Lazy != layers.NotLazy {
		if t, err := lazypull.OpenTOC(f, idx.Size); err == nil {
			li.toc = t
			li.mountable = lazypull.Mountable(desc)
		}
	}
	return li, nil
}

// layerSummaries describes the layers, with the lazy start's figures.
func (m *model) layerSummaries(lazy *build) []Layer {
	out := make([]Layer, len(m.layers))
	for i, l := range m.layers {
		st := lazy.layerStats[i]
		ly := Layer{
			Index: i, Digest: l.desc.Digest.String(), MediaType: string(l.desc.MediaType), Format: format(l),
			Size: l.idx.Size, UncompressedSize: l.idx.UncompressedSize, Entries: len(l.idx.Entries), Held: l.onNode(),
			Role: lazy.roles[i].String(), TOCBytes: st.toc, PrefetchBytes: st.prefetch,
			OnDemandBytes: st.onDemand, OnDemandRequests: st.onDemandRequests,
		}
		switch {
		case l.toc != nil && !l.mountable && l.toc.Format == layers.ZstdChunked:
			ly.Note = "zstd:chunked has no TOC digest for stargz-snapshotter to verify: it mounts it lazily only with verification disabled, else containerd downloads it"
		case l.toc != nil && !l.mountable:
			ly.Note = "lazy format, but the descriptor lacks the TOC digest annotation: stargz-snapshotter does not mount it lazily"
		}
		out[i] = ly
	}
	for _, f := range m.files {
		out[f.ref.Layer].StartupFiles++
		out[f.ref.Layer].StartupBytes += f.entry.Size
	}
	return out
}

// format names a layer's format.
func format(l *layerInfo) string {
	switch {
	case l.idx.Foreign:
		return "foreign"
	case l.toc != nil:
		return string(l.toc.Format)
	}
	return string(l.idx.Compression)
}

// topFiles ranks the start-up files by what they cost in the lazy start on
// the slowest network.
func (m *model) topFiles(lazy *build, nets []Network, n int) []FileCost {
	if n == 0 || len(nets) == 0 || len(m.files) == 0 {
		return []FileCost{}
	}
	slow := nets[0]
	for _, x := range nets[1:] {
		if x.BytesPerSecond > 0 && (slow.BytesPerSecond <= 0 || x.BytesPerSecond < slow.BytesPerSecond) {
			slow = x
		}
	}
	costs := make([]FileCost, 0, len(m.files))
	for fi, f := range m.files {
		l := m.layers[f.ref.Layer]
		fc := FileCost{Path: f.profiled, File: f.resolved, Layer: f.ref.Layer, Size: f.entry.Size, Where: lazy.fileWhere[fi], Network: slow.Name}
		switch fc.Where {
		case WhereOnDemand:
			for _, t := range lazy.fileReqs[fi] {
				fc.Bytes += int64(lazy.p.tasks[t].bytes)
				fc.Requests++
				fc.Seconds += slow.RTT.Seconds() + m.rates.Request + div(lazy.p.tasks[t].bytes, slow.BytesPerSecond) + lazy.p.tasks[t].cpu
			}
		case WherePrefetch:
			var comp float64
			if l.toc != nil {
				for _, r := range l.toc.FileRanges(f.entry.Path) {
					comp += float64(r.Length)
				}
			} else {
				comp = float64(f.entry.Size) * l.ratio()
			}
			fc.Seconds = div(comp, slow.BytesPerSecond) + m.rates.chunkCPU(l.chunkCompression(), f.entry.Size)
		case WhereLayer:
			fc.Seconds = div(float64(f.entry.Size)*l.ratio(), slow.BytesPerSecond) +
				m.rates.unpackCPU(l.idx.Compression, f.entry.Size, 1)
		}
		fc.Seconds = roundSeconds(fc.Seconds)
		costs = append(costs, fc)
	}
	sort.SliceStable(costs, func(a, b int) bool { return costs[a].Seconds > costs[b].Seconds })
	if len(costs) > n {
		costs = costs[:n]
	}
	return costs
}
