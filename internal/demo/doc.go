// Package demo builds the sample image that `make demo` optimizes: what a
// typical Dockerfile build of a small Go service produces, with the usual
// waste, fully offline and deterministically.
//
// The image has six layers, as if built from
//
//	FROM debian-like base                  # 1: base filesystem, merged /usr
//	RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata
//	                                       # 2: apt lists and caches + runtime files
//	RUN rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
//	                                       # 3: whiteouts only
//	COPY app /app                          # 4: the demoapp binary and its config
//	RUN chmod -R g+w /app                  # 5: metadata-only copy-up of /app
//	COPY app /app                          # 6: identical to layer 4
//	ENTRYPOINT ["/app/demoapp"]
//
// Layer 6 is byte-identical to layer 4, so the manifest lists the same
// layer digest twice. The binary is testdata/demoapp, compiled with
// CGO_ENABLED=0 -trimpath -ldflags="-s -w" -buildvcs=false for linux; all
// other content is synthetic (pseudo-random, seeded by file name). The same
// Go toolchain and options give the same image digest on every run.
package demo
