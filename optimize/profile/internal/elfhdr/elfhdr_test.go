package elfhdr

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

const ldx86 = "/lib64/ld-linux-x86-64.so.2"

func TestParseELF(t *testing.T) {
	tests := []struct {
		name string
		spec elftest.Spec
	}{
		{"x86_64 program", elftest.Spec{Interp: ldx86, Needed: []string{"libz.so.1", "libc.so.6"}, RunPath: "$ORIGIN/../lib"}},
		{"shared object", elftest.Spec{SOName: "libfoo.so.1", Needed: []string{"libc.so.6"}, RPath: "/opt/lib:/x"}},
		{"static", elftest.Spec{Type: elf.ET_EXEC, Static: true}},
		{"i386", elftest.Spec{Class: elf.ELFCLASS32, Machine: elf.EM_386, Interp: "/lib/ld-linux.so.2", Needed: []string{"libc.so.6"}}},
		{"s390x big-endian", elftest.Spec{Order: binary.BigEndian, Machine: elf.EM_S390, Interp: "/lib/ld64.so.1", Needed: []string{"libc.so.6"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := elftest.Build(tc.spec)
			info, err := Parse(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			s := tc.spec
			if info.Interp != s.Interp || info.RPath != s.RPath || info.RunPath != s.RunPath || info.SOName != s.SOName {
				t.Errorf("got interp %q rpath %q runpath %q soname %q", info.Interp, info.RPath, info.RunPath, info.SOName)
			}
			if diff := cmp.Diff(s.Needed, info.Needed); diff != "" {
				t.Errorf("needed (-want +got):\n%s", diff)
			}
			if info.Dynamic == s.Static {
				t.Errorf("dynamic = %v", info.Dynamic)
			}
			// debug/elf must agree on what it can see.
			f, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != info.Machine || f.Class != info.Class {
				t.Errorf("machine/class %v/%v, debug/elf says %v/%v", info.Machine, info.Class, f.Machine, f.Class)
			}
		})
	}
}

func TestParseELFHost(t *testing.T) {
	b, err := os.ReadFile("/bin/ls")
	if err != nil {
		t.Skip("no /bin/ls on this host")
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Skip("host /bin/ls is not ELF")
	}
	want, err := f.ImportedLibraries()
	if err != nil {
		t.Skip(err)
	}
	info, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, info.Needed); diff != "" {
		t.Errorf("needed (-debug/elf +ours):\n%s", diff)
	}
	if info.Interp == "" {
		t.Errorf("no interpreter found in a dynamic /bin/ls")
	}
}

// patch returns a copy of b with v written at off in the ELF's byte order.
func patch(b []byte, off int, v any) []byte {
	c := append([]byte{}, b...)
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, v)
	copy(c[off:], buf.Bytes())
	return c
}

func TestParseELFRejectsGarbage(t *testing.T) {
	good := elftest.Build(elftest.Spec{Interp: ldx86, Needed: []string{"libc.so.6"}})
	// ELF64 header offsets: e_phoff 32, e_phentsize 54, e_phnum 56; the
	// first program header (PT_INTERP) starts at 64 with p_offset at +8 and
	// p_filesz at +32; the third (PT_DYNAMIC) at 64+2*56.
	dynPh := 64 + 2*56
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated header", good[:40], "reading ELF header"},
		{"not ELF", []byte("#!/bin/sh\n" + strings.Repeat("x", 64)), "not an ELF file"},
		{"bad class", patch(good, int(elf.EI_CLASS), uint8(9)), "unknown ELF class"},
		{"bad data", patch(good, int(elf.EI_DATA), uint8(7)), "data encoding"},
		{"relocatable", patch(good, 16, uint16(elf.ET_REL)), "cannot be executed"},
		{"huge phnum", patch(good, 56, uint16(0xfffe)), "too large"},
		{"bad phentsize", patch(good, 54, uint16(12)), "entry size"},
		{"phoff beyond EOF", patch(good, 32, uint64(1<<40)), "outside"},
		{"phoff overflow", patch(good, 32, uint64(1<<63)), "outside"},
		{"huge interp", patch(good, 64+32, uint64(1<<32)), "interpreter path of"},
		{"interp beyond EOF", patch(good, 64+8, uint64(1<<40)), "interpreter path"},
		{"huge dynamic", patch(good, dynPh+32, uint64(1<<40)), "dynamic section of"},
		{"dynamic beyond EOF", patch(good, dynPh+8, uint64(len(good))), "dynamic section"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseELFBadStrings(t *testing.T) {
	good := elftest.Build(elftest.Spec{Interp: ldx86, Needed: []string{"libc.so.6"}})
	// The dynamic section (PT_DYNAMIC is the third program header) holds
	// DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_NULL, 16 bytes each.
	dynOff := int(binary.LittleEndian.Uint64(good[64+2*56+8:]))
	if elf.DynTag(binary.LittleEndian.Uint64(good[dynOff:])) != elf.DT_NEEDED {
		t.Fatal("unexpected synthetic ELF layout")
	}
	bad := patch(good, dynOff+8, uint64(1<<50))
	if _, err := Parse(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "outside the string table") {
		t.Fatalf("err = %v", err)
	}
	// A DT_STRTAB that no PT_LOAD maps.
	bad = patch(good, dynOff+16+8, uint64(0xdead0000))
	if _, err := Parse(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "outside the loadable segments") {
		t.Fatalf("err = %v", err)
	}
	// A string that runs to the end of the table without a NUL.
	bad = patch(good, dynOff+32+8, uint64(3))
	if _, err := Parse(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "not terminated") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseELF(f *testing.F) {
	f.Add(elftest.Build(elftest.Spec{Interp: ldx86, Needed: []string{"libc.so.6"}}))
	f.Add(elftest.Build(elftest.Spec{Class: elf.ELFCLASS32, Machine: elf.EM_ARM, Needed: []string{"a"}, RunPath: "b"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Parse(&countingReaderAt{b: data, t: t}, int64(len(data)))
		if err == nil && len(info.Needed) > maxNeeded {
			t.Fatalf("%d needed entries", len(info.Needed))
		}
	})
}

// countingReaderAt fails the test when a read asks for more than the
// parser's bounds allow, which would mean an unbounded allocation.
type countingReaderAt struct {
	b []byte
	t *testing.T
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > maxDynBytes {
		c.t.Fatalf("read of %d bytes", len(p))
	}
	if off >= int64(len(c.b)) {
		return 0, nil
	}
	return copy(p, c.b[off:]), nil
}
