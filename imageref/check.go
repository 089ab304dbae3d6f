package imageref

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// CheckTimeout bounds each request CheckWritable makes.
const CheckTimeout = 5 * time.Second

// CheckWritable checks that ref can be written, before any work is spent on
// what to write: a registry answers and the credentials may push to the
// repository (an upload is started and cancelled); an OCI layout directory
// is a directory that can be written, or can be created; the directory of a
// docker archive can be written, and so can the archive when it exists. It
// makes no retries and bounds each request by CheckTimeout, so a destination
// that is down or refused fails in seconds, with an error that says which
// and why. Nothing is left behind.
func CheckWritable(ctx context.Context, ref Ref, opts ...Option) error {
	o, err := makeOptions(opts)
	if err != nil {
		return err
	}
	switch ref.Transport {
	case TransportRegistry:
		err = o.checkRegistry(ctx, ref)
	case TransportOCI:
		err = checkLayoutDir(ref.Path)
	case TransportDockerArchive:
		err = checkArchiveFile(ref.Path)
	default:
		err = fmt.Errorf("%w: %q", ErrUnsupportedTransport, ref.Transport)
	}
	if err != nil {
		return o.secrets.scrubError(fmt.Errorf("cannot write %s: %w", ref, err))
	}
	return nil
}

func (o *options) checkRegistry(ctx context.Context, ref Ref) error {
	nr, err := o.nameRef(ref)
	if err != nil {
		return err
	}
	rt := o.transport
	if rt == nil {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		if o.insecure {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{}
			}
			t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for with WithInsecure
		}
		rt = t
	}
	rt = &deadlineTransport{ctx: ctx, base: rt, timeout: CheckTimeout}
	if err := remote.CheckPushPermission(nr, o.keychain, rt); err != nil {
		return o.explain(err)
	}
	return nil
}

// deadlineTransport gives every request a deadline and ctx's cancellation:
// ggcr's push check sends its requests with a context of its own.
type deadlineTransport struct {
	ctx     context.Context
	base    http.RoundTripper
	timeout time.Duration
}

func (t *deadlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody ends its request's context when it is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelBody) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// checkLayoutDir checks that dir is a writable directory, or that its
// nearest existing ancestor is one (Write creates the rest).
func checkLayoutDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case err == nil:
		return probeDir(dir)
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	for {
		fi, err := os.Stat(parent)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", parent)
			}
			return probeDir(parent)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		next := filepath.Dir(parent)
		if next == parent {
			return err
		}
		parent = next
	}
}

// checkArchiveFile checks that file's directory can be written, and file
// itself when it exists.
func checkArchiveFile(file string) error {
	if fi, err := os.Stat(file); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory", file)
		}
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(file)
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return probeDir(dir)
}

// probeDir creates and removes a file in dir: the only test of write
// permission that holds for root, read-only mounts and ACLs alike.
func probeDir(dir string) error {
	f, err := os.CreateTemp(dir, ".coldstart-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
