package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// elementsRead counts the elements of the array replies a client reads:
// list ranges, hash fields, index members.
type elementsRead struct{ n atomic.Int64 }

func (e *elementsRead) count(cmd redis.Cmder) {
	switch c := cmd.(type) {
	case *redis.StringSliceCmd:
		e.n.Add(int64(len(c.Val())))
	case *redis.SliceCmd:
		e.n.Add(int64(len(c.Val())))
	}
}

func (e *elementsRead) DialHook(next redis.DialHook) redis.DialHook { return next }

func (e *elementsRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		e.count(cmd)
		return err
	}
}

func (e *elementsRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			e.count(c)
		}
		return err
	}
}

// testReconciler is a reconciler on miniredis, at now.
func testReconciler(t *testing.T, now time.Time, cfg Config) (*Reconciler, *redis.Client, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	cfg.Ledger = ledger.New(rdb, ledger.Config{})
	cfg.Runs = NewRuns(rdb, "sf", 0)
	cfg.Now = func() time.Time { return now }
	return New(cfg), rdb, m
}

// runLines reconciles a snapshot of lines at L1 and L2 as of an hour
// before now.
func runLines(t *testing.T, r *Reconciler, now time.Time, id string, lines []events.SnapshotLine) Run {
	t.Helper()
	ctx := context.Background()
	sess, run, err := r.Start(ctx, &events.SnapshotStarted{Meta: events.Meta{Source: "ERP"}, SnapshotID: id,
		Locations: []string{"L1", "L2"}, AsOf: now.Add(-time.Hour), ExpectedLines: int64(len(lines))})
	if err != nil || sess == nil {
		t.Fatalf("start: %+v %v", run, err)
	}
	for i := range lines {
		l := lines[i]
		l.SnapshotID, l.Line = id, int64(i+2)
		if err := sess.Line(ctx, &l); err != nil {
			t.Fatal(err)
		}
	}
	run, err = sess.End(ctx, &events.SnapshotEnded{SnapshotID: id, LineCount: int64(len(lines))})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// A page of a rare class reads about the page from Redis, not the run:
// 10,000 invalid lines, then 10 positions unknown to the ledger.
func TestFilteredPageReadsOnlyItsPage(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r, rdb, _ := testReconciler(t, now, Config{})
	var lines []events.SnapshotLine
	for i := range 10_000 {
		lines = append(lines, events.SnapshotLine{SKU: fmt.Sprintf("S%d", i), Location: "L1", Quantity: -1})
	}
	for i := range 10 {
		lines = append(lines, events.SnapshotLine{SKU: fmt.Sprintf("NEW%d", i), Location: "L2", Quantity: 3})
	}
	run := runLines(t, r, now, "BIG", lines)
	if run.Counts[InvalidLine] != 10_000 || run.Counts[UnknownToLedger] != 10 {
		t.Fatalf("counts %v", run.Counts)
	}
	var reads elementsRead
	rdb.AddHook(&reads)
	for _, f := range []Filter{
		{Classes: map[string]bool{UnknownToLedger: true}},
		{Classes: map[string]bool{UnknownToLedger: true}, Locations: map[string]bool{"L2": true}},
		{Locations: map[string]bool{"L2": true}},
	} {
		reads.n.Store(0)
		xs, next, err := r.Runs().Exceptions(ctx, "BIG", f, 0, 5)
		if err != nil || len(xs) != 5 || next == 0 || xs[0].SKU != "NEW0" || xs[4].SKU != "NEW4" {
			t.Fatalf("%+v: page %v next %d err %v", f, xs, next, err)
		}
		if n := reads.n.Load(); n > 20 {
			t.Errorf("%+v: a page of 5 read %d elements from Redis", f, n)
		}
		xs, next, err = r.Runs().Exceptions(ctx, "BIG", f, next, 5)
		if err != nil || len(xs) != 5 || next != 0 || xs[0].SKU != "NEW5" || xs[4].SKU != "NEW9" {
			t.Errorf("%+v: second page %v next %d err %v", f, xs, next, err)
		}
	}
}

// Every filter pages through exactly the exceptions it selects, in their
// order, whatever the page size; each reads the same set.
func TestIndexedPagesAgreeWithTheFilter(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	s := NewRuns(rdb, "sf", 0)
	rng := rand.New(rand.NewPCG(1, 2))
	locs := []string{"L1", "L2", "L3", "bad loc", ""}
	var all []Exception
	for i := range 240 {
		all = append(all, Exception{SKU: fmt.Sprintf("S%d", i), Location: locs[rng.IntN(len(locs))], Class: AllClasses[1+rng.IntN(len(AllClasses)-1)], Line: int64(i)})
	}
	for i := 0; i < len(all); i += 37 {
		if err := s.appendExceptions(ctx, "R", int64(i), all[i:min(i+37, len(all))]); err != nil {
			t.Fatal(err)
		}
	}
	set := func(vs ...string) map[string]bool {
		m := map[string]bool{}
		for _, v := range vs {
			m[v] = true
		}
		return m
	}
	for _, f := range []Filter{
		{},
		{Classes: set(Drift)},
		{Classes: set(Drift, InvalidLine, Superseded)},
		{Locations: set("L2")},
		{Locations: set("L1", "L3")},
		{Classes: set(InvalidLine), Locations: set("L3")},
		{Classes: set(Drift, MissingInSnapshot), Locations: set("L1", "L2")},
		{Locations: set("bad loc")}, // not an id: never indexed, nothing selected
		{Classes: set(Match)},
	} {
		var want []Exception
		for i := range all {
			if f.match(&all[i]) && (len(f.Locations) == 0 || validID(all[i].Location)) {
				want = append(want, all[i])
			}
		}
		for _, limit := range []int{1, 7, 1000} {
			var got []Exception
			var cursor int64
			for pages := 0; ; pages++ {
				xs, next, err := s.Exceptions(ctx, "R", f, cursor, limit)
				if err != nil || pages > len(all) {
					t.Fatalf("%+v limit %d: %v", f, limit, err)
				}
				got = append(got, xs...)
				if next == 0 {
					break
				}
				if next <= cursor {
					t.Fatalf("%+v limit %d: cursor %d after %d", f, limit, next, cursor)
				}
				cursor = next
			}
			if !slices.EqualFunc(got, want, sameException) {
				t.Errorf("%+v limit %d: %d exceptions, want %d", f, limit, len(got), len(want))
			}
		}
		var each []Exception
		if err := s.each(ctx, "R", f, func(xs []Exception) error { each = append(each, xs...); return nil }); err != nil {
			t.Fatal(err)
		}
		byLine := func(a, b Exception) int { return int(a.Line - b.Line) }
		slices.SortFunc(each, byLine)
		if !slices.EqualFunc(each, want, sameException) {
			t.Errorf("%+v: each passes %d exceptions, want %d", f, len(each), len(want))
		}
	}
}

func sameException(a, b Exception) bool {
	return a.SKU == b.SKU && a.Class == b.Class && a.Location == b.Location
}

// A run recorded before the index (its exceptions in one list) is read,
// filtered, paged and published as before; resetting it removes the list.
func TestRunsRecordedBeforeTheIndexAreRead(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	s := NewRuns(rdb, "sf", 0)
	for i := range 30 {
		x := Exception{SKU: fmt.Sprintf("S%d", i), Location: "L1", Class: InvalidLine}
		if i%3 == 0 {
			x.Class, x.Location = Drift, "L2"
		}
		b, _ := json.Marshal(x)
		rdb.RPush(ctx, "sf:{recon:OLD}:x", b)
	}
	xs, next, err := s.Exceptions(ctx, "OLD", Filter{Classes: map[string]bool{Drift: true}}, 0, 4)
	if err != nil || len(xs) != 4 || xs[3].SKU != "S9" || next != 10 {
		t.Fatalf("old run, drift: %v next %d err %v", xs, next, err)
	}
	xs, _, err = s.Exceptions(ctx, "OLD", Filter{}, 0, 100)
	if err != nil || len(xs) != 30 {
		t.Fatalf("old run, all: %d %v", len(xs), err)
	}
	n := 0
	if err := s.each(ctx, "OLD", Filter{Locations: map[string]bool{"L2": true}}, func(xs []Exception) error { n += len(xs); return nil }); err != nil || n != 10 {
		t.Errorf("old run, each at L2: %d %v", n, err)
	}
	if err := s.Reset(ctx, "OLD"); err != nil || m.Exists("sf:{recon:OLD}:x") {
		t.Errorf("reset: %v, keys %v", err, m.Keys())
	}
}

// Saving a run renews the expiry of its exceptions and their index, and
// resetting it removes them.
func TestSaveAndResetCoverTheIndex(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	s := NewRuns(rdb, "sf", time.Hour)
	if err := s.appendExceptions(ctx, "R", 0, []Exception{{SKU: "A", Location: "L1", Class: Drift}}); err != nil {
		t.Fatal(err)
	}
	m.FastForward(50 * time.Minute)
	if err := s.Save(ctx, &Run{ID: "R", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	m.FastForward(50 * time.Minute)
	for _, k := range []string{"sf:{recon:R}:xs", "sf:{recon:R}:xi"} {
		if !m.Exists(k) {
			t.Errorf("%s expired before the run", k)
		}
	}
	if err := s.Reset(ctx, "R"); err != nil {
		t.Fatal(err)
	}
	if keys := m.Keys(); len(keys) != 1 || keys[0] != "sf:recon:runs" {
		t.Errorf("keys after reset: %v", keys)
	}
}

// A filter naming more ranges than a page reads is refused.
func TestFilterTooWide(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	f := Filter{Locations: map[string]bool{}}
	for i := range MaxFilterRanges/(len(AllClasses)-1) + 1 {
		f.Locations[fmt.Sprintf("L%d", i)] = true
	}
	if _, _, err := NewRuns(rdb, "sf", 0).Exceptions(context.Background(), "R", f, 0, 10); err != ErrFilterTooWide {
		t.Errorf("%d locations: %v", len(f.Locations), err)
	}
}

// The names of a run's keys are those runs were always stored under: runs
// recorded before are still found.
func TestRunKeysKeepTheirNames(t *testing.T) {
	s := NewRuns(nil, "sf", 0)
	for _, tc := range []struct{ got, want string }{
		{s.indexKey(), "sf:recon:runs"},
		{s.runKey("R"), "sf:{recon:R}"},
		{s.listKey("R"), "sf:{recon:R}:x"},
		{s.storeKey("R"), "sf:{recon:R}:xs"},
		{s.xindexKey("R"), "sf:{recon:R}:xi"},
	} {
		if tc.got != tc.want {
			t.Errorf("key %q, want %q", tc.got, tc.want)
		}
	}
}
