package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coldstart-dev/coldstart/internal/ctxio"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Dir is a cache in a local directory, safe to share between goroutines and
// between processes.
//
// Layout:
//
//	DIR/lock                     flock(2) lock file
//	DIR/blobs/sha256/<hex>       blobs, content-addressed
//	DIR/keys/<sha256(key)>.json  one record per key: key, descriptor, DiffID,
//	                             and what the entry was made from (Origin)
//	DIR/tmp/                     files being written
//
// Every file is written to DIR/tmp and renamed into place, so readers see
// either the old or the new file. Puts hold a shared lock while they write;
// eviction, Prune and the removal of corrupt entries hold it exclusively,
// so they never remove a blob whose record is still being written (and
// every file left in DIR/tmp under the exclusive lock is a leftover of a
// crashed process, and removed). Reads take no lock: they verify instead.
//
// A record's modification time is its last use: Put sets it, Get touches
// it, and eviction removes the least recently used entries first.
type Dir struct {
	root string
	o    *options
}

var _ Cache = (*Dir)(nil)

// maxRecordSize bounds what is read of a key record; records are well under
// a kilobyte.
const maxRecordSize = 1 << 20

// DefaultDir is where the directory store lives by default:
// $XDG_CACHE_HOME/coldstart, or ~/.cache/coldstart when XDG_CACHE_HOME is
// unset or not absolute.
func DefaultDir() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "coldstart"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w (set XDG_CACHE_HOME or pass a directory)", err)
	}
	return filepath.Join(home, ".cache", "coldstart"), nil
}

// NewDir opens the directory store at dir, creating it if needed. Options:
// WithMaxSize, WithLogger.
func NewDir(dir string, opts ...Option) (*Dir, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := o.check("directory", o.registryOnly); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("cache.NewDir: empty directory name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening cache directory %s: %w", dir, err)
	}
	d := &Dir{root: abs, o: o}
	for _, sub := range []string{filepath.Join("blobs", "sha256"), "keys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("opening cache directory %s: %w", dir, err)
		}
	}
	return d, nil
}

// Path returns the store's directory (absolute).
func (d *Dir) Path() string { return d.root }

func (d *Dir) lockPath() string { return filepath.Join(d.root, "lock") }
func (d *Dir) tmpDir() string   { return filepath.Join(d.root, "tmp") }
func (d *Dir) keysDir() string  { return filepath.Join(d.root, "keys") }
func (d *Dir) blobsDir() string { return filepath.Join(d.root, "blobs", "sha256") }

func (d *Dir) blobPath(hexDigest string) string { return filepath.Join(d.blobsDir(), hexDigest) }

// recordName is the file name of key's record.
func recordName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:]) + ".json"
}

func (d *Dir) recordPath(key string) string { return filepath.Join(d.keysDir(), recordName(key)) }

// record is what DIR/keys/<name>.json holds.
type record struct {
	Key        string        `json:"key"`
	Descriptor v1.Descriptor `json:"descriptor"`
	DiffID     v1.Hash       `json:"diffID"`
	// From is what the entry was made from (see From); not part of what
	// Get returns.
	From *Origin `json:"from,omitempty"`
}

func parseRecord(raw []byte) (*record, error) {
	var r record
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	if err := ValidateKey(r.Key); err != nil {
		return nil, err
	}
	if !validHex(r.Descriptor.Digest) {
		return nil, fmt.Errorf("digest %q is not sha256", r.Descriptor.Digest)
	}
	if r.Descriptor.Size < 0 {
		return nil, fmt.Errorf("negative size %d", r.Descriptor.Size)
	}
	if r.DiffID.Algorithm == "" || r.DiffID.Hex == "" {
		return nil, errors.New("no DiffID")
	}
	return &r, nil
}

func validHex(h v1.Hash) bool {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return false
	}
	_, err := hex.DecodeString(h.Hex)
	return err == nil && strings.ToLower(h.Hex) == h.Hex
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRecordSize {
		return nil, fmt.Errorf("%s: record larger than %d bytes", path, maxRecordSize)
	}
	return b, nil
}

// Get returns the layer stored under key, after checking that its blob has
// the recorded size and digest. An entry whose record or blob is corrupt,
// truncated or missing is removed, logged (warn) and reported as a miss:
// the error wraps ErrNotFound.
//
// The returned layer holds the verified blob file open, so eviction by
// another process cannot take its bytes away; its Compressed() checks size
// and digest again as it is read. The file is closed when the layer is
// garbage collected, or by the layer's Close method (it implements
// io.Closer).
func (d *Dir) Get(ctx context.Context, key string) (v1.Layer, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rp := d.recordPath(key)
	raw, err := readSmall(rp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("reading cache entry %s: %w", key, err)
	}
	rec, err := parseRecord(raw)
	if err == nil && rec.Key != key {
		err = fmt.Errorf("record names key %q", rec.Key)
	}
	if err != nil {
		return nil, d.drop(ctx, key, raw, "", 0, "unreadable record: "+err.Error())
	}
	h := rec.Descriptor.Digest.Hex
	f, err := os.Open(d.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, d.drop(ctx, key, raw, h, rec.Descriptor.Size, "blob "+rec.Descriptor.Digest.String()+" missing")
	}
	if err != nil {
		return nil, fmt.Errorf("reading cache entry %s: %w", key, err)
	}
	if reason, err := verifyFile(ctx, f, rec.Descriptor.Digest, rec.Descriptor.Size); err != nil || reason != "" {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading cache entry %s: %w", key, err)
		}
		return nil, d.drop(ctx, key, raw, h, rec.Descriptor.Size, reason)
	}
	now := d.o.now()
	_ = os.Chtimes(rp, now, now) // recency; a vanished record is fine
	d.o.logger.DebugContext(ctx, "cache hit", "key", key, "digest", rec.Descriptor.Digest.String(), "size", rec.Descriptor.Size)
	fl := &fileLayer{f: f}
	fl.storedLayer = storedLayer{desc: rec.Descriptor, diffID: rec.DiffID, open: fl.open}
	return fl, nil
}

// verifyFile hashes f from its start. reason is non-empty when the content
// is not want (size first, then digest); err is an I/O error or ctx's.
func verifyFile(ctx context.Context, f *os.File, want v1.Hash, size int64) (reason string, err error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.Size() != size {
		return fmt.Sprintf("blob %s has %d bytes, want %d", want, fi.Size(), size), nil
	}
	h := sha256.New()
	n, err := io.Copy(h, ctxio.Reader(ctx, io.NewSectionReader(f, 0, size+1)))
	if err != nil {
		return "", err
	}
	if n != size {
		return fmt.Sprintf("blob %s has %d bytes, want %d", want, n, size), nil
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fmt.Sprintf("blob %s hashes to sha256:%s", want, got), nil
	}
	return "", nil
}

// fileLayer is a layer read from an open, verified blob file.
type fileLayer struct {
	storedLayer
	f    *os.File
	once sync.Once
}

func (l *fileLayer) open() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(l.f, 0, l.desc.Size)), nil
}

// Close releases the blob file; Compressed and Uncompressed fail after it.
func (l *fileLayer) Close() error {
	var err error
	l.once.Do(func() { err = l.f.Close() })
	return err
}

// drop handles an unusable entry: under the exclusive lock, if the record
// still holds raw and the blob (if any) is still bad, it removes the record
// and the bad blob, and logs why. It always returns a miss.
func (d *Dir) drop(ctx context.Context, key string, raw []byte, blobHex string, size int64, reason string) error {
	miss := fmt.Errorf("%w: %s (entry unusable: %s)", ErrNotFound, key, reason)
	unlock, err := lockFile(ctx, d.lockPath(), true)
	if err != nil {
		d.o.logger.WarnContext(ctx, "cache entry unusable; not removed", "key", key, "reason", reason, "err", err)
		return miss
	}
	defer unlock()
	rp := d.recordPath(key)
	if cur, err := readSmall(rp); err != nil || !bytes.Equal(cur, raw) {
		// Replaced or removed meanwhile (a concurrent Put, eviction or
		// drop): nothing of ours to remove.
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if blobHex != "" {
		bp := d.blobPath(blobHex)
		if f, err := os.Open(bp); err == nil {
			r, err := verifyFile(ctx, f, v1.Hash{Algorithm: "sha256", Hex: blobHex}, size)
			f.Close()
			if err == nil && r == "" {
				// A concurrent Put repaired the blob; the entry is good.
				return fmt.Errorf("%w: %s", ErrNotFound, key)
			}
			if err == nil {
				if err := os.Remove(bp); err != nil && !errors.Is(err, fs.ErrNotExist) {
					d.o.logger.WarnContext(ctx, "removing corrupt cache blob", "path", bp, "err", err)
				}
			}
		}
	}
	if err := os.Remove(rp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.o.logger.WarnContext(ctx, "cache entry unusable; not removed", "key", key, "reason", reason, "err", err)
		return miss
	}
	d.o.logger.WarnContext(ctx, "cache entry unusable; removed", "key", key, "reason", reason, "dir", d.root)
	return miss
}

// Put stores l under key: its compressed bytes (checked against its digest
// and size), its descriptor (media type, annotations) and its DiffID. It
// then evicts least recently used entries until the store is under its
// size cap (see WithMaxSize); a failure to evict is logged, not returned.
func (d *Dir) Put(ctx context.Context, key string, l v1.Layer) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := d.put(ctx, key, l); err != nil {
		return fmt.Errorf("caching %s: %w", key, err)
	}
	if _, _, err := d.evict(ctx, d.o.maxSize, recordName(key), false); err != nil {
		d.o.logger.WarnContext(ctx, "cache eviction failed", "dir", d.root, "err", err)
	}
	return nil
}

func (d *Dir) put(ctx context.Context, key string, l v1.Layer) error {
	desc, err := descriptorOf(l)
	if err != nil {
		return fmt.Errorf("reading layer descriptor: %w", err)
	}
	diffID, err := l.DiffID()
	if err != nil {
		return fmt.Errorf("reading layer %s DiffID: %w", desc.Digest, err)
	}
	raw, err := json.Marshal(record{Key: key, Descriptor: *desc, DiffID: diffID, From: originOf(l)})
	if err != nil {
		return err
	}
	unlock, err := lockFile(ctx, d.lockPath(), false)
	if err != nil {
		return fmt.Errorf("locking %s: %w", d.root, err)
	}
	defer unlock()
	if err := d.writeBlob(ctx, l, desc); err != nil {
		return fmt.Errorf("writing layer %s: %w", desc.Digest, err)
	}
	rp := d.recordPath(key)
	if err := d.writeFile(rp, "rec-*", func(w io.Writer) error {
		_, err := w.Write(raw)
		return err
	}); err != nil {
		return fmt.Errorf("writing record: %w", err)
	}
	now := d.o.now()
	if err := os.Chtimes(rp, now, now); err != nil {
		return err
	}
	d.o.logger.DebugContext(ctx, "cache put", "key", key, "digest", desc.Digest.String(), "size", desc.Size)
	return nil
}

func (d *Dir) writeBlob(ctx context.Context, l v1.Layer, desc *v1.Descriptor) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return d.writeFile(d.blobPath(desc.Digest.Hex), "blob-*", func(w io.Writer) error {
		v := newVerifier(rc, desc.Digest, desc.Size)
		_, err := io.Copy(w, ctxio.Reader(ctx, v))
		return err
	})
}

// writeFile writes a file in DIR/tmp with fill and renames it to path. The
// temporary file is removed on every error.
func (d *Dir) writeFile(path, pattern string, fill func(io.Writer) error) (rerr error) {
	f, err := os.CreateTemp(d.tmpDir(), pattern)
	if err != nil {
		return err
	}
	defer func() {
		if rerr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// List returns the store's entries sorted by key. Unreadable records are
// left out (Get or Prune removes them).
func (d *Dir) List(ctx context.Context) ([]EntryInfo, error) {
	s, err := d.scan(ctx, true)
	if err != nil {
		return nil, err
	}
	var out []EntryInfo
	for _, r := range s.records {
		if r.rec == nil {
			continue
		}
		out = append(out, EntryInfo{
			Key:       r.rec.Key,
			Digest:    r.rec.Descriptor.Digest,
			Size:      r.rec.Descriptor.Size,
			MediaType: r.rec.Descriptor.MediaType,
			LastUsed:  r.mtime,
			From:      r.rec.From,
		})
	}
	slices.SortFunc(out, func(a, b EntryInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Usage returns the bytes the store holds: blobs and records.
func (d *Dir) Usage(ctx context.Context) (int64, error) {
	s, err := d.scan(ctx, false)
	if err != nil {
		return 0, err
	}
	return s.usage(), nil
}

// Prune evicts least recently used entries until the store holds at most
// maxSize bytes (0 empties it), and removes what no entry needs: blobs
// without a record, unreadable records and leftovers of interrupted writes.
// It returns how many entries it removed and the bytes freed.
func (d *Dir) Prune(ctx context.Context, maxSize int64) (removed int, freed int64, err error) {
	if maxSize < 0 {
		return 0, 0, fmt.Errorf("pruning %s: negative size %d", d.root, maxSize)
	}
	return d.evict(ctx, maxSize, "", true)
}

type recordInfo struct {
	name  string
	size  int64 // of the record file
	mtime time.Time
	rec   *record // nil: unreadable (or not parsed)
}

type scanResult struct {
	records []recordInfo
	blobs   map[string]int64 // hex -> size
	tmp     []string
}

func (s *scanResult) usage() int64 {
	var n int64
	for _, r := range s.records {
		n += r.size
	}
	for _, b := range s.blobs {
		n += b
	}
	return n
}

// scan lists the store. Files that vanish while it runs are skipped. With
// parse, records are read and parsed.
func (d *Dir) scan(ctx context.Context, parse bool) (*scanResult, error) {
	s := &scanResult{blobs: map[string]int64{}}
	keys, err := os.ReadDir(d.keysDir())
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", d.keysDir(), err)
	}
	for _, e := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // vanished
		}
		ri := recordInfo{name: e.Name(), size: fi.Size(), mtime: fi.ModTime()}
		if parse {
			raw, err := readSmall(filepath.Join(d.keysDir(), e.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err == nil {
				if r, err := parseRecord(raw); err == nil && recordName(r.Key) == e.Name() {
					ri.rec = r
				}
			}
		}
		s.records = append(s.records, ri)
	}
	blobs, err := os.ReadDir(d.blobsDir())
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", d.blobsDir(), err)
	}
	for _, e := range blobs {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		s.blobs[e.Name()] = fi.Size()
	}
	tmp, err := os.ReadDir(d.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", d.tmpDir(), err)
	}
	for _, e := range tmp {
		s.tmp = append(s.tmp, e.Name())
	}
	return s, nil
}

// evict brings the store under maxSize, least recently used entries first,
// never removing the record named protect or its blob. Unless force is set
// it does nothing while the store is under the cap.
func (d *Dir) evict(ctx context.Context, maxSize int64, protect string, force bool) (removed int, freed int64, err error) {
	if !force {
		s, err := d.scan(ctx, false)
		if err != nil {
			return 0, 0, err
		}
		if s.usage() <= maxSize {
			return 0, 0, nil
		}
	}
	unlock, err := lockFile(ctx, d.lockPath(), true)
	if err != nil {
		return 0, 0, fmt.Errorf("locking %s: %w", d.root, err)
	}
	defer unlock()
	s, err := d.scan(ctx, true)
	if err != nil {
		return 0, 0, err
	}
	// No Put is writing now: whatever is in tmp/ is left over.
	for _, name := range s.tmp {
		_ = os.Remove(filepath.Join(d.tmpDir(), name))
	}
	usage := s.usage()
	refs := map[string]int{}
	var live []recordInfo
	for _, r := range s.records {
		if r.rec == nil {
			if os.Remove(filepath.Join(d.keysDir(), r.name)) == nil {
				d.o.logger.WarnContext(ctx, "cache record unreadable; removed", "record", r.name, "dir", d.root)
				usage -= r.size
				freed += r.size
			}
			continue
		}
		live = append(live, r)
		refs[r.rec.Descriptor.Digest.Hex]++
	}
	protectBlob := ""
	for _, r := range live {
		if r.name == protect {
			protectBlob = r.rec.Descriptor.Digest.Hex
		}
	}
	removeBlob := func(h string) {
		size, ok := s.blobs[h]
		if !ok {
			return
		}
		if err := os.Remove(d.blobPath(h)); err == nil || errors.Is(err, fs.ErrNotExist) {
			delete(s.blobs, h)
			usage -= size
			freed += size
		}
	}
	for _, h := range slices.Sorted(maps.Keys(s.blobs)) {
		if refs[h] == 0 && h != protectBlob {
			removeBlob(h)
		}
	}
	slices.SortFunc(live, func(a, b recordInfo) int {
		if c := a.mtime.Compare(b.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.rec.Key, b.rec.Key)
	})
	for _, r := range live {
		if usage <= maxSize {
			break
		}
		if r.name == protect {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, freed, err
		}
		if err := os.Remove(filepath.Join(d.keysDir(), r.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, freed, fmt.Errorf("evicting %s: %w", r.rec.Key, err)
		}
		usage -= r.size
		freed += r.size
		removed++
		d.o.logger.DebugContext(ctx, "cache evict", "key", r.rec.Key, "lastUsed", r.mtime, "size", r.rec.Descriptor.Size)
		h := r.rec.Descriptor.Digest.Hex
		if refs[h]--; refs[h] == 0 && h != protectBlob {
			removeBlob(h)
		}
	}
	return removed, freed, nil
}
