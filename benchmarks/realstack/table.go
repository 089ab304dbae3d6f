package realstack

import (
	"fmt"
	"io"
)

// WriteTable writes the summaries as a Markdown table.
func WriteTable(w io.Writer, res *Result) {
	fmt.Fprintf(w, "\n%s at %g Mbit/s (link measured %.1f MB/s)\n\n", res.Image, res.RateMbit, res.LinkMBps)
	fmt.Fprintln(w, "| node | variant | median s | min s | max s | MB before ready | requests | blob GETs (206) | layers remote+held | mode | ok | pull + snapshot + task + start + program s |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|---|")
	for _, s := range res.Summaries {
		fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %.2f | %.1f | %d | %d (%d) | %d+%d/%d | %s | %d/%d | %.2f + %.2f + %.2f + %.2f + %.2f |\n",
			s.Node, s.Variant, s.Seconds.Median, s.Seconds.Min, s.Seconds.Max, float64(s.Bytes)/1e6,
			s.Requests, s.BlobGETs, s.RangeGETs, s.RemoteLayers, s.HeldLayers, s.Layers, s.Mode, s.OK, s.Runs,
			s.Split.Pull, s.Split.Snapshot, s.Split.Task, s.Split.Start, s.Split.Program)
	}
}
