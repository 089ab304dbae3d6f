// Package demo builds the sample image that `make demo` optimizes: what a
// typical Dockerfile build of a small Go web service on a Debian base
// produces, with the usual waste, fully offline and deterministically. It
// is built to show what coldstart is for: 42 MiB to pull, of which the
// container reads about 6 MiB at start-up.
//
// The image has six layers, as if built from
//
//	FROM debian-like base                  # 1: base filesystem, merged /usr, the
//	                                       #    files of ~80 packages (about 29 MiB)
//	RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata
//	                                       # 2: apt lists and caches + runtime files
//	RUN rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
//	                                       # 3: whiteouts only
//	COPY app /app                          # 4: the demoapp binary, its config and
//	                                       #    static assets (about 13 MiB)
//	RUN chmod -R g+w /app                  # 5: metadata-only copy-up of /app
//	COPY app /app                          # 6: identical to layer 4
//	ENTRYPOINT ["/app/demoapp"]
//
// Layer 6 is byte-identical to layer 4, so the manifest lists the same
// layer digest twice. The binary is testdata/demoapp, compiled with
// CGO_ENABLED=0 -trimpath -ldflags="-s -w" -buildvcs=false for linux; all
// other content is synthetic (pseudo-random binaries, text and media,
// seeded by file name, compressing about as the real kinds do). The same
// Go toolchain and options give the same image digest on every run.
//
// Optimized, the image drops the waste (the apt lists, the two earlier
// copies of /app), and its lazy start fetches the layers' TOCs and the
// start-up files (the binary, its CA bundle, time zone and user database)
// instead of every layer: 0.3 of the time of its cold start before on the
// edge network, about 0.6 on cloud and datacenter ones, where the
// container's own start is much of it (TestDemoPaysOff holds it there).
package demo
