package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The cache manifest of a registry store.
const (
	// ArtifactType is the artifactType of a cache manifest.
	ArtifactType = "application/vnd.coldstart.cache.v1"
	// AnnotationKey, on each layer descriptor of a cache manifest, is the
	// key the blob is stored under.
	AnnotationKey = "dev.coldstart.cache.key"
	// AnnotationDiffID is the DiffID that was Put with the blob.
	AnnotationDiffID = "dev.coldstart.cache.diffid"
	// AnnotationCreated is when the entry was Put (RFC 3339, UTC); the
	// oldest entries are dropped first past WithMaxEntries.
	AnnotationCreated = "dev.coldstart.cache.created"
	// AnnotationFromImage and AnnotationFromLayer say what the entry was
	// made from (Origin), when its Put said.
	AnnotationFromImage = "dev.coldstart.cache.from.image"
	AnnotationFromLayer = "dev.coldstart.cache.from.layer"

	annotationPrefix = "dev.coldstart.cache."
)

// emptyConfig is the config blob of a cache manifest: "{}" as
// application/vnd.oci.empty.v1+json, as OCI artifacts without a config use.
var emptyConfig = static.NewLayer([]byte("{}"), types.OCIEmptyJSON)

// Registry is a cache in a registry repository, like BuildKit's registry
// cache: the blobs live in the repository, and a cache manifest at a tag
// maps keys to them.
//
// The cache manifest is an OCI image manifest
// (application/vnd.oci.image.manifest.v1+json) with artifactType
// ArtifactType, the empty config (application/vnd.oci.empty.v1+json, "{}")
// and one layer descriptor per entry, sorted by key: the descriptor that
// was Put (media type, digest, size, annotations), plus the annotations
// AnnotationKey, AnnotationDiffID and AnnotationCreated (and, for an entry
// Put with an Origin, AnnotationFromImage and AnnotationFromLayer). Being
// an image manifest, it keeps every blob it names from the registry's
// garbage collector, and registries that accept OCI artifacts
// (distribution 2.8 and later, Harbor, ECR, GAR, ACR, GHCR, Quay) store it.
//
// Get returns a layer that is a *remote.MountableLayer: pushing an image
// made of it to another repository of the same registry with ggcr's remote
// package mounts the blob across repositories instead of uploading it.
//
// Put uploads the blob, then updates the cache manifest by reading it,
// merging the entry in and writing it back. Registries offer no
// compare-and-swap on tags, so Put reads the manifest again after a short
// wait and, if a concurrent writer's update replaced its entry, merges and
// writes again (with backoff, up to a bounded number of attempts, then
// ErrConflict). Every Put also re-adds any entry this Registry value put
// earlier that has gone missing. When the registry refuses the manifest
// because a blob it names is gone (deleted by hand, say), Put drops the
// entries of that blob and tries again. A lost entry only ever costs a
// later miss, never wrong output.
//
// A Registry is safe for concurrent use; its Puts update the manifest one
// at a time.
type Registry struct {
	tag    name.Tag
	o      *options
	ropts  []remote.Option
	puller *remote.Puller
	pusher *remote.Pusher

	writeMu sync.Mutex // held while updating the cache manifest

	mu           sync.Mutex
	cached       *v1.Manifest // last manifest read, and its digest
	cachedDigest v1.Hash
	mine         map[string]v1.Descriptor // entries this value put, by key
	configOK     bool
}

var _ Cache = (*Registry)(nil)

// NewRegistry opens the registry store whose cache manifest is at ref,
// REGISTRY/REPO:TAG (a missing tag means "latest"). Nothing is contacted
// until the first Get or Put. Options: WithInsecure, WithKeychain,
// WithTransport, WithUserAgent, WithMaxEntries, WithLogger.
func NewRegistry(ref string, opts ...Option) (*Registry, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if strings.Contains(ref, "@") {
		return nil, fmt.Errorf("cache.NewRegistry: %q: the cache manifest needs a tag, not a digest", ref)
	}
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	tag, err := name.NewTag(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("cache.NewRegistry: %w", err)
	}
	return newRegistry(tag, o)
}

// NewRegistryFromTag is NewRegistry for a parsed tag (its registry's
// scheme, e.g. from name.Insecure, is kept).
func NewRegistryFromTag(tag name.Tag, opts ...Option) (*Registry, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return newRegistry(tag, o)
}

func newRegistry(tag name.Tag, o *options) (*Registry, error) {
	if err := o.check("registry", o.dirOnly); err != nil {
		return nil, err
	}
	r := &Registry{tag: tag, o: o, mine: map[string]v1.Descriptor{}}
	r.ropts = []remote.Option{
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithTransport(o.httpTransport()),
		remote.WithUserAgent(o.userAgent),
	}
	var err error
	if r.puller, err = remote.NewPuller(r.ropts...); err != nil {
		return nil, err
	}
	if r.pusher, err = remote.NewPusher(r.ropts...); err != nil {
		return nil, err
	}
	return r, nil
}

// Tag returns the tag of the cache manifest.
func (r *Registry) Tag() name.Tag { return r.tag }

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// fetch reads the cache manifest; nil if the tag does not exist.
func (r *Registry) fetch(ctx context.Context) (*v1.Manifest, error) {
	d, err := r.puller.Get(ctx, r.tag)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", r.tag, err)
	}
	if m.ArtifactType != ArtifactType {
		return nil, fmt.Errorf("%s is not a coldstart cache manifest (artifactType %q, want %q); choose another tag", r.tag, m.ArtifactType, ArtifactType)
	}
	r.mu.Lock()
	r.cached, r.cachedDigest = &m, d.Digest
	r.mu.Unlock()
	return &m, nil
}

// current returns the cache manifest, reusing the last one read when the
// tag still points at it (one HEAD request).
func (r *Registry) current(ctx context.Context) (*v1.Manifest, error) {
	desc, err := r.puller.Head(ctx, r.tag)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	m, d := r.cached, r.cachedDigest
	r.mu.Unlock()
	if m != nil && d == desc.Digest {
		return m, nil
	}
	return r.fetch(ctx)
}

func findEntry(m *v1.Manifest, key string) (v1.Descriptor, bool) {
	if m == nil {
		return v1.Descriptor{}, false
	}
	for _, l := range m.Layers {
		if l.Annotations[AnnotationKey] == key {
			return l, true
		}
	}
	return v1.Descriptor{}, false
}

// Get returns the layer stored under key, or an error wrapping ErrNotFound.
// It reads the cache manifest (one HEAD request when it has not changed
// since the last read) and checks that the blob exists with the recorded
// size (one HEAD request); an entry whose blob is gone or has another size
// is dropped from the manifest (best effort), logged, and a miss.
//
// The layer is a *remote.MountableLayer from the cache repository (see
// Registry) whose bytes are fetched with ctx when read, and checked against
// the digest and size.
func (r *Registry) Get(ctx context.Context, key string) (v1.Layer, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	m, err := r.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading cache manifest %s: %w", r.tag, err)
	}
	e, ok := findEntry(m, key)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	desc, diffID, err := splitEntry(e)
	if err != nil {
		return nil, r.dropEntry(ctx, key, e.Digest, err.Error())
	}
	ref := r.tag.Context().Digest(desc.Digest.String())
	l, err := r.puller.Layer(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("reading cache entry %s: %w", key, err)
	}
	size, err := l.Size()
	if isNotFound(err) {
		return nil, r.dropEntry(ctx, key, e.Digest, "blob "+desc.Digest.String()+" missing from "+r.tag.RepositoryStr())
	}
	if err != nil {
		return nil, fmt.Errorf("reading cache entry %s: checking blob %s: %w", key, desc.Digest, err)
	}
	if size != desc.Size {
		return nil, r.dropEntry(ctx, key, e.Digest, fmt.Sprintf("blob %s has %d bytes, want %d", desc.Digest, size, desc.Size))
	}
	r.o.logger.DebugContext(ctx, "cache hit", "key", key, "digest", desc.Digest.String(), "size", desc.Size, "repository", r.tag.RepositoryStr())
	sl := &storedLayer{desc: desc, diffID: diffID, open: l.Compressed}
	return &remote.MountableLayer{Layer: sl, Reference: ref}, nil
}

// splitEntry separates a manifest entry into the descriptor that was Put
// and its DiffID.
func splitEntry(e v1.Descriptor) (v1.Descriptor, v1.Hash, error) {
	diffID, err := v1.NewHash(e.Annotations[AnnotationDiffID])
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, fmt.Errorf("bad %s annotation: %w", AnnotationDiffID, err)
	}
	if !validHex(e.Digest) || e.Size < 0 {
		return v1.Descriptor{}, v1.Hash{}, fmt.Errorf("bad descriptor %s (%d bytes)", e.Digest, e.Size)
	}
	d := e
	d.Annotations = nil
	for k, v := range e.Annotations {
		if strings.HasPrefix(k, annotationPrefix) {
			continue
		}
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[k] = v
	}
	return d, diffID, nil
}

// dropEntry logs an unusable entry and removes it from the cache manifest
// if it is still there with that digest (one attempt: a failure only
// leaves the entry for the next Get to find). It returns a miss.
func (r *Registry) dropEntry(ctx context.Context, key string, digest v1.Hash, reason string) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	if d, ok := r.mine[key]; ok && d.Digest == digest {
		delete(r.mine, key)
	}
	r.mu.Unlock()
	miss := fmt.Errorf("%w: %s (entry unusable: %s)", ErrNotFound, key, reason)
	m, err := r.fetch(ctx)
	if err == nil {
		if e, ok := findEntry(m, key); ok && e.Digest == digest {
			keep := slices.DeleteFunc(slices.Clone(m.Layers), func(d v1.Descriptor) bool {
				return d.Annotations[AnnotationKey] == key
			})
			err = r.write(ctx, keep)
		}
	}
	if err != nil {
		r.o.logger.WarnContext(ctx, "cache entry unusable; not removed", "key", key, "reason", reason, "tag", r.tag.String(), "err", err)
		return miss
	}
	r.o.logger.WarnContext(ctx, "cache entry unusable; removed", "key", key, "reason", reason, "tag", r.tag.String())
	return miss
}

// Put uploads l's blob to the cache repository (a layer that is a
// *remote.MountableLayer of the same registry is mounted) and records it
// under key in the cache manifest; see Registry for how concurrent writers
// are reconciled. The layer's annotations must not use the
// "dev.coldstart.cache." prefix.
func (r *Registry) Put(ctx context.Context, key string, l v1.Layer) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := r.put(ctx, key, l); err != nil {
		return fmt.Errorf("caching %s in %s: %w", key, r.tag, err)
	}
	return nil
}

func (r *Registry) put(ctx context.Context, key string, l v1.Layer) error {
	from := originOf(l)
	l = unwrapOrigin(l) // a *remote.MountableLayer stays one, and mounts
	desc, err := descriptorOf(l)
	if err != nil {
		return fmt.Errorf("reading layer descriptor: %w", err)
	}
	for k := range desc.Annotations {
		if strings.HasPrefix(k, annotationPrefix) {
			return fmt.Errorf("layer %s: annotation %s uses the prefix reserved for the cache manifest", desc.Digest, k)
		}
	}
	diffID, err := l.DiffID()
	if err != nil {
		return fmt.Errorf("reading layer %s DiffID: %w", desc.Digest, err)
	}
	if err := r.upload(ctx, l); err != nil {
		return fmt.Errorf("uploading layer %s: %w", desc.Digest, err)
	}
	if err := r.ensureConfig(ctx); err != nil {
		return err
	}
	e := *desc
	if e.Annotations == nil {
		e.Annotations = map[string]string{}
	}
	e.Annotations[AnnotationKey] = key
	e.Annotations[AnnotationDiffID] = diffID.String()
	e.Annotations[AnnotationCreated] = r.o.now().UTC().Format(time.RFC3339Nano)
	if from != nil {
		for k, v := range map[string]string{AnnotationFromImage: from.Image, AnnotationFromLayer: from.Layer} {
			if v != "" {
				e.Annotations[k] = v
			}
		}
	}
	r.mu.Lock()
	r.mine[key] = e
	r.mu.Unlock()
	r.o.logger.DebugContext(ctx, "cache put", "key", key, "digest", desc.Digest.String(), "size", desc.Size, "repository", r.tag.RepositoryStr())
	return r.sync(ctx, key, l)
}

// upload uploads l to the cache repository, unless this value did before.
// ggcr's Pusher remembers the outcome of every blob upload, failures
// included, so after a failure the next upload gets a new Pusher.
func (r *Registry) upload(ctx context.Context, l v1.Layer) error {
	r.mu.Lock()
	p := r.pusher
	r.mu.Unlock()
	err := p.Upload(ctx, r.tag.Repository, l)
	if err != nil {
		if np, nerr := remote.NewPusher(r.ropts...); nerr == nil {
			r.mu.Lock()
			if r.pusher == p {
				r.pusher = np
			}
			r.mu.Unlock()
		}
	}
	return err
}

func (r *Registry) ensureConfig(ctx context.Context) error {
	r.mu.Lock()
	ok := r.configOK
	r.mu.Unlock()
	if ok {
		return nil
	}
	if err := r.upload(ctx, emptyConfig); err != nil {
		return fmt.Errorf("uploading the cache manifest's config: %w", err)
	}
	r.mu.Lock()
	r.configOK = true
	r.mu.Unlock()
	return nil
}

// missing returns the entries this value put that m lacks, sorted by key.
// With strict, key's entry must have the digest that was Put (so that a
// Put replaces an older value); otherwise any entry under a key will do (a
// concurrent writer may legitimately have replaced it). When m is full (see
// WithMaxEntries) only key is checked: the others may have been dropped as
// the oldest, and are forgotten.
func (r *Registry) missing(m *v1.Manifest, key string, strict bool) []v1.Descriptor {
	r.mu.Lock()
	defer r.mu.Unlock()
	full := m != nil && len(m.Layers) >= r.o.maxEntries
	var out []v1.Descriptor
	for _, k := range slices.Sorted(maps.Keys(r.mine)) {
		want := r.mine[k]
		e, ok := findEntry(m, k)
		switch {
		case ok && (k != key || !strict || e.Digest == want.Digest):
		case k != key && full:
			delete(r.mine, k)
		default:
			out = append(out, want)
		}
	}
	return out
}

// sync makes the cache manifest hold every entry this value put. l is the
// layer just Put under key, re-uploaded if the registry says it lost it.
func (r *Registry) sync(ctx context.Context, key string, l v1.Layer) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	backoff := 20 * time.Millisecond
	gone := map[v1.Hash]bool{} // blobs the registry does not have
	for attempt := 1; attempt <= r.o.attempts; attempt++ {
		start := time.Now()
		m, err := r.fetch(ctx)
		if err != nil {
			return fmt.Errorf("reading cache manifest: %w", err)
		}
		add := r.missing(m, key, true)
		if len(add) == 0 {
			return nil
		}
		err = r.write(ctx, r.merge(m, add, gone))
		if unknown := unknownBlobs(err); len(unknown) > 0 {
			// Another writer's entry lost its blob, or a blob upload
			// raced with another (registries have been seen to answer
			// HEAD before a concurrent upload's blob is linked): upload
			// ours again, drop the others.
			r.o.logger.DebugContext(ctx, "registry rejected the cache manifest for missing blobs; retrying",
				"tag", r.tag.String(), "blobs", fmt.Sprint(unknown), "attempt", attempt)
			if err := r.recoverBlobs(ctx, unknown, l, gone); err != nil {
				return err
			}
			if err := sleep(ctx, backoff+rand.N(backoff)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("writing cache manifest: %w", err)
		}
		// Give a writer that read the manifest before our write the time
		// to write its own, then check that ours survived.
		wait := max(r.o.settle, 2*time.Since(start))
		if err := sleep(ctx, wait+rand.N(wait/2+1)); err != nil {
			return err
		}
		m, err = r.fetch(ctx)
		if err != nil {
			return fmt.Errorf("reading cache manifest: %w", err)
		}
		lost := r.missing(m, key, false)
		if len(lost) == 0 {
			return nil
		}
		r.o.logger.DebugContext(ctx, "cache manifest entries lost to a concurrent writer; retrying",
			"tag", r.tag.String(), "lost", len(lost), "attempt", attempt)
		if err := sleep(ctx, backoff+rand.N(backoff)); err != nil {
			return err
		}
		backoff = min(2*backoff, time.Second)
	}
	return fmt.Errorf("%w: entries still missing after %d attempts", ErrConflict, r.o.attempts)
}

// unknownBlobs returns the digests a registry named when it rejected a
// manifest for referring to blobs it does not have.
func unknownBlobs(err error) []v1.Hash {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return nil
	}
	var out []v1.Hash
	for _, d := range terr.Errors {
		if d.Code != transport.ManifestBlobUnknownErrorCode && d.Code != transport.BlobUnknownErrorCode {
			continue
		}
		s, _ := d.Detail.(string)
		if m, ok := d.Detail.(map[string]any); ok {
			s, _ = m["digest"].(string)
		}
		if h, err := v1.NewHash(s); err == nil {
			out = append(out, h)
		}
	}
	return out
}

// recoverBlobs handles blobs the registry said it lacks. A registry can say
// so transiently, while a concurrent upload of the same blob is committed
// (distribution rewrites the blob's link in place), so each is checked: a
// missing config or l is uploaded again (with a new Pusher, which does not
// remember the earlier upload); entries of other missing blobs are marked
// gone, so that merge drops them.
func (r *Registry) recoverBlobs(ctx context.Context, unknown []v1.Hash, l v1.Layer, gone map[v1.Hash]bool) error {
	cfg, _ := emptyConfig.Digest()
	ld, _ := l.Digest()
	for _, h := range unknown {
		ok, err := r.blobExists(ctx, h)
		if err != nil {
			return fmt.Errorf("checking blob %s: %w", h, err)
		}
		if ok {
			continue
		}
		switch h {
		case cfg, ld:
			np, err := remote.NewPusher(r.ropts...)
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.pusher = np
			r.mu.Unlock()
			what := emptyConfig
			if h == ld {
				what = l
			}
			if err := r.upload(ctx, what); err != nil {
				return fmt.Errorf("uploading blob %s again: %w", h, err)
			}
		default:
			gone[h] = true
		}
	}
	return nil
}

func (r *Registry) blobExists(ctx context.Context, h v1.Hash) (bool, error) {
	l, err := r.puller.Layer(ctx, r.tag.Context().Digest(h.String()))
	if err != nil {
		return false, err
	}
	_, err = l.Size()
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// merge returns m's entries with add replacing those under the same keys,
// trimmed to the entry cap: the entries Put longest ago go first, entries
// of add last. Entries whose blob is gone are left out. Entries of this
// value that are trimmed or gone are forgotten.
func (r *Registry) merge(m *v1.Manifest, add []v1.Descriptor, gone map[v1.Hash]bool) []v1.Descriptor {
	adding := map[string]bool{}
	add = slices.DeleteFunc(slices.Clone(add), func(e v1.Descriptor) bool {
		if gone[e.Digest] {
			r.mu.Lock()
			delete(r.mine, e.Annotations[AnnotationKey])
			r.mu.Unlock()
			return true
		}
		return false
	})
	for _, e := range add {
		adding[e.Annotations[AnnotationKey]] = true
	}
	var old []v1.Descriptor
	if m != nil {
		for _, e := range m.Layers {
			if !adding[e.Annotations[AnnotationKey]] && !gone[e.Digest] {
				old = append(old, e)
			}
		}
	}
	over := len(old) + len(add) - r.o.maxEntries
	if over <= 0 {
		return append(old, add...)
	}
	byCreated := func(a, b v1.Descriptor) int {
		return strings.Compare(a.Annotations[AnnotationCreated], b.Annotations[AnnotationCreated])
	}
	slices.SortStableFunc(old, byCreated)
	all := append(old, slices.SortedStableFunc(slices.Values(add), byCreated)...)
	r.mu.Lock()
	for _, e := range all[:over] {
		k := e.Annotations[AnnotationKey]
		if d, ok := r.mine[k]; ok && d.Digest == e.Digest {
			delete(r.mine, k)
		}
	}
	r.mu.Unlock()
	return all[over:]
}

// rawManifest is a manifest to push as is.
type rawManifest struct {
	raw []byte
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// write pushes a cache manifest holding entries (sorted by key) to the tag.
func (r *Registry) write(ctx context.Context, entries []v1.Descriptor) error {
	entries = slices.Clone(entries)
	slices.SortStableFunc(entries, func(a, b v1.Descriptor) int {
		return strings.Compare(a.Annotations[AnnotationKey], b.Annotations[AnnotationKey])
	})
	cfg, err := emptyConfig.Digest()
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []v1.Descriptor{}
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Digest: cfg, Size: 2},
		Layers:        entries,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return err
	}
	r.mu.Lock()
	p := r.pusher
	r.mu.Unlock()
	return p.Put(ctx, r.tag, rawManifest{raw: bytes.TrimSuffix(buf.Bytes(), []byte("\n"))})
}

// List returns the entries of the cache manifest sorted by key; LastUsed is
// when each was Put.
func (r *Registry) List(ctx context.Context) ([]EntryInfo, error) {
	m, err := r.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading cache manifest %s: %w", r.tag, err)
	}
	var out []EntryInfo
	if m == nil {
		return out, nil
	}
	for _, e := range m.Layers {
		t, _ := time.Parse(time.RFC3339Nano, e.Annotations[AnnotationCreated])
		ei := EntryInfo{Key: e.Annotations[AnnotationKey], Digest: e.Digest, Size: e.Size, MediaType: e.MediaType, LastUsed: t}
		if from := (Origin{Image: e.Annotations[AnnotationFromImage], Layer: e.Annotations[AnnotationFromLayer]}); !from.IsZero() {
			ei.From = &from
		}
		out = append(out, ei)
	}
	slices.SortFunc(out, func(a, b EntryInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
