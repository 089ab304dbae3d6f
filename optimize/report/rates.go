package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
)

// Rates are how fast the node's CPU does the work a start needs. Byte
// rates are in uncompressed bytes per second.
type Rates struct {
	// GzipDecompress and ZstdDecompress: decompression, in output bytes
	// per second.
	GzipDecompress float64 `json:"gzipDecompressBytesPerSecond"`
	ZstdDecompress float64 `json:"zstdDecompressBytesPerSecond"`
	// Verify: hashing fetched chunks (sha256) to check them against the
	// TOC.
	Verify float64 `json:"verifyBytesPerSecond"`
	// Unpack: writing a layer's tar stream to disk, hashing it for the
	// DiffID on the way; UnpackEntry is the extra cost of each tar entry
	// (creating, chmod-ing and timestamping a file, directory or link).
	Unpack      float64 `json:"unpackBytesPerSecond"`
	UnpackEntry float64 `json:"unpackEntrySeconds"`
	// UnpackLayer is the fixed cost of applying one layer downloaded
	// whole: the snapshot prepared, mounted, committed and recorded
	// (containerd's applier and its metadata store), whatever the layer
	// holds.
	UnpackLayer float64 `json:"unpackLayerSeconds"`
	// TOCEntry is the cost of decompressing, parsing and indexing one TOC
	// entry when a lazy layer is mounted.
	TOCEntry float64 `json:"tocEntrySeconds"`
	// Request is the time the registry (and the client) take to answer a
	// request, on top of the network's round trip. A measurement probes
	// it (lazypull.Probe).
	Request float64 `json:"requestSeconds"`
	// Node-side costs, measured on the real stack (containerd 2.4,
	// stargz-snapshotter 0.19, runc; see benchmarks/realstack), which
	// Calibrate does not measure:
	//
	// ContainerStart is the time from a pulled image to its ready line
	// with every file on local disk: creating the container and the
	// runtime's task, starting the process, and the program's own start.
	// It stands for a program whose start is not known: a run profile
	// measures it (profile.Profile.ReadySeconds), and then the container's
	// start is RuntimeStart plus that. 0 leaves the start out (the
	// built-in client starts no container).
	ContainerStart float64 `json:"containerStartSeconds"`
	// RuntimeStart is the runtime's part of a container's start: creating
	// the container and its task and starting the process, up to the exec
	// of its entrypoint.
	RuntimeStart float64 `json:"runtimeStartSeconds"`
	// LazyMount is the cost of mounting one lazy layer (the snapshotter's
	// FUSE mount and snapshot bookkeeping), beyond fetching and parsing
	// its TOC.
	LazyMount float64 `json:"lazyMountSeconds"`
	// PullSetup is the puller's own time before it asks for the first
	// layer: containerd resolving the reference and writing the manifest
	// and the config to its content store, beyond their requests.
	PullSetup float64 `json:"pullSetupSeconds"`
	// CheckRequests is the number of requests the snapshotter makes to
	// check a lazy layer's blob before it reads the footer
	// (stargz-snapshotter: a one-byte range GET, then a HEAD).
	CheckRequests int `json:"checkRequests"`
	// ResolveAtOnce: when the first lazy layer is mounted, the snapshotter
	// resolves every lazy layer of the image at once (their checks and
	// TOCs fetched in parallel, each prefetch started as its TOC
	// arrives), then mounts them in order (stargz-snapshotter, from the
	// layer list containerd passes it). Without it, the TOCs are read one
	// layer after another (the built-in client).
	ResolveAtOnce bool `json:"resolveAtOnce"`
	// PrefetchLayer is the snapshotter's fixed cost of caching one
	// layer's prefetched range, beyond decompressing and verifying its
	// chunks.
	PrefetchLayer float64 `json:"prefetchLayerSeconds"`
	// CacheChunk is the snapshotter's cost of caching one chunk it has
	// fetched, prefetched or on demand, beyond decompressing and verifying
	// it (stargz-snapshotter writes each chunk to a file of its cache).
	CacheChunk float64 `json:"cacheChunkSeconds"`
	// PrefetchEntry is a cost per entry of a layer's TOC that the
	// snapshotter pays before the layer's prefetch is cached, fitted to
	// the real stack (see DefaultPrefetchEntry: where it falls is not
	// pinned down).
	PrefetchEntry float64 `json:"prefetchEntrySeconds"`
	// PrefetchWait is how long, at most, the container's start waits for
	// the lazy layers' prefetch: stargz-snapshotter checks every remote
	// layer before it prepares the container's snapshot, and the check
	// waits for the layer's prefetch to be fetched and cached (its
	// prefetch_timeout). 0: the start does not wait, and a start-up file
	// waits only for its own layer's prefetch (the built-in client).
	PrefetchWait float64 `json:"prefetchWaitSeconds"`
	// LazyRead is how fast a program reads start-up files out of lazily
	// mounted layers once their chunks are local (FUSE), in bytes per
	// second of file content; 0 means no cost.
	LazyRead float64 `json:"lazyReadBytesPerSecond"`
	// LazyOpen is the cost of opening one start-up file of a lazy layer
	// (the lookups and the open through FUSE).
	LazyOpen float64 `json:"lazyOpenSeconds"`
	// PartRead is the fraction of a file that programs read in part
	// (profile.ReadInPart: shared objects, the JDK's class image) that a
	// start touches, in chunks fetched and bytes read; 1 reads them whole.
	PartRead float64 `json:"partReadFraction"`
	// PartReadImage is PartRead for the JDK's class image
	// (profile.ClassImage); 0 takes PartRead.
	PartReadImage float64 `json:"partReadImageFraction,omitempty"`
	// PartTouch is the fraction of a file read in part that the program
	// reads through the snapshotter (the pages it touches; PartRead is the
	// fraction of its chunks that this brings in); 0 reads what PartRead
	// fetches.
	PartTouch float64 `json:"partTouchFraction"`
	// FetchBlock is the unit in which the lazy snapshotter fetches a
	// layer's data on demand: a read takes the aligned blocks of the blob
	// it touches, which stay cached, so the next files in those blocks
	// need no request (stargz-snapshotter's 50,000-byte chunks); it
	// fetches a chunk on its own request when the program first touches
	// it, and decompresses what it fetched once all of it is in. 0 fetches
	// exactly the compressed members a read needs, adjacent ones merged,
	// decompressing them as they arrive (the built-in client).
	FetchBlock int64 `json:"fetchBlockBytes"`
	// PullOverhead is the puller's own fixed cost of one pull in the
	// partial-pull scenario: podman starting, opening and locking its
	// store, resolving the reference and committing the image, measured
	// as a pull of an image the store already holds, less its requests.
	PullOverhead float64 `json:"pullOverheadSeconds"`
	// PartialEntry is the cost of each entry a partial pull writes (a
	// file created or copied from a layer the store holds, a directory, a
	// link: containers/storage sets its owner, mode, times and xattrs one
	// by one), beyond the bytes it copies; 0 takes UnpackEntry.
	PartialEntry float64 `json:"partialEntrySeconds,omitempty"`
	// Calibrated is set when the rates were measured on this machine
	// (Calibrate) rather than taken from DefaultRates.
	Calibrated bool `json:"calibrated"`
}

// DefaultRates are the rates Calibrate measured on the machine coldstart is
// developed on (2 cores of a loaded cloud VM with an ext4 disk, Go 1.26,
// klauspost/compress v1.20.4), rounded to a typical value of several runs,
// except those whose doc says they were fitted to the real stack.
// The per-entry unpack cost in particular depends on the disk and on what
// else the machine does (it ranged from 0.1 to 0.6 ms there): Calibrate
// measures the machine at hand.
var DefaultRates = Rates{
	GzipDecompress: DefaultGzipDecompressRate,
	ZstdDecompress: DefaultZstdDecompressRate,
	Verify:         DefaultVerifyRate,
	Unpack:         DefaultUnpackRate,
	UnpackEntry:    DefaultUnpackEntryCost.Seconds(),
	UnpackLayer:    DefaultUnpackLayerCost.Seconds(),
	TOCEntry:       DefaultTOCEntryCost.Seconds(),
	Request:        DefaultRequestCost.Seconds(),
	ContainerStart: DefaultContainerStart.Seconds(),
	RuntimeStart:   DefaultRuntimeStart.Seconds(),
	LazyMount:      DefaultLazyMount.Seconds(),
	CheckRequests:  DefaultCheckRequests,
	PullSetup:      DefaultPullSetup.Seconds(),
	ResolveAtOnce:  true,
	PrefetchLayer:  DefaultPrefetchLayer.Seconds(),
	CacheChunk:     DefaultCacheChunk.Seconds(),
	PrefetchEntry:  DefaultPrefetchEntry.Seconds(),
	PrefetchWait:   DefaultPrefetchWait.Seconds(),
	LazyRead:       DefaultLazyReadRate,
	LazyOpen:       DefaultLazyOpen.Seconds(),
	PartRead:       DefaultPartRead,
	PartReadImage:  DefaultPartReadImage,
	FetchBlock:     DefaultFetchBlock,
	PartTouch:      DefaultPartTouch,
	PullOverhead:   DefaultPullOverhead.Seconds(),
	PartialEntry:   DefaultPartialEntryCost.Seconds(),
}

// The default rates, each measured by Calibrate (see DefaultRates).
const (
	// DefaultGzipDecompressRate is gzip decompression, uncompressed bytes
	// per second.
	DefaultGzipDecompressRate = 220e6
	// DefaultZstdDecompressRate is zstd decompression, uncompressed bytes
	// per second.
	DefaultZstdDecompressRate = 450e6
	// DefaultVerifyRate is sha256, bytes per second.
	DefaultVerifyRate = 1200e6
	// DefaultUnpackRate is writing tar content to files, bytes per second.
	DefaultUnpackRate = 700e6
	// DefaultUnpackEntryCost is the cost of creating one entry, fitted
	// (model version 9) to the real stack's full pulls: node's layer of
	// 31,642 entries (node_modules) made its full pull 13-15% slower in
	// the model than on the cold node in three make bench runs at 150 µs
	// (Calibrate's typical value here), and 7-8% at 120 µs; with the page
	// cache dropped on the node holding the base too, its pull there
	// measured 11.83 s against 13.75 s at 150 µs. A run of every image's
	// full pull after the change: within 12% at 120 µs (rms 6.9%; at
	// 150 µs 14%, rms 9.7%); benchmarks/realstack/RESULTS.md.
	DefaultUnpackEntryCost = 120 * time.Microsecond
	// DefaultUnpackLayerCost is fitted to the real stack's full pulls on a
	// node holding the base (see DefaultContainerStart): shell's four
	// small layers took 0.22 s to pull and apply, 0.09 s more than their
	// bytes and entries explain.
	DefaultUnpackLayerCost = 25 * time.Millisecond
	// DefaultTOCEntryCost is the cost of one TOC entry at mount.
	DefaultTOCEntryCost = 12 * time.Microsecond
	// DefaultRequestCost is the registry's and the client's time per
	// request beyond the round trip, fitted (with DefaultLazyOpen,
	// DefaultLazyReadRate and DefaultPartRead; model version 7) to the
	// split of the real stack's lazy starts into pull, container and
	// program (benchmarks/realstack, five images, three runs of each
	// variant and node): Debian's docker-registry answered a one-byte
	// range GET in 4.1 ms over the bench's veth (the median of 15) with
	// its page cache warm, and the snapshotter adds its own handling of
	// each fetch. A measurement probes it for the path at hand
	// (lazypull.Probe: 5 to 12 ms through the loopback shaping proxy).
	DefaultRequestCost = 10 * time.Millisecond
	// DefaultContainerStart is the start of a container whose files are
	// local, for a program whose start no run profile measured (the
	// median of the real stack's full pulls' time after their pull: 0.33
	// to 1.05 s).
	DefaultContainerStart = 450 * time.Millisecond
	// DefaultRuntimeStart is the real stack's time from the end of a full
	// pull to the start of the task (benchmarks/realstack's split: the
	// container and its task created, the task started): the median of 30
	// runs, 0.187 s.
	DefaultRuntimeStart = 185 * time.Millisecond
	// DefaultLazyMount is a lazy layer's mount once its TOC is in: the
	// snapshotter's debug log showed 11 to 33 ms from one layer's
	// Prepare to the next.
	DefaultLazyMount = 30 * time.Millisecond
	// DefaultLazyOpen and DefaultLazyReadRate are opening and reading a
	// start-up file through FUSE once its chunks are cached, fitted to
	// the program's part of the split (its time to ready after the task
	// started, less the run profile's measured start) of the variants
	// whose start-up files are all prefetched: 0.02 to 0.2 s for 22 to 231
	// files.
	DefaultLazyReadRate = 1e9
	DefaultLazyOpen     = time.Millisecond
	// DefaultPartRead and DefaultPartReadImage are fitted (model version
	// 8) to what the real stack fetched on demand for the shared objects
	// of the node bench image (libnode, libicudata: 0.6) and for the jvm
	// bench image's class image (0.45), each chunk fetched on its own
	// request as the program touches it.
	DefaultPartRead      = 0.6
	DefaultPartReadImage = 0.45
	// DefaultPartTouch is the part of such a file the program reads
	// through FUSE (with DefaultLazyReadRate, it costs little either way).
	DefaultPartTouch = 0.35
	// DefaultPullSetup is what the real stack's pulls took before the
	// snapshotter was asked for the first layer, less their three
	// requests (a HEAD of the manifest, the manifest and the config): the
	// snapshotter's debug log put the first Prepare 70 ms after the start
	// of the pull.
	DefaultPullSetup = 50 * time.Millisecond
	// DefaultCheckRequests is stargz-snapshotter's check of a blob before
	// it reads the footer: a one-byte range GET and a HEAD (the
	// registry's access log of the real stack's lazy pulls).
	DefaultCheckRequests = 2
	// DefaultPrefetchLayer is the fixed part of stargz-snapshotter's
	// prefetch_decompress latency (its debug log), fitted over the 36
	// prefetched layers of the five bench images' coldstart, coldstart-run
	// and reference-prioritized variants as a fixed cost per layer plus a
	// cost per byte and per chunk: 71 ms per layer, 6.1 ms per MB
	// uncompressed (what Rates.chunkCPU charges: 5.4 ms) and 0.26 ms per
	// chunk.
	DefaultPrefetchLayer = 70 * time.Millisecond
	// DefaultCacheChunk is the per-chunk part of that fit.
	DefaultCacheChunk = 260 * time.Microsecond
	// DefaultPrefetchEntry is fitted (model version 8) to the time the
	// real stack's lazy starts spend before their container is created
	// (benchmarks/realstack's split, runs/2026-12-07): node's coldstart
	// and reference-prioritized variants, whose prefetched layer has
	// 31,640 entries, took 0.35 to 0.4 s more there than their bytes,
	// their TOC's parsing and the prefetch's caching explain, while the
	// layers without a prefetch showed no such cost. The snapshotter's own
	// prefetch_decompress metric did not show it, so where this
	// cost falls between the TOC's arrival and the prefetch's end is not
	// pinned down.
	DefaultPrefetchEntry = 12 * time.Microsecond
	// DefaultPrefetchWait is stargz-snapshotter's default prefetch_timeout.
	DefaultPrefetchWait = 10 * time.Second
	// DefaultFetchBlock is stargz-snapshotter's default fetch unit (its
	// http_chunk_size, 50,000 bytes).
	DefaultFetchBlock = 50000
	// DefaultPullOverhead is what the podman benchmark (make bench)
	// measured for Debian's podman 4.3.1 (0.10 s): the median of pulls of an image
	// the store holds, less their requests.
	DefaultPullOverhead = 100 * time.Millisecond
	// DefaultPartialEntryCost is fitted (model version 11) to podman
	// 4.3.1's partial pulls of the python bench image's new version after
	// the old one, from a loopback registry without shaping (4 runs, a new
	// store each): 0.59-0.76 s (median 0.62 s) against 0.10-0.12 s for a
	// pull of the image once held, for 1,609 entries written and 42.7 MiB
	// copied from the old version's layer (0.07 s at the default unpack
	// and sha256 rates): 0.27 ms per entry, where a tar unpack
	// (UnpackEntry) costs 0.12 ms. benchmarks/README.md.
	DefaultPartialEntryCost = 275 * time.Microsecond
)

// decompressRate is the decompression rate for a compression; +Inf for
// none.
func (r Rates) decompressRate(c layers.Compression) float64 {
	switch c {
	case layers.Gzip:
		return r.GzipDecompress
	case layers.Zstd:
		return r.ZstdDecompress
	}
	return math.Inf(1)
}

// chunkCPU is the time to decompress and verify n uncompressed bytes of
// chunks.
func (r Rates) chunkCPU(c layers.Compression, n int64) float64 {
	return div(float64(n), r.decompressRate(c)) + div(float64(n), r.Verify)
}

// applyCPU is the time to apply one layer downloaded whole: its fixed
// cost (UnpackLayer) and unpackCPU.
func (r Rates) applyCPU(c layers.Compression, n int64, entries int) float64 {
	return r.UnpackLayer + r.unpackCPU(c, n, entries)
}

// unpackCPU is the time to decompress and unpack a layer of n uncompressed
// bytes and entries tar entries.
func (r Rates) unpackCPU(c layers.Compression, n int64, entries int) float64 {
	return div(float64(n), r.decompressRate(c)) + div(float64(n), r.Unpack) + float64(entries)*r.UnpackEntry
}

// div divides, 0 for an infinite or unset rate.
func div(n, rate float64) float64 {
	if rate <= 0 || math.IsInf(rate, 1) {
		return 0
	}
	return n / rate
}

// valid reports whether every rate is usable.
// Validate says which rate cannot be used, by its JSON name, if one cannot:
// a rate of bytes per second must be positive (LazyRead may be 0: no
// cost), a cost not negative, a fraction within 0 and 1, and none
// infinite.
func (r Rates) Validate() error {
	bad := func(name string) error {
		return fmt.Errorf("%s cannot be used: a rate must be positive, a cost not negative, a fraction within 0 and 1", name)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"gzipDecompressBytesPerSecond", r.GzipDecompress}, {"zstdDecompressBytesPerSecond", r.ZstdDecompress},
		{"verifyBytesPerSecond", r.Verify}, {"unpackBytesPerSecond", r.Unpack}} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			return bad(f.name)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"lazyReadBytesPerSecond", r.LazyRead}, {"unpackEntrySeconds", r.UnpackEntry}, {"unpackLayerSeconds", r.UnpackLayer},
		{"tocEntrySeconds", r.TOCEntry}, {"requestSeconds", r.Request}, {"containerStartSeconds", r.ContainerStart},
		{"runtimeStartSeconds", r.RuntimeStart}, {"lazyMountSeconds", r.LazyMount}, {"pullSetupSeconds", r.PullSetup},
		{"prefetchLayerSeconds", r.PrefetchLayer}, {"cacheChunkSeconds", r.CacheChunk}, {"prefetchEntrySeconds", r.PrefetchEntry},
		{"prefetchWaitSeconds", r.PrefetchWait}, {"lazyOpenSeconds", r.LazyOpen}, {"pullOverheadSeconds", r.PullOverhead},
		{"partialEntrySeconds", r.PartialEntry}, {"checkRequests", float64(r.CheckRequests)}, {"fetchBlockBytes", float64(r.FetchBlock)}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return bad(f.name)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"partReadFraction", r.PartRead}, {"partReadImageFraction", r.PartReadImage}, {"partTouchFraction", r.PartTouch}} {
		if !(f.v >= 0 && f.v <= 1) {
			return bad(f.name)
		}
	}
	return nil
}

// containerStart is the time from every layer in place to the program's
// ready line or port: the runtime's part and the program's own start when
// a run profile measured it, else ContainerStart. Rates without a
// ContainerStart (the built-in client's) start no container.
func (r Rates) containerStart(p *profile.Profile) float64 {
	switch {
	case r.ContainerStart == 0:
		return 0
	case p != nil && p.ReadySeconds > 0:
		return r.RuntimeStart + p.ReadySeconds
	}
	return r.ContainerStart
}

// BuiltInClient returns r as the built-in pull client (the one
// WithMeasurement and the loopback benchmarks drive) experiences it: it
// starts no container, mounts nothing, reads nothing through FUSE, checks
// no blob, opens the TOCs one after another, waits for no prefetch but
// that of a file's own layer, fetches exactly the members a file needs
// and every start-up file whole. The CPU
// rates and the registry's time per request stay.
func (r Rates) BuiltInClient() Rates {
	r.ContainerStart, r.RuntimeStart, r.LazyMount, r.LazyRead, r.LazyOpen = 0, 0, 0, 0, 0
	r.FetchBlock, r.PartRead, r.PartReadImage, r.PartTouch, r.UnpackLayer = 0, 1, 0, 0, 0
	r.CheckRequests, r.ResolveAtOnce, r.PrefetchLayer, r.PrefetchWait, r.PullSetup, r.CacheChunk, r.PrefetchEntry = 0, false, 0, 0, 0, 0, 0
	return r
}

// ScaleNode returns r with the costs that were fitted to the real stack on
// one machine multiplied by k: the runtime's and the program's start,
// containerd's applier per entry and per layer, the snapshotter's TOC
// parsing, mount, prefetch and per-chunk costs, the pull's setup, the
// time per request, reading through FUSE, podman's overhead and entries.
// It stands for a node (and a registry) that does that work k times as
// long; Calibrate does not see it: its decompression and unpack rates
// say little about a node's (benchmarks/README.md). benchmarks/harness
// fits k on the real stack's node (NodeCalibration). The fractions and
// the decompression, sha256 and unpack rates are kept.
func (r Rates) ScaleNode(k float64) Rates {
	if !(k > 0) || math.IsInf(k, 0) {
		return r
	}
	for _, p := range []*float64{&r.RuntimeStart, &r.ContainerStart, &r.UnpackEntry, &r.UnpackLayer, &r.TOCEntry,
		&r.LazyMount, &r.PullSetup, &r.PrefetchLayer, &r.CacheChunk, &r.PrefetchEntry, &r.Request, &r.LazyOpen,
		&r.PullOverhead, &r.PartialEntry} {
		*p *= k
	}
	if r.LazyRead > 0 {
		r.LazyRead /= k
	}
	return r
}

// ReadRates reads Rates as JSON (the "rates" object of a JSON report, or a
// node's rates that benchmarks/harness calibrated): the fields it holds
// replace DefaultRates', the others keep theirs. An unknown field, a
// second value or a rate that cannot be used is an error.
func ReadRates(r io.Reader) (Rates, error) {
	rates := DefaultRates
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rates); err != nil {
		return Rates{}, fmt.Errorf("reading rates: %w", err)
	}
	if dec.More() {
		return Rates{}, fmt.Errorf("reading rates: more than one JSON value")
	}
	if err := rates.Validate(); err != nil {
		return Rates{}, fmt.Errorf("reading rates: %w", err)
	}
	return rates, nil
}

// ReadRatesFile is ReadRates of the named file; its errors name it.
func ReadRatesFile(name string) (Rates, error) {
	f, err := os.Open(name)
	if err != nil {
		return Rates{}, err
	}
	defer f.Close()
	r, err := ReadRates(f)
	if err != nil {
		return Rates{}, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}
