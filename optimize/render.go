package optimize

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

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

// WriteText renders the analysis as text whose lines fit in width columns
// (0: no limit): long paths lose their middle to "…", sentences wrap, the
// image digest is shortened. The layer table needs about 75 columns and
// keeps them.
func (a *Analysis) WriteText(w io.Writer, width int) error {
	return a.writeTextWidth(w, width)
}

func (a *Analysis) writeText(w io.Writer) error { return a.writeTextWidth(w, 0) }

func (a *Analysis) writeTextWidth(w io.Writer, width int) error {
	head := "image " + a.Digest
	if a.Platform != "" {
		head += " (" + a.Platform + ")"
	}
	if width > 0 && utf8.RuneCountInString(head) > width {
		head = strings.Replace(head, a.Digest, shortDigest(a.Digest), 1)
	}
	fmt.Fprintln(w, head)
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
	fmt.Fprint(w, wrap(fmt.Sprintf("efficiency %.1f%%: %s of %s file bytes are never seen by a container",
		100*a.Efficiency, units.Bytes(a.WastedBytes), units.Bytes(a.FileBytes)), width))
	if a.ReaddBytes+a.CopyUpBytes+a.DuplicateBytes > 0 {
		fmt.Fprint(w, wrap(fmt.Sprintf("also: %s re-added identically, %s copied up for a mode/owner change, %s duplicate content",
			units.Bytes(a.ReaddBytes), units.Bytes(a.CopyUpBytes), units.Bytes(a.DuplicateBytes)), width))
	}
	if a.ForeignLayers > 0 {
		fmt.Fprint(w, wrap(fmt.Sprintf("%d foreign (non-distributable) layer(s) not read: left as they are", a.ForeignLayers), width))
	}
	if len(a.TopWasted) == 0 {
		return nil
	}
	fmt.Fprintln(w, "largest wasted files:")
	sizes := make([]string, len(a.TopWasted))
	whys := make([]string, len(a.TopWasted))
	sizeW, pathW, whyW := 0, 0, 0
	for i, f := range a.TopWasted {
		sizes[i] = units.Bytes(f.Size)
		whys[i] = fmt.Sprintf("layer %d, %s by layer %d", f.Layer, f.Reason, f.By)
		sizeW = max(sizeW, utf8.RuneCountInString(sizes[i]))
		pathW = max(pathW, utf8.RuneCountInString(f.Path))
		whyW = max(whyW, utf8.RuneCountInString(whys[i]))
	}
	if width > 0 {
		// "  SIZE  PATH  WHY": the path gets what is left, at least
		// minPathWidth columns.
		pathW = max(min(pathW, width-2-sizeW-2-2-whyW), minPathWidth)
	}
	for i, f := range a.TopWasted {
		p := f.Path
		if width > 0 {
			p = truncateMiddle(p, pathW)
		}
		fmt.Fprintf(w, "  %s  %s  %s\n", pad(sizes[i], sizeW), pad(p, pathW), whys[i])
	}
	return nil
}

// minPathWidth is the fewest columns a path is cut to.
const minPathWidth = 12

// pad fills s with spaces to width columns.
func pad(s string, width int) string {
	if n := utf8.RuneCountInString(s); n < width {
		return s + strings.Repeat(" ", width-n)
	}
	return s
}

// truncateMiddle shortens s to width runes by putting "…" in the place
// of its middle, so that both its start and its file name stay: the end
// keeps half the width, or more to keep the last path element whole while
// at least 4 runes of the start remain.
func truncateMiddle(s string, width int) string {
	r := []rune(s)
	if len(r) <= width || width < 3 {
		return s
	}
	tail := (width - 1) / 2
	if base := utf8.RuneCountInString(path.Base(s)) + 1; base > tail {
		tail = max(tail, min(base, width-1-4))
	}
	head := width - 1 - tail
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// wrap breaks a sentence into lines of at most width runes (0: one line),
// at spaces; the lines after the first are indented by two spaces. It
// returns the lines, each ending in a newline.
func wrap(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s + "\n"
	}
	var b strings.Builder
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= width:
			line += " " + word
		default:
			b.WriteString(line + "\n")
			line = "  " + word
		}
	}
	b.WriteString(line + "\n")
	return b.String()
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
