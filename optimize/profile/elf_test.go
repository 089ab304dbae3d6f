package profile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

func TestReaderAtFallbacks(t *testing.T) {
	for _, mode := range []string{"readerat", "seeker", "prefix"} {
		t.Run(mode, func(t *testing.T) {
			m := glibcRoot()
			m.exe("/usr/bin/app", prog("libz.so.1"))
			m.seekOnly = mode == "seeker"
			m.noReadAt = mode == "prefix"
			p := mustStatic(t, m, Config{Entrypoint: []string{"app"}})
			want := cat([]string{"/usr/bin/app"}, loaderFiles, []string{
				"/usr/lib/x86_64-linux-gnu/libz.so.1",
				"/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
				"/usr/lib/x86_64-linux-gnu/libc.so.6",
			})
			if diff := cmp.Diff(want, p.Files); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

// ldCacheBytes builds a new-format ld.so.cache.
func ldCacheBytes(entries [][3]any) []byte {
	var strs bytes.Buffer
	hdr := 48 + 24*len(entries)
	type e struct {
		flags      uint32
		key, value uint32
		hwcap      uint64
	}
	var es []e
	for _, en := range entries {
		k := uint32(hdr + strs.Len())
		strs.WriteString(en[0].(string) + "\x00")
		v := uint32(hdr + strs.Len())
		strs.WriteString(en[1].(string) + "\x00")
		es = append(es, e{en[2].(uint32), k, v, 0})
	}
	var b bytes.Buffer
	b.WriteString(ldCacheMagicNew)
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	w(uint32(len(entries)))
	w(uint32(strs.Len()))
	w([4]byte{})
	w([4]uint32{})
	for _, x := range es {
		w(int32(x.flags))
		w(x.key)
		w(x.value)
		w(uint32(0))
		w(x.hwcap)
	}
	b.Write(strs.Bytes())
	return b.Bytes()
}

func TestLDCache(t *testing.T) {
	b := ldCacheBytes([][3]any{
		{"libfoo.so.1", "/opt/i386/libfoo.so.1", uint32(0x0003)},
		{"libfoo.so.1", "/opt/x64/libfoo.so.1", uint32(0x0303)},
		{"libbar.so", "/opt/arm/libbar.so", uint32(0x0a03)},
	})
	c, err := parseLDCache(b)
	if err != nil {
		t.Fatal(err)
	}
	x64 := archOf(&elfInfo{Class: elf.ELFCLASS64, Order: binary.LittleEndian, Machine: elf.EM_X86_64})
	if got := c.lookup("libfoo.so.1", x64); !cmp.Equal(got, []string{"/opt/x64/libfoo.so.1"}) {
		t.Errorf("x86_64 lookup = %v", got)
	}
	i386 := archOf(&elfInfo{Class: elf.ELFCLASS32, Order: binary.LittleEndian, Machine: elf.EM_386})
	if got := c.lookup("libfoo.so.1", i386); !cmp.Equal(got, []string{"/opt/i386/libfoo.so.1"}) {
		t.Errorf("i386 lookup = %v", got)
	}
	if got := c.lookup("libbar.so", x64); len(got) != 0 {
		t.Errorf("arm64 library offered to x86_64: %v", got)
	}
	for _, bad := range [][]byte{nil, []byte("garbage"), b[:30], append([]byte(ldCacheMagicNew), 0xff, 0xff, 0xff, 0x7f)} {
		if _, err := parseLDCache(bad); err == nil {
			t.Errorf("parseLDCache(%q) succeeded", bad)
		}
	}
}

func TestLDCacheHost(t *testing.T) {
	b, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil || !bytes.HasPrefix(b, []byte(ldCacheMagicNew)) {
		t.Skip("no new-format /etc/ld.so.cache on this host")
	}
	c, err := parseLDCache(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.entries["libc.so.6"]) == 0 {
		t.Fatalf("libc.so.6 not in the host cache (%d names)", len(c.entries))
	}
}

func TestArchOf(t *testing.T) {
	tests := []struct {
		info elfInfo
		want string
	}{
		{elfInfo{Class: elf.ELFCLASS64, Order: binary.LittleEndian, Machine: elf.EM_X86_64}, "x86_64-linux-gnu"},
		{elfInfo{Class: elf.ELFCLASS64, Order: binary.LittleEndian, Machine: elf.EM_AARCH64}, "aarch64-linux-gnu"},
		{elfInfo{Class: elf.ELFCLASS32, Order: binary.LittleEndian, Machine: elf.EM_ARM, Flags: 0x05000400}, "arm-linux-gnueabihf"},
		{elfInfo{Class: elf.ELFCLASS64, Order: binary.LittleEndian, Machine: elf.EM_PPC64}, "powerpc64le-linux-gnu"},
		{elfInfo{Class: elf.ELFCLASS64, Order: binary.BigEndian, Machine: elf.EM_S390}, "s390x-linux-gnu"},
		{elfInfo{Class: elf.ELFCLASS64, Order: binary.LittleEndian, Machine: elf.EM_RISCV}, "riscv64-linux-gnu"},
		{elfInfo{Class: elf.ELFCLASS32, Order: binary.LittleEndian, Machine: elf.EM_386}, "i386-linux-gnu"},
	}
	for _, tc := range tests {
		if got := archOf(&tc.info).triplet; got != tc.want {
			t.Errorf("archOf(%v) = %q, want %q", tc.info.Machine, got, tc.want)
		}
	}
}

func TestStaticGarbageELF(t *testing.T) {
	m := glibcRoot()
	good := elftest.Build(elftest.Spec{Interp: ldx86, Needed: []string{"libc.so.6"}})
	huge := append([]byte{}, good...)
	binary.LittleEndian.PutUint16(huge[56:], 0xfffe) // e_phnum
	m.exe("/app/huge", huge)
	m.exe("/app/short", []byte("\x7fELF\x02\x01"))
	// A garbage library earlier in the search path is skipped with a warning.
	m.file("/opt/lib/libc.so.6", []byte("\x7fELF garbage"), 0o644)
	m.exe("/app/ok", elftest.Build(elftest.Spec{Interp: ldx86, Needed: []string{"libc.so.6"}, RunPath: "/opt/lib"}))
	for ep, warn := range map[string]string{"/app/huge": "too large", "/app/short": "reading ELF header"} {
		p := mustStatic(t, m, Config{Entrypoint: []string{ep}})
		if !cmp.Equal(p.Files, []string{ep}) || !hasWarning(p, warn) {
			t.Errorf("%s: files %q warnings %q", ep, p.Files, p.Warnings)
		}
	}
	p := mustStatic(t, m, Config{Entrypoint: []string{"/app/ok"}})
	want := cat([]string{"/app/ok"}, loaderFiles, []string{x64lib + "libc.so.6"})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if !hasWarning(p, "/opt/lib/libc.so.6: reading ELF header") {
		t.Errorf("warnings %q", p.Warnings)
	}
}
