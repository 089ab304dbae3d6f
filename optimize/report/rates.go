package report

import (
	"math"
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
	// PartTouch is the fraction of a file read in part that the program
	// reads through the snapshotter (the pages it touches; PartRead is the
	// fraction of its chunks that this brings in); 0 reads what PartRead
	// fetches.
	PartTouch float64 `json:"partTouchFraction"`
	// FetchBlock is the unit in which the lazy snapshotter fetches a
	// layer's data on demand: a read takes the aligned blocks of the blob
	// it touches, which stay cached, so the next files in those blocks
	// need no request (stargz-snapshotter's 50,000-byte chunks). 0
	// fetches exactly the compressed members a read needs (the built-in
	// client).
	FetchBlock int64 `json:"fetchBlockBytes"`
	// PullOverhead is the puller's own fixed cost of one pull in the
	// partial-pull scenario: podman starting, opening and locking its
	// store, resolving the reference and committing the image, measured
	// as a pull of an image the store already holds, less its requests.
	PullOverhead float64 `json:"pullOverheadSeconds"`
	// Calibrated is set when the rates were measured on this machine
	// (Calibrate) rather than taken from DefaultRates.
	Calibrated bool `json:"calibrated"`
}

// DefaultRates are the rates Calibrate measured on the machine coldstart is
// developed on (2 cores of a loaded cloud VM with an ext4 disk, Go 1.26,
// klauspost/compress v1.20.4), rounded to a typical value of several runs.
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
	LazyRead:       DefaultLazyReadRate,
	LazyOpen:       DefaultLazyOpen.Seconds(),
	PartRead:       DefaultPartRead,
	FetchBlock:     DefaultFetchBlock,
	PartTouch:      DefaultPartTouch,
	PullOverhead:   DefaultPullOverhead.Seconds(),
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
	// DefaultUnpackEntryCost is the cost of creating one entry.
	DefaultUnpackEntryCost = 150 * time.Microsecond
	// DefaultUnpackLayerCost is fitted to the real stack's full pulls on a
	// node holding the base (see DefaultContainerStart): shell's four
	// small layers took 0.22 s to pull and apply, 0.09 s more than their
	// bytes and entries explain.
	DefaultUnpackLayerCost = 25 * time.Millisecond
	// DefaultTOCEntryCost is the cost of one TOC entry at mount.
	DefaultTOCEntryCost = 12 * time.Microsecond
	// DefaultRequestCost is the registry's and the client's time per
	// request beyond the round trip, fitted to the real stack's lazy
	// starts of the make bench at 6f18740 (its 19 to 101 requests per
	// start): Debian's docker-registry answered a one-byte range GET in
	// 4.1 ms over the bench's veth (the median of 15), and the snapshotter
	// adds its own handling of each fetch. A measurement probes it for
	// the path at hand (lazypull.Probe: 5 to 12 ms through the loopback
	// shaping proxy).
	DefaultRequestCost = 6 * time.Millisecond
	// DefaultContainerStart, DefaultLazyMount and DefaultLazyReadRate are
	// fitted to the real stack's times to ready of the five bench images
	// (benchmarks/RESULTS.md): the start of a container whose files are
	// local (the median of the full pulls' time after their pull: 0.33 to
	// 1.05 s), a lazy layer's mount, and opening and reading files through
	// FUSE.
	DefaultContainerStart = 450 * time.Millisecond
	// DefaultRuntimeStart is fitted to the same full pulls: their time
	// from the end of the pull to ready, less the program's start that the
	// run profile measured.
	DefaultRuntimeStart = 180 * time.Millisecond
	DefaultLazyMount    = 30 * time.Millisecond
	DefaultLazyReadRate = 55e6
	DefaultLazyOpen     = 3 * time.Millisecond
	// DefaultPartRead is fitted to what the real stack fetched on demand
	// for the shared objects and the class image of the node and jvm bench
	// images.
	DefaultPartRead = 0.5
	// DefaultPartTouch is fitted to the same images' lazy starts (their
	// time reading the JDK's modules, libjvm, libnode and libicudata
	// through FUSE).
	DefaultPartTouch = 0.35
	// DefaultFetchBlock is stargz-snapshotter's default fetch unit (its
	// http_chunk_size, 50,000 bytes).
	DefaultFetchBlock = 50000
	// DefaultPullOverhead is what the podman benchmark (make bench)
	// measured for Debian's podman 4.3.1 (0.10 s): the median of pulls of an image
	// the store holds, less their requests.
	DefaultPullOverhead = 100 * time.Millisecond
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
func (r Rates) valid() bool {
	for _, v := range []float64{r.GzipDecompress, r.ZstdDecompress, r.Verify, r.Unpack} {
		if !(v > 0) || math.IsInf(v, 0) {
			return false
		}
	}
	if !(r.LazyRead >= 0) || math.IsInf(r.LazyRead, 0) || !(r.PartRead >= 0 && r.PartRead <= 1) {
		return false
	}
	for _, v := range []float64{r.UnpackEntry, r.UnpackLayer, r.TOCEntry, r.Request, r.ContainerStart, r.LazyMount, r.LazyOpen, r.PullOverhead} {
		if !(v >= 0) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
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
// starts no container, mounts nothing, reads nothing through FUSE, fetches
// exactly the members a file needs and every start-up file whole. The CPU
// rates and the registry's time per request stay.
func (r Rates) BuiltInClient() Rates {
	r.ContainerStart, r.RuntimeStart, r.LazyMount, r.LazyRead, r.LazyOpen = 0, 0, 0, 0, 0
	r.FetchBlock, r.PartRead, r.PartTouch, r.UnpackLayer = 0, 1, 0, 0
	return r
}
