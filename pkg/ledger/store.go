// Package ledger is the Redis side of the inventory ledger: the apply script
// that folds ledger entries into per-SKU keys with exactly-once effect, the
// per-partition applied offsets, and the lookups the API and the normalizers
// need. Every key of a SKU carries the hash tag {sku}, so each script call
// stays in one slot on Redis Cluster.
package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed apply.lua
var applyLua string

const maxApplied = `
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
local new = tonumber(ARGV[2])
if cur == nil or new > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return new end
return cur`

// Config configures a Store.
type Config struct {
	// DedupeWindow is how long an applied event id is remembered. Default 24h.
	DedupeWindow time.Duration
	// JournalWindow is how long movements are kept for the count rule. Default 24h.
	JournalWindow time.Duration
	// LineageLen is how many recent entries each SKU keeps for lineage. Default 20.
	LineageLen int
}

func (c *Config) setDefaults() {
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 24 * time.Hour
	}
	if c.JournalWindow <= 0 {
		c.JournalWindow = 24 * time.Hour
	}
	if c.LineageLen <= 0 {
		c.LineageLen = 20
	}
}

// Store reads and writes the ledger in Redis.
type Store struct {
	rdb     redis.UniversalClient
	cfg     Config
	apply   *redis.Script
	applied *redis.Script
}

// New returns a store over rdb.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	cfg.setDefaults()
	return &Store{rdb: rdb, cfg: cfg, apply: redis.NewScript(applyLua), applied: redis.NewScript(maxApplied)}
}

// Client is the underlying Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// SKUKey is the prefix of every key of sku, with its hash tag.
func SKUKey(sku string) string { return "sf:{" + sku + "}" }

// Components are the ledger totals of one SKU at one location.
type Components struct {
	OnHand, Reserved, Picked, Held, Inbound, SafetyStock, ReorderPoint int64
}

// Changed is a location whose components an apply call changed.
type Changed struct {
	Location      string
	Before, After Components
	Version       int64
}

// Batch is one SKU's entries from one poll, in log order.
type Batch struct {
	SKU     string
	Entries []Entry
}

// Result is the outcome of one Batch.
type Result struct {
	SKU string
	// Statuses, one per entry: ok, dup, stale, absorbed, ignored,
	// counted:<on-hand correction> for counts, and for holds
	// held:<atp after> / rejected:<atp>.
	Statuses  []string
	Positions []Changed
}

// Apply applies batches, one script call per SKU, pipelined. A repeated call
// with the same entries changes nothing (watermarks), so callers retry
// freely after an error.
func (s *Store) Apply(ctx context.Context, batches []Batch) ([]Result, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		res, err := s.applyOnce(ctx, batches)
		if err != nil && attempt == 0 && isNoScript(err) {
			if err := s.apply.Load(ctx, s.rdb).Err(); err != nil {
				return nil, fmt.Errorf("load apply script: %w", err)
			}
			continue
		}
		return res, err
	}
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

func (s *Store) applyOnce(ctx context.Context, batches []Batch) ([]Result, error) {
	head := []any{
		s.cfg.DedupeWindow.Milliseconds(),
		s.cfg.JournalWindow.Milliseconds(),
		s.cfg.LineageLen,
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batches))
	var buf []byte
	for i, b := range batches {
		args := make([]any, 0, len(head)+1+len(b.Entries))
		args = append(args, head...)
		args = append(args, b.SKU)
		for _, e := range b.Entries {
			start := len(buf)
			buf = appendJSON(buf, e)
			args = append(args, buf[start:len(buf):len(buf)])
		}
		cmds[i] = s.apply.EvalSha(ctx, pipe, []string{SKUKey(b.SKU)}, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		for _, c := range cmds {
			if isNoScript(c.Err()) {
				return nil, c.Err()
			}
		}
		return nil, fmt.Errorf("apply: %w", err)
	}
	out := make([]Result, len(batches))
	for i, c := range cmds {
		r, err := parseResult(c.Val())
		if err != nil {
			return nil, fmt.Errorf("apply %s: %w", batches[i].SKU, err)
		}
		r.SKU = batches[i].SKU
		out[i] = r
	}
	return out, nil
}

func parseResult(v any) (Result, error) {
	top, ok := v.([]any)
	if !ok || len(top) != 2 {
		return Result{}, fmt.Errorf("unexpected reply %T", v)
	}
	var r Result
	sts, _ := top[0].([]any)
	for _, st := range sts {
		s, _ := st.(string)
		r.Statuses = append(r.Statuses, s)
	}
	rows, _ := top[1].([]any)
	for _, row := range rows {
		f, ok := row.([]any)
		if !ok || len(f) != 16 {
			return Result{}, fmt.Errorf("unexpected position row %v", row)
		}
		loc, _ := f[0].(string)
		n := make([]int64, 15)
		for i := range n {
			n[i], _ = f[i+1].(int64)
		}
		r.Positions = append(r.Positions, Changed{
			Location: loc,
			Before:   Components{n[0], n[1], n[2], n[3], n[4], n[5], n[6]},
			After:    Components{n[7], n[8], n[9], n[10], n[11], n[12], n[13]},
			Version:  n[14],
		})
	}
	return r, nil
}

func appliedKey(topic string) string { return "sf:applied:" + topic }
func markerKey(topic string) string  { return "sf:marker:" + topic }

// RecordApplied raises the applied offset of each partition to at least the
// given offset (never lowers it).
func (s *Store) RecordApplied(ctx context.Context, topic string, offsets map[int32]int64) error {
	pipe := s.rdb.Pipeline()
	for p, o := range offsets {
		s.applied.Eval(ctx, pipe, []string{appliedKey(topic)}, p, o)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record applied offsets: %w", err)
	}
	return nil
}

// AppliedOffsets returns the highest applied offset per partition; a
// partition with nothing applied is absent.
func (s *Store) AppliedOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	m, err := s.rdb.HGetAll(ctx, appliedKey(topic)).Result()
	if err != nil {
		return nil, fmt.Errorf("read applied offsets: %w", err)
	}
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		p, err1 := strconv.ParseInt(k, 10, 32)
		o, err2 := strconv.ParseInt(v, 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("applied offset %s=%s: %w", k, v, err)
		}
		out[int32(p)] = o
	}
	return out, nil
}

// EnsureMarker writes the marker that says this Redis holds the ledger of
// topic. It reports whether the marker was already there: a missing marker
// on a Redis that should have one means Redis lost its data.
func (s *Store) EnsureMarker(ctx context.Context, topic string) (existed bool, err error) {
	set, err := s.rdb.SetNX(ctx, markerKey(topic), time.Now().UTC().Format(time.RFC3339), 0).Result()
	if err != nil {
		return false, fmt.Errorf("ledger marker: %w", err)
	}
	return !set, nil
}
