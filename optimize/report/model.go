package report

import (
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/internal/partialpull"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Constants of the what-if estimates, for layers that are not lazy yet.
const (
	// FooterBytes is what reading an eStargz footer costs: estargz reads
	// the last 51 bytes of the blob.
	FooterBytes = 51
	// EstimatedTOCFileBytes is the compressed size of the TOC entry of a
	// regular file (name, mode, times, offsets and two sha256 digests,
	// which do not compress), EstimatedTOCEntryBytes that of any other
	// entry. Measured on layers written by layers.Encode: see
	// TestEstimatedTOCSize.
	EstimatedTOCFileBytes  = 110
	EstimatedTOCEntryBytes = 40
	// TarHeaderBytes is the tar header that precedes every file's content.
	TarHeaderBytes = 512
)

// layerInfo is what the model knows of one layer.
type layerInfo struct {
	desc v1.Descriptor
	idx  *layers.Index
	// toc is the layer's TOC when its content is eStargz or zstd:chunked.
	toc *lazypull.TOC
	// mountable: lazy content and a descriptor that says so.
	mountable bool
	// held: the node holds the blob (its compressed digest).
	held bool
	// snapshot: the node holds no blob of this digest but, from an image
	// it pulled, a snapshot of the same chain ID (the layer and all below
	// it have the same DiffIDs), which containerd uses instead of pulling
	// the layer (a layer recompressed with its tar stream unchanged).
	snapshot bool
	// blob is the temporary file that holds the compressed blob.
	blob string
	// partial is the layer as containers/storage reads it when it pulls
	// it partially, nil when it downloads it whole.
	partial *partialpull.Layer
}

// onNode says whether containerd finds the layer on the node: its blob, or
// a snapshot of its chain.
func (l *layerInfo) onNode() bool { return l.held || l.snapshot }

// compression of the layer's chunks: gzip for eStargz, zstd for
// zstd:chunked, else the blob's.
func (l *layerInfo) chunkCompression() layers.Compression {
	if l.toc != nil && l.toc.Format == layers.ZstdChunked {
		return layers.Zstd
	}
	if l.toc != nil {
		return layers.Gzip
	}
	return l.idx.Compression
}

// ratio is the layer's compressed size over its uncompressed size.
func (l *layerInfo) ratio() float64 {
	if l.idx.UncompressedSize <= 0 {
		return 1
	}
	return float64(l.idx.Size) / float64(l.idx.UncompressedSize)
}

// entries is the number of tar entries unpacking the layer creates.
func (l *layerInfo) entries() int { return len(l.idx.Entries) + len(l.idx.Special) }

// startFile is one regular file read at start-up.
type startFile struct {
	// profiled is the path in the profile; resolved the file it leads to.
	profiled, resolved string
	ref                layers.Ref
	entry              *layers.Entry
}

// model is everything the scenarios are computed from.
type model struct {
	manifests []int64 // manifest request sizes: the index first, if any
	config    int64
	layers    []*layerInfo
	files     []startFile
	// runtimeFiles are what the container runtime reads from the image
	// when it creates the container, before the program starts: /etc/passwd
	// and /etc/group (containerd builds the process's user and groups from
	// them). Empty when the model starts no container.
	runtimeFiles []startFile
	rates        Rates
	concurrency  int
	// start is the container's start once every layer is in place
	// (Rates.containerStart).
	start float64
}

// category says which bytes a request moves.
type category uint8

const (
	catMetadata category = iota
	catLayer
	catPrefetch
	catOnDemand
	catFiles
)

// build is one scenario's plan and its accounting.
type build struct {
	scen      Scenario
	p         plan
	cost      ScenarioCost
	estimated bool
	// ready is the task after which the container starts (lazy
	// scenarios), -1 otherwise; unpackFirst and unpackLast bound the
	// unpack chain, -1 without one; downloadTasks end the download phase
	// (full pull, lower bound).
	ready, unpackFirst, unpackLast int
	downloadTasks                  []int
	// start is the container's start task: from it to the end, the time
	// is the node's own (Phases.Start); -1 before it is added.
	start int
	// fileReqs lists, per start-up file, the on-demand request tasks.
	fileReqs map[int][]int
	// fileWhere says where each start-up file comes from.
	fileWhere map[int]string
	// layer accounting, by layer.
	layerStats []layerStat
	roles      []lazypull.Role
}

type layerStat struct {
	toc, prefetch, onDemand int64
	onDemandRequests        int
}

func (m *model) newBuild(s Scenario) *build {
	return &build{
		scen: s, ready: -1, unpackFirst: -1, unpackLast: -1, start: -1,
		p:          plan{overhead: m.rates.Request},
		cost:       ScenarioCost{Scenario: s},
		fileReqs:   map[int][]int{},
		fileWhere:  map[int]string{},
		layerStats: make([]layerStat, len(m.layers)),
	}
}

// req adds a request and accounts for it.
func (b *build) req(bytes int64, cpu float64, ph phase, cat category, deps ...int) int {
	b.count(bytes, cat)
	return b.p.request(float64(bytes), cpu, ph, deps...)
}

func (b *build) count(bytes int64, cat category) {
	b.cost.Bytes += bytes
	b.cost.Requests++
	switch cat {
	case catMetadata:
		b.cost.MetadataBytes += bytes
	case catLayer:
		b.cost.LayerBytes += bytes
	case catPrefetch:
		b.cost.PrefetchBytes += bytes
	case catOnDemand:
		b.cost.OnDemandBytes += bytes
	case catFiles:
		b.cost.FileBytes += bytes
	}
}

// metadata adds the manifest requests and the config request, in a chain,
// and returns the config task.
func (m *model) metadata(b *build) (lastManifest, config int) {
	prev := -1
	for _, n := range m.manifests {
		if prev < 0 {
			prev = b.req(n, 0, phaseDownload, catMetadata)
		} else {
			prev = b.req(n, 0, phaseDownload, catMetadata, prev)
		}
	}
	config = b.req(m.config, 0, phaseDownload, catMetadata, prev)
	if m.rates.PullSetup > 0 {
		config = b.p.work(m.rates.PullSetup, phaseDownload, config)
	}
	return prev, config
}

// wholeLayers adds the downloads of the layers idx (a pool of
// m.concurrency, after config; a blob listed twice is downloaded once, as a
// content store does) and their unpacking, in order, each once its own
// download and the layer below are done, as containerd's unpacker applies
// layers while the later ones download; it returns the last unpack task,
// -1 when idx is empty, and the unpack task of each layer of idx, by layer.
//
// The layers also (lazy ones above a layer of idx) are downloaded whole in
// the same pool, in layer order with idx, but not unpacked: containerd's
// unpacker, once a layer cannot be mounted remotely, fetches it and every
// layer above it (core/unpack, startFetch(i) fetches layers[i:]), while
// the snapshotter mounts those lazily. Their downloads share the link and
// gate nothing (the unpacker cancels what is left of them when it
// returns); their bytes count whole.
func (m *model) wholeLayers(b *build, idx, also []int, config int) (int, map[int]int) {
	unpacked := map[int]int{}
	if len(idx) == 0 {
		return -1, unpacked
	}
	pool := b.p.pool(m.concurrency)
	blob := map[v1.Hash]int{}
	fetch := map[int]bool{}
	for _, i := range also {
		fetch[i] = true
	}
	for _, i := range slices.Sorted(slices.Values(append(slices.Clone(idx), also...))) {
		l := m.layers[i]
		if _, ok := blob[l.desc.Digest]; ok {
			continue
		}
		b.count(l.idx.Size, catLayer)
		blob[l.desc.Digest] = b.p.add(task{deps: []int{config}, pool: pool, request: true, bytes: float64(l.idx.Size), phase: phaseDownload, background: fetch[i]})
		if !fetch[i] {
			b.downloadTasks = append(b.downloadTasks, blob[l.desc.Digest])
		}
	}
	last := -1
	for _, i := range idx {
		l := m.layers[i]
		deps := []int{blob[l.desc.Digest]}
		if last >= 0 {
			deps = append(deps, last)
		}
		last = b.p.work(m.rates.applyCPU(l.idx.Compression, l.idx.UncompressedSize, l.entries()), phaseUnpack, deps...)
		unpacked[i] = last
		if b.unpackFirst < 0 {
			b.unpackFirst = last
		}
		b.cost.UnpackBytes += l.idx.UncompressedSize
	}
	b.unpackLast = last
	return last, unpacked
}

// fullPull is a node without lazy pulling.
func (m *model) fullPull() *build {
	b := m.newBuild(FullPull)
	_, cfg := m.metadata(b)
	b.downloadTasks = append(b.downloadTasks, cfg)
	var idx []int
	b.roles = make([]lazypull.Role, len(m.layers))
	for i, l := range m.layers {
		if l.onNode() {
			b.roles[i] = lazypull.RoleHeld
			continue
		}
		b.roles[i] = lazypull.RoleFull
		idx = append(idx, i)
	}
	last, _ := m.wholeLayers(b, idx, nil, cfg)
	if last < 0 {
		last = cfg
	}
	b.start = b.p.work(m.start, phaseOnDemand, last)
	return b
}

// estimate is the what-if figure of one layer converted with the profile.
type estimate struct {
	tocBytes, prefetchBytes int64
	tocEntries              int
	prefetchCPU             float64
}

// estimateLayer estimates what layer i would cost as eStargz with the
// start-up files first: its TOC from its entries, its prefetch range from
// the start-up files it provides, compressed at the layer's ratio.
func (m *model) estimateLayer(i int) estimate {
	l := m.layers[i]
	var e estimate
	for k := range l.idx.Entries {
		switch l.idx.Entries[k].Type {
		case layers.TypeReg, layers.TypeHardlink:
			e.tocBytes += EstimatedTOCFileBytes
		default:
			e.tocBytes += EstimatedTOCEntryBytes
		}
	}
	e.tocEntries = len(l.idx.Entries) + 1
	e.tocBytes += EstimatedTOCEntryBytes // the landmark
	var raw, chunks int64
	seen := map[layers.Ref]bool{}
	for _, f := range m.files {
		// The files of this blob, wherever the image lists it.
		if m.layers[f.ref.Layer].desc.Digest != l.desc.Digest || seen[f.ref] {
			continue
		}
		seen[f.ref] = true
		raw += TarHeaderBytes + f.entry.Size + (TarHeaderBytes-f.entry.Size%TarHeaderBytes)%TarHeaderBytes
		chunks += (f.entry.Size + layers.DefaultChunkSize - 1) / layers.DefaultChunkSize
	}
	if raw > 0 {
		e.prefetchBytes = int64(math.Ceil(float64(raw) * l.ratio()))
		e.prefetchCPU = m.rates.chunkCPU(layers.Gzip, raw) + float64(chunks)*m.rates.CacheChunk
	}
	return e
}

// readFraction is the part of start-up file f a start reads: PartReadImage
// for the JDK's class image, PartRead for another file programs read in
// part (profile.ReadInPart), all of any other.
// Zero (rates without it) reads whole.
func (m *model) readFraction(f startFile) float64 {
	if profile.ClassImage(f.entry.Path) && m.rates.PartReadImage > 0 {
		return m.rates.PartReadImage
	}
	if profile.ReadInPart(f.entry.Path) && m.rates.PartRead > 0 {
		return m.rates.PartRead
	}
	return 1
}

// lazyStart is a node with a lazy snapshotter. With whatIf, every layer
// the node does not hold is taken to be converted to eStargz with the
// start-up files in its prefetch range (estimated for the layers that are
// not lazy yet).
func (m *model) lazyStart(whatIf bool) *build {
	scen := LazyStart
	if whatIf {
		scen = IfOptimized
	}
	b := m.newBuild(scen)
	_, cfg := m.metadata(b)
	n := len(m.layers)
	lazy, held := make([]bool, n), make([]bool, n)
	for i, l := range m.layers {
		lazy[i] = l.mountable || whatIf && !l.idx.Foreign
		held[i] = l.onNode()
	}
	b.roles = lazypull.Roles(lazy, held)
	var whole []int
	for i, r := range b.roles {
		if r == lazypull.RoleFull {
			whole = append(whole, i)
		}
	}
	// containerd's unpacker downloads every layer above the first it has
	// to download, lazy ones too, and mounts a lazy layer above a
	// downloaded one once that one is unpacked (it prepares the snapshots
	// in order). The built-in client mounts each layer on its own.
	firstWhole := -1
	var fetchedWhole []int
	if m.snapshotterFetch() && len(whole) > 0 {
		firstWhole = whole[0]
		for i, r := range b.roles {
			if r == lazypull.RoleLazy && i > firstWhole {
				fetchedWhole = append(fetchedWhole, i)
			}
		}
	}
	last, unpacked := m.wholeLayers(b, whole, fetchedWhole, cfg)
	// below returns the unpack of the highest downloaded layer under
	// layer i, with the unpacker's fetch of every layer above (-1: none).
	below := func(i int) int {
		if firstWhole < 0 || i < firstWhole {
			return -1
		}
		for j := i - 1; j >= 0; j-- {
			if t, ok := unpacked[j]; ok {
				return t
			}
		}
		return -1
	}

	mount := cfg
	prefetch := map[int]int{}
	mounted := map[v1.Hash]int{}
	// resolve returns the task after which layer i's footer is read: with
	// ResolveAtOnce, right after the config and its checks, in parallel
	// with every other layer; else after the layer below is mounted, and
	// the mount of this one.
	resolve := func() int {
		from := cfg
		if !m.rates.ResolveAtOnce {
			from = b.p.work(m.rates.LazyMount, phaseDownload, mount)
		}
		for range m.rates.CheckRequests {
			from = b.req(0, 0, phaseDownload, catMetadata, from)
		}
		return from
	}
	// mounted layer i once its TOC is read (toc): with ResolveAtOnce the
	// layers are mounted in order, each after its own TOC.
	mountAfter := func(toc int) int {
		if !m.rates.ResolveAtOnce {
			return toc
		}
		return b.p.work(m.rates.LazyMount, phaseDownload, mount, toc)
	}
	for i, r := range b.roles {
		if r != lazypull.RoleLazy {
			continue
		}
		l := m.layers[i]
		if j, ok := mounted[l.desc.Digest]; ok {
			// The same blob again: mounted already.
			if pf, ok := prefetch[j]; ok {
				prefetch[i] = pf
			}
			continue
		}
		mounted[l.desc.Digest] = i
		st := &b.layerStats[i]
		toc := resolve()
		if l.mountable {
			reads := m.tocReads(l)
			for k, rd := range reads {
				cpu := 0.0
				if k == len(reads)-1 {
					cpu = float64(len(l.toc.Index().Entries)) * m.rates.TOCEntry
				}
				toc = b.req(rd.Length, cpu, phaseDownload, catMetadata, toc)
				st.toc += rd.Length
			}
			if u := below(i); u >= 0 {
				toc = b.p.work(0, phaseDownload, toc, u)
			}
			if pf := l.toc.Prefetch; pf.Length > 0 {
				prefetch[i] = m.prefetch(b, pf.Length, m.chunksCPU(l, pf), len(l.toc.Index().Entries), toc)
				st.prefetch = pf.Length
			}
			mount = mountAfter(toc)
			continue
		}
		b.estimated = true
		e := m.estimateLayer(i)
		toc = b.req(FooterBytes, 0, phaseDownload, catMetadata, toc)
		toc = b.req(e.tocBytes, float64(e.tocEntries)*m.rates.TOCEntry, phaseDownload, catMetadata, toc)
		st.toc = FooterBytes + e.tocBytes
		if u := below(i); u >= 0 {
			toc = b.p.work(0, phaseDownload, toc, u)
		}
		if e.prefetchBytes > 0 {
			prefetch[i] = m.prefetch(b, e.prefetchBytes, e.prefetchCPU, e.tocEntries, toc)
			st.prefetch = e.prefetchBytes
		}
		mount = mountAfter(toc)
	}
	deps := []int{mount}
	if last >= 0 {
		deps = append(deps, last)
	}
	b.ready = b.p.work(0, phaseDownload, deps...)
	if m.rates.PrefetchWait > 0 && len(prefetch) > 0 {
		// The container's snapshot is prepared once every prefetch is
		// cached, or the wait timed out.
		all := make([]int, 0, len(prefetch))
		for _, i := range slices.Sorted(maps.Keys(prefetch)) {
			all = append(all, prefetch[i])
		}
		done := b.p.work(0, phaseDownload, all...)
		timeout := b.p.timer(m.rates.PrefetchWait, phaseDownload, b.ready)
		b.ready = b.p.waitAny(phaseDownload, []int{b.ready}, []int{done, timeout})
	}
	if last >= 0 {
		// While the layers that are not lazy download, the snapshotter
		// fetches the lazy ones in the background on the same link.
		for i, r := range b.roles {
			if r != lazypull.RoleLazy || m.layers[i].toc == nil || mounted[m.layers[i].desc.Digest] != i || slices.Contains(fetchedWhole, i) {
				continue
			}
			st := b.layerStats[i]
			if rest := m.layers[i].desc.Size - st.toc - st.prefetch; rest > 0 {
				b.p.backgroundRequest(float64(rest), phaseDownload, mount)
			}
		}
	}
	// A blob listed twice is mounted once: what was fetched and waited for
	// goes by digest.
	fetched := map[v1.Hash]lazypull.Fetched{}
	waited := map[v1.Hash]bool{}
	blocks := map[v1.Hash]map[int64]bool{}
	// read adds the reading of f through the snapshotter after prev and
	// returns its last task; fi is f's index in m.files, -1 for a file the
	// runtime reads.
	read := func(fi int, f startFile, prev int) int {
		li := f.ref.Layer
		l := m.layers[li]
		dg := l.desc.Digest
		where := func(w string) {
			if fi >= 0 {
				b.fileWhere[fi] = w
			}
		}
		switch b.roles[li] {
		case lazypull.RoleHeld:
			where(WhereHeld)
			return prev
		case lazypull.RoleFull:
			where(WhereLayer)
			return prev
		}
		if !l.mountable {
			where(WherePrefetch)
			if pf, ok := prefetch[li]; ok && !waited[dg] {
				waited[dg] = true
				prev = b.p.work(0, phaseOnDemand, prev, pf)
			}
			return b.p.work(m.rates.LazyOpen+div(float64(f.entry.Size), m.rates.LazyRead), phaseOnDemand, prev)
		}
		if fetched[dg] == nil {
			fetched[dg] = lazypull.Fetched{}
		}
		frac := m.readFraction(f)
		plan := l.toc.PlanFilePart
		if m.snapshotterFetch() {
			plan = l.toc.PlanFileChunks
		}
		wait, reqs := plan(f.entry.Path, fetched[dg], frac)
		where(WherePrefetch)
		if len(reqs) > 0 || !wait {
			where(WhereOnDemand)
		}
		if wait && !waited[dg] {
			waited[dg] = true
			prev = b.p.work(0, phaseOnDemand, prev, prefetch[li])
		}
		for _, r := range reqs {
			cpu := m.chunksCPU(l, r)
			fetch := m.blockRanges(blocks, dg, l, r)
			if len(fetch) == 0 {
				// In blocks fetched for a neighbour: decompressed only.
				prev = b.p.work(cpu, phaseOnDemand, prev)
				continue
			}
			for k, f := range fetch {
				c := 0.0
				if k == len(fetch)-1 && !m.snapshotterFetch() {
					c = cpu
				}
				prev = b.req(f.Length, c, phaseOnDemand, catOnDemand, prev)
				if fi >= 0 {
					b.fileReqs[fi] = append(b.fileReqs[fi], prev)
				}
				b.layerStats[li].onDemand += f.Length
				b.layerStats[li].onDemandRequests++
			}
			if m.snapshotterFetch() {
				prev = b.p.work(cpu, phaseOnDemand, prev)
			}
		}
		// The file is opened and read through the snapshotter: of a file
		// read in part, the pages the program touches.
		n := float64(f.entry.Size)
		if frac < 1 && m.rates.PartTouch > 0 {
			n *= m.rates.PartTouch
		}
		return b.p.work(m.rates.LazyOpen+div(n, m.rates.LazyRead), phaseOnDemand, prev)
	}
	// Creating the container, the runtime reads the files of
	// model.runtimeFiles; then the program starts and reads its own.
	prev := b.ready
	for _, f := range m.runtimeFiles {
		prev = read(-1, f, prev)
	}
	b.start = b.p.work(m.start, phaseOnDemand, prev)
	prev = b.start
	for fi, f := range m.files {
		prev = read(fi, f, prev)
	}
	b.cost.Estimated = b.estimated
	return b
}

// tocReads are the requests that open lazy layer l's TOC. With
// Rates.FetchBlock the snapshotter reads the blob in aligned blocks: first
// the last one (the part of a block the blob ends in; all of a blob no
// larger than a block), then, if the TOC starts before it, the blocks from
// the one the TOC starts in. Else they are the reads the TOC was opened
// with: the footer, then the TOC.
func (m *model) tocReads(l *layerInfo) []lazypull.Range {
	bs, size := m.rates.FetchBlock, l.desc.Size
	if bs <= 0 || len(l.toc.Reads) == 0 {
		return l.toc.Reads
	}
	tail := size % bs
	if tail == 0 {
		tail = min(bs, size)
	}
	last := lazypull.Range{Offset: size - tail, Length: tail}
	start := size
	for _, rd := range l.toc.Reads {
		start = min(start, rd.Offset)
	}
	if start >= last.Offset {
		return []lazypull.Range{last}
	}
	from := start / bs * bs
	return []lazypull.Range{last, {Offset: from, Length: last.Offset - from}}
}

// chunksCPU is the time to decompress, verify and cache the chunks of lazy
// layer l whose data starts in r.
func (m *model) chunksCPU(l *layerInfo, r lazypull.Range) float64 {
	return m.rates.chunkCPU(l.chunkCompression(), l.toc.ChunkBytes(r)) + float64(l.toc.Chunks(r))*m.rates.CacheChunk
}

// prefetch adds the fetch of the prefetch range of n bytes of a layer of
// entries TOC entries, whose chunks take cpu to decompress, verify and
// cache, after task after; it returns the task after which the range is
// cached, at Rates.PrefetchLayer and Rates.PrefetchEntry an entry more:
// once all of it has arrived with stargz-snapshotter (it fetches the range,
// then decompresses it into its cache), else as the bytes arrive.
func (m *model) prefetch(b *build, n int64, cpu float64, entries, after int) int {
	cpu += float64(entries) * m.rates.PrefetchEntry
	if !m.snapshotterFetch() {
		return b.req(n, cpu+m.rates.PrefetchLayer, phaseDownload, catPrefetch, after)
	}
	fetched := b.req(n, 0, phaseDownload, catPrefetch, after)
	return b.p.work(cpu+m.rates.PrefetchLayer, phaseDownload, fetched)
}

// snapshotterFetch: the lazy puller fetches as stargz-snapshotter does (in
// blocks, Rates.FetchBlock): a chunk on its own request when the program
// first touches it, decompressed once all of it is in; not the members a
// file needs, merged, decompressed as the bytes arrive (the built-in
// client).
func (m *model) snapshotterFetch() bool { return m.rates.FetchBlock > 0 }

// lowerBound is the least any lazy client could fetch: per layer the node
// does not hold, its footer and TOC in one request, and the members that
// hold the start-up files, adjacent ones merged, all requests as parallel
// as their dependencies allow. Layers that are not lazy are estimated as
// if converted.
func (m *model) lowerBound() *build {
	b := m.newBuild(LowerBound)
	manifest, cfg := m.metadata(b)
	// The config does not gate the layers: a client knows them from the
	// manifest.
	b.p.tasks[cfg].deps = []int{manifest}
	b.downloadTasks = append(b.downloadTasks, cfg)
	// Per blob: a blob listed twice is fetched once.
	byBlob := map[v1.Hash][]int{}
	for fi, f := range m.files {
		d := m.layers[f.ref.Layer].desc.Digest
		byBlob[d] = append(byBlob[d], fi)
	}
	done := map[v1.Hash]bool{}
	for i, l := range m.layers {
		if l.onNode() || done[l.desc.Digest] {
			continue
		}
		done[l.desc.Digest] = true
		if l.toc != nil {
			var n int64
			for _, rd := range l.toc.Reads {
				n += rd.Length
			}
			tail := b.req(n, float64(len(l.toc.Index().Entries))*m.rates.TOCEntry, phaseDownload, catMetadata, manifest)
			b.downloadTasks = append(b.downloadTasks, tail)
			seen := map[int64]bool{}
			var members []lazypull.Range
			for _, fi := range byBlob[l.desc.Digest] {
				for _, r := range l.toc.FileRanges(m.files[fi].entry.Path) {
					if !seen[r.Offset] {
						seen[r.Offset] = true
						members = append(members, r)
					}
				}
			}
			sort.Slice(members, func(a, c int) bool { return members[a].Offset < members[c].Offset })
			for _, r := range mergeRanges(members) {
				b.req(r.Length, m.rates.chunkCPU(l.chunkCompression(), l.toc.ChunkBytes(r)), phaseOnDemand, catOnDemand, tail)
			}
			continue
		}
		b.estimated = true
		e := m.estimateLayer(i)
		tail := b.req(FooterBytes+e.tocBytes, float64(e.tocEntries)*m.rates.TOCEntry, phaseDownload, catMetadata, manifest)
		b.downloadTasks = append(b.downloadTasks, tail)
		if e.prefetchBytes > 0 {
			b.req(e.prefetchBytes, e.prefetchCPU, phaseOnDemand, catOnDemand, tail)
		}
	}
	// The container starts once every byte is in, and reads its files.
	all := make([]int, len(b.p.tasks))
	for i := range all {
		all[i] = i
	}
	b.start = b.p.work(m.start, phaseOnDemand, all...)
	var read int64
	opened := 0
	for _, f := range m.files {
		if !m.layers[f.ref.Layer].onNode() {
			read += f.entry.Size
			opened++
		}
	}
	b.p.work(float64(opened)*m.rates.LazyOpen+div(float64(read), m.rates.LazyRead), phaseOnDemand, b.start)
	b.cost.Estimated = b.estimated
	return b
}

// mergeRanges merges adjacent ranges of a sorted list.
func mergeRanges(rs []lazypull.Range) []lazypull.Range {
	var out []lazypull.Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].End() == r.Offset {
			out[n-1].Length += r.Length
			continue
		}
		out = append(out, r)
	}
	return out
}

// phases splits a simulated scenario into the bar segments.
func (b *build) phases(tm timing) Phases {
	total := tm.total()
	ph := Phases{Scenario: b.scen, Total: total}
	startAt := total
	if b.start >= 0 {
		startAt = tm.start[b.start]
		ph.Start = tm.end[b.start] - tm.start[b.start]
	}
	switch b.scen {
	case FullPull, LowerBound, PartialPull:
		dl := 0.0
		for _, t := range b.downloadTasks {
			dl = math.Max(dl, tm.end[t])
		}
		dl = math.Min(dl, startAt)
		if b.scen != LowerBound {
			ph.Download, ph.Unpack, ph.Start = dl, startAt-dl, total-startAt
		} else {
			ph.Download, ph.OnDemand, ph.Start = dl, startAt-dl, total-startAt
		}
	default:
		mounted := tm.end[b.ready]
		unpack := 0.0
		if b.unpackLast >= 0 && tm.end[b.unpackLast] >= mounted-simEpsilon {
			unpack = tm.end[b.unpackLast] - tm.start[b.unpackFirst]
		}
		ph.Download, ph.Unpack, ph.OnDemand = mounted-unpack, unpack, total-mounted-ph.Start
	}
	return ph
}

// blockRanges turns the on-demand request r of lazy layer l (blob dg) into
// what the snapshotter fetches: r rounded out to Rates.FetchBlock-aligned
// blocks of the blob, less the blocks fetched before (recorded in blocks)
// and those of the prefetch range, adjacent blocks in one request. With no
// FetchBlock it is r itself.
func (m *model) blockRanges(blocks map[v1.Hash]map[int64]bool, dg v1.Hash, l *layerInfo, r lazypull.Range) []lazypull.Range {
	bs := m.rates.FetchBlock
	if bs <= 0 {
		return []lazypull.Range{r}
	}
	got := blocks[dg]
	if got == nil {
		got = map[int64]bool{}
		blocks[dg] = got
	}
	pf := l.toc.Prefetch
	var out []lazypull.Range
	for blk := r.Offset / bs; blk*bs < r.End(); blk++ {
		off := blk * bs
		end := min(off+bs, l.desc.Size)
		if got[blk] || pf.Length > 0 && off >= pf.Offset && end <= pf.End() {
			continue
		}
		got[blk] = true
		if n := len(out); n > 0 && out[n-1].End() == off {
			out[n-1].Length += end - off
			continue
		}
		out = append(out, lazypull.Range{Offset: off, Length: end - off})
	}
	return out
}
