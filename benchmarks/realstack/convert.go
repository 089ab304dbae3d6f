package realstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The variants the benchmark compares.
const (
	// VariantOriginal is the image as built (gzip), pulled in full.
	VariantOriginal = "original"
	// VariantReference is estargz.Build with its defaults (refconvert).
	VariantReference = "reference"
	// VariantReferencePrioritized is estargz.Build with the run profile's
	// files prioritized (refconvert -prioritize), what ctr-remote image
	// optimize does with the files it records.
	VariantReferencePrioritized = "reference-prioritized"
	// VariantColdstart is coldstart optimize with its defaults.
	VariantColdstart = "coldstart"
	// VariantColdstartRun is coldstart optimize --profile RUN-PROFILE.
	VariantColdstartRun = "coldstart-run"
	// VariantColdstartKeep is coldstart optimize --base-policy keep --base BASE.
	VariantColdstartKeep = "coldstart-keep"
	// VariantColdstartAuto is coldstart optimize --base-policy auto --base
	// BASE --network LINK (Converters.Network).
	VariantColdstartAuto = "coldstart-auto"
	// VariantColdstartRecompress is coldstart optimize --base-policy
	// recompress --base BASE.
	VariantColdstartRecompress = "coldstart-recompress"
)

// StandardVariants are all of them, in the order of the results.
var StandardVariants = []string{VariantOriginal, VariantReference, VariantReferencePrioritized,
	VariantColdstart, VariantColdstartRun, VariantColdstartKeep, VariantColdstartAuto, VariantColdstartRecompress}

// Converters are the programs and inputs Convert needs.
type Converters struct {
	// Coldstart is the coldstart CLI (go build ./cmd/coldstart).
	Coldstart string
	// Refconvert is the benchmark's reference converter (go build
	// ./benchmarks/refconvert); needed for the reference variants.
	Refconvert string
	// Profile is a run profile JSON (coldstart profile --mode run); needed
	// for reference-prioritized and coldstart-run.
	Profile string
	// Base is the OCI layout of the base image; needed for the keep and
	// auto variants.
	Base string
	// Network is the link the variants are measured on, as optimize's
	// --network takes it (RATE,RTT): auto weighs its base policies on it,
	// as a user names the network their nodes pull over. "": optimize's
	// default networks.
	Network string
}

// ConvertCommand returns the program and arguments that make variant name
// from the OCI layout src into out, the same commands benchmarks/harness
// runs (conversion cache off, the before/after comparison off).
func (c Converters) ConvertCommand(name, src, out string) (string, []string, error) {
	need := func(what, v string) error {
		if v == "" {
			return fmt.Errorf("variant %s needs %s", name, what)
		}
		return nil
	}
	cs := []string{"optimize", "-q", "--compare=false", "--no-cache"}
	switch name {
	case VariantReference:
		return c.Refconvert, []string{"oci:" + src, "oci:" + out}, need("the reference converter", c.Refconvert)
	case VariantReferencePrioritized:
		return c.Refconvert, []string{"-prioritize", c.Profile, "oci:" + src, "oci:" + out},
			errors.Join(need("the reference converter", c.Refconvert), need("a run profile", c.Profile))
	case VariantColdstart:
		return c.Coldstart, append(cs, "oci:"+src, "oci:"+out), need("the coldstart CLI", c.Coldstart)
	case VariantColdstartRun:
		return c.Coldstart, append(cs, "--profile", c.Profile, "oci:"+src, "oci:"+out),
			errors.Join(need("the coldstart CLI", c.Coldstart), need("a run profile", c.Profile))
	case VariantColdstartKeep, VariantColdstartAuto, VariantColdstartRecompress:
		policy := strings.TrimPrefix(name, "coldstart-")
		if name == VariantColdstartAuto && c.Network != "" {
			cs = append(cs, "--network", c.Network)
		}
		return c.Coldstart, append(cs, "--base-policy", policy, "--base", "oci:"+c.Base, "oci:"+src, "oci:"+out),
			errors.Join(need("the coldstart CLI", c.Coldstart), need("the base image", c.Base))
	}
	return "", nil, fmt.Errorf("unknown variant %q (one of %s)", name, strings.Join(StandardVariants, ", "))
}

// Convert makes the named variants of the image in the OCI layout
// original into outDir/NAME. "original" is the input itself. A variant
// whose layout exists with a stamp of the same command, the same input
// index and the same converter binary is not converted again.
func Convert(ctx context.Context, conv Converters, original, outDir string, names []string, log io.Writer) ([]Variant, error) {
	if log == nil {
		log = io.Discard
	}
	var out []Variant
	for _, name := range names {
		if name == VariantOriginal {
			out = append(out, Variant{Name: name, Layout: original})
			continue
		}
		dir := filepath.Join(outDir, name)
		bin, args, err := conv.ConvertCommand(name, original, dir)
		if err != nil {
			return nil, err
		}
		stamp, err := convertStamp(bin, args, original, conv.Profile)
		if err != nil {
			return nil, err
		}
		stampFile := dir + ".stamp"
		if b, err := os.ReadFile(stampFile); err == nil && string(b) == stamp {
			if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
				out = append(out, Variant{Name: name, Layout: dir, Lazy: true})
				continue
			}
		}
		_ = os.RemoveAll(dir)
		_ = os.Remove(stampFile)
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "converting %s: %s %s\n", name, filepath.Base(bin), strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("converting %s: %s %s: %w", name, bin, strings.Join(args, " "), err)
		}
		if err := os.WriteFile(stampFile, []byte(stamp), 0o644); err != nil {
			return nil, err
		}
		out = append(out, Variant{Name: name, Layout: dir, Lazy: true})
	}
	return out, nil
}

func convertStamp(bin string, args []string, src, profile string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, strings.Join(args, "\x00"))
	for _, f := range []string{bin, filepath.Join(src, "index.json"), profile} {
		if f == "" {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RecordProfile records the run profile of the image in the OCI layout
// src with coldstart profile --mode run (root, fanotify), waiting for the
// ready line or port, into out.
func RecordProfile(ctx context.Context, coldstart, src, out string, ready Ready, log io.Writer) error {
	args := []string{"profile", "--mode", "run", "--out", out}
	switch {
	case ready.Line != nil:
		args = append(args, "--wait-on-line", ready.Line.String())
	case ready.Port != 0:
		args = append(args, "--wait-on-port", fmt.Sprint(ready.Port))
	}
	args = append(args, "oci:"+src)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, coldstart, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("coldstart %s: %w", strings.Join(args, " "), err)
	}
	return nil
}
