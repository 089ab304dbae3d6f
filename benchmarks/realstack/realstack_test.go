package realstack

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseAccessLog(t *testing.T) {
	log := strings.Join([]string{
		`10.213.20.1 - - [06/Dec/2026:08:10:40 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "containerd/v2.4.2"`,
		`time="2026-12-06T08:10:40Z" level=warning msg="not a request line"`,
		`10.213.20.1 - - [06/Dec/2026:08:10:40 +0000] "HEAD /v2/bench/demo/manifests/coldstart HTTP/1.1" 200 1234 "" "containerd/v2.4.2"`,
		`10.213.20.1 - - [06/Dec/2026:08:10:40 +0000] "GET /v2/bench/demo/blobs/sha256:aa HTTP/1.1" 200 5000 "" "containerd/v2.4.2"`,
		`10.213.20.1 - - [06/Dec/2026:08:10:41 +0000] "GET /v2/bench/demo/blobs/sha256:bb HTTP/1.1" 206 700 "" "Go-http-client/1.1"`,
		`10.213.20.1 - - [06/Dec/2026:08:10:41 +0000] "GET /v2/bench/demo/blobs/sha256:cc HTTP/1.1" 404 - "" "x"`,
		"",
	}, "\n")
	got, err := parseAccessLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := Traffic{Requests: 5, BlobGETs: 3, RangeGETs: 1, Bytes: 2 + 1234 + 5000 + 700, BlobBytes: 5700}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestNewStat(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want Stat
	}{
		{nil, Stat{}},
		{[]float64{3}, Stat{3, 3, 3}},
		{[]float64{5, 1, 3}, Stat{3, 1, 5}},
		{[]float64{4, 1, 2, 3}, Stat{2.5, 1, 4}},
	} {
		if got := NewStat(c.in); got != c.want {
			t.Errorf("NewStat(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x\134`: "/tab\tx\\", `/end\04`: `/end\04`} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	vs := []Variant{{Name: "original"}, {Name: "coldstart", Lazy: true}, {Name: "coldstart-keep", Lazy: true}}
	rr := func(v, n string, s float64, remote int, bytes int64, errMsg string) RunRecord {
		return RunRecord{Variant: v, Node: n, RunResult: RunResult{Seconds: s, Layers: 4, RemoteLayers: remote},
			Traffic: Traffic{Bytes: bytes, Requests: 10}, Error: errMsg}
	}
	runs := []RunRecord{
		rr("original", Cold, 10, 0, 100, ""), rr("original", Cold, 12, 0, 100, ""), rr("original", Cold, 0, 0, 0, "timeout"),
		rr("coldstart", Cold, 2, 4, 9, ""), rr("coldstart", Cold, 1, 4, 11, ""),
		rr("coldstart-keep", Cold, 9, 3, 80, ""), rr("coldstart-keep", Cold, 8, 4, 70, ""),
		{Variant: "coldstart-keep", Node: Warm, RunResult: RunResult{Seconds: 1, Layers: 4, RemoteLayers: 3, HeldLayers: 1}},
	}
	got := Summarize("img", vs, []string{Cold, Warm}, runs)
	if len(got) != 6 {
		t.Fatalf("%d summaries, want 6", len(got))
	}
	if s := got[0]; s.Mode != "full" || s.OK != 2 || s.Runs != 3 || s.Seconds != (Stat{11, 10, 12}) || s.Bytes != 100 {
		t.Errorf("original: %+v", s)
	}
	if s := got[1]; s.Mode != "remote" || s.RemoteLayers != 4 || s.Seconds != (Stat{1.5, 1, 2}) || s.Bytes != 10 {
		t.Errorf("coldstart: %+v", s)
	}
	if s := got[2]; s.Mode != "fallback" || s.RemoteLayers != 3 {
		t.Errorf("coldstart-keep: one run with a downloaded layer must make it a fallback: %+v", s)
	}
	if s := got[5]; s.Mode != "remote" || s.HeldLayers != 1 {
		t.Errorf("coldstart-keep on a warm node: the held base is no fallback: %+v", s)
	}
	if s := got[3]; s.Mode != "none" || s.Runs != 0 {
		t.Errorf("original on a warm node, no runs: %+v", s)
	}
}

func TestConvertCommand(t *testing.T) {
	c := Converters{Coldstart: "/b/coldstart", Refconvert: "/b/refconvert", Profile: "/p.json", Base: "/base", Network: "100Mbit,0ms"}
	for name, want := range map[string][]string{
		VariantReference:            {"/b/refconvert", "oci:/src", "oci:/out"},
		VariantReferencePrioritized: {"/b/refconvert", "-prioritize", "/p.json", "oci:/src", "oci:/out"},
		VariantColdstart:            {"/b/coldstart", "optimize", "-q", "--compare=false", "--no-cache", "oci:/src", "oci:/out"},
		VariantColdstartRun:         {"/b/coldstart", "optimize", "-q", "--compare=false", "--no-cache", "--profile", "/p.json", "oci:/src", "oci:/out"},
		VariantColdstartKeep:        {"/b/coldstart", "optimize", "-q", "--compare=false", "--no-cache", "--base-policy", "keep", "--base", "oci:/base", "oci:/src", "oci:/out"},
		VariantColdstartAuto:        {"/b/coldstart", "optimize", "-q", "--compare=false", "--no-cache", "--network", "100Mbit,0ms", "--base-policy", "auto", "--base", "oci:/base", "oci:/src", "oci:/out"},
	} {
		bin, args, err := c.ConvertCommand(name, "/src", "/out")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := append([]string{bin}, args...); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	if _, _, err := (Converters{Coldstart: "/b/coldstart"}).ConvertCommand(VariantColdstartKeep, "/src", "/out"); err == nil {
		t.Error("keep without a base: no error")
	}
	if _, _, err := c.ConvertCommand("nonsense", "/src", "/out"); err == nil {
		t.Error("unknown variant: no error")
	}
}

func TestReadyWriter(t *testing.T) {
	ready := make(chan time.Time, 1)
	w := &readyWriter{re: regexp.MustCompile(`^ready: listening on `), ready: ready}
	for _, chunk := range []string{"starting\nrea", "dy: listening", " on :8000\r\n", "more\n"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-ready:
	default:
		t.Fatal("a ready line split over writes was not seen")
	}
	if !strings.Contains(w.tail(), "more") {
		t.Errorf("tail %q lacks the last output", w.tail())
	}
}

func TestContainerdConfigPaths(t *testing.T) {
	dir := t.TempDir()
	n, err := NewNode(NodeConfig{Bin: "/bin", Dir: filepath.Join(dir, "node"), Registry: "10.0.0.2:5000"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := n.containerdConfig()
	for _, want := range []string{`version = 3`, `root = "` + dir + `/node/containerd/root"`, `[proxy_plugins.stargz]`,
		`address = "` + dir + `/node/stargz.sock"`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("containerd config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "/var/lib/containerd") {
		t.Errorf("containerd config points at /var/lib/containerd:\n%s", cfg)
	}
	if sc := n.snapshotterConfig(); !strings.Contains(sc, `[[resolver.host."10.0.0.2:5000".mirrors]]`) || !strings.Contains(sc, "insecure = true") {
		t.Errorf("snapshotter config:\n%s", sc)
	}
}

func TestFindModule(t *testing.T) {
	wd, _ := os.Getwd()
	mod, err := FindModule(wd)
	if err != nil {
		t.Fatal(err)
	}
	if mod != wd {
		t.Errorf("FindModule(%s) = %s", wd, mod)
	}
	if got, err := FindModule(filepath.Join(wd, "..", "..")); err != nil || got != wd {
		t.Errorf("from the repository root: %s, %v", got, err)
	}
}
