package progress_test

import (
	"io"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/progress"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestLayer(t *testing.T) {
	data := strings.Repeat("x", 100_000)
	inner := static.NewLayer([]byte(data), types.OCILayer)
	var last int64
	calls := 0
	l := progress.Layer(inner, func(n int64) {
		if n <= last {
			t.Errorf("report %d after %d: not growing", n, last)
		}
		last = n
		calls++
	})
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != data {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if last != int64(len(data)) || calls == 0 {
		t.Errorf("reported %d bytes in %d calls, want %d", last, calls, len(data))
	}
	wd, _ := partial.Descriptor(inner)
	gd, err := partial.Descriptor(l)
	if err != nil || gd.Digest != wd.Digest || gd.Size != wd.Size || gd.MediaType != wd.MediaType {
		t.Errorf("descriptor %+v, want %+v (%v)", gd, wd, err)
	}
	if progress.Unwrap(l) != inner {
		t.Error("Unwrap does not return the wrapped layer")
	}
}
