package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

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
	}
	return c
}

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
