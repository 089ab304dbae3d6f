package cache

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WithClock makes a store read the time from now (tests only).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		o.now = now
		return nil
	}
}

// BlobPath is where d stores the blob with digest h.
func BlobPath(d *Dir, h v1.Hash) string { return d.blobPath(h.Hex) }

// RecordPath is where d stores key's record.
func RecordPath(d *Dir, key string) string { return d.recordPath(key) }
