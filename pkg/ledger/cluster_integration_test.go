//go:build cluster

package ledger

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/testenv"
)

// The ledger's and the document index's suites on a real Redis Cluster
// (make cluster-up): every script, pipeline and transaction in one slot.
func TestLedgerOnRedisCluster(t *testing.T) {
	runSuite(t, func(t *testing.T) *Store {
		rdb, prefix := testenv.RedisCluster(t)
		return New(rdb, Config{KeyPrefix: prefix})
	})
}

func TestIndexOnRedisCluster(t *testing.T) {
	runIndexSuite(t, func(t *testing.T) (redis.UniversalClient, Config) {
		rdb, prefix := testenv.RedisCluster(t)
		return rdb, Config{KeyPrefix: prefix}
	})
}

// Every master of the cluster holds copies of the applied offsets; the
// copies of one shard going back is seen, and aligning brings every copy
// down to it.
func TestAppliedOffsetCopiesOnRedisCluster(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.RedisCluster(t)
	s := New(rdb, Config{KeyPrefix: prefix})
	owners := map[string]bool{}
	for _, k := range s.bookKeys("applied:L") {
		addr, err := masterOf(ctx, rdb, k)
		if err != nil {
			t.Fatal(err)
		}
		owners[addr] = true
	}
	masters, err := Masters(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != len(masters) {
		t.Fatalf("copies on %d masters, the cluster has %d", len(owners), len(masters))
	}
	if none, err := s.UncoveredMasters(ctx); err != nil || len(none) > 0 {
		t.Fatalf("masters without a copy: %v, %v", none, err)
	}
	topo, err := s.Topology(ctx)
	if err != nil || len(topo) != len(masters) || !topo.Equal(s.LastTopology()) {
		t.Fatalf("topology %v (%v), last %v", topo, err, s.LastTopology())
	}
	if existed, err := s.EnsureMarker(ctx, "L"); err != nil || existed {
		t.Fatalf("a new ledger's marker existed=%v, %v", existed, err)
	}
	if refused, err := s.RecordApplied(ctx, "L", nil, map[int32]int64{0: 10, 1: 20}); err != nil || len(refused) > 0 {
		t.Fatalf("refused %v, %v", refused, err)
	}
	if refused, err := s.RecordApplied(ctx, "L", map[int32]int64{0: 10, 1: 20}, map[int32]int64{0: 15, 1: 25}); err != nil || len(refused) > 0 {
		t.Fatalf("refused %v, %v", refused, err)
	}
	// One copy goes back (its shard failed over to a replica that missed
	// the last record) and another is gone (its shard lost its data).
	keys := s.bookKeys("applied:L")
	if err := rdb.HSet(ctx, keys[3], "0", 10).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AppliedOffsets(ctx, "L"); err != nil || got[0] != 10 || got[1] != 25 {
		t.Fatalf("applied %v, %v; want the lowest copy: 0=10, 1=25", got, err)
	}
	if err := rdb.Del(ctx, keys[9], s.bookKeys("marker:L")[9]).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.AppliedOffsets(ctx, "L")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("applied %v, want none: one copy is gone", got)
	}
	lost, err := s.ShardsLost(ctx, "L")
	if err != nil || len(lost) != 1 {
		t.Fatalf("lost %v, %v; want the one marker copy deleted", lost, err)
	}
	if refused, err := s.RecordApplied(ctx, "L", map[int32]int64{0: 15, 1: 25}, map[int32]int64{0: 16, 1: 26}); err != nil || len(refused) != 2 {
		t.Fatalf("a move from offsets some copies do not hold: refused %v, %v", refused, err)
	}
	if err := s.AlignApplied(ctx, "L", []int32{0, 1}, got); err != nil {
		t.Fatal(err)
	}
	if refused, err := s.RecordApplied(ctx, "L", nil, map[int32]int64{0: 12, 1: 22}); err != nil || len(refused) > 0 {
		t.Fatalf("after aligning, refused %v, %v", refused, err)
	}
	if got, err := s.AppliedOffsets(ctx, "L"); err != nil || got[0] != 12 || got[1] != 22 {
		t.Fatalf("applied %v, %v", got, err)
	}
}

func masterOf(ctx context.Context, rdb *redis.ClusterClient, key string) (string, error) {
	slots, err := rdb.ClusterSlots(ctx).Result() //nolint:staticcheck // addresses as the client routes, as UncoveredMasters reads them
	if err != nil {
		return "", err
	}
	slot := int(Slot(key))
	for _, r := range slots {
		if slot >= r.Start && slot <= r.End {
			return r.Nodes[0].Addr, nil
		}
	}
	return "", nil
}
