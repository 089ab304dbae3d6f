package realstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// RegistryConfig configures StartRegistry.
type RegistryConfig struct {
	// Dir holds the registry's storage, config and access log. Required.
	Dir string
	// RateMbit is the rate of the registry's egress (what clients pull),
	// in Mbit/s, shaped by tc tbf on the registry side of the veth pair.
	// 0 leaves the link unshaped.
	RateMbit float64
	// BurstKbit is tbf's burst (default 128).
	BurstKbit int
	// LatencyMs is tbf's latency: the longest a packet may wait in the
	// shaper's queue (default 50). It bounds the queue; it adds no delay to
	// an idle link.
	LatencyMs int
}

// Registry is Debian's docker-registry (CNCF distribution 2.8) running in
// a network namespace of its own, reached from the host over a veth pair
// whose registry-side egress is shaped.
type Registry struct {
	// Host is "ADDR:PORT", the registry's address seen from the host.
	Host string
	// Netns is the name of the registry's network namespace.
	Netns string

	hostIf  string
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
	logFile *os.File
	cfg     RegistryConfig
}

// registryPort is the port the registry listens on inside its namespace.
const registryPort = 5000

// StartRegistry creates the namespace and the veth pair, shapes the link,
// starts docker-registry inside and waits until it answers. Stop undoes
// all of it; on error nothing is left behind.
func StartRegistry(ctx context.Context, cfg RegistryConfig) (_ *Registry, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("registry: no directory")
	}
	if cfg.BurstKbit == 0 {
		cfg.BurstKbit = 128
	}
	if cfg.LatencyMs == 0 {
		cfg.LatencyMs = 50
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry not installed (apt-get install docker-registry): %w", err)
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not installed (apt-get install iproute2): %w", tool, err)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	// One namespace and one /30 per process: two runs on one machine do
	// not collide.
	pid := os.Getpid()
	r := &Registry{
		Netns:   fmt.Sprintf("csrs-%d", pid),
		hostIf:  fmt.Sprintf("csrs%dh", pid%100000),
		logPath: filepath.Join(cfg.Dir, "registry.log"),
		cfg:     cfg,
	}
	regIf := fmt.Sprintf("csrs%dr", pid%100000)
	subnet := 20 + pid%200
	hostAddr := fmt.Sprintf("10.213.%d.1", subnet)
	regAddr := fmt.Sprintf("10.213.%d.2", subnet)
	r.Host = fmt.Sprintf("%s:%d", regAddr, registryPort)
	defer func() {
		if err != nil {
			r.Stop()
		}
	}()
	steps := [][]string{
		{"ip", "netns", "add", r.Netns},
		{"ip", "link", "add", r.hostIf, "type", "veth", "peer", "name", regIf},
		{"ip", "link", "set", regIf, "netns", r.Netns},
		{"ip", "addr", "add", hostAddr + "/30", "dev", r.hostIf},
		{"ip", "link", "set", r.hostIf, "up"},
		{"ip", "-n", r.Netns, "addr", "add", regAddr + "/30", "dev", regIf},
		{"ip", "-n", r.Netns, "link", "set", regIf, "up"},
		{"ip", "-n", r.Netns, "link", "set", "lo", "up"},
	}
	if cfg.RateMbit > 0 {
		steps = append(steps, []string{"tc", "-n", r.Netns, "qdisc", "add", "dev", regIf, "root", "tbf",
			"rate", fmt.Sprintf("%gmbit", cfg.RateMbit), "burst", fmt.Sprintf("%dkbit", cfg.BurstKbit),
			"latency", fmt.Sprintf("%dms", cfg.LatencyMs)})
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	conf := strings.Join([]string{
		"version: 0.1",
		"log:",
		"  level: warn",
		"  accesslog:",
		"    disabled: false",
		"storage:",
		"  filesystem:",
		"    rootdirectory: " + filepath.Join(cfg.Dir, "storage"),
		"  delete:",
		"    enabled: true",
		"http:",
		"  addr: " + r.Host,
		"",
	}, "\n")
	confPath := filepath.Join(cfg.Dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	r.logFile, err = os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command("ip", "netns", "exec", r.Netns, bin, "serve", confPath)
	r.cmd.Stdout, r.cmd.Stderr = r.logFile, r.logFile
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Host+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case <-r.done:
			out, _ := os.ReadFile(r.logPath)
			return nil, fmt.Errorf("docker-registry exited: %s", tail(out, 2000))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("docker-registry did not answer on %s: %v", r.Host, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ref returns a reference to repo:tag on this registry.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// Stop ends the registry and removes its namespace and veth pair. It is
// safe to call more than once and on a half-started registry.
func (r *Registry) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		if r.done != nil {
			<-r.done
		}
		r.cmd = nil
	}
	if r.logFile != nil {
		r.logFile.Close()
		r.logFile = nil
	}
	ctx := context.Background()
	// Deleting the namespace deletes the veth end inside it, and with it
	// the host end; deleting the host end covers a half-made pair.
	_ = run(ctx, "ip", "netns", "del", r.Netns)
	if exec.Command("ip", "link", "show", r.hostIf).Run() == nil {
		_ = run(ctx, "ip", "link", "del", r.hostIf)
	}
}

// LogOffset is the current end of the access log: Traffic between two
// offsets counts the requests completed between them.
func (r *Registry) LogOffset() (int64, error) {
	fi, err := os.Stat(r.logPath)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Traffic is what the registry served, read from its access log.
type Traffic struct {
	// Requests is every HTTP request logged.
	Requests int `json:"requests"`
	// BlobGETs are GETs of blobs; RangeGETs those answered 206.
	BlobGETs  int `json:"blobGETs"`
	RangeGETs int `json:"rangeGETs"`
	// Bytes is the sum of the response bytes written, BlobBytes that of
	// the blob GETs.
	Bytes     int64 `json:"bytes"`
	BlobBytes int64 `json:"blobBytes"`
}

// accessLine matches a line of the combined access log the registry writes:
// HOST - USER [DATE] "METHOD URI PROTO" STATUS BYTES "REFERER" "AGENT".
var accessLine = regexp.MustCompile(`^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)`)

// Traffic counts the requests logged between two offsets of the log.
func (r *Registry) Traffic(from, to int64) (Traffic, error) {
	f, err := os.Open(r.logPath)
	if err != nil {
		return Traffic{}, err
	}
	defer f.Close()
	return parseAccessLog(io.NewSectionReader(f, from, to-from))
}

func parseAccessLog(rd io.Reader) (Traffic, error) {
	var t Traffic
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := accessLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(m[4], 10, 64)
		t.Requests++
		t.Bytes += n
		if m[1] == http.MethodGet && strings.Contains(m[2], "/blobs/") {
			t.BlobGETs++
			t.BlobBytes += n
			if m[3] == "206" {
				t.RangeGETs++
			}
		}
	}
	return t, sc.Err()
}

// run runs a command and returns its output in the error when it fails.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
