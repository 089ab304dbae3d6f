package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/units"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// checkFormat accepts one of the output formats named.
func checkFormat(f string, accepted ...string) error {
	for _, a := range accepted {
		if f == a {
			return nil
		}
	}
	return usageErr("--format %q: use %s", f, strings.Join(accepted, ", "))
}

// digests parses --cached digests.
func digests(flag string, ss []string) ([]v1.Hash, error) {
	var out []v1.Hash
	for _, d := range ss {
		h, err := v1.NewHash(d)
		if err != nil {
			return nil, usageErr("--%s %q: %v", flag, d, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// networks parses --network values: a name or RATE,RTT each (the comma is
// the value's own, so the flag repeats instead).
func networks(ss []string) ([]report.Network, error) {
	var out []report.Network
	for _, s := range ss {
		n, err := report.ParseNetwork(s)
		if err != nil {
			return nil, usageErr("--network: %v", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// size parses a size flag: bytes, or with a unit (4MiB, 10GB).
func size(flag, s string) (int64, error) {
	n, err := units.ParseBytes(s)
	if err != nil {
		return 0, usageErr("--%s: %v", flag, err)
	}
	return n, nil
}

// profileFile reads --profile FILE.
func profileFile(path string) (profile.Profiler, error) {
	p, err := profile.ReadFile(path)
	if err != nil {
		return nil, usageErr("--profile: %v", err)
	}
	return p, nil
}

// writeFileAtomic writes path by temporary file and rename, with mode 0644
// (less the umask) like any file a command creates.
func writeFileAtomic(path string, fill func(*bufio.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".coldstart-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Chmod(0o644 &^ umask())
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// shortDigest cuts "sha256:<hex>" to 12 hex digits, as the summaries do.
func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// openCacheDir opens the cache directory dir, by default the user's.
func openCacheDir(g *globals, dir string, opts ...cache.Option) (*cache.Dir, error) {
	if dir == "" {
		var err error
		if dir, err = cache.DefaultDir(); err != nil {
			return nil, fmt.Errorf("conversion cache: %w (give --cache-dir or --no-cache)", err)
		}
	}
	c, err := cache.NewDir(dir, append([]cache.Option{cache.WithLogger(g.logger())}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("conversion cache %s: %w", dir, err)
	}
	return c, nil
}

// openCache opens the conversion cache the flags name, or none.
func (f *optimizeFlags) openCache(g *globals) (cache.Cache, error) {
	if f.noCache {
		return nil, nil
	}
	if f.cacheRef != "" {
		c, err := cache.NewRegistry(f.cacheRef, cache.WithInsecure(g.insecure), cache.WithLogger(g.logger()))
		if err != nil {
			return nil, usageErr("--cache-ref: %v", err)
		}
		return c, nil
	}
	max, err := size("cache-max-size", f.cacheMax)
	if err != nil {
		return nil, err
	}
	return openCacheDir(g, f.cacheDir, cache.WithMaxSize(max))
}
