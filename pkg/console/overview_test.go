package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// overviewPage serves GET /console from a console over reg's metrics, as a
// browser would see it; authentication is off (no keys).
func overviewPage(t *testing.T, c *Console) string {
	t.Helper()
	e := echo.New()
	c.Register(e)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/console", nil)
	req.Host = "localhost:8080" // without keys the console answers only at a loopback name
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /console: %d\n%s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// chartIDs are the overview's charts, by the ids a browser test finds them.
var chartIDs = []string{
	"chart-ingest", "chart-entries", "chart-lag", "chart-freshness", "chart-dead-letters", "chart-holds", "chart-hold-roundtrip",
	"chart-reservation", "chart-po-acks", "chart-po-turnaround", "chart-asn", "chart-promises", "chart-duplicates",
}

func TestOverviewDrawsTheHistory(t *testing.T) {
	m := newTestMetrics(t)
	now := t0
	c, err := New(Config{Metrics: m.reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	h := c.history()
	m.lag.WithLabelValues("stockflow-folder", "ledger", "3").Set(1234)
	m.lag.WithLabelValues("stockflow-normalizer", "orders", "0").Set(5)
	h.sample(now)
	for i := 1; i <= 6; i++ {
		add(m.records.WithLabelValues("orders", "entries"), 100*i)
		add(m.entries.WithLabelValues("applied", "orders"), 90*i)
		add(m.entries.WithLabelValues("duplicate", "orders"), 10)
		add(m.dead.WithLabelValues(`<script>alert(1)</script>`, "normalizer"), 1)
		add(m.holds.WithLabelValues("held"), 4)
		add(m.holds.WithLabelValues("rejected"), 1)
		add(m.acks.WithLabelValues("SUP-7", "accepted"), 3)
		add(m.acks.WithLabelValues("SUP-7", "rejected"), 1)
		observe(m.reservation.WithLabelValues("web"), 0.05, 20)
		observe(m.reservation.WithLabelValues("store"), 0.5, 5)
		observe(m.inventoryLag.WithLabelValues("DC-EAST"), 0.05, 10)
		observe(m.asn.WithLabelValues("SUP-7"), 5, 2)
		observe(m.ackTurnround.WithLabelValues("SUP-7"), 5, 1)
		m.holdRT.Observe(0.005)
		m.recon.WithLabelValues("wms", "DC-EAST", "missing_in_ledger").Inc()
		now = now.Add(10 * time.Second)
		h.sample(now)
	}

	body := overviewPage(t, c)
	for _, id := range append([]string{"pipeline", "kpis"}, chartIDs...) {
		if !strings.Contains(body, ` id="`+id+`"`) {
			t.Errorf("no element with id %s", id)
		}
	}
	for _, sec := range []string{`<section id="pipeline"`, `<section id="kpis"`} {
		if !strings.Contains(body, sec) {
			t.Errorf("no %s", sec)
		}
	}
	if n := strings.Count(body, `<svg class="chart"`); n != len(chartIDs) {
		t.Errorf("%d charts drawn, want %d", n, len(chartIDs))
	}
	for _, want := range []string{
		`Now: <b>60/s</b>`,                       // ingest: 600 records in the last 10 s
		`Now: <b>applied 54/s · not applied 1/s`, // entries
		`stockflow-folder 1,234`,                 // lag, the furthest behind first
		`<td class="n">1,234</td>`,               // the partition table
		`&lt;script&gt;alert(1)&lt;/script&gt;`,  // labels are escaped
		`<th scope="row">web</th><td class="n">120</td>`,
		`<th scope="row">DC-EAST</th><td class="n">60</td>`,
		`<th scope="row">SUP-7</th><td class="n">24</td><td class="n">75 %</td>`,
		`Last 1 min: 2,100 records`,
		`href="/console/reconciliations"`,
		`<td>missing_in_ledger</td><td class="n">6</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("a label is not escaped")
	}
	// Every table header cell says what it heads.
	if th := regexp.MustCompile(`<th(?: class="[^"]*")?>`).FindString(body); th != "" {
		t.Errorf("a th without scope: %s", th)
	}
}

func TestOverviewBeforeTheFirstSamples(t *testing.T) {
	m := newTestMetrics(t)
	c, err := New(Config{Metrics: m.reg, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	body := overviewPage(t, c)
	if strings.Contains(body, `<svg class="chart"`) {
		t.Error("a chart drawn with no samples")
	}
	if !strings.Contains(body, "No samples yet: the history fills every 10 s.") {
		t.Error("the empty charts do not say when they fill")
	}
	for _, id := range chartIDs {
		if !strings.Contains(body, ` id="`+id+`"`) {
			t.Errorf("no element with id %s before the first sample", id)
		}
	}

	// One sample: the totals and the lag at once, rates not yet.
	m.recon.WithLabelValues("wms", "DC1", "quantity_mismatch").Add(3)
	m.lag.WithLabelValues("g", "t", "0").Set(8)
	c.history().sample(t0)
	body = overviewPage(t, c)
	if !strings.Contains(body, `<td>quantity_mismatch</td><td class="n">3</td>`) {
		t.Error("the exception totals are not shown after the first sample")
	}
	if n := strings.Count(body, `<svg class="chart"`); n != 1 {
		t.Errorf("%d charts after one sample, want 1 (lag)", n)
	}
}

// sampleMinute samples now and then every 10 s for a minute, calling
// between before each later sample: the tables' window is then 1 min.
func sampleMinute(h *history, now time.Time, between func(i int)) {
	h.sample(now)
	for i := 1; i <= 6; i++ {
		between(i)
		now = now.Add(10 * time.Second)
		h.sample(now)
	}
}

func TestOverviewRepromisesBySupplier(t *testing.T) {
	m := newTestMetrics(t)
	cm := m.withCommitments()
	c, err := New(Config{Metrics: m.reg, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	cm.lateUnits.WithLabelValues("SUP-A").Add(1000) // before the window: left out
	sampleMinute(c.history(), t0, func(i int) {
		add(cm.changed.WithLabelValues("false"), 5)
		add(cm.changed.WithLabelValues("true"), 2)
		if i > 1 {
			return
		}
		// 13 suppliers: two tied on late units (the one with more lines
		// first), ten with a few, one that made none late.
		cm.lines.WithLabelValues("SUP-A").Add(2)
		cm.lateUnits.WithLabelValues("SUP-A").Add(50)
		cm.lines.WithLabelValues("SUP-B").Add(5)
		cm.lateUnits.WithLabelValues("SUP-B").Add(50)
		cm.lines.WithLabelValues("SUP-C").Add(7)
		for n := 1; n <= 10; n++ {
			s := fmt.Sprintf("SUP-%02d", n)
			cm.lines.WithLabelValues(s).Inc()
			cm.lateUnits.WithLabelValues(s).Add(float64(n))
		}
	})

	body := overviewPage(t, c)
	order := []string{
		`<th scope="row">SUP-B</th><td class="n">5</td><td class="n">50</td>`,
		`<th scope="row">SUP-A</th><td class="n">2</td><td class="n">50</td>`,
		`<th scope="row">SUP-10</th><td class="n">1</td><td class="n">10</td>`,
		`<th scope="row">SUP-09</th>`, `<th scope="row">SUP-08</th>`, `<th scope="row">SUP-07</th>`,
		`<th scope="row">SUP-06</th>`, `<th scope="row">SUP-05</th>`, `<th scope="row">SUP-04</th>`,
		`<th scope="row">SUP-03</th><td class="n">1</td><td class="n">3</td>`,
		// The three past the first ten: SUP-02, SUP-01 and SUP-C.
		`<th scope="row">others (3 suppliers)</th><td class="n">9</td><td class="n">3</td>`,
	}
	at := -1
	for _, want := range order {
		i := strings.Index(body, want)
		if i < 0 {
			t.Errorf("page lacks %s", want)
			continue
		}
		if i < at {
			t.Errorf("%s comes before the row above it", want)
		}
		at = i
	}
	for _, gone := range []string{`<th scope="row">SUP-02</th>`, `<th scope="row">SUP-01</th>`, `<th scope="row">SUP-C</th>`} {
		if strings.Contains(body, gone) {
			t.Errorf("%s has a row past the first ten", gone)
		}
	}
	for _, want := range []string{
		`id="repromises-by-supplier"`,
		`href="/console/commitments?late=1"`,
		`Now: <b>published 42/min · later 12/min</b>`,
		`Last 1 min: 42 published, 12 later (28.6 %)`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

func TestRepromiseRowsCap(t *testing.T) {
	lines, late := map[string]float64{}, map[string]float64{}
	for n := range maxRepromiseSuppliers {
		lines[fmt.Sprint("S", n)] = 1
	}
	late["quiet"] = 0 // nothing in the window: no row
	rows, others := supplierRepromises(lines, late)
	if len(rows) != maxRepromiseSuppliers || others != nil {
		t.Fatalf("%d rows and others %v, want %d and none", len(rows), others, maxRepromiseSuppliers)
	}
	late["S-late"] = 4
	rows, others = supplierRepromises(lines, late)
	if len(rows) != maxRepromiseSuppliers || rows[0].Supplier != "S-late" || others == nil || others.Suppliers != 1 || others.Lines != 1 {
		t.Errorf("one past the cap: rows %v, others %+v", rows, others)
	}
}

func TestOverviewWithoutCommitmentMetrics(t *testing.T) {
	m := newTestMetrics(t)
	c, err := New(Config{Metrics: m.reg, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	sampleMinute(c.history(), t0, func(int) { add(m.records.WithLabelValues("orders", "entries"), 10) })
	body := overviewPage(t, c)
	for _, want := range []string{
		` id="chart-promises"`,
		`No order lines re-promised by a supplier in the last 1 min`,
		`Last 1 min: 0 published, 0 later (—)`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, `id="repromises-by-supplier"`) {
		t.Error("a re-promises table with no commitment metrics")
	}
}

func TestOverviewWithoutRegistry(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	body := overviewPage(t, c)
	if !strings.Contains(body, "without a metrics registry") {
		t.Error("the page does not say there is nothing to sample")
	}
}

func TestFormats(t *testing.T) {
	for v, want := range map[float64]string{0: "0 s", 0.0004: "0.4 ms", 0.012: "12 ms", 2.5: "2.5 s", 90: "1.5 min", 5400: "1.5 h", 2 * 86400: "2 d"} {
		if got := secondsText(v); got != want {
			t.Errorf("secondsText(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0/s", 0.004: "<0.01/s", 0.25: "0.25/s", 12.34: "12.3/s", 1234.5: "1,235/s"} {
		if got := rateText(v, "/s"); got != want {
			t.Errorf("rateText(%v) = %q, want %q", v, got, want)
		}
	}
}
