// Package imageref reads and writes container images named by skopeo-style
// references.
//
// Three transports are supported:
//
//	REGISTRY/REPO[:TAG|@DIGEST]   a registry (also written docker://...); auth from the Docker config
//	oci:DIR[:TAG]                 an OCI image layout directory; TAG is the ref.name annotation
//	docker-archive:FILE[:REF]     a `docker save` tarball (single images only)
//
// Parse turns a string into a Ref; Read returns an Artifact (a ggcr v1.Image
// or v1.ImageIndex); Write stores one. Both take functional options whose
// defaults are documented on each option: WithPlatforms narrows a
// multi-platform image to some platforms (see SelectPlatforms and
// ParsePlatforms), WithInsecure, WithKeychain, WithTransport and
// WithUserAgent configure registry access, WithLogger receives debug
// messages (the package is otherwise silent), WithJobs bounds blob
// concurrency.
//
// Registries fail. Requests that fail for a reason that may pass (408, 429,
// 500, 502, 503 and 504 answers, reset or refused connections, stalls) are
// tried again as WithRetry says (DefaultRetry: 4 attempts, 1 s, 2 s and 4 s
// apart); a Retry-After header makes the next attempt wait as long as the
// registry asks, up to a cap; a request that makes no progress for the stall
// timeout (WithStallTimeout) is abandoned and retried; a download that
// breaks off resumes from the first byte not yet read (a Range request).
// When the attempts run out, the error names the blob or manifest, the
// request and the registry's answer. Credentials sent to a registry (Basic
// passwords, Bearer tokens) are kept out of errors and debug messages.
//
// Nothing is lost on a failed write: a layout or archive is either updated
// completely or left byte-for-byte as it was, and a registry tag moves only
// once everything it references is uploaded. Write documents how each
// transport achieves this. SameDestination tells callers when a destination
// would overwrite the source.
//
// Content read from a layout is verified against its digests: manifests and
// configs when Read returns, layers as they are read. Errors name the
// reference and, where one is involved, the digest or platform, and wrap the
// sentinel errors declared in this package (ErrMissingBlob, ErrAmbiguous,
// ...), so callers can use errors.Is.
//
// The package uses go-containerregistry's image model throughout and ggcr's
// remote and tarball packages for registries and docker archives; OCI layouts
// are read and written here, to verify digests and to update index.json
// atomically.
package imageref
