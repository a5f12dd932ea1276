//go:build integration

package store_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// The Redis the stack starts takes writes, answers reads and runs scripts
// by SHA, the way the ledger uses it.
func TestRealRedisWriteReadAndScript(t *testing.T) {
	ctx := context.Background()
	testenv.Redis(t, 1) // empties db 1
	rdb := store.Open(config.Redis{Addr: testenv.RedisAddr(t), DB: 1})
	defer rdb.Close()
	if err := store.Ping(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "{SKU-1}:pos:DC1", "on_hand", 40, "reserved", 3).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := rdb.HGetAll(ctx, "{SKU-1}:pos:DC1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got["on_hand"] != "40" || got["reserved"] != "3" {
		t.Fatalf("read back %v", got)
	}
	add := redis.NewScript(`return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])`)
	n, err := add.Run(ctx, rdb, []string{"{SKU-1}:pos:DC1"}, "on_hand", 2).Int64()
	if err != nil {
		t.Fatal(err)
	}
	if n != 42 {
		t.Fatalf("script returned %d, want 42", n)
	}
	// Run loads the script on NOSCRIPT; afterwards EVALSHA alone works.
	if n, err := add.EvalSha(ctx, rdb, []string{"{SKU-1}:pos:DC1"}, "on_hand", -2).Int64(); err != nil || n != 40 {
		t.Fatalf("evalsha: %d, %v", n, err)
	}
}
