// Package testimage builds real container image layers, images, indexes and
// OCI layouts for tests, and holds a naive reference implementation of the
// layer overlay that optimized code is checked against.
//
// # Building layers
//
// A [Layer] is a list of tar entries written in order, exactly as given:
//
//	l := testimage.Layer{
//		testimage.Dir("etc", 0o755),
//		testimage.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n", testimage.Mode(0o644)),
//		testimage.Symlink("bin", "usr/bin"),
//		testimage.Whiteout("etc/old"),
//	}
//	tarBytes := l.Tar()
//	gz, err := l.Compressed(compression.GZip)
//
// The bytes are deterministic: every entry carries the fixed modification
// time [Epoch] unless [MTime] says otherwise, owner names are empty, and no
// field depends on the host. Parent directories are not added implicitly, so
// tests can build odd tars on purpose; [WithParents] adds the missing ones.
// Whiteouts are written the OCI way: ".wh.NAME" files and "DIR/.wh..wh..opq".
//
// # Images
//
// [Image], [ImageFrom] and [Index] assemble OCI images and indexes with
// correct diff_ids and one history entry per layer, and [WriteOCI] writes them
// to an OCI image layout directory.
//
// # Random layered filesystems
//
// [Random] generates several layers that exercise what real builds produce:
// overwrites, metadata-only copy-ups, identical re-adds, whiteouts, opaque
// directories, type changes, hard links, duplicate entries and "./" names.
// [RandomOptions] adds what real builds rarely produce and rewriters get
// wrong: hard links to lower layers and chains of them, later whiteouts and
// opaque parents of their targets, a name written twice around a link to
// its first copy (HardLinks), PAX global headers (GlobalHeaders), names and
// targets longer than 100 bytes in PAX and GNU form (LongNames) and more
// xattrs (Xattrs). A hard link entry carries its target's mode, owner and
// xattrs, as tar writers write it: containerd applies a link header's
// metadata to the shared inode, which a copy-on-link applier cannot model.
//
// # The reference overlay
//
// [Apply] merges uncompressed layer tars the way containerd's applier does
// (OCI image-spec layer semantics), into a [Tree] of [Node]s that each record
// the layer and tar entry that produced them. [WastedBytes] sums the file
// bytes a later layer hides. Both are written to be obviously correct rather
// than fast: they are the oracle for the optimized overlay in package layers.
//
// Every function here is meant for tests and tools; none of it streams, and
// layers are held in memory.
package testimage
