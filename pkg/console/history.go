package console

import (
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The metric families the overview reads, as the processors, the API, the
// lag watcher and the reconciler register them. Everything else the
// registry holds is not kept.
const (
	mRecords         = "stockflow_normalizer_records_total"        // topic, outcome
	mEntries         = "stockflow_ledger_entries_total"            // outcome, source_topic
	mDeadLetters     = "stockflow_dead_letters_total"              // class, stage
	mHoldDecisions   = "stockflow_hold_decisions_total"            // outcome
	mPOAcks          = "stockflow_po_acknowledgements_total"       // supplier, status
	mReconExceptions = "stockflow_reconciliation_exceptions_total" // source, location, class
	mConsumerLag     = "stockflow_consumer_lag"                    // group, topic, partition
	mInventoryLag    = "stockflow_inventory_event_lag_seconds"     // location
	mReservation     = "stockflow_order_reservation_seconds"       // channel
	mASN             = "stockflow_asn_processing_seconds"          // supplier
	mAckTurnaround   = "stockflow_po_ack_turnaround_seconds"       // supplier
	mHoldRoundTrip   = "stockflow_hold_roundtrip_seconds"
	mCommitments     = "stockflow_commitments_changed_total"       // late
	mRepromised      = "stockflow_supplier_repromised_lines_total" // supplier
	mLateUnits       = "stockflow_supplier_late_units_total"       // supplier
)

var sampledFamilies = map[string]bool{
	mRecords: true, mEntries: true, mDeadLetters: true, mHoldDecisions: true, mPOAcks: true, mReconExceptions: true,
	mConsumerLag: true, mInventoryLag: true, mReservation: true, mASN: true, mAckTurnaround: true, mHoldRoundTrip: true,
	mCommitments: true, mRepromised: true, mLateUnits: true,
}

// The history's shape: a point every sampleEvery for historySpan. Prometheus
// keeps the long term; this is only what the overview draws.
const (
	sampleEvery   = 10 * time.Second
	historySpan   = time.Hour
	historyPoints = 360
	// markEvery is how often a whole sample is kept for the tables, which
	// cover the last hour by label: 13 samples rather than 360.
	markEvery = 5 * time.Minute
)

// The names of the series the history derives at every sample. Lag has a
// series per consumer group: sLagPrefix + group.
const (
	sIngest      = "ingest"       // source records normalized per second
	sApplied     = "applied"      // ledger entries applied per second
	sNotApplied  = "not_applied"  // duplicate, stale and absorbed entries per second
	sDuplicates  = "duplicates"   // duplicate entries, % of all entries
	sDeadLetters = "dead_letters" // dead letters per second
	sHeld        = "held"         // hold requests held per second
	sNotHeld     = "not_held"     // hold requests rejected or timed out per second
	sPOAcks      = "po_acks"      // PO line acknowledgements per second
	sPromises    = "promises"     // order line promises published per second
	sLater       = "later"        // of them, those later than the one before, per second
	sLagPrefix   = "lag:"
)

// quantileSeries are the histograms the history keeps p50 and p99 of:
// series name prefix -> family. The series are prefix+".p50" and ".p99".
var quantileSeries = map[string]string{
	"freshness":     mInventoryLag,
	"reservation":   mReservation,
	"asn":           mASN,
	"po_turnaround": mAckTurnaround,
	"hold_rt":       mHoldRoundTrip,
}

// keySep joins label values into a map key; it cannot occur in them.
const keySep = "\x00"

// obs is one metric of a sample: a counter's or gauge's value, or a
// histogram's count and cumulative buckets.
type obs struct {
	labels []labelPair
	value  float64   // counter, gauge; a histogram's sample count
	upper  []float64 // histogram: the finite upper bounds
	cum    []float64 // histogram: cumulative counts at upper
}

type labelPair struct{ name, value string }

func (o obs) label(name string) string {
	for _, l := range o.labels {
		if l.name == name {
			return l.value
		}
	}
	return ""
}

func (o obs) key(by []string) string {
	vs := make([]string, len(by))
	for i, b := range by {
		vs[i] = o.label(b)
	}
	return strings.Join(vs, keySep)
}

// snapshot is one Gather, reduced to the families the overview reads.
type snapshot struct {
	at   time.Time
	fams map[string][]obs
}

// gather reads g. A Gather that fails in part still returns what it read,
// and so does gather, with the error.
func gather(g prometheus.Gatherer, at time.Time) (*snapshot, error) {
	mfs, err := g.Gather()
	s := &snapshot{at: at, fams: map[string][]obs{}}
	for _, mf := range mfs {
		name := mf.GetName()
		if !sampledFamilies[name] {
			continue
		}
		var shared []float64 // a family's metrics share their bounds: keep them once
		for _, m := range mf.GetMetric() {
			var o obs
			for _, l := range m.GetLabel() {
				o.labels = append(o.labels, labelPair{l.GetName(), l.GetValue()})
			}
			switch c, g, h := m.GetCounter(), m.GetGauge(), m.GetHistogram(); {
			case c != nil:
				o.value = c.GetValue()
			case g != nil:
				o.value = g.GetValue()
			case h != nil:
				o.value = float64(h.GetSampleCount())
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue // the sample count is the +Inf bucket
					}
					o.upper, o.cum = append(o.upper, b.GetUpperBound()), append(o.cum, float64(b.GetCumulativeCount()))
				}
				if slices.Equal(o.upper, shared) {
					o.upper = shared
				} else {
					shared = o.upper
				}
			default:
				continue
			}
			s.fams[name] = append(s.fams[name], o)
		}
	}
	return s, err
}

// sums adds a family's values up by the labels by (none: one total under
// the key ""). A nil snapshot has nothing.
func (s *snapshot) sums(fam string, by ...string) map[string]float64 {
	out := map[string]float64{}
	if s == nil {
		return out
	}
	for _, o := range s.fams[fam] {
		out[o.key(by)] += o.value
	}
	return out
}

// total is a family's values added up.
func (s *snapshot) total(fam string) float64 { return s.sums(fam)[""] }

// histo is a histogram's buckets, cumulative, over the finite bounds.
type histo struct {
	upper []float64
	cum   []float64
	count float64
}

// hists adds a histogram family's buckets up by the labels by. Metrics of
// other bounds than the first of their group's cannot be added and are left
// out; a HistogramVec has one set of bounds.
func (s *snapshot) hists(fam string, by ...string) map[string]histo {
	out := map[string]histo{}
	if s == nil {
		return out
	}
	for _, o := range s.fams[fam] {
		k := o.key(by)
		h, ok := out[k]
		if !ok {
			out[k] = histo{upper: o.upper, cum: slices.Clone(o.cum), count: o.value}
			continue
		}
		if !slices.Equal(h.upper, o.upper) {
			continue
		}
		for i, c := range o.cum {
			h.cum[i] += c
		}
		h.count += o.value
		out[k] = h
	}
	return out
}

// minus is what h counted since earlier, bucket by bucket. A counter never
// goes back in a process: if it did (other bounds, fewer counts), there is
// no earlier to subtract and h is all of it.
func (h histo) minus(earlier histo) histo {
	if earlier.count == 0 || earlier.count > h.count || !slices.Equal(h.upper, earlier.upper) {
		return h
	}
	d := histo{upper: h.upper, cum: make([]float64, len(h.cum)), count: h.count - earlier.count}
	for i := range h.cum {
		d.cum[i] = max(h.cum[i]-earlier.cum[i], 0)
	}
	return d
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: find the bucket the rank falls in and interpolate linearly inside
// it (the first bucket starts at 0; a rank above the last finite bound is
// that bound). NaN when nothing was observed.
func (h histo) quantile(q float64) float64 {
	if h.count <= 0 || len(h.upper) == 0 {
		return math.NaN()
	}
	rank := q * h.count
	i, _ := slices.BinarySearch(h.cum, rank) // the first bucket that reaches rank
	if i >= len(h.cum) {
		return h.upper[len(h.upper)-1]
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h.upper[i-1], h.cum[i-1]
	}
	in := h.cum[i] - below
	if in <= 0 {
		return h.upper[i]
	}
	return lower + (h.upper[i]-lower)*(rank-below)/in
}

// deltas is later minus earlier by key, never below 0: a process's
// counters only go up, and a label that appears counts from 0.
func deltas(earlier, later map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(later))
	for k, v := range later {
		out[k] = max(v-earlier[k], 0)
	}
	return out
}

// histDeltas is later minus earlier, histogram by histogram.
func histDeltas(earlier, later map[string]histo) map[string]histo {
	out := make(map[string]histo, len(later))
	for k, h := range later {
		out[k] = h.minus(earlier[k])
	}
	return out
}

func sum(m map[string]float64) float64 {
	var t float64
	for _, v := range m {
		t += v
	}
	return t
}

// derive is what happened between two samples, as the history's series:
// rates per second, the duplicate share and the windows' percentiles.
func derive(a, b *snapshot) map[string]float64 {
	dt := b.at.Sub(a.at).Seconds()
	rate := func(fam string) float64 { return sum(deltas(a.sums(fam), b.sums(fam))) / dt }
	entries := deltas(a.sums(mEntries, "outcome"), b.sums(mEntries, "outcome"))
	all := sum(entries)
	holds := deltas(a.sums(mHoldDecisions, "outcome"), b.sums(mHoldDecisions, "outcome"))
	promises := deltas(a.sums(mCommitments, "late"), b.sums(mCommitments, "late"))
	out := map[string]float64{
		sIngest:      rate(mRecords),
		sApplied:     entries["applied"] / dt,
		sNotApplied:  (all - entries["applied"]) / dt,
		sDuplicates:  percent(entries["duplicate"], all),
		sDeadLetters: rate(mDeadLetters),
		sHeld:        holds["held"] / dt,
		sNotHeld:     (sum(holds) - holds["held"]) / dt,
		sPOAcks:      rate(mPOAcks),
		sPromises:    sum(promises) / dt,
		sLater:       promises["true"] / dt,
	}
	for name, fam := range quantileSeries {
		h := b.hists(fam)[""].minus(a.hists(fam)[""])
		out[name+".p50"], out[name+".p99"] = h.quantile(.5), h.quantile(.99)
	}
	return out
}

// percent is part of whole in %, NaN when whole is 0.
func percent(part, whole float64) float64 {
	if whole == 0 {
		return math.NaN()
	}
	return 100 * part / whole
}

// point is one value of a series; NaN when the window had nothing to
// measure (no observations for a percentile).
type point struct {
	at time.Time
	v  float64
}

// history is the overview's memory: a point per series per sample for the
// last hour, the newest sample whole, and a whole sample every markEvery
// for the tables' hour.
type history struct {
	g     prometheus.Gatherer
	log   *slog.Logger
	every time.Duration
	span  time.Duration
	size  int
	mark  time.Duration

	mu      sync.RWMutex
	last    *snapshot
	marks   []*snapshot
	series  map[string][]point
	samples int
	lastErr string
}

func newHistory(g prometheus.Gatherer, log *slog.Logger) *history {
	return &history{g: g, log: log, every: sampleEvery, span: historySpan, size: historyPoints, mark: markEvery,
		series: map[string][]point{}}
}

func (c *Console) history() *history { return c.hist }

// sample gathers the registry and records it as taken at at.
func (h *history) sample(at time.Time) {
	if h.g == nil {
		return
	}
	s, err := gather(h.g, at)
	h.mu.Lock()
	defer h.mu.Unlock()
	// Said once, not every sample, until it changes.
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != "" && msg != h.lastErr {
		h.log.Warn("overview: metrics gathered in part", "err", err)
	}
	h.lastErr = msg
	h.record(s)
}

// record adds a sample. One not later than the newest is ignored: the
// series are in time order.
func (h *history) record(s *snapshot) {
	if h.last != nil && !s.at.After(h.last.at) {
		return
	}
	if h.last != nil {
		for name, v := range derive(h.last, s) {
			h.put(name, s.at, v)
		}
	}
	for g, v := range s.sums(mConsumerLag, "group") {
		h.put(sLagPrefix+g, s.at, v)
	}
	h.last = s
	h.samples++
	if len(h.marks) == 0 || s.at.Sub(h.marks[len(h.marks)-1].at) >= h.mark {
		h.marks = append(h.marks, s)
	}
	for len(h.marks) > 1 && s.at.Sub(h.marks[0].at) > h.span {
		h.marks = h.marks[1:]
	}
	h.prune(s.at)
}

// put appends a point, keeping at most size.
func (h *history) put(name string, at time.Time, v float64) {
	pts := append(h.series[name], point{at, v})
	if len(pts) > h.size {
		pts = slices.Delete(pts, 0, len(pts)-h.size)
	}
	h.series[name] = pts
}

// prune drops points older than the span, and so the series of a label
// not seen for that long (a consumer group gone).
func (h *history) prune(now time.Time) {
	for name, pts := range h.series {
		i := 0
		for i < len(pts) && now.Sub(pts[i].at) > h.span {
			i++
		}
		switch {
		case i == len(pts):
			delete(h.series, name)
		case i > 0:
			h.series[name] = slices.Delete(pts, 0, i)
		}
	}
}

// window is the history as a page reads it, copied out under the lock.
type window struct {
	samples  int
	every    time.Duration
	span     time.Duration
	from, to *snapshot // the tables' window: the oldest mark and the newest sample
	series   map[string][]point
}

func (h *history) read() window {
	h.mu.RLock()
	defer h.mu.RUnlock()
	w := window{samples: h.samples, every: h.every, span: h.span, to: h.last, series: make(map[string][]point, len(h.series))}
	if len(h.marks) > 0 {
		w.from = h.marks[0]
	}
	for k, v := range h.series {
		w.series[k] = slices.Clone(v)
	}
	return w
}

// last is a series' newest value, NaN when it has none.
func (w window) last(name string) float64 {
	pts := w.series[name]
	if len(pts) == 0 {
		return math.NaN()
	}
	return pts[len(pts)-1].v
}

// seconds is how long the tables' window is.
func (w window) seconds() float64 {
	if w.from == nil || w.to == nil {
		return 0
	}
	return w.to.at.Sub(w.from.at).Seconds()
}

// counts is what a counter family counted in the tables' window, by labels.
func (w window) counts(fam string, by ...string) map[string]float64 {
	if w.seconds() <= 0 {
		return map[string]float64{}
	}
	return deltas(w.from.sums(fam, by...), w.to.sums(fam, by...))
}

// hists is what a histogram family observed in the tables' window, by labels.
func (w window) hists(fam string, by ...string) map[string]histo {
	if w.seconds() <= 0 {
		return map[string]histo{}
	}
	return histDeltas(w.from.hists(fam, by...), w.to.hists(fam, by...))
}
