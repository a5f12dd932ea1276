// Package metrics holds Stockflow's Prometheus metrics, attached to the
// processors from outside through their hooks (processors.Hook), as
// franz-go's kprom attaches to a Kafka client: the processors import no
// metrics library.
//
// The README's Observability section lists the metrics; docs/design.md
// explains what some of them count: §4.3 the index catch-ups, §5.4 counts
// that disagree with the book, §11.1 dead letters by class and stage.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/processors"
)

// Processors are the processors' metrics, one value for the normalizer,
// the folder with its hold desks and the snapshot reconciler: pass it in
// their configurations' Hooks. Labels are bounded: never a SKU; locations,
// suppliers and channels are capped at maxLabelValues distinct values
// each, the rest counted as "other".
type Processors struct {
	records        *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	eventLag       *prometheus.HistogramVec
	entries        *prometheus.CounterVec
	applySeconds   prometheus.Histogram
	batchEntries   prometheus.Histogram
	reservation    *prometheus.HistogramVec
	inventoryLag   *prometheus.HistogramVec
	asnProcessing  *prometheus.HistogramVec
	poAcks         *prometheus.CounterVec
	ackTurnaround  *prometheus.HistogramVec
	reconciliation *prometheus.CounterVec
	countDelta     prometheus.Histogram
	indexCatchUps  prometheus.Counter
	indexLines     prometheus.Counter
	commitments    *prometheus.CounterVec
	repromised     *prometheus.CounterVec
	lateUnits      *prometheus.CounterVec

	locations, suppliers, channels *bounded
}

// The processors' hooks Processors implements.
var (
	_ processors.HookSourceRecord   = (*Processors)(nil)
	_ processors.HookSourceLag      = (*Processors)(nil)
	_ processors.HookDeadLetter     = (*Processors)(nil)
	_ processors.HookPOAcknowledged = (*Processors)(nil)
	_ processors.HookIndexCatchUp   = (*Processors)(nil)
	_ processors.HookFolded         = (*Processors)(nil)
	_ processors.HookFoldBatch      = (*Processors)(nil)
	_ processors.HookStored         = (*Processors)(nil)
	_ processors.HookCommitment     = (*Processors)(nil)
)

const maxLabelValues = 200

// bounded caps a label's distinct values.
type bounded struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (b *bounded) value(v string) string {
	if v == "" {
		return "none"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[v] {
		return v
	}
	if len(b.seen) >= maxLabelValues {
		return "other"
	}
	b.seen[v] = true
	return v
}

// LatencyBuckets are the buckets of Stockflow's latency histograms, in
// seconds, from a millisecond to an hour.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}

// NewProcessors registers the processors' metrics with reg (nil: not
// registered).
func NewProcessors(reg prometheus.Registerer) *Processors {
	m := &Processors{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_normalizer_records_total",
			Help: "Source records normalized, by topic and outcome (entries, dead_letter)."}, []string{"topic", "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_dead_letters_total",
			Help: "Records sent to the dead-letter topic, by error class and stage."}, []string{"class", "stage"}),
		eventLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_event_lag_seconds",
			Help: "Now minus event_time when a source event is normalized, by source topic.", Buckets: LatencyBuckets}, []string{"topic"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_ledger_entries_total",
			Help: "Ledger entries by fold outcome (applied, duplicate, stale, absorbed) and source topic."}, []string{"outcome", "source_topic"}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stockflow_fold_apply_seconds",
			Help: "Latency of one pipelined Redis apply call.", Buckets: LatencyBuckets}),
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stockflow_fold_batch_entries",
			Help: "Ledger entries per partition per poll.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		locations: &bounded{seen: map[string]bool{}},
		suppliers: &bounded{seen: map[string]bool{}},
		channels:  &bounded{seen: map[string]bool{}},
	}
	m.newKPIs()
	if reg != nil {
		reg.MustRegister(m.records, m.deadLetters, m.eventLag, m.entries, m.applySeconds, m.batchEntries, m.reservation,
			m.inventoryLag, m.asnProcessing, m.poAcks, m.ackTurnaround, m.reconciliation, m.countDelta,
			m.indexCatchUps, m.indexLines, m.commitments, m.repromised, m.lateUnits)
	}
	return m
}

// newKPIs makes the business measures: latencies from an event's time to
// its effect in the ledger, supplier acknowledgements, count corrections.
func (m *Processors) newKPIs() {
	m.reservation = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_order_reservation_seconds",
		Help: "Order accepted (event time) to its reservation applied in the ledger, by channel.", Buckets: LatencyBuckets}, []string{"channel"})
	m.inventoryLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_inventory_event_lag_seconds",
		Help: "Warehouse movement (event time) to applied in the ledger, by location.", Buckets: LatencyBuckets}, []string{"location"})
	m.asnProcessing = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_asn_processing_seconds",
		Help: "Advance ship notice (event time) to applied in the ledger, by supplier.", Buckets: LatencyBuckets}, []string{"supplier"})
	m.poAcks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_po_acknowledgements_total",
		Help: "PO line acknowledgements by supplier and status."}, []string{"supplier", "status"})
	m.ackTurnaround = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_po_ack_turnaround_seconds",
		Help:    "PO released to acknowledged (event times), by supplier.",
		Buckets: []float64{60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400}}, []string{"supplier"})
	m.reconciliation = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_count_disagreements_total",
		Help: "Cycle counts that disagreed with the book, by location (snapshot reconciliation has stockflow_reconciliation_exceptions_total)."}, []string{"location"})
	m.countDelta = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stockflow_count_correction_units",
		Help: "Absolute on-hand correction made by cycle counts.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)})
	m.indexCatchUps = prometheus.NewCounter(prometheus.CounterOpts{Name: "stockflow_normalizer_index_catchups_total",
		Help: "Times a normalizer wrote the document index topic back into Redis because a reference was not found."})
	m.indexLines = prometheus.NewCounter(prometheus.CounterOpts{Name: "stockflow_normalizer_index_lines_restored_total",
		Help: "Document index lines written back into Redis from the index topic."})
	m.commitments = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_commitments_changed_total",
		Help: "Order line promises published, by whether the new one is later (or leaves more unpromised) than the one before."}, []string{"late"})
	m.repromised = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_supplier_repromised_lines_total",
		Help: "Order lines re-promised because of a supplier's acknowledgement, ship notice or PO, by supplier."}, []string{"supplier"})
	m.lateUnits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_supplier_late_units_total",
		Help: "Units of order lines a supplier's acknowledgement, ship notice or PO made later or left unpromised, by supplier."}, []string{"supplier"})
}

// OnCommitment counts a published promise, and, when a supplier's entry
// caused it, the lines it re-promised and the units it made late.
func (m *Processors) OnCommitment(c *events.CommitmentChanged, supplier string, lateUnits int64) {
	m.commitments.WithLabelValues(strconv.FormatBool(c.Late)).Inc()
	if supplier == "" || c.Previous == nil {
		return
	}
	sup := m.suppliers.value(supplier)
	m.repromised.WithLabelValues(sup).Inc()
	if lateUnits > 0 {
		m.lateUnits.WithLabelValues(sup).Add(float64(lateUnits))
	}
}

// OnSourceRecord counts a source record by topic and outcome.
func (m *Processors) OnSourceRecord(topic, outcome string) {
	m.records.WithLabelValues(topic, outcome).Inc()
}

// OnSourceLag observes a source event's age when it is decoded.
func (m *Processors) OnSourceLag(topic string, lag time.Duration) {
	m.eventLag.WithLabelValues(topic).Observe(lag.Seconds())
}

// OnDeadLetter counts a dead letter by class and stage.
func (m *Processors) OnDeadLetter(stage, class string) {
	m.deadLetters.WithLabelValues(class, stage).Inc()
}

// OnPOAcknowledged counts an acknowledged PO line, and observes its
// turnaround when known.
func (m *Processors) OnPOAcknowledged(supplier, status string, turnaround time.Duration) {
	sup := m.suppliers.value(supplier)
	m.poAcks.WithLabelValues(sup, status).Inc()
	if turnaround > 0 {
		m.ackTurnaround.WithLabelValues(sup).Observe(turnaround.Seconds())
	}
}

// OnIndexCatchUp counts a catch-up of the document index and its lines.
func (m *Processors) OnIndexCatchUp(lines int) {
	m.indexCatchUps.Inc()
	m.indexLines.Add(float64(lines))
}

// OnFoldBatch observes the ledger entries of one partition's poll.
func (m *Processors) OnFoldBatch(entries int) { m.batchEntries.Observe(float64(entries)) }

// OnStored observes one pipelined write of folded state to Redis.
func (m *Processors) OnStored(took time.Duration) { m.applySeconds.Observe(took.Seconds()) }

// OnFolded counts a folded entry by outcome and source topic, and
// observes the business measures an applied entry gives.
func (m *Processors) OnFolded(e *events.LedgerEntry, out ledger.Outcome, now time.Time) {
	src := "api"
	if e.SourceTopic != nil {
		src = *e.SourceTopic
	}
	switch out.Status {
	case ledger.Duplicate:
		m.entries.WithLabelValues("duplicate", src).Inc()
	case ledger.Stale:
		m.entries.WithLabelValues("stale", src).Inc()
	case ledger.Absorbed:
		m.entries.WithLabelValues("absorbed", src).Inc()
	default:
		m.entries.WithLabelValues("applied", src).Inc()
		m.observeKPIs(e, out, now)
	}
}

// observeKPIs records the business measures an applied entry gives.
func (m *Processors) observeKPIs(e *events.LedgerEntry, out ledger.Outcome, now time.Time) {
	since := now.Sub(e.EventTime).Seconds()
	loc := deref(e.Location)
	switch e.EntryType {
	case events.EntryOrderLine:
		m.reservation.WithLabelValues(m.channels.value(deref(e.Channel))).Observe(since)
	case events.EntryReceipt, events.EntryPick, events.EntryShipment, events.EntryAdjustment, events.EntryCount:
		m.inventoryLag.WithLabelValues(m.locations.value(loc)).Observe(since)
	case events.EntryASNLine:
		m.asnProcessing.WithLabelValues(m.suppliers.value(deref(e.SupplierID))).Observe(since)
	}
	if out.Status == ledger.Counted && out.CountDelta != 0 {
		m.reconciliation.WithLabelValues(m.locations.value(loc)).Inc()
		m.countDelta.Observe(float64(max(out.CountDelta, -out.CountDelta)))
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
