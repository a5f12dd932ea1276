package ledger

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/stockflow/stockflow/pkg/events"
)

// Fold is an in-memory fold of the ledger log with the same semantics as
// apply.lua, written independently in Go. stockflow verify folds the log
// with it and compares the result with Redis; tests use it as the
// reference the Redis ledger must equal.
type Fold struct {
	cfg  Config
	skus map[string]*foldSKU
	// Decisions records every hold decision: "hold|sku|location" -> status.
	Decisions map[string]string
	// Oversold lists holds accepted beyond ATP; by construction it stays
	// empty, and verify reports it if not.
	Oversold []string
}

type foldSKU struct {
	w       map[int32]int64
	seen    map[string]int64 // dedupe id -> event time (ms)
	seenMin int64
	pos     map[string]*Components
	ct      map[string]int64 // last count as-of per location (ms)
	journal map[string][]journalEntry
	group   map[string]int64 // unallocated demand per group
	lines   map[string]*foldLine
	po      map[string]*foldPO
	holds   map[string]*Hold // hold|location
	// LastOffset per partition: what the SKU's watermark must be.
	last map[int32]int64
}

type journalEntry struct {
	et    int64
	id    string
	delta int64
}

type foldLine struct {
	loc, grp   string
	o, p, s    int64
	cancelled  bool
	hasLoc     bool
	hasGroup   bool
	channelSet string
}

type foldPO struct {
	loc       string
	q, r      int64
	st        string
	aq        int64
	asn       map[string]int64
	closed    bool
	ed, ad    int64
	eta       int64
	hasStatus bool
}

// NewFold returns an empty fold.
func NewFold(cfg Config) *Fold {
	cfg.setDefaults()
	return &Fold{cfg: cfg, skus: map[string]*foldSKU{}, Decisions: map[string]string{}}
}

func (f *Fold) sku(s string) *foldSKU {
	x, ok := f.skus[s]
	if !ok {
		x = &foldSKU{w: map[int32]int64{}, seen: map[string]int64{}, pos: map[string]*Components{}, ct: map[string]int64{},
			journal: map[string][]journalEntry{}, group: map[string]int64{}, lines: map[string]*foldLine{},
			po: map[string]*foldPO{}, holds: map[string]*Hold{}, last: map[int32]int64{}}
		f.skus[s] = x
	}
	return x
}

func (x *foldSKU) p(loc string) *Components {
	c, ok := x.pos[loc]
	if !ok {
		c = &Components{}
		x.pos[loc] = c
	}
	return c
}

// Apply folds one entry read at partition/offset of the log.
func (f *Fold) Apply(e *events.LedgerEntry, partition int32, offset int64) string {
	x := f.sku(e.SKU)
	if w, ok := x.w[partition]; ok && offset <= w {
		return "stale"
	}
	x.w[partition] = offset
	x.last[partition] = offset
	et := e.EventTime.UnixMilli()
	id := DedupeID(e)
	if _, dup := x.seen[id]; dup {
		if e.EntryType == events.EntryHold {
			return f.hold(x, e, et)
		}
		return "dup"
	}
	if len(x.seen) == 0 || et < x.seenMin {
		x.seenMin = et
	}
	x.seen[id] = et
	x.pruneSeen(et - f.cfg.DedupeWindow.Milliseconds())
	x.purgeHolds(et)
	loc := ""
	if e.Location != nil {
		loc = *e.Location
	}
	status := "ok"
	switch e.EntryType {
	case events.EntryReceipt:
		status = f.movement(x, loc, e.Quantity, et, partition, offset)
		if e.PONumber != nil && e.POLine != nil {
			x.updatePO(e, func(l *foldPO) {
				if l.loc == "" {
					l.loc = loc
				}
				l.r += e.Quantity
			})
		}
	case events.EntryAdjustment:
		status = f.movement(x, loc, e.Quantity, et, partition, offset)
	case events.EntryShipment:
		status = f.movement(x, loc, -e.Quantity, et, partition, offset)
		x.updateLine(e, func(l *foldLine) {
			if !l.hasLoc {
				l.loc, l.hasLoc = loc, true
			}
			l.s += e.Quantity
		})
	case events.EntryPick:
		x.p(loc)
		x.updateLine(e, func(l *foldLine) {
			if !l.hasLoc {
				l.loc, l.hasLoc = loc, true
			}
			l.p += e.Quantity
		})
	case events.EntryCount:
		status = f.count(x, loc, e.Quantity, e.AsOf.UnixMilli())
	case events.EntryOrderLine:
		if e.HoldID != nil && e.Location != nil {
			x.releaseHold(*e.HoldID+"|"+loc, "converted")
		}
		x.updateLine(e, func(l *foldLine) {
			l.o = e.Quantity
			if e.Location != nil {
				l.loc, l.hasLoc = loc, true
			} else if !l.hasLoc && e.Group != nil {
				l.grp, l.hasGroup = *e.Group, true
			}
		})
	case events.EntryOrderCancel:
		x.updateLine(e, func(l *foldLine) { l.cancelled = true })
	case events.EntryOrderAllocate:
		x.updateLine(e, func(l *foldLine) { l.loc, l.hasLoc = loc, true })
	case events.EntryPOLine:
		x.updatePO(e, func(l *foldPO) {
			l.loc, l.q = loc, e.Quantity
			if e.ExpectedDate != nil {
				l.ed = dayNum(*e.ExpectedDate)
			}
		})
	case events.EntryPOAck:
		x.updatePO(e, func(l *foldPO) {
			if l.loc == "" {
				l.loc = loc
			}
			l.st, l.hasStatus, l.aq = deref(e.Status), e.Status != nil, e.Quantity
			if e.ExpectedDate != nil {
				l.ad = dayNum(*e.ExpectedDate)
			}
		})
	case events.EntryASNLine:
		x.updatePO(e, func(l *foldPO) {
			if l.loc == "" {
				l.loc = loc
			}
			if l.asn == nil {
				l.asn = map[string]int64{}
			}
			l.asn[deref(e.ASNID)] = e.Quantity
			if e.ETA != nil {
				l.eta = e.ETA.UnixMilli()
			}
		})
	case events.EntryPOClose:
		x.updatePO(e, func(l *foldPO) { l.closed = true })
	case events.EntryItemPolicy, events.EntryPolicy:
		c := x.p(loc)
		if e.SafetyStock != nil {
			c.SafetyStock = *e.SafetyStock
		}
		if e.ReorderPoint != nil {
			c.ReorderPoint = *e.ReorderPoint
		}
	case events.EntryHold:
		status = f.hold(x, e, et)
	case events.EntryHoldRelease:
		x.releaseHold(deref(e.HoldID)+"|"+loc, "released")
	default:
		status = "unknown"
	}
	return status
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func dayNum(t time.Time) int64 { return t.UTC().Truncate(24*time.Hour).Unix() / 86400 }

func (x *foldSKU) pruneSeen(before int64) {
	if len(x.seen) == 0 || x.seenMin >= before {
		return
	}
	x.seenMin = 1<<63 - 1
	for id, et := range x.seen {
		if et < before {
			delete(x.seen, id)
		} else if et < x.seenMin {
			x.seenMin = et
		}
	}
}

func (f *Fold) movement(x *foldSKU, loc string, d, et int64, partition int32, offset int64) string {
	c := x.p(loc)
	if ct, ok := x.ct[loc]; ok && et <= ct {
		return "absorbed"
	}
	c.OnHand += d
	j := append(x.journal[loc], journalEntry{et: et, id: fmt.Sprintf("%d:%d:%d", partition, offset, d), delta: d})
	cut := et - f.cfg.JournalWindow.Milliseconds()
	kept := j[:0]
	for _, je := range j {
		if je.et >= cut {
			kept = append(kept, je)
		}
	}
	x.journal[loc] = kept
	return "ok"
}

func (f *Fold) count(x *foldSKU, loc string, q, asOf int64) string {
	c := x.p(loc)
	if ct, ok := x.ct[loc]; ok && asOf <= ct {
		return "ignored"
	}
	var sum int64
	kept := x.journal[loc][:0]
	for _, je := range x.journal[loc] {
		if je.et > asOf {
			sum += je.delta
			kept = append(kept, je)
		}
	}
	x.journal[loc] = kept
	delta := q + sum - c.OnHand
	c.OnHand += delta
	x.ct[loc] = asOf
	return "counted:" + strconv.FormatInt(delta, 10)
}

func lineContrib(l *foldLine) (reserved, picked int64) {
	if !l.cancelled {
		reserved = max(l.o-max(l.p, l.s), 0)
	}
	return reserved, max(l.p-l.s, 0)
}

func (x *foldSKU) lineDelta(l *foldLine, sign int64) {
	if l == nil {
		return
	}
	res, pk := lineContrib(l)
	switch {
	case l.hasLoc:
		c := x.p(l.loc)
		c.Reserved += sign * res
		c.Picked += sign * pk
	case l.hasGroup:
		x.group[l.grp] += sign * res
	}
}

func (x *foldSKU) updateLine(e *events.LedgerEntry, fn func(*foldLine)) {
	key := deref(e.OrderID) + "|" + deref(e.LineID)
	before := x.lines[key]
	var after foldLine
	if before != nil {
		after = *before
	}
	fn(&after)
	x.lineDelta(before, -1)
	x.lineDelta(&after, 1)
	x.lines[key] = &after
}

func poOpen(l *foldPO) int64 {
	if l == nil || l.loc == "" {
		return 0
	}
	eff := l.q
	switch {
	case l.closed || l.st == "REJECTED":
		eff = 0
	case l.asn != nil:
		eff = 0
		for _, q := range l.asn {
			eff += q
		}
	case l.hasStatus:
		eff = l.aq
	}
	return max(eff-l.r, 0)
}

func (x *foldSKU) updatePO(e *events.LedgerEntry, fn func(*foldPO)) {
	key := deref(e.PONumber) + "|" + strconv.Itoa(int(*e.POLine))
	before := x.po[key]
	var after foldPO
	if before != nil {
		after = *before
		if before.asn != nil {
			after.asn = make(map[string]int64, len(before.asn))
			for k, v := range before.asn {
				after.asn[k] = v
			}
		}
	}
	fn(&after)
	if before != nil && before.loc != "" {
		x.p(before.loc).Inbound -= poOpen(before)
	}
	if after.loc != "" {
		x.p(after.loc).Inbound += poOpen(&after)
	}
	x.po[key] = &after
}

func (x *foldSKU) purgeHolds(t int64) {
	for k, h := range x.holds {
		if h.Status == "held" && h.ExpMillis <= t {
			x.p(h.Location).Held -= h.Quantity
			h.Status = "expired"
			_ = k
		}
	}
}

func (x *foldSKU) releaseHold(key, status string) {
	if h, ok := x.holds[key]; ok && h.Status == "held" {
		x.p(h.Location).Held -= h.Quantity
		h.Status = status
	}
}

func (f *Fold) hold(x *foldSKU, e *events.LedgerEntry, et int64) string {
	loc := deref(e.Location)
	key := deref(e.HoldID) + "|" + loc
	if h, ok := x.holds[key]; ok {
		return h.Status + ":" + strconv.FormatInt(h.ATP, 10)
	}
	c := x.p(loc)
	atpNow := c.OnHand - c.Reserved - c.Picked - c.Held - c.SafetyStock
	var status string
	if atpNow >= e.Quantity {
		c.Held += e.Quantity
		ttl := int64(0)
		if e.TTLMillis != nil {
			ttl = *e.TTLMillis
		}
		x.holds[key] = &Hold{HoldID: deref(e.HoldID), Location: loc, Quantity: e.Quantity, ExpMillis: et + ttl, Status: "held", ATP: atpNow - e.Quantity}
		status = "held:" + strconv.FormatInt(atpNow-e.Quantity, 10)
		if c.OnHand-c.Reserved-c.Picked-c.Held-c.SafetyStock < 0 {
			f.Oversold = append(f.Oversold, key)
		}
	} else {
		x.holds[key] = &Hold{HoldID: deref(e.HoldID), Location: loc, Quantity: e.Quantity, Status: "rejected", ATP: atpNow}
		status = "rejected:" + strconv.FormatInt(atpNow, 10)
	}
	f.Decisions[key+"|"+e.SKU] = x.holds[key].Status
	return status
}

// SKUs lists the folded SKUs, sorted.
func (f *Fold) SKUs() []string {
	out := make([]string, 0, len(f.skus))
	for s := range f.skus {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Positions returns the components of every location of sku.
func (f *Fold) Positions(sku string) map[string]Components {
	out := map[string]Components{}
	if x, ok := f.skus[sku]; ok {
		for l, c := range x.pos {
			out[l] = *c
		}
	}
	return out
}

// Watermarks returns, per partition, the last offset folded for sku.
func (f *Fold) Watermarks(sku string) map[int32]int64 {
	if x, ok := f.skus[sku]; ok {
		return x.last
	}
	return nil
}

// Holds returns the hold decisions of sku by hold|location.
func (f *Fold) Holds(sku string) map[string]Hold {
	out := map[string]Hold{}
	if x, ok := f.skus[sku]; ok {
		for k, h := range x.holds {
			out[k] = *h
		}
	}
	return out
}

// GroupDemand returns the fold's unallocated demand of sku in group.
func (f *Fold) GroupDemand(sku, group string) int64 {
	if x, ok := f.skus[sku]; ok {
		return x.group[group]
	}
	return 0
}
