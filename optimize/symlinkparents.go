package optimize

import (
	"fmt"
	"maps"
	"slices"

	"github.com/coldstart-dev/coldstart/layers"
)

// resolveSymlinkParents returns the layers' indexes with every entry that
// containerd writes through a symlinked directory (layers.SymlinkParents)
// named where it lands, and those entries per layer. The optimizer plans
// and writes the entries under those names: a full pull lands them where
// it did, and a lazy pull, which follows no symlink of a lower layer, now
// shows them there too, instead of a directory that hides the symlink and
// everything the container reached through it. Indexes with nothing to
// move are returned as they are; the others are copies.
func resolveSymlinkParents(idxs []*layers.Index) ([]*layers.Index, []map[int]layers.Moved) {
	moved := layers.SymlinkParents(idxs)
	out := slices.Clone(idxs)
	for li, mv := range moved {
		if len(mv) > 0 {
			out[li] = idxs[li].WithMoved(mv)
		}
	}
	return out, moved
}

// movedKey describes a layer's moved entries for its cache key.
func movedKey(mv map[int]layers.Moved) []any {
	var out []any
	for _, i := range slices.Sorted(maps.Keys(mv)) {
		out = append(out, []any{i, mv[i].Path, mv[i].Linkname})
	}
	return out
}

// movedRefusal is recompressRefusal's reason for a layer with moved
// entries, "" without any.
func movedRefusal(idx *layers.Index, mv map[int]layers.Moved) string {
	if len(mv) == 0 {
		return ""
	}
	i := slices.Min(slices.Collect(maps.Keys(mv)))
	e, m := &idx.Entries[i], mv[i]
	if m.Linkname != "" {
		return fmt.Sprintf("its hard link /%s reaches /%s through a symlinked directory, which a lazy puller does not follow", e.Path, m.Linkname)
	}
	return fmt.Sprintf("its entry %s lands in /%s through a symlinked directory, which a lazy puller would show as a directory of its own, hiding the symlink", e.Name, m.Path)
}
