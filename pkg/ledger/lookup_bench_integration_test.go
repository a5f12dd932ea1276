//go:build integration

package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/events"
)

// Lookups of 50 positions on the real Redis: from the cache's memory (every
// read a hit, checked), and pipelined to Redis, as the misses of a batch go.
func BenchmarkLookup50(b *testing.B) {
	ctx := context.Background()
	s, cached, cache := cachedStores(b, time.Hour)
	var reqs []LookupReq
	for i := range 50 {
		sku := fmt.Sprintf("B-%02d", i)
		e := &events.LedgerEntry{EntryType: events.EntryReceipt, SKU: sku, Location: sp("DC1"), Quantity: 10, EventID: sku, EventTime: base, Source: "b"}
		if _, err := s.Apply(ctx, []Batch{{SKU: sku, Entries: []Entry{{LedgerEntry: e}}}}); err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, LookupReq{SKU: sku, Location: "DC1"})
		// One at a time: a single miss is read through the cache, and kept.
		if _, err := cached.Lookup(ctx, reqs[i:i+1], base); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		s    *Store
		n    int
	}{{"cached/1", cached, 1}, {"cached/50", cached, 50}, {"pipelined/1", s, 1}, {"pipelined/50", s, 50}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			before := cache.Stats()
			for b.Loop() {
				if _, err := bc.s.Lookup(ctx, reqs[:bc.n], base); err != nil {
					b.Fatal(err)
				}
			}
			if st := cache.Stats(); bc.s == cached && st.Misses != before.Misses {
				b.Fatalf("%d reads missed the cache", st.Misses-before.Misses)
			}
		})
	}
}
