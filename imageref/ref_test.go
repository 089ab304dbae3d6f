package imageref

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	const dgst = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	tests := []struct {
		in   string
		want Ref
	}{
		{"ubuntu", Ref{Transport: TransportRegistry, Name: "ubuntu"}},
		{"ubuntu:22.04", Ref{Transport: TransportRegistry, Name: "ubuntu:22.04"}},
		{"docker://ubuntu:22.04", Ref{Transport: TransportRegistry, Name: "ubuntu:22.04"}},
		{"ghcr.io/org/app@" + dgst, Ref{Transport: TransportRegistry, Name: "ghcr.io/org/app@" + dgst}},
		{"docker://localhost:5000/app:v1", Ref{Transport: TransportRegistry, Name: "localhost:5000/app:v1"}},
		{"127.0.0.1:5000/a/b/c", Ref{Transport: TransportRegistry, Name: "127.0.0.1:5000/a/b/c"}},
		// A registry host named like a transport, with a port, is a registry.
		{"docker:5000/app", Ref{Transport: TransportRegistry, Name: "docker:5000/app"}},
		{"oci:/tmp/layout", Ref{Transport: TransportOCI, Path: "/tmp/layout"}},
		{"oci:layout:v1.2", Ref{Transport: TransportOCI, Path: "layout", Tag: "v1.2"}},
		{"oci:./out:example.com/app:1", Ref{Transport: TransportOCI, Path: "./out", Tag: "example.com/app:1"}},
		{"docker-archive:img.tar", Ref{Transport: TransportDockerArchive, Path: "img.tar"}},
		{"docker-archive:/x/img.tar:app:1.0", Ref{Transport: TransportDockerArchive, Path: "/x/img.tar", Tag: "app:1.0"}},
		{"docker-archive:img.tar:registry.example:5000/app", Ref{Transport: TransportDockerArchive, Path: "img.tar", Tag: "registry.example:5000/app"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			// String gives back something Parse reads the same way.
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(%q) (from String): %v", got.String(), err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("String round trip mismatch (-first +second):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantErr error
	}{
		{"", ErrInvalidReference},
		{"docker://", ErrInvalidReference},
		{"docker://UPPER/case", ErrInvalidReference},
		{"oci:", ErrInvalidReference},
		{"oci::tag", ErrInvalidReference},
		{"oci:dir:", ErrInvalidReference},
		{"oci:dir:bad tag", ErrInvalidReference},
		{"oci:dir:-leading", ErrInvalidReference},
		{"docker-archive:", ErrInvalidReference},
		{"docker-archive:f.tar:", ErrInvalidReference},
		{"docker-archive:f.tar:app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ErrInvalidReference},
		{"docker-archive:f.tar:UPPER", ErrInvalidReference},
		{"dir:/tmp/x", ErrUnsupportedTransport},
		{"oci-archive:img.tar", ErrUnsupportedTransport},
		{"containers-storage:app", ErrUnsupportedTransport},
		{"foo:/tmp/x", ErrUnsupportedTransport},
		{"docker:/app", ErrUnsupportedTransport},
		{"Ubuntu", ErrInvalidReference},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) = %+v, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			if tt.in != "" && !contains(err.Error(), tt.in) {
				t.Errorf("error %q does not name the reference %q", err, tt.in)
			}
		})
	}
}

func TestSameDestination(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		src, dst string
		want     bool
	}{
		{"ubuntu", "docker.io/library/ubuntu:latest", true},
		{"ubuntu", "docker://index.docker.io/library/ubuntu", true},
		{"ubuntu:22.04", "ubuntu:24.04", false},
		{"ubuntu", "ghcr.io/library/ubuntu", false},
		{"oci:" + real + ":a", "oci:" + link + ":a", true},
		{"oci:" + real + ":a", "oci:" + real + ":b", false},
		{"oci:" + real, "oci:" + real + ":b", true},
		{"oci:" + real + "/../real:a", "oci:" + real + ":a", true},
		{"oci:" + real + "/new:a", "oci:" + link + "/new:a", true},
		{"docker-archive:" + real + "/x.tar:a:1", "docker-archive:" + link + "/x.tar:b:2", true},
		{"docker-archive:" + real + "/x.tar", "docker-archive:" + real + "/y.tar", false},
		{"oci:" + real, "docker-archive:" + real, false},
	}
	for _, tt := range tests {
		src, err := Parse(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := Parse(tt.dst)
		if err != nil {
			t.Fatal(err)
		}
		if got := SameDestination(src, dst); got != tt.want {
			t.Errorf("SameDestination(%q, %q) = %v, want %v", tt.src, tt.dst, got, tt.want)
		}
		if got := SameDestination(dst, src); got != tt.want {
			t.Errorf("SameDestination(%q, %q) = %v, want %v", tt.dst, tt.src, got, tt.want)
		}
	}
}
