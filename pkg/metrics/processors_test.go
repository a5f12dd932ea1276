package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

func str(s string) *string { return &s }

func TestFoldedEntriesCountByOutcomeAndTopic(t *testing.T) {
	m := NewProcessors(prometheus.NewRegistry())
	now := time.Now()
	e := &events.LedgerEntry{EntryType: events.EntryReceipt, SKU: "S", Location: str("DC-1"), SourceTopic: str("wms"), EventTime: now.Add(-time.Second)}
	m.OnFolded(e, ledger.Outcome{Status: ledger.Applied}, now)
	m.OnFolded(e, ledger.Outcome{Status: ledger.Duplicate}, now)
	m.OnFolded(&events.LedgerEntry{EntryType: events.EntryHold, SKU: "S", EventTime: now}, ledger.Outcome{Status: ledger.Applied}, now)
	for _, c := range []struct {
		outcome, topic string
		want           float64
	}{{"applied", "wms", 1}, {"duplicate", "wms", 1}, {"applied", "api", 1}, {"stale", "wms", 0}} {
		if got := testutil.ToFloat64(m.entries.WithLabelValues(c.outcome, c.topic)); got != c.want {
			t.Errorf("entries{%s,%s} = %v, want %v", c.outcome, c.topic, got, c.want)
		}
	}
	// Only the applied warehouse movement is a movement's latency.
	if n := testutil.CollectAndCount(m.inventoryLag); n != 1 {
		t.Errorf("%d inventory lag series, want 1", n)
	}
}

func TestCountsThatDisagreeAreCounted(t *testing.T) {
	m := NewProcessors(nil)
	e := &events.LedgerEntry{EntryType: events.EntryCount, SKU: "S", Location: str("DC-1"), EventTime: time.Now()}
	m.OnFolded(e, ledger.Outcome{Status: ledger.Counted, CountDelta: -3}, time.Now())
	m.OnFolded(e, ledger.Outcome{Status: ledger.Counted}, time.Now())
	if got := testutil.ToFloat64(m.reconciliation.WithLabelValues("DC-1")); got != 1 {
		t.Errorf("disagreements at DC-1 = %v, want 1 (the count that agreed is not one)", got)
	}
}

// A label takes at most maxLabelValues values; the rest are "other", and an
// empty one is "none".
func TestLabelsAreBounded(t *testing.T) {
	m := NewProcessors(nil)
	for i := range maxLabelValues + 5 {
		m.OnPOAcknowledged(fmt.Sprintf("SUP-%d", i), events.AckAccepted, time.Hour)
	}
	m.OnPOAcknowledged("", events.AckAccepted, 0)
	if got := testutil.ToFloat64(m.poAcks.WithLabelValues("other", events.AckAccepted)); got != 5 {
		t.Errorf("other = %v, want 5", got)
	}
	if got := testutil.ToFloat64(m.poAcks.WithLabelValues("none", events.AckAccepted)); got != 1 {
		t.Errorf("none = %v, want 1", got)
	}
	// No turnaround is observed when it is unknown.
	if got := testutil.CollectAndCount(m.ackTurnaround); got != maxLabelValues+1 {
		t.Errorf("%d turnaround series, want %d", got, maxLabelValues+1)
	}
}

func TestCommitmentsCountBySupplier(t *testing.T) {
	m := NewProcessors(nil)
	prev := events.LinePromise{OpenQuantity: 5, ConfirmedNow: 5}
	m.OnCommitment(&events.CommitmentChanged{Late: true, Previous: &prev}, "SUP-1", 3)
	m.OnCommitment(&events.CommitmentChanged{Previous: &prev}, "SUP-1", 0)
	m.OnCommitment(&events.CommitmentChanged{}, "", 0) // a first promise, from an order
	for _, c := range []struct {
		got, want float64
		what      string
	}{
		{testutil.ToFloat64(m.commitments.WithLabelValues("true")), 1, "late promises"},
		{testutil.ToFloat64(m.commitments.WithLabelValues("false")), 2, "other promises"},
		{testutil.ToFloat64(m.repromised.WithLabelValues("SUP-1")), 2, "lines SUP-1 re-promised"},
		{testutil.ToFloat64(m.lateUnits.WithLabelValues("SUP-1")), 3, "units SUP-1 made late"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}
