package console

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testMetrics are the families the overview reads, registered with the
// names and labels the service gives them.
type testMetrics struct {
	reg                                          *prometheus.Registry
	records, entries, dead, holds, acks, recon   *prometheus.CounterVec
	lag                                          *prometheus.GaugeVec
	inventoryLag, reservation, asn, ackTurnround *prometheus.HistogramVec
	holdRT                                       prometheus.Histogram
}

var testBuckets = []float64{.01, .1, 1, 10}

func newTestMetrics(t *testing.T) *testMetrics {
	t.Helper()
	counter := func(name string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, labels)
	}
	hist := func(name string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: name, Buckets: testBuckets}, labels)
	}
	m := &testMetrics{
		reg:          prometheus.NewRegistry(),
		records:      counter(mRecords, "topic", "outcome"),
		entries:      counter(mEntries, "outcome", "source_topic"),
		dead:         counter(mDeadLetters, "class", "stage"),
		holds:        counter(mHoldDecisions, "outcome"),
		acks:         counter(mPOAcks, "supplier", "status"),
		recon:        counter(mReconExceptions, "source", "location", "class"),
		lag:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mConsumerLag, Help: "lag"}, []string{"group", "topic", "partition"}),
		inventoryLag: hist(mInventoryLag, "location"),
		reservation:  hist(mReservation, "channel"),
		asn:          hist(mASN, "supplier"),
		ackTurnround: hist(mAckTurnaround, "supplier"),
		holdRT:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: mHoldRoundTrip, Help: "rt", Buckets: testBuckets}),
	}
	m.reg.MustRegister(m.records, m.entries, m.dead, m.holds, m.acks, m.recon, m.lag,
		m.inventoryLag, m.reservation, m.asn, m.ackTurnround, m.holdRT)
	return m
}

// commitmentMetrics are the families the processors count published
// promises and supplier re-promises in, registered apart from the others:
// a process that folds nothing has none of them.
type commitmentMetrics struct {
	changed, lines, lateUnits *prometheus.CounterVec
}

func (m *testMetrics) withCommitments() *commitmentMetrics {
	counter := func(name, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, []string{label})
	}
	c := &commitmentMetrics{
		changed:   counter(mCommitments, "late"),
		lines:     counter(mRepromised, "supplier"),
		lateUnits: counter(mLateUnits, "supplier"),
	}
	m.reg.MustRegister(c.changed, c.lines, c.lateUnits)
	return c
}

func add(c prometheus.Counter, n int) {
	for range n {
		c.Inc()
	}
}

func observe(o prometheus.Observer, v float64, n int) {
	for range n {
		o.Observe(v)
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }

func TestCountersBecomeRatesBetweenSamples(t *testing.T) {
	m := newTestMetrics(t)
	add(m.records.WithLabelValues("orders", "entries"), 500) // before the first sample: not in the rate
	h := newHistory(m.reg, slog.New(slog.DiscardHandler))
	h.sample(t0)

	add(m.records.WithLabelValues("orders", "entries"), 70)
	add(m.records.WithLabelValues("movements", "dead_letter"), 30)
	add(m.entries.WithLabelValues("applied", "orders"), 40)
	add(m.entries.WithLabelValues("duplicate", "orders"), 8)
	add(m.entries.WithLabelValues("stale", "movements"), 2)
	add(m.dead.WithLabelValues("invalid", "normalizer"), 5) // a label that appears counts from 0
	add(m.holds.WithLabelValues("held"), 3)
	add(m.holds.WithLabelValues("rejected"), 1)
	add(m.holds.WithLabelValues("timeout"), 1)
	add(m.acks.WithLabelValues("SUP-1", "accepted"), 6)
	h.sample(t0.Add(10 * time.Second))

	w := h.read()
	for name, want := range map[string]float64{
		sIngest: 10, sApplied: 4, sNotApplied: 1, sDuplicates: 16, sDeadLetters: 0.5,
		sHeld: 0.3, sNotHeld: 0.2, sPOAcks: 0.6,
	} {
		if got := w.last(name); !near(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n := len(w.series[sIngest]); n != 1 {
		t.Errorf("ingest has %d points after two samples, want 1", n)
	}

	// A window with nothing: rates of 0, no duplicate share.
	h.sample(t0.Add(20 * time.Second))
	w = h.read()
	if got := w.last(sIngest); got != 0 {
		t.Errorf("ingest in a quiet window = %v, want 0", got)
	}
	if got := w.last(sDuplicates); !math.IsNaN(got) {
		t.Errorf("duplicate share with no entries = %v, want NaN", got)
	}
	// The tables' window counts from the first sample.
	if got := w.counts(mRecords)[""]; got != 100 {
		t.Errorf("records in the window = %v, want 100", got)
	}
	if got := w.to.sums(mRecords)[""]; got != 600 {
		t.Errorf("records in total = %v, want 600", got)
	}
}

func TestPromisesBecomeRatesBetweenSamples(t *testing.T) {
	m := newTestMetrics(t)
	c := m.withCommitments()
	add(c.changed.WithLabelValues("true"), 50) // before the first sample: not in the rate
	h := newHistory(m.reg, slog.New(slog.DiscardHandler))
	h.sample(t0)

	add(c.changed.WithLabelValues("false"), 15)
	add(c.changed.WithLabelValues("true"), 5)
	add(c.lines.WithLabelValues("SUP-1"), 4)
	c.lateUnits.WithLabelValues("SUP-1").Add(120)
	h.sample(t0.Add(10 * time.Second))

	w := h.read()
	for name, want := range map[string]float64{sPromises: 2, sLater: 0.5} {
		if got := w.last(name); !near(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := w.counts(mLateUnits, "supplier")["SUP-1"]; got != 120 {
		t.Errorf("late units of SUP-1 in the window = %v, want 120", got)
	}
	if got := w.counts(mCommitments, "late")["true"]; got != 5 {
		t.Errorf("later promises in the window = %v, want 5", got)
	}
}

func TestPercentilesInterpolateInsideTheBucket(t *testing.T) {
	m := newTestMetrics(t)
	observe(m.inventoryLag.WithLabelValues("DC1"), 0.005, 1000) // before the window: left out
	h := newHistory(m.reg, slog.New(slog.DiscardHandler))
	h.sample(t0)
	// 100 observations across two locations: 60 in (0.01, 0.1], 38 in
	// (0.1, 1], 2 in (1, 10]. Cumulative: 0, 60, 98, 100.
	observe(m.inventoryLag.WithLabelValues("DC1"), 0.05, 60)
	observe(m.inventoryLag.WithLabelValues("DC2"), 0.5, 38)
	observe(m.inventoryLag.WithLabelValues("DC2"), 5, 2)
	h.sample(t0.Add(10 * time.Second))

	w := h.read()
	// p50: rank 50 in (0.01, 0.1], 50 of its 60: 0.01 + 0.09*50/60.
	if got, want := w.last("freshness.p50"), 0.01+0.09*50/60; !near(got, want) {
		t.Errorf("p50 = %v, want %v", got, want)
	}
	// p99: rank 99 in (1, 10], 1 of its 2: 1 + 9/2.
	if got, want := w.last("freshness.p99"), 5.5; !near(got, want) {
		t.Errorf("p99 = %v, want %v", got, want)
	}
	if got := w.last("reservation.p50"); !math.IsNaN(got) {
		t.Errorf("p50 with no observations = %v, want NaN", got)
	}

	// By label, over the tables' window.
	by := w.hists(mInventoryLag, "location")
	if by["DC1"].count != 60 || by["DC2"].count != 40 {
		t.Fatalf("counts by location = %v, %v; want 60, 40", by["DC1"].count, by["DC2"].count)
	}
	if got := by["DC2"].quantile(.5); got <= 0.1 || got > 1 {
		t.Errorf("DC2 p50 = %v, want in (0.1, 1]", got)
	}

	// A window with nothing observed has no percentile.
	h.sample(t0.Add(20 * time.Second))
	if got := h.read().last("freshness.p99"); !math.IsNaN(got) {
		t.Errorf("p99 of a quiet window = %v, want NaN", got)
	}
}

func TestQuantileEdges(t *testing.T) {
	h := histo{upper: []float64{1, 2, 4}, cum: []float64{0, 0, 0}, count: 10}
	if got := h.quantile(.5); got != 4 {
		t.Errorf("all above the last bound: %v, want the last bound 4", got)
	}
	h = histo{upper: []float64{1, 2, 4}, cum: []float64{4, 4, 4}, count: 4}
	if got := h.quantile(.5); got != 0.5 {
		t.Errorf("first bucket starts at 0: %v, want 0.5", got)
	}
	if got := (histo{}).quantile(.5); !math.IsNaN(got) {
		t.Errorf("empty: %v, want NaN", got)
	}
	later := histo{upper: []float64{1, 2}, cum: []float64{1, 3}, count: 3}
	if d := later.minus(histo{upper: []float64{1, 2}, cum: []float64{1, 5}, count: 5}); d.count != 3 {
		t.Errorf("a count that went back is not subtracted: %v", d.count)
	}
}

func TestRingKeepsAnHour(t *testing.T) {
	m := newTestMetrics(t)
	h := newHistory(m.reg, slog.New(slog.DiscardHandler))
	at := t0
	for range 400 {
		m.records.WithLabelValues("orders", "entries").Inc()
		h.sample(at)
		at = at.Add(10 * time.Second)
	}
	w := h.read()
	if n := len(w.series[sIngest]); n != historyPoints {
		t.Errorf("ingest keeps %d points, want %d", n, historyPoints)
	}
	if pts := w.series[sIngest]; w.to.at.Sub(pts[0].at) > historySpan {
		t.Errorf("oldest point %v is more than an hour before %v", pts[0].at, w.to.at)
	}
	if n := len(h.marks); n > int(historySpan/markEvery)+1 {
		t.Errorf("%d whole samples kept for the tables, want at most %d", n, historySpan/markEvery+1)
	}
	if s := w.seconds(); s > historySpan.Seconds() || s < (historySpan-markEvery).Seconds() {
		t.Errorf("tables' window %v s, want between 55 and 60 min", s)
	}
	if got := w.last(sIngest); !near(got, 0.1) {
		t.Errorf("ingest = %v, want 0.1/s", got)
	}
}

// switched gathers whichever registry it has.
type switched struct{ prometheus.Gatherer }

func TestSeriesNotSeenForAnHourAreDropped(t *testing.T) {
	before := prometheus.NewRegistry()
	old := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mConsumerLag, Help: "lag"}, []string{"group", "topic", "partition"})
	before.MustRegister(old)
	old.WithLabelValues("gone", "t", "0").Set(7)
	old.WithLabelValues("stays", "t", "0").Set(3)
	after := prometheus.NewRegistry()
	cur := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mConsumerLag, Help: "lag"}, []string{"group", "topic", "partition"})
	after.MustRegister(cur)
	cur.WithLabelValues("stays", "t", "0").Set(5)
	cur.WithLabelValues("stays", "t", "1").Set(4)

	g := &switched{before}
	h := newHistory(g, slog.New(slog.DiscardHandler))
	h.sample(t0)
	if got := h.read().last(sLagPrefix + "gone"); got != 7 {
		t.Fatalf("lag of gone = %v, want 7 at once", got)
	}
	g.Gatherer = after
	h.sample(t0.Add(30 * time.Minute))
	if _, ok := h.read().series[sLagPrefix+"gone"]; !ok {
		t.Fatal("a group unseen for 30 min is dropped already")
	}
	h.sample(t0.Add(61 * time.Minute))
	w := h.read()
	if _, ok := w.series[sLagPrefix+"gone"]; ok {
		t.Error("a group unseen for more than an hour is still kept")
	}
	if got := w.last(sLagPrefix + "stays"); got != 9 {
		t.Errorf("lag of stays = %v, want 9 (its partitions added up)", got)
	}
}

func TestRunSamplesAtOnceAndThenEveryInterval(t *testing.T) {
	m := newTestMetrics(t)
	m.records.WithLabelValues("orders", "entries").Add(42)
	c, err := New(Config{Metrics: m.reg})
	if err != nil {
		t.Fatal(err)
	}
	h := c.history()
	h.every = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for h.read().samples < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w := h.read()
	if w.samples < 3 {
		t.Fatalf("%d samples, want at least 3", w.samples)
	}
	if got := w.to.total(mRecords); got != 42 {
		t.Errorf("records total = %v, want 42", got)
	}
	if c.history() != h {
		t.Error("a console's history is not the same from one call to the next")
	}
}

func TestRunWithoutRegistryWaits(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.history().read().samples; n != 0 {
		t.Errorf("%d samples without a registry", n)
	}
}

func TestLineChart(t *testing.T) {
	to := t0.Add(time.Hour)
	format := unitPerSecond.format
	if c := lineChart("x", format, to, time.Hour, line{Name: "a", Points: []point{{to, math.NaN()}}}); !c.Empty {
		t.Error("a chart of NaN only is not empty")
	}
	if c := lineChart("x", format, to, time.Hour); !c.Empty {
		t.Error("a chart of no series is not empty")
	}
	pts := []point{
		{to.Add(-2 * time.Hour), 1000}, // before the span: not drawn, not in the scale
		{to.Add(-30 * time.Second), 3}, {to.Add(-20 * time.Second), math.NaN()},
		{to.Add(-10 * time.Second), 7}, {to, 8},
	}
	c := lineChart(`<b>"lag"</b>`, format, to, time.Hour, line{Name: "p50 <x>", Points: pts}, line{Name: "p99", Points: []point{{to, 9}}})
	svg := string(c.SVG)
	if c.Empty || !strings.HasPrefix(svg, `<svg class="chart"`) {
		t.Fatalf("not a chart: %s", svg)
	}
	for _, want := range []string{
		`aria-label="&lt;b&gt;&#34;lag&#34;&lt;/b&gt;"`, // labels escaped
		`p50 &lt;x&gt;`,
		`class="line2"`,
		`>10/s</text>`, // the round top of 9
		`>8/s</text>`,  // the last values
		`>9/s</text>`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %s:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "1,000") || strings.Contains(svg, "<b>") {
		t.Errorf("chart shows what it should not:\n%s", svg)
	}
	// The gap splits the first line in two: a lone point (a dash), then a line.
	if n := strings.Count(svg, `d="M`) + strings.Count(svg, ` M`); n != 3 {
		t.Errorf("%d path segments, want 3 (a dash, a line, and p99's dash):\n%s", n, svg)
	}
}

func TestNiceCeil(t *testing.T) {
	for v, want := range map[float64]float64{0: 1, 0.3: 0.5, 1: 1, 1.2: 2, 3: 5, 7: 10, 120: 200, 5000: 5000} {
		if got := niceCeil(v); !near(got, want) {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}
