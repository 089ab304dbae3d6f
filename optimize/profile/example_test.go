package profile_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile"
)

// staticELF is the header of a static x86-64 executable: enough for the
// profiler, which needs no code.
func staticELF() []byte {
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, h)
	_ = binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_LOAD), Filesz: 120, Memsz: 120})
	return b.Bytes()
}

func ExampleStatic() {
	root, err := os.MkdirTemp("", "image")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	write := func(name string, data []byte, perm os.FileMode) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, data, perm); err != nil {
			log.Fatal(err)
		}
	}
	// A merged-/usr image whose entrypoint script sources a file and then
	// runs its arguments.
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		log.Fatal(err)
	}
	write("usr/bin/sh", staticELF(), 0o755)
	write("usr/local/bin/server", staticELF(), 0o755)
	write("app/entrypoint.sh", []byte("#!/bin/sh\nset -e\n. /app/env.sh\nexec \"$@\"\n"), 0o755)
	write("app/env.sh", []byte("export MODE=production\n"), 0o644)
	write("etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644)

	p, err := profile.Static(context.Background(), profile.DirFS(root), profile.Config{
		Entrypoint: []string{"/app/entrypoint.sh"},
		Cmd:        []string{"server", "--port", "8080"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range p.Files {
		fmt.Println(f)
	}
	// Output:
	// /app/entrypoint.sh
	// /bin
	// /usr/bin/sh
	// /etc/hosts
	// /app/env.sh
	// /usr/local/bin/server
}

func ExampleReadRecordIn() {
	// The record file of "ctr-remote image optimize --record-out".
	record := `{"path":"bin/sh","manifestDigest":"sha256:4f2c","layerIndex":0}
{"path":"usr/lib/x86_64-linux-gnu/libc.so.6","manifestDigest":"sha256:4f2c","layerIndex":0}
{"path":"bin/sh","manifestDigest":"sha256:4f2c","layerIndex":0}
`
	p, err := profile.ReadRecordIn(strings.NewReader(record))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.WriteJSON(os.Stdout); err != nil {
		log.Fatal(err)
	}
	// Output:
	// {
	//   "source": "file",
	//   "files": [
	//     "/bin/sh",
	//     "/usr/lib/x86_64-linux-gnu/libc.so.6"
	//   ]
	// }
}

// A path list names files, directories and wildcards. A directory means that
// directory alone, as a trace names the directories a program lists;
// "DIR/**" means every file below DIR.
func ExampleParse() {
	root, err := os.MkdirTemp("", "image")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	for _, f := range []string{"app/run.sh", "app/static/site.css", "app/static/js/app.js", "app/static/js/lib/util.js"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	list := "# start-up files\n/app/run.sh\n/app/static\n/app/static/js/**\n"
	pr, err := profile.Parse("startup.txt", []byte(list))
	if err != nil {
		log.Fatal(err)
	}
	// A path list is resolved against each image; the image itself is not
	// needed here, its filesystem is.
	p, err := pr.Profile(context.Background(), nil, profile.DirFS(root))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("profiler", path.Dir(pr.Name()), "(then the file's SHA-256)")
	for _, f := range p.Files {
		fmt.Println(f)
	}
	// Output:
	// profiler paths/2 (then the file's SHA-256)
	// /app/run.sh
	// /app/static
	// /app/static/js/app.js
	// /app/static/js/lib/util.js
}
