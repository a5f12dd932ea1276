package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

// countStored pages through every stored exception of run id.
func countStored(t *testing.T, r *Reconciler, id string) int {
	t.Helper()
	n := 0
	var cursor int64
	for {
		xs, next, err := r.Runs().Exceptions(context.Background(), id, Filter{}, cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n += len(xs)
		if next == 0 {
			return n
		}
		cursor = next
	}
}

// With the default caps, a run stores at most 100,000 exceptions: the
// rest are counted by class, and the run says it was truncated.
func TestRunStoresAtMostTheDefaultCap(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r, _, _ := testReconciler(t, now, Config{})
	lines := make([]events.SnapshotLine, 100_010)
	for i := range lines {
		lines[i] = events.SnapshotLine{SKU: "S" + fmt.Sprint(i), Location: "L1", Quantity: -1}
	}
	run := runLines(t, r, now, "JUNK", lines)
	if run.Status != StatusCompleted || run.Counts[InvalidLine] != 100_010 {
		t.Fatalf("run %s, counts %v", run.Status, run.Counts)
	}
	if n := countStored(t, r, "JUNK"); n != 100_000 {
		t.Errorf("%d exceptions stored, want the cap of 100000", n)
	}
	stored, err := r.Runs().Get(context.Background(), "JUNK")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(stored)
	if !strings.Contains(string(b), `"truncated":"truncated: 100000 of the run's 100010 exceptions are stored`) ||
		!strings.Contains(string(b), `"unstored":{"invalid_line":10}`) {
		t.Errorf("the stored run does not say it was truncated: %s", b)
	}
}

// A snapshot announcing more lines than the default cap of a run is
// refused before any line is compared.
func TestSnapshotOverTheDefaultLineCapIsRefused(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r, _, _ := testReconciler(t, now, Config{})
	sess, run, err := r.Start(context.Background(), &events.SnapshotStarted{SnapshotID: "HUGE", Locations: []string{"L1"},
		AsOf: now.Add(-time.Hour), ExpectedLines: 1_000_001})
	if sess != nil || err != nil || run.Status != StatusRefused || !strings.Contains(run.Reason, "more than the 1000000 a run compares") {
		t.Errorf("start: %v %+v %v", sess, run, err)
	}
}

// Lines past the cap that were not announced are counted, not compared:
// the run ends incomplete and says why.
func TestLinesPastTheCapAreNotCompared(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r, _, _ := testReconciler(t, now, Config{MaxLines: 3})
	sess, _, err := r.Start(ctx, &events.SnapshotStarted{SnapshotID: "LIAR", Locations: []string{"L1"}, AsOf: now.Add(-time.Hour), ExpectedLines: 3})
	if err != nil || sess == nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := sess.Line(ctx, &events.SnapshotLine{SnapshotID: "LIAR", Line: int64(i + 2), SKU: fmt.Sprint("S", i), Location: "L1", Quantity: -1}); err != nil {
			t.Fatal(err)
		}
	}
	run, err := sess.End(ctx, &events.SnapshotEnded{SnapshotID: "LIAR", LineCount: 10})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != StatusIncomplete || run.Lines != 10 || run.Counts[InvalidLine] != 3 ||
		!strings.Contains(run.Reason, "10 lines arrived, more than the 3 a run compares") {
		t.Errorf("run %+v", run)
	}
}

// Past the cap of stored exceptions, the run's summary on the topic says
// it was truncated, only the stored exceptions are published, and a class
// with exceptions left out cannot be applied; one without can.
func TestTruncatedRunIsSaidAndNotAppliedInPart(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "ledger", "recon"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("recon"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, rdb, _ := testReconciler(t, now, Config{Producer: cl, Codec: codec, LedgerTopic: "ledger", ReconciliationTopic: "recon", MaxStoredExceptions: 4})
	rdb.HSet(ctx, "sf:{A}:p:L2", "v", 1, "oh", 10)
	var lines []events.SnapshotLine
	for i := range 5 {
		lines = append(lines, events.SnapshotLine{SKU: fmt.Sprint("NEW", i), Location: "L1", Quantity: 1})
	}
	lines = append(lines, events.SnapshotLine{SKU: "A", Location: "L2", Quantity: 7})
	run := runLines(t, r, now, "T", lines)
	if run.Counts[UnknownToLedger] != 5 || run.Counts[Drift] != 1 || run.Unstored[UnknownToLedger] != 1 || run.Unstored[Drift] != 1 {
		t.Fatalf("run %+v", run)
	}
	if _, err := r.Apply(ctx, "T", ApplyRequest{Classes: []string{UnknownToLedger}}); !errors.Is(err, ErrNotApplicable) ||
		!strings.Contains(err.Error(), "did not store 1 of its unknown_to_ledger exceptions") {
		t.Errorf("apply unknown_to_ledger: %v", err)
	}
	if _, err := r.Apply(ctx, "T", ApplyRequest{Classes: []string{MissingInSnapshot}}); err != nil {
		t.Errorf("apply missing_in_snapshot (none left out): %v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var xs int
	var sum *events.ReconciliationSummary
	for sum == nil && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(rec *kgo.Record) {
			v, err := codec.Decode(ctx, rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			switch e := v.(type) {
			case *events.ReconciliationException:
				xs++
			case *events.ReconciliationSummary:
				sum = e
			}
		})
	}
	if sum == nil || sum.Reason == nil || !strings.Contains(*sum.Reason, "truncated: 4 of the run's 6 exceptions are stored") || sum.Counts[UnknownToLedger] != 5 {
		t.Errorf("summary %+v", sum)
	}
	if xs != 4 {
		t.Errorf("%d exceptions published, want the 4 stored", xs)
	}
}

// What a stored exception carries is bounded, whatever a line on the
// topic held; and invalid lines at locations the snapshot does not cover
// share one label of the exception metric, not one each.
func TestStoredExceptionsAndMetricsAreBounded(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	r, _, _ := testReconciler(t, now, Config{Registry: reg})
	huge := strings.Repeat("<\x00\"é", 25_000) // escaped by JSON, in up to 6 bytes each
	lines := []events.SnapshotLine{{SKU: huge, Location: "L1", Quantity: 1, Error: &huge}}
	for i := range 500 {
		lines = append(lines, events.SnapshotLine{SKU: "A", Location: fmt.Sprint("JUNK-", i), Quantity: 1})
	}
	runLines(t, r, now, "B", lines)
	xs, _, err := r.Runs().Exceptions(context.Background(), "B", Filter{}, 0, 1)
	if err != nil || len(xs) != 1 {
		t.Fatal(xs, err)
	}
	if b, _ := json.Marshal(xs[0]); len(b) > 1000 {
		t.Errorf("a stored exception holds %d bytes", len(b))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "stockflow_reconciliation_exceptions_total" && len(mf.GetMetric()) > 2 {
			t.Errorf("%d series of the exception metric for 2 locations", len(mf.GetMetric()))
		}
	}
}
