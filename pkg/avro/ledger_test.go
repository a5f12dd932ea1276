package avro_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
)

// The tests below hold LedgerEntry's hand-written codec to the goavro path
// (avro.Reflective): the same bytes out, the same entries back, the same
// failures.

const ledgerID = 1023 // LedgerEntry in schemas/manifest.json, its newest version

var entryTypes = []string{
	events.EntryReceipt, events.EntryPick, events.EntryCount, events.EntryAdjustment, events.EntryShipment,
	events.EntryOrderLine, events.EntryOrderCancel, events.EntryOrderAllocate,
	events.EntryPOLine, events.EntryPOAck, events.EntryASNLine, events.EntryPOClose,
	events.EntryItemPolicy, events.EntryPolicy, events.EntryHold, events.EntryHoldRelease,
}

// gen makes random ledger entries. Exact entries hold only what the wire
// keeps (UTC, whole milliseconds, dates at midnight), so they survive a
// round trip unchanged; the others carry sub-millisecond times, other zones
// and dates in mid-day, which both encoders must reduce the same way.
type gen struct {
	rng   *rand.Rand
	exact bool
}

var zones = []*time.Location{time.UTC, time.FixedZone("UTC+5:30", 5*3600+1800), time.FixedZone("UTC-11", -11*3600)}

func (g gen) str() string {
	pieces := []string{"", "a", "SKU-", "DC1", "é", "日本", "🙂", "Ω≈ç", "\x00", "\xff\xfe", " ", "ledger"}
	var sb strings.Builder
	n := g.rng.IntN(8)
	if g.rng.IntN(20) == 0 {
		n = 100 // past 127 bytes: a two-byte length
	}
	for range n {
		sb.WriteString(pieces[g.rng.IntN(len(pieces))])
	}
	return sb.String()
}

func (g gen) long() int64 {
	switch g.rng.IntN(4) {
	case 0:
		edges := []int64{0, 1, -1, 63, -64, 64, -65, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1}
		return edges[g.rng.IntN(len(edges))]
	case 1:
		return g.rng.Int64N(2001) - 1000
	default:
		v := g.rng.Int64() >> g.rng.IntN(64)
		if g.rng.IntN(2) == 0 {
			v = -v
		}
		return v
	}
}

func (g gen) int() int32 {
	if g.rng.IntN(3) == 0 {
		edges := []int32{0, 1, -1, 63, -64, math.MaxInt32, math.MinInt32}
		return edges[g.rng.IntN(len(edges))]
	}
	return int32(g.long())
}

func (g gen) timestamp() time.Time {
	var ms int64
	switch g.rng.IntN(4) {
	case 0:
		edges := []int64{0, -1, 1, -62135596800000 /* year 1 */, 253402300799999 /* 9999-12-31 */, -86400000 - 1}
		ms = edges[g.rng.IntN(len(edges))]
	case 1:
		ms = g.rng.Int64N(4e12) - 2e12 // 1906–2096
	default:
		ms = g.rng.Int64N(1<<46) - 1<<45 // about 855–3085
	}
	t := time.UnixMilli(ms).UTC()
	if !g.exact {
		t = t.Add(time.Duration(g.rng.IntN(1e6))).In(zones[g.rng.IntN(len(zones))])
	}
	return t
}

func (g gen) date() time.Time {
	var days int64
	if g.rng.IntN(4) == 0 {
		edges := []int64{0, -1, 1, math.MaxInt32, math.MinInt32, -719162 /* year 1 */}
		days = edges[g.rng.IntN(len(edges))]
	} else {
		days = g.rng.Int64N(200000) - 100000
	}
	t := time.Unix(days*86400, 0).UTC()
	if !g.exact {
		secs := int64(g.rng.IntN(86400))
		if days == math.MaxInt32 {
			secs = 0 // one second more is past the last Avro date
		}
		t = t.Add(time.Duration(secs)*time.Second + time.Duration(g.rng.IntN(1e9))).In(zones[g.rng.IntN(len(zones))])
	}
	return t
}

func maybe[T any](g gen, v func() T) *T {
	if g.rng.IntN(2) == 0 {
		return nil
	}
	x := v()
	return &x
}

func (g gen) entry() *events.LedgerEntry {
	return &events.LedgerEntry{
		EntryType:       entryTypes[g.rng.IntN(len(entryTypes))],
		SKU:             g.str(),
		Location:        maybe(g, g.str),
		Group:           maybe(g, g.str),
		Quantity:        g.long(),
		OrderID:         maybe(g, g.str),
		LineID:          maybe(g, g.str),
		Channel:         maybe(g, g.str),
		PONumber:        maybe(g, g.str),
		POLine:          maybe(g, g.int),
		ASNID:           maybe(g, g.str),
		ShipmentID:      maybe(g, g.str),
		SupplierID:      maybe(g, g.str),
		Status:          maybe(g, g.str),
		ExpectedDate:    maybe(g, g.date),
		ETA:             maybe(g, g.timestamp),
		AsOf:            maybe(g, g.timestamp),
		SafetyStock:     maybe(g, g.long),
		ReorderPoint:    maybe(g, g.long),
		HoldID:          maybe(g, g.str),
		TTLMillis:       maybe(g, g.long),
		ReplyTo:         maybe(g, g.str),
		Reason:          maybe(g, g.str),
		EventID:         g.str(),
		EventTime:       g.timestamp(),
		Source:          g.str(),
		CorrelationID:   maybe(g, g.str),
		SourceTopic:     maybe(g, g.str),
		SourcePartition: maybe(g, g.int),
		SourceOffset:    maybe(g, g.long),
		ChannelRules:    maybe(g, g.str),
		DecidedATP:      maybe(g, g.long),
		DecidedAt:       maybe(g, g.long),
		DecidedEpoch:    maybe(g, g.long),
	}
}

func TestLedgerEntryMatchesGoavro(t *testing.T) {
	checkMatchesGoavro(t, 20261127, func(g gen) avro.Record { return g.entry() })
}

func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil { // a time JSON cannot hold
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

func TestLedgerEntryEncodeErrors(t *testing.T) {
	valid := func() *events.LedgerEntry { return gen{rng: rand.New(rand.NewPCG(1, 2)), exact: true}.entry() }
	cases := []struct {
		name string
		edit func(*events.LedgerEntry)
		want string
	}{
		{"entry type not in the enum", func(e *events.LedgerEntry) { e.EntryType = "REFUND" }, "entry_type"},
		{"empty entry type", func(e *events.LedgerEntry) { e.EntryType = "" }, "entry_type"},
		{"date after the last Avro date", func(e *events.LedgerEntry) {
			e.ExpectedDate = ptr(time.Unix((math.MaxInt32+1)*86400, 0).UTC())
		}, "expected_date"},
		{"date before the first Avro date", func(e *events.LedgerEntry) {
			e.ExpectedDate = ptr(time.Unix((math.MinInt32-1)*86400, 0).UTC())
		}, "expected_date"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := valid()
			tc.edit(e)
			checkEncodeFails(t, e, tc.want)
		})
	}
}

// ledgerBody is the Avro body of the smallest entry: every optional field
// null, one-byte strings.
func ledgerBody(t testing.TB) []byte {
	t.Helper()
	return body(t, &events.LedgerEntry{EntryType: events.EntryPick, SKU: "S", EventID: "E", Source: "W"})
}

func withHeader(id int, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), body...)
}

func TestLedgerEntryHostileInput(t *testing.T) {
	both, small := codecPairs(t, 40)
	body := ledgerBody(t)
	// body: entry_type (1), sku (2), location..reason (21 nulls, quantity 0
	// among them), event_id (2), event_time (1), source (2), five nulls.
	set := func(i int, bs ...byte) []byte { return splice(body, i, bs...) }
	checkDecodeLikeGoavro(t, ledgerID, "stockflow.v1.LedgerEntry", []decodeCase{
		{"valid", both, body, ""},
		{"empty body", both, nil, avro.ClassTruncated},
		{"cut in the middle", both, body[:len(body)/2], avro.ClassTruncated},
		{"last byte missing", both, body[:len(body)-1], avro.ClassTruncated},
		{"varint runs past the end", both, []byte{0x80, 0x80}, avro.ClassTruncated},
		{"enum index past the symbols", both, set(0, 32), avro.ClassCorrupt},
		{"negative enum index", both, set(0, 1), avro.ClassCorrupt},
		{"negative string length", both, set(1, 3), avro.ClassCorrupt},
		{"most negative string length", both, set(1, minVarint...), avro.ClassCorrupt},
		{"string longer than the record", both, set(1, 0x7e), avro.ClassTruncated},
		{"largest string length", both, set(1, maxVarint...), avro.ClassTruncated},
		{"union index 2", both, set(3, 4), avro.ClassCorrupt},
		{"union index -1", both, set(3, 1), avro.ClassCorrupt},
		{"union index huge", both, set(3, maxVarint...), avro.ClassCorrupt},
		{"union value missing", both, append(body[:3:3], 2), avro.ClassTruncated},
		{"trailing bytes", both, append(append([]byte(nil), body...), 0, 0), avro.ClassCorrupt},
		// goavro drops varint bits past the 64th instead of refusing them;
		// the two paths must agree on that too.
		{"overlong varint", both, set(1, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), ""},
		{"oversized", small, set(1, append([]byte{0x40}, bytes.Repeat([]byte{'x'}, 32)...)...), avro.ClassOversized},
	})
}

// maxVarint and minVarint are MaxInt64 and MinInt64 zig-zagged.
var (
	maxVarint = []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	minVarint = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
)

// An entry written with another LedgerEntry schema takes the goavro path
// and its resolution; the canonical schema takes the hand-written codec,
// whichever id a registry gave it.
func TestLedgerEntryPathByWriterSchema(t *testing.T) {
	ctx := context.Background()
	canon, builtin, err := events.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	all := map[int]string{}
	for id := 1001; id <= 1023; id++ {
		if all[id], err = builtin.SchemaByID(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	text := canon["stockflow.v1.LedgerEntry"]
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(text)); err != nil {
		t.Fatal(err)
	}
	all[7] = compact.String() // the canonical schema as a registry may print it
	all[8] = `{"type":"record","name":"LedgerEntry","namespace":"stockflow.v1","fields":[
		{"name":"entry_type","type":{"type":"enum","name":"EntryType","symbols":["RECEIPT","PICK"]}},
		{"name":"sku","type":"string"},
		{"name":"quantity","type":"long"},
		{"name":"event_id","type":"string"},
		{"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
	reg, err := avro.NewBuiltin(all)
	if err != nil {
		t.Fatal(err)
	}
	c, err := avro.New(avro.Config{Registry: reg, Canonical: canon, Types: events.All()})
	if err != nil {
		t.Fatal(err)
	}

	old := encodeWith(t, 8, all[8], map[string]any{"entry_type": "PICK", "sku": "SKU-1", "quantity": int64(-3), "event_id": "e-1", "event_time": t0})
	got, err := c.Decode(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	want := &events.LedgerEntry{EntryType: events.EntryPick, SKU: "SKU-1", Quantity: -3, EventID: "e-1", EventTime: t0}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("older writer: got %s\nwant %s", dump(got), dump(want))
	}

	// Allocation counts tell the paths apart: goavro's takes dozens; the
	// hand-written one copies the body, then each string it keeps (an
	// owning reader), about ten here.
	e := samples()[13]
	enc, err := c.Encode(ctx, "t", e)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{ledgerID, 7} {
		b := withHeader(id, enc[5:])
		got, err := c.Decode(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("id %d: got %s", id, dump(got))
		}
		if n := testing.AllocsPerRun(20, func() { _, _ = c.Decode(ctx, b) }); n > 12 {
			t.Errorf("id %d: %v allocations per decode: not the hand-written path", id, n)
		}
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = c.Decode(ctx, old) }); n < 10 {
		t.Errorf("older writer: %v allocations per decode: not the goavro path", n)
	}

	// Entries the ledger log already holds, written with an older schema:
	// the same body without the nulls of the fields added since.
	prev := *e.(*events.LedgerEntry)
	for _, old := range []struct {
		id     int
		drop   int // trailing null fields the older schema lacks
		before func(*events.LedgerEntry)
	}{
		{1017, 3, func(p *events.LedgerEntry) { p.DecidedATP, p.DecidedAt, p.DecidedEpoch = nil, nil, nil }}, // before the journaled hold decisions
		{1014, 4, func(p *events.LedgerEntry) { p.ChannelRules = nil }},                                      // and before channel_rules
	} {
		old.before(&prev)
		enc, err := c.Encode(ctx, "t", &prev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(ctx, withHeader(old.id, enc[5:len(enc)-old.drop]))
		if err != nil {
			t.Fatalf("an entry written with schema %d: %v", old.id, err)
		}
		if !reflect.DeepEqual(got, &prev) {
			t.Fatalf("schema %d: got %s\nwant %s", old.id, dump(got), dump(&prev))
		}
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(20, func() { _, _ = c.AppendEncode(ctx, buf[:0], "t", e) }); n > 0 {
		t.Errorf("%v allocations per encode into a large enough buffer: not the hand-written path", n)
	}
}

func BenchmarkLedgerEntryEncode(b *testing.B) {
	benchEncode(b, "stockflow.ledger.v1", samples()[13])
}

func BenchmarkLedgerEntryDecode(b *testing.B) {
	benchDecode(b, "stockflow.ledger.v1", samples()[13])
}
