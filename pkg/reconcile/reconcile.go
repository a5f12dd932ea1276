// Package reconcile compares stock snapshots from warehouse and ERP
// systems with the ledger, as the ledger stood at the snapshot's time, and
// turns the differences into ledger corrections when someone approves
// them.
//
// A snapshot taken at T is compared with each position's on hand at T:
// on hand now minus the movements journaled after T (ledger.OnHandAt). A
// position counted after T is superseded rather than drifted; a snapshot
// older than the journal window is refused. Lines are compared as they
// arrive, a batch per round trip, so a snapshot is never held whole: what
// a run keeps in memory is one map entry per line, about 40 bytes (to find
// duplicate lines and the ledger positions the snapshot leaves out).
//
// A correction is a count at T with reason RECONCILIATION: later movements
// stay on top of it, exactly as with a cycle count, and applying the same
// run twice changes nothing (the count is not newer than itself, and its
// event id derives from run, SKU and location).
//
// See docs/design.md §12; docs/reconciliation.md has the operator's side.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// Classes of a position.
const (
	Match             = "match"
	WithinTolerance   = "within_tolerance"
	Drift             = "drift"
	MissingInSnapshot = "missing_in_snapshot"
	UnknownToLedger   = "unknown_to_ledger"
	Superseded        = "superseded"
	InvalidLine       = "invalid_line"
)

// AllClasses lists the classes in report order.
var AllClasses = []string{Match, WithinTolerance, Drift, MissingInSnapshot, UnknownToLedger, Superseded, InvalidLine}

// Correctable are the classes a run's corrections may be applied for: each
// says what the position held at T.
var Correctable = []string{Drift, WithinTolerance, MissingInSnapshot, UnknownToLedger}

// ReasonReconciliation is the reason of a correction's count entry.
const ReasonReconciliation = "RECONCILIATION"

// Units converts a quantity in uom to the SKU's base unit; an error says
// the unit is unknown.
type Units func(sku string, q int64, uom string) (int64, error)

// Config configures a Reconciler.
type Config struct {
	Ledger *ledger.Store
	Runs   *Runs
	// Units converts snapshot quantities; nil accepts only EA.
	Units      Units
	Tolerances config.Tolerances
	// Producer, Codec and the topics publish exceptions and summaries and
	// produce corrections to the ledger.
	Producer            *kgo.Client
	Codec               *avro.Codec
	ReconciliationTopic string
	LedgerTopic         string
	// AutoApplyUnits, when > 0, applies the drifts of a completed run whose
	// difference is at most that many units, as the run completes.
	AutoApplyUnits int64
	// Batch is how many lines are compared per round trip. Default 2000.
	Batch int
	// FutureSkew is how far in the future a snapshot's as-of time may be
	// (clocks differ). Default 1 minute.
	FutureSkew time.Duration
	// MaxLines caps the lines of a run (default DefaultMaxLines): a
	// snapshot announcing more is refused; lines past the cap are counted,
	// not compared, and the run ends incomplete. A run remembers about 40
	// bytes per line compared (40 MB at the default).
	MaxLines int64
	// MaxStoredExceptions caps the exceptions a run stores (default
	// DefaultMaxStoredExceptions): past it, exceptions are counted by class
	// but not stored, so neither listed, published nor applied, and the
	// run says it was truncated.
	MaxStoredExceptions int64

	Registry prometheus.Registerer
	Logger   *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Default caps of a run. A stored exception takes about 0.5 KB of Redis
// for the retention (470 B measured for a drift or an invalid line: its
// JSON and two index entries), 1.5 KB at most with every text at
// maxStoredText: the default cap keeps a run's exceptions near 50 MB,
// 150 MB at worst.
const (
	DefaultMaxLines            = 1_000_000
	DefaultMaxStoredExceptions = 100_000
)

// maxStoredText bounds each text of a stored exception (sku, location,
// detail), as JSON encodes it: an invalid line's may be as long as the
// record it came in, and of characters JSON escapes in 6 bytes.
const maxStoredText = 256

// clipJSON cuts s, on a character boundary, to what JSON encodes in at
// most n bytes (counting every escape as 6), and marks the cut.
func clipJSON(s string, n int) string {
	size := 0
	for i, r := range s {
		w := 1
		switch {
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == 0x2028 || r == 0x2029 || r == utf8.RuneError:
			w = 6
		case r == '"' || r == '\\':
			w = 2
		case r >= utf8.RuneSelf:
			w = utf8.RuneLen(r)
		}
		if size+w > n {
			return s[:i] + "…"
		}
		size += w
	}
	return s
}

// otherLocation labels the exception metrics of invalid lines at a
// location the snapshot does not cover: their location may be anything,
// and each label value is a series.
const otherLocation = "(other)"

// Reconciler runs reconciliations: it compares each snapshot with the ledger
// as of the snapshot's time, classes the differences (docs/design.md §12.1
// to §12.3) and, when asked, applies them as corrections (§12.5).
type Reconciler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
}

// New returns a reconciler.
func New(cfg Config) *Reconciler {
	if cfg.Batch <= 0 {
		cfg.Batch = 2000
	}
	if cfg.FutureSkew <= 0 {
		cfg.FutureSkew = time.Minute
	}
	if cfg.MaxLines <= 0 {
		cfg.MaxLines = DefaultMaxLines
	}
	if cfg.MaxStoredExceptions <= 0 {
		cfg.MaxStoredExceptions = DefaultMaxStoredExceptions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Units == nil {
		cfg.Units = func(sku string, q int64, uom string) (int64, error) {
			if uom == "" || uom == "EA" {
				return q, nil
			}
			return 0, fmt.Errorf("no conversion from %q to the base unit of %s", uom, sku)
		}
	}
	return &Reconciler{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registry)}
}

// Runs is the run store.
func (r *Reconciler) Runs() *Runs { return r.cfg.Runs }

// Session is a run in progress.
type Session struct {
	r       *Reconciler
	run     Run
	covered map[string]bool
	seed    maphash.Seed
	seen    map[uint64]int64 // position hash -> the line that listed it
	pending []events.SnapshotLine
	byLoc   map[[2]string]int64 // location, class -> exceptions
	stored  int64               // exceptions stored: the next one's sequence number
	done    bool
}

// Start opens the run of a snapshot. When the snapshot id was reconciled
// before, it returns that run and a nil session: the same snapshot twice
// is one run. A run left running (its instance stopped mid-snapshot) is
// started again from nothing. A snapshot that cannot be compared comes back
// as a refused run and a nil session.
func (r *Reconciler) Start(ctx context.Context, st *events.SnapshotStarted) (*Session, Run, error) {
	prev, err := r.cfg.Runs.Get(ctx, st.SnapshotID)
	switch {
	case err == nil && prev.Status != StatusRunning:
		r.metrics.repeats.WithLabelValues(st.Source).Inc()
		return nil, prev, nil
	case err == nil:
		if err := r.cfg.Runs.Reset(ctx, st.SnapshotID); err != nil {
			return nil, Run{}, err
		}
	case !errors.Is(err, ErrNotFound):
		return nil, Run{}, err
	}
	now := r.cfg.Now().UTC()
	locs := slices.Clone(st.Locations)
	slices.Sort(locs)
	locs = slices.Compact(locs)
	run := Run{
		ID: st.SnapshotID, Source: st.Source, Locations: locs, AsOf: st.AsOf.UTC(), Status: StatusRunning,
		ExpectedLines: st.ExpectedLines, Counts: map[string]int64{}, StartedAt: now,
	}
	if st.CorrelationID != nil {
		run.CorrelationID = *st.CorrelationID
	}
	if reason := r.refusal(st, now); reason != "" {
		run.Status, run.Reason, run.FinishedAt = StatusRefused, reason, &now
		if err := r.finish(ctx, &run, nil); err != nil {
			return nil, Run{}, err
		}
		return nil, run, nil
	}
	if err := r.cfg.Runs.Save(ctx, &run); err != nil {
		return nil, Run{}, err
	}
	s := &Session{r: r, run: run, covered: map[string]bool{}, seed: maphash.MakeSeed(),
		seen: map[uint64]int64{}, byLoc: map[[2]string]int64{}}
	for _, l := range locs {
		s.covered[l] = true
	}
	return s, run, nil
}

// refusal says why a snapshot cannot be compared, or "".
func (r *Reconciler) refusal(st *events.SnapshotStarted, now time.Time) string {
	window := r.cfg.Ledger.JournalWindow()
	switch {
	case len(st.Locations) == 0:
		return "the snapshot names no locations"
	case st.ExpectedLines < 0:
		return fmt.Sprintf("expected_lines %d is negative", st.ExpectedLines)
	case st.ExpectedLines > r.cfg.MaxLines:
		return fmt.Sprintf("the snapshot announces %d lines, more than the %d a run compares: send its locations in separate snapshots",
			st.ExpectedLines, r.cfg.MaxLines)
	case st.AsOf.Before(now.Add(-window)):
		return fmt.Sprintf("as_of %s is older than the ledger's journal window (%s, so back to %s): the ledger cannot say what it held then",
			st.AsOf.UTC().Format(time.RFC3339), window, now.Add(-window).Format(time.RFC3339))
	case st.AsOf.After(now.Add(r.cfg.FutureSkew)):
		return fmt.Sprintf("as_of %s is in the future", st.AsOf.UTC().Format(time.RFC3339))
	}
	for _, l := range st.Locations {
		if !validID(l) {
			return fmt.Sprintf("location %q is not an id (1 to 64 of A-Z a-z 0-9 . _ -)", l)
		}
	}
	return ""
}

// Run is the session's run as it stands.
func (s *Session) Run() Run { return s.run }

// Line adds one snapshot line; lines are compared a batch at a time. A
// line past the run's cap is only counted. Texts are clipped (an id is at
// most 64 bytes, so a clipped one is as invalid as the whole): pending
// lines must not hold whatever a sender put in a record.
func (s *Session) Line(ctx context.Context, l *events.SnapshotLine) error {
	s.run.Lines++
	if s.run.Lines > s.r.cfg.MaxLines {
		return nil
	}
	p := *l
	p.SKU, p.Location, p.UoM = clip(p.SKU, maxStoredText), clip(p.Location, maxStoredText), clip(p.UoM, maxStoredText)
	if p.Error != nil {
		p.Error = ptr(clip(*p.Error, maxStoredText))
	}
	s.pending = append(s.pending, p)
	if len(s.pending) >= s.r.cfg.Batch {
		return s.flush(ctx)
	}
	return nil
}

func (s *Session) posHash(sku, loc string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(sku)
	h.WriteByte(0)
	h.WriteString(loc)
	return h.Sum64()
}

// flush compares the pending lines with the ledger and records what is not
// a match.
func (s *Session) flush(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	var xs []Exception
	refs := make([]ledger.PositionRef, 0, len(s.pending))
	qty := make([]int64, 0, len(s.pending))
	lines := make([]int64, 0, len(s.pending))
	for i := range s.pending {
		l := &s.pending[i]
		q, fault := s.check(l)
		if fault != "" {
			x := Exception{SKU: l.SKU, Location: l.Location, Class: InvalidLine, Line: l.Line, Detail: fault}
			if l.Error == nil && q >= 0 {
				x.SnapshotQuantity = ptr(l.Quantity)
			}
			xs = append(xs, x)
			continue
		}
		refs = append(refs, ledger.PositionRef{SKU: l.SKU, Location: l.Location})
		qty = append(qty, q)
		lines = append(lines, l.Line)
	}
	past, err := s.r.cfg.Ledger.OnHandAt(ctx, refs, s.run.AsOf)
	if err != nil {
		return err
	}
	for i, ref := range refs {
		if x, ok := s.classify(ref, qty[i], past[i], lines[i]); ok {
			xs = append(xs, x)
		}
	}
	s.pending = s.pending[:0]
	return s.record(ctx, xs)
}

// check validates a line and converts its quantity; a non-empty fault
// makes it an invalid line. A line that names a position the snapshot
// covers lists it, readable or not: the position is then not missing in
// the snapshot, and a second line for it is a duplicate.
func (s *Session) check(l *events.SnapshotLine) (int64, string) {
	if validID(l.SKU) && validID(l.Location) && s.covered[l.Location] {
		h := s.posHash(l.SKU, l.Location)
		first, dup := s.seen[h]
		if dup && l.Error == nil {
			return 0, fmt.Sprintf("duplicate of line %d for %s at %s", first, l.SKU, l.Location)
		}
		if !dup {
			s.seen[h] = l.Line
		}
	}
	switch {
	case l.Error != nil:
		return -1, *l.Error
	case !validID(l.SKU):
		return 0, fmt.Sprintf("sku %q is not an id (1 to 64 of A-Z a-z 0-9 . _ -)", l.SKU)
	case !validID(l.Location):
		return 0, fmt.Sprintf("location %q is not an id (1 to 64 of A-Z a-z 0-9 . _ -)", l.Location)
	case !s.covered[l.Location]:
		return 0, fmt.Sprintf("location %s is not among the snapshot's locations (%s)", l.Location, strings.Join(s.run.Locations, ","))
	case l.Quantity < 0:
		return 0, fmt.Sprintf("quantity %d is negative", l.Quantity)
	}
	q, err := s.r.cfg.Units(l.SKU, l.Quantity, l.UoM)
	if err != nil {
		return 0, "unknown unit: " + err.Error()
	}
	return q, ""
}

// classify classes one listed position; ok is false for a match.
func (s *Session) classify(ref ledger.PositionRef, q int64, p ledger.PastOnHand, line int64) (Exception, bool) {
	x := Exception{SKU: ref.SKU, Location: ref.Location, SnapshotQuantity: ptr(q), Line: line}
	switch {
	case p.Counted && p.CountedAt.After(s.run.AsOf):
		x.Class = Superseded
		x.Detail = "counted as of " + p.CountedAt.Format(time.RFC3339Nano) + ", after the snapshot"
	case !p.Known && q == 0:
		x.Class = Match
	case !p.Known:
		x.Class = UnknownToLedger
		x.LedgerQuantity, x.Difference = ptr(int64(0)), q
	default:
		x.LedgerQuantity, x.Difference = ptr(p.OnHand), q-p.OnHand
		switch {
		case x.Difference == 0:
			x.Class = Match
		case s.r.cfg.Tolerances.For(ref.Location).Within(x.Difference, p.OnHand):
			x.Class = WithinTolerance
		default:
			x.Class = Drift
		}
	}
	if x.Class == Match {
		s.run.Counts[Match]++
		return x, false
	}
	return x, true
}

// record counts exceptions and stores them, up to the run's cap; those
// past it are counted as unstored.
func (s *Session) record(ctx context.Context, xs []Exception) error {
	for i := range xs {
		x := &xs[i]
		s.run.Counts[x.Class]++
		loc := x.Location
		if !s.covered[loc] {
			loc = otherLocation
		}
		s.byLoc[[2]string{loc, x.Class}]++
		x.SKU, x.Location, x.Detail = clipJSON(x.SKU, maxStoredText), clipJSON(x.Location, maxStoredText), clipJSON(x.Detail, maxStoredText)
	}
	keep := xs[:min(int64(len(xs)), max(s.r.cfg.MaxStoredExceptions-s.stored, 0))]
	for i := len(keep); i < len(xs); i++ {
		if s.run.Unstored == nil {
			s.run.Unstored = map[string]int64{}
		}
		s.run.Unstored[xs[i].Class]++
	}
	if err := s.r.cfg.Runs.appendExceptions(ctx, s.run.ID, s.stored, keep); err != nil {
		return err
	}
	s.stored += int64(len(keep))
	return nil
}

// End closes the snapshot with its end record: a run whose line counts
// agree is completed (the positions it left out are found, the exceptions
// published, auto-apply done), any other is incomplete.
func (s *Session) End(ctx context.Context, e *events.SnapshotEnded) (Run, error) {
	if err := s.flush(ctx); err != nil {
		return Run{}, err
	}
	switch {
	case s.run.Lines > s.r.cfg.MaxLines:
		return s.Abandon(ctx, s.overLines())
	case e.LineCount != s.run.Lines:
		return s.Abandon(ctx, fmt.Sprintf("the end record says %d lines were sent, %d arrived", e.LineCount, s.run.Lines))
	case e.LineCount != s.run.ExpectedLines:
		return s.Abandon(ctx, fmt.Sprintf("the start record announced %d lines, the end record says %d", s.run.ExpectedLines, e.LineCount))
	}
	if err := s.missing(ctx); err != nil {
		return Run{}, err
	}
	s.run.Status = StatusCompleted
	return s.close(ctx)
}

// Abandon ends the run as incomplete, for reason.
func (s *Session) Abandon(ctx context.Context, reason string) (Run, error) {
	if err := s.flush(ctx); err != nil {
		return Run{}, err
	}
	if s.run.Lines > s.r.cfg.MaxLines && !strings.Contains(reason, s.overLines()) {
		reason = s.overLines() + "; " + reason
	}
	s.run.Status, s.run.Reason = StatusIncomplete, reason
	return s.close(ctx)
}

// overLines says the run had more lines than its cap.
func (s *Session) overLines() string {
	return fmt.Sprintf("%d lines arrived, more than the %d a run compares: only the first %d were compared",
		s.run.Lines, s.r.cfg.MaxLines, s.r.cfg.MaxLines)
}

// truncation says which exceptions the run did not store, or "".
func (s *Session) truncation() string {
	if len(s.run.Unstored) == 0 {
		return ""
	}
	var n int64
	parts := make([]string, 0, len(s.run.Unstored))
	for _, c := range AllClasses {
		if k := s.run.Unstored[c]; k > 0 {
			n += k
			parts = append(parts, fmt.Sprintf("%s %d", c, k))
		}
	}
	return fmt.Sprintf("truncated: %d of the run's %d exceptions are stored, the cap of a run; the other %d (%s) are counted by class "+
		"but not listed, published or applied", s.stored, s.stored+n, n, strings.Join(parts, ", "))
}

func (s *Session) close(ctx context.Context) (Run, error) {
	now := s.r.cfg.Now().UTC()
	s.run.FinishedAt = &now
	s.run.Truncated = s.truncation()
	s.seen, s.pending = nil, nil
	if err := s.r.finish(ctx, &s.run, s.byLoc); err != nil {
		return Run{}, err
	}
	s.done = true
	if s.run.Status == StatusCompleted && s.r.cfg.AutoApplyUnits > 0 {
		// The run is finished either way: a failed auto-apply is said, and
		// left to an operator to apply (applying is safe to repeat).
		a, err := s.r.Apply(ctx, s.run.ID, ApplyRequest{Classes: []string{Drift}, MaxUnits: s.r.cfg.AutoApplyUnits, By: "auto-apply"})
		if err != nil {
			s.r.log.Error("auto-apply failed; apply the run by hand", "run", s.run.ID, "err", err)
			return s.run, nil
		}
		s.run.Applies = append(s.run.Applies, a)
	}
	return s.run, nil
}

// missing finds the positions at the covered locations that the snapshot
// did not list and the ledger held stock at as of T.
func (s *Session) missing(ctx context.Context) error {
	return s.r.cfg.Ledger.ScanPositions(ctx, func(refs []ledger.PositionRef) error {
		var left []ledger.PositionRef
		for _, ref := range refs {
			if s.covered[ref.Location] {
				h := s.posHash(ref.SKU, ref.Location)
				if _, listed := s.seen[h]; !listed {
					left = append(left, ref)
					s.seen[h] = 0 // SCAN may return a key twice: report it once
				}
			}
		}
		if len(left) == 0 {
			return nil
		}
		past, err := s.r.cfg.Ledger.OnHandAt(ctx, left, s.run.AsOf)
		if err != nil {
			return err
		}
		var xs []Exception
		for i, ref := range left {
			p := past[i]
			switch {
			case !p.Known:
			case p.Counted && p.CountedAt.After(s.run.AsOf):
				xs = append(xs, Exception{SKU: ref.SKU, Location: ref.Location, Class: Superseded,
					Detail: "not listed; counted as of " + p.CountedAt.Format(time.RFC3339Nano) + ", after the snapshot"})
			case p.OnHand != 0:
				xs = append(xs, Exception{SKU: ref.SKU, Location: ref.Location, Class: MissingInSnapshot,
					SnapshotQuantity: nil, LedgerQuantity: ptr(p.OnHand), Difference: -p.OnHand})
			}
		}
		return s.record(ctx, xs)
	})
}

// finish saves a finished run, publishes it (a completed run's exceptions,
// then a summary for every run) and counts it.
//
// Publication comes first: a run is finished in Redis only once its records
// are out, so a failure in between makes the run start again (its records
// may then be published twice: consumers key them by run id).
func (r *Reconciler) finish(ctx context.Context, run *Run, byLoc map[[2]string]int64) error {
	if err := r.publish(ctx, run); err != nil {
		return err
	}
	if err := r.cfg.Runs.Save(ctx, run); err != nil {
		return err
	}
	r.metrics.runs.WithLabelValues(run.Source, run.Status).Inc()
	r.metrics.lines.WithLabelValues(run.Source).Add(float64(run.Lines))
	if run.Status == StatusCompleted {
		for k, n := range byLoc {
			r.metrics.exceptions.WithLabelValues(run.Source, k[0], k[1]).Add(float64(n))
		}
	}
	r.log.Info("reconciliation run finished", "run", run.ID, "source", run.Source, "status", run.Status, "reason", run.Reason,
		"lines", run.Lines, "counts", run.Counts, "took", run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond))
	return nil
}

// publish writes a completed run's exceptions and every run's summary to
// the reconciliation topic, keyed by run id so a run's records stay in
// order with its summary last.
func (r *Reconciler) publish(ctx context.Context, run *Run) error {
	if r.cfg.Producer == nil {
		return nil
	}
	topic := r.cfg.ReconciliationTopic
	key := []byte(run.ID)
	if run.Status == StatusCompleted {
		err := r.cfg.Runs.each(ctx, run.ID, Filter{}, func(xs []Exception) error {
			recs := make([]*kgo.Record, len(xs))
			for i := range xs {
				x := &xs[i]
				ev := &events.ReconciliationException{RunID: run.ID, Source: run.Source, SKU: x.SKU, Location: x.Location, Class: x.Class,
					SnapshotQuantity: x.SnapshotQuantity, LedgerQuantity: x.LedgerQuantity, Difference: x.Difference, AsOf: run.AsOf}
				if x.Line > 0 {
					ev.Line = ptr(x.Line)
				}
				if x.Detail != "" {
					ev.Detail = &x.Detail
				}
				b, err := r.cfg.Codec.Encode(ctx, topic, ev)
				if err != nil {
					return fmt.Errorf("encode exception: %w", err)
				}
				recs[i] = &kgo.Record{Topic: topic, Key: key, Value: b}
			}
			return r.cfg.Producer.ProduceSync(ctx, recs...).FirstErr()
		})
		if err != nil {
			return fmt.Errorf("publish exceptions of run %s: %w", run.ID, err)
		}
	}
	sum := &events.ReconciliationSummary{RunID: run.ID, Source: run.Source, Locations: run.Locations, AsOf: run.AsOf, Status: run.Status,
		ExpectedLines: run.ExpectedLines, Lines: run.Lines, Counts: maps.Clone(run.Counts), StartedAt: run.StartedAt, FinishedAt: *run.FinishedAt}
	if sum.Counts == nil {
		sum.Counts = map[string]int64{}
	}
	if notes := run.Notes(); notes != "" {
		sum.Reason = &notes
	}
	b, err := r.cfg.Codec.Encode(ctx, topic, sum)
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if err := r.cfg.Producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key, Value: b}).FirstErr(); err != nil {
		return fmt.Errorf("publish summary of run %s: %w", run.ID, err)
	}
	return nil
}

// ApplyRequest selects the corrections to apply.
type ApplyRequest struct {
	// Classes to correct; default drift. Only Correctable classes.
	Classes []string
	// Locations limits the corrections; empty: all.
	Locations []string
	// MaxUnits, when > 0, applies only differences of at most that many
	// units (the auto-apply policy).
	MaxUnits int64
	// By says who applied, for the run's record.
	By string
}

// Errors of Apply.
var (
	ErrNotApplicable = errors.New("run cannot be applied")
	ErrBadClass      = errors.New("class cannot be applied")
)

// Apply produces the selected exceptions of a completed run as count
// entries to the ledger: the position held the snapshot's quantity at the
// snapshot's time. Applying again changes nothing.
func (r *Reconciler) Apply(ctx context.Context, id string, req ApplyRequest) (Applied, error) {
	run, err := r.cfg.Runs.Get(ctx, id)
	if err != nil {
		return Applied{}, err
	}
	if run.Status != StatusCompleted {
		return Applied{}, fmt.Errorf("%w: run %s is %s%s; only a completed run can be applied", ErrNotApplicable, id, run.Status, because(run.Reason))
	}
	if !r.Fresh(run) {
		return Applied{}, fmt.Errorf("%w: run %s is as of %s, older than the ledger's journal window (%s): a count that old would drop the movements since then; reconcile a newer snapshot",
			ErrNotApplicable, id, run.AsOf.Format(time.RFC3339), r.cfg.Ledger.JournalWindow())
	}
	f, err := applyFilter(&run, req)
	if err != nil {
		return Applied{}, err
	}
	now := r.cfg.Now().UTC()
	a := Applied{At: now, By: req.By, Classes: slices.Sorted(maps.Keys(f.Classes)), Locations: req.Locations, MaxUnits: req.MaxUnits}
	corr := "reconciliation:" + run.ID
	err = r.cfg.Runs.each(ctx, id, f, func(xs []Exception) error {
		recs := make([]*kgo.Record, 0, len(xs))
		for i := range xs {
			x := &xs[i]
			if req.MaxUnits > 0 && absInt(x.Difference) > req.MaxUnits {
				continue
			}
			q := int64(0) // missing in the snapshot: it held none
			if x.SnapshotQuantity != nil {
				q = *x.SnapshotQuantity
			}
			loc, asOf, reason := x.Location, run.AsOf, ReasonReconciliation
			e := &events.LedgerEntry{
				EntryType: events.EntryCount, SKU: x.SKU, Location: &loc, Quantity: q, AsOf: &asOf, Reason: &reason,
				EventID: CorrectionID(run.ID, x.SKU, x.Location), EventTime: now, Source: run.Source, CorrelationID: &corr,
			}
			b, err := r.cfg.Codec.Encode(ctx, r.cfg.LedgerTopic, e)
			if err != nil {
				return fmt.Errorf("encode correction: %w", err)
			}
			recs = append(recs, &kgo.Record{Topic: r.cfg.LedgerTopic, Key: []byte(x.SKU), Value: b})
		}
		if len(recs) == 0 {
			return nil
		}
		if err := r.cfg.Producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce corrections to the ledger: %w", err)
		}
		a.Entries += int64(len(recs))
		return nil
	})
	if err != nil {
		return Applied{}, err
	}
	r.metrics.corrections.WithLabelValues(run.Source).Add(float64(a.Entries))
	// Record the application; a run finished meanwhile by nobody else (runs
	// end once), so read-modify-write is safe enough for a log of applies.
	run, err = r.cfg.Runs.Get(ctx, id)
	if err != nil {
		return Applied{}, err
	}
	run.Applies = append(run.Applies, a)
	if err := r.cfg.Runs.Save(ctx, &run); err != nil {
		return Applied{}, err
	}
	r.log.Info("reconciliation applied", "run", id, "by", a.By, "classes", a.Classes, "locations", a.Locations, "entries", a.Entries)
	return a, nil
}

// applyFilter selects the exceptions req applies of run: correctable
// classes only (drift by default), and none a class of which the run did
// not store every exception, as applying it would correct only some.
func applyFilter(run *Run, req ApplyRequest) (Filter, error) {
	if len(req.Classes) == 0 {
		req.Classes = []string{Drift}
	}
	f := Filter{Classes: map[string]bool{}}
	for _, c := range req.Classes {
		if !slices.Contains(Correctable, c) {
			return f, fmt.Errorf("%w: %q (correctable: %s)", ErrBadClass, c, strings.Join(Correctable, ", "))
		}
		if n := run.Unstored[c]; n > 0 {
			return f, fmt.Errorf("%w: run %s did not store %d of its %s exceptions (it reached the cap of stored exceptions): "+
				"applying would correct only some; reconcile its locations in separate snapshots", ErrNotApplicable, run.ID, n, c)
		}
		f.Classes[c] = true
	}
	if len(req.Locations) > 0 {
		f.Locations = map[string]bool{}
		for _, l := range req.Locations {
			f.Locations[l] = true
		}
	}
	return f, nil
}

// applyMargin keeps a correction clear of the journal window's edge: it is
// folded moments after it is produced.
const applyMargin = 5 * time.Minute

// Fresh says whether a run's corrections can still be applied: a count at
// T keeps the movements after T on top of it only while the ledger's
// journal still holds them all, that is within the journal window.
func (r *Reconciler) Fresh(run Run) bool {
	return !run.AsOf.Before(r.cfg.Now().Add(-r.cfg.Ledger.JournalWindow() + applyMargin))
}

// CorrectionID is the event id of the correction for sku at loc from run:
// the same for every application of the run.
func CorrectionID(run, sku, loc string) string {
	return "reconciliation:" + run + ":" + sku + ":" + loc
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

func ptr[T any](v T) *T { return &v }

type metrics struct {
	runs, lines, exceptions, corrections, repeats *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_reconciliation_runs_total",
			Help: "Reconciliation runs finished, by source system and status."}, []string{"source", "status"}),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_reconciliation_lines_total",
			Help: "Snapshot lines compared, by source system."}, []string{"source"}),
		exceptions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_reconciliation_exceptions_total",
			Help: "Positions of completed runs that are not a match, by source system, location and class."}, []string{"source", "location", "class"}),
		corrections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_reconciliation_corrections_total",
			Help: "Correction entries produced to the ledger, by source system."}, []string{"source"}),
		repeats: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_reconciliation_repeated_snapshots_total",
			Help: "Snapshots whose id was reconciled before: answered with the first run.", ConstLabels: nil}, []string{"source"}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.lines, m.exceptions, m.corrections, m.repeats)
	}
	return m
}

// Format helpers for reports.

// FormatQuantity writes a quantity that may be absent.
func FormatQuantity(q *int64) string {
	if q == nil {
		return ""
	}
	return strconv.FormatInt(*q, 10)
}

func absInt(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func validID(s string) bool { return events.ValidID(s) }
