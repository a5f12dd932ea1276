// Package ledger is the inventory ledger: the engine that folds ledger
// entries into per-SKU states (the one implementation of the ledger's
// semantics), and their store in Redis — guarded writes, the per-partition
// applied offsets, and the reads the API, the normalizers and verify need.
// The Redis key layout belongs to this package alone. Every key of a SKU
// carries the hash tag {sku}, so each call stays in one slot on Redis
// Cluster.
//
// See docs/design.md §5 (the ledger's semantics), §6.3 (the guarded write),
// §6.6 (Redis Cluster) and §15 (the key layout).
package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed load.lua
	loadLua string
	//go:embed save.lua
	saveLua string

	loadScript = redis.NewScript(loadLua)
	saveScript = redis.NewScript(saveLua)
)

// recordApplied moves partitions' applied offsets (ARGV: partition,
// expected, new; expected -1 for none) only where Redis still has the
// expected one, and returns the partitions it refused.
const recordApplied = `
local refused = {}
for i = 1, #ARGV, 3 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i])) or -1
  if cur == tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  else
    refused[#refused + 1] = ARGV[i]
  end
end
return refused`

// Store reads and writes the ledger in Redis.
type Store struct {
	rdb     redis.UniversalClient
	eng     *Engine
	applied *redis.Script
	prefix  string
	cache   Cache // lookups look in it first when set (UseCache)
	cluster bool  // rdb is a Redis Cluster client: bookkeeping in copies
	// topology is the cluster's masters as last read (Topology).
	topology atomic.Pointer[Topology]
}

// New returns a store over rdb whose engine folds with cfg's windows, its
// keys below cfg.KeyPrefix.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	cfg.setDefaults()
	_, cluster := rdb.(*redis.ClusterClient)
	return &Store{rdb: rdb, eng: NewEngine(cfg), applied: redis.NewScript(recordApplied), prefix: cfg.KeyPrefix, cluster: cluster}
}

// KeyPrefix is what every key of the store starts with, before a colon.
func (s *Store) KeyPrefix() string { return s.prefix }

// Cluster reports whether the store is on a Redis Cluster.
func (s *Store) Cluster() bool { return s.cluster }

// Client is the underlying Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Engine is the engine states of this store are folded with.
func (s *Store) Engine() *Engine { return s.eng }

// Keys names the store's keys, and those kept beside them.
func (s *Store) Keys() Keys { return NewKeys(s.prefix) }

// SKUKey is the prefix of every key of sku, with its hash tag.
func (s *Store) SKUKey(sku string) string { return s.Keys().SKU(sku) }

// key is a key of the store outside any SKU.
func (s *Store) key(name string) string { return s.Keys().name(name) }

// Batch is one SKU's entries from one poll, in log order.
type Batch struct {
	SKU     string
	Entries []Entry
}

// Result is the outcome of one Batch.
type Result struct {
	SKU      string
	Outcomes []Outcome // one per entry
	Changes  []Changed // locations touched, before and after
}

// ErrRefused is returned by Apply when a state's write was refused by its
// watermark guard: another writer has moved the SKU on.
var ErrRefused = errors.New("ledger: write refused by the watermark guard")

// Apply loads the batches' SKUs, folds their entries with the engine and
// stores them: the folder does the same with states cached between polls.
// A repeated call with the same entries changes nothing (watermarks), so
// callers retry freely after an error.
func (s *Store) Apply(ctx context.Context, batches []Batch) ([]Result, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	skus := make([]string, len(batches))
	for i, b := range batches {
		skus[i] = b.SKU
	}
	states, err := s.Load(ctx, skus)
	if err != nil {
		return nil, err
	}
	entries := make([][]Entry, len(batches))
	for i, b := range batches {
		entries[i] = b.Entries
	}
	if err := s.Prime(ctx, states, entries); err != nil {
		return nil, err
	}
	out := make([]Result, len(batches))
	for i, b := range batches {
		out[i] = Result{SKU: b.SKU, Outcomes: make([]Outcome, len(b.Entries))}
		for j, e := range b.Entries {
			out[i].Outcomes[j] = s.eng.Apply(states[i], e.LedgerEntry, e.Partition, e.Offset)
		}
		out[i].Changes = states[i].Changes()
	}
	stored, err := s.Save(ctx, states)
	if err != nil {
		return nil, err
	}
	for i, ok := range stored {
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrRefused, skus[i])
		}
	}
	return out, nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// evalAll runs one script call per element in one pipelined round trip.
// When Redis does not have the script (a fresh or restarted Redis), it
// loads it and sends again only the calls that failed for that: another
// worker may have loaded it halfway through this pipeline, and a call that
// ran must not run twice.
func evalAll(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, keys []string, args [][]any) ([]*redis.Cmd, error) {
	each := make([][]string, len(keys))
	for i, k := range keys {
		each[i] = []string{k}
	}
	return evalEach(ctx, rdb, script, each, args)
}

// evalEach is evalAll with keys of their own for each call (all of one
// call in one slot).
func evalEach(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, keys [][]string, args [][]any) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(keys))
	todo := make([]int, len(keys))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; ; attempt++ {
		pipe := rdb.Pipeline()
		for _, i := range todo {
			cmds[i] = script.EvalSha(ctx, pipe, keys[i], args[i]...)
		}
		_, err := pipe.Exec(ctx)
		if err == nil || attempt > 0 {
			return cmds, err
		}
		var again []int
		for _, i := range todo {
			if isNoScript(cmds[i].Err()) {
				again = append(again, i)
			} else if cmds[i].Err() != nil && cmds[i].Err() != redis.Nil {
				return cmds, err
			}
		}
		if len(again) == 0 {
			return cmds, err
		}
		if err := script.Load(ctx, rdb).Err(); err != nil {
			return nil, fmt.Errorf("load script: %w", err)
		}
		todo = again
	}
}

// RecordApplied moves each partition's applied offset from what the caller
// last saw (from; absent means none) to the new offset, and returns the
// partitions where Redis no longer had what the caller last saw: Redis went
// back in time, or another instance owns the partition now. Those are left
// as they are.
func (s *Store) RecordApplied(ctx context.Context, topic string, from, to map[int32]int64) (refused []int32, err error) {
	if len(to) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 3*len(to))
	for p, o := range to {
		prev, ok := from[p]
		if !ok {
			prev = -1
		}
		args = append(args, p, prev, o)
	}
	// Every copy (one on a single Redis): a partition refused by any is
	// refused, and AlignApplied makes the copies agree again.
	cmds, err := evalCopies(ctx, s.rdb, s.applied, s.bookKeys("applied:"+topic), args)
	if err != nil {
		return nil, fmt.Errorf("record applied offsets: %w", err)
	}
	seen := map[int32]bool{}
	for _, c := range cmds {
		res, err := c.StringSlice()
		if err != nil {
			return nil, fmt.Errorf("record applied offsets: %w", err)
		}
		for _, v := range res {
			p, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("record applied offsets: refused partition %q", v)
			}
			if !seen[int32(p)] {
				seen[int32(p)] = true
				refused = append(refused, int32(p))
			}
		}
	}
	return refused, nil
}

// AppliedOffsets returns the highest applied offset per partition; a
// partition with nothing applied is absent. On a Redis Cluster it is the
// lowest of the copies: where the shard that lost most stands.
func (s *Store) AppliedOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	m, err := s.readOffsets(ctx, "applied offset", s.bookKeys("applied:"+topic))
	if err != nil {
		return nil, fmt.Errorf("read applied offsets: %w", err)
	}
	return m, nil
}

// parseOffsets reads a hash of partition -> offset.
func parseOffsets(what string, m map[string]string) (map[int32]int64, error) {
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		p, err1 := strconv.ParseInt(k, 10, 32)
		o, err2 := strconv.ParseInt(v, 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s %s=%s: %w", what, k, v, err)
		}
		out[int32(p)] = o
	}
	return out, nil
}

// EnsureMarker writes the marker that says this Redis holds the ledger of
// topic. It reports whether the marker was already there: a missing marker
// on a Redis that should have one means Redis lost its data. On a Redis
// Cluster it is one of the copies missing: a shard lost its data.
func (s *Store) EnsureMarker(ctx context.Context, topic string) (existed bool, err error) {
	keys := s.bookKeys("marker:" + topic)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.BoolCmd, len(keys))
	now := time.Now().UTC().Format(time.RFC3339)
	for i, k := range keys {
		cmds[i] = pipe.SetNX(ctx, k, now, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("ledger marker: %w", err)
	}
	set := false
	for _, c := range cmds {
		set = set || c.Val()
	}
	if set {
		if err := s.rdb.Set(ctx, s.key("layout"), keyLayout, 0).Err(); err != nil {
			return false, fmt.Errorf("ledger key layout: %w", err)
		}
	}
	return !set, nil
}

// keyLayout is the version of the key layout this package reads and
// writes. Layout 2 keeps a position's supply and holds in its hash, where
// lookups read them.
const keyLayout = "2"

// ErrKeyLayout says Redis holds a ledger in a key layout this version does
// not read.
var ErrKeyLayout = errors.New("ledger: Redis holds the ledger in another key layout")

// CheckLayout makes sure Redis holds the ledger of topic in the key layout
// this version reads, or no ledger at all (then it records the layout).
func (s *Store) CheckLayout(ctx context.Context, topic string) error {
	v, err := s.rdb.Get(ctx, s.key("layout")).Result()
	switch {
	case err == nil && v == keyLayout:
		return nil
	case err == nil:
		return fmt.Errorf("%w: layout %s, this version reads layout %s", ErrKeyLayout, v, keyLayout)
	case err != redis.Nil:
		return fmt.Errorf("ledger key layout: %w", err)
	}
	n, err := s.rdb.Exists(ctx, s.bookKeys("marker:" + topic)[0]).Result()
	if err != nil {
		return fmt.Errorf("ledger key layout: %w", err)
	}
	if n > 0 {
		// On a Redis Cluster, the layout gone with some of the markers is
		// a shard that lost its data, not an older layout.
		lost, err := s.ShardsLost(ctx, topic)
		if err != nil {
			return fmt.Errorf("ledger key layout: %w", err)
		}
		if len(lost) == 0 {
			return fmt.Errorf("%w: layout 1 (from before lookups read plain keys), this version reads layout %s", ErrKeyLayout, keyLayout)
		}
	}
	if err := s.rdb.Set(ctx, s.key("layout"), keyLayout, 0).Err(); err != nil {
		return fmt.Errorf("ledger key layout: %w", err)
	}
	return nil
}
