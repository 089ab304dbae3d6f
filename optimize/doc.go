// Package optimize is coldstart's pipeline: it reads an image, decides what
// each layer can drop and which start-up files go first, re-encodes the
// layers that may change as lazy-pullable eStargz or zstd:chunked, keeps the
// layers nodes already hold byte-identical, and says layer by layer what it
// did and why.
//
// [Analyze] measures an image without changing it: per layer its sizes,
// files and wasted bytes, and for the image the bytes no container sees.
package optimize
