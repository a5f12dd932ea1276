package ledger

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
)

// commitFixture folds entries of SKU S at DC-1 one at a time, as the
// folder does, and records the promises each changes.
type commitFixture struct {
	t   *testing.T
	eng *Engine
	s   *State
	n   int64
	all []*events.LedgerEntry
}

func newCommitFixture(t *testing.T) *commitFixture {
	return &commitFixture{t: t, eng: NewEngine(Config{}), s: NewState("S")}
}

func day(d string) time.Time {
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		panic(err)
	}
	return t
}

func dayNumber(d string) int64 { return day(d).Unix() / 86400 }

// apply folds e and returns the changed promises, as "order/line: promise".
func (f *commitFixture) apply(e *events.LedgerEntry) []string {
	f.t.Helper()
	f.n++
	if e.EventID == "" {
		e.EventID = fmt.Sprint("e", f.n)
	}
	e.SKU, e.Source = "S", "test"
	if e.Location == nil && e.EntryType != events.EntryOrderCancel {
		e.Location = sp("DC-1")
	}
	if e.EventTime.IsZero() {
		e.EventTime = at(int(f.n))
	}
	f.all = append(f.all, e)
	f.eng.Apply(f.s, e, 0, f.n)
	var out []string
	for _, c := range f.s.Recommit("DC-1", atp.AllSupply) {
		out = append(out, c.OrderID+"/"+c.LineID+": "+describePromise(c.After))
	}
	slices.Sort(out)
	return out
}

// describePromise is a promise as the tests write it: "10 now, 5 on 2026-03-10, 2 unpromised".
func describePromise(p Promise) string {
	if p.Open == 0 {
		return "nothing open"
	}
	var parts []string
	if p.Confirmed > 0 {
		parts = append(parts, fmt.Sprint(p.Confirmed, " now"))
	}
	for _, d := range p.ByDay {
		parts = append(parts, fmt.Sprint(d.Quantity, " on ", time.Unix(d.Day*86400, 0).UTC().Format(time.DateOnly)))
	}
	if p.Unpromised > 0 {
		parts = append(parts, fmt.Sprint(p.Unpromised, " unpromised"))
	}
	return strings.Join(parts, ", ")
}

func (f *commitFixture) want(got []string, want ...string) {
	f.t.Helper()
	if !slices.Equal(got, want) {
		f.t.Errorf("promises changed:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func order(id string, q int64, min int) *events.LedgerEntry {
	return &events.LedgerEntry{EntryType: events.EntryOrderLine, OrderID: sp(id), LineID: sp("1"), Quantity: q, Channel: sp("web"), EventTime: at(min)}
}

func poLine(po string, q int64, d string) *events.LedgerEntry {
	return &events.LedgerEntry{EntryType: events.EntryPOLine, PONumber: sp(po), POLine: i32(1), Quantity: q, ExpectedDate: ptrTime(day(d))}
}

// Three orders backordered in the order they were taken, across two POs;
// an acknowledgement cutting the first PO re-promises exactly the later
// orders; a ship notice earlier than the PO's date brings promises
// forward; a cancelled order lets the next ones move up; the same entries
// again change nothing.
func TestCommitmentsFollowSupply(t *testing.T) {
	f := newCommitFixture(t)
	f.want(f.apply(&events.LedgerEntry{EntryType: events.EntryReceipt, Quantity: 10}))
	f.want(f.apply(poLine("PO-A", 20, "2026-03-10")))
	f.want(f.apply(poLine("PO-B", 30, "2026-03-20")))
	// Taken in this order, though they arrive otherwise: O3 is folded first.
	f.want(f.apply(order("O3", 20, 300)), "O3/1: 10 now, 10 on 2026-03-10")
	f.want(f.apply(order("O1", 15, 100)),
		"O1/1: 10 now, 5 on 2026-03-10",
		"O3/1: 15 on 2026-03-10, 5 on 2026-03-20")
	f.want(f.apply(order("O2", 20, 200)),
		"O2/1: 15 on 2026-03-10, 5 on 2026-03-20",
		"O3/1: 20 on 2026-03-20")

	// The supplier confirms only 8 of PO-A's 20: O1 keeps its promise, the
	// later two are re-promised, and what no supply covers is unpromised.
	f.want(f.apply(&events.LedgerEntry{EntryType: events.EntryPOAck, PONumber: sp("PO-A"), POLine: i32(1), Status: sp("CHANGED"), Quantity: 8, ExpectedDate: ptrTime(day("2026-03-10"))}),
		"O2/1: 3 on 2026-03-10, 17 on 2026-03-20",
		"O3/1: 13 on 2026-03-20, 7 unpromised")

	// PO-B ships early: its notice arrives before PO-A's date.
	f.want(f.apply(&events.LedgerEntry{EntryType: events.EntryASNLine, PONumber: sp("PO-B"), POLine: i32(1), ASNID: sp("ASN-1"), Quantity: 30, ETA: ptrTime(day("2026-03-05").Add(9 * time.Hour))}),
		"O1/1: 10 now, 5 on 2026-03-05",
		"O2/1: 20 on 2026-03-05",
		"O3/1: 5 on 2026-03-05, 8 on 2026-03-10, 7 unpromised")

	// O1 is cancelled: its promise ends, and the next orders move up.
	f.want(f.apply(&events.LedgerEntry{EntryType: events.EntryOrderCancel, OrderID: sp("O1"), LineID: sp("1"), Location: sp("DC-1")}),
		"O1/1: nothing open",
		"O2/1: 10 now, 10 on 2026-03-05",
		"O3/1: 20 on 2026-03-05")

	// The same events again (a replay, a redelivery): nothing is new.
	for _, e := range slices.Clone(f.all) {
		d := *e
		f.eng.Apply(f.s, &d, 0, f.n+1)
		if got := f.s.Recommit("DC-1", atp.AllSupply); len(got) != 0 {
			t.Errorf("replaying %s %s changed %d promises", e.EntryType, e.EventID, len(got))
		}
	}
}

// Stock arriving, a short receipt and a count that lowers on hand move
// promises both ways; a shipment that fills a line ends its promise.
func TestCommitmentsFollowStock(t *testing.T) {
	f := newCommitFixture(t)
	f.want(f.apply(poLine("PO-A", 10, "2026-04-01")))
	f.want(f.apply(order("O1", 6, 1)), "O1/1: 6 on 2026-04-01")
	f.want(f.apply(order("O2", 6, 2)), "O2/1: 4 on 2026-04-01, 2 unpromised")
	// Four of PO-A's ten arrive: confirmed now, the rest still due.
	f.want(f.apply(&events.LedgerEntry{EntryType: events.EntryReceipt, Quantity: 4, PONumber: sp("PO-A"), POLine: i32(1)}),
		"O1/1: 4 now, 2 on 2026-04-01")
	// A count finds one fewer: the first order keeps its place.
	f.want(f.apply(&events.LedgerEntry{EntryType: events.EntryCount, Quantity: 3, AsOf: ptrTime(at(100))}),
		"O1/1: 3 now, 3 on 2026-04-01",
		"O2/1: 3 on 2026-04-01, 3 unpromised")
	// O1 ships what is there, then the rest once it is.
	f.want(f.apply(&events.LedgerEntry{EntryType: events.EntryShipment, Quantity: 3, OrderID: sp("O1"), LineID: sp("1"), EventTime: at(200)}),
		"O1/1: 3 on 2026-04-01")
}

// A promise survives the state's round trip through Redis's encoding, and
// a damaged one reads as none.
func TestPromiseEncoding(t *testing.T) {
	p := Promise{Open: 12, Confirmed: 2, ByDay: []DayQuantity{{Day: dayNumber("2026-03-05"), Quantity: 7}, {Day: dayNumber("2026-03-10"), Quantity: 1}}, Unpromised: 2}
	got, ok := ParsePromise(p.encode())
	if !ok || describePromise(got) != describePromise(p) || got.Open != 12 {
		t.Errorf("%q read back as %+v, %v", p.encode(), got, ok)
	}
	for _, bad := range []string{"", "1;2", "1;x;3", "1;2;3;4", "1;2;3;4:x"} {
		if _, ok := ParsePromise(bad); ok {
			t.Errorf("%q read as a promise", bad)
		}
	}
	early := Promise{Open: 12, Confirmed: 4, ByDay: []DayQuantity{{Day: dayNumber("2026-03-05"), Quantity: 8}}}
	late := Promise{Open: 12, ByDay: []DayQuantity{{Day: dayNumber("2026-03-11"), Quantity: 12}}}
	short := Promise{Open: 12, Confirmed: 4, ByDay: []DayQuantity{{Day: dayNumber("2026-03-05"), Quantity: 7}}, Unpromised: 1}
	if !late.Late(early) || early.Late(late) || !short.Late(early) || early.Late(short) {
		t.Error("Late does not tell a later or shorter promise from an earlier one")
	}
	// Units moved to a later day within the same span are late too.
	before := Promise{Open: 20, ByDay: []DayQuantity{{Day: dayNumber("2026-03-10"), Quantity: 15}, {Day: dayNumber("2026-03-20"), Quantity: 5}}}
	after := Promise{Open: 20, ByDay: []DayQuantity{{Day: dayNumber("2026-03-10"), Quantity: 3}, {Day: dayNumber("2026-03-20"), Quantity: 17}}}
	if got := after.LateUnits(before); got != 12 {
		t.Errorf("12 units moved from the 10th to the 20th: %d late", got)
	}
	if got := before.LateUnits(after); got != 0 {
		t.Errorf("brought forward: %d late", got)
	}
	// A shipment lowering what is open is not lateness.
	shipped := Promise{Open: 10, ByDay: []DayQuantity{{Day: dayNumber("2026-03-10"), Quantity: 10}}}
	if shipped.Late(before) {
		t.Error("a line that shipped half is called late")
	}
}

// A line keeps its last promises with their causes, and they survive the
// line's JSON.
func TestPromiseHistory(t *testing.T) {
	f := newCommitFixture(t)
	f.apply(poLine("PO-A", 10, "2026-04-01"))
	f.apply(order("O1", 6, 1))
	for i := range PromiseHistory + 2 {
		e := &events.LedgerEntry{EntryType: events.EntryPOAck, PONumber: sp("PO-A"), POLine: i32(1), Status: sp("ACCEPTED"), Quantity: 10,
			ExpectedDate: ptrTime(day("2026-04-01").AddDate(0, 0, i+1)), EventID: fmt.Sprint("ack-", i)}
		f.eng.Apply(f.s, e, 0, f.n+int64(i)+1)
		cms := f.s.Recommit("DC-1", atp.AllSupply)
		f.s.Remember(cms, e.EventID, e.EntryType, int64(i))
	}
	l := f.s.lines["O1|1"]
	if len(l.History) != PromiseHistory {
		t.Fatalf("%d promises kept, want %d", len(l.History), PromiseHistory)
	}
	if h := l.History[len(l.History)-1]; h.EventID != fmt.Sprint("ack-", PromiseHistory+1) || h.Promise != l.Promise || h.EntryType != events.EntryPOAck {
		t.Errorf("the newest kept is %+v, the line's promise %q", h, l.Promise)
	}
	back := &OrderLine{}
	if err := json.Unmarshal(appendOrderLine(nil, l), back); err != nil {
		t.Fatalf("%s: %v", appendOrderLine(nil, l), err)
	}
	if !slices.Equal(back.History, l.History) || back.Promise != l.Promise || back.At != l.At {
		t.Errorf("read back %+v, want %+v", back, l)
	}
}
