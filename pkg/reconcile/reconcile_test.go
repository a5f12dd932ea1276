package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// A run over a ledger written as the fold writes it (position hashes and
// movement journals), in miniredis: the embedded mode's Redis must serve
// the reads reconciliation makes.
func TestSessionClassesPositions(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	asOf := now.Add(-time.Hour)
	ms := func(d time.Duration) float64 { return float64(asOf.Add(d).UnixMilli()) }
	pos := func(sku, loc string, fields ...any) {
		rdb.HSet(ctx, "sf:{"+sku+"}:p:"+loc, append([]any{"v", 1}, fields...)...)
	}
	journal := func(sku, loc string, member string, at float64) {
		rdb.ZAdd(ctx, "sf:{"+sku+"}:j:"+loc, redis.Z{Score: at, Member: member})
	}
	pos("A", "L1", "oh", 110)
	journal("A", "L1", "0:1:100", ms(-30*time.Minute))
	journal("A", "L1", "0:2:10", ms(time.Minute)) // after T
	pos("B", "L1", "oh", 22)
	journal("B", "L1", "0:3:25", ms(-time.Millisecond))
	journal("B", "L1", "0:4:-3", ms(time.Millisecond))
	pos("C", "L1", "oh", 28, "ct", int64(ms(time.Minute)))
	pos("D", "L1", "oh", 12)
	pos("D", "L2", "oh", 3) // L2 not covered: not missing
	pos("E", "L1")          // known, nothing on hand, not listed: nothing to say

	led := ledger.New(rdb, ledger.Config{})
	r := New(Config{Ledger: led, Runs: NewRuns(rdb, "sf", 0), Now: func() time.Time { return now }, Batch: 3})
	sess, _, err := r.Start(ctx, &events.SnapshotStarted{Meta: events.Meta{Source: "ERP"}, SnapshotID: "S1", Locations: []string{"L1"}, AsOf: asOf, ExpectedLines: 5})
	if err != nil || sess == nil {
		t.Fatalf("start: %v %v", sess, err)
	}
	for i, l := range []events.SnapshotLine{
		{SKU: "A", Location: "L1", Quantity: 95}, {SKU: "B", Location: "L1", Quantity: 25}, {SKU: "C", Location: "L1", Quantity: 1},
		{SKU: "A", Location: "L1", Quantity: 95}, {SKU: "F", Location: "L1", Quantity: 2, UoM: "CS"},
	} {
		l.SnapshotID, l.Line = "S1", int64(i+1)
		if err := sess.Line(ctx, &l); err != nil {
			t.Fatal(err)
		}
	}
	run, err := sess.End(ctx, &events.SnapshotEnded{SnapshotID: "S1", LineCount: 5})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != StatusCompleted {
		t.Fatalf("run %+v", run)
	}
	want := map[string]int64{Match: 1, Drift: 1, Superseded: 1, InvalidLine: 2, MissingInSnapshot: 1}
	for c, n := range want {
		if run.Counts[c] != n {
			t.Errorf("%s: %d, want %d (%v)", c, run.Counts[c], n, run.Counts)
		}
	}
	xs, next, err := r.Runs().Exceptions(ctx, "S1", Filter{}, 0, 100)
	if err != nil || next != 0 || len(xs) != 5 {
		t.Fatalf("exceptions %v next %d err %v", xs, next, err)
	}
	if xs[0].SKU != "A" || xs[0].Class != Drift || *xs[0].LedgerQuantity != 100 || xs[0].Difference != -5 {
		t.Errorf("A: %+v", xs[0])
	}
	if last := xs[len(xs)-1]; last.SKU != "D" || last.Class != MissingInSnapshot || *last.LedgerQuantity != 12 || last.SnapshotQuantity != nil {
		t.Errorf("D: %+v", last)
	}

	// The same snapshot again is the first run; a second start of a running
	// one begins again.
	if s2, again, err := r.Start(ctx, &events.SnapshotStarted{SnapshotID: "S1", Locations: []string{"L1"}, AsOf: asOf}); s2 != nil || err != nil || again.StartedAt != run.StartedAt {
		t.Errorf("repeat: %v %+v %v", s2, again, err)
	}
	if _, err := r.Apply(ctx, "S1", ApplyRequest{Classes: []string{Superseded}}); !errors.Is(err, ErrBadClass) {
		t.Errorf("apply superseded: %v", err)
	}
	// A day later the journal no longer holds every movement since T: a
	// count at T would drop some, so the run can no longer be applied.
	later := New(Config{Ledger: led, Runs: NewRuns(rdb, "sf", 0), Now: func() time.Time { return now.Add(23 * time.Hour) }})
	if _, err := later.Apply(ctx, "S1", ApplyRequest{}); !errors.Is(err, ErrNotApplicable) || !strings.Contains(err.Error(), "journal window") {
		t.Errorf("apply a run past the journal window: %v", err)
	}
	old, refused, err := r.Start(ctx, &events.SnapshotStarted{SnapshotID: "S2", Locations: []string{"L1"}, AsOf: now.Add(-25 * time.Hour)})
	if old != nil || err != nil || refused.Status != StatusRefused || !strings.Contains(refused.Reason, "journal window") {
		t.Errorf("old snapshot: %+v %v", refused, err)
	}
	if _, err := r.Apply(ctx, "S2", ApplyRequest{}); !errors.Is(err, ErrNotApplicable) {
		t.Errorf("apply a refused run: %v", err)
	}
}

// A completed run's auto-apply writes a count at T for each small drift
// and leaves the large one; the entries say what a correction is.
func TestAutoApplyWritesCountsAtT(t *testing.T) {
	ctx := context.Background()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "ledger", "recon"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("ledger"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	for sku, oh := range map[string]int{"A": 10, "B": 10} {
		rdb.HSet(ctx, "sf:{"+sku+"}:p:L1", "v", 1, "oh", oh)
	}
	now := time.Now().UTC()
	asOf := now.Add(-time.Hour).Truncate(time.Millisecond)
	r := New(Config{Ledger: ledger.New(rdb, ledger.Config{}), Runs: NewRuns(rdb, "sf", 0), Producer: cl, Codec: codec,
		LedgerTopic: "ledger", ReconciliationTopic: "recon", AutoApplyUnits: 2})
	sess, _, err := r.Start(ctx, &events.SnapshotStarted{Meta: events.Meta{Source: "ERP"}, SnapshotID: "S", Locations: []string{"L1"}, AsOf: asOf, ExpectedLines: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range []events.SnapshotLine{{SKU: "A", Location: "L1", Quantity: 8}, {SKU: "B", Location: "L1", Quantity: 30}} {
		l.Line = int64(i + 2)
		if err := sess.Line(ctx, &l); err != nil {
			t.Fatal(err)
		}
	}
	run, err := sess.End(ctx, &events.SnapshotEnded{SnapshotID: "S", LineCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	if run.Counts[Drift] != 2 || len(run.Applies) != 1 || run.Applies[0].Entries != 1 || run.Applies[0].By != "auto-apply" {
		t.Fatalf("run %+v", run)
	}
	stored, _ := r.Runs().Get(ctx, "S")
	if len(stored.Applies) != 1 {
		t.Errorf("the stored run does not record the auto-apply: %+v", stored)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fs := cl.PollFetches(pctx)
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("%d ledger records, want 1 (A's -2; B's +20 is over the limit)", len(recs))
	}
	v, err := codec.Decode(ctx, recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	e := v.(*events.LedgerEntry)
	if string(recs[0].Key) != "A" || e.EntryType != events.EntryCount || e.SKU != "A" || *e.Location != "L1" || e.Quantity != 8 ||
		!e.AsOf.Equal(asOf) || *e.Reason != ReasonReconciliation || e.EventID != CorrectionID("S", "A", "L1") || e.Source != "ERP" {
		t.Errorf("correction: key %s %+v", recs[0].Key, e)
	}
}
