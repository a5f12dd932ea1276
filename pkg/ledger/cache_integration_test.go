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

// What lookups through the cache promise (README, "The read path"): a write
// is seen within the cache's max age whatever happens to invalidations, and
// in practice within milliseconds, by invalidation. The max age is set to a
// minute here, so only an invalidation can make the reader see each write
// within a second, a fifth of the default max age.
func TestCachedLookupSeesEachWriteByInvalidation(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	rdb := testenv.SharedRedis(t, &cfg)
	cfg.Redis.LookupCacheMaxAge = time.Minute
	cache := store.OpenCache(cfg.Redis)
	if cache == nil {
		t.Fatal("no lookup cache on database 0")
	}
	defer cache.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go cache.Run(runCtx)
	writer := New(rdb, Config{KeyPrefix: cfg.Redis.KeyPrefix})
	reader := New(rdb, Config{KeyPrefix: cfg.Redis.KeyPrefix})
	reader.UseCache(cache)
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
	for deadline := time.Now().Add(2 * time.Second); cache.Stats().Entries < 2; time.Sleep(time.Millisecond) {
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

	const bound = time.Second
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
				t.Fatalf("write %d not seen through the cache after %v: still version %d on hand %d", i, waited, p.Version, p.OnHand)
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
