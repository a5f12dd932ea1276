package ledger

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Masters returns the clients that together hold every key: rdb itself, or
// on a Redis Cluster a client of each master (SCAN and other commands
// without a key see one node's keys only).
func Masters(ctx context.Context, rdb redis.UniversalClient) ([]redis.Cmdable, error) {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return []redis.Cmdable{rdb}, nil
	}
	var (
		mu    sync.Mutex
		nodes []redis.Cmdable
	)
	if err := cc.ForEachMaster(ctx, func(_ context.Context, node *redis.Client) error {
		mu.Lock()
		nodes = append(nodes, node)
		mu.Unlock()
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list the cluster's masters: %w", err)
	}
	return nodes, nil
}

// On a Redis Cluster the store's own bookkeeping — the applied offsets, the
// ledger marker, the index's caught-up offsets — is kept in copies, one in
// each sixteenth of the slot space. A master owning a range of 1,024 slots
// or more holds at least one copy, and a copy is written after the SKU
// states it vouches for, on the same master: when a shard loses its data or
// a failover promotes a replica that missed the last writes, its copies go
// back with its states. Readers take the lowest copy, so the folder re-reads
// the log from where the worst shard stands; the SKUs of the shards that
// lost nothing are skipped by their watermarks and left as they are.
const checkpointCopies = 16

// checkpointTags are hash tags, the i-th in slots [i*1024, (i+1)*1024). The
// '~' keeps them apart from every SKU (ids never carry one).
var checkpointTags = func() [checkpointCopies]string {
	var tags [checkpointCopies]string
	found := 0
	for n := 0; found < checkpointCopies; n++ {
		tag := "~cp" + strconv.Itoa(n)
		i := int(Slot(tag)) * checkpointCopies / 16384
		if tags[i] == "" {
			tags[i] = tag
			found++
		}
	}
	return tags
}()

// Slot is the Redis Cluster hash slot of key (its hash tag's, if any).
func Slot(key string) uint16 {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// bookKeys are the keys of the store's bookkeeping named name: one on a
// single Redis (the names of layout 2), the copies on a Redis Cluster.
func (s *Store) bookKeys(name string) []string {
	if !s.cluster {
		return []string{s.key(name)}
	}
	out := make([]string, checkpointCopies)
	for i, tag := range checkpointTags {
		out[i] = s.prefix + ":{" + tag + "}:" + name
	}
	return out
}

// readOffsets reads the hashes of partition -> offset at keys and returns,
// per partition, the lowest offset of all copies; a partition some copy
// lacks is absent.
func (s *Store) readOffsets(ctx context.Context, what string, keys []string) (map[int32]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var low map[int32]int64
	for _, c := range cmds {
		m, err := parseOffsets(what, c.Val())
		if err != nil {
			return nil, err
		}
		if low == nil {
			low = m
			continue
		}
		for p, o := range low {
			if got, ok := m[p]; !ok {
				delete(low, p)
			} else if got < o {
				low[p] = got
			}
		}
	}
	return low, nil
}

// ShardsLost names the bookkeeping copies of topic's ledger that are gone
// while others remain: the shards holding them lost their data. Empty on a
// single Redis, and when nothing or everything is gone.
func (s *Store) ShardsLost(ctx context.Context, topic string) ([]string, error) {
	keys := s.bookKeys("marker:" + topic)
	if len(keys) == 1 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Exists(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger markers: %w", err)
	}
	var lost []string
	for i, c := range cmds {
		if c.Val() == 0 {
			lost = append(lost, fmt.Sprintf("%s (slot %d)", keys[i], Slot(keys[i])))
		}
	}
	if len(lost) == len(keys) {
		return nil, nil
	}
	return lost, nil
}

// lowerApplied brings every copy of topic's applied offsets down to low
// for the partitions given (-1: forget the partition), leaving copies that
// are already lower. Moving an applied offset back only makes the folder
// read again what it has folded, which the watermarks skip.
const lowerApplied = `
for _, key in ipairs(KEYS) do
  for i = 1, #ARGV, 2 do
    local want = tonumber(ARGV[i + 1])
    if want < 0 then
      redis.call('HDEL', key, ARGV[i])
    else
      local cur = tonumber(redis.call('HGET', key, ARGV[i]))
      if cur ~= nil and cur > want then
        redis.call('HSET', key, ARGV[i], ARGV[i + 1])
      end
    end
  end
end
return 0`

var lowerScript = redis.NewScript(lowerApplied)

// AlignApplied brings every copy of topic's applied offsets down to the
// lowest, for the partitions given (their value as AppliedOffsets read it;
// absent from low: none), so that the guarded moves of RecordApplied find
// the same offset in every copy again. A no-op on a single Redis.
func (s *Store) AlignApplied(ctx context.Context, topic string, partitions []int32, low map[int32]int64) error {
	keys := s.bookKeys("applied:" + topic)
	if len(keys) == 1 || len(partitions) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(partitions))
	for _, p := range partitions {
		o, ok := low[p]
		if !ok {
			o = -1
		}
		args = append(args, p, o)
	}
	if _, err := evalCopies(ctx, s.rdb, lowerScript, keys, args); err != nil {
		return fmt.Errorf("align applied offsets: %w", err)
	}
	return nil
}

// evalCopies runs script once on each key of keys (the copies of one piece
// of bookkeeping) with the same args, in one round trip, and returns the
// replies; the first failed call fails it.
func evalCopies(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, keys []string, args []any) ([]*redis.Cmd, error) {
	argv := make([][]any, len(keys))
	for i := range keys {
		argv[i] = args
	}
	cmds, err := evalAll(ctx, rdb, script, keys, argv)
	if err != nil {
		return nil, err
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return nil, err
		}
	}
	return cmds, nil
}

// Masters' identities. A poll's SKU states and, a round trip later, its
// applied offsets are written to the same masters; if one of them was
// replaced in between (a replica promoted, the process restarted), the
// states may be lost while the offsets land on the new master, ahead of
// its states. The folder takes a Topology before it writes a poll and
// compares it with one taken after it recorded the poll's offsets: any
// change, and it moves the offsets back and reads the poll again.

// Topology names each master of a Redis Cluster (address -> run id, which
// is new with every process), or nothing on a single Redis.
type Topology map[string]string

// Equal reports whether t and u name the same masters, each the same
// process.
func (t Topology) Equal(u Topology) bool {
	if len(t) != len(u) {
		return false
	}
	for addr, id := range t {
		if u[addr] != id {
			return false
		}
	}
	return true
}

// LastTopology is the topology the store last read (nil before the first
// read, and always on a single Redis). It costs nothing.
func (s *Store) LastTopology() Topology {
	if t := s.topology.Load(); t != nil {
		return *t
	}
	return nil
}

// Topology reads the masters' run ids now (one INFO per master, in
// parallel) and keeps them as LastTopology. Nil on a single Redis.
func (s *Store) Topology(ctx context.Context) (Topology, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return nil, nil
	}
	var mu sync.Mutex
	t := Topology{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		info, err := node.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		_, rest, ok := strings.Cut(info, "run_id:")
		if !ok {
			return fmt.Errorf("%s: INFO server has no run_id", node.Options().Addr)
		}
		id, _, _ := strings.Cut(rest, "\r\n")
		mu.Lock()
		t[node.Options().Addr] = strings.TrimSpace(id)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the cluster's masters: %w", err)
	}
	s.topology.Store(&t)
	return t, nil
}

// UncoveredMasters names the masters that hold no copy of the store's
// bookkeeping: a rollback of such a shard would go unnoticed. Empty on a
// single Redis.
func (s *Store) UncoveredMasters(ctx context.Context) ([]string, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return nil, nil
	}
	// CLUSTER SLOTS, as go-redis reads the topology it routes by: its
	// addresses are the ones the client dials. CLUSTER SHARDS would leave
	// choosing between a node's port and TLS port, and its master among
	// failed ones, to us.
	ranges, err := cc.ClusterSlots(ctx).Result() //nolint:staticcheck // addresses as the client routes, see above
	if err != nil {
		return nil, fmt.Errorf("read the cluster's slots: %w", err)
	}
	covered := map[string]bool{}
	for _, r := range ranges {
		if len(r.Nodes) == 0 {
			continue
		}
		addr := r.Nodes[0].Addr
		for _, sl := range CopySlots() {
			if sl >= r.Start && sl <= r.End {
				covered[addr] = true
			}
		}
		if !covered[addr] {
			covered[addr] = false // listed, so that a master with no copy is named
		}
	}
	var out []string
	for addr, ok := range covered {
		if !ok {
			out = append(out, addr)
		}
	}
	return out, nil
}

// CopySlots are the slots the copies of the bookkeeping are in.
func CopySlots() []int {
	out := make([]int, len(checkpointTags))
	for i, tag := range checkpointTags {
		out[i] = int(Slot(tag))
	}
	return out
}
