// Package realstack measures cold starts on the real lazy-pulling stack:
// containerd v2, stargz-snapshotter as a proxy snapshotter plugin, runc,
// and Debian's docker-registry in a network namespace of its own behind a
// veth pair shaped by tc tbf.
//
// It is its own Go module (so the coldstart library's go.mod does not grow
// by containerd's dependencies) and imports nothing of the coldstart
// module: conversions are done by exec'ing the coldstart CLI and the
// benchmark's reference converter.
//
// The pieces:
//   - Install builds containerd, ctr, containerd-shim-runc-v2 and this
//     module's stargz-grpc (the snapshotter's gRPC server) at the versions
//     go.mod pins;
//   - StartRegistry starts the registry behind the shaped link and counts
//     requests and bytes from its access log;
//   - Node is one containerd + snapshotter whose state lives in one
//     directory: Start, Stop, Wipe;
//   - Node.Run pulls an image (lazily through the snapshotter's label
//     handler, or a plain overlayfs pull), runs it with runc and times the
//     pull start to the ready line;
//   - Bench runs variants of an image on cold and warm nodes and
//     summarizes the runs.
//
// Everything needs Linux and root. See README.md for the method.
package realstack
