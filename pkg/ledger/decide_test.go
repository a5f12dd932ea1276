package ledger

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stockflow/stockflow/pkg/events"
)

func holdReq(id string, q int64, min, ttlMin int) *events.LedgerEntry {
	return &events.LedgerEntry{EntryType: events.EntryHold, SKU: "S", Location: sp("L1"), HoldID: sp(id), Quantity: q,
		TTLMillis: i64(int64(ttlMin) * 60_000), EventID: "hold:" + id, EventTime: at(min), Source: "api"}
}

// journaled is req with the decision h recorded, as a hold desk writes it.
func journaled(req *events.LedgerEntry, h Hold, at int64) *events.LedgerEntry {
	e := *req
	st, a, ep := h.Status, h.ATP, max(h.Epoch, 1)
	e.Status, e.DecidedATP, e.DecidedAt, e.DecidedEpoch = &st, &a, &at, &ep
	return &e
}

// Two owners decided the same request: the one fenced since (a lower
// epoch) could not answer, so the newer owner's decision stands wherever
// the two land in the log.
func TestNewerOwnersDecisionStands(t *testing.T) {
	receipt := &events.LedgerEntry{EntryType: events.EntryReceipt, SKU: "S", Location: sp("L1"), Quantity: 5, EventID: "r", EventTime: at(0), Source: "t"}
	req := holdReq("A", 4, 1, 10)
	old := journaled(req, Hold{Status: HoldHeld, ATP: 1, Epoch: 1}, 0)
	newer := journaled(req, Hold{Status: HoldRejected, ATP: 0, Epoch: 2}, 0)
	for _, c := range []struct {
		name  string
		order []*events.LedgerEntry
	}{
		{"the fenced owner's first", []*events.LedgerEntry{old, newer}},
		{"the newer owner's first", []*events.LedgerEntry{newer, old}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eng := NewEngine(Config{})
			s := NewState("S")
			eng.Apply(s, receipt, 0, 0)
			for i, e := range c.order {
				eng.Apply(s, e, 0, int64(i+1))
			}
			h := s.Holds()["A|L1"]
			if h.Status != HoldRejected || h.Epoch != 2 || s.Positions()["L1"].Held != 0 {
				t.Fatalf("hold %+v, held %d: want the epoch 2 rejection and nothing held", h, s.Positions()["L1"].Held)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	eng := NewEngine(Config{})
	// 10 on hand at L1, a hold of 3 folded (expires at minute 30), one of
	// 2 folded that lapsed at minute 5.
	base := func() *State {
		s := NewState("S")
		eng.Apply(s, &events.LedgerEntry{EntryType: events.EntryReceipt, SKU: "S", Location: sp("L1"), Quantity: 10, EventID: "r", EventTime: at(0), Source: "t"}, 0, 0)
		eng.Apply(s, journaled(holdReq("F", 3, 0, 30), Hold{Status: HoldHeld, ATP: 7}, 0), 0, 1)
		eng.Apply(s, journaled(holdReq("X", 2, 0, 5), Hold{Status: HoldHeld, ATP: 5}, 1), 0, 2)
		return s
	}
	cases := []struct {
		name    string
		req     *events.LedgerEntry
		pending []Hold
		status  string
		atp     int64
		known   bool
	}{
		{"the lapsed hold counts for nothing", holdReq("A", 7, 10, 10), nil, HoldHeld, 0, false},
		{"one more than is left", holdReq("A", 8, 10, 10), nil, HoldRejected, 7, false},
		{"before it lapsed, the other hold counts", holdReq("A", 6, 1, 10), nil, HoldRejected, 5, false},
		{"a pending decision counts", holdReq("A", 5, 10, 10), []Hold{{HoldID: "P", Location: "L1", Quantity: 3, Status: HoldHeld, ExpMillis: at(40).UnixMilli()}}, HoldRejected, 4, false},
		{"a lapsed pending decision does not", holdReq("A", 7, 10, 10), []Hold{{HoldID: "P", Location: "L1", Quantity: 3, Status: HoldHeld, ExpMillis: at(9).UnixMilli()}}, HoldHeld, 0, false},
		{"a pending rejection does not", holdReq("A", 7, 10, 10), []Hold{{HoldID: "P", Location: "L1", Quantity: 3, Status: HoldRejected}}, HoldHeld, 0, false},
		{"another location's does not", holdReq("A", 7, 10, 10), []Hold{{HoldID: "P", Location: "L2", Quantity: 3, Status: HoldHeld, ExpMillis: at(40).UnixMilli()}}, HoldHeld, 0, false},
		{"a pending release of a folded hold gives it back", holdReq("A", 10, 10, 10), []Hold{{HoldID: "F", Location: "L1", Status: HoldReleased}}, HoldHeld, 0, false},
		{"a pending release of a pending hold gives it back", holdReq("A", 7, 10, 10), []Hold{
			{HoldID: "P", Location: "L1", Quantity: 3, Status: HoldHeld, ExpMillis: at(40).UnixMilli()},
			{HoldID: "P", Location: "L1", Status: HoldReleased}}, HoldHeld, 0, false},
		{"a folded decision is answered again", holdReq("F", 1, 10, 10), nil, HoldHeld, 7, true},
		{"a pending decision is answered again", holdReq("P", 1, 10, 10), []Hold{{HoldID: "P", Location: "L1", Quantity: 1, Status: HoldRejected, ATP: 0}}, HoldRejected, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := base()
			before := s.Positions()["L1"]
			h, known := eng.Decide(s, c.req, c.pending)
			if h.Status != c.status || h.ATP != c.atp || known != c.known {
				t.Fatalf("got %s atp %d known %v, want %s atp %d known %v", h.Status, h.ATP, known, c.status, c.atp, c.known)
			}
			if s.Positions()["L1"] != before || len(s.Holds()) != 2 {
				t.Fatal("Decide changed the state")
			}
		})
	}
}

// A decision journaled after other entries is applied as it was decided:
// the fold does not decide it again where it lands.
func TestJournaledDecisionAppliedAsRecorded(t *testing.T) {
	eng := NewEngine(Config{})
	s := NewState("S")
	eng.Apply(s, &events.LedgerEntry{EntryType: events.EntryReceipt, SKU: "S", Location: sp("L1"), Quantity: 5, EventID: "r", EventTime: at(0), Source: "t"}, 0, 0)
	req := holdReq("A", 5, 1, 10)
	h, _ := eng.Decide(s, req, nil)
	if h.Status != HoldHeld {
		t.Fatalf("decided %s", h.Status)
	}
	// An order takes 3 before the decision reaches the log.
	eng.Apply(s, &events.LedgerEntry{EntryType: events.EntryOrderLine, SKU: "S", Location: sp("L1"), Quantity: 3, OrderID: sp("O"), LineID: sp("1"),
		EventID: "o", EventTime: at(1), Source: "t"}, 0, 1)
	out := eng.Apply(s, journaled(req, h, 0), 0, 2)
	if out.Status != Held || s.Positions()["L1"].Held != 5 {
		t.Fatalf("outcome %s, held %d: the journaled decision was not applied as recorded", out.Status, s.Positions()["L1"].Held)
	}
	// The same entry again, and a request for the same hold, answer the same.
	if out := eng.Apply(s, journaled(req, h, 0), 0, 3); out.Status != Held || s.Positions()["L1"].Held != 5 {
		t.Fatalf("repeat: %s, held %d", out.Status, s.Positions()["L1"].Held)
	}
	if h2, known := eng.Decide(s, req, nil); !known || h2.Status != HoldHeld {
		t.Fatalf("asked again: %s known %v", h2.Status, known)
	}
}

// A partition's owner decides holds against the fold so far plus what it
// journaled and the fold has not reached, while warehouse entries keep
// landing between a decision and its journal entry. However the entries
// interleave, no acceptance exceeds what was there when it was decided, and
// folding the resulting log again, twice, reaches the same decisions.
func TestDeskDecisionsReplayTheSame(t *testing.T) {
	for seed := range uint64(50) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 3))
			eng := NewEngine(Config{})
			live := NewState("S")
			var log []*events.LedgerEntry
			var pending []Hold
			var inFlight []*events.LedgerEntry // journaled, not yet in the log
			answered := map[string]string{}
			fold := func(e *events.LedgerEntry) {
				log = append(log, e)
				eng.Apply(live, e, 0, int64(len(log)-1))
			}
			for i := range 400 {
				switch r := rnd.IntN(10); {
				case r < 3: // warehouse traffic
					q := int64(1 + rnd.IntN(10))
					e := &events.LedgerEntry{SKU: "S", Location: sp("L1"), EventID: fmt.Sprint("w", i), EventTime: at(i / 10), Source: "t"}
					if rnd.IntN(3) == 0 {
						e.EntryType, e.Quantity, e.OrderID, e.LineID = events.EntryOrderLine, q, sp(fmt.Sprint("O", i)), sp("1")
					} else {
						e.EntryType, e.Quantity = events.EntryReceipt, q
					}
					fold(e)
				case r < 8: // a hold request reaches the desk
					req := holdReq(fmt.Sprint("H", i), int64(1+rnd.IntN(4)), i/10, 30)
					h, known := eng.Decide(live, req, pending)
					if known {
						t.Fatal("a new hold id known")
					}
					answered[h.HoldID] = h.Status
					if h.Status == HoldHeld && h.ATP < 0 {
						t.Fatalf("accepted %s beyond ATP", h.HoldID)
					}
					pending = append(pending, h)
					inFlight = append(inFlight, journaled(req, h, int64(len(log)-1)))
				default: // the fold reaches some journaled decisions
					n := rnd.IntN(len(inFlight) + 1)
					for _, e := range inFlight[:n] {
						fold(e)
					}
					inFlight = inFlight[n:]
					pending = pending[n:]
				}
			}
			for _, e := range inFlight {
				fold(e)
			}
			var runs [2]*Fold
			for k := range runs {
				runs[k] = NewFold(Config{})
				for off, e := range log {
					runs[k].Apply(e, 0, int64(off))
				}
				if len(runs[k].Oversold) > 0 {
					t.Fatalf("replay %d: oversold %v", k, runs[k].Oversold)
				}
			}
			for id, st := range answered {
				for k := range runs {
					if got := runs[k].Decisions[id+"|L1|S"]; got != st {
						t.Fatalf("replay %d: hold %s %q, answered %q", k, id, got, st)
					}
				}
			}
			if runs[0].Positions("S")["L1"] != runs[1].Positions("S")["L1"] || runs[0].Positions("S")["L1"] != live.Positions()["L1"] {
				t.Fatalf("replays differ: %+v %+v live %+v", runs[0].Positions("S")["L1"], runs[1].Positions("S")["L1"], live.Positions()["L1"])
			}
		})
	}
}
