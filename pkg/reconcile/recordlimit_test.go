package reconcile

import (
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/pkg/events"
)

// junkReader is a file of size bytes, made up as it is read: head, then
// rows of filler.
type junkReader struct {
	head   string
	size   int64
	served int64
}

func (j *junkReader) Read(p []byte) (int, error) {
	if j.served >= j.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && j.served < j.size {
		var c byte
		switch {
		case j.served < int64(len(j.head)):
			c = j.head[j.served]
		case (j.served-int64(len(j.head)))%32 == 31:
			c = '\n'
		default:
			c = 'x'
		}
		p[n] = c
		n++
		j.served++
	}
	return n, nil
}

// A quote left open near the start of a 64 MB file makes the rest of the
// file one record. Reading it holds no more than the limit of a record:
// it stops a little past the limit, not at the end of the file, and fails
// naming the line the quote was opened on.
func TestUnclosedQuoteReadsNoFurtherThanTheLimit(t *testing.T) {
	for _, pass := range []string{"scan", "read"} {
		t.Run(pass, func(t *testing.T) {
			src := &junkReader{head: "sku,location,quantity\nA,L1,5\nB,\"L1,6\n", size: 64 << 20}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var err error
			lines := 0
			if pass == "scan" {
				_, err = ScanFile(src)
			} else {
				err = ReadFile(src, "S", func(*events.SnapshotLine) error { lines++; return nil })
			}
			runtime.ReadMemStats(&after)
			var long *RecordTooLongError
			if !errors.As(err, &long) || long.Line != 3 || !strings.Contains(err.Error(), "line 3: the record starting on this line runs on past line") ||
				!strings.Contains(err.Error(), "quoted field opened on line 3") {
				t.Fatalf("%s: %v, want the record of line 3 over the limit", pass, err)
			}
			if src.served > 1<<20 {
				t.Errorf("%s read %d bytes of the file, want no more than the limit (%d) and its buffers", pass, src.served, DefaultMaxRecordBytes)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("%s allocated %d bytes for a record limit of %d", pass, alloc, DefaultMaxRecordBytes)
			}
			if pass == "read" && lines != 1 {
				t.Errorf("%d lines passed, want only line 2's", lines)
			}
		})
	}
}

// A line over the limit fails the file naming it, counting the lines
// encoding/csv skips (empty ones) and those of quoted fields over several
// lines; records under the limit pass, however long the file.
func TestRecordLimit(t *testing.T) {
	long := strings.Repeat("x", 2000)
	lim := FileLimits{RecordBytes: 1024}
	for _, tc := range []struct {
		name, csv string
		lines     int
		err       string
	}{
		{"a long line", "sku,location,quantity\nA,L1,5\n" + long + ",L1,5\nB,L1,6\n", 1, "line 3 is longer than 1024 bytes"},
		{"after empty lines", "sku,location,quantity\n\n\r\nA,\"L1\nL2\",5\n\n" + long + "\n", 1, "line 7 is longer than 1024 bytes"},
		{"an open quote", "sku,location,quantity\nA,\"L1,5\n" + strings.Repeat("B,L1,6\n", 400), 0, "line 2: the record starting on this line runs on past line 148"},
		{"the header", long + "\nA,L1,5\n", 0, "snapshot file: header: line 1 is longer than 1024 bytes"},
		{"many short lines", "sku,location,quantity\n" + strings.Repeat("B,L1,6\n", 5000) + "\"A\n" + strings.Repeat("x", 1000) + "\",L1,5\n", 5001, ""},
		{"no newline at the end", "sku,location,quantity\nA,L1,5", 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			err := lim.Read(strings.NewReader(tc.csv), "S", func(*events.SnapshotLine) error { n++; return nil })
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Read: %v, want %q", err, tc.err)
			}
			if n != tc.lines {
				t.Errorf("%d lines passed, want %d", n, tc.lines)
			}
			_, err = lim.Scan(strings.NewReader(tc.csv))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Scan: %v, want %q", err, tc.err)
			}
		})
	}
}

// The default limit, with no limits given: a 100 KB line fails.
func TestDefaultRecordLimit(t *testing.T) {
	f := "sku,location,quantity\nA,L1,5\n" + strings.Repeat("x", 100_000) + ",L1,5\n"
	if _, err := ScanFile(strings.NewReader(f)); err == nil || !strings.Contains(err.Error(), "line 3 is longer than 65536 bytes") {
		t.Errorf("ScanFile: %v, want line 3 over the limit", err)
	}
}

// The first pass collects the file's locations for the start record, at
// most as many as the limit.
func TestScanLimitsLocations(t *testing.T) {
	var b strings.Builder
	b.WriteString("sku,location,quantity\n")
	for i := range 5 {
		b.WriteString("A,L" + string(rune('0'+i)) + ",1\nB,L0,1\n")
	}
	if info, err := (FileLimits{Locations: 5}).Scan(strings.NewReader(b.String())); err != nil || len(info.Locations) != 5 {
		t.Errorf("5 locations, limit 5: %+v %v", info, err)
	}
	b.WriteString("A,L9,1\n")
	if _, err := (FileLimits{Locations: 5}).Scan(strings.NewReader(b.String())); err == nil || !strings.Contains(err.Error(), "line 12: more than 5 distinct locations") {
		t.Errorf("6 locations, limit 5: %v", err)
	}
}

// BenchmarkScanFile is the first pass over a file of 100,000 lines.
func BenchmarkScanFile(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("sku,location,quantity\n")
	for i := range 100_000 {
		sb.WriteString("SKU-" + strings.Repeat("0", 6-len(itoa(i))) + itoa(i) + ",DC-EAST,17\n")
	}
	f := sb.String()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if _, err := ScanFile(strings.NewReader(f)); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
