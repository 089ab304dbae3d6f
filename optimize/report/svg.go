package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// panel is one network's part of the chart.
type panel struct {
	title string
	bars  []bar
}

// bar is one scenario: its time split in phases.
type bar struct {
	label string
	ph    Phases
}

// Chart geometry, in SVG user units.
const (
	svgWidth    = 820
	svgMargin   = 16
	svgLabelW   = 170
	svgValueW   = 70
	svgRowH     = 22
	svgBarH     = 14
	svgTitleH   = 36
	svgLegendH  = 28
	svgPanelTop = 26
	svgAxisH    = 30
	svgPanelGap = 14
)

// The colours of the four phases.
var svgPhases = []struct {
	name, color string
}{
	{"download", "#4e79a7"},
	{"decompress + unpack", "#f28e2b"},
	{"start-up fetches (prefetch, on demand)", "#59a14f"},
	{"container start", "#9c755f"},
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// niceMax returns the smallest of 1, 2, 2.5 or 5 times a power of ten that
// is at least m.
func niceMax(m float64) float64 {
	if !(m > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(m)))
	for _, f := range []float64{1, 2, 2.5, 5, 10} {
		if f*p >= m*(1-1e-12) {
			return f * p
		}
	}
	return 10 * p
}

// tickLabel formats an axis value in seconds.
func tickLabel(v float64) string {
	return strconv.FormatFloat(v, 'g', 3, 64) + " s"
}

// fit shortens s to at most n characters, cutting its middle.
func fit(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	half := (n - 1) / 2
	return string(r[:half]) + "…" + string(r[len(r)-(n-1-half):])
}

// writeSVG draws one panel per network, one horizontal stacked bar per
// scenario; each panel has its own scale. The output depends only on the
// arguments.
func writeSVG(w io.Writer, title string, panels []panel) error {
	barX := float64(svgMargin + svgLabelW)
	barW := float64(svgWidth - svgMargin - svgLabelW - svgValueW - svgMargin)
	height := svgMargin + svgTitleH + svgLegendH
	for _, p := range panels {
		height += svgPanelTop + len(p.bars)*svgRowH + svgAxisH + svgPanelGap
	}
	estimated := false
	for _, p := range panels {
		for _, b := range p.bars {
			if strings.HasSuffix(b.label, "*") {
				estimated = true
			}
		}
	}
	if estimated {
		height += 18
	}
	height += svgMargin
	var sb strings.Builder
	pf := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	pf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" role="img" aria-label="%s">`+"\n",
		svgWidth, height, svgWidth, height, xmlText(title))
	pf(`<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	y := float64(svgMargin)
	pf(`<text x="%d" y="%s" font-size="16" font-weight="bold" fill="#222">%s</text>`+"\n", svgMargin, num(y+18), xmlText(fit(title, 86)))
	y += svgTitleH
	lx := float64(svgMargin)
	for _, ph := range svgPhases {
		pf(`<rect x="%s" y="%s" width="12" height="12" fill="%s"/>`+"\n", num(lx), num(y), ph.color)
		pf(`<text x="%s" y="%s" font-size="12" fill="#333">%s</text>`+"\n", num(lx+17), num(y+10.5), xmlText(ph.name))
		lx += 17 + 7.2*float64(len(ph.name)) + 24
	}
	y += svgLegendH
	for _, p := range panels {
		maxT := 0.0
		for _, b := range p.bars {
			maxT = math.Max(maxT, b.ph.Total)
		}
		scale := niceMax(maxT)
		pf(`<text x="%d" y="%s" font-size="13" font-weight="bold" fill="#222">%s</text>`+"\n", svgMargin, num(y+14), xmlText(fit(p.title, 100)))
		top := y + svgPanelTop
		bottom := top + float64(len(p.bars)*svgRowH)
		for k := 0; k <= 5; k++ {
			v := scale * float64(k) / 5
			x := barX + barW*float64(k)/5
			pf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd" stroke-width="1"/>`+"\n", num(x), num(top-4), num(x), num(bottom))
			pf(`<text x="%s" y="%s" font-size="10" fill="#555" text-anchor="middle">%s</text>`+"\n", num(x), num(bottom+14), xmlText(tickLabel(v)))
		}
		pf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888888" stroke-width="1"/>`+"\n", num(barX), num(bottom), num(barX+barW), num(bottom))
		for i, b := range p.bars {
			ry := top + float64(i*svgRowH)
			pf(`<text x="%s" y="%s" font-size="12" fill="#222" text-anchor="end">%s</text>`+"\n", num(barX-8), num(ry+11.5), xmlText(fit(b.label, 26)))
			x := barX
			for k, v := range []float64{b.ph.Download, b.ph.Unpack, b.ph.OnDemand, b.ph.Start} {
				wd := barW * v / scale
				if wd <= 0 {
					continue
				}
				pf(`<rect x="%s" y="%s" width="%s" height="%d" fill="%s"><title>%s: %s</title></rect>`+"\n",
					num(x), num(ry), num(wd), svgBarH, svgPhases[k].color, xmlText(svgPhases[k].name), xmlText(seconds(v)))
				x += wd
			}
			pf(`<text x="%s" y="%s" font-size="12" fill="#222">%s</text>`+"\n", num(x+6), num(ry+11.5), xmlText(seconds(b.ph.Total)))
		}
		y = bottom + svgAxisH + svgPanelGap
	}
	if estimated {
		pf(`<text x="%d" y="%s" font-size="11" fill="#555">* estimated: layers not lazy yet taken as converted with the start-up files first</text>`+"\n", svgMargin, num(y+6))
	}
	pf("</svg>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}
