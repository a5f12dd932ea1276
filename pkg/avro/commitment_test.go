package avro_test

import (
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
)

// The tests below hold the hand-written codec of CommitmentChanged, the
// record the folder writes for every order line promise a fold changes, to
// the goavro path.

const commitmentID = 1024 // CommitmentChanged in schemas/manifest.json

func (g gen) promise() events.LinePromise {
	p := events.LinePromise{OpenQuantity: g.long(), ConfirmedNow: g.long(), Unpromised: g.long()}
	n := g.rng.IntN(5)
	if g.rng.IntN(8) == 0 {
		n = 64 + g.rng.IntN(100) // past 63 items: a two-byte count
	}
	if n == 0 && !g.exact && g.rng.IntN(2) == 0 {
		p.Promised = []events.PromisedQuantity{} // encodes as nil does
	}
	for range n {
		p.Promised = append(p.Promised, events.PromisedQuantity{Date: g.timestamp(), Quantity: g.long()})
	}
	return p
}

func (g gen) commitment() *events.CommitmentChanged {
	c := &events.CommitmentChanged{
		CommitmentID:   g.str(),
		OrderID:        g.str(),
		LineID:         g.str(),
		SKU:            g.str(),
		Location:       g.str(),
		Channel:        maybe(g, g.str),
		Promise:        g.promise(),
		Late:           g.rng.IntN(2) == 0,
		CauseEventID:   g.str(),
		CauseEntryType: g.str(),
		CausePONumber:  maybe(g, g.str),
		CauseASNID:     maybe(g, g.str),
		CorrelationID:  maybe(g, g.str),
		CauseTime:      g.timestamp(),
	}
	if g.rng.IntN(2) == 0 {
		p := g.promise()
		c.Previous = &p
	}
	return c
}

func TestCommitmentChangedMatchesGoavro(t *testing.T) {
	checkMatchesGoavro(t, 20261207, func(g gen) avro.Record { return g.commitment() })
}

// commitmentBody is the Avro body of the smallest CommitmentChanged:
// commitment_id, order_id, line_id, sku and location (2 bytes each),
// channel null (byte 10), the promise's four fields with an empty array
// (11–14), previous null (15), late false (16), cause_event_id (17–18),
// cause_entry_type (19–20), three nulls (21–23) and cause_time (24).
func commitmentBody(t testing.TB) []byte {
	t.Helper()
	return body(t, &events.CommitmentChanged{CommitmentID: "C", OrderID: "O", LineID: "1", SKU: "S", Location: "L",
		CauseEventID: "E", CauseEntryType: "T", CauseTime: time.UnixMilli(0).UTC()})
}

func TestCommitmentChangedHostileInput(t *testing.T) {
	both, small := codecPairs(t, 40)
	body := commitmentBody(t)
	if len(body) != 25 || body[13] != 0 || body[16] != 0 {
		t.Fatalf("smallest body is %x: the offsets below are wrong", body)
	}
	item := []byte{0x02, 0x04} // timestamp 1 ms, quantity 2
	// previous present: the promise's four bytes again after index 1.
	withPrevious := cat(body[:15:15], []byte{0x02, 0, 0, 0, 0}, body[16:])
	checkDecodeLikeGoavro(t, commitmentID, "stockflow.v1.CommitmentChanged", []decodeCase{
		{"valid", both, body, ""},
		{"late", both, splice(body, 16, 1), ""},
		{"late neither 0 nor 1", both, splice(body, 16, 2), avro.ClassCorrupt},
		{"late 0xff", both, splice(body, 16, 0xff), avro.ClassCorrupt},
		{"late missing", both, body[:16], avro.ClassTruncated},
		{"previous present", both, withPrevious, ""},
		{"previous union index 2", both, splice(body, 15, 4), avro.ClassCorrupt},
		{"previous cut", both, cat(body[:15:15], []byte{0x02, 0, 0}), avro.ClassTruncated},
		{"promised items", both, splice(body, 13, cat([]byte{0x04}, item, item, []byte{0})...), ""},
		{"promised in two blocks", both, splice(body, 13, cat([]byte{0x02}, item, []byte{0x02}, item, []byte{0})...), ""},
		{"more promised items than bytes", both, splice(body, 13, cat([]byte{0xe8, 0x07}, item, []byte{0})...), avro.ClassTruncated},
		{"promised count past the block limit", both, splice(body, 13, cat([]byte{0x82, 0x80, 0x10}, item, []byte{0})...), avro.ClassCorrupt},
		{"channel union index 2", both, splice(body, 10, 4), avro.ClassCorrupt},
		{"negative string length", both, splice(body, 0, 3), avro.ClassCorrupt},
		{"empty body", both, nil, avro.ClassTruncated},
		{"last byte missing", both, body[:len(body)-1], avro.ClassTruncated},
		{"trailing bytes", both, append(append([]byte(nil), body...), 0), avro.ClassCorrupt},
		{"oversized", small, splice(body, 0, append([]byte{0x40}, make([]byte, 32)...)...), avro.ClassOversized},
	})
}

// benchCommitment is a typical change: a line of 12 promised over two days
// replacing one promised over one.
func benchCommitment() *events.CommitmentChanged {
	day := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	ch, po := "web", "PO-1001"
	return &events.CommitmentChanged{
		CommitmentID: "SO-100234|1|3:88123", OrderID: "SO-100234", LineID: "1", SKU: "SKU-004711", Location: "DC-EAST", Channel: &ch,
		Promise:  events.LinePromise{OpenQuantity: 12, ConfirmedNow: 4, Promised: []events.PromisedQuantity{{Date: day, Quantity: 6}, {Date: day.AddDate(0, 0, 3), Quantity: 2}}},
		Previous: &events.LinePromise{OpenQuantity: 12, ConfirmedNow: 4, Promised: []events.PromisedQuantity{{Date: day, Quantity: 8}}},
		Late:     true, CauseEventID: "ack-PO-1001-2", CauseEntryType: "PO_ACK", CausePONumber: &po, CauseTime: day.Add(9 * time.Hour),
	}
}

func BenchmarkCommitmentChangedEncode(b *testing.B) {
	benchEncode(b, "stockflow.commitments.v1", benchCommitment())
}

func BenchmarkCommitmentChangedDecode(b *testing.B) {
	benchDecode(b, "stockflow.commitments.v1", benchCommitment())
}
