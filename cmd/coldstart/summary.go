package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/report"
)

// print writes the summary with the before/after estimate in --format, the
// --report file, and a warning for what a docker archive loses.
func (f *optimizeFlags) print(g *globals, res *coldstart.Result) error {
	if res.CompareError != nil {
		// The image is written; the comparison is a bonus.
		fmt.Fprintf(g.stderr, "coldstart: before/after comparison: %v\n", res.CompareError)
	}
	if res.Destination.Transport == imageref.TransportDockerArchive && f.lazy {
		fmt.Fprintf(g.stderr, "coldstart: warning: a docker archive drops layer annotations: the lazy layers of %s lose the TOC digest their puller verifies; optimizing the image again (after docker load and push) puts it back\n", res.Destination)
	}
	if err := writeSummary(g.stdout, f.format, res, f.compare); err != nil {
		return err
	}
	if f.report == "" {
		return nil
	}
	return writeFileAtomic(f.report, func(w *bufio.Writer) error {
		for _, c := range res.Comparisons {
			if err := c.Write(w, reportFormat(f.report)); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeSummary writes what optimize did and, with compare, the estimates.
func writeSummary(w io.Writer, format string, res *coldstart.Result, compare bool) error {
	cmps := res.Comparisons
	if !compare {
		cmps = nil
	}
	if format == optimize.FormatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*optimize.Result
			Comparisons []*report.Comparison `json:"comparisons,omitempty"`
		}{res.Result, cmps})
	}
	if err := res.Write(w, format); err != nil {
		return err
	}
	rf := report.FormatText
	if format == optimize.FormatMarkdown {
		rf = report.FormatMarkdown
	}
	for _, c := range cmps {
		fmt.Fprintln(w)
		if err := c.Write(w, rf); err != nil {
			return err
		}
	}
	return nil
}

// reportFormat is the comparison format a file's extension names.
func reportFormat(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return report.FormatJSON
	case ".md", ".markdown":
		return report.FormatMarkdown
	case ".svg":
		return report.FormatSVG
	case ".html", ".htm":
		return report.FormatHTML
	}
	return report.FormatText
}
