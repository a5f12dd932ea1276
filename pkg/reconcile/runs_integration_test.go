//go:build integration

package reconcile

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// benchRun stores a run of n exceptions on the real Redis: nine in ten
// invalid lines, the rest drifts, over four locations, and ten superseded
// positions at the end of the list (a rare class, the worst case for a
// filter that scans).
func benchRun(b *testing.B, n int) (*Runs, string) {
	b.Helper()
	var cfg config.Config
	rdb := testenv.SharedRedis(b, &cfg)
	s := NewRuns(rdb, cfg.Redis.KeyPrefix, time.Hour)
	ctx := context.Background()
	const id = "BENCH"
	xs := make([]Exception, 0, 1000)
	var stored int64
	flush := func() {
		if err := s.appendExceptions(ctx, id, stored, xs); err != nil {
			b.Fatal(err)
		}
		stored += int64(len(xs))
		xs = xs[:0]
	}
	for i := range n {
		x := Exception{SKU: fmt.Sprintf("SKU-%07d", i), Location: fmt.Sprintf("L%d", i%4), Class: InvalidLine, Line: int64(i + 2),
			Detail: "quantity \"12x\" is not an integer"}
		switch {
		case i >= n-10:
			x.Class, x.Detail = Superseded, "counted as of 2026-11-27T12:00:00Z, after the snapshot"
		case i%10 == 0:
			x.Class, x.Detail, x.SnapshotQuantity, x.LedgerQuantity, x.Difference = Drift, "", ptr(int64(5)), ptr(int64(7)), -2
		}
		if xs = append(xs, x); len(xs) == cap(xs) {
			flush()
		}
	}
	flush()
	return s, id
}

// The index's ranges on a real Redis: a class, a class at a location, a
// location, and locations whose names sort beside another's.
func TestIndexOnRealRedis(t *testing.T) {
	var cfg config.Config
	rdb := testenv.SharedRedis(t, &cfg)
	s := NewRuns(rdb, cfg.Redis.KeyPrefix, time.Hour)
	ctx := context.Background()
	var xs []Exception
	for i, loc := range []string{"DC", "DC-2", "DC", "DC_A", "D", "DC"} {
		xs = append(xs, Exception{SKU: fmt.Sprint("S", i), Location: loc, Class: []string{Drift, InvalidLine}[i%2]})
	}
	if err := s.appendExceptions(ctx, "IX", 0, xs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "S0 S1 S2 S3 S4 S5"},
		{Filter{Classes: map[string]bool{Drift: true}}, "S0 S2 S4"},
		{Filter{Classes: map[string]bool{InvalidLine: true}, Locations: map[string]bool{"DC": true}}, "S5"},
		{Filter{Locations: map[string]bool{"DC": true}}, "S0 S2 S5"},
		{Filter{Locations: map[string]bool{"DC-2": true, "D": true}}, "S1 S4"},
	} {
		var got []string
		var cursor int64
		for {
			page, next, err := s.Exceptions(ctx, "IX", tc.f, cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range page {
				got = append(got, x.SKU)
			}
			if next == 0 {
				break
			}
			cursor = next
		}
		if g := fmt.Sprint(got); g != "["+tc.want+"]" {
			t.Errorf("%+v: %s, want [%s]", tc.f, g, tc.want)
		}
	}
}

// BenchmarkExceptionsPage reads the first page (100) of a run's
// exceptions, unfiltered and filtered.
func BenchmarkExceptionsPage(b *testing.B) {
	for _, n := range []int{20_000, 100_000} {
		s, id := benchRun(b, n)
		for _, f := range []struct {
			name string
			f    Filter
		}{
			{"all", Filter{}},
			{"class=superseded", Filter{Classes: map[string]bool{Superseded: true}}},
			{"class=drift,location=L2", Filter{Classes: map[string]bool{Drift: true}, Locations: map[string]bool{"L2": true}}},
			{"location=L3", Filter{Locations: map[string]bool{"L3": true}}},
		} {
			b.Run(fmt.Sprintf("n=%d/%s", n, f.name), func(b *testing.B) {
				ctx := context.Background()
				for b.Loop() {
					xs, _, err := s.Exceptions(ctx, id, f.f, 0, 100)
					if err != nil || len(xs) == 0 {
						b.Fatalf("%d exceptions, %v", len(xs), err)
					}
				}
			})
		}
	}
}
