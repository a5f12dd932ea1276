package avro_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
)

// The tests below hold the hand-written codecs of the source events, which
// the normalizers decode, to the goavro path.

// Schema ids of the source events in schemas/manifest.json.
const (
	receivedID     = 1001
	orderID        = 1006
	cancelledID    = 1007
	acknowledgedID = 1010
	itemMasterID   = 1013
)

var ackStatuses = []string{events.AckAccepted, events.AckChanged, events.AckRejected, events.AckBackordered}

func (g gen) meta() events.Meta {
	return events.Meta{EventID: g.str(), EventTime: g.timestamp(), Source: g.str(), CorrelationID: maybe(g, g.str)}
}

// lines returns n items made by item: none, as nil or (when the record need
// not survive a round trip unchanged) empty; a few; or past 63, so that the
// count takes two bytes.
func lines[T any](g gen, item func() T) []T {
	var n int
	switch g.rng.IntN(6) {
	case 0:
		if !g.exact {
			return []T{} // encodes as nil does
		}
		return nil
	case 1:
		n = 64 + g.rng.IntN(100)
	default:
		n = 1 + g.rng.IntN(3)
	}
	out := make([]T, n)
	for i := range out {
		out[i] = item()
	}
	return out
}

// longs returns a map of up to maxKeys entries. A record that must survive
// a round trip has no nil map: the goavro path decodes an empty map as an
// empty map.
func (g gen) longs(maxKeys int) map[string]int64 {
	if !g.exact && g.rng.IntN(4) == 0 {
		return nil
	}
	m := map[string]int64{}
	for range g.rng.IntN(maxKeys + 1) {
		m[g.str()] = g.long()
	}
	return m
}

func (g gen) sourceEvents() []func() avro.Record {
	return []func() avro.Record{
		func() avro.Record {
			return &events.InventoryReceived{Meta: g.meta(), SKU: g.str(), Location: g.str(), Quantity: g.long(), UoM: g.str(),
				PONumber: maybe(g, g.str), POLine: maybe(g, g.int), ASNID: maybe(g, g.str)}
		},
		func() avro.Record {
			return &events.InventoryPicked{Meta: g.meta(), SKU: g.str(), Location: g.str(), Quantity: g.long(), UoM: g.str(),
				OrderID: g.str(), LineID: g.str()}
		},
		func() avro.Record {
			return &events.InventoryCounted{Meta: g.meta(), SKU: g.str(), Location: g.str(), CountedQuantity: g.long(), UoM: g.str(),
				AsOf: g.timestamp()}
		},
		func() avro.Record {
			return &events.InventoryAdjusted{Meta: g.meta(), SKU: g.str(), Location: g.str(), Quantity: g.long(), UoM: g.str(),
				Reason: g.str()}
		},
		func() avro.Record {
			return &events.InventoryShipped{Meta: g.meta(), SKU: g.str(), Location: g.str(), Quantity: g.long(), UoM: g.str(),
				OrderID: g.str(), LineID: g.str(), ShipmentID: g.str()}
		},
		func() avro.Record {
			return &events.OrderAccepted{Meta: g.meta(), OrderID: g.str(), Channel: g.str(), HoldID: maybe(g, g.str),
				Lines: lines(g, func() events.OrderLine {
					return events.OrderLine{LineID: g.str(), SKU: g.str(), Location: maybe(g, g.str), Group: maybe(g, g.str),
						Quantity: g.long(), UoM: g.str()}
				})}
		},
		func() avro.Record {
			return &events.OrderCancelled{Meta: g.meta(), OrderID: g.str(), LineIDs: lines(g, g.str)}
		},
		func() avro.Record {
			return &events.OrderAllocated{Meta: g.meta(), OrderID: g.str(), LineID: g.str(), SKU: g.str(), Location: g.str()}
		},
		func() avro.Record {
			return &events.PurchaseOrderReleased{Meta: g.meta(), PONumber: g.str(), SupplierID: g.str(),
				Lines: lines(g, func() events.PurchaseOrderLine {
					return events.PurchaseOrderLine{POLine: g.int(), SKU: g.str(), Location: g.str(), Quantity: g.long(), UoM: g.str(),
						ExpectedDate: g.date()}
				})}
		},
		func() avro.Record {
			return &events.PurchaseOrderAcknowledged{Meta: g.meta(), PONumber: g.str(), SupplierID: g.str(),
				Lines: lines(g, func() events.AcknowledgedLine {
					return events.AcknowledgedLine{POLine: g.int(), Status: ackStatuses[g.rng.IntN(len(ackStatuses))], Quantity: g.long(),
						ExpectedDate: g.date()}
				})}
		},
		func() avro.Record {
			return &events.AdvanceShipNotice{Meta: g.meta(), ASNID: g.str(), PONumber: g.str(), SupplierID: g.str(), ETA: g.timestamp(),
				Lines: lines(g, func() events.AdvanceShipNoticeLine {
					return events.AdvanceShipNoticeLine{POLine: g.int(), SKU: g.str(), Quantity: g.long(), UoM: g.str()}
				})}
		},
		func() avro.Record {
			return &events.PurchaseOrderClosed{Meta: g.meta(), PONumber: g.str(), Reason: g.str()}
		},
		func() avro.Record { return g.itemMaster(1) },
	}
}

func (g gen) itemMaster(maxKeys int) *events.ItemMaster {
	return &events.ItemMaster{Meta: g.meta(), SKU: g.str(), BaseUoM: g.str(), Conversions: g.longs(maxKeys),
		SafetyStock: g.longs(maxKeys), ReorderPoint: g.longs(maxKeys), LeadTimeDays: g.int()}
}

func TestSourceEventsMatchGoavro(t *testing.T) {
	names := gen{rng: rand.New(rand.NewPCG(0, 0))}.sourceEvents()
	for i := range names {
		t.Run(strings.TrimPrefix(names[i]().AvroName(), "stockflow.v1."), func(t *testing.T) {
			checkMatchesGoavro(t, 20261130+uint64(i), func(g gen) avro.Record { return g.sourceEvents()[i]() })
		})
	}
}

// goavro writes a map in Go's map order, so the bytes of a map of several
// entries are not deterministic on either path: the check compares records.
func TestItemMasterMatchesGoavro(t *testing.T) {
	checkMatchesGoavroUnordered(t, 20261143, func(g gen) avro.Record { return g.itemMaster(6) })
}

func TestSourceEventEncodeErrors(t *testing.T) {
	g := gen{rng: rand.New(rand.NewPCG(5, 6)), exact: true}
	past := time.Unix((math.MaxInt32+1)*86400, 0).UTC()
	before := time.Unix((math.MinInt32-1)*86400, 0).UTC()
	released := func(d time.Time) avro.Record {
		return &events.PurchaseOrderReleased{Meta: g.meta(), PONumber: "P", Lines: []events.PurchaseOrderLine{{SKU: "S", ExpectedDate: d}}}
	}
	acked := func(status string, d time.Time) avro.Record {
		return &events.PurchaseOrderAcknowledged{Meta: g.meta(), PONumber: "P",
			Lines: []events.AcknowledgedLine{{Status: events.AckAccepted}, {Status: status, ExpectedDate: d}}}
	}
	for _, tc := range []struct {
		name string
		rec  avro.Record
		want string
	}{
		{"PO line date after the last Avro date", released(past), "expected_date"},
		{"PO line date before the first Avro date", released(before), "expected_date"},
		{"ack status not in the enum", acked("MAYBE", time.Time{}), "status"},
		{"empty ack status", acked("", time.Time{}), "status"},
		{"ack date after the last Avro date", acked(events.AckAccepted, past), "expected_date"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkEncodeFails(t, tc.rec, tc.want) })
	}
}

// meta0 is the smallest Meta: one-byte strings, time 0, no correlation id.
// Its body is event_id (2 bytes), event_time (1), source (2) and the
// correlation id's null (byte 5).
var meta0 = events.Meta{EventID: "E", EventTime: time.UnixMilli(0).UTC(), Source: "W"}

// Every source event fails on broken common fields as goavro does.
func TestSourceEventsHostileInput(t *testing.T) {
	both, small := codecPairs(t, 40)
	for i, rec := range samples()[:13] {
		id := 1001 + i
		*rec.(events.Source).Metadata() = meta0 // every field small: the offsets above hold
		b := body(t, rec)
		t.Run(strings.TrimPrefix(rec.AvroName(), "stockflow.v1."), func(t *testing.T) {
			checkDecodeLikeGoavro(t, id, rec.AvroName(), []decodeCase{
				{"valid", both, b, ""},
				{"empty body", both, nil, avro.ClassTruncated},
				{"cut in the middle", both, b[:len(b)/2], avro.ClassTruncated},
				{"last byte missing", both, b[:len(b)-1], avro.ClassTruncated},
				{"varint runs past the end", both, []byte{0x80, 0x80}, avro.ClassTruncated},
				{"negative string length", both, splice(b, 0, 3), avro.ClassCorrupt},
				{"most negative string length", both, splice(b, 0, minVarint...), avro.ClassCorrupt},
				{"string longer than the record", both, splice(b, 0, 0x7e), avro.ClassTruncated},
				{"largest string length", both, splice(b, 0, maxVarint...), avro.ClassTruncated},
				{"union index 2", both, splice(b, 5, 4), avro.ClassCorrupt},
				{"union index -1", both, splice(b, 5, 1), avro.ClassCorrupt},
				{"union value missing", both, append(b[:5:5], 2), avro.ClassTruncated},
				{"trailing bytes", both, append(append([]byte(nil), b...), 0, 0), avro.ClassCorrupt},
				{"overlong varint", both, splice(b, 2, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), ""},
				{"oversized", small, splice(b, 0, append([]byte{0x7e}, make([]byte, 63)...)...), avro.ClassOversized},
			})
		})
	}
}

// The arrays of the source events in the forms goavro reads, and the ways
// they break.
func TestSourceEventArraysHostileInput(t *testing.T) {
	both, _ := codecPairs(t, 1<<20)
	// OrderCancelled: meta, order_id "O", then line_ids.
	cancelled := body(t, &events.OrderCancelled{Meta: meta0, OrderID: "O"})
	if len(cancelled) != 9 || cancelled[8] != 0 {
		t.Fatalf("smallest OrderCancelled is %x: the offsets below are wrong", cancelled)
	}
	ids := func(bs ...byte) []byte { return cat(cancelled[:8:8], bs) }
	checkDecodeLikeGoavro(t, cancelledID, "stockflow.v1.OrderCancelled", []decodeCase{
		{"one block", both, ids(0x04, 0x02, 'a', 0x00, 0x00), ""},
		{"two blocks", both, ids(0x02, 0x02, 'a', 0x02, 0x02, 'b', 0x00), ""},
		{"negative count and block size", both, ids(0x03, 0x06, 0x02, 'a', 0x02, 'b', 0x00), ""},
		{"wrong block size", both, ids(0x01, 0x7f, 0x02, 'a', 0x00), ""},
		{"end of array missing", both, ids(0x02, 0x02, 'a'), avro.ClassTruncated},
		{"item cut", both, ids(0x02, 0x04, 'a'), avro.ClassTruncated},
		{"negative item length", both, ids(0x02, 0x03, 'a', 0x00), avro.ClassCorrupt},
		{"more items than bytes", both, ids(0xe8, 0x07, 0x00, 0x00), avro.ClassTruncated},
		{"count at the block limit", both, ids(0x80, 0x80, 0x10, 0x00, 0x00), avro.ClassTruncated},
		{"count past the block limit", both, ids(0x82, 0x80, 0x10, 0x00, 0x00), avro.ClassCorrupt},
		{"most negative count", both, ids(cat(minVarint, []byte{0x00, 0x00})...), avro.ClassCorrupt},
		{"block size missing", both, ids(0x03), avro.ClassTruncated},
	})

	// OrderAccepted: meta, order_id "O", channel "C", hold_id null, lines.
	accepted := body(t, &events.OrderAccepted{Meta: meta0, OrderID: "O", Channel: "C"})
	if len(accepted) != 12 || accepted[11] != 0 {
		t.Fatalf("smallest OrderAccepted is %x: the offsets below are wrong", accepted)
	}
	line := []byte{0x02, '1', 0x02, 'S', 0x02, 0x02, 'L', 0x00, 0x06, 0x04, 'E', 'A'} // location L, quantity 3
	order := func(bs ...byte) []byte { return cat(accepted[:11:11], bs) }
	checkDecodeLikeGoavro(t, orderID, "stockflow.v1.OrderAccepted", []decodeCase{
		{"one line", both, order(cat([]byte{0x02}, line, []byte{0})...), ""},
		{"two lines, two blocks", both, order(cat([]byte{0x02}, line, []byte{0x02}, line, []byte{0})...), ""},
		{"line with a group", both, order(cat([]byte{0x02}, splice(line, 4, 0x00, 0x02), []byte{0})...), ""},
		{"line union index 2", both, order(cat([]byte{0x02}, splice(line, 4, 0x04), []byte{0})...), avro.ClassCorrupt},
		{"line cut", both, order(cat([]byte{0x02}, line[:7])...), avro.ClassTruncated},
		{"more lines than bytes", both, order(cat([]byte{0x7e}, line, []byte{0})...), avro.ClassTruncated},
	})

	// PurchaseOrderAcknowledged: meta, po_number "P", supplier_id "S", lines.
	ack := body(t, &events.PurchaseOrderAcknowledged{Meta: meta0, PONumber: "P", SupplierID: "S"})
	if len(ack) != 11 || ack[10] != 0 {
		t.Fatalf("smallest PurchaseOrderAcknowledged is %x: the offsets below are wrong", ack)
	}
	acks := func(bs ...byte) []byte { return cat(ack[:10:10], bs) }
	checkDecodeLikeGoavro(t, acknowledgedID, "stockflow.v1.PurchaseOrderAcknowledged", []decodeCase{
		{"last status", both, acks(0x02, 0x02, 0x06, 0x04, 0x02, 0x00), ""},
		{"status past the symbols", both, acks(0x02, 0x02, 0x08, 0x04, 0x02, 0x00), avro.ClassCorrupt},
		{"negative status", both, acks(0x02, 0x02, 0x01, 0x04, 0x02, 0x00), avro.ClassCorrupt},
		{"date past 32 bits", both, acks(cat([]byte{0x02, 0x02, 0x00, 0x04}, maxVarint, []byte{0x00})...), ""},
		{"line cut", both, acks(0x02, 0x02, 0x00), avro.ClassTruncated},
	})
}

// ItemMaster's maps in the forms goavro reads, and the ways they break.
func TestItemMasterMapsHostileInput(t *testing.T) {
	both, _ := codecPairs(t, 1<<20)
	item := body(t, &events.ItemMaster{Meta: meta0, SKU: "S", BaseUoM: "EA"})
	// meta (6), sku (2), base_uom (3), three empty maps (bytes 11–13),
	// lead_time_days.
	if len(item) != 15 || item[11] != 0 || item[12] != 0 {
		t.Fatalf("smallest ItemMaster is %x: the offsets below are wrong", item)
	}
	conv := func(bs ...byte) []byte { return cat(item[:11:11], bs, item[12:]) }
	entry := func(k string, v byte) []byte { return cat([]byte{byte(2 * len(k))}, []byte(k), []byte{v}) }
	sb := "short buffer"
	checkDecodeLikeGoavro(t, itemMasterID, "stockflow.v1.ItemMaster", []decodeCase{
		{"one entry", both, conv(cat([]byte{0x02}, entry("CS", 0x18), []byte{0})...), ""},
		{"two entries", both, conv(cat([]byte{0x04}, entry("CS", 0x18), entry("PL", 0x7f), []byte{0})...), ""},
		{"two blocks", both, conv(cat([]byte{0x02}, entry("CS", 0x18), []byte{0x02}, entry("PL", 0x7f), []byte{0})...), ""},
		{"negative count and block size", both, conv(cat([]byte{0x01, 0x08}, entry("CS", 0x18), []byte{0})...), ""},
		{"empty key", both, conv(cat([]byte{0x02}, entry("", 0x01), []byte{0})...), ""},
		{"duplicate key", both, conv(cat([]byte{0x04}, entry("CS", 0x18), entry("CS", 0x02), []byte{0})...), avro.ClassCorrupt},
		{"duplicate key in another block", both, conv(cat([]byte{0x02}, entry("CS", 0x18), []byte{0x02}, entry("CS", 0x02), []byte{0})...), avro.ClassCorrupt},
		{"duplicate key that reads short buffer", both, conv(cat([]byte{0x04}, entry(sb, 0x18), entry(sb, 0x02), []byte{0})...), avro.ClassCorrupt},
		{"key cut", both, conv(0x02, 0x04, 'C'), avro.ClassTruncated},
		{"value missing", both, conv(0x02, 0x04, 'C', 'S'), avro.ClassTruncated},
		{"negative key length", both, conv(0x02, 0x03, 'C', 0x18, 0x00), avro.ClassCorrupt},
		{"more entries than bytes", both, cat(item[:11:11], []byte{0xe8, 0x07, 0x02, 'a', 0x00}), avro.ClassTruncated},
		{"count past the block limit", both, conv(0x82, 0x80, 0x10, 0x00, 0x00), avro.ClassCorrupt},
		{"most negative count", both, conv(cat(minVarint, []byte{0x00, 0x00})...), avro.ClassCorrupt},
		{"wide value", both, conv(cat([]byte{0x02, 0x00}, minVarint, []byte{0})...), ""},
	})
}

// The source events take the hand-written path both ways: allocation counts
// tell it from goavro's, which takes dozens.
func TestSourceEventsTakeTheHandWrittenPath(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t)
	buf := make([]byte, 0, 512)
	for _, rec := range samples()[:13] {
		b, err := c.Encode(ctx, "t", rec)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() { _, _ = c.AppendEncode(ctx, buf[:0], "t", rec) }); n > 0 {
			t.Errorf("%s: %v allocations per encode into a large enough buffer", rec.AvroName(), n)
		}
		// Record, body copy and optional values; with an array, the items
		// and the Reader, which escapes into the item reader; OrderAccepted's
		// lines have optional values of their own, ItemMaster's three maps a
		// couple of allocations each.
		limit := 3.0
		switch rec.(type) {
		case *events.OrderCancelled, *events.PurchaseOrderReleased, *events.PurchaseOrderAcknowledged, *events.AdvanceShipNotice:
			limit = 5
		case *events.OrderAccepted:
			limit = 6
		case *events.ItemMaster:
			limit = 10
		}
		if n := testing.AllocsPerRun(20, func() { _, _ = c.Decode(ctx, b) }); n > limit {
			t.Errorf("%s: %v allocations per decode, want at most %v", rec.AvroName(), n, limit)
		}
	}
}

// A schema change leaves every source event's hand-written codec behind,
// and stops the codec from being built.
func TestSourceEventsMustImplementTheCanonicalSchema(t *testing.T) {
	for _, rec := range samples()[:13] {
		t.Run(rec.AvroName(), func(t *testing.T) {
			canon := mustCanon(t)
			text := canon[rec.AvroName()]
			changed := strings.Replace(text, "Unique per business event", "Unique per event", 1)
			if changed == text {
				t.Fatal("schema edit did not apply")
			}
			canon[rec.AvroName()] = changed
			_, err := avro.New(avro.Config{Registry: mustBuiltin(t), Canonical: canon, Types: events.All()})
			if err == nil || !strings.Contains(err.Error(), "fingerprint") || !strings.Contains(err.Error(), rec.AvroName()) {
				t.Fatalf("built a codec with a stale hand-written codec: %v", err)
			}
		})
	}
}

// FuzzSourceEvents is FuzzLedgerEntry for every source event: the first
// byte picks the record, by its place in the manifest, the rest is the body.
func FuzzSourceEvents(f *testing.F) {
	fast := newCodec(f)
	slow := avro.Reflective(fast)
	for i, rec := range samples()[:13] {
		f.Add(append([]byte{byte(i)}, body(f, rec)...))
		f.Add([]byte{byte(i)})
	}
	f.Add(append([]byte{12}, body(f, &events.ItemMaster{Meta: meta0, Conversions: map[string]int64{"CS": 12, "PL": 480}})...))
	f.Add([]byte{6, 0x02, 'E', 0x00, 0x02, 'W', 0x00, 0x02, 'O', 0x03, 0x04, 0x02, 'a', 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		checkLikeGoavro(t, fast, slow, withHeader(1001+int(in[0])%13, in[1:]))
	})
}

func BenchmarkInventoryReceivedEncode(b *testing.B) {
	benchEncode(b, "wms.inventory.v1", samples()[0])
}

func BenchmarkInventoryReceivedDecode(b *testing.B) {
	benchDecode(b, "wms.inventory.v1", samples()[0])
}

func BenchmarkOrderAcceptedEncode(b *testing.B) {
	benchEncode(b, "oms.orders.v1", samples()[5])
}

func BenchmarkOrderAcceptedDecode(b *testing.B) {
	benchDecode(b, "oms.orders.v1", samples()[5])
}
