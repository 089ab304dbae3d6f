// Package oracle judges image rewrites: it reads layers, applies them the
// way containerd does, presents eStargz and zstd:chunked layers the way a
// lazy puller does, and compares the resulting filesystems. It shares no
// code with package layers (it must not import layers or optimize): an
// applier cannot judge itself, so this one is written from containerd's
// source, not from coldstart's model.
//
// # Reading
//
// [ReadLayer] reads an uncompressed layer tar in one streaming pass into a
// [Layer]: one [Entry] per header, with the cleaned path, type, mode
// (permissions plus setuid, setgid and sticky), owner, mtime (with the
// nanoseconds of a PAX record), size and SHA-256 of a file's content,
// symlink target or hard link target, device numbers, xattrs (PAX
// "SCHILY.xattr.*") and the whiteout markers. Memory is proportional to the
// number of entries. [ReadBlob] sniffs gzip, zstd or none; [ReadImage] reads
// the layers of an image in parallel. PAX global headers (git archive)
// become [TypeGlobalHeader] entries; a name climbing out of the root with
// ".." is an error naming the entry; an absolute name is taken from the root
// (containerd joins every name to the root).
//
// # Applying
//
// [Apply] applies layers bottom first into an [FS], a tree of names over
// inodes, following containerd's applier on the merged view of the layers
// below (pkg/archive/tar.go, applyNaive and createTarFile, at containerd
// commit 301026e58; line numbers below are from it):
//
//   - Names are cleaned (tar.go:236); an entry naming the root is ignored
//     (tar.go:261-264); the parent path is resolved through symlinks inside
//     the root, as continuity's fs.RootPath does (tar.go:252-256; continuity
//     fs/path.go:225, at most 255 links), and missing parents are made 0755
//     root:root with the time of extraction (mkparent, tar.go:266-276,
//     435-493). A parent that is not a directory is an error.
//   - Whiteouts: ".wh.NAME" deletes NAME and everything under it;
//     "DIR/.wh..wh..opq" deletes everything under DIR; other ".wh..wh."
//     names do nothing. Per the OCI layer spec they apply to the layers
//     below only: [Apply] applies a layer's whiteouts first (against the
//     layers below), then its other entries in tar order, so a whiteout
//     never deletes what its own layer writes, wherever it is in the tar.
//     containerd's appliers disagree with OCI and each other when a
//     whiteout names what its layer also writes: the merged-view applier
//     deletes the entries written before the whiteout (tar.go:205-210,
//     os.RemoveAll in tar order), the overlayfs applier fails with EEXIST
//     (tar_opts_linux.go:44, mknod over an existing name), and a directory
//     written after the whiteout is merged with the lower one there. These
//     cases are reported as [NoteSameLayerWhiteout]; the opaque marker
//     agrees everywhere (tar.go:186-201 keeps the layer's own paths).
//   - An existing path is removed and replaced, unless both it and the
//     entry are directories: then only the metadata changes and the
//     children stay (tar.go:290-300). A non-directory over a directory
//     removes the subtree; a later entry of the same name in one layer wins.
//     A PAX global header goes through this removal too, then writes
//     nothing (tar.go:388-390): it deletes what its name names
//     ([NoteGlobalHeader]).
//   - Hard links share the inode their target has when the link applies
//     (tar.go:373-381: link(2) after hardlinkRootPath, which resolves the
//     target's parent, not the target, tar.go:782-794). A later entry that
//     replaces the target makes a new inode and does not change the link,
//     so a link outlives a later whiteout of its target, of its target's
//     parent or an opaque parent. The link header's owner, xattrs, mode (not
//     for a symlink) and mtime are then set on the shared inode
//     (tar.go:396-432 run for every type), so they change every name of the
//     inode ([NoteLinkMetadata]). A link whose target is a lower layer's
//     file works on the merged view but fails on containerd's overlayfs
//     applier, which applies a layer into its empty upper directory
//     (apply_linux.go:42-50), and in an eStargz layer
//     ([NoteCrossLayerLink]). A link to a missing path, a directory or the
//     root is an error. A link placed before its own layer's whiteout of
//     the target still finds the target, as in containerd's in-order
//     applier.
//   - Metadata: owner, then xattrs, then mode, then mtime
//     (tar.go:396-432). Xattrs are added to what the inode has (a
//     directory over a directory keeps the old keys); "trusted.*" xattrs
//     are never set (tar_unix.go:146-148) and "user.*" ones only on files
//     and directories (tar.go:410-416) ([NoteXattrDropped]). Symlinks are
//     0777 (lchmod skips them, tar_mostunix.go:43). Devices whose numbers
//     do not fit 32 bits are an error (tar_unix.go:130). Times before 1970
//     or past 2262 become the epoch (boundTime, time.go:41). Directory
//     mtimes are set once the whole layer is applied, in tar order
//     (tar.go:309-325); a directory whose children a layer changes without
//     an entry for the directory gets the time of extraction, which an
//     [FS] records as unknown, as it does for implicit directories.
//   - Entry types other than files, directories, symlinks, hard links,
//     devices, FIFOs and global headers (the old GNU sparse "S", for one)
//     are an error (tar.go:392-393).
//
// [FS.Notes] lists where an image relies on any of the disputed cases.
//
// # The lazy view
//
// [ReadTOC] reads an eStargz or zstd:chunked layer with the real estargz
// reader and returns the [Layer] a lazy puller presents: the tree of the
// reader's TOC (where the last TOC entry of a name wins and a hard link
// resolves to the last entry of its target's name: estargz.go initFields
// and getSource), whiteouts and opaque markers as stargz-snapshotter turns
// them into overlayfs ones (fs/layer/node.go Readdir and Lookup), the
// prefetch landmarks hidden, every chunk verified. Its directories are
// explicit entries: a lazy layer has no mkparent, a directory the TOC does
// not list is 0755 root:root and, stacked by overlayfs, hides the
// attributes of the lower directory.
//
// # Comparing
//
// [Compare] reports how one filesystem differs from another, path by
// path: presence, type, mode, owner, mtime (where both know it), content,
// symlink target, device numbers, xattrs and hard-link structure, in tree
// order, capped, with options to skip mtimes or paths (such as
// [LazyOnlyNames] at the root).
package oracle
