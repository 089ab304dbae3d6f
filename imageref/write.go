package imageref

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Write stores a at ref; with WithPlatforms, it stores that selection of a
// (see SelectPlatforms).
//
// The destination is either complete or left as it was:
//   - registry: in three phases, with a ggcr remote.Pusher: every layer
//     and config blob of every image first (WithJobs at once; a blob the
//     registry has already is not uploaded again), then the manifests of an
//     index's images and nested indexes, children before parents, each by
//     digest, and last the manifest named by ref, which moves the tag. A
//     failed or interrupted write can leave blobs and untagged child
//     manifests behind, which a registry garbage-collects and a later Write
//     reuses; the tag keeps pointing at what it pointed at before. A digest
//     reference must be a's digest. Failed requests are retried (WithRetry,
//     WithStallTimeout); the error names the blob or manifest that could not
//     be uploaded and the registry's answer.
//   - oci:DIR[:TAG]: the layout is created if missing (a directory that
//     exists must be empty or a layout). Blobs are content-addressed: each is
//     written to a temporary file in blobs/ALG, checked against its digest and
//     size, and renamed into place; blobs already present are kept. index.json
//     is replaced last, atomically, under an exclusive lock on DIR: an entry
//     with the same TAG is replaced in place, others are kept byte for byte;
//     without TAG the entry is added without a name (unless an untagged entry
//     with that digest is there already). On failure every file and
//     directory this Write created is removed again.
//   - docker-archive:FILE[:REF]: written to a temporary file next to FILE and
//     renamed over it on success; the temporary file is removed on every
//     error, including cancellation of ctx. Without REF the image is stored
//     without a name. An archive holds a single image, so an index gives
//     ErrIndexNotSupported: select one platform.
func Write(ctx context.Context, ref Ref, a *Artifact, opts ...Option) error {
	o, err := makeOptions(opts)
	if err != nil {
		return fmt.Errorf("writing %s: %w", ref, err)
	}
	if err := write(ctx, ref, a, o); err != nil {
		return o.secrets.scrubError(fmt.Errorf("writing %s: %w", ref, err))
	}
	return nil
}

func write(ctx context.Context, ref Ref, a *Artifact, o *options) error {
	if err := a.validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a, err := SelectPlatforms(ctx, a, o.platforms)
	if err != nil {
		return err
	}
	switch ref.Transport {
	case TransportRegistry:
		err = writeRemote(ctx, ref, a, o)
	case TransportOCI:
		err = writeLayout(ctx, ref, a, o)
	case TransportDockerArchive:
		err = writeArchive(ctx, ref, a, o)
	default:
		return fmt.Errorf("%w: %q", ErrUnsupportedTransport, ref.Transport)
	}
	if err != nil {
		return err
	}
	o.logger.DebugContext(ctx, "wrote image", "ref", ref.String(), "index", a.IsIndex())
	return nil
}

func writeRemote(ctx context.Context, ref Ref, a *Artifact, o *options) error {
	nr, err := o.nameRef(ref)
	if err != nil {
		return err
	}
	if d, ok := nr.(name.Digest); ok {
		have, err := a.Digest()
		if err != nil {
			return err
		}
		if have.String() != d.DigestStr() {
			return fmt.Errorf("%w: destination names digest %s, the image's digest is %s", ErrDigestMismatch, d.DigestStr(), have)
		}
	}
	return pushRemote(ctx, nr, a, o)
}

func writeArchive(ctx context.Context, ref Ref, a *Artifact, o *options) (err error) {
	if a.Index != nil {
		return indexToArchiveError(a)
	}
	var tagRef name.Reference
	if ref.Tag != "" {
		t, err := name.NewTag(ref.Tag)
		if err != nil {
			return fmt.Errorf("%w: %q: %w", ErrInvalidReference, ref.Tag, err)
		}
		tagRef = t
	} else {
		// ggcr writes no RepoTags for a digest reference.
		d, err := a.Image.Digest()
		if err != nil {
			return err
		}
		if tagRef, err = name.NewDigest("untagged@" + d.String()); err != nil {
			return err
		}
	}

	mode := fs.FileMode(0o644)
	fi, err := os.Stat(ref.Path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("%s exists and is not a regular file", ref.Path)
	case err == nil:
		mode = fi.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}

	tmp, err := os.CreateTemp(filepath.Dir(ref.Path), "."+filepath.Base(ref.Path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(ctxWriter{ctx: ctx, w: tmp}, 1<<20)
	if err := tarball.Write(tagRef, countingImage{Image: a.Image, o: o}, bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), ref.Path); err != nil {
		return err
	}
	syncDir(filepath.Dir(ref.Path))
	o.logger.DebugContext(ctx, "wrote docker archive", "path", ref.Path)
	return nil
}

func indexToArchiveError(a *Artifact) error {
	im, err := a.Index.IndexManifest()
	if err != nil {
		return fmt.Errorf("%w: a docker archive holds a single image; select one platform", ErrIndexNotSupported)
	}
	var names []string
	for _, d := range im.Manifests {
		if d.Platform != nil {
			names = append(names, platformString(d.Platform))
		}
	}
	return fmt.Errorf("%w: a docker archive holds a single image, and this is an index of %d manifests (%s); select one platform, e.g. %s",
		ErrIndexNotSupported, len(im.Manifests), strings.Join(names, ", "), firstOr(names, "linux/amd64"))
}

func firstOr(s []string, def string) string {
	for _, x := range s {
		if x != "unknown platform" && !strings.HasPrefix(x, "unknown/") {
			return x
		}
	}
	return def
}

// ctxWriter fails writes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// syncDir flushes a directory's entries (a rename) to disk, best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
