package optimize

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/coldstart-dev/coldstart/internal/units"
)

// Formats accepted by the Write methods.
const (
	FormatText     = "text"
	FormatJSON     = "json"
	FormatMarkdown = "markdown"
)

// CheckFormat returns an error naming the accepted formats when f is not
// one of them.
func CheckFormat(f string, accepted ...string) error {
	for _, a := range accepted {
		if f == a {
			return nil
		}
	}
	return fmt.Errorf("unknown format %q: use %s", f, strings.Join(accepted, ", "))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// Write renders the analysis as text, json or markdown.
func (a *Analysis) Write(w io.Writer, format string) error {
	switch format {
	case FormatJSON:
		return writeJSON(w, a)
	case FormatMarkdown:
		return a.writeMarkdown(w)
	case FormatText, "":
		return a.writeText(w)
	}
	return CheckFormat(format, FormatText, FormatJSON, FormatMarkdown)
}

func (a *Analysis) writeText(w io.Writer) error {
	fmt.Fprintf(w, "image %s", a.Digest)
	if a.Platform != "" {
		fmt.Fprintf(w, " (%s)", a.Platform)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "#\tdigest\tsize\tuncompressed\tfiles\twasted\tlazy\t")
	for i, l := range a.Layers {
		lazy := l.Lazy
		if l.Foreign {
			lazy = "foreign"
		}
		if lazy == "" {
			lazy = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t\n", i, shortDigest(l.Digest), units.Bytes(l.Size),
			units.Bytes(l.UncompressedSize), l.Files, units.Bytes(l.WastedBytes), lazy)
	}
	fmt.Fprintf(tw, "total\t\t%s\t%s\t%d\t%s\t\t\n", units.Bytes(a.TotalSize), units.Bytes(a.UncompressedSize), a.Files, units.Bytes(a.WastedBytes))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "efficiency %.1f%%: %s of %s file bytes are never seen by a container\n",
		100*a.Efficiency, units.Bytes(a.WastedBytes), units.Bytes(a.FileBytes))
	if a.ReaddBytes+a.CopyUpBytes+a.DuplicateBytes > 0 {
		fmt.Fprintf(w, "also: %s re-added identically, %s copied up for a mode/owner change, %s duplicate content\n",
			units.Bytes(a.ReaddBytes), units.Bytes(a.CopyUpBytes), units.Bytes(a.DuplicateBytes))
	}
	if a.ForeignLayers > 0 {
		fmt.Fprintf(w, "%d foreign (non-distributable) layer(s) not read: left as they are\n", a.ForeignLayers)
	}
	if len(a.TopWasted) > 0 {
		fmt.Fprintln(w, "largest wasted files:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, f := range a.TopWasted {
			fmt.Fprintf(tw, "  %s\t%s\tlayer %d, %s by layer %d\n", units.Bytes(f.Size), f.Path, f.Layer, f.Reason, f.By)
		}
		return tw.Flush()
	}
	return nil
}

func (a *Analysis) writeMarkdown(w io.Writer) error {
	fmt.Fprintf(w, "### Image `%s`", shortDigest(a.Digest))
	if a.Platform != "" {
		fmt.Fprintf(w, " (%s)", a.Platform)
	}
	fmt.Fprintf(w, "\n\n| # | layer | size | uncompressed | files | wasted | lazy |\n|--:|---|--:|--:|--:|--:|---|\n")
	for i, l := range a.Layers {
		fmt.Fprintf(w, "| %d | `%s` | %s | %s | %d | %s | %s |\n", i, shortDigest(l.Digest), units.Bytes(l.Size),
			units.Bytes(l.UncompressedSize), l.Files, units.Bytes(l.WastedBytes), l.Lazy)
	}
	fmt.Fprintf(w, "| **total** | | **%s** | **%s** | **%d** | **%s** | |\n\n", units.Bytes(a.TotalSize),
		units.Bytes(a.UncompressedSize), a.Files, units.Bytes(a.WastedBytes))
	fmt.Fprintf(w, "Efficiency **%.1f%%**: %s of %s file bytes are never seen by a container.\n",
		100*a.Efficiency, units.Bytes(a.WastedBytes), units.Bytes(a.FileBytes))
	if len(a.TopWasted) > 0 {
		fmt.Fprintf(w, "\n| wasted file | size | layer | why |\n|---|--:|--:|---|\n")
		for _, f := range a.TopWasted {
			fmt.Fprintf(w, "| `%s` | %s | %d | %s by layer %d |\n", f.Path, units.Bytes(f.Size), f.Layer, f.Reason, f.By)
		}
	}
	return nil
}

// Write renders the result as text, json or markdown.
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case FormatJSON:
		return writeJSON(w, r)
	case FormatMarkdown:
		return r.writeMarkdown(w)
	case FormatText, "":
		return r.writeText(w)
	}
	return CheckFormat(format, FormatText, FormatJSON, FormatMarkdown)
}

func (r *Result) writeText(w io.Writer) error {
	for _, ir := range r.Images {
		name := ir.Platform
		if name == "" {
			name = "image"
		}
		fmt.Fprintf(w, "%s %s -> %s\n", name, shortDigest(ir.InputDigest), shortDigest(ir.OutputDigest))
		if ir.BasePolicy != "" {
			fmt.Fprintf(w, "  base policy %s: %s\n", ir.BasePolicy, ir.BasePolicyReason)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for i, l := range ir.Layers {
			fmt.Fprintf(tw, "  %d\t%s\t%s -> %s\t%s\t%s\n", i, l.Action, units.Bytes(l.SizeBefore), units.Bytes(l.SizeAfter), shortDigest(l.OutputDigest), layerNote(l))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if n := len(ir.MissingPrioritized); n > 0 {
			fmt.Fprintf(w, "  %d start-up path(s) not in the image, e.g. %s\n", n, ir.MissingPrioritized[0])
		}
	}
	fmt.Fprintf(w, "total %s -> %s, %s of files no container sees removed; output %s\n",
		units.Bytes(r.BytesBefore), units.Bytes(r.BytesAfter), units.Bytes(r.RemovedBytes), r.Digest)
	return nil
}

func layerNote(l LayerResult) string {
	s := l.Reason
	if l.DroppedEntries > 0 {
		s += fmt.Sprintf("; dropped %d entries (%s)", l.DroppedEntries, units.Bytes(l.DroppedBytes))
	}
	if l.Prioritized > 0 {
		s += fmt.Sprintf("; %d start-up files first", l.Prioritized)
	}
	return s
}

func (r *Result) writeMarkdown(w io.Writer) error {
	fmt.Fprintf(w, "### coldstart optimize\n\nOutput `%s`: %s → %s, %s of files no container sees removed.\n",
		r.Digest, units.Bytes(r.BytesBefore), units.Bytes(r.BytesAfter), units.Bytes(r.RemovedBytes))
	for _, ir := range r.Images {
		if ir.Platform != "" {
			fmt.Fprintf(w, "\n#### %s\n", ir.Platform)
		}
		fmt.Fprintf(w, "\n| # | action | before | after | why |\n|--:|---|--:|--:|---|\n")
		for i, l := range ir.Layers {
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", i, l.Action, units.Bytes(l.SizeBefore), units.Bytes(l.SizeAfter), layerNote(l))
		}
	}
	return nil
}
