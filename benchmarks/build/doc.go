// Package build makes the benchmark images: real Debian images built from
// real packages, the way users' CI builds them.
//
// Each image has a recipe in benchmarks/images/NAME/recipe.json (see
// Recipe): a debootstrap base, build steps (run a shell command, or copy
// files from the recipe directory or from a builder stage), the image
// config, and the condition under which a started container is ready.
// Names lists the recipes; Load reads one.
//
// Image builds one like a Dockerfile build: the base is
// `debootstrap --variant=minbase SUITE DIR MIRROR`, made once and cached
// (keyed by suite, variant, mirror and extra packages); every step runs as
// root in a chroot, in private mount and PID namespaces, on an overlayfs
// whose upper directory captures the step's changes and becomes one layer
// (overlayfs whiteouts and opaque directories turned into .wh. entries,
// gzip-compressed with klauspost/compress at the default level, as docker
// does). The result is an OCI layout, cached under a key made of the
// recipe directory's content, the builder Version and the base, so a second
// call for an unchanged recipe returns at once. BaseImage returns the base
// alone, whose single layer every image shares byte for byte.
//
// Verify unpacks an image the way containerd's overlay snapshotter does,
// runs its entrypoint in a chroot of the stack and waits until it is
// ready, which proves a recipe right.
//
// Building and verifying need Linux, root, unshare, mount and chroot
// (util-linux, coreutils), debootstrap for a new base, and network access
// to the Debian mirror (and to the npm registry for the node image). The
// package is silent: WithLogger receives progress, WithOutput the output
// of the build steps.
//
// The command benchmarks/build/cmd/benchimages builds images from the
// command line.
package build
