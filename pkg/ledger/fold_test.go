package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
)

// randomEntries makes a stream of every entry type over a few SKUs and
// locations, out of order in event time, with duplicates.
func randomEntries(rnd *rand.Rand, n int) []*events.LedgerEntry {
	skus := []string{"S1", "S2", "S3"}
	locs := []string{"L1", "L2"}
	var out []*events.LedgerEntry
	for i := 0; i < n; i++ {
		sku, loc := skus[rnd.IntN(len(skus))], locs[rnd.IntN(len(locs))]
		min := rnd.IntN(600)
		e := &events.LedgerEntry{SKU: sku, Location: sp(loc), EventID: fmt.Sprint("e", i), EventTime: at(min), Source: "t"}
		q := int64(1 + rnd.IntN(20))
		order, line := sp(fmt.Sprint("O", rnd.IntN(8))), sp(fmt.Sprint(1+rnd.IntN(2)))
		po, pl := sp(fmt.Sprint("P", rnd.IntN(5))), i32(int32(rnd.IntN(2)))
		switch rnd.IntN(15) {
		case 0, 1:
			e.EntryType, e.Quantity = events.EntryReceipt, q
			if rnd.IntN(2) == 0 {
				e.PONumber, e.POLine = po, pl
			}
		case 2:
			e.EntryType, e.Quantity = events.EntryAdjustment, q-10
		case 3:
			e.EntryType, e.Quantity, e.OrderID, e.LineID = events.EntryShipment, q, order, line
		case 4:
			e.EntryType, e.Quantity, e.OrderID, e.LineID = events.EntryPick, q, order, line
		case 5:
			e.EntryType, e.Quantity, e.AsOf = events.EntryCount, 50+q, ptrTime(at(min-rnd.IntN(60)))
		case 6:
			e.EntryType, e.Quantity, e.OrderID, e.LineID = events.EntryOrderLine, q, order, line
			if rnd.IntN(4) == 0 {
				e.Location, e.Group = nil, sp("G")
			}
		case 7:
			e.EntryType, e.OrderID, e.LineID = events.EntryOrderCancel, order, line
		case 8:
			e.EntryType, e.OrderID, e.LineID = events.EntryOrderAllocate, order, line
		case 9:
			e.EntryType, e.Quantity, e.PONumber, e.POLine, e.ExpectedDate = events.EntryPOLine, 10*q, po, pl, ptrTime(at(3000))
		case 10:
			st := []string{"ACCEPTED", "CHANGED", "REJECTED", "BACKORDERED"}[rnd.IntN(4)]
			e.EntryType, e.Quantity, e.PONumber, e.POLine, e.Status, e.ExpectedDate = events.EntryPOAck, 5*q, po, pl, &st, ptrTime(at(4000))
		case 11:
			e.EntryType, e.Quantity, e.PONumber, e.POLine, e.ASNID, e.ETA = events.EntryASNLine, 4*q, po, pl, sp(fmt.Sprint("A", rnd.IntN(2))), ptrTime(at(2000))
		case 12:
			e.EntryType, e.HoldID, e.Quantity, e.TTLMillis = events.EntryHold, sp(fmt.Sprint("H", rnd.IntN(10))), q, i64(int64(rnd.IntN(30))*60_000)
		case 14: // a decision journaled by the partition's owner
			st := []string{"held", "rejected"}[rnd.IntN(2)]
			e.EntryType, e.HoldID, e.Quantity, e.TTLMillis = events.EntryHold, sp(fmt.Sprint("J", rnd.IntN(10))), q, i64(int64(1+rnd.IntN(30))*60_000)
			e.Status, e.DecidedATP, e.DecidedAt, e.DecidedEpoch = &st, i64(int64(rnd.IntN(50))), i64(int64(i)), i64(int64(1+rnd.IntN(3)))
		case 13:
			if rnd.IntN(2) == 0 {
				e.EntryType, e.HoldID = events.EntryHoldRelease, sp(fmt.Sprint("H", rnd.IntN(10)))
			} else {
				e.EntryType, e.PONumber, e.POLine = events.EntryPOClose, po, pl
			}
		}
		out = append(out, e)
		if rnd.IntN(15) == 0 { // an upstream duplicate
			d := *e
			out = append(out, &d)
		}
		if rnd.IntN(20) == 0 && len(out) > 1 { // a replay of an older event, maybe outside the dedupe window
			d := *out[rnd.IntN(len(out)-1)]
			out = append(out, &d)
		}
	}
	return out
}

// A ledger stored in Redis batch by batch (each batch loaded, folded and
// saved again) agrees with the same stream folded in memory on every
// position, hold decision, supply bucket and group demand, for random
// streams in random batch sizes: nothing the fold needs is lost between
// Load and Save.
func TestStoredLedgerMatchesFold(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			m := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
			defer rdb.Close()
			// Even seeds use short windows, so pruning of the dedupe set
			// and the movement journal is exercised too.
			cfg := Config{}
			if seed%2 == 0 {
				cfg = Config{DedupeWindow: 90 * time.Minute, JournalWindow: 2 * time.Hour}
			}
			s := New(rdb, cfg)
			f := NewFold(cfg)
			rnd := rand.New(rand.NewPCG(seed, 99))
			es := randomEntries(rnd, 400)
			ctx := context.Background()
			for i := 0; i < len(es); {
				n := 1 + rnd.IntN(8)
				bySKU := map[string]*Batch{}
				var order []string
				for j := i; j < min(i+n, len(es)); j++ {
					e := es[j]
					if bySKU[e.SKU] == nil {
						bySKU[e.SKU] = &Batch{SKU: e.SKU}
						order = append(order, e.SKU)
					}
					bySKU[e.SKU].Entries = append(bySKU[e.SKU].Entries, Entry{LedgerEntry: e, Offset: int64(j)})
					f.Apply(e, 0, int64(j))
				}
				var bs []Batch
				for _, k := range order {
					bs = append(bs, *bySKU[k])
				}
				res, err := s.Apply(ctx, bs)
				if err != nil {
					t.Fatal(err)
				}
				// What a change says of its position is what a lookup reads
				// once it is stored: the folder publishes one, the API the other.
				for _, r := range res {
					for _, c := range r.Changes {
						look, err := s.Lookup(ctx, []LookupReq{{SKU: r.SKU, Location: c.Location}}, time.Time{})
						if err != nil {
							t.Fatal(err)
						}
						if l := look[0]; l.Version != c.Version || !slices.Equal(l.Supply, c.Supply) {
							t.Fatalf("%s@%s: lookup reads version %d supply %+v, the change says version %d supply %+v",
								r.SKU, c.Location, l.Version, l.Supply, c.Version, c.Supply)
						}
					}
				}
				i += n
			}
			for _, sku := range f.SKUs() {
				for loc, want := range f.Positions(sku) {
					p, err := s.Position(ctx, sku, loc, time.Time{})
					if err != nil {
						t.Fatal(err)
					}
					if p.Components != want {
						t.Fatalf("%s@%s: redis %+v, fold %+v", sku, loc, p.Components, want)
					}
				}
				_, _, holds, err := s.Lines(ctx, sku)
				if err != nil {
					t.Fatal(err)
				}
				fh := f.Holds(sku)
				if len(holds) != len(fh) {
					t.Fatalf("%s: %d holds in redis, %d in the fold", sku, len(holds), len(fh))
				}
				for _, h := range holds {
					w := fh[h.HoldID+"|"+h.Location]
					if h.Status != w.Status || h.Quantity != w.Quantity {
						t.Fatalf("%s hold %s@%s: redis %+v, fold %+v", sku, h.HoldID, h.Location, h, w)
					}
				}
				// The supply buckets the lookups read agree with the PO lines.
				_, pos, _, err := s.Lines(ctx, sku)
				if err != nil {
					t.Fatal(err)
				}
				for loc := range f.Positions(sku) {
					want := map[atp.Supply]int64{}
					for _, l := range pos {
						if sup, ok := l.Supply(); ok && l.Location == loc {
							want[atp.Supply{Kind: sup.Kind, Date: sup.Date}] += sup.Quantity
						}
					}
					res, err := s.Lookup(ctx, []LookupReq{{SKU: sku, Location: loc}}, time.Time{})
					if err != nil {
						t.Fatal(err)
					}
					got := map[atp.Supply]int64{}
					for _, sup := range res[0].Supply {
						got[atp.Supply{Kind: sup.Kind, Date: sup.Date}] += sup.Quantity
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("%s@%s supply buckets %v, PO lines say %v", sku, loc, got, want)
					}
				}
				if d, _ := s.GroupDemand(ctx, sku, "G"); d != f.GroupDemand(sku, "G") {
					t.Fatalf("%s group demand: redis %d, fold %d", sku, d, f.GroupDemand(sku, "G"))
				}
			}
			if len(f.Oversold) != 0 {
				t.Fatalf("holds accepted beyond ATP: %v", f.Oversold)
			}
		})
	}
}
