package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/internal/units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Comparison is two images side by side: typically an image before and
// after `coldstart optimize`.
type Comparison struct {
	Version int     `json:"version"`
	Before  *Report `json:"before"`
	After   *Report `json:"after"`
	// Ratios are after / before, for bytes and for seconds on every
	// network.
	Ratios []Ratio `json:"ratios"`
	// Notes say why after is not faster than before, on each network
	// where its lazy start is not faster (or its full pull slower); none
	// when it is.
	Notes []string `json:"notes,omitempty"`
}

// Ratio compares one figure.
type Ratio struct {
	// Metric is "<scenario>Bytes" or "<scenario>Seconds".
	Metric string `json:"metric"`
	// Network is set for seconds.
	Network string  `json:"network,omitempty"`
	Before  float64 `json:"before"`
	After   float64 `json:"after"`
	// Ratio is After / Before, 0 when Before is 0.
	Ratio float64 `json:"ratio"`
}

// Compare estimates both images with the same options and the same
// start-up files: the profile (WithProfile, or found in before with
// WithProfiler or profile.Static) is applied to after too, so that the
// figures compare the same work. Measurement is not supported here.
func Compare(ctx context.Context, before, after v1.Image, opts ...Option) (*Comparison, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.measureRef != "" {
		return nil, errors.New("report: Compare does not measure: estimate each image with WithMeasurement instead")
	}
	b, prof, err := o.estimateProfile(ctx, before)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	a, err := o.estimate(ctx, after, prof)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	return newComparison(b, a), nil
}

// newComparison puts two reports side by side.
func newComparison(b, a *Report) *Comparison {
	c := &Comparison{Version: Version, Before: b, After: a}
	for _, s := range []struct {
		metric string
		b, a   int64
	}{
		{"fullPullBytes", b.FullPullBytes, a.FullPullBytes},
		{"lazyStartBytes", b.LazyStartBytes, a.LazyStartBytes},
		{"lowerBoundBytes", b.LowerBoundBytes, a.LowerBoundBytes},
	} {
		c.Ratios = append(c.Ratios, newRatio(s.metric, "", float64(s.b), float64(s.a)))
	}
	for i, eb := range b.Estimates {
		if i >= len(a.Estimates) {
			break
		}
		ea := a.Estimates[i]
		c.Ratios = append(c.Ratios,
			newRatio("fullPullSeconds", eb.Network, eb.FullPullSeconds, ea.FullPullSeconds),
			newRatio("lazyStartSeconds", eb.Network, eb.LazyStartSeconds, ea.LazyStartSeconds))
		if b.Digest != a.Digest {
			c.Notes = append(c.Notes, notFaster(b, a, eb, ea)...)
		}
	}
	return c
}

// notFaster explains, for one network, a lazy start that is not faster
// after (less than 2% faster, or slower) and a full pull that is slower
// (by more than 2%: a full pull of an image without waste stays as it
// was), from the figures of both reports.
func notFaster(b, a *Report, eb, ea NetworkEstimate) []string {
	var notes []string
	head := func(s Scenario, what string, bs, as float64) string {
		return fmt.Sprintf("%s, %s: %s after optimizing (%s before, %s after): ", eb.Network, s.Title(), what, seconds(bs), seconds(as))
	}
	if eb.FullPullSeconds > 0 && ea.FullPullSeconds > eb.FullPullSeconds*1.02 {
		why := fmt.Sprintf("the image is %s to download after, %s before", units.Bytes(a.FullPullBytes), units.Bytes(b.FullPullBytes))
		if a.FullPullBytes < b.FullPullBytes {
			why = fmt.Sprintf("it downloads %s less, but its %d requests (%d before) and the unpacking of its layers cost more",
				units.Bytes(b.FullPullBytes-a.FullPullBytes), a.FullPullRequests, b.FullPullRequests)
		}
		notes = append(notes, head(FullPull, "slower", eb.FullPullSeconds, ea.FullPullSeconds)+why+".")
	}
	if eb.LazyStartSeconds == 0 || ea.LazyStartSeconds < eb.LazyStartSeconds*0.98 {
		return notes
	}
	pb, pa := lazyPhases(eb), lazyPhases(ea)
	var why []string
	if b.FullPullBytes < smallImage {
		why = append(why, fmt.Sprintf("the image is only %s, quick to pull whole", units.Bytes(b.FullPullBytes)))
	}
	nl := lazyLayers(a)
	after := fmt.Sprintf("after, mounting its %d %s takes %s (each layer's footer and TOC requests, one after the other at %s, and the snapshotter's mount)",
		nl, plural(nl, "lazy layer", "lazy layers"), seconds(pa.Download+pa.Unpack), msRTT(ea.RTTSeconds))
	if first, above, n := fetchedAbove(a); n > 0 {
		after = fmt.Sprintf("after, layer %d is still downloaded whole, and containerd's unpacker downloads the %d lazy %s above it whole as well (%s) while the snapshotter mounts them once it is unpacked and prefetches them again; that takes %s",
			first, n, plural(n, "layer", "layers"), units.Bytes(above), seconds(pa.Download+pa.Unpack))
	}
	if pa.OnDemand >= 0.001 {
		after += ", waiting for the start-up files " + seconds(pa.OnDemand)
	}
	if d := pa.Start - pb.Start; d >= 0.001 {
		after += ", and reading them through the snapshotter adds " + seconds(d) + " to the container's start"
	}
	why = append(why, fmt.Sprintf("before, its lazy start downloads and unpacks it in %s; %s", seconds(pb.Download+pb.Unpack+pb.OnDemand), after))
	if unpacked := uncompressed(a); unpacked > 0 && a.Profile.Bytes*2 >= unpacked {
		why = append(why, fmt.Sprintf("the container reads %s at start-up, most of the image's %s: a lazy start has little to leave behind", units.Bytes(a.Profile.Bytes), units.Bytes(unpacked)))
	}
	return append(notes, head(LazyStart, "not faster", eb.LazyStartSeconds, ea.LazyStartSeconds)+strings.Join(why, "; ")+".")
}

// smallImage is the size under which a note calls an image small: one
// that a full pull fetches in about the time of a few round trips and
// lazy mounts.
const smallImage = 16 << 20

// lazyPhases is the lazy start's split of an estimate.
func lazyPhases(e NetworkEstimate) Phases {
	for _, p := range e.Phases {
		if p.Scenario == LazyStart {
			return p
		}
	}
	return Phases{}
}

// uncompressed is the size of the image's layers unpacked.
func uncompressed(r *Report) int64 {
	var n int64
	for _, l := range r.Layers {
		n += l.UncompressedSize
	}
	return n
}

// fetchedAbove returns the first layer a lazy start downloads whole, the
// bytes of the lazy layers above it that the model has containerd's
// unpacker download whole too, and their number (0: none).
func fetchedAbove(r *Report) (first int, bytes int64, n int) {
	first = slices.IndexFunc(r.Layers, func(l Layer) bool { return l.Role == lazypull.RoleFull.String() })
	if first < 0 {
		return -1, 0, 0
	}
	var whole int64
	seen := map[string]bool{}
	for _, l := range r.Layers {
		if l.Role == lazypull.RoleFull.String() && !seen[l.Digest] {
			seen[l.Digest] = true
			whole += l.Size
		}
	}
	var lazyWhole int64
	for _, c := range r.Scenarios {
		if c.Scenario == LazyStart {
			lazyWhole = c.LayerBytes - whole
		}
	}
	if lazyWhole <= 0 {
		return first, 0, 0
	}
	for _, l := range r.Layers[first+1:] {
		if l.Role == lazypull.RoleLazy.String() && !seen[l.Digest] {
			seen[l.Digest] = true
			n++
		}
	}
	return first, lazyWhole, n
}

// plural picks the word for n things.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// lazyLayers counts the distinct blobs a lazy start mounts lazily.
func lazyLayers(r *Report) int {
	seen := map[string]bool{}
	for _, l := range r.Layers {
		if l.Role == lazypull.RoleLazy.String() {
			seen[l.Digest] = true
		}
	}
	return len(seen)
}

func msRTT(s float64) string { return strconv.FormatFloat(s*1000, 'g', 4, 64) + " ms RTT" }

func newRatio(metric, network string, b, a float64) Ratio {
	r := Ratio{Metric: metric, Network: network, Before: b, After: a}
	if b != 0 {
		r.Ratio = roundSeconds(a / b)
	}
	return r
}

// Write renders the comparison in one of Formats: the two images' figures
// side by side with after/before ratios (text, markdown, html), the whole
// Comparison (json), or a chart of both images' full pull and lazy start
// on every network (svg, also in html).
func (c *Comparison) Write(w io.Writer, format string) error {
	switch format {
	case FormatJSON:
		return writeJSON(w, c)
	case FormatSVG:
		return writeSVG(w, c.chartTitle(), c.panels())
	}
	return writeDoc(w, format, c.doc(), c.chartTitle(), c.panels())
}

func (c *Comparison) chartTitle() string {
	return "Estimated time to ready: " + c.Before.name() + " vs " + c.After.name()
}

func (c *Comparison) panels() []panel {
	var out []panel
	for i, eb := range c.Before.Estimates {
		if i >= len(c.After.Estimates) {
			break
		}
		ea := c.After.Estimates[i]
		p := panel{title: networkLabel(eb)}
		for _, x := range []struct {
			who string
			e   NetworkEstimate
		}{{"before", eb}, {"after", ea}} {
			for _, ph := range x.e.Phases {
				if ph.Scenario == FullPull || ph.Scenario == LazyStart {
					p.bars = append(p.bars, bar{label: x.who + ": " + ph.Scenario.Title(), ph: ph})
				}
			}
		}
		out = append(out, p)
	}
	return out
}

func (c *Comparison) doc() doc {
	d := doc{title: "Cold start: " + c.Before.name() + " vs " + c.After.name()}
	d.facts = append(d.facts,
		[2]string{"before", c.Before.Digest},
		[2]string{"after", c.After.Digest},
		[2]string{"profile", fmt.Sprintf("%s: %d paths, %d files read in before, %d in after",
			c.Before.Profile.Source, c.Before.Profile.Paths, c.Before.Profile.Files, c.After.Profile.Files)})
	bt := table{title: "What each start fetches", head: []string{"SCENARIO", "BEFORE", "AFTER", "AFTER/BEFORE", "REQUESTS BEFORE", "REQUESTS AFTER"},
		right: []bool{false, true, true, true, true, true}}
	for _, sb := range c.Before.Scenarios {
		for _, sa := range c.After.Scenarios {
			if sa.Scenario == sb.Scenario {
				bt.rows = append(bt.rows, []string{sb.Scenario.Title(), units.Bytes(sb.Bytes), units.Bytes(sa.Bytes),
					ratio(float64(sb.Bytes), float64(sa.Bytes)), strconv.Itoa(sb.Requests), strconv.Itoa(sa.Requests)})
			}
		}
	}
	d.tables = append(d.tables, bt)
	st := table{title: "Estimated seconds to ready", head: []string{"NETWORK", "SCENARIO", "BEFORE", "AFTER", "AFTER/BEFORE"},
		right: []bool{false, false, true, true, true}}
	for i, eb := range c.Before.Estimates {
		if i >= len(c.After.Estimates) {
			break
		}
		ea := c.After.Estimates[i]
		for _, x := range []struct {
			s    Scenario
			b, a float64
		}{{FullPull, eb.FullPullSeconds, ea.FullPullSeconds}, {LazyStart, eb.LazyStartSeconds, ea.LazyStartSeconds}} {
			st.rows = append(st.rows, []string{networkLabel(eb), x.s.Title(), seconds(x.b), seconds(x.a), ratio(x.b, x.a)})
		}
	}
	st.notes = append(st.notes, c.Notes...)
	d.tables = append(d.tables, st)
	lt := table{title: "Layers", head: []string{"IMAGE", "#", "DIGEST", "FORMAT", "SIZE", "LAZY START"},
		right: []bool{false, true, false, false, true, false}}
	for _, x := range []struct {
		who string
		r   *Report
	}{{"before", c.Before}, {"after", c.After}} {
		for _, l := range x.r.Layers {
			lt.rows = append(lt.rows, []string{x.who, strconv.Itoa(l.Index), shortDigest(l.Digest), l.Format, units.Bytes(l.Size), l.Role})
		}
	}
	d.tables = append(d.tables, lt)
	return d
}
