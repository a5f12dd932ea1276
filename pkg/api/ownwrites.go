package api

import (
	"context"
	"sync"
	"time"

	"github.com/stockflow/stockflow/pkg/ledger"
)

// ownWrites remembers, per position, the version a write this instance has
// been told of brought it to (the hold decisions it receives), for as long
// as the lookup cache may still hold an answer from before that write. Its
// lookups of the position insist on that version, so a checkout that has
// just been answered 201 sees its hold in the next lookup, whatever the
// invalidation's delay.
type ownWrites struct {
	keep time.Duration

	mu    sync.RWMutex
	m     map[string]ownWrite // sku|location
	swept int                 // size after the last sweep
}

type ownWrite struct {
	version int64
	until   time.Time
}

func newOwnWrites(keep time.Duration) *ownWrites {
	return &ownWrites{keep: keep, m: map[string]ownWrite{}}
}

// saw records that the position is at version at least, as of now.
func (o *ownWrites) saw(sku, loc string, version int64, now time.Time) {
	k := sku + "|" + loc
	o.mu.Lock()
	defer o.mu.Unlock()
	if w, ok := o.m[k]; ok && w.version > version {
		version = w.version
	}
	o.m[k] = ownWrite{version: version, until: now.Add(o.keep)}
	if len(o.m) > 2*o.swept+64 {
		for k, w := range o.m {
			if now.After(w.until) {
				delete(o.m, k)
			}
		}
		o.swept = len(o.m)
	}
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
	return ch.cfg.Store.Lookup(ctx, reqs, now)
}
