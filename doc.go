// Package coldstart makes container images start fast, by reference: each
// function takes image references as strings, reads the images, does one job
// and, for Optimize, writes the result, the way the coldstart command does
// (in the spirit of go-containerregistry's crane).
//
//	res, err := coldstart.Optimize(ctx, "registry.example.com/app:1", "registry.example.com/app:1-esgz")
//
// References follow skopeo's transports (see the imageref package):
// REGISTRY/REPO[:TAG|@DIGEST], oci:DIR[:TAG] and docker-archive:FILE.
//
//   - [Optimize] reads SRC, dedupes, reorders and re-encodes its layers
//     (package optimize), writes DST (complete or untouched) and estimates
//     the cold start before and after from what it read and wrote;
//   - [Verify] checks that DST shows a container what SRC shows;
//   - [Analyze] measures an image's layers and its wasted bytes;
//   - [Profile] finds the files an image reads at start-up, statically or by
//     running it;
//   - [Report] and [Compare] estimate (and measure) what a cold start costs.
//
// Options configure registry access ([WithInsecure], [WithLogger]), the
// platforms of a multi-platform image ([WithPlatforms]) and pass options on
// to the packages that do the work ([WithOptimizeOptions],
// [WithReportOptions], [WithRunOptions]). Errors that are the caller's (a
// malformed reference, DST equal to SRC without [WithOverwrite], options that
// do not go together) wrap [ErrInvalid].
//
// To work on go-containerregistry values instead of references, use the
// optimize, optimize/report and optimize/profile packages directly, and
// imageref to read and write.
package coldstart
