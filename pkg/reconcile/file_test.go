package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

// line is a SnapshotLine as the tests compare it.
type line struct {
	Line          int64
	SKU, Location string
	Quantity      int64
	UoM           string
	Error         string
}

func (l line) String() string {
	return fmt.Sprintf("%d %s@%s %d %s err=%q", l.Line, l.SKU, l.Location, l.Quantity, l.UoM, l.Error)
}

// readAll returns every line ReadFile passes, and its error.
func readAll(t *testing.T, csv string) ([]line, error) {
	t.Helper()
	var out []line
	err := ReadFile(strings.NewReader(csv), "SNAP-1", func(l *events.SnapshotLine) error {
		if l.SnapshotID != "SNAP-1" {
			t.Errorf("line %d has snapshot id %q", l.Line, l.SnapshotID)
		}
		x := line{Line: l.Line, SKU: l.SKU, Location: l.Location, Quantity: l.Quantity, UoM: l.UoM}
		if l.Error != nil {
			x.Error = *l.Error
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

func sameLines(t *testing.T, got, want []line) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		// A wanted error is a fragment of the reason.
		if g.Error != "" && w.Error != "" && strings.Contains(g.Error, w.Error) {
			g.Error = w.Error
		}
		if g != w {
			t.Errorf("line %d:\n got %v\nwant %v", i, g, w)
		}
	}
}

func TestReadFileHeaders(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		want      []line
	}{
		{"plain", "sku,location,quantity\nA,L1,5\n",
			[]line{{Line: 2, SKU: "A", Location: "L1", Quantity: 5, UoM: "EA"}}},
		{"any order, any case, spaces, other columns", " Quantity ,description,LOCATION, sku\r\n7,a thing,L2,B\r\n",
			[]line{{Line: 2, SKU: "B", Location: "L2", Quantity: 7, UoM: "EA"}}},
		{"uom column", "sku,location,quantity,uom\nA,L1,5,CS\nB,L1,6,\nC,L1,7, ea \n",
			[]line{{Line: 2, SKU: "A", Location: "L1", Quantity: 5, UoM: "CS"},
				{Line: 3, SKU: "B", Location: "L1", Quantity: 6, UoM: "EA"},
				{Line: 4, SKU: "C", Location: "L1", Quantity: 7, UoM: "ea"}}},
		{"byte order mark", "\uFEFFsku,location,quantity\nA,L1,5\n",
			[]line{{Line: 2, SKU: "A", Location: "L1", Quantity: 5, UoM: "EA"}}},
		{"byte order mark before a quoted header", "\uFEFF\"sku\",\"location\",\"quantity\"\n\"A\",\"L1\",\" 5 \"\n",
			[]line{{Line: 2, SKU: "A", Location: "L1", Quantity: 5, UoM: "EA"}}},
		{"values trimmed, signs read", "sku,location,quantity\n  A  , L1 ,+5\nB,L1,-3\n",
			[]line{{Line: 2, SKU: "A", Location: "L1", Quantity: 5, UoM: "EA"},
				{Line: 3, SKU: "B", Location: "L1", Quantity: -3, UoM: "EA"}}},
		{"header only", "sku,location,quantity\n", nil},
		{"no final newline", "sku,location,quantity\nA,L1,5", []line{{Line: 2, SKU: "A", Location: "L1", Quantity: 5, UoM: "EA"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, tc.csv)
			if err != nil {
				t.Fatal(err)
			}
			sameLines(t, got, tc.want)
		})
	}
}

func TestBadHeaderFailsTheFile(t *testing.T) {
	for _, tc := range []struct{ name, csv, want string }{
		{"empty", "", "empty"},
		{"only blank lines", "\n\n,,\n", "empty"},
		{"no quantity", "sku,location,qty\nA,L1,5\n", "no quantity column"},
		{"nothing known", "a,b\n1,2\n", "no sku, location, quantity column"},
		{"twice", "sku,location,quantity,SKU\nA,L1,5,A\n", `names column "SKU" twice (fields 1 and 4)`},
		{"broken header", "sku,loc\"ation,quantity\n", "header (line 1) is not valid CSV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(t, tc.csv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadFile: %v, want an error saying %q", err, tc.want)
			}
			if _, err := ScanFile(strings.NewReader(tc.csv)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ScanFile: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// malformed is a file whose bad records are lines with their physical line
// numbers: a quoted field running over two lines comes before them, blank
// lines and empty spreadsheet rows are skipped.
const malformed = "sku,location,quantity\n" + // 1
	"A,L1,5\n" + // 2
	"\"B\nB\",L1,6\n" + // 3-4: a quoted field spanning a line break
	"\n" + // 5: blank
	"C,L1,12x\n" + // 6
	"D,L2\n" + // 7
	" , , \n" + // 8: empty row
	"E,L1,1,extra\n" + // 9
	"F,L\"3,4\n" + // 10: bare quote
	"\"G\"x,L1,4\n" + // 11: text after a closing quote
	"H,L1,\n" + // 12
	"I,L1,99999999999999999999\n" + // 13
	"J,bad loc,-2\n" + // 14: read; the server judges the id and the sign
	"K,L4,3\n" // 15

var malformedLines = []line{
	{Line: 2, SKU: "A", Location: "L1", Quantity: 5, UoM: "EA"},
	{Line: 3, SKU: "B\nB", Location: "L1", Quantity: 6, UoM: "EA"},
	{Line: 6, SKU: "C", Location: "L1", UoM: "EA", Error: `quantity "12x" is not an integer`},
	{Line: 7, SKU: "D", Location: "L2", UoM: "EA", Error: "the line has 2 fields, the header 3"},
	{Line: 9, SKU: "E", Location: "L1", UoM: "EA", Error: "the line has 4 fields, the header 3"},
	{Line: 10, SKU: "F", UoM: "EA", Error: `not valid CSV: a " in an unquoted field (column 4)`},
	{Line: 11, UoM: "EA", Error: "not valid CSV: a quoted field is not closed properly (column 3)"},
	{Line: 12, SKU: "H", Location: "L1", UoM: "EA", Error: "quantity is empty"},
	{Line: 13, SKU: "I", Location: "L1", UoM: "EA", Error: `quantity "99999999999999999999" is out of range`},
	{Line: 14, SKU: "J", Location: "bad loc", Quantity: -2, UoM: "EA"},
	{Line: 15, SKU: "K", Location: "L4", Quantity: 3, UoM: "EA"},
}

func TestMalformedRecordsAreLines(t *testing.T) {
	got, err := readAll(t, malformed)
	if err != nil {
		t.Fatal(err)
	}
	sameLines(t, got, malformedLines)
}

// TestScanAgreesWithRead: the first pass counts the lines the second
// sends, and its locations are those of the well-formed lines with an id.
func TestScanAgreesWithRead(t *testing.T) {
	info, err := ScanFile(strings.NewReader(malformed))
	if err != nil {
		t.Fatal(err)
	}
	if info.Lines != int64(len(malformedLines)) {
		t.Errorf("ScanFile counts %d lines, ReadFile sends %d", info.Lines, len(malformedLines))
	}
	if want := []string{"L1", "L4"}; !slices.Equal(info.Locations, want) {
		t.Errorf("locations %v, want %v (L2 is only on a malformed line, 'bad loc' is no id)", info.Locations, want)
	}
	sum := sha256.Sum256([]byte(malformed))
	if info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s, want the file's %x", info.SHA256, sum)
	}
}

// TestUnclosedQuote: encoding/csv goes on after a bad record, but a quote
// never closed swallows the rest of the file into one field; the record is
// still passed, then the read fails naming its line.
func TestUnclosedQuote(t *testing.T) {
	const f = "sku,location,quantity\nA,L1,5\nB,\"L1,6\nC,L1,7\nD,L1,8\n"
	got, err := readAll(t, f)
	if err == nil || !strings.Contains(err.Error(), "line 3: a quoted field opened on this line is never closed; lines 3 to 5") {
		t.Fatalf("ReadFile: %v, want the unclosed quote of line 3", err)
	}
	if len(got) != 2 || got[1].Line != 3 || got[1].SKU != "B" || got[1].Error == "" {
		t.Errorf("lines passed before the failure: %v", got)
	}
	if _, err := ScanFile(strings.NewReader(f)); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("ScanFile: %v, want the unclosed quote of line 3", err)
	}

	// An open quote on the last line swallows nothing: an invalid line.
	got, err = readAll(t, "sku,location,quantity\nA,L1,5\nB,\"L1,6\n")
	if err != nil || len(got) != 2 || got[1].Line != 3 || got[1].Error == "" {
		t.Errorf("open quote on the last line: %v, %v", got, err)
	}
	// A quoted field over several lines that ends badly before the end of
	// the file is one bad record; reading goes on.
	got, err = readAll(t, "sku,location,quantity\n\"A\nA\"x,L1,5\nB,L1,6\n")
	if err != nil || len(got) != 2 || got[0].Line != 2 || !strings.Contains(got[0].Error, "line 3, column 2") || got[1].Line != 4 {
		t.Errorf("bad multi-line record: %v, %v", got, err)
	}
}

func TestLongFieldsAreClipped(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	got, err := readAll(t, "sku,location,quantity\n"+long+",L1,"+long+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].SKU) > maxField+len("…") || len(got[0].Error) > 100 {
		t.Errorf("a long field is carried whole: sku %d bytes, error %q", len(got[0].SKU), got[0].Error)
	}
}

func TestSnapshotID(t *testing.T) {
	asOf := time.Date(2026, 11, 27, 7, 0, 0, 0, time.FixedZone("CET", 3600))
	sum := sha256.Sum256([]byte("file"))
	digest := hex.EncodeToString(sum[:])
	id := SnapshotID("ERP-EAST", asOf, digest)
	if want := "ERP-EAST-20261127T060000Z-" + digest[:12]; id != want {
		t.Errorf("id %q, want %q", id, want)
	}
	if again := SnapshotID("ERP-EAST", asOf.UTC(), digest); again != id {
		t.Errorf("the same file, source and time give %q and %q", id, again)
	}
	for _, other := range []string{
		SnapshotID("ERP-WEST", asOf, digest),
		SnapshotID("ERP-EAST", asOf.Add(time.Second), digest),
		SnapshotID("ERP-EAST", asOf, "0"+digest[1:]),
	} {
		if other == id {
			t.Errorf("another source, time or file gives the same id %q", id)
		}
	}
	for _, src := range []string{"", "ERP EAST/ß", strings.Repeat("S", 200), "ok.source_1"} {
		id := SnapshotID(src, asOf, digest)
		if !idRule.MatchString(id) {
			t.Errorf("source %q gives %q, not an id", src, id)
		}
		if !strings.HasSuffix(id, "-20261127T060000Z-"+digest[:12]) {
			t.Errorf("source %q gives %q: the time and digest were cut", src, id)
		}
	}
}

// TestSend produces a snapshot to an in-process Kafka and reads it back:
// the start, every line in order with the snapshot id, the end with the
// line count, all under the snapshot id's key.
func TestSend(t *testing.T) {
	const topic = "wms.snapshots.v1"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const n = 20_000
	var file bytes.Buffer
	file.WriteString("sku,location,quantity\n")
	for i := range n {
		fmt.Fprintf(&file, "SKU-%d,DC-EAST,%d\n", i, i)
	}
	start := &events.SnapshotStarted{Meta: events.Meta{EventID: "snapshot:S1", EventTime: time.Now(), Source: "ERP-EAST"},
		SnapshotID: "S1", Locations: []string{"DC-EAST"}, AsOf: time.Now().Add(-time.Hour), ExpectedLines: n}
	var calls, last int64
	sent, err := Send(ctx, cl, codec, topic, start, func(emit func(*events.SnapshotLine) error) error {
		return ReadFile(bytes.NewReader(file.Bytes()), "", emit)
	}, func(lines int64) { calls++; last = lines })
	if err != nil {
		t.Fatal(err)
	}
	if sent != n || last != n || calls < 2 {
		t.Errorf("sent %d, progress called %d times, last with %d; want %d lines", sent, calls, last, n)
	}

	var got []any
	for len(got) < n+2 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) != "S1" {
				t.Errorf("record %d keyed %q", len(got), r.Key)
			}
			rec, err := codec.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rec)
		})
	}
	if st, ok := got[0].(*events.SnapshotStarted); !ok || st.SnapshotID != "S1" || st.ExpectedLines != n {
		t.Errorf("first record %+v, want the start", got[0])
	}
	for i := 1; i <= n; i++ {
		l, ok := got[i].(*events.SnapshotLine)
		if !ok || l.SnapshotID != "S1" || l.Line != int64(i+1) || l.SKU != fmt.Sprintf("SKU-%d", i-1) {
			t.Fatalf("record %d is %+v, want line %d", i, got[i], i+1)
		}
	}
	if e, ok := got[n+1].(*events.SnapshotEnded); !ok || e.SnapshotID != "S1" || e.LineCount != n {
		t.Errorf("last record %+v, want the end with %d lines", got[n+1], n)
	}
}

// TestSendWithoutEndOnFailure: a snapshot whose lines could not all be
// read gets no end record, so its run is never taken as whole.
func TestSendWithoutEndOnFailure(t *testing.T) {
	const topic = "wms.snapshots.v1"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := &events.SnapshotStarted{Meta: events.Meta{EventID: "e", EventTime: time.Now(), Source: "S"},
		SnapshotID: "S2", Locations: []string{"L1"}, AsOf: time.Now(), ExpectedLines: 3}
	_, err = Send(ctx, cl, codec, topic, start, func(emit func(*events.SnapshotLine) error) error {
		return ReadFile(strings.NewReader("sku,location,quantity\nA,L1,1\nB,\"L1,2\nC,L1,3\n"), "", emit)
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "never closed") {
		t.Fatalf("Send: %v, want the file's error", err)
	}
	var n int
	for n < 3 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			rec, err := codec.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if _, end := rec.(*events.SnapshotEnded); end {
				t.Errorf("an end record was produced after a failure")
			}
			n++
		})
	}
	if _, err := Send(ctx, cl, codec, topic, &events.SnapshotStarted{SnapshotID: "no id"}, nil, nil); err == nil {
		t.Error("Send accepted an invalid snapshot id")
	}
}

// BenchmarkSend measures a snapshot's sending, lines read from a file, to
// an in-process Kafka.
func BenchmarkSend(b *testing.B) {
	const topic = "wms.snapshots.v1"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	var file bytes.Buffer
	file.WriteString("sku,location,quantity,uom\n")
	for i := range b.N {
		fmt.Fprintf(&file, "SKU-%06d,DC-EAST,%d,EA\n", i, i%500)
	}
	start := &events.SnapshotStarted{Meta: events.Meta{EventID: "e", EventTime: time.Now(), Source: "S"},
		SnapshotID: "BENCH", Locations: []string{"DC-EAST"}, AsOf: time.Now(), ExpectedLines: int64(b.N)}
	b.ResetTimer()
	if _, err := ScanFile(bytes.NewReader(file.Bytes())); err != nil {
		b.Fatal(err)
	}
	if _, err := Send(context.Background(), cl, codec, topic, start, func(emit func(*events.SnapshotLine) error) error {
		return ReadFile(bytes.NewReader(file.Bytes()), "", emit)
	}, nil); err != nil {
		b.Fatal(err)
	}
}
