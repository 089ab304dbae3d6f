// Package run records the start-up working set of an image by running it:
// it starts the entrypoint in a sandbox and records with fanotify every file
// of the image that the process tree opens, in first-access order. The
// result is a [profile.Profile] of Source [profile.SourceRun].
//
// [Image] does it for a v1.Image: it indexes the image's layers, writes
// their merged root filesystem into a private workspace (refusing entries
// that would land outside it), and runs the command of the image's config
// or of [WithConfig]. [Root] does it for a root filesystem that a [Filler]
// writes, with an explicit [profile.Config].
//
// The sandbox is an overlay mount over that root filesystem (so nothing the
// process writes changes it) in new mount, PID, UTS, IPC and network
// namespaces, loopback only; the process runs as the image's user. The run
// ends when the process exits, when a line of its output matches
// [WithWaitOnLine], when [WithWaitOnPort] accepts a connection, or after
// [WithPeriod]; then every process is killed and everything is unmounted
// and removed, on every path. It isolates the run from the host's files and
// network; it is not a security boundary against a hostile image that runs
// as root.
//
// Running needs Linux, root, overlayfs and fanotify, and an image of this
// machine's architecture: see [Supported], [ErrUnsupported] and
// [ErrPlatform]. The static profiler, [profile.Static], needs none of that.
//
// A program that imports this package can start the sandbox: the sandbox's
// set-up runs in a copy of the program's own binary (/proc/self/exe),
// which this package's init function turns into the set-up process before
// main runs. The library is silent; [WithLogger] receives what it does.
package run
