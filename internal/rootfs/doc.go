// Package rootfs writes the merged root filesystem of an image into a host
// directory, safely, so that a container can be started from it.
//
// [Extract] takes the image's layers and their overlay view (layers.Merge of
// the layers' indexes) and writes only the entries a container sees, layer by
// layer, streaming each layer's tar once. Nothing is written outside the
// directory:
//
//   - Every operation goes through an [os.Root], so the kernel refuses any
//     name that resolves outside the directory, whatever symbolic links the
//     image planted.
//   - Entry names that are absolute or climb out with ".." are refused (the
//     layer index already rejects them with layers.ErrUnsafePath).
//   - A path whose parent, in the tree written so far, is a symbolic link
//     (a link planted by an earlier entry or layer that a later entry climbs
//     through) is refused with an error wrapping [ErrUnsafePath]; real image
//     builders never write through links.
//   - Hard links are created only to files inside the directory.
//   - Device nodes are not created (a note says so): a process in the
//     sandbox must not reach the host's devices through the image.
//
// Modes (setuid, setgid and sticky included), owners (when running as root),
// modification times and extended attributes (best effort) are preserved;
// what could not be applied is reported in [Result.Notes].
package rootfs
