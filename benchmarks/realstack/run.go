package realstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/stargz-snapshotter/fs/source"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultPrefetchSize is the prefetch size the label handler asks the
// snapshotter for when a layer has no prefetch landmark: 10 MiB, what
// ctr-remote image rpull passes.
const DefaultPrefetchSize = 10 << 20

// remoteLabel marks a snapshot the stargz snapshotter mounted from the
// registry (lazily) instead of unpacking it.
const remoteLabel = "containerd.io/snapshot/remote"

// Ready is the condition under which a started container counts as
// ready: a line of its stdout or stderr matching Line, or Port accepting
// TCP connections on the host (then the container shares the host's
// network; otherwise it has a network namespace of its own).
type Ready struct {
	Line    *regexp.Regexp
	Port    int
	Timeout time.Duration
}

// RunOptions configure one Node.Run.
type RunOptions struct {
	// Snapshotter is SnapshotterStargz or SnapshotterOverlay.
	Snapshotter string
	// Lazy adds stargz-snapshotter's label handler to the pull, so that
	// layers are mounted from the registry as remote snapshots (what
	// ctr-remote image rpull does). Without it the pull is containerd's
	// ordinary pull and unpack.
	Lazy bool
	// PrefetchSize for the label handler; DefaultPrefetchSize when 0.
	PrefetchSize int64
	Ready        Ready
	// AtReady is called the moment the ready condition holds (before the
	// container is stopped): the benchmark reads the registry's log there.
	AtReady func()
}

// RunResult is one start of one image on a node.
type RunResult struct {
	// Seconds from the start of the pull to the ready condition.
	Seconds float64 `json:"seconds"`
	// PullSeconds is the part spent in the pull (resolve, fetch, unpack
	// or remote mount); the rest is create, start and the program's own
	// start-up.
	PullSeconds float64 `json:"pullSeconds"`
	// The rest, split where the client waits: SnapshotSeconds creates
	// the container (its snapshot prepared, which for a lazy image waits
	// for every layer's prefetch, and its spec, which reads /etc/passwd
	// and /etc/group from the snapshot); TaskSeconds creates its task
	// (the shim and runc create); StartSeconds starts it; the program's
	// own start, to the ready condition, is what remains.
	SnapshotSeconds float64 `json:"snapshotSeconds"`
	TaskSeconds     float64 `json:"taskSeconds"`
	StartSeconds    float64 `json:"startSeconds"`
	// Layers in the image; RemoteLayers of them were remote snapshots
	// (mounted lazily, not downloaded); FUSEMounts is the number of
	// stargz FUSE mounts below the node's directory while the container
	// ran.
	Layers       int `json:"layers"`
	RemoteLayers int `json:"remoteLayers"`
	// HeldLayers were snapshots on the node before the pull (a warm
	// node's base); they are neither remote nor downloaded.
	HeldLayers int `json:"heldLayers"`
	FUSEMounts int `json:"fuseMounts"`
}

// Remote says whether every layer the pull brought was a remote snapshot:
// none was downloaded.
func (r *RunResult) Remote() bool { return r.Layers > 0 && r.RemoteLayers+r.HeldLayers == r.Layers }

// Resolver reaches every registry over plain HTTP.
func Resolver() docker.ResolverOptions {
	return docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts))}
}

func namespaced(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, Namespace)
}

// Pull pulls and unpacks ref on the node without running it (the base
// image of a warm node).
func (n *Node) Pull(ctx context.Context, ref, snapshotter string) error {
	c, err := n.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx = namespaced(ctx)
	_, err = c.Pull(ctx, ref, client.WithPullUnpack, client.WithPullSnapshotter(snapshotter),
		client.WithResolver(docker.NewResolver(Resolver())))
	if err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	return nil
}

// Run pulls ref, creates and starts a container from it with the image's
// entrypoint, command, environment, user and working directory, and waits for the ready condition. The clock starts
// before the pull and stops when the condition holds. The container is
// killed and deleted before Run returns; the image stays.
func (n *Node) Run(ctx context.Context, ref, id string, o RunOptions) (_ *RunResult, err error) {
	if o.Ready.Line == nil && o.Ready.Port == 0 {
		return nil, errors.New("no ready condition: give a line or a port")
	}
	if o.Ready.Timeout == 0 {
		o.Ready.Timeout = 120 * time.Second
	}
	if o.PrefetchSize == 0 {
		o.PrefetchSize = DefaultPrefetchSize
	}
	c, err := n.Client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx = namespaced(ctx)
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer done(context.WithoutCancel(ctx))

	// One writer per stream (they are copied by two goroutines), one
	// ready signal.
	ready := make(chan time.Time, 1)
	stdout := &readyWriter{re: o.Ready.Line, ready: ready}
	stderr := &readyWriter{re: o.Ready.Line, ready: ready}
	outputs := func() string { return "stdout:\n" + stdout.tail() + "\nstderr:\n" + stderr.tail() }
	pullOpts := []client.RemoteOpt{
		client.WithPullUnpack,
		client.WithPullSnapshotter(o.Snapshotter),
		client.WithResolver(docker.NewResolver(Resolver())),
	}
	if o.Lazy {
		pullOpts = append(pullOpts, client.WithImageHandlerWrapper(source.AppendDefaultLabelsHandlerWrapper(ref, o.PrefetchSize)))
	}

	held := map[string]bool{}
	if err := c.SnapshotService(o.Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		held[info.Name] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing the snapshots: %w", err)
	}

	start := time.Now()
	img, err := c.Pull(ctx, ref, pullOpts...)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	pulled := time.Now()
	// A network namespace of its own (loopback only, as ctr run gives),
	// or the host's when readiness is a port probed from the host.
	specOpts := []oci.SpecOpts{oci.WithImageConfig(img)}
	if o.Ready.Port != 0 {
		specOpts = append(specOpts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	}
	// runc's state in the node's directory too (its default is
	// /run/containerd/runc).
	runtimeOpts := &runcoptions.Options{Root: filepath.Join(n.cfg.Dir, "runc")}
	ct, err := c.NewContainer(ctx, id,
		client.WithRuntime("io.containerd.runc.v2", runtimeOpts),
		client.WithImage(img),
		client.WithSnapshotter(o.Snapshotter),
		client.WithNewSnapshot(id, img),
		client.WithNewSpec(specOpts...))
	if err != nil {
		return nil, fmt.Errorf("creating container: %w", err)
	}
	defer deleteContainer(context.WithoutCancel(ctx), ct)
	created := time.Now()
	task, err := ct.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, stdout, stderr), cio.WithFIFODir(filepath.Join(n.cfg.Dir, "fifo"))))
	if err != nil {
		return nil, fmt.Errorf("creating task: %w", err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return nil, err
	}
	tasked := time.Now()
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting task: %w", err)
	}
	started := time.Now()
	if o.Ready.Port != 0 {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go pollPort(pctx, o.Ready.Port, ready)
	}
	var readyAt time.Time
	select {
	case readyAt = <-ready:
	case st := <-exited:
		return nil, fmt.Errorf("container exited (status %d) before it was ready; output:\n%s", st.ExitCode(), outputs())
	case <-time.After(o.Ready.Timeout):
		return nil, fmt.Errorf("container not ready after %s; output:\n%s", o.Ready.Timeout, outputs())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if o.AtReady != nil {
		o.AtReady()
	}
	res := &RunResult{Seconds: readyAt.Sub(start).Seconds(), PullSeconds: pulled.Sub(start).Seconds(),
		SnapshotSeconds: created.Sub(pulled).Seconds(), TaskSeconds: tasked.Sub(created).Seconds(), StartSeconds: started.Sub(tasked).Seconds()}
	if err := n.checkRemote(ctx, c, img, o.Snapshotter, held, res); err != nil {
		return nil, err
	}
	return res, nil
}

// checkRemote counts the image's layers that are remote snapshots, those
// held before the pull, and the stargz FUSE mounts below the node's
// directory.
func (n *Node) checkRemote(ctx context.Context, c *client.Client, img client.Image, snapshotter string, held map[string]bool, res *RunResult) error {
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return err
	}
	res.Layers = len(diffIDs)
	sn := c.SnapshotService(snapshotter)
	for _, chain := range identity.ChainIDs(diffIDs) {
		info, err := sn.Stat(ctx, chain.String())
		if err != nil {
			return fmt.Errorf("snapshot of layer %s: %w", chain, err)
		}
		if held[chain.String()] {
			res.HeldLayers++
		} else if _, ok := info.Labels[remoteLabel]; ok {
			res.RemoteLayers++
		}
	}
	for _, m := range readMountinfo() {
		if strings.HasPrefix(m.fstype, "fuse") && m.source == "stargz" && strings.HasPrefix(m.point, n.cfg.Dir+"/") {
			res.FUSEMounts++
		}
	}
	return nil
}

func deleteContainer(ctx context.Context, ct client.Container) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if task, err := ct.Task(ctx, nil); err == nil {
		if st, err := task.Wait(ctx); err == nil {
			if err := task.Kill(ctx, syscall.SIGKILL); err == nil {
				select {
				case <-st:
				case <-ctx.Done():
				}
			}
		}
		_, _ = task.Delete(ctx, client.WithProcessKill)
	}
	_ = ct.Delete(ctx, client.WithSnapshotCleanup)
}

func pollPort(ctx context.Context, port int, ready chan<- time.Time) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for ctx.Err() == nil {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			select {
			case ready <- time.Now():
			default:
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readyWriter receives the container's stdout and stderr, signals the
// first line matching re, and keeps the last output for error messages.
type readyWriter struct {
	re    *regexp.Regexp
	ready chan time.Time
	mu    sync.Mutex
	line  []byte
	last  []byte
	fired bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = append(w.last, p...)
	if len(w.last) > 8<<10 {
		w.last = w.last[len(w.last)-4<<10:]
	}
	if w.re == nil || w.fired {
		return len(p), nil
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.line[:i]), "\r")
		w.line = w.line[i+1:]
		if w.re.MatchString(line) {
			w.fired = true
			w.line = nil
			select {
			case w.ready <- now:
			default:
			}
			return len(p), nil
		}
	}
	return len(p), nil
}

func (w *readyWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.last)
}
