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
