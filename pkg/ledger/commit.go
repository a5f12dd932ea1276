package ledger

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/stockflow/stockflow/atp"
)

// Promise is what an order line at a location is promised: the part of its
// open quantity stock on hand confirms now, the rest by the days dated
// supply covers it, and what no known supply covers (docs/design.md §5.11).
type Promise struct {
	Open       int64 // the quantity the line still needs: its reservation
	Confirmed  int64 // covered by stock on hand now
	ByDay      []DayQuantity
	Unpromised int64 // covered by no known supply
}

// DayQuantity is a quantity promised for a day (days since the Unix epoch).
type DayQuantity struct {
	Day      int64
	Quantity int64
}

// Late reports whether p leaves units uncovered at some day that q had
// covered by then (or leaves more unpromised): the change a planner is
// told about.
func (p Promise) Late(q Promise) bool { return p.LateUnits(q) > 0 }

// LateUnits is the most units p leaves uncovered by some day that q had
// covered by then, counting now and "ever" (unpromised) as days; 0 when p
// covers as much as q by every day.
func (p Promise) LateUnits(q Promise) int64 {
	late := max(p.shortBy(-1)-q.shortBy(-1), p.shortBy(math.MaxInt64)-q.shortBy(math.MaxInt64), 0)
	for _, ds := range [2][]DayQuantity{p.ByDay, q.ByDay} {
		for _, d := range ds {
			late = max(late, p.shortBy(d.Day)-q.shortBy(d.Day))
		}
	}
	return late
}

// shortBy is what p leaves uncovered by day d: d < 0 is now, MaxInt64 ever.
func (p Promise) shortBy(d int64) int64 {
	if d == math.MaxInt64 {
		return p.Unpromised
	}
	covered := p.Confirmed
	for _, x := range p.ByDay {
		if x.Day <= d {
			covered += x.Quantity
		}
	}
	return p.Open - covered
}

// encode is the promise as the line stores it: "open;confirmed;unpromised"
// then ";day:quantity" per day.
func (p Promise) encode() string { return string(p.appendEncoded(nil)) }

func (p Promise) appendEncoded(b []byte) []byte {
	b = strconv.AppendInt(b, p.Open, 10)
	b = append(b, ';')
	b = strconv.AppendInt(b, p.Confirmed, 10)
	b = append(b, ';')
	b = strconv.AppendInt(b, p.Unpromised, 10)
	for _, d := range p.ByDay {
		b = append(b, ';')
		b = strconv.AppendInt(b, d.Day, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, d.Quantity, 10)
	}
	return b
}

// ParsePromise reads a promise as a line stores it; ok is false for an
// empty or damaged one.
func ParsePromise(s string) (p Promise, ok bool) {
	parts := strings.Split(s, ";")
	if s == "" || len(parts) < 3 {
		return Promise{}, false
	}
	var err error
	for i, dst := range []*int64{&p.Open, &p.Confirmed, &p.Unpromised} {
		if *dst, err = strconv.ParseInt(parts[i], 10, 64); err != nil {
			return Promise{}, false
		}
	}
	for _, d := range parts[3:] {
		day, q, found := strings.Cut(d, ":")
		dq := DayQuantity{}
		if dq.Day, err = strconv.ParseInt(day, 10, 64); err != nil || !found {
			return Promise{}, false
		}
		if dq.Quantity, err = strconv.ParseInt(q, 10, 64); err != nil {
			return Promise{}, false
		}
		p.ByDay = append(p.ByDay, dq)
	}
	return p, true
}

// Commitment is an order line whose promise a fold changed.
type Commitment struct {
	OrderID, LineID, Location, Channel string
	// Before is the promise last published (Had false: none yet).
	Before Promise
	Had    bool
	After  Promise
	// LateUnits is After.LateUnits(Before), 0 for a first promise.
	LateUnits int64
}

// Recommit promises the open order lines at loc again and returns those
// whose promise changed, storing each new promise on its line (it is saved
// with the state). The rule:
//
//   - Lines are served in priority order: the time their order was
//     accepted, then order id, then line id.
//   - Stock on hand and not picked confirms lines first, whole or in part;
//     holds and safety stock come after the orders already taken.
//   - What stock does not cover is promised against the open supply the
//     policy counts, day by day, earliest first: each day's supply to the
//     first lines still short.
//   - The rest is unpromised.
//
// The promise is a function of the ledger alone, never of the clock: a
// supply day already past stays that day (the promise is overdue), so a
// rebuild from the log reaches the same promises. A line against a group
// is promised once it is allocated to a location; a line that needs
// nothing more (shipped, picked in full, cancelled) gets a last promise of
// nothing open, then none.
func (s *State) Recommit(loc string, policy atp.SupplyPolicy) []Commitment {
	p := s.pos[loc]
	if p == nil {
		return nil
	}
	lines := s.linesAt(loc)
	if len(lines) == 0 {
		return nil
	}
	now := max(p.OnHand-p.Picked, 0)
	days := supplyByDay(p.openSupply(), policy)
	var out []Commitment
	// A line's promise is worked out in scratch space and compared with the
	// stored one as bytes: most lines keep theirs, at no allocation.
	var byDay []DayQuantity
	var enc []byte
	for _, l := range lines {
		open, _ := lineContrib(l)
		after := Promise{Open: open, Confirmed: min(open, now), ByDay: byDay[:0]}
		now -= after.Confirmed
		after.Unpromised = promiseFromSupply(&after, days, open-after.Confirmed)
		byDay = after.ByDay
		enc = enc[:0]
		if open > 0 { // nothing open: no promise kept
			enc = after.appendEncoded(enc)
		}
		if string(enc) == l.Promise {
			continue
		}
		after.ByDay = slices.Clone(after.ByDay)
		before, had := ParsePromise(l.Promise)
		l.Promise = string(enc)
		mark(&s.d.lines, l.OrderID+"|"+l.LineID)
		cm := Commitment{OrderID: l.OrderID, LineID: l.LineID, Location: loc, Channel: l.Channel, Before: before, Had: had, After: after}
		if had {
			cm.LateUnits = after.LateUnits(before)
		}
		out = append(out, cm)
	}
	return out
}

// promiseFromSupply promises short units of p against days, earliest first,
// taking what it promises from them, and returns what they do not cover.
func promiseFromSupply(p *Promise, days []DayQuantity, short int64) int64 {
	for i := range days {
		if short == 0 {
			break
		}
		q := min(short, days[i].Quantity)
		if q == 0 {
			continue
		}
		days[i].Quantity -= q
		short -= q
		p.ByDay = append(p.ByDay, DayQuantity{Day: days[i].Day, Quantity: q})
	}
	return short
}

// linesAt are the lines at loc that need a promise or had one, in
// priority order.
func (s *State) linesAt(loc string) []*OrderLine {
	var out []*OrderLine
	for _, l := range s.lines {
		if l.Location != loc {
			continue
		}
		if open, _ := lineContrib(l); open > 0 || l.Promise != "" {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b *OrderLine) int {
		return cmp.Or(cmp.Compare(a.At, b.At), strings.Compare(a.OrderID, b.OrderID), strings.Compare(a.LineID, b.LineID))
	})
	return out
}

// supplyByDay sums the supply the policy counts by day, earliest first.
func supplyByDay(supply []atp.Supply, policy atp.SupplyPolicy) []DayQuantity {
	var out []DayQuantity
	for _, sp := range supply { // sorted by date
		if !policy.Counts(sp.Kind) || sp.Quantity <= 0 {
			continue
		}
		day := sp.Date.Unix() / 86400
		if n := len(out); n > 0 && out[n-1].Day == day {
			out[n-1].Quantity += sp.Quantity
			continue
		}
		out = append(out, DayQuantity{Day: day, Quantity: sp.Quantity})
	}
	return out
}

// PromiseHistory is how many of its last promises an order line keeps.
const PromiseHistory = 5

// PromiseChange is a promise a line was given, with the ledger entry after
// which it was.
type PromiseChange struct {
	Promise   string `json:"pr"` // as Promise.encode, "" for nothing open
	EventID   string `json:"e"`
	EntryType string `json:"ty"`
	At        int64  `json:"t"` // the entry's event time, ms
}

// Remember keeps, on each line of cms, its new promise with the entry that
// caused it, dropping the oldest past PromiseHistory.
func (s *State) Remember(cms []Commitment, eventID, entryType string, at int64) {
	for _, cm := range cms {
		l := s.lines[cm.OrderID+"|"+cm.LineID]
		if l == nil {
			continue
		}
		h := append(l.History, PromiseChange{Promise: l.Promise, EventID: eventID, EntryType: entryType, At: at})
		if n := len(h) - PromiseHistory; n > 0 {
			h = append(h[:0:0], h[n:]...)
		}
		l.History = h
	}
}
