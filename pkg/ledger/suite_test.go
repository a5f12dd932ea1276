package ledger

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
)

// The same suite runs against miniredis (unit) and the real redis-server
// (integration): both must give the ledger the same semantics.

func sp(s string) *string { return &s }
func i32(v int32) *int32  { return &v }
func i64(v int64) *int64  { return &v }

var base = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func at(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }

// le builds a ledger entry at minute min of the test day.
func le(typ, loc string, q int64, min int, eid string) *events.LedgerEntry {
	e := &events.LedgerEntry{EntryType: typ, SKU: "SKU-1", Quantity: q, EventID: eid, EventTime: at(min), Source: "test"}
	if loc != "" {
		e.Location = sp(loc)
	}
	return e
}

type harness struct {
	t   *testing.T
	s   *Store
	off map[int32]int64
}

func newHarness(t *testing.T, s *Store) *harness { return &harness{t: t, s: s, off: map[int32]int64{}} }

// apply appends entries to partition 0 of the log and applies them in one call.
func (h *harness) apply(es ...*events.LedgerEntry) []string {
	h.t.Helper()
	return h.applyOn(0, es...)
}

func (h *harness) applyOn(p int32, es ...*events.LedgerEntry) []string {
	h.t.Helper()
	b := Batch{SKU: es[0].SKU}
	for _, e := range es {
		b.Entries = append(b.Entries, Entry{LedgerEntry: e, Partition: p, Offset: h.off[p]})
		h.off[p]++
	}
	res, err := h.s.Apply(context.Background(), []Batch{b})
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]string, len(res[0].Outcomes))
	for i, o := range res[0].Outcomes {
		out[i] = describe(o)
	}
	return out
}

// describe writes an outcome as the tests compare it: the status, and for
// holds the decision and ATP.
func describe(o Outcome) string {
	switch o.Status {
	case Applied:
		return "ok"
	case Duplicate:
		return "dup"
	case Held, Rejected:
		return fmt.Sprintf("%s:%d", o.Hold.Status, o.Hold.ATP)
	default:
		// Every other status by its name.
		return o.Status.String()
	}
}

func (h *harness) pos(loc string) Position {
	h.t.Helper()
	p, err := h.s.Position(context.Background(), "SKU-1", loc, at(0))
	if err != nil {
		h.t.Fatal(err)
	}
	return p.withoutVersion()
}

func (p Position) withoutVersion() Position { p.Version = 0; return p }

func want(t *testing.T, got Position, c Components) {
	t.Helper()
	if got.Components != c {
		t.Fatalf("position %+v, want %+v", got.Components, c)
	}
}

func runSuite(t *testing.T, newStore func(t *testing.T) *Store) {
	t.Run("movements", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		h.apply(le(events.EntryReceipt, "DC1", 100, 1, "r1"), le(events.EntryAdjustment, "DC1", -3, 2, "a1"))
		want(t, h.pos("DC1"), Components{OnHand: 97})
	})

	t.Run("on hand as of an earlier time: now less the journal's later movements", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		h.apply(le(events.EntryReceipt, "DC1", 100, 1, "r1"), le(events.EntryAdjustment, "DC1", -3, 3, "a1"), le(events.EntryReceipt, "DC2", 7, 2, "r2"))
		other := le(events.EntryReceipt, "DC1", 5, 4, "r3")
		other.SKU = "SKU-2" // another SKU: another slot of a Redis Cluster
		h.applyOn(1, other)
		got, err := h.s.OnHandAt(context.Background(), []PositionRef{{"SKU-1", "DC1"}, {"SKU-1", "DC2"}, {"SKU-1", "DC9"}, {"SKU-2", "DC1"}}, at(2))
		if err != nil {
			t.Fatal(err)
		}
		wantPast := []PastOnHand{
			{Known: true, OnHand: 100, Movements: 1}, // 97 now; the -3 at minute 3 came after
			{Known: true, OnHand: 7},                 // received at minute 2 itself: not after
			{},                                       // never seen
			{Known: true, OnHand: 0, Movements: 1},   // received at minute 4
		}
		if !reflect.DeepEqual(got, wantPast) {
			t.Fatalf("as of minute 2: %+v, want %+v", got, wantPast)
		}
	})

	t.Run("order lifecycle", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		h.apply(le(events.EntryReceipt, "DC1", 20, 1, "r1"))
		o := le(events.EntryOrderLine, "DC1", 5, 2, "o1")
		o.OrderID, o.LineID = sp("SO-1"), sp("1")
		h.apply(o)
		want(t, h.pos("DC1"), Components{OnHand: 20, Reserved: 5})
		pk := le(events.EntryPick, "DC1", 5, 3, "p1")
		pk.OrderID, pk.LineID = sp("SO-1"), sp("1")
		h.apply(pk)
		want(t, h.pos("DC1"), Components{OnHand: 20, Picked: 5})
		sh := le(events.EntryShipment, "DC1", 5, 4, "s1")
		sh.OrderID, sh.LineID = sp("SO-1"), sp("1")
		h.apply(sh)
		want(t, h.pos("DC1"), Components{OnHand: 15})
	})

	t.Run("cancel releases the reservation", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		o := le(events.EntryOrderLine, "DC1", 4, 1, "o1")
		o.OrderID, o.LineID = sp("SO-1"), sp("1")
		c := le(events.EntryOrderCancel, "DC1", 0, 2, "c1")
		c.OrderID, c.LineID = sp("SO-1"), sp("1")
		h.apply(o, c)
		want(t, h.pos("DC1"), Components{})
	})

	t.Run("order facts in any arrival order converge", func(t *testing.T) {
		mk := func() []*events.LedgerEntry {
			o := le(events.EntryOrderLine, "DC1", 6, 1, "o1")
			pk := le(events.EntryPick, "DC1", 4, 2, "p1")
			sh := le(events.EntryShipment, "DC1", 4, 3, "s1")
			for _, e := range []*events.LedgerEntry{o, pk, sh} {
				e.OrderID, e.LineID = sp("SO-1"), sp("1")
			}
			return []*events.LedgerEntry{le(events.EntryReceipt, "DC1", 50, 0, "r0"), o, pk, sh}
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		for trial := 0; trial < 12; trial++ {
			h := newHarness(t, newStore(t))
			es := mk()
			rnd.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
			for _, e := range es {
				h.apply(e)
			}
			// 6 ordered, 4 picked and shipped: 2 still reserved, nothing left picked.
			want(t, h.pos("DC1"), Components{OnHand: 46, Reserved: 2})
		}
	})

	t.Run("purchase order inbound", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		po := func(typ string, q int64, min int, eid string) *events.LedgerEntry {
			e := le(typ, "DC1", q, min, eid)
			e.PONumber, e.POLine = sp("PO-1"), i32(1)
			return e
		}
		rel := po(events.EntryPOLine, 100, 1, "rel")
		rel.ExpectedDate = &base
		h.apply(rel)
		want(t, h.pos("DC1"), Components{Inbound: 100})
		ack := po(events.EntryPOAck, 80, 2, "ack")
		ack.Status = sp(events.AckChanged)
		h.apply(ack)
		want(t, h.pos("DC1"), Components{Inbound: 80})
		asn := po(events.EntryASNLine, 70, 3, "asn")
		asn.ASNID, asn.ETA = sp("ASN-1"), &base
		h.apply(asn)
		want(t, h.pos("DC1"), Components{Inbound: 70})
		h.apply(po(events.EntryReceipt, 30, 4, "rec"))
		want(t, h.pos("DC1"), Components{OnHand: 30, Inbound: 40})
		h.apply(po(events.EntryPOClose, 0, 5, "close"))
		want(t, h.pos("DC1"), Components{OnHand: 30})
	})

	t.Run("rejected PO line counts zero", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		rel := le(events.EntryPOLine, "DC1", 10, 1, "rel")
		rel.PONumber, rel.POLine, rel.ExpectedDate = sp("PO-2"), i32(1), &base
		ack := le(events.EntryPOAck, "DC1", 0, 2, "ack")
		ack.PONumber, ack.POLine, ack.Status = sp("PO-2"), i32(1), sp(events.AckRejected)
		h.apply(rel, ack)
		want(t, h.pos("DC1"), Components{})
	})

	t.Run("receipt before its PO converges", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		rec := le(events.EntryReceipt, "DC1", 10, 1, "rec")
		rec.PONumber, rec.POLine = sp("PO-3"), i32(1)
		rel := le(events.EntryPOLine, "DC1", 10, 0, "rel")
		rel.PONumber, rel.POLine, rel.ExpectedDate = sp("PO-3"), i32(1), &base
		h.apply(rec, rel)
		want(t, h.pos("DC1"), Components{OnHand: 10})
	})

	t.Run("counts and movements in any order give the same on hand", func(t *testing.T) {
		mk := func() []*events.LedgerEntry {
			c1 := le(events.EntryCount, "DC1", 50, 20, "c1")
			c1.AsOf = ptrTime(at(10))
			c2 := le(events.EntryCount, "DC1", 40, 30, "c2") // older as-of than c1's movements after 10? no: newer
			c2.AsOf = ptrTime(at(14))
			return []*events.LedgerEntry{
				c1, c2,
				le(events.EntryReceipt, "DC1", 3, 5, "m1"),      // inside both counts
				le(events.EntryAdjustment, "DC1", -2, 12, "m2"), // inside c2 only
				le(events.EntryReceipt, "DC1", 4, 15, "m3"),     // after both
				le(events.EntryAdjustment, "DC1", -1, 16, "m4"), // after both
			}
		}
		rnd := rand.New(rand.NewPCG(3, 4))
		for trial := 0; trial < 30; trial++ {
			h := newHarness(t, newStore(t))
			es := mk()
			rnd.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
			for _, e := range es {
				h.apply(e)
			}
			// c2 (as of minute 14) is the newest count: 40 + 4 - 1.
			want(t, h.pos("DC1"), Components{OnHand: 43})
		}
	})

	t.Run("same offset twice is stale, same fact at another offset is a duplicate", func(t *testing.T) {
		s := newStore(t)
		h := newHarness(t, s)
		r := le(events.EntryReceipt, "DC1", 10, 1, "r1")
		if st := h.apply(r); st[0] != "ok" {
			t.Fatalf("first apply: %v", st)
		}
		h.off[0] = 0 // the same log position again (a restart before the commit)
		if st := h.apply(r); st[0] != "stale" {
			t.Fatalf("re-applied offset: %v", st)
		}
		if st := h.apply(r); st[0] != "dup" { // offset 1 now: upstream produced it twice
			t.Fatalf("duplicate event: %v", st)
		}
		want(t, h.pos("DC1"), Components{OnHand: 10})
	})

	t.Run("a fact is a duplicate within the window of the newest entry, Redis forgets it after", func(t *testing.T) {
		s := newStore(t)
		h := newHarness(t, s)
		ctx := context.Background()
		r1 := le(events.EntryReceipt, "DC1", 10, 0, "r1")
		r2 := le(events.EntryReceipt, "DC1", 5, 25*60, "r2") // 25 h later
		if st := h.apply(r1); st[0] != "ok" {
			t.Fatalf("r1: %v", st)
		}
		if st := h.apply(r1); st[0] != "dup" { // another offset, still within the window
			t.Fatalf("r1 again within the window: %v", st)
		}
		if st := h.apply(r2); st[0] != "ok" {
			t.Fatalf("r2: %v", st)
		}
		// r1 left the window with r2: Redis no longer holds its id.
		e := s.SKUKey("SKU-1") + ":e"
		if ids, err := s.rdb.ZRange(ctx, e, 0, -1).Result(); err != nil || len(ids) != 1 {
			t.Fatalf("dedupe ids in Redis %v %v, want r2's alone", ids, err)
		}
		// Older than the window: applied again; r2 is within it.
		if st := h.apply(r1, r2); st[0] != "ok" || st[1] != "dup" {
			t.Fatalf("r1 and r2 again: %v", st)
		}
		want(t, h.pos("DC1"), Components{OnHand: 25})
		// A stored state keeps no ids in memory: the next fold asks Redis.
		got, err := s.Load(ctx, []string{"SKU-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got[0].seen) != 0 || got[0].newest != at(25*60).UnixMilli() {
			t.Fatalf("loaded state holds %d ids, newest %d", len(got[0].seen), got[0].newest)
		}
	})

	t.Run("a stored state lets closed lines go and reads one back when an entry touches it", func(t *testing.T) {
		s := newStore(t)
		h := newHarness(t, s)
		ctx := context.Background()
		line := func(typ string, q int64, min int, id string) *events.LedgerEntry {
			e := le(typ, "DC1", q, min, id)
			e.OrderID, e.LineID = sp("O1"), sp("1")
			return e
		}
		po := func(typ string, q int64, min int, id string) *events.LedgerEntry {
			e := le(typ, "DC1", q, min, id)
			e.PONumber, e.POLine = sp("P1"), i32(1)
			return e
		}
		h.apply(le(events.EntryReceipt, "DC1", 20, 0, "r0"), line(events.EntryOrderLine, 5, 1, "o1"), line(events.EntryShipment, 5, 2, "s1"),
			po(events.EntryPOLine, 8, 1, "p1"), po(events.EntryReceipt, 8, 3, "p1r"))
		got, err := s.Load(ctx, []string{"SKU-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got[0].lines) != 0 || len(got[0].po) != 0 {
			t.Fatalf("the loaded state holds %d order lines and %d PO lines, all closed", len(got[0].lines), len(got[0].po))
		}
		// A late pick of the shipped line adds nothing picked: the line is
		// read back with its shipment. A late ship notice of the received
		// PO line adds nothing inbound.
		h.apply(line(events.EntryPick, 5, 4, "k1"), po(events.EntryASNLine, 8, 4, "a1"))
		want(t, h.pos("DC1"), Components{OnHand: 20 + 8 - 5})
		// Read back, folded, stored: let go of again, as they are still closed.
		st, err := s.Load(ctx, []string{"SKU-1"})
		if err != nil {
			t.Fatal(err)
		}
		dup := line(events.EntryPick, 5, 4, "k1") // a duplicate: changes nothing
		if err := s.Prime(ctx, st, [][]Entry{{{LedgerEntry: dup, Offset: 100}}}); err != nil {
			t.Fatal(err)
		}
		if len(st[0].lines) != 1 {
			t.Fatalf("the duplicate's line was not read back: %d lines", len(st[0].lines))
		}
		if out := s.Engine().Apply(st[0], dup, 0, 100); out.Status != Duplicate {
			t.Fatalf("the pick again: %v", out.Status)
		}
		if ok, err := s.Save(ctx, st); err != nil || !ok[0] {
			t.Fatalf("save: %v %v", ok, err)
		}
		if len(st[0].lines) != 0 {
			t.Fatalf("the state kept %d closed lines after the save", len(st[0].lines))
		}
	})

	t.Run("a zombie on another partition view cannot re-apply", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		h.off[0] = 100
		h.apply(le(events.EntryReceipt, "DC1", 10, 1, "r1"))
		h.off[0] = 50 // a consumer that lost the partition, still working on old offsets
		if st := h.apply(le(events.EntryReceipt, "DC1", 10, 2, "r-zombie")); st[0] != "stale" {
			t.Fatalf("zombie apply: %v", st)
		}
		want(t, h.pos("DC1"), Components{OnHand: 10})
	})

	t.Run("holds never oversell and expire by entry time", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		h.apply(le(events.EntryReceipt, "DC1", 10, 0, "r1"))
		hold := func(id string, q int64, min int) *events.LedgerEntry {
			e := le(events.EntryHold, "DC1", q, min, fmt.Sprint("h-", id, min))
			e.HoldID, e.TTLMillis = sp(id), i64(int64(10*time.Minute/time.Millisecond))
			return e
		}
		if st := h.apply(hold("A", 6, 1)); st[0] != "held:4" {
			t.Fatalf("hold A: %v", st)
		}
		if st := h.apply(hold("B", 6, 2)); st[0] != "rejected:4" {
			t.Fatalf("hold B: %v", st)
		}
		want(t, h.pos("DC1"), Components{OnHand: 10, Held: 6})
		// Hold A again (a client retry with a new entry): the first answer stands.
		if st := h.apply(hold("A", 6, 3)); st[0] != "held:4" {
			t.Fatalf("retry A: %v", st)
		}
		// The same hold entry produced twice: still the first answer.
		again := hold("A", 6, 3)
		if st := h.apply(again); st[0] != "held:4" {
			t.Fatalf("duplicate hold entry: %v", st)
		}
		// Minute 12: A (expires at 11) has lapsed; C gets the stock.
		if st := h.apply(hold("C", 10, 12)); st[0] != "held:0" {
			t.Fatalf("hold C after expiry: %v", st)
		}
		rel := le(events.EntryHoldRelease, "DC1", 0, 13, "rel-C")
		rel.HoldID = sp("C")
		h.apply(rel)
		want(t, h.pos("DC1"), Components{OnHand: 10})
	})

	t.Run("reads exclude holds expired by the clock", func(t *testing.T) {
		s := newStore(t)
		h := newHarness(t, s)
		h.apply(le(events.EntryReceipt, "DC1", 10, 0, "r1"))
		e := le(events.EntryHold, "DC1", 4, 1, "h1")
		e.HoldID, e.TTLMillis = sp("H"), i64(60_000)
		h.apply(e)
		p, err := s.Position(context.Background(), "SKU-1", "DC1", at(1))
		if err != nil || p.Held != 4 {
			t.Fatalf("active hold: %+v %v", p, err)
		}
		p, err = s.Position(context.Background(), "SKU-1", "DC1", at(3))
		if err != nil || p.Held != 0 {
			t.Fatalf("lapsed hold still counted: %+v %v", p, err)
		}
	})

	t.Run("an order naming a hold converts it without counting twice", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		h.apply(le(events.EntryReceipt, "DC1", 10, 0, "r1"))
		e := le(events.EntryHold, "DC1", 3, 1, "h1")
		e.HoldID, e.TTLMillis = sp("H"), i64(600_000)
		h.apply(e)
		o := le(events.EntryOrderLine, "DC1", 3, 2, "o1")
		o.OrderID, o.LineID, o.HoldID = sp("SO-9"), sp("1"), sp("H")
		h.apply(o)
		want(t, h.pos("DC1"), Components{OnHand: 10, Reserved: 3})
	})

	t.Run("group demand moves to a location on allocation", func(t *testing.T) {
		s := newStore(t)
		h := newHarness(t, s)
		o := le(events.EntryOrderLine, "", 5, 1, "o1")
		o.Group, o.OrderID, o.LineID = sp("EU"), sp("SO-1"), sp("1")
		h.apply(o)
		if d, err := s.GroupDemand(context.Background(), "SKU-1", "EU"); err != nil || d != 5 {
			t.Fatalf("group demand %d (%v), want 5", d, err)
		}
		a := le(events.EntryOrderAllocate, "DC2", 0, 2, "a1")
		a.OrderID, a.LineID = sp("SO-1"), sp("1")
		h.apply(a)
		if d, err := s.GroupDemand(context.Background(), "SKU-1", "EU"); err != nil || d != 0 {
			t.Fatalf("group demand %d (%v) after allocation, want 0", d, err)
		}
		want(t, h.pos("DC2"), Components{Reserved: 5})
	})

	t.Run("policies", func(t *testing.T) {
		h := newHarness(t, newStore(t))
		p := le(events.EntryPolicy, "DC1", 0, 1, "pol")
		p.SafetyStock, p.ReorderPoint = i64(7), i64(30)
		h.apply(p)
		want(t, h.pos("DC1"), Components{SafetyStock: 7, ReorderPoint: 30})
	})

	t.Run("changed positions come back with before and after", func(t *testing.T) {
		s := newStore(t)
		b := Batch{SKU: "SKU-1", Entries: []Entry{
			{LedgerEntry: le(events.EntryReceipt, "DC1", 5, 1, "r1"), Offset: 0},
			{LedgerEntry: le(events.EntryReceipt, "DC1", 7, 2, "r2"), Offset: 1},
		}}
		res, err := s.Apply(context.Background(), []Batch{b})
		if err != nil {
			t.Fatal(err)
		}
		if len(res[0].Changes) != 1 {
			t.Fatalf("positions %+v", res[0].Changes)
		}
		c := res[0].Changes[0]
		if c.Location != "DC1" || c.Before.OnHand != 0 || c.After.OnHand != 12 || c.Version != 1 {
			t.Fatalf("changed %+v", c)
		}
	})

	t.Run("an acknowledgement that only moves a date says the supply changed", func(t *testing.T) {
		s := newStore(t)
		po := le(events.EntryPOLine, "DC1", 40, 1, "po")
		po.PONumber, po.POLine, po.ExpectedDate = sp("PO-1"), i32(1), ptrTime(at(3*24*60))
		ack := le(events.EntryPOAck, "DC1", 40, 2, "ack")
		ack.PONumber, ack.POLine, ack.Status, ack.ExpectedDate = sp("PO-1"), i32(1), sp("CHANGED"), ptrTime(at(5*24*60))
		ctx := context.Background()
		if _, err := s.Apply(ctx, []Batch{{SKU: "SKU-1", Entries: []Entry{{LedgerEntry: po, Offset: 0}}}}); err != nil {
			t.Fatal(err)
		}
		res, err := s.Apply(ctx, []Batch{{SKU: "SKU-1", Entries: []Entry{{LedgerEntry: ack, Offset: 1}}}})
		if err != nil {
			t.Fatal(err)
		}
		c := res[0].Changes[0]
		wantSupply := []atp.Supply{{Kind: atp.Acknowledged, Date: atp.Day(at(5 * 24 * 60)), Quantity: 40}}
		if c.Before != c.After || !c.SupplyChanged || !slices.Equal(c.Supply, wantSupply) {
			t.Fatalf("changed %+v, want the same totals, supply changed to %+v", c, wantSupply)
		}
		look, err := s.Lookup(ctx, []LookupReq{{SKU: "SKU-1", Location: "DC1"}}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(look[0].Supply, c.Supply) || look[0].Version != c.Version {
			t.Fatalf("lookup reads supply %+v at version %d, the change says %+v at %d", look[0].Supply, look[0].Version, c.Supply, c.Version)
		}
	})

	t.Run("many SKUs in one pipelined call", func(t *testing.T) {
		s := newStore(t)
		var bs []Batch
		for i := 0; i < 50; i++ {
			e := le(events.EntryReceipt, "DC1", int64(i+1), 1, fmt.Sprint("r", i))
			e.SKU = fmt.Sprintf("SKU-%03d", i)
			bs = append(bs, Batch{SKU: e.SKU, Entries: []Entry{{LedgerEntry: e, Offset: int64(i)}}})
		}
		if _, err := s.Apply(context.Background(), bs); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			p, err := s.Position(context.Background(), fmt.Sprintf("SKU-%03d", i), "DC1", at(0))
			if err != nil || p.OnHand != int64(i+1) {
				t.Fatalf("SKU-%03d: %+v %v", i, p, err)
			}
		}
	})

	t.Run("a write from a state another writer has moved on is refused", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		eng := s.Engine()
		owner, err := s.Load(ctx, []string{"SKU-1"})
		if err != nil {
			t.Fatal(err)
		}
		zombie, err := s.Load(ctx, []string{"SKU-1"}) // loaded before the owner writes
		if err != nil {
			t.Fatal(err)
		}
		eng.Apply(owner[0], le(events.EntryReceipt, "DC1", 10, 1, "r1"), 0, 0)
		if ok, err := s.Save(ctx, owner); err != nil || !ok[0] {
			t.Fatalf("owner's write: %v %v", ok, err)
		}
		eng.Apply(zombie[0], le(events.EntryReceipt, "DC1", 99, 1, "r-zombie"), 0, 1)
		if ok, err := s.Save(ctx, zombie); err != nil || ok[0] {
			t.Fatalf("zombie's write was not refused: %v %v", ok, err)
		}
		h := newHarness(t, s)
		want(t, h.pos("DC1"), Components{OnHand: 10})
		// The owner folds on from its cached state.
		eng.Apply(owner[0], le(events.EntryReceipt, "DC1", 5, 2, "r2"), 0, 1)
		if ok, err := s.Save(ctx, owner); err != nil || !ok[0] {
			t.Fatalf("owner's second write: %v %v", ok, err)
		}
		want(t, h.pos("DC1"), Components{OnHand: 15})
	})

	t.Run("a fenced hold desk answers nothing; the current one answers and keeps its answers", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		old, err := s.TakeHoldFence(ctx, "ledger", 3)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := s.TakeHoldFence(ctx, "ledger", 3)
		if err != nil || cur <= old {
			t.Fatalf("epochs %d then %d (%v): want increasing", old, cur, err)
		}
		sub := s.Client().Subscribe(ctx, "answers")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		answer := func(epoch int64, id string) bool {
			ok, err := s.AnswerHolds(ctx, "ledger", 3, epoch, 42, []HoldAnswer{{Channel: "answers", SKU: "S",
				Hold: Hold{HoldID: id, Location: "L1", Quantity: 2, Status: HoldHeld, ATP: 5}}})
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if next, ok, err := s.HoldsNext(ctx, "ledger", 3); err != nil || ok {
			t.Fatalf("a position before any answer: %d %v %v", next, ok, err)
		}
		if answer(old, "Z") {
			t.Fatal("the fenced desk's answer went through")
		}
		if _, ok, _ := s.HoldsNext(ctx, "ledger", 3); ok {
			t.Fatal("the fenced desk recorded its position")
		}
		if msg, err := s.AnsweredHold(ctx, "ledger", 3, "Z", "L1"); err != nil || msg != "" {
			t.Fatalf("the fenced desk's answer was kept: %q %v", msg, err)
		}
		if !answer(cur, "A") {
			t.Fatal("the current desk's answer was refused")
		}
		if next, ok, err := s.HoldsNext(ctx, "ledger", 3); err != nil || !ok || next != 42 {
			t.Fatalf("position %d %v %v, want 42", next, ok, err)
		}
		m, err := sub.ReceiveMessage(ctx)
		if err != nil || m.Payload != "A|S|L1|held:5:0" {
			t.Fatalf("published %v %v, want only the current desk's answer", m, err)
		}
		if msg, err := s.AnsweredHold(ctx, "ledger", 3, "A", "L1"); err != nil || msg != "A|S|L1|held:5:0" {
			t.Fatalf("kept %q %v", msg, err)
		}
		if other, err := s.TakeHoldFence(ctx, "ledger", 4); err != nil || other != 1 {
			t.Fatalf("another partition's fence starts at %d (%v), want 1", other, err)
		}
	})

	t.Run("a state survives the round trip through Redis", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		h := newHarness(t, s)
		f := NewFold(Config{})
		rnd := rand.New(rand.NewPCG(5, 6))
		es := randomEntries(rnd, 300)
		for i, e := range es {
			e.SKU = "SKU-1"
			f.Apply(e, 0, int64(i))
		}
		h.apply(es...)
		got, err := s.Load(ctx, []string{"SKU-1"})
		if err != nil {
			t.Fatal(err)
		}
		w := f.State("SKU-1")
		if a, b := stateDump(got[0]), stateDump(w); a != b {
			t.Fatalf("loaded state differs from the fold:\n%s\n%s", a, b)
		}
		// Folding on from the loaded state and from the fold gives the same.
		// The loaded state asks Redis for the dedupe ids it meets (Prime):
		// the more entries repeat some of the first ones' facts.
		more := randomEntries(rand.New(rand.NewPCG(7, 8)), 100)
		for i := range more {
			if i%5 == 0 {
				d := *es[rnd.IntN(len(es))]
				more[i] = &d
			}
		}
		var ents []Entry
		for i, e := range more {
			e.SKU = "SKU-1"
			ents = append(ents, Entry{LedgerEntry: e, Offset: int64(len(es) + i)})
		}
		if err := s.Prime(ctx, got, [][]Entry{ents}); err != nil {
			t.Fatal(err)
		}
		dups := 0
		for i, e := range more {
			a := f.Apply(e, 0, int64(len(es)+i))
			b := s.Engine().Apply(got[0], e, 0, int64(len(es)+i))
			if a.Status != b.Status || a.CountDelta != b.CountDelta {
				t.Fatalf("entry %d: fold %+v, loaded %+v", i, a, b)
			}
			if b.Status == Duplicate {
				dups++
			}
		}
		if dups == 0 {
			t.Fatal("no entry was a duplicate: the dedupe ids in Redis went untested")
		}
		if fmt.Sprint(got[0].Positions()) != fmt.Sprint(w.Positions()) {
			t.Fatalf("after more entries: loaded %v, fold %v", got[0].Positions(), w.Positions())
		}
	})

	t.Run("applied offsets move only from what the writer last saw", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		if refused, err := s.RecordApplied(ctx, "ledger", nil, map[int32]int64{0: 10, 1: 5}); err != nil || len(refused) != 0 {
			t.Fatalf("first record: refused %v, %v", refused, err)
		}
		// Partition 0 moves on from 10; the writer's view of partition 1 (4)
		// is not what Redis has (5): another writer, or Redis went back.
		refused, err := s.RecordApplied(ctx, "ledger", map[int32]int64{0: 10, 1: 4}, map[int32]int64{0: 17, 1: 9})
		if err != nil || len(refused) != 1 || refused[0] != 1 {
			t.Fatalf("second record: refused %v, %v", refused, err)
		}
		got, err := s.AppliedOffsets(ctx, "ledger")
		if err != nil || got[0] != 17 || got[1] != 5 {
			t.Fatalf("applied %v %v", got, err)
		}
		existed, err := s.EnsureMarker(ctx, "ledger")
		if err != nil || existed {
			t.Fatalf("first marker: %v %v", existed, err)
		}
		existed, err = s.EnsureMarker(ctx, "ledger")
		if err != nil || !existed {
			t.Fatalf("second marker: %v %v", existed, err)
		}
	})
}

func ptrTime(t time.Time) *time.Time { return &t }

// stateDump writes everything a state keeps, in a stable order.
func stateDump(s *State) string {
	var b strings.Builder
	// A group whose demand is back to 0 is the same ledger as no group:
	// Redis keeps the field, a state folded in memory may not have it.
	groups := map[string]int64{}
	for g, d := range s.group {
		if d != 0 {
			groups[g] = d
		}
	}
	fmt.Fprintf(&b, "marks %v newest id at %d group %v next expiry %d\n", s.marks, s.newest, groups, s.nextExp)
	for _, loc := range slices.Sorted(maps.Keys(s.pos)) {
		p := s.pos[loc]
		j := slices.Clone(p.journal)
		slices.SortFunc(j, func(x, y journalEntry) int { return strings.Compare(x.member, y.member) })
		fmt.Fprintf(&b, "%s %+v counted %v at %d journal %v supply %v\n", loc, p.Components, p.counted, p.countAt, j, p.supply)
	}
	// The lines a stored state lets go of (shed) are left out.
	c := &State{lines: maps.Clone(s.lines), po: maps.Clone(s.po)}
	c.shedAll()
	for _, k := range slices.Sorted(maps.Keys(c.lines)) {
		fmt.Fprintf(&b, "line %s %+v\n", k, *c.lines[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.po)) {
		fmt.Fprintf(&b, "po %s %+v\n", k, *c.po[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.holds)) {
		_, active := s.active[k]
		fmt.Fprintf(&b, "hold %s %+v active %v\n", k, *s.holds[k], active)
	}
	return b.String()
}

func TestPOLineSupply(t *testing.T) {
	day := func(d int64) int64 { return base.Unix()/86400 + d }
	cases := []struct {
		name string
		l    POLine
		want atp.Supply
		ok   bool
	}{
		{"released", POLine{Ordered: 100, ExpectedDay: day(5)}, atp.Supply{Kind: atp.Released, Date: dayOf(day(5)), Quantity: 100}, true},
		{"acknowledged with a new date and quantity", POLine{Ordered: 100, ExpectedDay: day(5), Status: "CHANGED", AckQuantity: 80, AckDay: day(7)},
			atp.Supply{Kind: atp.Acknowledged, Date: dayOf(day(7)), Quantity: 80}, true},
		{"on an ASN, partly received", POLine{Ordered: 100, Status: "ACCEPTED", AckQuantity: 100, ASN: map[string]int64{"A": 60}, ETAMillis: at(60 * 24 * 2).UnixMilli(), Received: 10},
			atp.Supply{Kind: atp.ASN, Date: atp.Day(at(60 * 24 * 2)), Quantity: 50}, true},
		{"rejected", POLine{Ordered: 100, Status: "REJECTED"}, atp.Supply{}, false},
		{"closed", POLine{Ordered: 100, Closed: 1}, atp.Supply{}, false},
		{"fully received", POLine{Ordered: 100, Received: 100}, atp.Supply{}, false},
	}
	for _, tc := range cases {
		got, ok := tc.l.Supply()
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
