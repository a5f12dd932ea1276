package console

import (
	"fmt"
	"html/template"
	"strings"
)

// chart is an SVG chart rendered on the server: no script, no library.
type chart struct {
	SVG   template.HTML
	Empty bool
}

// inboundChart draws a position's inbound schedule as bars by date.
func inboundChart(in []Inbound) chart {
	if len(in) == 0 {
		return chart{Empty: true}
	}
	const w, h, pad = 600.0, 140.0, 24.0
	var top int64 = 1
	for _, b := range in {
		top = max(top, b.Quantity)
	}
	bw := min((w-2*pad)/float64(len(in)), 48)
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="Inbound by date">`, w, h)
	fmt.Fprintf(&s, `<line class="axis" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f"/>`, pad, h-pad, w-pad, h-pad)
	for i, b := range in {
		bh := (h - 2*pad) * float64(b.Quantity) / float64(top)
		x := pad + float64(i)*bw
		fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#0b5cad"><title>%s: %d</title></rect>`,
			x+2, h-pad-bh, max(bw-4, 1), bh, template.HTMLEscapeString(b.Date), b.Quantity)
		fmt.Fprintf(&s, `<text x="%.1f" y="%.1f">%d</text>`, x+2, h-pad-bh-3, b.Quantity)
		if len(in) <= 12 || i%(len(in)/12+1) == 0 {
			fmt.Fprintf(&s, `<text x="%.1f" y="%.1f">%s</text>`, x+2, h-8, template.HTMLEscapeString(b.Date[5:]))
		}
	}
	s.WriteString(`</svg>`)
	return chart{SVG: template.HTML(s.String())}
}
