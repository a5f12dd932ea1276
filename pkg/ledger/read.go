package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func posKey(sku, loc string) string { return SKUKey(sku) + ":p:" + loc }

// Position is one SKU's ledger totals at one location.
type Position struct {
	Components
	Version int64
}

// Position reads the totals of sku at loc, with held counting only holds
// still active at now (the folder purges expired holds when it next applies
// an entry of the SKU; reads must not wait for that). It is Lookup for one
// position, without the supply.
func (s *Store) Position(ctx context.Context, sku, loc string, now time.Time) (Position, error) {
	res, err := s.Lookup(ctx, []LookupReq{{SKU: sku, Location: loc}}, now)
	if err != nil {
		return Position{}, err
	}
	return res[0].Position, nil
}

// Locations lists the locations sku has a position at, sorted.
func (s *Store) Locations(ctx context.Context, sku string) ([]string, error) {
	locs, err := s.rdb.SMembers(ctx, SKUKey(sku)+":locs").Result()
	if err != nil {
		return nil, fmt.Errorf("read locations: %w", err)
	}
	sort.Strings(locs)
	return locs, nil
}

// GroupDemand is the unallocated demand reserved against a distribution group.
func (s *Store) GroupDemand(ctx context.Context, sku, group string) (int64, error) {
	v, err := s.rdb.HGet(ctx, SKUKey(sku)+":g:"+group, "rs").Int64()
	if err == redis.Nil {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read group demand: %w", err)
	}
	return v, nil
}

// OrderLine is an order line as the ledger keeps it.
type OrderLine struct {
	OrderID   string `json:"order_id"`
	LineID    string `json:"line_id"`
	Location  string `json:"loc,omitempty"`
	Group     string `json:"grp,omitempty"`
	Ordered   int64  `json:"o"`
	Picked    int64  `json:"p"`
	Shipped   int64  `json:"s"`
	Cancelled int    `json:"c"`
	Channel   string `json:"ch,omitempty"`
}

// POLine is a purchase order line as the ledger keeps it.
type POLine struct {
	PONumber    string           `json:"po_number"`
	POLine      int              `json:"po_line"`
	Location    string           `json:"loc,omitempty"`
	Ordered     int64            `json:"q"`
	ExpectedDay int64            `json:"ed"` // days since the Unix epoch
	Status      string           `json:"st,omitempty"`
	AckQuantity int64            `json:"aq"`
	AckDay      int64            `json:"ad"`
	ASN         map[string]int64 `json:"an,omitempty"`
	ETAMillis   int64            `json:"eta"`
	Received    int64            `json:"r"`
	Closed      int              `json:"cl"`
}

// Hold is a hold decision as the ledger keeps it.
type Hold struct {
	HoldID    string `json:"-"`
	Location  string `json:"loc"`
	Quantity  int64  `json:"q"`
	ExpMillis int64  `json:"exp"`
	Status    string `json:"st"` // held, rejected, released, expired, converted
	ATP       int64  `json:"atp"`
}

// Lines reads every order line, PO line and hold of sku.
func (s *Store) Lines(ctx context.Context, sku string) ([]OrderLine, []POLine, []Hold, error) {
	pipe := s.rdb.Pipeline()
	ol := pipe.HGetAll(ctx, SKUKey(sku)+":ol")
	po := pipe.HGetAll(ctx, SKUKey(sku)+":po")
	hd := pipe.HGetAll(ctx, SKUKey(sku)+":h")
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, nil, fmt.Errorf("read lines: %w", err)
	}
	var orders []OrderLine
	for k, v := range ol.Val() {
		var l OrderLine
		if err := json.Unmarshal([]byte(v), &l); err != nil {
			return nil, nil, nil, fmt.Errorf("order line %s: %w", k, err)
		}
		l.OrderID, l.LineID, _ = strings.Cut(k, "|")
		orders = append(orders, l)
	}
	sort.Slice(orders, func(i, j int) bool {
		return orders[i].OrderID+"|"+orders[i].LineID < orders[j].OrderID+"|"+orders[j].LineID
	})
	var pos []POLine
	for k, v := range po.Val() {
		l, err := decodePOLine(k, v)
		if err != nil {
			return nil, nil, nil, err
		}
		pos = append(pos, l)
	}
	sort.Slice(pos, func(i, j int) bool {
		if pos[i].PONumber != pos[j].PONumber {
			return pos[i].PONumber < pos[j].PONumber
		}
		return pos[i].POLine < pos[j].POLine
	})
	var holds []Hold
	for k, v := range hd.Val() {
		var h Hold
		if err := json.Unmarshal([]byte(v), &h); err != nil {
			return nil, nil, nil, fmt.Errorf("hold %s: %w", k, err)
		}
		h.HoldID, _, _ = strings.Cut(k, "|")
		holds = append(holds, h)
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i].HoldID+holds[i].Location < holds[j].HoldID+holds[j].Location })
	return orders, pos, holds, nil
}

func decodePOLine(k, v string) (POLine, error) {
	var l POLine
	// cjson writes an empty table as {} and large numbers in exponent form;
	// decode numbers leniently.
	var raw map[string]any
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return l, fmt.Errorf("po line %s: %w", k, err)
	}
	n := func(key string) int64 {
		f, _ := raw[key].(float64)
		return int64(f)
	}
	num, line, _ := strings.Cut(k, "|")
	l.PONumber = num
	pl, _ := strconv.Atoi(line)
	l.POLine = pl
	l.Location, _ = raw["loc"].(string)
	l.Ordered, l.ExpectedDay, l.AckQuantity, l.AckDay = n("q"), n("ed"), n("aq"), n("ad")
	l.ETAMillis, l.Received, l.Closed = n("eta"), n("r"), int(n("cl"))
	l.Status, _ = raw["st"].(string)
	if an, ok := raw["an"].(map[string]any); ok {
		l.ASN = map[string]int64{}
		for id, q := range an {
			f, _ := q.(float64)
			l.ASN[id] = int64(f)
		}
	}
	return l, nil
}

// Lineage returns the SKU's most recent entries, newest first, as
// "partition:offset|event_id|correlation_id|type|location".
func (s *Store) Lineage(ctx context.Context, sku string) ([]string, error) {
	v, err := s.rdb.LRange(ctx, SKUKey(sku)+":log", 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read lineage: %w", err)
	}
	return v, nil
}
