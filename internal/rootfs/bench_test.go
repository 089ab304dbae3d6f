package rootfs

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
)

// BenchmarkExtract extracts a 2000-file, 8 MiB gzip layer: the fixed cost
// of a run profile before the entrypoint starts.
func BenchmarkExtract(b *testing.B) {
	var l testimage.Layer
	content := string(make([]byte, 4096))
	for d := range 20 {
		l = append(l, testimage.Dir(fmt.Sprintf("d%02d", d), 0o755))
		for f := range 100 {
			l = append(l, testimage.File(fmt.Sprintf("d%02d/f%03d", d, f), content, testimage.Mode(0o644)))
		}
	}
	ls, ov := build(b, l.Tar())
	b.SetBytes(int64(len(l) * 4096))
	b.ResetTimer()
	for b.Loop() {
		dir, err := os.MkdirTemp(b.TempDir(), "x")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Extract(context.Background(), dir, ls, ov); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}
