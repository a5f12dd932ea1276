package ledger

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/atp"
)

//go:embed lookup.lua
var lookupLua string

var lookupScript = redis.NewScript(lookupLua)

// LookupReq asks for one SKU at one location, or, with Group set and no
// Location, for the SKU's demand not yet allocated within a group.
type LookupReq struct {
	SKU, Location, Group string
	// Supply asks for the open PO lines behind the inbound total.
	Supply bool
}

// LookupResult is the ledger's answer for one LookupReq.
type LookupResult struct {
	Position
	Supply      []atp.Supply
	GroupDemand int64
}

// ATPPosition is the result as the ATP engine takes it.
func (r LookupResult) ATPPosition() atp.Position {
	return atp.Position{OnHand: r.OnHand, Reserved: r.Reserved, Picked: r.Picked, Held: r.Held, SafetyStock: r.SafetyStock, Inbound: r.Supply}
}

// Lookup reads every request in one pipelined round trip. Held counts only
// holds still active at now.
func (s *Store) Lookup(ctx context.Context, reqs []LookupReq, now time.Time) ([]LookupResult, error) {
	out := make([]LookupResult, len(reqs))
	if len(reqs) == 0 {
		return out, nil
	}
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	for attempt := 0; ; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(reqs))
		demands := make([]*redis.StringCmd, len(reqs))
		for i, r := range reqs {
			if r.Location == "" {
				demands[i] = pipe.HGet(ctx, SKUKey(r.SKU)+":g:"+r.Group, "rs")
				continue
			}
			supply := "0"
			if r.Supply {
				supply = "1"
			}
			cmds[i] = lookupScript.EvalSha(ctx, pipe, []string{SKUKey(r.SKU)}, r.Location, nowMs, supply)
		}
		_, err := pipe.Exec(ctx)
		if err == redis.Nil { // only an absent group demand
			err = firstCmdErr(cmds)
		}
		if err != nil && attempt == 0 && isNoScript(firstCmdErr(cmds)) {
			if err := lookupScript.Load(ctx, s.rdb).Err(); err != nil {
				return nil, fmt.Errorf("load lookup script: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lookup: %w", err)
		}
		for i, c := range cmds {
			if c == nil {
				out[i].GroupDemand, _ = demands[i].Int64()
				continue
			}
			r, err := parseLookup(c.Val(), now)
			if err != nil {
				return nil, fmt.Errorf("lookup %s@%s: %w", reqs[i].SKU, reqs[i].Location, err)
			}
			out[i] = r
		}
		return out, nil
	}
}

func firstCmdErr(cmds []*redis.Cmd) error {
	for _, c := range cmds {
		if c != nil && c.Err() != nil {
			return c.Err()
		}
	}
	return nil
}

func parseLookup(v any, now time.Time) (LookupResult, error) {
	f, ok := v.([]any)
	if !ok || len(f) != 10 {
		return LookupResult{}, fmt.Errorf("unexpected reply %T", v)
	}
	n := make([]int64, 9)
	for i := range n {
		n[i], _ = f[i].(int64)
	}
	r := LookupResult{Position: Position{
		Components: Components{OnHand: n[0], Reserved: n[1], Picked: n[2], Held: n[3] - n[8], Inbound: n[4], SafetyStock: n[5], ReorderPoint: n[6]},
		Version:    n[7],
	}}
	sup, _ := f[9].([]any)
	for i := 0; i+1 < len(sup); i += 2 {
		k, _ := sup[i].(string)
		q, _ := sup[i+1].(string)
		kind, day, _ := strings.Cut(k, "|")
		d, err1 := strconv.ParseInt(day, 10, 64)
		n, err2 := strconv.ParseInt(q, 10, 64)
		if err1 != nil || err2 != nil || n <= 0 {
			continue
		}
		s := atp.Supply{Kind: atp.Released, Date: dayOf(d), Quantity: n}
		switch kind {
		case "asn":
			s.Kind = atp.ASN
		case "ack":
			s.Kind = atp.Acknowledged
		}
		r.Supply = append(r.Supply, s)
	}
	return r, nil
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
