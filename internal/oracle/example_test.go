package oracle_test

import (
	"bytes"
	"fmt"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	ti "github.com/coldstart-dev/coldstart/internal/testimage"
)

// Layer 0 has a file, layer 1 hard-links it, layer 2 deletes the original.
// An optimizer that drops the file from layer 0 because no container sees
// it at its path breaks the link; one that turns the link into a copy
// keeps the filesystem.
func Example() {
	read := func(layers ...ti.Layer) []*oracle.Layer {
		var out []*oracle.Layer
		for _, l := range layers {
			x, err := oracle.ReadLayer(bytes.NewReader(l.Tar()))
			if err != nil {
				panic(err)
			}
			out = append(out, x)
		}
		return out
	}
	src, err := oracle.Apply(read(
		ti.Layer{ti.Dir("etc", 0o755), ti.File("etc/app.conf", "port=80\n", ti.Mode(0o640))},
		ti.Layer{ti.Hardlink("srv/app.conf", "etc/app.conf", ti.Mode(0o640))},
		ti.Layer{ti.Whiteout("etc/app.conf")},
	)...)
	if err != nil {
		panic(err)
	}
	fmt.Print(src)

	_, err = oracle.Apply(read(
		ti.Layer{ti.Dir("etc", 0o755)},
		ti.Layer{ti.Hardlink("srv/app.conf", "etc/app.conf", ti.Mode(0o640))},
		ti.Layer{ti.Whiteout("etc/app.conf")},
	)...)
	fmt.Println("dropped:", err)

	copied, err := oracle.Apply(read(
		ti.Layer{ti.Dir("etc", 0o755)},
		ti.Layer{ti.File("srv/app.conf", "port=80\n", ti.Mode(0o640))},
	)...)
	if err != nil {
		panic(err)
	}
	fmt.Print("copied: ", oracle.Compare(src, copied, oracle.IgnoreMTime()))
	fmt.Println("equal:", oracle.Compare(src, copied, oracle.IgnoreMTime()).Equal())
	// Output:
	// etc dir 0755 0:0 mtime=?
	// srv dir 0755 0:0 mtime=?
	// srv/app.conf file 0640 0:0 8 sha256:8ac56ba2b165 mtime=2024-01-01T00:00:00Z
	// dropped: layer does not apply: layer 1 entry 0 (srv/app.conf): hard link target /etc/app.conf does not exist
	// copied: equal: true
}
