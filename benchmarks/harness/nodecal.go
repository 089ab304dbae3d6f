package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/coldstart-dev/coldstart/benchmarks/build"
	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/optimize/report"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// NodeCalibration is what the real stack's node measured of its own costs
// before the bench images ran, on an image that is none of them: the base
// image with a shell that prints "ready", pulled whole and started lazily
// on a cold node. The cost model's node-side defaults were fitted on one
// machine; another runs containerd, the snapshotter and runc at another
// speed, which Calibrate's decompression and unpack rates do not show
// (benchmarks/README.md), so the bench's predictions take the node's
// costs from here.
type NodeCalibration struct {
	// RuntimeStart is the median of the runtime's part of the starts (the
	// container and its task created, the task started).
	RuntimeStart float64 `json:"runtimeStartSeconds"`
	// Scale is the k of report.Rates.ScaleNode that fits the model to the
	// two starts best (least squares of the relative errors).
	Scale float64 `json:"scale"`
	// Rates are report.DefaultRates scaled by Scale, with RuntimeStart:
	// what the predictions use.
	Rates report.Rates `json:"rates"`
	// Starts are the calibration's starts, measured and predicted with
	// Rates.
	Starts []CalibrationStart `json:"starts"`
}

// CalibrationStart is one start of the node's calibration.
type CalibrationStart struct {
	Variant          string  `json:"variant"`
	Seconds          float64 `json:"seconds"`
	PredictedSeconds float64 `json:"predictedSeconds"`
	// DefaultSeconds is the prediction with the default rates.
	DefaultSeconds float64 `json:"defaultSeconds"`
}

// calibrationName is the calibration image's name in the realstack
// command's work directory.
const calibrationName = "node-calibration"

// calibrateNode measures the node's costs on the real stack (see
// NodeCalibration) and keeps them in the results and in the work directory's
// realstack/node-rates.json, which Repredict reads.
func (r *runner) calibrateNode(ctx context.Context) error {
	rs := r.cfg.RealStack
	runs := max(rs.Runs, r.cfg.Runs, 3)
	baseDir := ""
	for _, name := range r.cfg.Images {
		if b, err := build.BaseImage(ctx, name, build.WithLogger(r.log)); err == nil {
			baseDir = b
			break
		}
	}
	if baseDir == "" {
		return fmt.Errorf("no base image to calibrate the node on")
	}
	work := filepath.Join(r.cfg.Work, "realstack")
	layout := filepath.Join(work, calibrationName, "image")
	if err := writeCalibrationImage(ctx, baseDir, layout); err != nil {
		return fmt.Errorf("the calibration image: %w", err)
	}
	out := filepath.Join(work, calibrationName+".json")
	args := []string{"run", "./cmd/realstack", "-image", calibrationName, "-rate", fmt.Sprint(rs.RateMbit), "-runs", fmt.Sprint(runs),
		"-nodes", "cold", "-work", work, "-out", out, "-table=false", "-original", layout, "-coldstart", r.bin,
		"-variants", "original,coldstart-run", "-ready-line", "^ready$"}
	r.step("calibrating the node: the base image with sh, whole and lazy, cold, x%d (benchmarks/realstack)", runs)
	res, err := r.runRealStack(ctx, args, out)
	if err != nil {
		return err
	}
	prof, err := readProfile(filepath.Join(work, "profile-"+calibrationName+".json"))
	if err != nil {
		return fmt.Errorf("the calibration's run profile: %w", err)
	}
	nw := report.Network{Name: "link", BytesPerSecond: res.LinkMBps * 1e6}
	variants := res.variants()
	var runtimes []float64
	type point struct {
		variant  string
		measured float64
	}
	var points []point
	for _, s := range res.Summaries {
		if s.OK == 0 || s.Split == nil {
			continue
		}
		runtimes = append(runtimes, s.Split.Task+s.Split.Start)
		points = append(points, point{s.Variant, s.Seconds.Median})
	}
	if len(points) == 0 {
		return fmt.Errorf("no calibration start succeeded")
	}
	cal := NodeCalibration{RuntimeStart: stat(runtimes).Median}
	rates := func(k float64) report.Rates {
		rt := report.DefaultRates.ScaleNode(k)
		rt.RuntimeStart = cal.RuntimeStart
		return rt
	}
	predict := func(variant string, rt report.Rates) (float64, error) {
		p, _, err := predictRealStart(ctx, variants[variant], "cold", prof, nw, nil, &rt)
		return p, err
	}
	// The model's start is, to within the overlaps of its parallel paths,
	// linear in k: p(k) = b + a k. Two predictions give a and b; k is the
	// least squares fit of the relative errors.
	var num, den float64
	for _, pt := range points {
		lo, err := predict(pt.variant, rates(0.5))
		if err != nil {
			return err
		}
		hi, err := predict(pt.variant, rates(1.5))
		if err != nil {
			return err
		}
		a := hi - lo
		b := lo - 0.5*a
		w := 1 / (pt.measured * pt.measured)
		num += w * a * (pt.measured - b)
		den += w * a * a
	}
	cal.Scale = 1
	if den > 0 {
		cal.Scale = math.Round(min(max(num/den, 0.1), 10)*1000) / 1000
	}
	cal.Rates = rates(cal.Scale)
	for _, pt := range points {
		p, err := predict(pt.variant, cal.Rates)
		if err != nil {
			return err
		}
		d, err := predict(pt.variant, report.DefaultRates)
		if err != nil {
			return err
		}
		cal.Starts = append(cal.Starts, CalibrationStart{Variant: pt.variant, Seconds: pt.measured, PredictedSeconds: p, DefaultSeconds: d})
	}
	b, err := json.MarshalIndent(cal.Rates, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "node-rates.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	r.res.NodeCalibration = &cal
	r.step("node calibrated: runtime start %.3f s, node costs x%.2f of the defaults", cal.RuntimeStart, cal.Scale)
	return nil
}

// writeCalibrationImage writes the base image at baseDir, its layers and
// history as they are, with "sh -c 'echo ready'" for its entrypoint, as an
// OCI layout at dir.
func writeCalibrationImage(ctx context.Context, baseDir, dir string) error {
	img, err := readImage(ctx, "oci:"+baseDir)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	c := cf.Config
	c.Entrypoint, c.Cmd = []string{"/bin/sh", "-c", "echo ready"}, nil
	if img, err = mutate.Config(img, c); err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	ref, err := imageref.Parse("oci:" + dir)
	if err != nil {
		return err
	}
	return imageref.Write(ctx, ref, &imageref.Artifact{Image: img})
}
