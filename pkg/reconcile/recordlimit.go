package reconcile

import (
	"bufio"
	"bytes"
	"fmt"
)

// RecordTooLongError says a record of a snapshot file is longer than the
// limit: a line that long, or a quoted field whose quote is never closed
// and would make the rest of the file one record.
type RecordTooLongError struct {
	Line    int64 // the line the record starts on
	Through int64 // the line reading had reached
	Limit   int
}

func (e *RecordTooLongError) Error() string {
	if e.Through == e.Line {
		return fmt.Sprintf("line %d is longer than %d bytes, the limit of a line", e.Line, e.Limit)
	}
	return fmt.Sprintf("line %d: the record starting on this line runs on past line %d and %d bytes, the limit of a record: "+
		"a quoted field opened on line %d is probably never closed (check its quoting)", e.Line, e.Through, e.Limit, e.Line)
}

// recordLimiter is what encoding/csv reads a file through. It hands over
// at most one line per Read, so the CSV reader's own buffer never runs
// ahead of the record it is reading, and it counts the bytes of the
// current record (from its first non-empty line, as encoding/csv skips
// empty ones): past max, it fails, and stays failed. reset marks the start
// of a record.
type recordLimiter struct {
	br      *bufio.Reader
	max     int
	line    int64 // the line of the next byte handed over
	midLine bool  // the last byte handed over was not a newline
	start   int64 // the line the current record starts on; 0 before it starts
	n       int   // bytes of the current record handed over
	err     error // *RecordTooLongError, once over the limit
}

func newRecordLimiter(br *bufio.Reader, max int) *recordLimiter {
	return &recordLimiter{br: br, max: max, line: 1}
}

func (l *recordLimiter) reset() { l.start, l.n = 0, 0 }

func (l *recordLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if l.br.Buffered() == 0 {
		if _, err := l.br.Peek(1); err != nil {
			return 0, err
		}
	}
	b, _ := l.br.Peek(l.br.Buffered())
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	}
	b = b[:min(len(b), len(p))]
	if l.start == 0 && !l.midLine && !emptyLine(b) {
		l.start = l.line
	}
	if l.start != 0 {
		if l.n += len(b); l.n > l.max {
			l.err = &RecordTooLongError{Line: l.start, Through: l.line, Limit: l.max}
			return 0, l.err
		}
	}
	n := copy(p, b)
	_, _ = l.br.Discard(n)
	if l.midLine = b[n-1] != '\n'; !l.midLine {
		l.line++
	}
	return n, nil
}

// emptyLine says b is a whole line with nothing on it.
func emptyLine(b []byte) bool {
	return len(b) == 1 && b[0] == '\n' || len(b) == 2 && b[0] == '\r' && b[1] == '\n'
}
