package realstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// ModulePath is this module's path.
const ModulePath = "github.com/coldstart-dev/coldstart/benchmarks/realstack"

// Binaries are the programs Install builds into the bin directory, each
// from the package beside it, at the versions this module's go.mod pins.
var Binaries = map[string]string{
	"containerd":              "github.com/containerd/containerd/v2/cmd/containerd",
	"ctr":                     "github.com/containerd/containerd/v2/cmd/ctr",
	"containerd-shim-runc-v2": "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
	"stargz-grpc":             ModulePath + "/cmd/stargz-grpc",
}

// buildTags leave out the containerd plugins the benchmark does not use
// (and, with them, cgo): btrfs, devmapper and zfs snapshotters, the CRI
// plugin, tracing.
const buildTags = "no_btrfs no_cri no_devmapper no_zfs no_tracing"

// Install builds the stack's binaries into binDir with go build from the
// module in moduleDir (CGO_ENABLED=0, -trimpath). It does nothing when a
// stamp in binDir says the binaries were built from the same go.mod,
// go.sum, snapshotter source and Go version. Build output goes to log.
func Install(ctx context.Context, moduleDir, binDir string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	stamp, err := installStamp(moduleDir)
	if err != nil {
		return err
	}
	stampFile := filepath.Join(binDir, ".stamp")
	if b, err := os.ReadFile(stampFile); err == nil && string(b) == stamp && haveBinaries(binDir) {
		return nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	for name, pkg := range Binaries {
		fmt.Fprintf(log, "go build %s\n", pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", buildTags, "-o", filepath.Join(binDir, name), pkg)
		cmd.Dir = moduleDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
	}
	return os.WriteFile(stampFile, []byte(stamp), 0o644)
}

func haveBinaries(binDir string) bool {
	for name := range Binaries {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			return false
		}
	}
	return true
}

func installStamp(moduleDir string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", runtime.Version(), buildTags)
	for _, f := range []string{"go.mod", "go.sum", "cmd/stargz-grpc/main.go"} {
		b, err := os.ReadFile(filepath.Join(moduleDir, f))
		if err != nil {
			return "", fmt.Errorf("reading %s of the realstack module: %w", f, err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FindModule returns the directory of this module: dir or one of its
// parents holding its go.mod, or benchmarks/realstack below the
// coldstart repository that holds dir.
func FindModule(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		for _, cand := range []string{d, filepath.Join(d, "benchmarks", "realstack")} {
			if b, err := os.ReadFile(filepath.Join(cand, "go.mod")); err == nil &&
				strings.HasPrefix(string(b), "module "+ModulePath+"\n") {
				return cand, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", errors.New("not inside the coldstart repository: cannot find the " + ModulePath + " module")
		}
	}
}

// CheckHost reports what the stack needs from the host and is missing:
// root, runc, fusermount3 (fuse3), docker-registry, skopeo, ip and tc.
func CheckHost() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("the real stack needs root"))
	}
	for tool, pkg := range map[string]string{"runc": "runc", "fusermount3": "fuse3", "docker-registry": "docker-registry",
		"skopeo": "skopeo", "ip": "iproute2", "tc": "iproute2"} {
		if _, err := exec.LookPath(tool); err != nil {
			errs = append(errs, fmt.Errorf("%s not found (apt-get install %s)", tool, pkg))
		}
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		errs = append(errs, errors.New("/dev/fuse missing: FUSE is needed for lazy pulling"))
	}
	return errors.Join(errs...)
}
