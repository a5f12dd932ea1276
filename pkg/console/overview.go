package console

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Run keeps the overview's history until ctx ends: a sample at once, so
// that the page has the current totals from the start, then one every 10 s.
func (c *Console) Run(ctx context.Context) error {
	h := c.history()
	if h.g == nil {
		<-ctx.Done()
		return nil
	}
	h.sample(c.now())
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.sample(c.now())
		}
	}
}

// figure is a chart on the overview with its current values beside it.
type figure struct {
	ID, Title, Note string
	Now             string // the last sample's values
	Hour            string // the tables' window, when there is one
	Chart           chart
	Empty           string // what the reader can expect or do when there is no chart
}

// maxRows bounds a breakdown table, so that 200 locations stay readable;
// a line below it says how many more there are.
const maxRows = 50

type lagRow struct {
	Group, Topic, Partition string
	Lag                     float64
}

// countRow is a label's total since the process started and its count in
// the tables' window.
type countRow struct {
	Key         string
	Total, Hour float64
	Share       string
}

// pctRow is a label's observations in the tables' window and their p50, p99.
type pctRow struct {
	Key      string
	Count    float64
	P50, P99 string
}

type supplierRow struct {
	Supplier         string
	Acks             float64
	Accepted         string
	Turnarounds      float64
	TurnP50, TurnP99 string
}

// supplierRepromise is what a supplier's acknowledgements, ship notices
// and POs did to order lines' promises in the tables' window: the lines
// they re-promised and the units they made later or left unpromised. The
// row of the suppliers past maxRepromiseSuppliers adds them up and counts
// them in Suppliers.
type supplierRepromise struct {
	Supplier         string
	Lines, LateUnits float64
	Suppliers        int
}

// maxRepromiseSuppliers is how many suppliers the re-promises table names,
// those that made the most units late; one row adds up the others.
const maxRepromiseSuppliers = 10

type exceptionRow struct {
	Source, Location, Class string
	Total                   float64
}

type overviewView struct {
	NoMetrics bool
	Samples   int
	Every     string
	Last      time.Time
	From      time.Time // the tables' window
	Minutes   int

	Ingest, Entries, Lag, Freshness, DeadLetters, Holds, HoldRoundTrip figure
	Reservation, POAcks, POTurnaround, ASN, Promises, Duplicates       figure

	LagRows         []lagRow
	LagMore         int
	DeadRows        []countRow
	HoldRows        []countRow
	ReservationBy   []pctRow
	ReservationMore int
	LocationBy      []pctRow
	LocationMore    int
	SupplierBy      []supplierRow
	SupplierMore    int
	ASNBy           []pctRow
	ASNMore         int
	RepromiseBy     []supplierRepromise
	RepromiseOthers *supplierRepromise // nil when every supplier has its row
	EntryRows       []countRow
	Exceptions      []exceptionRow
	ExceptionsMore  int
	ExceptionTotal  float64
}

// overview answers GET /console from the history Run keeps: nothing is
// queried while the page is served.
func (c *Console) overview(ec echo.Context) error {
	h := c.history()
	v := buildOverview(h.read(), h.g == nil)
	return c.render(ec, http.StatusOK, "overview", "Overview", v)
}

// unit is how a chart shows its series' values: a factor (a rate per
// second drawn per minute) and a format.
type unit struct {
	scale  float64
	format func(float64) string
}

var (
	unitPerSecond = unit{1, func(v float64) string { return rateText(v, "/s") }}
	unitPerMinute = unit{60, func(v float64) string { return rateText(v, "/min") }}
	unitSeconds   = unit{1, secondsText}
	unitPercent   = unit{1, percentText}
	unitCount     = unit{1, func(v float64) string {
		if v != math.Round(v) {
			return strconv.FormatFloat(v, 'f', 1, 64) // the half-way tick of a small axis
		}
		return formatNumber(v)
	}}
)

// ref names a series of the history for a chart's legend.
type ref struct{ name, series string }

// buildOverview turns the history into the page: the charts with their
// current values, and the tables of the last hour by label.
func buildOverview(w window, noMetrics bool) overviewView {
	v := overviewView{NoMetrics: noMetrics, Samples: w.samples, Every: durationText(w.every)}
	if w.to != nil {
		v.Last = w.to.at
	}
	if w.seconds() > 0 {
		v.From, v.Minutes = w.from.at, int(math.Round(w.seconds()/60))
	}
	v.pipeline(w)
	v.kpis(w)
	return v
}

func (v *overviewView) pipeline(w window) {
	v.Ingest = w.figure("chart-ingest", "Ingest rate", "Source records normalized, all topics.", unitPerSecond,
		"No records normalized in the last hour.", ref{"records", sIngest})
	v.Ingest.Hour = v.hourCount(sum(w.counts(mRecords)), "records")
	v.Entries = w.figure("chart-entries", "Ledger entries", "Applied, and not applied (duplicate, stale or absorbed).", unitPerSecond,
		"No ledger entries folded in the last hour.", ref{"applied", sApplied}, ref{"not applied", sNotApplied})
	v.Entries.Hour = v.hourCount(w.counts(mEntries, "outcome")["applied"], "applied")
	v.Lag = w.lagFigure()
	v.Freshness = w.figure("chart-freshness", "Freshness: warehouse event → ledger applied",
		"p50 and p99 of each "+durationText(w.every)+" window, from the movement's event time.", unitSeconds,
		"No warehouse movements applied in the last hour.", ref{"p50", "freshness.p50"}, ref{"p99", "freshness.p99"})
	v.Freshness.Hour = v.hourPct(w.hists(mInventoryLag)[""])
	v.DeadLetters = w.figure("chart-dead-letters", "Dead letters", "Records the pipeline could not use, all classes.", unitPerMinute,
		"No dead letters in the last hour.", ref{"dead letters", sDeadLetters})
	v.DeadLetters.Hour = v.hourCount(sum(w.counts(mDeadLetters)), "dead letters")
	v.Holds = w.figure("chart-holds", "Hold decisions", "Hold requests held, and rejected or timed out.", unitPerSecond,
		"No hold requests in the last hour.", ref{"held", sHeld}, ref{"not held", sNotHeld})
	v.Holds.Hour = v.hourCount(sum(w.counts(mHoldDecisions)), "decisions")
	v.HoldRoundTrip = w.figure("chart-hold-roundtrip", "Hold round trip", "POST /v1/holds from produce to the ledger's decision.", unitSeconds,
		"No hold requests in the last hour.", ref{"p50", "hold_rt.p50"}, ref{"p99", "hold_rt.p99"})
	v.HoldRoundTrip.Hour = v.hourPct(w.hists(mHoldRoundTrip)[""])

	v.LagRows, v.LagMore = lagRows(w.to)
	v.DeadRows = countRows(w.to.sums(mDeadLetters, "class"), w.counts(mDeadLetters, "class"))
	v.HoldRows = countRows(w.to.sums(mHoldDecisions, "outcome"), w.counts(mHoldDecisions, "outcome"))
}

func (v *overviewView) kpis(w window) {
	v.Reservation = w.figure("chart-reservation", "Order reservation latency", "Order accepted (event time) → reservation applied, all channels.", unitSeconds,
		"No order reservations in the last hour.", ref{"p50", "reservation.p50"}, ref{"p99", "reservation.p99"})
	v.Reservation.Hour = v.hourPct(w.hists(mReservation)[""])
	v.POAcks = w.figure("chart-po-acks", "PO acknowledgements", "PO lines acknowledged, all suppliers.", unitPerMinute,
		"No PO acknowledgements in the last hour.", ref{"lines", sPOAcks})
	v.POAcks.Hour = v.hourCount(sum(w.counts(mPOAcks)), "lines")
	v.POTurnaround = w.figure("chart-po-turnaround", "PO acknowledgement turnaround", "PO released → acknowledged (event times), all suppliers.", unitSeconds,
		"No PO acknowledgements with a release time in the last hour.", ref{"p50", "po_turnaround.p50"}, ref{"p99", "po_turnaround.p99"})
	v.POTurnaround.Hour = v.hourPct(w.hists(mAckTurnaround)[""])
	v.ASN = w.figure("chart-asn", "ASN processing time", "Advance ship notice (event time) → applied, all suppliers.", unitSeconds,
		"No advance ship notices in the last hour.", ref{"p50", "asn.p50"}, ref{"p99", "asn.p99"})
	v.ASN.Hour = v.hourPct(w.hists(mASN)[""])
	v.Promises = w.figure("chart-promises", "Promises published", "Order line promises published, and those later than the one before (or leaving more unpromised).", unitPerMinute,
		"No order line promises published in the last hour.", ref{"published", sPromises}, ref{"later", sLater})
	if promises := w.counts(mCommitments, "late"); v.Minutes > 0 {
		v.Promises.Hour = fmt.Sprintf("Last %d min: %s published, %s later (%s)", v.Minutes, formatNumber(math.Round(sum(promises))),
			formatNumber(math.Round(promises["true"])), percentText(percent(promises["true"], sum(promises))))
	}
	entries := w.counts(mEntries, "outcome")
	v.Duplicates = w.figure("chart-duplicates", "Duplicate rate", "Ledger entries the ledger had already applied, % of all entries.", unitPercent,
		"No ledger entries folded in the last hour.", ref{"duplicates", sDuplicates})
	if v.Minutes > 0 {
		v.Duplicates.Hour = fmt.Sprintf("Last %d min: %s", v.Minutes, percentText(percent(entries["duplicate"], sum(entries))))
	}

	v.ReservationBy, v.ReservationMore = pctRows(w.hists(mReservation, "channel"))
	v.LocationBy, v.LocationMore = pctRows(w.hists(mInventoryLag, "location"))
	v.SupplierBy, v.SupplierMore = supplierRows(w)
	v.ASNBy, v.ASNMore = pctRows(w.hists(mASN, "supplier"))
	v.RepromiseBy, v.RepromiseOthers = supplierRepromises(w.counts(mRepromised, "supplier"), w.counts(mLateUnits, "supplier"))
	v.EntryRows = countRows(w.to.sums(mEntries, "outcome"), entries)
	v.Exceptions, v.ExceptionsMore, v.ExceptionTotal = exceptionRows(w.to)
}

// figure charts the named series of the last hour, with their last values.
func (w window) figure(id, title, note string, u unit, none string, refs ...ref) figure {
	f := figure{ID: id, Title: title, Note: note}
	lines := make([]line, 0, len(refs))
	var now []string
	measured := false
	for _, r := range refs {
		pts := w.series[r.series]
		lines = append(lines, line{Name: r.name, Points: scaled(pts, u.scale)})
		last := w.last(r.series)
		measured = measured || finite(last)
		text := u.format(last * u.scale)
		if len(refs) > 1 {
			text = r.name + " " + text
		}
		now = append(now, text)
	}
	f.Now = strings.Join(now, " · ")
	switch {
	case measured:
	case w.samples < 2 || len(refs) == 0:
		f.Now = "—"
	default:
		f.Now = "none in the last " + durationText(w.every)
	}
	to := time.Time{}
	if w.to != nil {
		to = w.to.at
	}
	f.Chart = lineChart(title+" over the last hour, now "+f.Now, u.format, to, w.span, lines...)
	if f.Chart.Empty {
		f.Empty = w.emptyText(none)
	}
	return f
}

// emptyText says why a chart has nothing: too soon, or nothing happened.
func (w window) emptyText(none string) string {
	if w.samples < 2 {
		return "No samples yet: the history fills every " + durationText(w.every) + "."
	}
	return none
}

// lagFigure charts the total lag of the two consumer groups furthest behind.
func (w window) lagFigure() figure {
	type group struct {
		name string
		lag  float64
	}
	var gs []group
	for k := range w.series {
		if g, ok := strings.CutPrefix(k, sLagPrefix); ok {
			gs = append(gs, group{g, w.last(k)})
		}
	}
	slices.SortFunc(gs, func(a, b group) int { return cmp.Or(cmp.Compare(b.lag, a.lag), cmp.Compare(a.name, b.name)) })
	refs := make([]ref, 0, 2)
	for _, g := range gs[:min(len(gs), 2)] {
		refs = append(refs, ref{g.name, sLagPrefix + g.name})
	}
	note := "Records behind the end of the log, per consumer group."
	if len(gs) > 2 {
		note += " The two groups furthest behind; the table has every partition."
	}
	f := w.figure("chart-lag", "Consumer lag", note, unitCount,
		"No consumer lag measured: the service measures its consumer groups every few seconds once the pipeline runs.", refs...)
	if len(refs) == 1 { // no legend: say whose lag it is
		f.Now = refs[0].name + " " + f.Now
	}
	return f
}

// scaled multiplies a series' values, to draw a rate per second per minute.
func scaled(pts []point, by float64) []point {
	if by == 1 {
		return pts
	}
	out := make([]point, len(pts))
	for i, p := range pts {
		out[i] = point{p.at, p.v * by}
	}
	return out
}

// hourCount is the line under a rate chart: what the tables' window counted.
func (v overviewView) hourCount(n float64, what string) string {
	if v.Minutes == 0 {
		return ""
	}
	return fmt.Sprintf("Last %d min: %s %s", v.Minutes, formatNumber(math.Round(n)), what)
}

// hourPct is the line under a latency chart: the tables' window's p50 and
// p99, of how many observations.
func (v overviewView) hourPct(h histo) string {
	if v.Minutes == 0 || h.count == 0 {
		return ""
	}
	return fmt.Sprintf("Last %d min: p50 %s · p99 %s of %s", v.Minutes, secondsText(h.quantile(.5)), secondsText(h.quantile(.99)), formatNumber(math.Round(h.count)))
}

// lagRows lists every partition's lag in the newest sample, the furthest
// behind first.
func lagRows(s *snapshot) ([]lagRow, int) {
	var rows []lagRow
	if s != nil {
		for _, o := range s.fams[mConsumerLag] {
			rows = append(rows, lagRow{Group: o.label("group"), Topic: o.label("topic"), Partition: o.label("partition"), Lag: o.value})
		}
	}
	slices.SortFunc(rows, func(a, b lagRow) int {
		pa, _ := strconv.Atoi(a.Partition)
		pb, _ := strconv.Atoi(b.Partition)
		return cmp.Or(cmp.Compare(b.Lag, a.Lag), cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(pa, pb))
	})
	return capRows(rows)
}

// countRows is a table of totals and the window's counts by label, the
// largest total first.
func countRows(totals, hour map[string]float64) []countRow {
	all := sum(hour)
	rows := make([]countRow, 0, len(totals))
	for k, t := range totals {
		rows = append(rows, countRow{Key: k, Total: t, Hour: hour[k], Share: percentText(percent(hour[k], all))})
	}
	slices.SortFunc(rows, func(a, b countRow) int { return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Key, b.Key)) })
	return rows
}

// pctRows is a table of the window's percentiles by label, the label with
// the most observations first; labels with none in the window are left out.
func pctRows(hs map[string]histo) ([]pctRow, int) {
	rows := make([]pctRow, 0, len(hs))
	for k, h := range hs {
		if h.count > 0 {
			rows = append(rows, pctRow{Key: k, Count: h.count, P50: secondsText(h.quantile(.5)), P99: secondsText(h.quantile(.99))})
		}
	}
	slices.SortFunc(rows, func(a, b pctRow) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key)) })
	return capRows(rows)
}

// supplierRows joins, by supplier, the window's acknowledged lines, the
// share of them accepted, and the turnaround's percentiles.
func supplierRows(w window) ([]supplierRow, int) {
	acks := w.counts(mPOAcks, "supplier")
	accepted := w.counts(mPOAcks, "supplier", "status")
	turn := w.hists(mAckTurnaround, "supplier")
	by := map[string]*supplierRow{}
	row := func(s string) *supplierRow {
		if by[s] == nil {
			by[s] = &supplierRow{Supplier: s, Accepted: "—", TurnP50: "—", TurnP99: "—"}
		}
		return by[s]
	}
	for s, n := range acks {
		if n > 0 {
			r := row(s)
			r.Acks = n
			r.Accepted = percentText(percent(accepted[s+keySep+"accepted"], n))
		}
	}
	for s, h := range turn {
		if h.count > 0 {
			r := row(s)
			r.Turnarounds, r.TurnP50, r.TurnP99 = h.count, secondsText(h.quantile(.5)), secondsText(h.quantile(.99))
		}
	}
	rows := make([]supplierRow, 0, len(by))
	for _, r := range by {
		rows = append(rows, *r)
	}
	slices.SortFunc(rows, func(a, b supplierRow) int {
		return cmp.Or(cmp.Compare(b.Acks, a.Acks), cmp.Compare(b.Turnarounds, a.Turnarounds), cmp.Compare(a.Supplier, b.Supplier))
	})
	return capRows(rows)
}

// supplierRepromises is, by supplier, the window's lines re-promised and
// units made late: the suppliers that made the most units late first, then
// those that re-promised the most lines; suppliers that did neither in the
// window are left out. Past maxRepromiseSuppliers, one row adds the rest up.
func supplierRepromises(lines, late map[string]float64) ([]supplierRepromise, *supplierRepromise) {
	by := map[string]*supplierRepromise{}
	row := func(s string) *supplierRepromise {
		if by[s] == nil {
			by[s] = &supplierRepromise{Supplier: s}
		}
		return by[s]
	}
	for s, n := range lines {
		if n > 0 {
			row(s).Lines = n
		}
	}
	for s, n := range late {
		if n > 0 {
			row(s).LateUnits = n
		}
	}
	rows := make([]supplierRepromise, 0, len(by))
	for _, r := range by {
		rows = append(rows, *r)
	}
	slices.SortFunc(rows, func(a, b supplierRepromise) int {
		return cmp.Or(cmp.Compare(b.LateUnits, a.LateUnits), cmp.Compare(b.Lines, a.Lines), cmp.Compare(a.Supplier, b.Supplier))
	})
	if len(rows) <= maxRepromiseSuppliers {
		return rows, nil
	}
	others := &supplierRepromise{Suppliers: len(rows) - maxRepromiseSuppliers}
	for _, r := range rows[maxRepromiseSuppliers:] {
		others.Lines += r.Lines
		others.LateUnits += r.LateUnits
	}
	return rows[:maxRepromiseSuppliers], others
}

// exceptionRows lists the reconciliation exceptions counted since the
// process started, by source, location and class, the most first.
func exceptionRows(s *snapshot) ([]exceptionRow, int, float64) {
	var rows []exceptionRow
	total := 0.0
	for k, n := range s.sums(mReconExceptions, "source", "location", "class") {
		if n == 0 {
			continue
		}
		p := strings.Split(k, keySep)
		rows = append(rows, exceptionRow{Source: p[0], Location: p[1], Class: p[2], Total: n})
		total += n
	}
	slices.SortFunc(rows, func(a, b exceptionRow) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Source, b.Source), cmp.Compare(a.Location, b.Location), cmp.Compare(a.Class, b.Class))
	})
	rows, more := capRows(rows)
	return rows, more, total
}

func capRows[T any](rows []T) ([]T, int) {
	if len(rows) <= maxRows {
		return rows, 0
	}
	return rows[:maxRows], len(rows) - maxRows
}

// rateText writes a rate with as many decimals as it needs to not read 0.
func rateText(v float64, per string) string {
	switch {
	case !finite(v):
		return "—"
	case v == 0:
		return "0" + per
	case v >= 100:
		return formatNumber(math.Round(v)) + per
	case v >= 10:
		return trimZeros(strconv.FormatFloat(v, 'f', 1, 64)) + per
	case v >= 0.01:
		return trimZeros(strconv.FormatFloat(v, 'f', 2, 64)) + per
	}
	return "<0.01" + per
}

// trimZeros drops a fraction's trailing zeros: 2.5, not 2.50; 5, not 5.00.
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// secondsText writes a latency in the unit that suits it: 12 ms, 3.4 s,
// 2.5 h.
func secondsText(v float64) string {
	switch {
	case !finite(v):
		return "—"
	case v == 0:
		return "0 s"
	case v < 0.01:
		return trim(strconv.FormatFloat(v*1000, 'f', 1, 64)) + " ms"
	case v < 1:
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + " ms"
	case v < 60:
		return trim(strconv.FormatFloat(v, 'f', 1, 64)) + " s"
	case v < 3600:
		return trim(strconv.FormatFloat(v/60, 'f', 1, 64)) + " min"
	case v < 86400:
		return trim(strconv.FormatFloat(v/3600, 'f', 1, 64)) + " h"
	}
	return trim(strconv.FormatFloat(v/86400, 'f', 1, 64)) + " d"
}

func percentText(v float64) string {
	if !finite(v) {
		return "—"
	}
	if v != 0 && v < 0.1 {
		return "<0.1 %"
	}
	return trim(strconv.FormatFloat(v, 'f', 1, 64)) + " %"
}

func durationText(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + " s"
	}
	return d.String()
}

// trim drops a ".0": 2 s, not 2.0 s.
func trim(s string) string { return strings.TrimSuffix(s, ".0") }
