package processors

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the processors' Prometheus metrics. Labels are bounded: never
// a SKU; locations, suppliers and channels are capped at maxLabelValues
// distinct values each, the rest counted as "other".
type Metrics struct {
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

	locations, suppliers, channels *bounded
}

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

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}

// NewMetrics registers the processors' metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_normalizer_records_total",
			Help: "Source records normalized, by topic and outcome (entries, dead_letter, skipped)."}, []string{"topic", "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_dead_letters_total",
			Help: "Records sent to the dead-letter topic, by error class and stage."}, []string{"class", "stage"}),
		eventLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_event_lag_seconds",
			Help: "Now minus event_time when a source event is normalized, by source topic.", Buckets: latencyBuckets}, []string{"topic"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_ledger_entries_total",
			Help: "Ledger entries by fold outcome (applied, duplicate, stale, absorbed) and source topic."}, []string{"outcome", "source_topic"}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stockflow_fold_apply_seconds",
			Help: "Latency of one pipelined Redis apply call.", Buckets: latencyBuckets}),
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stockflow_fold_batch_entries",
			Help: "Ledger entries per partition per poll.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		reservation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_order_reservation_seconds",
			Help: "Order accepted (event time) to its reservation applied in the ledger, by channel.", Buckets: latencyBuckets}, []string{"channel"}),
		inventoryLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_inventory_event_lag_seconds",
			Help: "Warehouse movement (event time) to applied in the ledger, by location.", Buckets: latencyBuckets}, []string{"location"}),
		asnProcessing: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_asn_processing_seconds",
			Help: "Advance ship notice (event time) to applied in the ledger, by supplier.", Buckets: latencyBuckets}, []string{"supplier"}),
		poAcks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_po_acknowledgements_total",
			Help: "PO line acknowledgements by supplier and status."}, []string{"supplier", "status"}),
		ackTurnaround: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stockflow_po_ack_turnaround_seconds",
			Help:    "PO released to acknowledged (event times), by supplier.",
			Buckets: []float64{60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400}}, []string{"supplier"}),
		reconciliation: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_count_disagreements_total",
			Help: "Cycle counts that disagreed with the book, by location (snapshot reconciliation has stockflow_reconciliation_exceptions_total)."}, []string{"location"}),
		countDelta: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stockflow_count_correction_units",
			Help: "Absolute on-hand correction made by cycle counts.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		indexCatchUps: prometheus.NewCounter(prometheus.CounterOpts{Name: "stockflow_normalizer_index_catchups_total",
			Help: "Times a normalizer wrote the document index topic back into Redis because a reference was not found."}),
		indexLines: prometheus.NewCounter(prometheus.CounterOpts{Name: "stockflow_normalizer_index_lines_restored_total",
			Help: "Document index lines written back into Redis from the index topic."}),
		locations: &bounded{seen: map[string]bool{}},
		suppliers: &bounded{seen: map[string]bool{}},
		channels:  &bounded{seen: map[string]bool{}},
	}
	if reg != nil {
		reg.MustRegister(m.records, m.deadLetters, m.eventLag, m.entries, m.applySeconds, m.batchEntries, m.reservation,
			m.inventoryLag, m.asnProcessing, m.poAcks, m.ackTurnaround, m.reconciliation, m.countDelta,
			m.indexCatchUps, m.indexLines)
	}
	return m
}
