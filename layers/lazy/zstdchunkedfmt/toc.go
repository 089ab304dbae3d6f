package zstdchunkedfmt

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"

	"github.com/coldstart-dev/coldstart/layers/lazy"
)

// toc is the zstd:chunked TOC document: estargz.JTOC's version and entries
// (in the layout of entryLayout) and the digest of the tar-split.
type toc struct {
	Version        int    `json:"version"`
	Entries        any    `json:"entries"`
	TarSplitDigest string `json:"tarSplitDigest,omitempty"`
}

// placeAfter says where the fields that lazy.TOCEntry adds to
// estargz.TOCEntry go in a TOC entry: after which field of estargz's, by
// JSON name.
var placeAfter = map[string]string{
	"accesstime": "modtime",
	"changetime": "modtime",
	"endOffset":  "offset",
}

// wireLayout is the JSON shape of a zstd:chunked TOC entry: the exported
// fields of estargz.TOCEntry in estargz's order, with those lazy.TOCEntry
// adds placed as placeAfter says, where coldstart's zstd:chunked TOCs have
// always had them (readers do not care about the order; the bytes, and so
// the digests, do). encoding/json writes the fields of an embedded struct
// where it is embedded, so lazy.TOCEntry itself cannot put its fields among
// estargz's; this layout is derived once, by reflection, from lazy.TOCEntry
// and the estargz.TOCEntry it embeds, so a field that either gains shows up
// here too.
type wireLayout struct {
	typ reflect.Type
	// from[i] is the index path in lazy.TOCEntry of field i of typ.
	from [][]int
}

var entryLayout = sync.OnceValue(func() *wireLayout {
	outer := reflect.TypeFor[lazy.TOCEntry]()
	embedded, ok := outer.FieldByName("TOCEntry")
	if !ok || !embedded.Anonymous {
		panic("zstdchunkedfmt: lazy.TOCEntry does not embed estargz.TOCEntry")
	}
	jsonName := func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		return name
	}
	// The fields lazy.TOCEntry adds, by the estargz field they follow.
	added := map[string][]reflect.StructField{}
	for i := range outer.NumField() {
		if f := outer.Field(i); !f.Anonymous {
			after, ok := placeAfter[jsonName(f)]
			if !ok {
				panic("zstdchunkedfmt: no place for TOC field " + f.Name)
			}
			added[after] = append(added[after], f)
		}
	}
	l := &wireLayout{}
	var fields []reflect.StructField
	add := func(f reflect.StructField, path []int) {
		fields = append(fields, reflect.StructField{Name: f.Name, Type: f.Type, Tag: f.Tag})
		l.from = append(l.from, path)
	}
	base := embedded.Type
	for i := range base.NumField() {
		f := base.Field(i)
		if !f.IsExported() || jsonName(f) == "-" {
			continue
		}
		add(f, []int{embedded.Index[0], i})
		for _, x := range added[jsonName(f)] {
			add(x, x.Index)
		}
		delete(added, jsonName(f))
	}
	if len(added) > 0 {
		panic("zstdchunkedfmt: estargz.TOCEntry lacks a field that zstd:chunked's TOC places its own after")
	}
	l.typ = reflect.StructOf(fields)
	return l
})

// marshalTOC returns the TOC JSON of entries.
func marshalTOC(entries []*lazy.TOCEntry, tarSplitDigest string) ([]byte, error) {
	l := entryLayout()
	wire := reflect.Zero(reflect.SliceOf(l.typ)) // nil, "null", as entries is
	if entries != nil {
		wire = reflect.MakeSlice(wire.Type(), len(entries), len(entries))
	}
	for i, e := range entries {
		w := wire.Index(i)
		ev := reflect.ValueOf(e).Elem()
		for j, path := range l.from {
			// A zero field is left zero: omitted, or written as it is.
			if v := ev.FieldByIndex(path); !v.IsZero() {
				w.Field(j).Set(v)
			}
		}
	}
	return json.Marshal(&toc{Version: 1, Entries: wire.Interface(), TarSplitDigest: tarSplitDigest})
}
