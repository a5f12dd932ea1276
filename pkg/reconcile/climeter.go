package reconcile

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// meter shows how far a count has come: a bar on a terminal, a line per
// tenth elsewhere (logs keep a trace without a line per update), nothing
// when turned off or when there is nothing to count.
type meter struct {
	bar    *progressbar.ProgressBar
	w      io.Writer
	label  string
	max    int64
	tenths int64
	off    bool
}

func newMeter(w io.Writer, on bool, max int64, desc, label string) *meter {
	m := &meter{w: w, label: label, max: max, off: !on || max <= 0}
	if m.off || !isTerminalWriter(w) {
		return m
	}
	m.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("lines"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	return m
}

func (m *meter) set(n int64) {
	switch {
	case m.off:
	case m.bar != nil:
		_ = m.bar.Set64(n)
	default:
		if t := n * 10 / m.max; t > m.tenths && t < 10 {
			m.tenths = t
			fmt.Fprintf(m.w, "%d%%: %d of %d %s\n", t*10, n, m.max, m.label)
		}
	}
}

// done ends the display, leaving what it reached.
func (m *meter) done() {
	if m.bar != nil && !m.bar.IsFinished() {
		_ = m.bar.Exit()
	}
	m.bar, m.off = nil, true
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
