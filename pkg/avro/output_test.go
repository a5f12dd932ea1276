package avro_test

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
)

// The tests below hold the hand-written codecs of the folder's output
// records, AvailabilityChanged and StockAlert, to the goavro path.

const (
	availabilityID = 1015 // AvailabilityChanged in schemas/manifest.json
	alertID        = 1016 // StockAlert
)

var alertTypes = []string{events.AlertReplenishmentNeeded, events.AlertStockOut, events.AlertBackInStock, events.AlertNegativeOnHand}

func (g gen) inbound() []events.InboundBucket {
	var n int
	switch g.rng.IntN(6) {
	case 0:
		if !g.exact {
			return []events.InboundBucket{} // encodes as nil does
		}
		return nil
	case 1:
		n = 64 + g.rng.IntN(200) // past 63 items: a two-byte count
	default:
		n = g.rng.IntN(4)
	}
	if n == 0 {
		return nil
	}
	out := make([]events.InboundBucket, n)
	for i := range out {
		out[i] = events.InboundBucket{Date: g.date(), Quantity: g.long()}
	}
	return out
}

func (g gen) availability() *events.AvailabilityChanged {
	return &events.AvailabilityChanged{
		SKU:           g.str(),
		Location:      g.str(),
		Version:       g.long(),
		OnHand:        g.long(),
		Reserved:      g.long(),
		Picked:        g.long(),
		Held:          g.long(),
		SafetyStock:   g.long(),
		ReorderPoint:  g.long(),
		Inbound:       g.inbound(),
		ATP:           g.long(),
		Shortfall:     g.long(),
		AsOf:          g.timestamp(),
		CorrelationID: maybe(g, g.str),
	}
}

func (g gen) alert() *events.StockAlert {
	return &events.StockAlert{
		AlertID:           g.str(),
		AlertType:         alertTypes[g.rng.IntN(len(alertTypes))],
		SKU:               g.str(),
		Location:          g.str(),
		ATP:               g.long(),
		OnHand:            g.long(),
		ReorderPoint:      g.long(),
		SuggestedQuantity: g.long(),
		AsOf:              g.timestamp(),
		CorrelationID:     maybe(g, g.str),
	}
}

func TestAvailabilityChangedMatchesGoavro(t *testing.T) {
	checkMatchesGoavro(t, 20261128, func(g gen) avro.Record { return g.availability() })
}

func TestStockAlertMatchesGoavro(t *testing.T) {
	checkMatchesGoavro(t, 20261129, func(g gen) avro.Record { return g.alert() })
}

// goavro writes an array in blocks of at most its MaxBlockCount items, which
// New lowers to 1<<17; so does AppendArray.
func TestAvailabilityChangedLongInboundMatchesGoavro(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes 131073 buckets through goavro")
	}
	ctx := context.Background()
	fast := newCodec(t)
	a := &events.AvailabilityChanged{SKU: "S", Location: "L", AsOf: t0, Inbound: make([]events.InboundBucket, 1<<17+1)}
	for i := range a.Inbound {
		a.Inbound[i] = events.InboundBucket{Date: t0.Truncate(24*time.Hour).AddDate(0, 0, i%1000), Quantity: int64(i)}
	}
	want, err := avro.Reflective(fast).Encode(ctx, "t", a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fast.Encode(ctx, "t", a)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("bytes differ from goavro's (%d and %d bytes)", len(got), len(want))
	}
	big, err := avro.New(avro.Config{Registry: mustBuiltin(t), Canonical: mustCanon(t), Types: events.All(), MaxRecordBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	back, err := big.Decode(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, a) {
		t.Fatal("round trip changed the record")
	}
}

func TestOutputRecordEncodeErrors(t *testing.T) {
	g := gen{rng: rand.New(rand.NewPCG(3, 4)), exact: true}
	past := time.Unix((math.MaxInt32+1)*86400, 0).UTC()
	before := time.Unix((math.MinInt32-1)*86400, 0).UTC()
	cases := []struct {
		name string
		rec  func() avro.Record
		want string
	}{
		{"alert type not in the enum", func() avro.Record { a := g.alert(); a.AlertType = "Overstock"; return a }, "alert_type"},
		{"empty alert type", func() avro.Record { a := g.alert(); a.AlertType = ""; return a }, "alert_type"},
		{"inbound date after the last Avro date", func() avro.Record {
			a := g.availability()
			a.Inbound = []events.InboundBucket{{Date: t0}, {Date: past}}
			return a
		}, "inbound: item 1: date"},
		{"inbound date before the first Avro date", func() avro.Record {
			a := g.availability()
			a.Inbound = []events.InboundBucket{{Date: before}}
			return a
		}, "inbound: item 0: date"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkEncodeFails(t, tc.rec(), tc.want) })
	}
}

// availabilityBody is the Avro body of the smallest AvailabilityChanged:
// sku (2 bytes), location (2), seven zero longs, inbound empty (byte 11),
// atp, shortfall, as_of, correlation_id null.
func availabilityBody(t testing.TB) []byte {
	t.Helper()
	return body(t, &events.AvailabilityChanged{SKU: "S", Location: "L", AsOf: time.UnixMilli(0).UTC()})
}

// availabilityWith is availabilityBody with inbound written as the bytes
// given.
func availabilityWith(t testing.TB, inbound ...byte) []byte {
	t.Helper()
	return splice(availabilityBody(t), 11, inbound...)
}

func TestAvailabilityChangedHostileInput(t *testing.T) {
	both, small := codecPairs(t, 40)
	body := availabilityBody(t)
	with := func(bs ...byte) []byte { return availabilityWith(t, bs...) }
	bucket := []byte{0x02, 0x04} // day 1, quantity 2
	if len(body) != 16 || body[11] != 0 {
		t.Fatalf("smallest body is %x: the offsets below are wrong", body)
	}
	checkDecodeLikeGoavro(t, availabilityID, "stockflow.v1.AvailabilityChanged", []decodeCase{
		{"valid", both, body, ""},
		{"empty body", both, nil, avro.ClassTruncated},
		{"cut in the middle", both, body[:len(body)/2], avro.ClassTruncated},
		{"last byte missing", both, body[:len(body)-1], avro.ClassTruncated},
		{"negative string length", both, splice(body, 0, 3), avro.ClassCorrupt},
		{"string longer than the record", both, splice(body, 0, 0x7e), avro.ClassTruncated},
		{"largest string length", both, splice(body, 0, maxVarint...), avro.ClassTruncated},
		{"union index 2", both, splice(body, 15, 4), avro.ClassCorrupt},
		{"union index -1", both, splice(body, 15, 1), avro.ClassCorrupt},
		{"union value missing", both, splice(body, 15, 2), avro.ClassTruncated},
		{"trailing bytes", both, append(append([]byte(nil), body...), 0, 0), avro.ClassCorrupt},
		{"overlong varint", both, splice(body, 2, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), ""},
		{"oversized", small, splice(body, 0, append([]byte{0x40}, make([]byte, 32)...)...), avro.ClassOversized},

		// The inbound array in every form goavro reads, and the ways it
		// breaks.
		{"one block", both, with(cat([]byte{0x04}, bucket, bucket, []byte{0})...), ""},
		{"two blocks", both, with(cat([]byte{0x02}, bucket, []byte{0x02}, bucket, []byte{0})...), ""},
		{"negative count and block size", both, with(cat([]byte{0x03, 0x08}, bucket, bucket, []byte{0})...), ""},
		// goavro skips the block size unread, so a wrong one is no error.
		{"wrong block size", both, with(cat([]byte{0x03, 0x7f}, bucket, bucket, []byte{0})...), ""},
		{"negative block size", both, with(cat([]byte{0x01, 0x01}, bucket, []byte{0})...), ""},
		{"negative then positive block", both, with(cat([]byte{0x01, 0x04}, bucket, []byte{0x02}, bucket, []byte{0})...), ""},
		{"a 0 count ends the array", both, with(0x00, 0x00), avro.ClassCorrupt},
		{"wide bucket values", both, with(cat([]byte{0x02}, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f}, maxVarint, []byte{0})...), ""},
		{"bucket date past 32 bits", both, with(cat([]byte{0x02}, maxVarint, bucket[1:], []byte{0})...), ""},
		{"block count runs past the end", both, body[:11:11], avro.ClassTruncated},
		{"block count cut", both, cat(body[:11:11], []byte{0x80}), avro.ClassTruncated},
		{"block size missing", both, cat(body[:11:11], []byte{0x03}), avro.ClassTruncated},
		{"block size cut", both, cat(body[:11:11], []byte{0x03, 0x80}), avro.ClassTruncated},
		{"bucket cut", both, cat(body[:11:11], []byte{0x02, 0x02}), avro.ClassTruncated},
		{"end of array missing", both, cat(body[:11:11], []byte{0x02}, bucket), avro.ClassTruncated},
		{"more buckets than bytes", both, with(cat([]byte{0xe8, 0x07}, bucket, []byte{0})...), avro.ClassTruncated},
		{"count at the block limit", both, with(cat([]byte{0x80, 0x80, 0x10}, bucket, []byte{0})...), avro.ClassTruncated},
		{"count past the block limit", both, with(cat([]byte{0x82, 0x80, 0x10}, bucket, []byte{0})...), avro.ClassCorrupt},
		{"negative count past the block limit", both, with(cat([]byte{0x81, 0x80, 0x10, 0x04}, bucket, []byte{0})...), avro.ClassCorrupt},
		{"negative count past the block limit, size missing", both, cat(body[:11:11], []byte{0x81, 0x80, 0x10}), avro.ClassTruncated},
		{"largest count", both, with(cat(maxVarint, bucket, []byte{0})...), avro.ClassCorrupt},
		{"most negative count", both, with(cat(minVarint, bucket, []byte{0})...), avro.ClassCorrupt},
		{"second block past the limit", both, with(cat([]byte{0x02}, bucket, []byte{0x82, 0x80, 0x10}, bucket, []byte{0})...), avro.ClassCorrupt},
	})
}

// A block count is the one number on the wire that sizes an allocation; it
// must not size one beyond what the record's bytes can hold.
func TestAvailabilityChangedCountDoesNotSizeAllocation(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t)
	in := withHeader(availabilityID, availabilityWith(t, 0x80, 0x80, 0x10, 0x02, 0x04)) // 1<<17 buckets promised, one there
	if _, err := c.Decode(ctx, in); avro.ClassOf(err) != avro.ClassTruncated {
		t.Fatalf("decoded: %v", err)
	}
	var before, after runtime.MemStats
	const runs = 100
	runtime.ReadMemStats(&before)
	for range runs {
		_, _ = c.Decode(ctx, in)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 4096 {
		t.Fatalf("%d bytes allocated per decode of a %d-byte record", per, len(in))
	}
}

func TestStockAlertHostileInput(t *testing.T) {
	both, small := codecPairs(t, 30)
	body := body(t, &events.StockAlert{AlertID: "A", AlertType: events.AlertStockOut, SKU: "S", Location: "L", AsOf: time.UnixMilli(0).UTC()})
	// body: alert_id (2), alert_type (1), sku (2), location (2), four zero
	// longs, as_of, correlation_id null (byte 12).
	if len(body) != 13 {
		t.Fatalf("smallest body is %x: the offsets below are wrong", body)
	}
	checkDecodeLikeGoavro(t, alertID, "stockflow.v1.StockAlert", []decodeCase{
		{"valid", both, body, ""},
		{"last alert type", both, splice(body, 2, 0x06), ""},
		{"empty body", both, nil, avro.ClassTruncated},
		{"cut in the middle", both, body[:len(body)/2], avro.ClassTruncated},
		{"last byte missing", both, body[:len(body)-1], avro.ClassTruncated},
		{"varint runs past the end", both, []byte{0x80, 0x80}, avro.ClassTruncated},
		{"enum index past the symbols", both, splice(body, 2, 0x08), avro.ClassCorrupt},
		{"negative enum index", both, splice(body, 2, 0x01), avro.ClassCorrupt},
		{"largest enum index", both, splice(body, 2, maxVarint...), avro.ClassCorrupt},
		{"negative string length", both, splice(body, 0, 3), avro.ClassCorrupt},
		{"most negative string length", both, splice(body, 0, minVarint...), avro.ClassCorrupt},
		{"string longer than the record", both, splice(body, 3, 0x7e), avro.ClassTruncated},
		{"largest string length", both, splice(body, 5, maxVarint...), avro.ClassTruncated},
		{"union index 2", both, splice(body, 12, 4), avro.ClassCorrupt},
		{"union index huge", both, splice(body, 12, maxVarint...), avro.ClassCorrupt},
		{"union value missing", both, splice(body, 12, 2), avro.ClassTruncated},
		{"trailing bytes", both, append(append([]byte(nil), body...), 0), avro.ClassCorrupt},
		{"overlong varint", both, splice(body, 7, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), ""},
		{"extreme values", both, splice(splice(body, 7, maxVarint...), 8+9, minVarint...), ""},
		{"oversized", small, splice(body, 0, append([]byte{0x40}, make([]byte, 32)...)...), avro.ClassOversized},
	})
}

// The output records take the hand-written path both ways: allocation
// counts tell it from goavro's, which takes dozens.
func TestOutputRecordsTakeTheHandWrittenPath(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t)
	buf := make([]byte, 0, 512)
	for _, tc := range []struct {
		rec    avro.Record
		allocs float64 // record, body copy, optional values, inbound
	}{
		{samples()[14], 4},
		{&events.AvailabilityChanged{SKU: "S", Location: "L", AsOf: t0, CorrelationID: ptr("c")}, 3},
		{samples()[15], 3},
	} {
		b, err := c.Encode(ctx, "t", tc.rec)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() { _, _ = c.AppendEncode(ctx, buf[:0], "t", tc.rec) }); n > 0 {
			t.Errorf("%s: %v allocations per encode into a large enough buffer", tc.rec.AvroName(), n)
		}
		if n := testing.AllocsPerRun(20, func() { _, _ = c.Decode(ctx, b) }); n > tc.allocs {
			t.Errorf("%s: %v allocations per decode, want %v", tc.rec.AvroName(), n, tc.allocs)
		}
	}
}

// A hand-written codec left behind by a schema change stops the codec from
// being built at all.
func TestBinaryRecordMustImplementTheCanonicalSchema(t *testing.T) {
	for _, tc := range []struct{ record, field string }{
		{"stockflow.v1.LedgerEntry", "quantity"},
		{"stockflow.v1.AvailabilityChanged", "quantity"}, // an inbound bucket's
		{"stockflow.v1.StockAlert", "atp"},
	} {
		t.Run(tc.record, func(t *testing.T) {
			canon := mustCanon(t)
			text := canon[tc.record]
			// A long narrowed to an int: same fields, other bytes.
			changed := regexp.MustCompile(`("name": "`+tc.field+`",\s*"type": )"long"`).ReplaceAllString(text, `$1"int"`)
			if changed == text {
				t.Fatal("schema edit did not apply")
			}
			canon[tc.record] = changed
			_, err := avro.New(avro.Config{Registry: mustBuiltin(t), Canonical: canon, Types: events.All()})
			if err == nil || !strings.Contains(err.Error(), "fingerprint") || !strings.Contains(err.Error(), tc.record) {
				t.Fatalf("built a codec with a stale hand-written codec: %v", err)
			}
			fp, _ := avro.Fingerprint(changed)
			if !strings.Contains(err.Error(), fp) {
				t.Fatalf("error %q does not give the new schema's fingerprint", err)
			}
		})
	}
}

func BenchmarkAvailabilityChangedEncode(b *testing.B) {
	benchEncode(b, "stockflow.availability.v1", samples()[14])
}

func BenchmarkAvailabilityChangedDecode(b *testing.B) {
	benchDecode(b, "stockflow.availability.v1", samples()[14])
}

func BenchmarkStockAlertEncode(b *testing.B) {
	benchEncode(b, "stockflow.alerts.v1", samples()[15])
}

func BenchmarkStockAlertDecode(b *testing.B) {
	benchDecode(b, "stockflow.alerts.v1", samples()[15])
}
