package lazypull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Kind says what a request fetched.
type Kind string

// Request kinds.
const (
	KindManifest Kind = "manifest"
	KindConfig   Kind = "config"
	KindFooter   Kind = "footer"
	KindTOC      Kind = "toc"
	KindPrefetch Kind = "prefetch"
	KindChunk    Kind = "chunk"
	KindBlob     Kind = "blob"
)

// Fetch is one request the client made.
type Fetch struct {
	Kind Kind `json:"kind"`
	// Layer is the layer's position in the manifest, -1 for the manifest
	// and the config.
	Layer int `json:"layer"`
	// Range is the byte range asked for; for whole blobs, 0 and the size.
	Range Range `json:"range"`
	// Path is the start-up file a KindChunk request was made for.
	Path string `json:"path,omitempty"`
}

// Limits on what the client reads into memory.
const (
	maxManifestBytes = 4 << 20
	maxConfigBytes   = 16 << 20
)

// manifestAccept lists the manifest media types the client asks for.
var manifestAccept = []types.MediaType{
	types.OCIImageIndex, types.DockerManifestList, types.OCIManifestSchema1, types.DockerManifestSchema2,
}

// client is a minimal registry client that counts every request and byte.
type client struct {
	hc   *http.Client
	repo name.Repository
	ref  name.Reference
	base string
	log  []Fetch
	mu   sync.Mutex

	requests atomic.Int64
	bytes    atomic.Int64
}

// newClient parses ref and sets up authentication: the registry ping (and
// a token request, if the registry wants one) happen here, before any
// timing starts, as a node that has pulled before has them cached.
func newClient(ctx context.Context, ref string, o *options) (*client, error) {
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", ref, err)
	}
	repo := r.Context()
	auth, err := o.keychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("resolving credentials for %s: %w", repo, err)
	}
	base := o.transport
	if base == nil {
		base = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", repo.Registry, err)
	}
	return &client{
		hc:   &http.Client{Transport: rt},
		repo: repo,
		ref:  r,
		base: fmt.Sprintf("%s://%s/v2/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr()),
	}, nil
}

// close releases idle connections.
func (c *client) close() { c.hc.CloseIdleConnections() }

// countingBody counts the bytes read from a response body.
type countingBody struct {
	io.ReadCloser
	c *client
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.bytes.Add(int64(n))
	return n, err
}

// get sends one GET and returns the response whose body counts the bytes.
// rng, when not nil, asks for a byte range and requires a 206 answer.
func (c *client) get(ctx context.Context, f Fetch, path string, rng *Range, accept []types.MediaType) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	for _, a := range accept {
		req.Header.Add("Accept", string(a))
	}
	if rng != nil {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", rng.Offset, rng.End()-1))
	}
	c.requests.Add(1)
	c.mu.Lock()
	c.log = append(c.log, f)
	c.mu.Unlock()
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	want := http.StatusOK
	if rng != nil {
		want = http.StatusPartialContent
	}
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if rng != nil && resp.StatusCode == http.StatusOK {
			return nil, fmt.Errorf("GET %s: the registry ignores range requests (200 instead of 206): lazy pulling is impossible from it", path)
		}
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

// readAll GETs path and returns its body, at most limit bytes, checked
// against want when want is set.
func (c *client) readAll(ctx context.Context, f Fetch, path string, accept []types.MediaType, limit int64, want v1.Hash) ([]byte, string, error) {
	resp, err := c.get(ctx, f, path, nil, accept)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("GET %s: larger than %d bytes", path, limit)
	}
	c.mu.Lock()
	for i := len(c.log) - 1; i >= 0; i-- {
		if c.log[i] == f {
			c.log[i].Range = Range{Length: int64(len(b))}
			break
		}
	}
	c.mu.Unlock()
	if want.Hex != "" {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); want.Algorithm != "sha256" || got != want.Hex {
			return nil, "", fmt.Errorf("GET %s: content hashes to sha256:%s, want %s", path, got, want)
		}
	}
	return b, resp.Header.Get("Content-Type"), nil
}

// image is what the manifest and config say.
type image struct {
	manifest *v1.Manifest
	config   *v1.ConfigFile
}

// image fetches the manifest (and, for an index, the platform's manifest)
// and the config.
func (c *client) image(ctx context.Context, o *options) (*image, error) {
	var want v1.Hash
	if d, ok := c.ref.(name.Digest); ok {
		want, _ = v1.NewHash(d.DigestStr())
	}
	raw, ct, err := c.readAll(ctx, Fetch{Kind: KindManifest, Layer: -1}, "/manifests/"+c.ref.Identifier(), manifestAccept, maxManifestBytes, want)
	if err != nil {
		return nil, err
	}
	mt := types.MediaType(ct)
	if mt.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parsing the index: %w", err)
		}
		desc, err := pickPlatform(idx, o.platform)
		if err != nil {
			return nil, err
		}
		raw, _, err = c.readAll(ctx, Fetch{Kind: KindManifest, Layer: -1, Range: Range{Length: desc.Size}},
			"/manifests/"+desc.Digest.String(), manifestAccept, maxManifestBytes, desc.Digest)
		if err != nil {
			return nil, err
		}
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing the manifest: %w", err)
	}
	cfgRaw, _, err := c.readAll(ctx, Fetch{Kind: KindConfig, Layer: -1, Range: Range{Length: m.Config.Size}},
		"/blobs/"+m.Config.Digest.String(), nil, maxConfigBytes, m.Config.Digest)
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, fmt.Errorf("parsing the config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config lists %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	return &image{manifest: m, config: cfg}, nil
}

// pickPlatform chooses the image of an index.
func pickPlatform(idx *v1.IndexManifest, want *v1.Platform) (v1.Descriptor, error) {
	var imgs []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.MediaType.IsImage() {
			imgs = append(imgs, d)
		}
	}
	if want == nil {
		if len(imgs) == 1 {
			return imgs[0], nil
		}
		want = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	for _, d := range imgs {
		if p := d.Platform; p != nil && p.OS == want.OS && p.Architecture == want.Architecture &&
			(want.Variant == "" || p.Variant == want.Variant) {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("the index has no image for %s", want)
}

// blobReaderAt reads a blob with range requests, one per ReadAt.
type blobReaderAt struct {
	ctx    context.Context
	c      *client
	digest v1.Hash
	layer  int
	kinds  []Kind // kind of each successive read; the last repeats
	n      int
}

func (b *blobReaderAt) ReadAt(p []byte, off int64) (int, error) {
	kind := b.kinds[min(b.n, len(b.kinds)-1)]
	b.n++
	rng := Range{Offset: off, Length: int64(len(p))}
	resp, err := b.c.get(b.ctx, Fetch{Kind: kind, Layer: b.layer, Range: rng}, "/blobs/"+b.digest.String(), &rng, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.ReadFull(resp.Body, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// fetches returns a copy of the request log.
func (c *client) fetches() []Fetch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Fetch(nil), c.log...)
}
