package profile_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/coldstart-dev/coldstart/optimize/profile"
)

// Run records what a program really opens at start. The Filler writes the
// image's root filesystem; coldstart's CLI extracts the image's layers, this
// example copies a static busybox from the host. The example needs root on
// Linux, so it is compiled but not run by go test.
func ExampleRun() {
	fill := func(ctx context.Context, dir string) error {
		b, err := os.ReadFile("/bin/busybox")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755)
	}
	cfg := profile.Config{Entrypoint: []string{"/bin/busybox", "sh", "-c", "echo ready"}}
	p, err := profile.Run(context.Background(), fill, cfg, profile.WithPeriod(5*time.Second))
	if errors.Is(err, profile.ErrRunUnsupported) {
		fmt.Println("cannot run here; use profile.Static:", err)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Files) // [/bin/busybox]
}
