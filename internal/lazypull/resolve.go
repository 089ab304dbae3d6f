package lazypull

import "github.com/coldstart-dev/coldstart/layers"

// Resolve follows the absolute path p through the merged filesystem ov as
// the kernel does when a process opens it (layers.Overlay.Resolve) and
// returns the entry reached.
func Resolve(ov *layers.Overlay, p string) (ref layers.Ref, ok bool) {
	ref, _, ok = ov.Resolve(p)
	return ref, ok
}
