package report

import (
	"context"
	"fmt"

	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/internal/shaper"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/google/go-containerregistry/pkg/name"
)

// Measurement is a real full pull and a real lazy start of the image,
// beside what the model predicted for them on the same network.
type Measurement struct {
	// Client says what measured: coldstart's built-in pull client
	// (internal/lazypull), which fetches and unpacks as containerd and a
	// lazy snapshotter would but starts no container and reads no file
	// through FUSE. The real stack (containerd + stargz-snapshotter +
	// runc) is measured by benchmarks/realstack, not here.
	Client string `json:"client"`
	// Network is the shaping applied ("unshaped" for the bare network).
	Network string `json:"network"`
	// RequestSeconds is the registry's time per request beyond the round
	// trip, probed through the same path before the runs and used for the
	// predictions here.
	RequestSeconds float64 `json:"requestSeconds"`
	FullPull       Run     `json:"fullPull"`
	LazyStart      Run     `json:"lazyStart"`
}

// BuiltInClient is Measurement.Client for coldstart's own pull client.
const BuiltInClient = "built-in pull client (no container runtime, no FUSE; the node-side costs are left out of these predictions)"

// Run is one measured start and its prediction.
type Run struct {
	Seconds           float64 `json:"seconds"`
	Bytes             int64   `json:"bytes"`
	Requests          int     `json:"requests"`
	PredictedSeconds  float64 `json:"predictedSeconds"`
	PredictedBytes    int64   `json:"predictedBytes"`
	PredictedRequests int     `json:"predictedRequests"`
	// Error is (predicted - measured) / measured seconds.
	Error float64 `json:"error"`
	// MountedSeconds is when every layer was downloaded (full pull) or
	// mounted (lazy start), measured and predicted.
	MountedSeconds          float64 `json:"mountedSeconds"`
	PredictedMountedSeconds float64 `json:"predictedMountedSeconds"`
}

// measure pulls the image for real, shaped if asked, and records the
// figures beside the prediction for the same network.
func (o *options) measure(ctx context.Context, r *Report, m *model, prof *profile.Profile) error {
	net := Network{Name: "unshaped"}
	if o.shaping != nil {
		net = *o.shaping
		for _, e := range r.Estimates {
			if e.BytesPerSecond == net.BytesPerSecond && e.RTTSeconds == net.RTT.Seconds() {
				net.Name = e.Network
				break
			}
		}
	}
	lopts := []lazypull.Option{lazypull.WithInsecure(o.insecure), lazypull.WithLogger(o.logger), lazypull.WithTempDir(o.tempDir),
		lazypull.WithConcurrency(o.concurrency)}
	if o.platform != nil {
		lopts = append(lopts, lazypull.WithPlatform(*o.platform))
	}
	for _, l := range m.layers {
		if l.onNode() {
			lopts = append(lopts, lazypull.WithHeld(l.desc.Digest), lazypull.WithLayerIndex(l.desc.Digest, l.idx))
		}
	}
	ref, stop, err := o.proxy(net)
	if err != nil {
		return err
	}
	defer stop()
	// The registry's time per request: small requests through the same
	// path, less the round trip.
	probe, err := lazypull.Probe(ctx, ref, lazypull.DefaultProbeRequests, lopts...)
	if err != nil {
		return fmt.Errorf("measuring the registry's time per request: %w", err)
	}
	overhead := max(0, probe-net.RTT)
	o.logger.Debug("measuring a full pull", "ref", ref, "network", net.Name, "requestSeconds", overhead.Seconds())
	full, err := lazypull.FullPull(ctx, ref, lopts...)
	if err != nil {
		return fmt.Errorf("measuring a full pull: %w", err)
	}
	o.logger.Debug("measuring a lazy start", "ref", ref, "network", net.Name)
	lazy, err := lazypull.Start(ctx, ref, prof.Files, lopts...)
	if err != nil {
		return fmt.Errorf("measuring a lazy start: %w", err)
	}
	mm := *m
	mm.rates = m.rates.BuiltInClient()
	mm.rates.Request = overhead.Seconds()
	mm.start = mm.rates.containerStart(prof)
	fb, lb := mm.fullPull(), mm.lazyStart(false)
	r.Measured = &Measurement{
		Client:         BuiltInClient,
		Network:        net.Name,
		RequestSeconds: roundSeconds(overhead.Seconds()),
		FullPull:       run(full, fb.phases(simulate(&fb.p, net)), fb.cost),
		LazyStart:      run(lazy, lb.phases(simulate(&lb.p, net)), lb.cost),
	}
	return nil
}

// proxy returns the reference to measure through, and a function that
// stops what it started: the shaping proxy set to n, or the registry itself
// when there is no shaping.
func (o *options) proxy(n Network) (string, func(), error) {
	ref := o.measureRef
	if o.shaping == nil {
		return ref, func() {}, nil
	}
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	pr, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return "", nil, fmt.Errorf("measuring: %w", err)
	}
	reg := pr.Context().Registry
	p, err := shaper.Start(reg.Scheme()+"://"+reg.RegistryStr(), shaper.WithRate(n.BytesPerSecond),
		shaper.WithRTT(n.RTT), shaper.WithLogger(o.logger))
	if err != nil {
		return "", nil, fmt.Errorf("measuring: %w", err)
	}
	// The proxy listens on 127.0.0.1, which clients reach over plain HTTP.
	sep := ":"
	if _, ok := pr.(name.Digest); ok {
		sep = "@"
	}
	return p.Host + "/" + pr.Context().RepositoryStr() + sep + pr.Identifier(), func() { p.Close() }, nil
}

func run(res *lazypull.Result, ph Phases, cost ScenarioCost) Run {
	s := res.Duration.Seconds()
	mounted := ph.Download + ph.Unpack
	if ph.Scenario == FullPull {
		mounted = ph.Download
	}
	ru := Run{
		Seconds: roundSeconds(s), Bytes: res.Bytes, Requests: res.Requests,
		PredictedSeconds: roundSeconds(ph.Total), PredictedBytes: cost.Bytes, PredictedRequests: cost.Requests,
		MountedSeconds: roundSeconds(res.Mounted.Seconds()), PredictedMountedSeconds: roundSeconds(mounted),
	}
	if s > 0 {
		ru.Error = roundSeconds((ph.Total - s) / s)
	}
	return ru
}
