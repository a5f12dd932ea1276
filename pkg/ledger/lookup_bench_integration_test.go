//go:build integration

package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// Lookups of 50 positions on the real Redis: through the cache, every read
// a hit, and pipelined to Redis past it.
func BenchmarkLookup50(b *testing.B) {
	ctx := context.Background()
	cfg := config.Default()
	rdb := testenv.SharedRedis(b, &cfg)
	cfg.Redis.LookupCacheMaxAge = time.Hour
	cache := store.OpenCache(cfg.Redis)
	defer cache.Close()
	s := New(rdb, Config{KeyPrefix: cfg.Redis.KeyPrefix})
	var reqs []LookupReq
	for i := range 50 {
		sku := fmt.Sprintf("B-%02d", i)
		e := &events.LedgerEntry{EntryType: events.EntryReceipt, SKU: sku, Location: sp("DC1"), Quantity: 10, EventID: sku, EventTime: base, Source: "b"}
		if _, err := s.Apply(ctx, []Batch{{SKU: sku, Entries: []Entry{{LedgerEntry: e}}}}); err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, LookupReq{SKU: sku, Location: "DC1"})
	}
	cached := New(rdb, Config{KeyPrefix: cfg.Redis.KeyPrefix})
	cached.UseCache(cache)
	cfg.Redis.LookupCacheMaxAge = 10 * time.Millisecond
	coldCache := store.OpenCache(cfg.Redis)
	defer coldCache.Close()
	cold := New(rdb, Config{KeyPrefix: cfg.Redis.KeyPrefix})
	cold.UseCache(coldCache)
	b.Run("cached-misses/50", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			time.Sleep(11 * time.Millisecond)
			b.StartTimer()
			if _, err := cold.Lookup(ctx, reqs, base); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name string
		s    *Store
		n    int
	}{{"cached/1", cached, 1}, {"cached/50", cached, 50}, {"pipelined/1", s, 1}, {"pipelined/50", s, 50}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.s.Lookup(ctx, reqs[:bc.n], base); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
