package ledger

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/atp"
)

// LookupReq asks for one SKU at one location, or, with Group set and no
// Location, for the SKU's demand not yet allocated within a group.
type LookupReq struct {
	SKU, Location, Group string
	// MinVersion asks for the position at this version or a later one: an
	// answer from the lookup cache older than that is read again from Redis.
	// An instance sets it for a position whose write it has just been told
	// of (its own hold), so it never answers from before that write.
	MinVersion int64
}

// LookupResult is the ledger's answer for one LookupReq.
type LookupResult struct {
	Position
	Supply      []atp.Supply
	Holds       []atp.Hold // active when written; Held counts those still active at the lookup's time
	GroupDemand int64
	// Written is when the position was last written (zero when never).
	Written time.Time
}

// ATPPosition is the result as the ATP engine takes it.
func (r LookupResult) ATPPosition() atp.Position {
	return atp.Position{OnHand: r.OnHand, Reserved: r.Reserved, Picked: r.Picked, Held: r.Held, SafetyStock: r.SafetyStock, Inbound: r.Supply}
}

// UseCache makes lookups read through c, a client with client-side caching
// (see store.OpenCache): plain reads of the position hashes, answered from
// process memory until Redis invalidates them. Without it lookups read the
// store's own client, all of a call's reads in one pipelined round trip.
func (s *Store) UseCache(c redis.Cmdable) { s.cache = c }

// Lookup answers every request; Held counts only the holds still active at
// now. Through the cache, each position is one cached read: a call of several
// issues them at once, so the misses among them share a round trip (the
// cache coalesces concurrent misses on one connection). Without the cache,
// all of them go in one pipelined round trip.
func (s *Store) Lookup(ctx context.Context, reqs []LookupReq, now time.Time) ([]LookupResult, error) {
	out := make([]LookupResult, len(reqs))
	if len(reqs) == 0 {
		return out, nil
	}
	nowMs := now.UnixMilli()
	if now.IsZero() {
		nowMs = 0 // no hold has lapsed
	}
	if s.cache == nil {
		all := make([]int, len(reqs))
		for i := range all {
			all[i] = i
		}
		return out, s.lookupPipelined(ctx, reqs, all, out, nowMs)
	}
	if len(reqs) == 1 {
		if err := s.lookupOne(ctx, reqs[0], &out[0], nowMs); err != nil {
			return nil, err
		}
	} else {
		errs := make([]error, len(reqs))
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Go(func() { errs[i] = s.lookupOne(ctx, reqs[i], &out[i], nowMs) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	var again []int
	for i, r := range reqs {
		if r.Location != "" && out[i].Version < r.MinVersion {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		if err := s.lookupPipelined(ctx, reqs, again, out, nowMs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) groupKey(sku, group string) string { return s.SKUKey(sku) + ":g:" + group }

// lookupOne reads one request through the cache.
func (s *Store) lookupOne(ctx context.Context, r LookupReq, out *LookupResult, nowMs int64) error {
	if r.Location == "" {
		n, err := s.cache.HGet(ctx, s.groupKey(r.SKU, r.Group), "rs").Int64()
		if err != nil && err != redis.Nil {
			return fmt.Errorf("lookup group demand %s@%s: %w", r.SKU, r.Group, err)
		}
		out.GroupDemand = n
		return nil
	}
	m, err := s.cache.HGetAll(ctx, s.posKey(r.SKU, r.Location)).Result()
	if err != nil {
		return fmt.Errorf("lookup %s@%s: %w", r.SKU, r.Location, err)
	}
	if *out, err = parsePosition(m, nowMs); err != nil {
		return fmt.Errorf("lookup %s@%s: %w", r.SKU, r.Location, err)
	}
	return nil
}

// lookupPipelined reads the requests at idx from the store's own client,
// past any cache, in one round trip.
func (s *Store) lookupPipelined(ctx context.Context, reqs []LookupReq, idx []int, out []LookupResult, nowMs int64) error {
	pipe := s.rdb.Pipeline()
	pos := make([]*redis.MapStringStringCmd, len(reqs))
	demands := make([]*redis.StringCmd, len(reqs))
	for _, i := range idx {
		r := reqs[i]
		if r.Location == "" {
			demands[i] = pipe.HGet(ctx, s.groupKey(r.SKU, r.Group), "rs")
			continue
		}
		pos[i] = pipe.HGetAll(ctx, s.posKey(r.SKU, r.Location))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil { // Nil: only an absent group demand
		return fmt.Errorf("lookup: %w", err)
	}
	for _, i := range idx {
		if pos[i] == nil {
			out[i].GroupDemand, _ = demands[i].Int64()
			continue
		}
		r, err := parsePosition(pos[i].Val(), nowMs)
		if err != nil {
			return fmt.Errorf("lookup %s@%s: %w", reqs[i].SKU, reqs[i].Location, err)
		}
		out[i] = r
	}
	return nil
}

// parsePosition reads a position hash (see the key layout in persist.go).
func parsePosition(m map[string]string, nowMs int64) (LookupResult, error) {
	var r LookupResult
	for f, v := range m {
		if b, ok := strings.CutPrefix(f, supplyField); ok {
			s, err := parseSupply(b, v)
			if err != nil {
				return r, err
			}
			if s.Quantity > 0 {
				r.Supply = append(r.Supply, s)
			}
			continue
		}
		if _, ok := strings.CutPrefix(f, holdField); ok {
			q, exp, ok := strings.Cut(v, ":")
			h := atp.Hold{}
			var err1, err2 error
			h.Quantity, err1 = strconv.ParseInt(q, 10, 64)
			h.Expires, err2 = strconv.ParseInt(exp, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				return r, fmt.Errorf("hold field %s=%q", f, v)
			}
			r.Holds = append(r.Holds, h)
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return r, fmt.Errorf("position field %s=%q", f, v)
		}
		switch f {
		case "oh":
			r.OnHand = n
		case "rs":
			r.Reserved = n
		case "pk":
			r.Picked = n
		case "ib":
			r.Inbound = n
		case "ss":
			r.SafetyStock = n
		case "rop":
			r.ReorderPoint = n
		case "v":
			r.Version = n
		case "at":
			r.Written = time.UnixMilli(n).UTC()
		}
	}
	r.Held = atp.Held(r.Holds, nowMs)
	slices.SortFunc(r.Supply, func(a, b atp.Supply) int {
		if c := a.Date.Compare(b.Date); c != 0 {
			return c
		}
		return int(a.Kind) - int(b.Kind)
	})
	return r, nil
}

// parseSupply reads a supply bucket, "kind|day" and its quantity.
func parseSupply(bucket, qty string) (atp.Supply, error) {
	kind, day, _ := strings.Cut(bucket, "|")
	d, err1 := strconv.ParseInt(day, 10, 64)
	n, err2 := strconv.ParseInt(qty, 10, 64)
	if err1 != nil || err2 != nil {
		return atp.Supply{}, fmt.Errorf("supply field %s=%q", bucket, qty)
	}
	s := atp.Supply{Kind: atp.Released, Date: dayOf(d), Quantity: n}
	switch kind {
	case "asn":
		s.Kind = atp.ASN
	case "ack":
		s.Kind = atp.Acknowledged
	}
	return s, nil
}

// Supply is the line as the ATP engine sees it: its firmest kind and the
// date that kind gives. False when nothing is expected.
func (l POLine) Supply() (atp.Supply, bool) {
	q := l.Open()
	if q <= 0 {
		return atp.Supply{}, false
	}
	s := atp.Supply{Kind: atp.Released, Date: dayOf(l.ExpectedDay), Quantity: q}
	switch {
	case l.ASN != nil && l.ETAMillis > 0:
		s.Kind, s.Date = atp.ASN, atp.Day(time.UnixMilli(l.ETAMillis))
	case l.Status != "":
		s.Kind = atp.Acknowledged
		if l.AckDay > 0 {
			s.Date = dayOf(l.AckDay)
		}
	}
	return s, true
}

func dayOf(days int64) time.Time { return time.Unix(days*86400, 0).UTC() }
