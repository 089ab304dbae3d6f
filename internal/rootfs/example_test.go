package rootfs_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/coldstart-dev/coldstart/internal/rootfs"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Extract writes only what a container sees: here the second layer deletes
// a file of the first and replaces another.
func ExampleExtract() {
	base := testimage.Layer{
		testimage.Dir("etc", 0o755),
		testimage.File("etc/os-release", "ID=demo\n"),
		testimage.File("etc/secret", "deleted later\n"),
		testimage.Symlink("etc/alias", "os-release"),
	}
	app := testimage.Layer{
		testimage.Whiteout("etc/secret"),
		testimage.File("etc/os-release", "ID=demo2\n"),
		testimage.File("app/run", "#!/bin/sh\n", testimage.Mode(0o755)),
	}
	var ls []v1.Layer
	var idxs []*layers.Index
	for _, l := range []testimage.Layer{base, app} {
		vl, err := l.Compressed(compression.GZip)
		if err != nil {
			log.Fatal(err)
		}
		idx, err := layers.IndexLayer(context.Background(), vl)
		if err != nil {
			log.Fatal(err)
		}
		ls, idxs = append(ls, vl), append(idxs, idx)
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rootfs-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := rootfs.Extract(context.Background(), dir, ls, ov); err != nil {
		log.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Printf("%s -> %s\n", rel, target)
		case d.IsDir():
			fmt.Printf("%s/\n", rel)
		default:
			b, _ := os.ReadFile(p)
			fmt.Printf("%s %v %q\n", rel, info.Mode(), b)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// app/
	// app/run -rwxr-xr-x "#!/bin/sh\n"
	// etc/
	// etc/alias -> os-release
	// etc/os-release -rw-r--r-- "ID=demo2\n"
}
