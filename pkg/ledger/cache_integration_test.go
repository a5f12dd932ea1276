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

// cachedStores returns two stores over one private key prefix of the real
// Redis's database 0: writer reads and writes Redis, reader looks up
// through a lookup cache (entries served for up to maxAge) whose background
// reader runs until the test ends.
func cachedStores(tb testing.TB, maxAge time.Duration) (writer, reader *Store, cache *store.Cache) {
	tb.Helper()
	cfg := config.Default()
	rdb := testenv.SharedRedis(tb, &cfg)
	cfg.Redis.LookupCacheMaxAge = maxAge
	if cache = store.OpenCache(cfg.Redis); cache == nil {
		tb.Fatal("no lookup cache on database 0")
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cache.Run(ctx) }()
	tb.Cleanup(func() {
		stop()
		<-done
		cache.Close()
	})
	writer = New(rdb, Config{KeyPrefix: cfg.Redis.KeyPrefix})
	reader = New(rdb, Config{KeyPrefix: cfg.Redis.KeyPrefix})
	reader.UseCache(cache)
	return writer, reader, cache
}

// What lookups through the cache promise (docs/design.md §9.3): a write
// is seen within the cache's max age whatever happens to invalidations, and
// in practice within milliseconds, by invalidation. The max age is set to an
// hour here, far beyond the bound on each wait below, so only an
// invalidation can make the reader see each write. How fast it does is
// logged, for reading; the benchmarks measure it.
func TestCachedLookupSeesEachWriteByInvalidation(t *testing.T) {
	ctx := context.Background()
	writer, reader, cache := cachedStores(t, time.Hour)
	h := newHarness(t, writer)
	h.apply(le(events.EntryReceipt, "DC1", 100, 0, "r0"))

	read := func() LookupResult {
		t.Helper()
		res, err := reader.Lookup(ctx, []LookupReq{{SKU: "SKU-1", Location: "DC1"}, {SKU: "SKU-1", Group: "G"}}, at(1))
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	first := read()
	// Both reads missed and went to Redis in one pipeline; the cache's
	// background reader brings them in.
	for deadline := time.Now().Add(30 * time.Second); cache.Stats().Entries < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the missed reads were not brought into the cache: %+v", cache.Stats())
		}
	}
	before := cache.Stats()
	if again := read(); again.Version != first.Version || again.OnHand != 100 {
		t.Fatalf("second read: %+v, first %+v", again, first)
	}
	if st := cache.Stats(); st.Hits < before.Hits+2 {
		t.Fatalf("a second read of the same keys was not served from memory: %+v then %+v", before, st)
	}

	// A bound on the test, not a speed claim: a write not seen by then was
	// never invalidated.
	const bound = 30 * time.Second
	var slowest time.Duration
	for i := 1; i <= 50; i++ {
		h.apply(le(events.EntryAdjustment, "DC1", -1, 1, fmt.Sprint("a", i)))
		written := time.Now()
		for {
			p := read()
			if p.Version == first.Version+int64(i) && p.OnHand == int64(100-i) {
				break
			}
			if waited := time.Since(written); waited > bound {
				t.Fatalf("write %d never seen through the cache (waited %v): still version %d on hand %d; cache %+v", i, waited, p.Version, p.OnHand, cache.Stats())
			}
			time.Sleep(200 * time.Microsecond)
		}
		slowest = max(slowest, time.Since(written))
	}
	st := cache.Stats()
	if st.Invalidations < 50 {
		t.Errorf("50 writes, %d invalidations", st.Invalidations)
	}
	t.Logf("slowest write seen after %v; cache %+v", slowest, st)
}
