package profile

import (
	"context"
	"debug/elf"
	"log/slog"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// configImage is an image without layers whose config is cf: the
// profilers read only its config, and the filesystem comes separately.
func configImage(t *testing.T, cf v1.ConfigFile) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestStaticProfiler(t *testing.T) {
	m := newMemFS()
	m.mergedUsr()
	m.exe("/usr/bin/sh", elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true}))
	m.script("/app/start.sh", "#!/bin/sh\nexec /app/server\n")
	m.script("/app/other.sh", "#!/bin/sh\n")
	m.exe("/app/server", elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true}))
	img := configImage(t, v1.ConfigFile{OS: "linux", Architecture: "arm64", Variant: "v8",
		Config: v1.Config{Entrypoint: []string{"/app/start.sh"}}})

	pr := StaticProfiler()
	if pr.Name() != "static/3" {
		t.Errorf("default name %q: the name keys cached profiles and optimize's fingerprint; change it only with the rules", pr.Name())
	}
	p, err := pr.Profile(context.Background(), img, m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Static(context.Background(), m, Config{Entrypoint: []string{"/app/start.sh"}})
	if err != nil {
		t.Fatal(err)
	}
	want.Platform = "linux/arm64/v8"
	if d := cmp.Diff(want, p); d != "" {
		t.Errorf("StaticProfiler differs from Static (-want +got):\n%s", d)
	}
	if StaticProfiler(WithLogger(slog.New(slog.DiscardHandler))).Name() != "static/3" {
		t.Error("a logger changed the name")
	}

	// WithConfig profiles another command, under another name.
	other := StaticProfiler(WithConfig(Config{Entrypoint: []string{"/app/other.sh"}}))
	p, err = other.Profile(context.Background(), img, m)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/app/other.sh", "/bin", "/usr/bin/sh"}, p.Files); d != "" {
		t.Errorf("WithConfig files (-want +got):\n%s", d)
	}
	names := map[string]string{}
	for what, pr := range map[string]Profiler{
		"default":      StaticProfiler(),
		"config":       other,
		"other config": StaticProfiler(WithConfig(Config{Entrypoint: []string{"/app/server"}})),
		"max files":    StaticProfiler(WithMaxFiles(3)),
		"max depth":    StaticProfiler(WithMaxDepth(3)),
		"max read":     StaticProfiler(WithMaxReadBytes(3)),
		"max modules":  StaticProfiler(WithMaxModules(3)),
	} {
		n := pr.Name()
		if !strings.HasPrefix(n, "static/3") {
			t.Errorf("%s: name %q", what, n)
		}
		if prev, ok := names[n]; ok {
			t.Errorf("%s and %s share the name %q", what, prev, n)
		}
		names[n] = what
	}

	// Static takes its config as an argument: WithConfig is a mistake.
	if _, err := Static(context.Background(), m, Config{}, WithConfig(Config{})); err == nil {
		t.Error("Static accepted WithConfig")
	}
	// An invalid option fails every call.
	if _, err := StaticProfiler(WithMaxFiles(0)).Profile(context.Background(), img, m); err == nil {
		t.Error("an invalid option was accepted")
	}
}
