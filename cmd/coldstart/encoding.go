package main

import (
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
)

// formatOptions turns --to and --startup-level into the optimizer's
// options, and says whether the layers it writes are lazy. "auto" leaves
// the format to the optimizer: eStargz, or zstd:chunked for containerd
// above a recompressed base (optimize.WithFormat).
func formatOptions(to string, startupLevel int) ([]optimize.Option, bool, error) {
	oo := []optimize.Option{optimize.WithStartupLevel(startupLevel)}
	if to == "auto" {
		return oo, true, nil
	}
	format, err := layers.ParseFormat(to)
	if err != nil {
		return nil, false, usageErr("--to: %v", err)
	}
	return append(oo, optimize.WithFormat(format)), format.Lazy(), nil
}

// profileOption turns --profile into the optimizer's profiler.
func profileOption(spec string) (optimize.Option, error) {
	switch spec {
	case "static":
		return optimize.WithProfiler(profile.StaticProfiler()), nil
	case "none", "":
		return optimize.WithProfiler(nil), nil
	case "run":
		return nil, usageErr("--profile run: record a profile with 'coldstart profile --mode run IMAGE --out FILE' and pass --profile FILE")
	}
	p, err := profileFile(spec)
	if err != nil {
		return nil, err
	}
	return optimize.WithProfiler(p), nil
}
