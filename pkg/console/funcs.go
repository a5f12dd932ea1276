package console

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"num":  formatNumber,
	"when": timeTag,
	"join": strings.Join,
}

// formatNumber writes an integer with thousands separators: 1,234,567.
func formatNumber(v any) string {
	var n int64
	switch x := v.(type) {
	case *int64:
		if x == nil {
			return ""
		}
		n = *x
	case int:
		n = int64(x)
	case int64:
		n = x
	case int32:
		n = int64(x)
	case float64:
		if x != float64(int64(x)) {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		n = int64(x)
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "−" + b.String()
	}
	return b.String()
}

// timeTag renders a time in UTC inside a <time> element; console.js shows
// it in the viewer's zone and keeps UTC on hover.
func timeTag(v any) template.HTML {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return ""
		}
		t = *x
	case string:
		p, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return template.HTML(template.HTMLEscapeString(x))
		}
		t = p
	default:
		return ""
	}
	if t.IsZero() {
		return ""
	}
	u := t.UTC().Format("2006-01-02 15:04:05 UTC")
	return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339Nano) + `" title="` + u + `">` + u + `</time>`)
}
