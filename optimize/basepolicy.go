package optimize

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
)

// tocBytesPerEntry estimates the compressed TOC bytes of one entry of a
// lazy layer (a TOC entry is about 300 bytes of JSON that gzip shrinks about
// five-fold).
const tocBytesPerEntry = 64

// lazyRequestsPerLayer is what mounting a lazy layer costs in requests:
// footer, TOC and prefetch range.
const lazyRequestsPerLayer = 3

// layerPull is how a node gets one layer for a start, in chooseBasePolicy's
// estimate.
type layerPull int

const (
	// pullHeld: the node holds the layer's snapshot (same chain ID).
	pullHeld layerPull = iota
	// pullWhole: downloaded and applied whole before the start.
	pullWhole
	// pullLazy: mounted lazily, its start-up files prefetched together.
	pullLazy
	// pullOnDemand: mounted lazily without a prefetch section; each
	// start-up file is a request of its own (a recompressed base when
	// profiling is off).
	pullOnDemand
)

// startupShare is what a start reads of one layer: how many files, how
// many of their (uncompressed) bytes it fetches, and how many it reads.
type startupShare struct {
	fetch, read float64
	files       int
}

// chooseBasePolicy picks the policy for the base layers by the estimated
// start on each network of WithNetworks, on a node without the base (cold)
// and on one that holds it (warm):
//
//   - keep: a node without the base pulls it whole before the start, and
//     containerd then downloads the layers above it whole too (while
//     stargz-snapshotter still mounts them lazily);
//   - convert: every node mounts the base lazily, its start-up files
//     prefetched, and a node gains nothing from the original base it
//     holds;
//   - recompress (for containerd, with an eStargz or
//     zstd:chunked-containerd target): a node that holds the base reuses
//     it, one without it mounts it lazily, its start-up files prefetched
//     as under convert (without profiling, fetched one by one, on
//     demand).
//
// Which nodes a fleet has is not known, so the choice is the one that is
// never far from the best: for each network and node, each policy's
// estimate less the smallest of them is what it loses there, and the
// policy whose largest loss is the smallest wins (ties: the smaller worst
// case, summed over the networks). The reason gives the figures.
func (o *pipeline) chooseBasePolicy(idxs []*layers.Index, ov *layers.Overlay, files []string, moved []map[int]layers.Moved) (BasePolicy, string) {
	if !o.encode.Format.Lazy() {
		return BaseKeep, "the target format is not lazy: keeping the base costs nothing"
	}
	su := make([]startupShare, len(idxs))
	rates := o.rates
	for _, f := range files {
		if r, ok := ov.Lookup(strings.TrimPrefix(path.Clean("/"+f), "/")); ok {
			size := float64(ov.Entry(r).Size)
			fetch, read := size, size
			if profile.ReadInPart(f) {
				// Shared objects and the like: a start touches some pages.
				fetch, read = size*rates.PartRead, size*rates.PartTouch
			}
			su[r.Layer].fetch += fetch
			su[r.Layer].read += read
			su[r.Layer].files++
		}
	}
	candidates := []BasePolicy{BaseKeep, BaseConvert}
	if o.encode.Format == layers.FormatEStargz || o.encode.Format == layers.FormatZstdChunkedContainerd {
		candidates = append(candidates, BaseRecompress)
	}
	// The base layers recompress would keep byte-identical: a node without
	// the base pulls them whole.
	refused := make([]bool, len(idxs))
	for i, idx := range idxs {
		refused[i] = o.baseLayers[idx.Digest] && recompressRefusal(idx, moved[i]) != ""
	}
	regret := make([]float64, len(candidates)) // the largest loss to the best, seconds
	worst := make([]float64, len(candidates))  // summed over the networks
	var detail []string
	for _, n := range o.networks {
		var parts []string
		nworst := make([]float64, len(candidates))
		for _, warm := range []bool{false, true} {
			est := make([]float64, len(candidates))
			for k, p := range candidates {
				est[k] = startEstimate(n, o.rates, idxs, o.basePulls(idxs, p, warm, refused), su)
			}
			best := slices.Min(est)
			for k, e := range est {
				regret[k] = max(regret[k], e-best)
			}
			for k := range nworst {
				nworst[k] = max(nworst[k], est[k])
			}
			for k, p := range candidates {
				if k >= len(parts) {
					parts = append(parts, fmt.Sprintf("%s %.2f s", p, est[k]))
				} else if p != BaseConvert {
					parts[k] += fmt.Sprintf(" / %.2f s", est[k])
				}
			}
		}
		for k := range worst {
			worst[k] += nworst[k]
		}
		detail = append(detail, n.Name+": "+strings.Join(parts, ", "))
	}
	b := 0
	for k := 1; k < len(candidates); k++ {
		if regret[k] < regret[b] || regret[k] == regret[b] && worst[k] < worst[b] {
			b = k
		}
	}
	why := fmt.Sprintf("its start is at most %.2f s slower than the best policy's on every network, cold or warm (estimated, cold / warm: %s)",
		regret[b], strings.Join(detail, "; "))
	return candidates[b], why
}

// basePulls is how a node gets each layer of the output of policy p, on a
// node that holds the base and the cached layers (warm) or none of them.
// refused marks the base layers recompress keeps byte-identical.
func (o *pipeline) basePulls(idxs []*layers.Index, p BasePolicy, warm bool, refused []bool) []layerPull {
	pulls := make([]layerPull, len(idxs))
	for i, idx := range idxs {
		base, cached := o.baseLayers[idx.Digest], o.cachedLayers[idx.Digest]
		asIs := pullWhole // a layer left as it is
		if idx.Lazy != layers.NotLazy {
			asIs = pullLazy
		}
		switch {
		case warm && (cached || base && p != BaseConvert):
			pulls[i] = pullHeld
		case cached || idx.Foreign || base && p == BaseKeep:
			pulls[i] = asIs
		case base && p == BaseRecompress && refused[i]:
			pulls[i] = pullWhole
		case base && p == BaseRecompress && !o.profiling():
			pulls[i] = pullOnDemand
		default:
			pulls[i] = pullLazy
		}
	}
	return pulls
}

// startEstimate is the time a start on n spends getting its layers, pulled
// as pulls says, with the node-side costs of r. What
// every start costs alike (the runtime, the program) is left out.
// containerd, once a layer must be downloaded whole, downloads every layer
// above it whole too, even those the snapshotter then mounts lazily.
func startEstimate(n report.Network, r report.Rates, idxs []*layers.Index, pulls []layerPull, su []startupShare) float64 {
	req := n.RTT.Seconds() + r.Request
	transfer := func(b float64) float64 {
		if n.BytesPerSecond <= 0 {
			return 0
		}
		return b / n.BytesPerSecond
	}
	var t float64
	whole := false
	for i, idx := range idxs {
		entries := float64(len(idx.Entries))
		switch pulls[i] {
		case pullHeld:
			continue
		case pullWhole:
			whole = true
			t += transfer(float64(idx.Size)) + req + r.UnpackLayer + entries*r.UnpackEntry
			if r.Unpack > 0 {
				t += float64(idx.UncompressedSize) / r.Unpack
			}
			continue
		}
		ratio := 1.0
		if idx.UncompressedSize > 0 {
			ratio = float64(idx.Size) / float64(idx.UncompressedSize)
		}
		reqs := lazyRequestsPerLayer
		if pulls[i] == pullOnDemand {
			reqs = lazyRequestsPerLayer - 1 + su[i].files
		}
		t += transfer(entries*tocBytesPerEntry+su[i].fetch*ratio) + float64(reqs+r.CheckRequests)*req +
			r.LazyMount + entries*r.TOCEntry + float64(su[i].files)*r.LazyOpen
		if pulls[i] != pullOnDemand && su[i].fetch > 0 {
			// The snapshotter caches the prefetched range before the
			// container starts.
			t += r.PrefetchLayer
		}
		if r.LazyRead > 0 {
			t += su[i].read / r.LazyRead
		}
		if whole {
			t += transfer(float64(idx.Size)) + req
		}
	}
	return t
}

// recompressRefusal says why recompress must keep layer idx byte-identical
// before encoding it ("" if nothing does): it holds a hard link to a file
// of a lower layer (the stream must keep it, and a lazy puller resolves
// links inside one layer only), or an entry whose directory has no entry
// before it (a lazy puller makes one up, 0755, and it hides the
// directory's mode and owner in the layers below), or entries that apply
// through a symlinked directory (moved: the stream must name them as they
// are). The why completes "kept byte-identical, as".
func recompressRefusal(idx *layers.Index, moved map[int]layers.Moved) string {
	if why := movedRefusal(idx, moved); why != "" {
		return why
	}
	dirs := map[string]bool{}
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if e.Type == layers.TypeHardlink && e.LinkIndex < 0 {
			return fmt.Sprintf("its hard link /%s names /%s of a lower layer, which a lazy puller cannot resolve", e.Path, e.Linkname)
		}
		dir := parentDir(e.Path)
		if e.Type == layers.TypeOpaque {
			dir = e.Path
		}
		if dir != "" && dir != "." && !dirs[dir] {
			return fmt.Sprintf("no entry for /%s comes before its entry for /%s: a lazy puller would show /%s as a new 0755 directory over the one below", dir, e.Path, dir)
		}
		if e.Type == layers.TypeDir {
			dirs[e.Path] = true
		}
	}
	return ""
}
