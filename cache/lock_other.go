//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cache

import "context"

// lockFile is a no-op where flock is not available: processes sharing a
// directory store are not coordinated there (each write is still an atomic
// rename, and every read is verified).
func lockFile(ctx context.Context, path string, exclusive bool) (func(), error) {
	return func() {}, ctx.Err()
}
