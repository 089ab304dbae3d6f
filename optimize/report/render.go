package report

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/coldstart-dev/coldstart/internal/units"
)

// Output formats of Write.
const (
	FormatText     = "text"
	FormatJSON     = "json"
	FormatMarkdown = "markdown"
	FormatSVG      = "svg"
	FormatHTML     = "html"
)

// Formats lists the output formats, in the order help shows them.
var Formats = []string{FormatText, FormatJSON, FormatMarkdown, FormatSVG, FormatHTML}

// CheckFormat returns an error unless f is one of Formats.
func CheckFormat(f string) error {
	for _, x := range Formats {
		if f == x {
			return nil
		}
	}
	return fmt.Errorf("unknown format %q: use %s", f, strings.Join(Formats, ", "))
}

// Write renders the report: text (tables for a terminal), json (the
// Report, indented), markdown (for a CI job summary), svg (a stacked-bar
// chart of the estimates) or html (one self-contained page with the chart
// and the tables). The output depends only on the report.
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case FormatJSON:
		return writeJSON(w, r)
	case FormatSVG:
		return writeSVG(w, r.chartTitle(), r.panels())
	}
	return writeDoc(w, format, r.doc(), r.chartTitle(), r.panels())
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// doc is a report as text: a title, facts and tables, rendered as text,
// Markdown or HTML.
type doc struct {
	title  string
	facts  [][2]string
	tables []table
}

// table is one titled table; numeric columns align right.
type table struct {
	title string
	head  []string
	right []bool
	rows  [][]string
	notes []string
}

func writeDoc(w io.Writer, format string, d doc, chartTitle string, panels []panel) error {
	switch format {
	case FormatText:
		return d.writeText(w)
	case FormatMarkdown:
		return d.writeMarkdown(w)
	case FormatHTML:
		return d.writeHTML(w, chartTitle, panels)
	}
	return CheckFormat(format)
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func (d doc) writeText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("%s\n", d.title)
	tw := tabwriter.NewWriter(ew.w, 0, 4, 2, ' ', 0)
	for _, f := range d.facts {
		fmt.Fprintf(tw, "  %s\t%s\n", f[0], f[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range d.tables {
		ew.printf("\n%s\n", t.title)
		tw := tabwriter.NewWriter(ew.w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  %s\n", strings.Join(t.head, "\t"))
		for _, row := range t.rows {
			fmt.Fprintf(tw, "  %s\n", strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, n := range t.notes {
			ew.printf("  %s\n", n)
		}
	}
	return ew.err
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "*", "\\*", "_", "\\_", "<", "&lt;", ">", "&gt;").Replace(s)
}

func (d doc) writeMarkdown(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("## %s\n\n", mdEscape(d.title))
	for _, f := range d.facts {
		ew.printf("- **%s**: %s\n", mdEscape(f[0]), mdEscape(f[1]))
	}
	for _, t := range d.tables {
		ew.printf("\n### %s\n\n", mdEscape(t.title))
		head := make([]string, len(t.head))
		sep := make([]string, len(t.head))
		for i, h := range t.head {
			head[i] = mdEscape(h)
			sep[i] = "---"
			if i < len(t.right) && t.right[i] {
				sep[i] = "---:"
			}
		}
		ew.printf("| %s |\n| %s |\n", strings.Join(head, " | "), strings.Join(sep, " | "))
		for _, row := range t.rows {
			cells := make([]string, len(row))
			for i, c := range row {
				cells[i] = mdEscape(c)
			}
			ew.printf("| %s |\n", strings.Join(cells, " | "))
		}
		for _, n := range t.notes {
			ew.printf("\n%s\n", mdEscape(n))
		}
	}
	return ew.err
}

const htmlStyle = `body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}dd{margin:0}
p.note{font-size:.85em;color:#555}svg{max-width:100%;height:auto}`

func (d doc) writeHTML(w io.Writer, chartTitle string, panels []panel) error {
	ew := &errWriter{w: w}
	ew.printf("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n<style>\n%s\n</style>\n</head>\n<body>\n",
		html.EscapeString(d.title), htmlStyle)
	ew.printf("<h1>%s</h1>\n<dl>\n", html.EscapeString(d.title))
	for _, f := range d.facts {
		ew.printf("<dt>%s</dt><dd>%s</dd>\n", html.EscapeString(f[0]), html.EscapeString(f[1]))
	}
	ew.printf("</dl>\n")
	if ew.err != nil {
		return ew.err
	}
	if len(panels) > 0 {
		if err := writeSVG(ew.w, chartTitle, panels); err != nil {
			return err
		}
	}
	for _, t := range d.tables {
		ew.printf("<h2>%s</h2>\n<table>\n<tr>", html.EscapeString(t.title))
		for i, h := range t.head {
			ew.printf("<th%s>%s</th>", cls(t.right, i), html.EscapeString(h))
		}
		ew.printf("</tr>\n")
		for _, row := range t.rows {
			ew.printf("<tr>")
			for i, c := range row {
				ew.printf("<td%s>%s</td>", cls(t.right, i), html.EscapeString(c))
			}
			ew.printf("</tr>\n")
		}
		ew.printf("</table>\n")
		for _, n := range t.notes {
			ew.printf("<p class=\"note\">%s</p>\n", html.EscapeString(n))
		}
	}
	ew.printf("</body>\n</html>\n")
	return ew.err
}

func cls(right []bool, i int) string {
	if i < len(right) && right[i] {
		return ` class="r"`
	}
	return ""
}

// seconds formats a time: three decimals under a second, two under ten,
// one above.
func seconds(s float64) string {
	switch {
	case s >= 10:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	case s >= 1:
		return strconv.FormatFloat(s, 'f', 2, 64) + " s"
	}
	return strconv.FormatFloat(s, 'f', 3, 64) + " s"
}

// size formats bytes, "-" for none.
func size(n int64) string {
	if n == 0 {
		return "-"
	}
	return units.Bytes(n)
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// ratio formats after/before as "0.12x", "-" when before is 0.
func ratio(before, after float64) string {
	if before == 0 {
		return "-"
	}
	return strconv.FormatFloat(after/before, 'f', 2, 64) + "x"
}

func (r *Report) name() string {
	if r.Image != "" {
		return r.Image
	}
	return shortDigest(r.Digest)
}

func (r *Report) chartTitle() string { return "Estimated time to ready: " + r.name() }

// doc lays the report out.
func (r *Report) doc() doc {
	d := doc{title: "Cold start of " + r.name()}
	img := r.Digest
	if r.Platform != "" {
		img += " (" + r.Platform + ")"
	}
	d.facts = append(d.facts, [2]string{"image", img})
	prof := fmt.Sprintf("%s: %d paths, %d files read, %s", r.Profile.Source, r.Profile.Paths, r.Profile.Files, units.Bytes(r.Profile.Bytes))
	if n := len(r.Profile.Missing); n > 0 {
		prof += fmt.Sprintf("; %d not in the image", n)
	}
	d.facts = append(d.facts, [2]string{"profile", prof})
	node := "cold: holds no layer"
	if n := len(r.Held); n > 0 {
		node = fmt.Sprintf("holds %d of %d layers", n, len(r.Layers))
	}
	if r.Previous != "" {
		node += ", and the previous version " + shortDigest(r.Previous)
	}
	d.facts = append(d.facts, [2]string{"node", node})
	rates := "defaults (coldstart report --calibrate, or report.Calibrate, measures this machine)"
	if r.Rates.Calibrated {
		rates = "calibrated on this machine"
	}
	rates += fmt.Sprintf(": gunzip %s/s, unzstd %s/s, unpack %s/s + %.0f µs per entry",
		units.Bytes(int64(r.Rates.GzipDecompress)), units.Bytes(int64(r.Rates.ZstdDecompress)),
		units.Bytes(int64(r.Rates.Unpack)), r.Rates.UnpackEntry*1e6)
	d.facts = append(d.facts, [2]string{"CPU", rates})

	lt := table{
		title: "Layers",
		head:  []string{"#", "DIGEST", "FORMAT", "SIZE", "UNPACKED", "ENTRIES", "LAZY START", "TOC", "PREFETCH", "ON DEMAND", "START-UP FILES"},
		right: []bool{true, false, false, true, true, true, false, true, true, true, true},
	}
	for _, l := range r.Layers {
		od := size(l.OnDemandBytes)
		if l.OnDemandRequests > 0 {
			od += fmt.Sprintf(" (%d req)", l.OnDemandRequests)
		}
		files := "-"
		if l.StartupFiles > 0 {
			files = fmt.Sprintf("%d, %s", l.StartupFiles, units.Bytes(l.StartupBytes))
		}
		lt.rows = append(lt.rows, []string{strconv.Itoa(l.Index), shortDigest(l.Digest), l.Format, units.Bytes(l.Size),
			units.Bytes(l.UncompressedSize), strconv.Itoa(l.Entries), l.Role, size(l.TOCBytes), size(l.PrefetchBytes), od, files})
		if l.Note != "" {
			lt.notes = append(lt.notes, fmt.Sprintf("layer %d: %s", l.Index, l.Note))
		}
	}
	d.tables = append(d.tables, lt)

	st := table{
		title: "What each start fetches",
		head:  []string{"SCENARIO", "BYTES", "REQUESTS", "METADATA", "WHOLE LAYERS", "PREFETCH", "ON DEMAND", "UNPACKED"},
		right: []bool{false, true, true, true, true, true, true, true},
	}
	estimated := false
	for _, s := range r.Scenarios {
		name := s.Scenario.Title()
		if s.Estimated {
			name += " *"
			estimated = true
		}
		st.rows = append(st.rows, []string{name, units.Bytes(s.Bytes), strconv.Itoa(s.Requests), size(s.MetadataBytes),
			size(s.LayerBytes), size(s.PrefetchBytes), size(s.OnDemandBytes), size(s.UnpackBytes)})
		if s.FileBytes > 0 {
			st.notes = append(st.notes, fmt.Sprintf("%s: %s of its bytes are the files it holds in no layer, one multi-range request per layer.", s.Scenario.Title(), units.Bytes(s.FileBytes)))
		}
	}
	if estimated {
		st.notes = append(st.notes, "* estimated: layers that are not lazy yet are taken as converted to eStargz with the start-up files first, their chunks compressed at the layer's ratio.")
	}
	d.tables = append(d.tables, st)

	et := table{title: "Estimated seconds to ready", head: []string{"NETWORK"}, right: []bool{false}}
	for _, s := range r.Scenarios {
		et.head = append(et.head, strings.ToUpper(s.Scenario.Title()))
		et.right = append(et.right, true)
	}
	for _, e := range r.Estimates {
		row := []string{networkLabel(e)}
		for _, p := range e.Phases {
			row = append(row, seconds(p.Total))
		}
		et.rows = append(et.rows, row)
	}
	d.tables = append(d.tables, et)

	for _, e := range r.Estimates {
		pt := table{
			title: "Time on " + networkLabel(e),
			head:  []string{"SCENARIO", "DOWNLOAD", "DECOMPRESS+UNPACK", "START-UP FETCHES", "CONTAINER START", "TOTAL"},
			right: []bool{false, true, true, true, true, true},
		}
		for _, p := range e.Phases {
			pt.rows = append(pt.rows, []string{p.Scenario.Title(), seconds(p.Download), seconds(p.Unpack), seconds(p.OnDemand), seconds(p.Start), seconds(p.Total)})
		}
		d.tables = append(d.tables, pt)
	}
	if n := len(d.tables); len(r.Estimates) > 0 {
		d.tables[n-1].notes = append(d.tables[n-1].notes, startupReadsNote)
	}

	if len(r.TopFiles) > 0 {
		ft := table{
			title: "Start-up files that cost the most (lazy start, " + r.TopFiles[0].Network + ")",
			head:  []string{"SECONDS", "WHERE", "FETCHED ON DEMAND", "SIZE", "LAYER", "FILE"},
			right: []bool{true, false, true, true, true, false},
		}
		for _, f := range r.TopFiles {
			name := f.File
			if f.Path != f.File {
				name += " (via " + f.Path + ")"
			}
			fetched := size(f.Bytes)
			if f.Requests > 0 {
				fetched += fmt.Sprintf(" (%d req)", f.Requests)
			}
			ft.rows = append(ft.rows, []string{seconds(f.Seconds), f.Where, fetched, units.Bytes(f.Size), strconv.Itoa(f.Layer), name})
		}
		d.tables = append(d.tables, ft)
	}
	if n := len(r.Profile.Missing); n > 0 {
		mt := table{title: "Start-up paths not in the image", head: []string{"PATH"}}
		for i, p := range r.Profile.Missing {
			if i == 20 {
				mt.notes = append(mt.notes, fmt.Sprintf("and %d more", n-20))
				break
			}
			mt.rows = append(mt.rows, []string{p})
		}
		d.tables = append(d.tables, mt)
	}
	if m := r.Measured; m != nil {
		mt := table{
			title: "Measured against the registry (" + m.Network + ", " + m.Client + ")",
			head:  []string{"SCENARIO", "MEASURED", "PREDICTED", "ERROR", "BYTES MEASURED", "BYTES PREDICTED", "REQUESTS MEASURED", "REQUESTS PREDICTED"},
			right: []bool{false, true, true, true, true, true, true, true},
		}
		for _, x := range []struct {
			s  Scenario
			ru Run
		}{{FullPull, m.FullPull}, {LazyStart, m.LazyStart}} {
			mt.rows = append(mt.rows, []string{x.s.Title(), seconds(x.ru.Seconds), seconds(x.ru.PredictedSeconds),
				fmt.Sprintf("%+.0f%%", x.ru.Error*100), units.Bytes(x.ru.Bytes), units.Bytes(x.ru.PredictedBytes),
				strconv.Itoa(x.ru.Requests), strconv.Itoa(x.ru.PredictedRequests)})
		}
		d.tables = append(d.tables, mt)
	}
	if len(r.Budgets) > 0 {
		bt := table{title: "Budgets (lazy start)", head: []string{"NETWORK", "ESTIMATE", "BUDGET", "RESULT"}, right: []bool{false, true, true, false}}
		for _, b := range r.Budgets {
			res := "ok"
			if b.Exceeded {
				res = "EXCEEDED"
			}
			bt.rows = append(bt.rows, []string{b.Network, seconds(b.Estimate), seconds(b.Budget), res})
		}
		d.tables = append(d.tables, bt)
	}
	return d
}

// startupReadsNote says what the last time columns hold, so that their
// seconds and the bytes table agree.
const startupReadsNote = "start-up fetches: once every layer is mounted, the container waits for the prefetch still under way (PREFETCH bytes) and fetches the rest on demand (ON DEMAND bytes); container start: its own start, and in a lazy start the reading of its start-up files through the snapshotter."

func networkLabel(e NetworkEstimate) string {
	return fmt.Sprintf("%s (%s, %s)", e.Network, FormatRate(e.BytesPerSecond), strconv.FormatFloat(e.RTTSeconds*1000, 'g', 4, 64)+" ms")
}

// panels are the chart: one panel per network, one bar per scenario.
func (r *Report) panels() []panel {
	var out []panel
	for _, e := range r.Estimates {
		p := panel{title: networkLabel(e)}
		for _, ph := range e.Phases {
			label := ph.Scenario.Title()
			for _, s := range r.Scenarios {
				if s.Scenario == ph.Scenario && s.Estimated {
					label += " *"
				}
			}
			p.bars = append(p.bars, bar{label: label, ph: ph})
		}
		out = append(out, p)
	}
	return out
}
