package report

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fixtureReport estimates the fixture image on a cold node, on the named
// networks, with the default rates.
func fixtureReport(t *testing.T, opts ...Option) *Report {
	t.Helper()
	base, lib, app := fixtureLayers(t)
	img := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	r, err := Estimate(context.Background(), img, append([]Option{WithProfile(fixtureProfile()), WithImageName("example.com/app:1")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func render(t *testing.T, r interface{ Write(io.Writer, string) error }, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := r.Write(&b, format); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	return b.Bytes()
}

func TestWriteJSON(t *testing.T) {
	r := fixtureReport(t)
	var doc map[string]any
	if err := json.Unmarshal(render(t, r, FormatJSON), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["version"] != float64(Version) {
		t.Errorf("version %v", doc["version"])
	}
	for _, k := range []string{"fullPullBytes", "lazyStartBytes", "lowerBoundBytes", "ifOptimizedBytes"} {
		if v, ok := doc[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v", k, doc[k])
		}
	}
	ests, _ := doc["estimates"].([]any)
	if len(ests) != 3 {
		t.Fatalf("estimates: %v", doc["estimates"])
	}
	for i, name := range []string{"datacenter", "cloud", "edge"} {
		e := ests[i].(map[string]any)
		if e["network"] != name || e["fullPullSeconds"].(float64) <= 0 || e["lazyStartSeconds"].(float64) <= 0 {
			t.Errorf("estimate %d: %v", i, e)
		}
	}
	// Slower networks take longer.
	if ests[0].(map[string]any)["fullPullSeconds"].(float64) >= ests[2].(map[string]any)["fullPullSeconds"].(float64) {
		t.Errorf("datacenter is not faster than edge: %v", ests)
	}
}

func TestWriteTextAndMarkdown(t *testing.T) {
	r := fixtureReport(t, WithBudget(Edge, 100))
	text := string(render(t, r, FormatText))
	for _, want := range []string{"Cold start of example.com/app:1", "Layers", "What each start fetches", "Estimated seconds to ready",
		"Time on edge (100 Mbit/s, 50 ms)", "Start-up files that cost the most (lazy start, edge)", "/usr/lib/big.dat",
		"if optimized *", "Budgets (lazy start)", "Start-up paths not in the image", "/missing", "DECOMPRESS+UNPACK"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing space: %q", line)
		}
	}
	md := string(render(t, r, FormatMarkdown))
	for _, want := range []string{"## Cold start of example.com/app:1", "### Estimated seconds to ready", "| NETWORK | FULL PULL |", "| --- | ---: |",
		"| edge (100 Mbit/s, 50 ms) |", `if optimized \*`} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every table row has as many cells as its header.
	var cols int
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row with %d separators under a header with %d: %q", n, cols, line)
		}
	}
}

func TestWriteHTML(t *testing.T) {
	r := fixtureReport(t)
	h := string(render(t, r, FormatHTML))
	for _, want := range []string{"<!DOCTYPE html>", "<svg ", "</svg>", "<table>", "<th class=\"r\">FULL PULL</th>", "</html>"} {
		if !strings.Contains(h, want) {
			t.Errorf("html lacks %q", want)
		}
	}
	if strings.Contains(h, "<script") || strings.Contains(h, "http://") && !strings.Contains(h, "http://www.w3.org/2000/svg") {
		t.Error("the page is not self-contained")
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	r := fixtureReport(t)
	if err := r.Write(io.Discard, "yaml"); err == nil {
		t.Fatal("yaml accepted")
	}
	if err := CheckFormat("svg"); err != nil {
		t.Fatal(err)
	}
}

// TestOutputDeterministic: the same image and options give the same bytes,
// whatever GOMAXPROCS.
func TestOutputDeterministic(t *testing.T) {
	var outs [][]byte
	for _, procs := range []int{1, 4} {
		old := runtime.GOMAXPROCS(procs)
		r := fixtureReport(t)
		runtime.GOMAXPROCS(old)
		var all []byte
		for _, f := range Formats {
			all = append(all, render(t, r, f)...)
		}
		outs = append(outs, all)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("output differs between runs")
	}
}

// TestSVGRenders checks that the chart is well-formed XML and that
// rsvg-convert draws it as a real picture.
func TestSVGRenders(t *testing.T) {
	r := fixtureReport(t)
	svg := render(t, r, FormatSVG)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// A background, three legend swatches, and at least one segment per
	// bar (4 scenarios, 3 networks).
	if rects < 1+3+12 {
		t.Fatalf("%d rects", rects)
	}
	bin, err := exec.LookPath("rsvg-convert")
	if err != nil {
		registrytest.SkipOrFail(t, "rsvg-convert not installed (apt-get install librsvg2-bin)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "chart.svg"), filepath.Join(dir, "chart.png")
	if err := os.WriteFile(in, svg, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(bin, "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("rsvg-convert: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() != svgWidth || b.Dy() < 300 {
		t.Fatalf("picture is %dx%d", b.Dx(), b.Dy())
	}
	inked, colored := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				inked++
			}
			// The download blue, the unpack orange or the on-demand green.
			if max(r, g, bl)-min(r, g, bl) > 0x3000 {
				colored++
			}
		}
	}
	if inked < b.Dx()*b.Dy()/50 || colored < 2000 {
		t.Fatalf("the picture is nearly empty: %d inked and %d coloured pixels of %d", inked, colored, b.Dx()*b.Dy())
	}
	if p := os.Getenv("COLDSTART_KEEP_CHART"); p != "" {
		png, _ := os.ReadFile(out)
		_ = os.WriteFile(p, png, 0o644)
	}
}

func TestBudgets(t *testing.T) {
	r := fixtureReport(t, WithBudget(Edge, 1e-6), WithBudget(Cloud, 1000))
	if len(r.Budgets) != 2 || !r.Budgets[0].Exceeded || r.Budgets[1].Exceeded {
		t.Fatalf("budgets %+v", r.Budgets)
	}
	err := r.CheckBudgets()
	if !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "edge") || strings.Contains(err.Error(), "cloud") {
		t.Fatalf("CheckBudgets: %v", err)
	}
	custom, err := ParseBudget("200Mbit,20ms=2.5")
	if err != nil {
		t.Fatal(err)
	}
	r = fixtureReport(t, WithBudget(custom.Network, custom.Seconds))
	if err := r.CheckBudgets(); err != nil {
		t.Fatalf("a generous budget on a network of its own: %v", err)
	}
	if len(r.Estimates) != 4 || r.Estimates[3].Network != "200Mbit,20ms" {
		t.Fatalf("the budget's network was not estimated: %+v", r.Estimates)
	}
	for _, bad := range []string{"edge", "edge=", "edge=-1", "mars=2", "edge=fast"} {
		if _, err := ParseBudget(bad); err == nil {
			t.Errorf("ParseBudget(%q) succeeded", bad)
		}
	}
	if b, err := ParseBudget("cloud=1.5s"); err != nil || b.Seconds != 1.5 || b.Network != Cloud {
		t.Errorf("ParseBudget(cloud=1.5s) = %+v, %v", b, err)
	}
}

func TestParseNetwork(t *testing.T) {
	for in, want := range map[string]Network{
		"edge": Edge, "Cloud": Cloud, "datacenter": Datacenter,
		"200Mbit,20ms": {Name: "200Mbit,20ms", BytesPerSecond: 25e6, RTT: 20e6},
		"1Gbit, 5ms":   {Name: "1Gbit,5ms", BytesPerSecond: 125e6, RTT: 5e6},
	} {
		got, err := ParseNetwork(in)
		if err != nil || got != want {
			t.Errorf("ParseNetwork(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lan", "100Mbit", "100Mbit,fast", "x,20ms", "100Mbit,-1ms"} {
		if _, err := ParseNetwork(bad); err == nil {
			t.Errorf("ParseNetwork(%q) succeeded", bad)
		}
	}
	if s := Edge.String(); s != "edge (100 Mbit/s, 50 ms)" {
		t.Errorf("Edge.String() = %q", s)
	}
}

// TestStartupReadsConsistent: a lazy start whose start-up files are all in
// the prefetch fetches nothing on demand, yet spends time after the mount
// waiting for the prefetch: the time column is not called "on demand" (its
// bytes would say "-"), and a note says what it holds.
func TestStartupReadsConsistent(t *testing.T) {
	lib := lazyLayer(t, testimage.Layer{
		testimage.Dir("usr", 0o755), testimage.Dir("usr/lib", 0o755),
		testimage.File("usr/lib/app.so", noise(2, 300_000)),
		testimage.File("usr/lib/unused", noise(4, 50_000)),
	}.Tar(), layers.EncodeOptions{ChunkSize: chunk, Prioritized: []string{"usr/lib/app.so"}})
	img := testImage(t, v1.Config{Entrypoint: []string{"/usr/lib/app.so"}}, lib)
	r, err := Estimate(context.Background(), img, WithProfile(&profile.Profile{Source: profile.SourceFile, Files: []string{"/usr/lib/app.so"}}), WithNetworks(Edge))
	if err != nil {
		t.Fatal(err)
	}
	var lazy *ScenarioCost
	for i := range r.Scenarios {
		if r.Scenarios[i].Scenario == LazyStart {
			lazy = &r.Scenarios[i]
		}
	}
	var waited float64
	for _, p := range r.Estimates[0].Phases {
		if p.Scenario == LazyStart {
			waited = p.OnDemand
		}
	}
	if lazy == nil || lazy.OnDemandBytes != 0 || lazy.PrefetchBytes == 0 || !(waited > 0) {
		t.Fatalf("fixture: lazy start %+v, %v s after the mount; want prefetch bytes, no on-demand bytes, time after the mount", lazy, waited)
	}
	text := string(render(t, r, FormatText))
	if !strings.Contains(text, "START-UP FETCHES") || !strings.Contains(text, "CONTAINER START") || !strings.Contains(text, startupReadsNote) {
		t.Errorf("the time after the mount is not labelled as start-up fetches, or not explained:\n%s", text)
	}
	// The columns add up to the total, in every scenario.
	for _, p := range r.Estimates[0].Phases {
		if sum := p.Download + p.Unpack + p.OnDemand + p.Start; sum < p.Total-0.002 || sum > p.Total+0.002 {
			t.Errorf("%s: %v + %v + %v + %v = %v, total %v", p.Scenario, p.Download, p.Unpack, p.OnDemand, p.Start, sum, p.Total)
		}
	}
	svg := string(render(t, r, FormatSVG))
	if strings.Contains(svg, "on-demand fetch<") || !strings.Contains(svg, "start-up fetches") || !strings.Contains(svg, "container start") {
		t.Errorf("the chart's legend does not say start-up fetches and container start")
	}
}
