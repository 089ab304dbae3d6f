package imageref

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Read returns what ref points to, narrowed by WithPlatforms if given (see
// SelectPlatforms).
//
// Reading is lazy: layers are fetched or opened when the returned artifact's
// layers are read. Registry artifacts keep using ctx for those fetches.
// Layout artifacts are checked before Read returns: every manifest and config
// is hashed against its digest and every layer blob must be present with its
// size (ErrMissingBlob names the digest); layer contents are verified as they
// are read. Docker archives are read with ggcr's tarball package: one image,
// chosen by the reference's tag or, without one, the only image in the
// archive.
//
// Registry requests that fail for a reason that may pass are retried
// (WithRetry, WithStallTimeout), and a layer download that breaks off
// resumes where it stopped, also when the layer is read after Read returned.
func Read(ctx context.Context, ref Ref, opts ...Option) (*Artifact, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	a, err := read(ctx, ref, o)
	if err != nil {
		return nil, o.secrets.scrubError(fmt.Errorf("reading %s: %w", ref, err))
	}
	return a, nil
}

func read(ctx context.Context, ref Ref, o *options) (*Artifact, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		a   *Artifact
		lr  *layoutReader
		err error
	)
	switch ref.Transport {
	case TransportRegistry:
		a, err = readRemote(ctx, ref, o)
	case TransportOCI:
		a, lr, err = readLayout(ref)
	case TransportDockerArchive:
		a, err = readArchive(ref)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedTransport, ref.Transport)
	}
	if err != nil {
		return nil, err
	}
	a, err = SelectPlatforms(ctx, a, o.platforms)
	if err != nil {
		return nil, err
	}
	if lr != nil {
		if err := lr.check(ctx, a); err != nil {
			return nil, err
		}
	}
	if o.logger.Enabled(ctx, slog.LevelDebug) { // the digest of an archive image may cost a pass over its layers
		if d, err := a.Digest(); err == nil {
			o.logger.DebugContext(ctx, "read image", "ref", ref.String(), "digest", d.String(), "index", a.IsIndex(), "platforms", o.platforms.String())
		}
	}
	return a, nil
}

func readRemote(ctx context.Context, ref Ref, o *options) (*Artifact, error) {
	nr, err := o.nameRef(ref)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(nr, o.remoteOptions(ctx)...)
	if err != nil {
		return nil, notFound(nr, o.explain(err))
	}
	switch mt := desc.MediaType; {
	case mt.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		return &Artifact{Index: idx}, nil
	case mt.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		return &Artifact{Image: img}, nil
	case mt.IsSchema1():
		return nil, fmt.Errorf("manifest %s is Docker schema 1 (%s), which is not supported; rebuild or re-push the image", desc.Digest, mt)
	default:
		return nil, fmt.Errorf("manifest %s has media type %q, which is neither an image nor an index", desc.Digest, mt)
	}
}

func readLayout(ref Ref) (*Artifact, *layoutReader, error) {
	lr, im, err := openLayout(ref.Path)
	if err != nil {
		return nil, nil, err
	}
	d, err := pick(im, ref.Path, ref.Tag)
	if err != nil {
		return nil, nil, err
	}
	a, err := lr.artifact(d)
	if err != nil {
		return nil, nil, err
	}
	return a, lr, nil
}

func readArchive(ref Ref) (*Artifact, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(ref.Path) }
	fi, err := os.Stat(ref.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("archive %s does not exist: %w", ref.Path, err)
	}
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("archive %s is a directory (for an OCI layout, use oci:%s)", ref.Path, ref.Path)
	}
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("reading manifest.json of %s (is it a `docker save` archive?): %w", ref.Path, err)
	}
	var tag *name.Tag
	if ref.Tag == "" {
		switch len(m) {
		case 1:
		case 0:
			return nil, fmt.Errorf("%w: archive %s holds no images", ErrNotFound, ref.Path)
		default:
			return nil, fmt.Errorf("%w: archive %s holds %d images (%s); name one with docker-archive:%s:REF",
				ErrAmbiguous, ref.Path, len(m), repoTags(m), ref.Path)
		}
	} else {
		t, err := name.NewTag(ref.Tag)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrInvalidReference, ref.Tag, err)
		}
		if !archiveHasTag(m, t) {
			return nil, fmt.Errorf("%w: no image tagged %q in archive %s (it has: %s)", ErrNotFound, ref.Tag, ref.Path, repoTags(m))
		}
		tag = &t
	}
	img, err := tarball.Image(opener, tag)
	if err != nil {
		return nil, err
	}
	return &Artifact{Image: img}, nil
}

func archiveHasTag(m tarball.Manifest, want name.Tag) bool {
	for _, d := range m {
		for _, s := range d.RepoTags {
			if t, err := name.NewTag(s); err == nil && t.Name() == want.Name() {
				return true
			}
		}
	}
	return false
}

func repoTags(m tarball.Manifest) string {
	var names []string
	for _, d := range m {
		if len(d.RepoTags) == 0 {
			names = append(names, "untagged "+d.Config)
			continue
		}
		names = append(names, strings.Join(d.RepoTags, " "))
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

// notFound says in words that a registry has no such manifest (a 404, or
// the MANIFEST_UNKNOWN or NAME_UNKNOWN code), wrapping ErrNotFound; other
// errors are returned as they are.
func notFound(nr name.Reference, err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	code := ""
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			code = string(d.Code)
		}
	}
	if code == "" && te.StatusCode != http.StatusNotFound {
		return err
	}
	what := "tagged " + strconv.Quote(nr.Identifier())
	if _, ok := nr.(name.Digest); ok {
		what = nr.Identifier()
	}
	answer := fmt.Sprintf("HTTP %d", te.StatusCode)
	if code != "" {
		answer = code + ", " + answer
	}
	return &notFoundError{
		msg: fmt.Sprintf("%v: no image %s in %s (the registry answered %s)", ErrNotFound, what, nr.Context(), answer),
		err: err,
	}
}

// notFoundError is ErrNotFound with the registry's answer behind it.
type notFoundError struct {
	msg string
	err error
}

func (e *notFoundError) Error() string   { return e.msg }
func (e *notFoundError) Unwrap() []error { return []error{ErrNotFound, e.err} }
