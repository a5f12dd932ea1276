package console

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// line is one series of a line chart.
type line struct {
	Name   string
	Points []point
}

// The line chart's geometry, in SVG units; the SVG scales to its box. 400
// wide is its size in a three-column grid at 1280px and still legible at
// 390px.
const (
	lcW, lcH       = 400.0, 160.0
	lcLeft, lcRigt = 48.0, 60.0 // y tick labels; the last values
	lcTop, lcBot   = 18.0, 20.0 // the legend; the time labels
)

// lineChart draws one or two series over the span up to to: time along x,
// values up from a 0 baseline to a round top, the top and middle labelled
// with format, each line's last value written at its end. Points that are
// NaN (nothing measured) break the line. Empty when no series has a value.
func lineChart(label string, format func(float64) string, to time.Time, span time.Duration, lines ...line) chart {
	from := to.Add(-span)
	top := 0.0
	seen := false
	for _, l := range lines {
		for _, p := range l.Points {
			if finite(p.v) && !p.at.Before(from) {
				top, seen = max(top, p.v), true
			}
		}
	}
	if !seen {
		return chart{Empty: true}
	}
	top = niceCeil(top)
	x := func(t time.Time) float64 {
		return lcLeft + (lcW-lcLeft-lcRigt)*t.Sub(from).Seconds()/span.Seconds()
	}
	y := func(v float64) float64 { return lcH - lcBot - (lcH-lcTop-lcBot)*v/top }

	var s strings.Builder
	esc := template.HTMLEscapeString(label)
	fmt.Fprintf(&s, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s"><title>%s</title>`, lcW, lcH, esc, esc)
	for _, v := range []float64{0, top / 2, top} {
		fmt.Fprintf(&s, `<line class="axis" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f"/>`, lcLeft, y(v), lcW-lcRigt, y(v))
		fmt.Fprintf(&s, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, lcLeft-4, y(v)+3, template.HTMLEscapeString(format(v)))
	}
	mins := int(span.Minutes())
	fmt.Fprintf(&s, `<text x="%.0f" y="%.0f">−%d min</text>`, lcLeft, lcH-6, mins)
	fmt.Fprintf(&s, `<text x="%.1f" y="%.0f" text-anchor="middle">−%d min</text>`, (lcLeft+lcW-lcRigt)/2, lcH-6, mins/2)
	fmt.Fprintf(&s, `<text x="%.0f" y="%.0f" text-anchor="end">now</text>`, lcW-lcRigt, lcH-6)

	var lastY []float64
	for i, l := range lines {
		class := "line"
		if i%2 == 1 {
			class = "line2"
		}
		if len(lines) > 1 {
			lx := lcLeft + float64(i)*110
			fmt.Fprintf(&s, `<line class="%s" x1="%.0f" y1="8" x2="%.0f" y2="8"/><text x="%.0f" y="11">%s</text>`,
				class, lx, lx+14, lx+18, template.HTMLEscapeString(l.Name))
		}
		d, lp, ok := linePath(l.Points, from, x, y)
		if d == "" {
			continue
		}
		fmt.Fprintf(&s, `<path class="%s" d="%s"><title>%s</title></path>`, class, d, template.HTMLEscapeString(l.Name))
		if !ok {
			continue
		}
		ly := y(lp.v) + 3
		for _, o := range lastY { // keep two last values from writing over each other
			if math.Abs(ly-o) < 11 {
				ly = o + 11
				if ly > lcH-lcBot {
					ly = o - 11
				}
			}
		}
		lastY = append(lastY, ly)
		fmt.Fprintf(&s, `<text x="%.1f" y="%.1f">%s</text>`, x(lp.at)+4, ly, template.HTMLEscapeString(format(lp.v)))
	}
	s.WriteString(`</svg>`)
	return chart{SVG: template.HTML(s.String())}
}

// linePath is a series' SVG path from from on, a new segment after every
// gap; a lone point is a short dash so that it shows. It returns the last
// point with a value, if any.
func linePath(pts []point, from time.Time, x func(time.Time) float64, y func(float64) float64) (string, point, bool) {
	var d strings.Builder
	var last point
	ok := false
	run := 0 // points in the current segment
	endRun := func() {
		if run == 1 { // a lone point: draw it as a dash
			fmt.Fprintf(&d, " l3 0 m-6 0 l3 0")
		}
		run = 0
	}
	for _, p := range pts {
		if p.at.Before(from) {
			continue
		}
		if !finite(p.v) {
			endRun()
			continue
		}
		if run == 0 {
			if d.Len() > 0 {
				d.WriteByte(' ')
			}
			fmt.Fprintf(&d, "M%.1f %.1f", x(p.at), y(p.v))
		} else {
			fmt.Fprintf(&d, " L%.1f %.1f", x(p.at), y(p.v))
		}
		run++
		last, ok = p, true
	}
	endRun()
	return d.String(), last, ok
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so that the
// axis labels are round; 1 for nothing above 0.
func niceCeil(v float64) float64 {
	if v <= 0 || !finite(v) {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, f := range []float64{1, 2, 5, 10} {
		if v <= f*e*(1+1e-9) {
			return f * e
		}
	}
	return 10 * e
}
