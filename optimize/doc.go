// Package optimize is coldstart's pipeline: it reads an image, decides what
// each layer can drop and which start-up files go first, re-encodes the
// layers that may change as lazy-pullable eStargz or zstd:chunked, keeps the
// layers nodes already hold byte-identical, and says layer by layer what it
// did and why.
//
// The entry points take go-containerregistry values, one function per kind:
//
//   - [Image] and [Index] optimize an image or every image of an index;
//   - [VerifyImage], [VerifyIndex] and [VerifyImages] check that an output
//     shows a container the same filesystem as its input, judged by an
//     applier that shares no code with the optimizer;
//   - [Analyze] and [AnalyzeIndex] measure an image without changing it:
//     per layer its sizes, files and wasted bytes, and for the image the
//     bytes no container sees;
//   - [ProfileImage] finds the files an image reads at start-up.
//
// Reading and writing images by reference (registries, oci: layouts,
// docker-archive: files) is the imageref package's job; the root package
// coldstart puts both together, as the CLI uses them.
package optimize
