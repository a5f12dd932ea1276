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

func (s *Store) posKey(sku, loc string) string { return s.SKUKey(sku) + ":p:" + loc }

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
	locs, err := s.rdb.SMembers(ctx, s.SKUKey(sku)+":locs").Result()
	if err != nil {
		return nil, fmt.Errorf("read locations: %w", err)
	}
	sort.Strings(locs)
	return locs, nil
}

// GroupDemand is the unallocated demand reserved against a distribution group.
func (s *Store) GroupDemand(ctx context.Context, sku, group string) (int64, error) {
	v, err := s.rdb.HGet(ctx, s.SKUKey(sku)+":g:"+group, "rs").Int64()
	if err == redis.Nil {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read group demand: %w", err)
	}
	return v, nil
}

// Lines reads every order line, PO line and hold of sku.
func (s *Store) Lines(ctx context.Context, sku string) ([]OrderLine, []POLine, []Hold, error) {
	pipe := s.rdb.Pipeline()
	ol := pipe.HGetAll(ctx, s.SKUKey(sku)+":ol")
	po := pipe.HGetAll(ctx, s.SKUKey(sku)+":po")
	hd := pipe.HGetAll(ctx, s.SKUKey(sku)+":h")
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

// Lineage returns the SKU's most recent entries, newest first.
func (s *Store) Lineage(ctx context.Context, sku string) ([]LineageEntry, error) {
	v, err := s.rdb.LRange(ctx, s.SKUKey(sku)+":log", 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read lineage: %w", err)
	}
	out := make([]LineageEntry, 0, len(v))
	for _, raw := range v {
		le, err := decodeLineage(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, le)
	}
	return out, nil
}

// decodeLineage reads a lineage entry: a JSON array [partition, offset,
// event_id, correlation_id, type, place], or the "partition:offset|event_id|
// correlation_id|type|place" form earlier versions wrote.
func decodeLineage(raw string) (LineageEntry, error) {
	var le LineageEntry
	if strings.HasPrefix(raw, "[") {
		var f []any
		d := json.NewDecoder(strings.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&f); err != nil {
			return le, fmt.Errorf("lineage entry %q: %w", raw, err)
		}
		if len(f) != 6 {
			return le, fmt.Errorf("lineage entry %q: %d fields", raw, len(f))
		}
		p, err1 := toInt(f[0])
		o, err2 := toInt(f[1])
		eid, ok1 := f[2].(string)
		cid, ok2 := f[3].(string)
		t, ok3 := f[4].(string)
		pl, ok4 := f[5].(string)
		if err1 != nil || err2 != nil || !ok1 || !ok2 || !ok3 || !ok4 {
			return le, fmt.Errorf("lineage entry %q: not a lineage entry", raw)
		}
		return LineageEntry{Partition: int32(p), Offset: o, EventID: eid, CorrelationID: cid, EntryType: t, Place: pl}, nil
	}
	f := strings.SplitN(raw, "|", 5)
	if len(f) != 5 {
		return le, fmt.Errorf("lineage entry %q: not a known form", raw)
	}
	p, o, _ := strings.Cut(f[0], ":")
	pn, err1 := strconv.ParseInt(p, 10, 32)
	on, err2 := strconv.ParseInt(o, 10, 64)
	if err1 != nil || err2 != nil {
		return le, fmt.Errorf("lineage entry %q: bad position", raw)
	}
	return LineageEntry{Partition: int32(pn), Offset: on, EventID: f[1], CorrelationID: f[2], EntryType: f[3], Place: f[4]}, nil
}

// Watermarks reads, per partition, the last offset folded into sku.
func (s *Store) Watermarks(ctx context.Context, sku string) (map[int32]int64, error) {
	m, err := s.rdb.HGetAll(ctx, s.SKUKey(sku)+":w").Result()
	if err != nil {
		return nil, fmt.Errorf("read watermarks: %w", err)
	}
	return parseOffsets("watermark of "+sku, m)
}

// PositionMemory is what Redis says the totals of sku at loc take.
func (s *Store) PositionMemory(ctx context.Context, sku, loc string) (int64, error) {
	return s.rdb.MemoryUsage(ctx, s.posKey(sku, loc)).Result()
}

// SKUKeys iterates over every key of the SKUs whose ids start with prefix,
// on one Redis (the benchmark's).
func (s *Store) SKUKeys(ctx context.Context, prefix string) *redis.ScanIterator {
	return s.rdb.Scan(ctx, 0, s.prefix+":{"+prefix+"*", 1000).Iterator()
}

func toInt(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("not a number: %v", v)
	}
	return n.Int64()
}
