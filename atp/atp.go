// Package atp is the available-to-promise engine: pure functions over ledger
// positions and policies. It does no I/O; the API feeds it what the ledger
// holds and answers with what it computes.
//
//	location ATP(t) = on_hand − reserved − picked − held − safety_stock + Σ inbound due by t
//	group ATP(t)    = Σ max(location ATP(t), 0) − unallocated group demand
//
// Today's ATP counts no inbound: a unit is promisable today only when it is
// on hand. A supply line past its date and not yet received counts from
// tomorrow.
//
// See docs/design.md §8.
package atp

import (
	"sort"
	"time"
)

// Kind is how firm a supply line is.
type Kind int

// Supply kinds, from least to most firm.
const (
	Released     Kind = iota // a released purchase order line
	Acknowledged             // acknowledged by the supplier
	ASN                      // on an advance ship notice
)

func (k Kind) String() string {
	switch k {
	case Released:
		return "released"
	case Acknowledged:
		return "acknowledged"
	case ASN:
		return "asn"
	}
	return "unknown"
}

// Supply is quantity expected on a day.
type Supply struct {
	Kind     Kind
	Date     time.Time // the day it is expected (UTC midnight)
	Quantity int64
}

// Position is one SKU's ledger totals at one location, with its open supply.
type Position struct {
	OnHand, Reserved, Picked, Held, SafetyStock int64
	Inbound                                     []Supply
}

// Hold is stock set aside for a checkout until it expires.
type Hold struct {
	ID       string // the hold's id in the ledger, where known
	Quantity int64
	Expires  int64  // ms since the epoch
	Channel  string // the sales channel it was placed for, if any
}

// Lapsed reports whether a hold that expires at exp has stopped holding
// stock at now (both ms since the epoch): a hold holds until its expiry, not
// at it. The ledger expires holds by this rule at entry time, and lookups
// leave out the lapsed ones by it at their own time, before the ledger has
// expired them.
func Lapsed(exp, now int64) bool { return exp <= now }

// Held is the quantity the holds still hold at now (ms since the epoch).
func Held(holds []Hold, now int64) int64 {
	var n int64
	for _, h := range holds {
		if !Lapsed(h.Expires, now) {
			n += h.Quantity
		}
	}
	return n
}

// HeldBy is the quantity channel's holds still hold at now (ms since the
// epoch): what its cap counts (ChannelRules.ForChannelHolding).
func HeldBy(holds []Hold, channel string, now int64) int64 {
	var n int64
	for _, h := range holds {
		if h.Channel == channel && !Lapsed(h.Expires, now) {
			n += h.Quantity
		}
	}
	return n
}

// SupplyPolicy says which supply kinds count toward future ATP. The zero
// value counts none; use AllSupply for the default.
type SupplyPolicy struct {
	Released, Acknowledged, ASN bool
}

// AllSupply counts every kind of supply.
var AllSupply = SupplyPolicy{Released: true, Acknowledged: true, ASN: true}

// Counts reports whether the policy counts kind k.
func (p SupplyPolicy) Counts(k Kind) bool {
	switch k {
	case Released:
		return p.Released
	case Acknowledged:
		return p.Acknowledged
	case ASN:
		return p.ASN
	}
	return false
}

// Day truncates t to its UTC day.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Raw is today's location ATP before clamping.
func (p Position) Raw() int64 {
	return p.OnHand - p.Reserved - p.Picked - p.Held - p.SafetyStock
}

// Today is what a caller sees for today: ATP never below zero, and the
// shortfall reported separately.
func (p Position) Today() (atp, shortfall int64) {
	return Clamp(p.Raw())
}

// Clamp splits a raw ATP into the non-negative figure callers see and the shortfall.
func Clamp(raw int64) (atp, shortfall int64) {
	if raw < 0 {
		return 0, -raw
	}
	return raw, 0
}

// due is the day a supply line counts from: its date, but never before
// tomorrow (today counts no inbound; an overdue line may still come).
func due(s Supply, today time.Time) time.Time {
	d := Day(s.Date)
	if tomorrow := today.AddDate(0, 0, 1); d.Before(tomorrow) {
		return tomorrow
	}
	return d
}

// RawAt is the raw location ATP on day at, counting the supply the policy
// allows that is due by then.
func (p Position) RawAt(at, today time.Time, policy SupplyPolicy) int64 {
	at, today = Day(at), Day(today)
	raw := p.Raw()
	if !at.After(today) {
		return raw
	}
	for _, s := range p.Inbound {
		if s.Quantity > 0 && policy.Counts(s.Kind) && !due(s, today).After(at) {
			raw += s.Quantity
		}
	}
	return raw
}

// Bucket is inbound quantity due on a day.
type Bucket struct {
	Date     time.Time
	Quantity int64
}

// Buckets groups the counted supply by the day it is due, earliest first.
func (p Position) Buckets(today time.Time, policy SupplyPolicy) []Bucket {
	if len(p.Inbound) == 0 {
		return nil // most positions: nothing to group, nothing to allocate
	}
	today = Day(today)
	by := map[time.Time]int64{}
	for _, s := range p.Inbound {
		if s.Quantity > 0 && policy.Counts(s.Kind) {
			by[due(s, today)] += s.Quantity
		}
	}
	out := make([]Bucket, 0, len(by))
	for d, q := range by {
		out = append(out, Bucket{Date: d, Quantity: q})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Date.Before(out[j].Date) })
	return out
}

// PromiseDate is the earliest day on or after today when ATP covers q, and
// false when counted supply never covers it.
func (p Position) PromiseDate(q int64, today time.Time, policy SupplyPolicy) (time.Time, bool) {
	today = Day(today)
	raw := p.Raw()
	if raw >= q {
		return today, true
	}
	for _, b := range p.Buckets(today, policy) {
		raw += b.Quantity
		if raw >= q {
			return b.Date, true
		}
	}
	return time.Time{}, false
}

// Group is the ATP of a distribution group from its members' raw location
// ATPs: a location short of stock does not take from the others, and demand
// not yet allocated to a location comes off the total.
func Group(members []int64, unallocated int64) int64 {
	var sum int64
	for _, m := range members {
		sum += max(m, 0)
	}
	return sum - unallocated
}
