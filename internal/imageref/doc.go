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
