package api

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// ownWrites remembers, per position, the version a write this instance has
// been told of brought it to (the hold decisions it receives), for as long
// as the lookup cache may still hold an answer from before that write. Its
// lookups of the position insist on that version, so a checkout that has
// just been answered 201 sees its hold in the next lookup, whatever the
// invalidation's delay (docs/design.md §9.4).
type ownWrites struct {
	keep time.Duration

	mu    sync.RWMutex
	m     map[string]ownWrite // sku|location
	swept int                 // size after the last sweep
}

type ownWrite struct {
	version int64
	until   time.Time
	// holds are the holds this instance answered "held" at the position
	// that no lookup has seen stored yet: a hold is answered as soon as
	// its partition's owner decides it, before the fold stores it.
	holds []ownHold
	// released are the holds this instance released at the position:
	// its lookups leave them out, stored or not.
	released []ownRelease
}

// ownHold and ownRelease are kept until their own deadline, however busy
// the position stays.
type ownHold struct {
	atp.Hold
	until time.Time
}

type ownRelease struct {
	id    string
	until time.Time
}

// prune drops what is past its deadline at now.
func (w *ownWrite) prune(now time.Time) {
	w.holds = slices.DeleteFunc(w.holds, func(h ownHold) bool { return now.After(h.until) })
	w.released = slices.DeleteFunc(w.released, func(r ownRelease) bool { return now.After(r.until) })
}

func (w *ownWrite) releasedID(id string) bool {
	return slices.ContainsFunc(w.released, func(r ownRelease) bool { return r.id == id })
}

func newOwnWrites(keep time.Duration) *ownWrites {
	return &ownWrites{keep: keep, m: map[string]ownWrite{}}
}

// saw records that the position is at version at least, as of now.
func (o *ownWrites) saw(sku, loc string, version int64, now time.Time) {
	k := sku + "|" + loc
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.m[k]
	w.version = max(w.version, version)
	if u := now.Add(o.keep); u.After(w.until) {
		w.until = u
	}
	o.m[k] = w
	if len(o.m) > 2*o.swept+64 {
		for k, w := range o.m {
			if now.After(w.until) {
				delete(o.m, k)
			}
		}
		o.swept = len(o.m)
	}
}

// held records that this instance answered h held at the position, so
// its lookups count h until they find it stored, for keep at most.
func (o *ownWrites) held(sku, loc string, h atp.Hold, now time.Time, keep time.Duration) {
	k := sku + "|" + loc
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.m[k]
	w.prune(now)
	w.holds = append(w.holds, ownHold{h, now.Add(keep)})
	if u := now.Add(keep); u.After(w.until) {
		w.until = u
	}
	o.m[k] = w
}

// release records that this instance released hold id at the position:
// its lookups leave the hold out from now on, for keep at most.
func (o *ownWrites) release(sku, loc, id string, now time.Time, keep time.Duration) {
	k := sku + "|" + loc
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.m[k]
	w.prune(now)
	w.holds = slices.DeleteFunc(w.holds, func(h ownHold) bool { return h.ID == id })
	if !w.releasedID(id) {
		w.released = append(w.released, ownRelease{id, now.Add(keep)})
	}
	if u := now.Add(keep); u.After(w.until) {
		w.until = u
	}
	o.m[k] = w
}

// overlay adds to r, the lookup of the position at now, the holds this
// instance answered that r does not show stored yet; those r shows are
// forgotten, the fold has them.
func (o *ownWrites) overlay(sku, loc string, r *ledger.LookupResult, now time.Time) {
	k := sku + "|" + loc
	o.mu.RLock()
	w, ok := o.m[k]
	n := len(w.holds) + len(w.released)
	o.mu.RUnlock()
	if !ok || n == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok = o.m[k]
	if !ok || now.After(w.until) {
		return
	}
	w.prune(now)
	changed := false
	if len(w.released) > 0 {
		r.Holds = slices.DeleteFunc(r.Holds, func(h atp.Hold) bool {
			gone := w.releasedID(h.ID)
			changed = changed || gone
			return gone
		})
	}
	w.holds = slices.DeleteFunc(w.holds, func(h ownHold) bool {
		if slices.ContainsFunc(r.Holds, func(s atp.Hold) bool { return s.ID == h.ID }) {
			return true
		}
		r.Holds = append(r.Holds, h.Hold)
		changed = true
		return false
	})
	o.m[k] = w
	if changed {
		r.Held = atp.Held(r.Holds, now.UnixMilli())
	}
}

// ledgerHolds is holds, the SKU's hold decisions as the ledger has them,
// with this instance's answers at loc that it lacks added and its releases
// marked released.
func (o *ownWrites) ledgerHolds(sku, loc string, holds []ledger.Hold, now time.Time) []ledger.Hold {
	o.mu.RLock()
	defer o.mu.RUnlock()
	w, ok := o.m[sku+"|"+loc]
	if !ok || now.After(w.until) {
		return holds
	}
	for _, h := range w.holds {
		if now.After(h.until) {
			continue
		}
		if !slices.ContainsFunc(holds, func(l ledger.Hold) bool { return l.HoldID == h.ID && l.Location == loc }) {
			holds = append(holds, ledger.Hold{HoldID: h.ID, Location: loc, Quantity: h.Quantity, ExpMillis: h.Expires, Status: ledger.HoldHeld, Channel: h.Channel})
		}
	}
	for i, l := range holds {
		if l.Location == loc && l.Status == ledger.HoldHeld && w.releasedID(l.HoldID) {
			holds[i].Status = ledger.HoldReleased
		}
	}
	return holds
}

// floor is the version a lookup of the position at now must see, or 0.
func (o *ownWrites) floor(sku, loc string, now time.Time) int64 {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if len(o.m) == 0 {
		return 0
	}
	w, ok := o.m[sku+"|"+loc]
	if !ok || now.After(w.until) {
		return 0
	}
	return w.version
}

// lookup reads the ledger for reqs, insisting on this instance's own writes.
func (ch *Checkout) lookup(ctx context.Context, reqs []ledger.LookupReq, now time.Time) ([]ledger.LookupResult, error) {
	for i, r := range reqs {
		if r.Location != "" {
			reqs[i].MinVersion = ch.own.floor(r.SKU, r.Location, now)
		}
	}
	res, err := ch.lookupLocalFirst(ctx, reqs, now)
	if err != nil {
		return nil, err
	}
	for i, r := range reqs {
		if r.Location != "" {
			ch.own.overlay(r.SKU, r.Location, &res[i], now)
		}
	}
	return res, nil
}

// lookupLocalFirst answers what it can from the folder's memory and reads
// the rest from the ledger in Redis, in one call.
func (ch *Checkout) lookupLocalFirst(ctx context.Context, reqs []ledger.LookupReq, now time.Time) ([]ledger.LookupResult, error) {
	if ch.cfg.Local == nil {
		return ch.cfg.Store.Lookup(ctx, reqs, now)
	}
	out := make([]ledger.LookupResult, len(reqs))
	var rest []ledger.LookupReq
	var at []int
	for i, r := range reqs {
		if r.Location != "" {
			if l, ok := ch.cfg.Local.Lookup(r.SKU, r.Location, now.UnixMilli()); ok && l.Version >= r.MinVersion {
				out[i] = l
				continue
			}
		}
		rest = append(rest, r)
		at = append(at, i)
	}
	if len(rest) == 0 {
		return out, nil
	}
	res, err := ch.cfg.Store.Lookup(ctx, rest, now)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = res[j]
	}
	return out, nil
}
