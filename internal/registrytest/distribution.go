package registrytest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Distribution is a real registry server: Debian's docker-registry (the
// CNCF distribution registry), started for one test with its own storage.
type Distribution struct {
	// Host is "127.0.0.1:PORT".
	Host string
	// Dir is the storage directory.
	Dir string
	cmd *exec.Cmd
	log *os.File
}

// RequireTools reports whether tests must fail, rather than skip, when a
// tool they need (docker-registry, skopeo, ...) is missing. CI sets
// COLDSTART_REQUIRE_TOOLS=1.
func RequireTools() bool { return os.Getenv("COLDSTART_REQUIRE_TOOLS") == "1" }

// SkipOrFail skips the test, or fails it when RequireTools is set, saying
// why.
func SkipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireTools() {
		tb.Fatalf("%s (COLDSTART_REQUIRE_TOOLS=1)", msg)
	}
	tb.Skip(msg)
}

// StartDistribution starts docker-registry on a free loopback port with a
// temporary storage directory, waits until it answers, and stops it when
// the test ends. Without the binary the test is skipped (or fails, see
// RequireTools).
func StartDistribution(tb testing.TB) *Distribution {
	tb.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		SkipOrFail(tb, "docker-registry not installed (apt-get install docker-registry)")
	}
	d, err := LaunchDistribution(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.Stop)
	return d
}

// LaunchDistribution starts docker-registry on a free loopback port with
// its storage and config under dir, and waits until it answers. The caller
// stops it with Stop.
func LaunchDistribution(dir string) (*Distribution, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry not installed (apt-get install docker-registry): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := strings.Join([]string{
		"version: 0.1",
		"log:",
		"  level: warn",
		"  accesslog:",
		"    disabled: true",
		"storage:",
		"  filesystem:",
		"    rootdirectory: " + filepath.Join(dir, "storage"),
		"  delete:",
		"    enabled: true",
		"http:",
		"  addr: " + host,
		"",
	}, "\n")
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	d := &Distribution{Host: host, Dir: dir, cmd: cmd, log: logf}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logf.Name())
			d.Stop()
			return nil, fmt.Errorf("docker-registry did not answer on %s: %v\n%s", host, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ref returns a reference to repo:tag on this registry.
func (d *Distribution) Ref(repoTag string) string { return d.Host + "/" + repoTag }

// Stop ends the server; it is safe to call twice.
func (d *Distribution) Stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	_, _ = d.cmd.Process.Wait()
	d.cmd = nil
	d.log.Close()
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
