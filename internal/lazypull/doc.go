// Package lazypull measures what starting a container costs: it performs the
// requests a node makes against a real registry, times them and counts the
// bytes and requests, without a container runtime.
//
// [FullPull] is a node without lazy pulling: manifest, config, every layer
// the node does not hold downloaded in full (three at a time, as containerd
// does), then decompressed and unpacked in order into a temporary directory.
//
// [Start] is a node with a lazy snapshotter (stargz-snapshotter): the lazy
// layers are mounted from their footer and TOC, their prefetch ranges are
// fetched in the background, the layers that cannot be mounted lazily are
// downloaded and unpacked (see [Roles]), and the start-up files are read in order,
// each costing the chunks that hold it. Every chunk fetched is decompressed
// and checked against its digest in the TOC.
//
// The pieces both the measurement and optimize/report's model rely on are
// exported so that they agree by construction: [OpenTOC] reads a lazy
// layer's footer and TOC through any io.ReaderAt (a local blob or range
// requests), [TOC.PlanFile] says which requests reading one file sends,
// [Resolve] follows a path through the merged filesystem's symbolic links,
// and [Roles] decides what a node does with each layer.
//
// Authentication (the registry ping and a token, if the registry asks for
// one) happens before the clock starts, as on a node that pulled from the
// registry before. Temporary files are removed on every path.
package lazypull
