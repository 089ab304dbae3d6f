// Package report says what starting a container image costs on a node: the
// bytes and requests it fetches and the seconds until the container is
// ready, for a full pull, a lazy start, the lower bound and, when some layer
// is not lazy yet, a lazy start after optimizing; estimated on named
// networks, and, if asked, measured against a real registry.
//
// [Estimate] reads one image (one platform): every layer once, lazy layers'
// footers and TOCs from their blobs, and the start-up files from a profile
// ([WithProfile]), a profiler ([WithProfiler]) or, by default,
// [profile.Static] run over the image's merged filesystem. Every profile path
// is resolved through the image's symbolic links (lazypull.Resolve) to the
// regular file actually read: on a merged-/usr image "/lib/x" reads
// "usr/lib/x". The node holds the layers given by [WithCachedLayers] and
// [WithBaseImage] and fetches nothing for them. [Compare] puts two images
// side by side.
//
// # The model
//
// Every scenario is a plan of requests and CPU work that the package's
// simulator runs on a network (a fluid model): each request waits one
// round-trip time plus the registry's own time per request
// ([Rates].Request, [DefaultRequestCost]), then its bytes flow at an equal
// share of the bandwidth with every request transferring at the same time; decompressing and
// checking a request's chunks overlaps its transfer (the request ends at the
// later of its last byte and RTT + CPU time); unpacking is CPU time alone.
// The plans are the ones internal/lazypull executes, request for request, so
// a measurement and its prediction count the same bytes and requests.
//
// Full pull (a node without lazy pulling): the manifest (after the index's,
// if the image is reached through one, [WithIndexManifest]) and the config,
// one after the other; then every layer the node does not hold, one request
// each for its compressed bytes, [DefaultConcurrency] (3) at a time as
// containerd downloads (a blob the image lists twice is downloaded once);
// then each layer decompressed and unpacked, in order, as soon as it is
// downloaded and the layer below is unpacked (containerd's unpacker applies
// layers while later ones download): a fixed cost per layer (the snapshot
// prepared, committed and recorded) + uncompressed bytes / decompression
// rate + uncompressed bytes / unpack rate + tar entries × per-entry cost.
//
// Lazy start (eStargz on stargz-snapshotter): a layer is mounted lazily
// when its content is lazy and its descriptor carries the TOC digest the
// snapshotter verifies (lazypull.Mountable; a zstd:chunked layer carries
// none, so with the snapshotter's defaults it is downloaded whole). Every
// other layer the node does not hold is downloaded and unpacked as in a
// full pull; the lazy layers above it are mounted all the same
// (lazypull.Roles: what containerd 2.4 with stargz-snapshotter 0.19 does,
// measured in benchmarks/realstack), but only once the layers below are
// unpacked (containerd prepares the snapshots in order), and containerd's
// unpacker downloads them whole as well, beside the non-lazy layer (its
// startFetch(i) fetches layers[i:]): the model counts those downloads in
// the bytes and on the link, gating nothing (the unpacker cancels what is
// left when it returns). The built-in client ([Rates.BuiltInClient])
// mounts each lazy layer on its own and fetches the rest of it in the
// background on the same link instead. The snapshotter first checks each lazy
// layer's blob ([Rates].CheckRequests: a one-byte range GET and a HEAD),
// then reads its footer (the last [FooterBytes], 51, bytes) and its TOC
// (with [Rates].FetchBlock, in aligned blocks: the blob's last block, then
// the blocks from the one the TOC starts in) and parses it (entries ×
// [Rates].TOCEntry), after the manifest, the config and the puller's own
// setup ([Rates].PullSetup); it does this for every lazy
// layer at once when the first is mounted ([Rates].ResolveAtOnce), and
// mounts the layers in order, each after its own TOC ([Rates].LazyMount;
// each blob once). A layer's prefetch range (from the start of the blob to
// the .prefetch.landmark entry; none without one) is fetched in one
// request as soon as its TOC is in; once all of it has arrived, its chunks
// are decompressed, checked and cached ([Rates].PrefetchLayer more, and
// [Rates].CacheChunk a chunk and [Rates].PrefetchEntry an entry of the
// layer's TOC). The
// container's snapshot is prepared when every layer is mounted and every
// prefetch is cached ([Rates].PrefetchWait at most: stargz-snapshotter
// checks each remote layer first, and the check waits for its prefetch).
// Then containerd reads [RuntimeFiles] (/etc/passwd and /etc/group) to
// create the container, fetching them on demand like start-up files, and
// the container starts: the
// runtime's part ([Rates].RuntimeStart) and the program's own start as the
// run profile measured it ([profile.Profile].ReadySeconds), or
// [Rates].ContainerStart when the profile did not measure it. It reads the
// start-up files in order: a file of a lazy layer inside the prefetch
// range waits for that prefetch; otherwise the members that hold its
// chunks (from a chunk's offset to the next chunk's; of a file programs
// read in part, the first [Rates].PartRead of them, [Rates].PartReadImage
// of the JDK's class image) are fetched, each chunk as the program first
// touches it, rounded out to the snapshotter's aligned blocks
// ([Rates].FetchBlock, 50,000 bytes), one request after the other,
// skipping the blocks fetched before, each decompressed and cached once
// it is in;
// then the file is opened and read
// through FUSE ([Rates].LazyOpen, [Rates].LazyRead; of a file read in part,
// [Rates].PartTouch of it). Files of held or unpacked layers cost nothing
// more. The node-side rates are fitted to the real stack
// (benchmarks/RESULTS.md says how close the predictions come).
//
// Lower bound: the manifest, then, in parallel, the config and, per layer
// the node does not hold, its footer and TOC in one request; then, in
// parallel, the members holding exactly the start-up files, adjacent ones
// merged; nothing else is fetched and nothing unpacked; then the container
// starts and reads its files.
//
// If optimized (a what-if, nothing is written): the lazy start after every
// layer that is neither held nor lazy is converted to eStargz with its
// start-up files first. For those layers the figures are estimates: the TOC
// is [EstimatedTOCFileBytes] per regular file and [EstimatedTOCEntryBytes]
// per other entry, the prefetch range is the start-up files' sizes plus a
// [TarHeaderBytes] header each, padded to 512 bytes, times the layer's
// compression ratio. The lower bound uses the same estimates for layers
// that are not lazy. Reports flag estimated figures.
//
// # Networks and rates
//
// [Datacenter] is 10 Gbit/s with a 1 ms round trip, [Cloud] 1 Gbit/s and
// 10 ms, [Edge] 100 Mbit/s and 50 ms; [ParseNetwork] also reads RATE,RTT such
// as "200Mbit,20ms". CPU work uses [Rates]: [DefaultRates] were measured on
// the development machine; [Calibrate] measures the machine at hand (gzip
// and zstd decompression and sha256 of a generated corpus, unpacking a tar
// of large files and one of small files to separate the per-byte and
// per-entry costs, and opening an eStargz TOC). The node-side costs
// (the runtime's start, the snapshotter's mount and prefetch, containerd's
// applier) were fitted to the real stack on one machine and do not follow
// those rates: another node runs them at its own speed.
// [Rates.ScaleNode] scales them; benchmarks/harness fits the scale and
// the runtime's start on a node of the real stack, and [ReadRates] reads
// such rates back (coldstart report --rates).
//
// # Measured, not only modelled
//
// [WithMeasurement] runs a real full pull and a real lazy start of the image
// from its registry with internal/lazypull (authentication first, untimed),
// and puts the measured seconds, bytes and requests beside the prediction
// for the same network; the registry's time per request is probed first
// (lazypull.Probe) and used for that prediction. [WithShaping] puts
// internal/shaper, an in-process proxy that adds an RTT to every request
// and caps the bandwidth of all connections together, between the client
// and the registry, so that figures measured on loopback stand for a real
// network. Bytes and requests match the prediction exactly.
//
// TestPredictionAccuracy (COLDSTART_ACCURACY=1; a few minutes) builds a
// Debian python image of 89 MB from the host's files, converts it to eStargz
// with and without its start-up files first, and compares the medians of
// three measured and predicted full pulls and lazy starts on the cloud and
// edge networks. On the development machine (2 cores, shared by the client,
// the proxy and the registry) eleven of the twelve landed within 8%; the
// twelfth, the optimized image's lazy start on cloud (about 0.3 s, most of
// it CPU), came out 25 to 40% short: there the client, the proxy and the
// registry contend for the cores, which the model gives the node alone.
//
// # Output
//
// [Report.Write] and [Comparison.Write] render text, JSON (with a version
// field), Markdown (for a CI job summary), SVG (stacked bars: download,
// decompress and unpack, start-up fetches, container start; one bar per
// scenario, one panel
// per network) or one self-contained HTML page. Output depends only on the
// report: the same image and options give the same bytes, except for
// measured figures and calibrated rates, which are measured. [WithBudget]
// checks the lazy start estimate on a network against a number of seconds;
// [Report.CheckBudgets] returns an error wrapping [ErrOverBudget].
//
// The package is silent: [WithLogger] receives debug records.
package report
