package realstack

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readLayoutManifest reads the one image manifest of an OCI layout (the
// first manifest of its index).
func readLayoutManifest(dir string) (*ocispec.Manifest, error) {
	var idx ocispec.Index
	if err := readJSON(filepath.Join(dir, "index.json"), &idx); err != nil {
		return nil, err
	}
	for _, d := range idx.Manifests {
		if d.MediaType != ocispec.MediaTypeImageManifest && d.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
			continue
		}
		var m ocispec.Manifest
		if err := readJSON(filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()), &m); err != nil {
			return nil, err
		}
		return &m, nil
	}
	return nil, fmt.Errorf("%s: no image manifest in index.json", dir)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Versions names the versions of the stack: containerd and
// stargz-snapshotter as this program was built with (the same go.mod the
// binaries are built from), runc, docker-registry, Go and the kernel.
func Versions(bin string) map[string]string {
	v := map[string]string{"go": runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/containerd/containerd/v2":
				v["containerd"] = d.Version
			case "github.com/containerd/stargz-snapshotter":
				v["stargz-snapshotter"] = d.Version
			}
		}
	}
	if bin != "" {
		if out, err := exec.Command(filepath.Join(bin, "containerd"), "--version").Output(); err == nil {
			v["containerd-binary"] = strings.TrimSpace(string(out))
		}
	}
	for name, args := range map[string][]string{"runc": {"runc", "--version"}, "docker-registry": {"docker-registry", "--version"},
		"skopeo": {"skopeo", "--version"}} {
		if out, err := exec.Command(args[0], args[1:]...).Output(); err == nil {
			v[name] = firstLine(strings.TrimSpace(string(out)))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		v["kernel"] = strings.TrimSpace(string(b))
	}
	return v
}
