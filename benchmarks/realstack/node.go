package realstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// Namespace is the containerd namespace the benchmark works in.
const Namespace = "realstack"

// Snapshotter names as containerd knows them.
const (
	// SnapshotterStargz is the stargz-snapshotter proxy plugin.
	SnapshotterStargz = "stargz"
	// SnapshotterOverlay is containerd's built-in overlayfs snapshotter.
	SnapshotterOverlay = "overlayfs"
)

// NodeConfig configures a Node.
type NodeConfig struct {
	// Bin holds containerd, containerd-shim-runc-v2 and stargz-grpc
	// (see Install). Required.
	Bin string
	// Dir holds everything of the node: containerd's root and state, the
	// snapshotter's root, the sockets, configs and logs. Required; it is
	// removed by Wipe.
	Dir string
	// Registry is the HOST:PORT the snapshotter reaches over plain HTTP.
	Registry string
}

// Node is one containerd with the stargz snapshotter beside it, all of
// its state in one directory.
type Node struct {
	cfg         NodeConfig
	Address     string // containerd's socket
	snapAddress string
	containerd  *proc
	snapshotter *proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// NewNode returns a stopped node.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.Bin == "" || cfg.Dir == "" {
		return nil, errors.New("node: Bin and Dir are required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	// ctr -a and the shims want absolute socket paths.
	return &Node{cfg: cfg, Address: filepath.Join(dir, "containerd.sock"), snapAddress: filepath.Join(dir, "stargz.sock")}, nil
}

func (n *Node) containerdConfig() string {
	d := n.cfg.Dir
	return fmt.Sprintf(`version = 3
root = %q
state = %q

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = %q
  level = "info"

[proxy_plugins]
  [proxy_plugins.stargz]
    type = "snapshot"
    address = %q
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"),
		n.Address, n.Address+".ttrpc", filepath.Join(d, "containerd-debug.sock"), n.snapAddress)
}

func (n *Node) snapshotterConfig() string {
	// Plain HTTP to the benchmark registry: a mirror of itself marked
	// insecure. Everything else is stargz-snapshotter's default.
	return fmt.Sprintf(`[[resolver.host.%q.mirrors]]
host = %q
insecure = true
`, n.cfg.Registry, n.cfg.Registry)
}

// Start starts the snapshotter, then containerd, and waits until both
// answer.
func (n *Node) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	for _, d := range []string{n.cfg.Dir, filepath.Join(n.cfg.Dir, "stargz")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	snapCfg := filepath.Join(n.cfg.Dir, "stargz.toml")
	if err := os.WriteFile(snapCfg, []byte(n.snapshotterConfig()), 0o600); err != nil {
		return err
	}
	ctrdCfg := filepath.Join(n.cfg.Dir, "containerd.toml")
	if err := os.WriteFile(ctrdCfg, []byte(n.containerdConfig()), 0o600); err != nil {
		return err
	}
	n.snapshotter, err = n.spawn("stargz-grpc", filepath.Join(n.cfg.Bin, "stargz-grpc"),
		"-address", n.snapAddress, "-root", filepath.Join(n.cfg.Dir, "stargz"), "-config", snapCfg)
	if err != nil {
		return err
	}
	if err := n.waitSocket(ctx, n.snapAddress, n.snapshotter); err != nil {
		return fmt.Errorf("stargz snapshotter: %w", err)
	}
	n.containerd, err = n.spawn("containerd", filepath.Join(n.cfg.Bin, "containerd"), "--config", ctrdCfg)
	if err != nil {
		return err
	}
	if err := n.waitSocket(ctx, n.Address, n.containerd); err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	c, err := n.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Version(vctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd does not answer: %w\n%s", err, n.logTail("containerd"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client connects to the node's containerd, in Namespace.
func (n *Node) Client() (*client.Client, error) {
	return client.New(n.Address, client.WithDefaultNamespace(Namespace), client.WithTimeout(10*time.Second))
}

func (n *Node) spawn(name, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(n.cfg.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// containerd finds containerd-shim-runc-v2 on PATH, runc too.
	cmd.Env = append(os.Environ(), "PATH="+n.cfg.Bin+":"+os.Getenv("PATH"))
	// Its own process group: a Ctrl-C at the terminal reaches the
	// benchmark, which then stops the node in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logf}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (n *Node) waitSocket(ctx context.Context, path string, p *proc) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited: %s", n.logTail(filepath.Base(p.cmd.Path)))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no socket %s after 20s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *Node) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(n.cfg.Dir, name+".log"))
	return tail(b, 3000)
}

// Stop deletes every container and task left in Namespace, ends the
// shims, containerd and the snapshotter (which unmounts its FUSE mounts),
// and unmounts whatever is still mounted below Dir. It is safe to call on
// a stopped or half-started node.
func (n *Node) Stop() {
	if n.containerd != nil {
		n.deleteContainers()
		stopProc(n.containerd, 10*time.Second)
		n.containerd = nil
	}
	n.killShims()
	if n.snapshotter != nil {
		stopProc(n.snapshotter, 20*time.Second)
		n.snapshotter = nil
	}
	unmountBelow(n.cfg.Dir)
}

// Wipe stops the node and removes its directory: the next Start begins
// with no images, no content and no snapshots.
func (n *Node) Wipe() error {
	n.Stop()
	if err := os.RemoveAll(n.cfg.Dir); err != nil {
		// A busy mount: detach it and try once more.
		unmountBelow(n.cfg.Dir)
		return os.RemoveAll(n.cfg.Dir)
	}
	return nil
}

func (n *Node) deleteContainers() {
	c, err := n.Client()
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = namespaced(ctx)
	cs, err := c.Containers(ctx)
	if err != nil {
		return
	}
	for _, ct := range cs {
		deleteContainer(ctx, ct)
	}
}

// killShims ends the shims this node's containerd started (they outlive
// it by design); they are found by the containerd address in their
// command line.
func (n *Node) killShims() {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid <= 1 {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" {
			continue
		}
		for i := range args {
			if args[i] == "-address" && i+1 < len(args) && args[i+1] == n.Address {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func stopProc(p *proc, grace time.Duration) {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.log.Close()
}

// unmountBelow detaches every mount at or below dir, deepest first.
func unmountBelow(dir string) {
	for range 3 {
		mps := mountsBelow(dir)
		if len(mps) == 0 {
			return
		}
		for _, mp := range mps {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
}

// mountsBelow lists the mount points at or below dir, deepest first.
func mountsBelow(dir string) []string {
	var out []string
	for _, m := range readMountinfo() {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

type mountEntry struct {
	point, fstype, source string
}

func readMountinfo() []mountEntry {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		out = append(out, mountEntry{point: unescapeOctal(fields[4]), fstype: fields[sep+1], source: unescapeOctal(fields[sep+2])})
	}
	return out
}

// unescapeOctal undoes mountinfo's \NNN escapes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// DropCaches writes back dirty pages and drops the page cache, dentries
// and inodes (echo 3 > /proc/sys/vm/drop_caches).
func DropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}
