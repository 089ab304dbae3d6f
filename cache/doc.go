// Package cache remembers past conversions, so that a layer converted once
// is never converted again, and never converted to different bytes.
//
// coldstart runs on every build of every service, and most layers are the
// same from build to build. The optimizer computes a key per converted layer
// (the input DiffID and a fingerprint of everything that shapes the output)
// and asks the cache first; on a miss it converts and Puts the result. Small
// blobs such as serialized layer indexes are cached the same way (PutBytes,
// GetBytes).
//
// Cache is the interface, in the spirit of go-containerregistry's
// pkg/v1/cache: Get(ctx, key) returns a v1.Layer whose Descriptor() carries
// the media type, digest, size and annotations that were Put, and whose
// DiffID() is the DiffID that was Put; Put(ctx, key, layer) stores one. Keys
// are opaque strings of [A-Za-z0-9._:/-], such as "layer/sha256:<hex>" (see
// ValidateKey). A miss is an error wrapping ErrNotFound.
//
// Two stores implement it:
//
//   - Dir, a local directory (DefaultDir is $XDG_CACHE_HOME/coldstart):
//     content-addressed blobs and one small JSON record per key, written by
//     rename, shared safely by concurrent processes (flock), capped in size
//     with least-recently-used eviction (WithMaxSize; List, Usage, Prune for
//     housekeeping). Every Get hashes the blob first: a corrupt, truncated or
//     missing blob makes the entry a miss, which is removed and logged —
//     never an error, never wrong bytes.
//   - Registry, a repository in a registry, like BuildKit's registry cache:
//     blobs in the repository and a cache manifest at a tag mapping keys to
//     them. Its layers are mountable, so pushing the optimized image to
//     another repository of the same registry mounts them rather than
//     uploading them again.
//
// A Put may say what the entry was made from: From(layer, Origin{Image,
// Layer}) or PutBytesFrom. Both stores record the Origin beside the entry
// and List returns it (coldstart cache ls shows it); it is part of neither
// the key nor what Get returns.
//
// Both take functional options (WithLogger, WithMaxSize, WithInsecure,
// WithKeychain, ...); each option's documentation states its default and
// the store it applies to. The package logs through an injected
// *slog.Logger and is otherwise silent.
package cache
