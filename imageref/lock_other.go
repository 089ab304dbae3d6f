//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package imageref

// lockDir is a no-op where flock is not available: concurrent writers to
// one layout are not coordinated there.
func lockDir(string) (func(), error) {
	return func() {}, nil
}
