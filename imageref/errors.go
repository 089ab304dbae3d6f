package imageref

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these when the
// condition applies, so callers can test with errors.Is; the message around it
// names the reference, digest or platform involved.
var (
	// ErrInvalidReference: a reference string could not be parsed.
	ErrInvalidReference = errors.New("invalid image reference")
	// ErrUnsupportedTransport: the reference names a transport that this
	// package neither reads nor writes (e.g. "dir:" or "oci-archive:").
	ErrUnsupportedTransport = errors.New("unsupported transport")
	// ErrInvalidPlatform: a platform list could not be parsed.
	ErrInvalidPlatform = errors.New("invalid platform")
	// ErrNotFound: the tag, image or platform asked for is not in the source.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: the reference or platform matches more than one image.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrPlatformMismatch: a single image does not have a requested platform.
	ErrPlatformMismatch = errors.New("platform mismatch")
	// ErrIndexNotSupported: the destination holds single images only
	// (docker-archive) and the artifact is an index.
	ErrIndexNotSupported = errors.New("image index not supported by destination")
	// ErrCycle: nested image indexes refer back to themselves, or are nested
	// deeper than any real image.
	ErrCycle = errors.New("nested image indexes form a cycle")
	// ErrMissingBlob: a blob an OCI layout refers to is not in its blobs/ directory.
	ErrMissingBlob = errors.New("blob missing from OCI layout")
	// ErrDigestMismatch: content did not hash to the digest (or size) that
	// refers to it.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNotLayout: a directory is not an OCI image layout.
	ErrNotLayout = errors.New("not an OCI image layout")
)
