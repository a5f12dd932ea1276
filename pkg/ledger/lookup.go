package ledger

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
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

// Cache is a lookup cache (store.Cache): replies of plain reads held in
// process memory until Redis says their key changed.
type Cache interface {
	// Cached returns the cached RESP3 reply of the read command args, and
	// whether the cache had it, without going to Redis.
	Cached(ctx context.Context, args ...string) ([]byte, bool)
	// HGetAll and HGet read through the cache: a miss is read from Redis
	// and cached.
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	HGet(ctx context.Context, key, field string) *redis.StringCmd
	// Warm reads HGETALL key (HGET key field) into the cache in the background.
	Warm(key, field string)
}

// UseCache makes lookups look in c first. Without it every lookup reads
// Redis, all of a call's reads in one pipelined round trip.
func (s *Store) UseCache(c Cache) { s.cache = c }

// Lookup answers every request; Held counts only the holds still active at
// now. With a cache, what it holds is answered from memory; a single miss is
// read through it (and so cached), several misses are read together in one
// pipelined round trip and brought into the cache in the background.
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
	var miss []int
	for i, r := range reqs {
		if !s.fromCache(ctx, r, &out[i], nowMs) {
			miss = append(miss, i)
		}
	}
	switch {
	case len(miss) == 1:
		if err := s.lookupOne(ctx, reqs[miss[0]], &out[miss[0]], nowMs); err != nil {
			return nil, err
		}
	case len(miss) > 1:
		if err := s.lookupPipelined(ctx, reqs, miss, out, nowMs); err != nil {
			return nil, err
		}
		for _, i := range miss {
			if r := reqs[i]; r.Location != "" {
				s.cache.Warm(s.posKey(r.SKU, r.Location), "")
			} else {
				s.cache.Warm(s.groupKey(r.SKU, r.Group), "rs")
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

// fromCache answers r from the cache's memory, if it holds the reply.
func (s *Store) fromCache(ctx context.Context, r LookupReq, out *LookupResult, nowMs int64) bool {
	if r.Location == "" {
		raw, ok := s.cache.Cached(ctx, "hget", s.groupKey(r.SKU, r.Group), "rs")
		if !ok {
			return false
		}
		n, ok := respInt(raw)
		out.GroupDemand = n
		return ok
	}
	raw, ok := s.cache.Cached(ctx, "hgetall", s.posKey(r.SKU, r.Location))
	if !ok {
		return false
	}
	var p positionParser
	if !respMap(raw, p.field) {
		return false // not a reply this reads: go to Redis
	}
	*out = p.result(nowMs)
	return true
}

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
	var p positionParser
	for f, v := range m {
		if !p.field([]byte(f), []byte(v)) {
			return LookupResult{}, fmt.Errorf("position field %s=%q", f, v)
		}
	}
	return p.result(nowMs), nil
}

// positionParser builds a LookupResult from a position hash's fields.
type positionParser struct {
	r LookupResult
}

// field takes one field and its value, false when the value is not what
// the field holds.
func (p *positionParser) field(f, v []byte) bool {
	switch {
	case bytes.HasPrefix(f, []byte(supplyField)):
		s, ok := parseSupply(f[len(supplyField):], v)
		if ok && s.Quantity > 0 {
			p.r.Supply = append(p.r.Supply, s)
		}
		return ok
	case bytes.HasPrefix(f, []byte(holdField)):
		q, rest, ok := bytes.Cut(v, []byte{':'})
		exp, channel, _ := bytes.Cut(rest, []byte{':'})
		h := atp.Hold{ID: string(f[len(holdField):])}
		var ok1, ok2 bool
		h.Quantity, ok1 = atoi(q)
		h.Expires, ok2 = atoi(exp)
		if len(channel) > 0 {
			h.Channel = string(channel)
		}
		p.r.Holds = append(p.r.Holds, h)
		return ok && ok1 && ok2
	}
	n, ok := atoi(v)
	if !ok {
		return false
	}
	switch string(f) {
	case "v":
		p.r.Version = n
	case "at":
		p.r.Written = time.UnixMilli(n).UTC()
	default:
		setComponent(&p.r.Components, f, n) // hd is left out: Held counts the hold fields
	}
	return true
}

func (p *positionParser) result(nowMs int64) LookupResult {
	r := p.r
	r.Held = atp.Held(r.Holds, nowMs)
	sortSupply(r.Supply)
	return r
}

// sortSupply orders supply by date, then kind.
func sortSupply(s []atp.Supply) {
	slices.SortFunc(s, func(a, b atp.Supply) int {
		if c := a.Date.Compare(b.Date); c != 0 {
			return c
		}
		return int(a.Kind) - int(b.Kind)
	})
}

// atoi reads a decimal int64 without allocating.
func atoi[S string | []byte](b S) (int64, bool) {
	if len(b) == 0 || len(b) > 18 { // past 18 digits an int64 may overflow: strconv decides
		n, err := strconv.ParseInt(string(b), 10, 64)
		return n, err == nil
	}
	neg := b[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	if i == len(b) {
		return 0, false
	}
	var n int64
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// parseSupply reads a supply bucket, "kind|day", and its quantity.
func parseSupply(bucket, qty []byte) (atp.Supply, bool) {
	n, ok := atoi(qty)
	if !ok {
		return atp.Supply{}, false
	}
	return bucketSupply(bucket, n)
}

// bucketSupply reads a supply bucket, "kind|day", holding n: from the
// position hash (bytes) or the engine's own buckets (strings).
func bucketSupply[S string | []byte](bucket S, n int64) (atp.Supply, bool) {
	i := 0
	for i < len(bucket) && bucket[i] != '|' {
		i++
	}
	if i == len(bucket) {
		return atp.Supply{}, false
	}
	d, ok := atoi(bucket[i+1:])
	if !ok {
		return atp.Supply{}, false
	}
	s := atp.Supply{Kind: atp.Released, Date: dayOf(d), Quantity: n}
	switch string(bucket[:i]) {
	case "asn":
		s.Kind = atp.ASN
	case "ack":
		s.Kind = atp.Acknowledged
	}
	return s, true
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

// Local answers a lookup of the position at loc from s, the state its
// partition's owner keeps, as Lookup answers it once s is stored, counting
// too the holds in pending (decided, not folded yet) that s lacks: the
// owner's memory is as fresh as the ledger gets, and reading it costs no
// round trip. ok is false when s has no such position.
func (s *State) Local(loc string, nowMs int64, pending []Hold) (r LookupResult, ok bool) {
	p, ok := s.pos[loc]
	if !ok {
		return r, false
	}
	r.Components = p.Components
	r.Version = s.storedVersion(loc)
	r.Supply = p.openSupply()
	for _, h := range s.active {
		if h.Location == loc {
			r.Holds = append(r.Holds, atp.Hold{ID: h.HoldID, Quantity: h.Quantity, Expires: h.ExpMillis, Channel: h.Channel})
		}
	}
	for _, h := range pending {
		if h.Location == loc && h.Status == HoldHeld {
			if _, folded := s.holds[HoldKey(h.HoldID, loc)]; !folded {
				r.Holds = append(r.Holds, atp.Hold{ID: h.HoldID, Quantity: h.Quantity, Expires: h.ExpMillis, Channel: h.Channel})
			}
		}
	}
	r.Held = atp.Held(r.Holds, nowMs)
	return r, true
}
