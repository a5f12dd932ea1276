package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// applier folds one partition of the ledger log into Redis. It keeps the
// states of the SKUs it folded lately: per poll it decodes the records,
// loads the SKUs it lacks in one pipelined read, folds the whole poll with
// the ledger engine and stores every changed SKU with one guarded write
// each, pipelined a few hundred SKUs to a round trip. Only its partition's
// owner may use it, one poll at a time.
type applier struct {
	partition int32
	codec     *avro.Codec
	store     *ledger.Store
	topics    config.Topics
	supply    atp.SupplyPolicy // which supply promises count on
	hooks     *hooks
	tracing   Tracing
	log       *slog.Logger
	capacity  int

	// mu guards cache and pending: the partition's hold desk reads them
	// between the folds, which hold it only while they fold in memory.
	mu    sync.Mutex
	cache map[string]*ledger.State
	// pending is what the hold desk journaled, by SKU, at offsets the
	// fold has not stored yet: decisions and releases, which the desk
	// counts against ATP.
	pending map[string][]*pendingHold
	// gen counts the times states left the cache, so the hold desk knows
	// when a state it read from Redis may have been overtaken.
	gen uint64
	// folded is the highest offset of the partition folded and stored.
	folded atomic.Int64
}

// errEncode marks an output the codec refused: a defect, not an outage, so
// it stops the folder instead of being retried.
var errEncode = errors.New("encode output")

// noSpan stands in for a record's process span when tracing is off.
var noSpan = trace.SpanFromContext(context.Background())

// applied is what one poll of a partition came to.
type applied struct {
	last    int64 // highest offset handled
	changes []change
	alerts  []stockAlert
	dead    []*kgo.Record
	stats   FolderStats
	// refused: a write was refused by its guard; the partition must be
	// re-read from what Redis has, and this poll's offset not recorded.
	refused bool
	err     error
}

// skuEntries are one SKU's entries in a poll, in log order.
type skuEntries struct {
	sku     string
	entries []ledger.Entry
	corr    *string
	span    context.Context // the span of its last entry
	hold    bool            // a hold decision is awaited
}

// apply folds recs, the records of one poll, into Redis.
func (a *applier) apply(ctx context.Context, recs []*kgo.Record) applied {
	res := applied{last: recs[len(recs)-1].Offset}
	var spans []trace.Span
	defer func() {
		for _, sp := range spans {
			sp.End()
		}
	}()
	var order []*skuEntries
	bySKU := map[string]*skuEntries{}
	n := 0
	for _, r := range recs {
		if r.Attrs.IsControl() {
			continue // a transaction marker: only its offset counts
		}
		span, sctx := noSpan, ctx
		if a.tracing.Kotel != nil {
			_, span = a.tracing.Kotel.WithProcessSpan(r)
			spans = append(spans, span)
			sctx = trace.ContextWithSpan(ctx, span)
		}
		le, bad, err := a.decode(ctx, r)
		if err != nil {
			res.err = err
			return res
		}
		if bad != nil {
			res.dead = append(res.dead, a.deadLetter(r, bad, span))
			res.stats.DeadLetters++
			continue
		}
		if span.IsRecording() {
			setEntryAttrs(span, le)
		}
		g, ok := bySKU[le.SKU]
		if !ok {
			g = &skuEntries{sku: le.SKU}
			bySKU[le.SKU] = g
			order = append(order, g)
		}
		g.add(le, r, sctx)
		n++
	}
	a.hooks.onFoldBatch(n)
	if len(order) == 0 {
		return res
	}
	folded, err := a.foldWithRetry(ctx, order)
	if err != nil {
		res.err = err
		return res
	}
	res.changes, res.alerts, res.refused = folded.changes, folded.alerts, folded.refused
	res.stats.Applied += folded.stats.Applied
	res.stats.Duplicates += folded.stats.Duplicates
	res.stats.Stale += folded.stats.Stale
	res.stats.Absorbed += folded.stats.Absorbed
	a.mu.Lock()
	a.evict(bySKU)
	a.mu.Unlock()
	if !res.refused {
		a.settle(res.last)
		a.folded.Store(res.last)
	}
	return res
}

// deadLetter is the dead letter of r, a record that can never be an entry
// (bad says why); it marks the record's span and tells the hooks.
func (a *applier) deadLetter(r *kgo.Record, bad error, span trace.Span) *kgo.Record {
	class := deadLetterClass(bad)
	span.SetStatus(codes.Error, class)
	a.hooks.onDeadLetter(StageFolder, class)
	return deadletter.New(a.topics.DLQ, r, class, bad, time.Now())
}

// add appends le, the entry of r, to the SKU's entries of the poll; span is
// its record's process span.
func (g *skuEntries) add(le *events.LedgerEntry, r *kgo.Record, span context.Context) {
	g.entries = append(g.entries, ledger.Entry{LedgerEntry: le, Partition: r.Partition, Offset: r.Offset})
	g.span = span
	if le.CorrelationID != nil {
		g.corr = le.CorrelationID
	}
	g.hold = g.hold || le.ReplyTo != nil
}

// foldWithRetry folds the poll into Redis. Redis failures are retried
// until they succeed or ctx ends; a failed attempt may have stored some
// SKUs, so their states are reloaded and the poll folded again: the
// watermarks skip what is already stored.
func (a *applier) foldWithRetry(ctx context.Context, order []*skuEntries) (foldResult, error) {
	var folded foldResult
	b := retry(a.log)
	b.ShouldRetry = func(err error) bool { return !errors.Is(err, errEncode) }
	err := b.Do(ctx, "fold into redis", func(ctx context.Context) error {
		var err error
		folded, err = a.fold(ctx, order)
		if err != nil {
			a.mu.Lock()
			for _, g := range order {
				delete(a.cache, g.sku)
			}
			a.gen++
			a.mu.Unlock()
		}
		return err
	})
	return folded, err
}

// decode returns the entry of r, or why a record can never be one (bad,
// for the dead-letter topic). An error is infrastructure (a registry outage).
func (a *applier) decode(ctx context.Context, r *kgo.Record) (le *events.LedgerEntry, bad, err error) {
	rec, err := a.codec.Decode(ctx, r.Value)
	if err != nil {
		if deadLetterClass(err) != "" {
			return nil, err, nil
		}
		return nil, nil, fmt.Errorf("decode ledger entry %d@%d: %w", r.Partition, r.Offset, err)
	}
	le, ok := rec.(*events.LedgerEntry)
	if !ok || !ValidID(le.SKU) {
		return nil, reject(ClassInvalid, "ledger record is not a valid LedgerEntry"), nil
	}
	return le, nil, nil
}

type foldResult struct {
	changes []change
	alerts  []stockAlert
	stats   FolderStats
	refused bool
}

// folding is one attempt's work on a poll, indexed as its SKUs are.
type folding struct {
	states  []*ledger.State    // the SKUs' states, as Save takes them
	changed [][]ledger.Changed // the positions each SKU's fold changed
	crossed [][]stockAlert     // the alerts each SKU's fold crossed
	stale   []bool             // the fold met entries the SKU had folded before
}

// fold is one attempt at a poll: load what the cache lacks, fold, store.
func (a *applier) fold(ctx context.Context, order []*skuEntries) (foldResult, error) {
	var res foldResult
	var missing []string
	// The Redis calls join one trace: a hold's when the poll has one (a
	// checkout waits on it), else the first SKU's.
	tctx := order[0].span
	a.mu.Lock()
	for _, g := range order {
		if _, ok := a.cache[g.sku]; !ok {
			missing = append(missing, g.sku)
		}
		if g.hold && tctx == order[0].span {
			tctx = g.span
		}
	}
	a.mu.Unlock()
	// The chosen entry's span, under this attempt's context: cancelling
	// ctx still stops the Redis calls.
	ctx = trace.ContextWithSpan(ctx, trace.SpanFromContext(tctx))
	if len(missing) > 0 {
		if err := a.loadMissing(ctx, missing); err != nil {
			return res, err
		}
	}
	if err := a.prime(ctx, order); err != nil {
		return res, err
	}
	p := folding{
		states:  make([]*ledger.State, len(order)),
		changed: make([][]ledger.Changed, len(order)),
		crossed: make([][]stockAlert, len(order)),
		stale:   make([]bool, len(order)),
	}
	if err := a.foldInMemory(ctx, order, &p, &res.stats); err != nil {
		return res, err
	}
	t0 := time.Now()
	stored, err := a.store.Save(ctx, p.states)
	a.hooks.onStored(time.Since(t0))
	if err != nil {
		return res, err
	}
	a.collectOutputs(order, &p, stored, &res)
	return res, nil
}

// loadMissing reads the states of the SKUs the cache lacks into it.
func (a *applier) loadMissing(ctx context.Context, missing []string) error {
	states, err := a.store.Load(ctx, missing)
	if err != nil {
		return err
	}
	a.mu.Lock()
	for i, s := range states {
		a.cache[missing[i]] = s
	}
	a.mu.Unlock()
	return nil
}

// prime reads from Redis what the poll's entries need and the cached
// states do not hold: which of them were applied already (the states keep
// no dedupe ids between polls), and the closed lines they touch. The states
// are read and written under the lock (the hold desk reads them too), and
// Redis is asked outside it.
func (a *applier) prime(ctx context.Context, order []*skuEntries) error {
	skus := make([]string, len(order))
	miss := make([]ledger.Missing, len(order))
	a.mu.Lock()
	for i, g := range order {
		skus[i] = g.sku
		if s := a.cache[g.sku]; s != nil {
			miss[i] = s.Missing(g.entries)
		}
	}
	a.mu.Unlock()
	found, err := a.store.Fetch(ctx, skus, miss)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, g := range order {
		if s := a.cache[g.sku]; s != nil {
			s.Add(found[i])
		}
	}
	return nil
}

// foldInMemory folds each SKU's entries into its cached state with the
// ledger engine, counting their outcomes into st, and puts the alerts the
// fold crosses in the state's outbox.
func (a *applier) foldInMemory(ctx context.Context, order []*skuEntries, p *folding, st *FolderStats) error {
	eng := a.store.Engine()
	now := time.Now()
	// The fold in memory excludes the hold desk; the write does not.
	a.mu.Lock()
	for i, g := range order {
		s := a.cache[g.sku]
		p.states[i] = s
		for _, e := range g.entries {
			out := eng.Apply(s, e.LedgerEntry, e.Partition, e.Offset)
			p.stale[i] = p.stale[i] || out.Status == ledger.Stale
			a.count(st, e.LedgerEntry, out, now)
		}
		p.changed[i] = s.Changes()
		// Alerts go into the SKU's outbox with the write that crosses
		// them: a crash before they are out leaves them for the next owner.
		for _, c := range p.changed[i] {
			for _, al := range alerts(&change{sku: g.sku, Changed: c}, now.UTC().Truncate(time.Millisecond)) {
				al.CorrelationID = g.corr
				b, err := a.codec.Encode(ctx, a.topics.Alerts, al)
				if err != nil {
					a.mu.Unlock()
					return fmt.Errorf("%w: alert %s: %w", errEncode, al.AlertID, err)
				}
				s.Outbox(al.AlertID, b)
				p.crossed[i] = append(p.crossed[i], stockAlert{sku: g.sku, id: al.AlertID, value: b, ctx: g.span})
			}
			if err := a.recommit(ctx, s, g, c.Location, p, i); err != nil {
				a.mu.Unlock()
				return err
			}
		}
	}
	a.mu.Unlock()
	return nil
}

// recommit promises the order lines at loc again after a fold changed the
// location, and puts each changed promise in the state's outbox, as an
// alert is: stored with the write, published after it, and published again
// by the next owner when a crash comes between.
func (a *applier) recommit(ctx context.Context, s *ledger.State, g *skuEntries, loc string, p *folding, i int) error {
	if a.topics.Commitments == "" {
		return nil
	}
	cms := s.Recommit(loc, a.supply)
	if len(cms) == 0 {
		return nil
	}
	cause := g.entries[len(g.entries)-1]
	s.Remember(cms, cause.EventID, cause.EntryType, cause.EventTime.UnixMilli())
	for _, cm := range cms {
		rec := commitmentRecord(g.sku, cm, cause.LedgerEntry, cause.Partition, cause.Offset)
		b, err := a.codec.Encode(ctx, a.topics.Commitments, rec)
		if err != nil {
			return fmt.Errorf("%w: commitment %s: %w", errEncode, rec.CommitmentID, err)
		}
		a.keep(s, g, p, i, commitmentOutboxID(rec.CommitmentID), b)
		a.hooks.onCommitment(rec, supplierOf(cause.LedgerEntry), cm.LateUnits)
	}
	ex := planningException(g.sku, loc, cms, cause.LedgerEntry, cause.Partition, cause.Offset)
	if ex == nil {
		return nil
	}
	b, err := a.codec.Encode(ctx, a.topics.Alerts, ex)
	if err != nil {
		return fmt.Errorf("%w: planning exception %s: %w", errEncode, ex.ExceptionID, err)
	}
	a.keep(s, g, p, i, exceptionOutboxID(ex.ExceptionID), b)
	return nil
}

// keep puts an output in the state's outbox, to be stored with its write,
// and among what the poll publishes once the write is done.
func (a *applier) keep(s *ledger.State, g *skuEntries, p *folding, i int, id string, value []byte) {
	s.Outbox(id, value)
	p.crossed[i] = append(p.crossed[i], stockAlert{sku: g.sku, id: id, value: value, ctx: g.span})
}

// collectOutputs puts in res what the poll's SKUs publish once Save has
// stored them (stored, by SKU): the alerts and changes of their folds, and
// for a SKU whose fold met entries stored before, what that earlier write
// may not have published. A SKU whose write was refused leaves the cache.
func (a *applier) collectOutputs(order []*skuEntries, p *folding, stored []bool, res *foldResult) {
	for i, g := range order {
		s := p.states[i]
		outbox := s.TakeOutbox()
		if !stored[i] {
			// Another writer moved the SKU on: a newer owner of the
			// partition, or a Redis that went back in time.
			a.mu.Lock()
			delete(a.cache, g.sku)
			a.gen++
			a.mu.Unlock()
			res.refused = true
			a.log.Warn("write refused by the watermark guard: dropping the SKU", "sku", g.sku, "partition", a.partition)
			continue
		}
		if p.stale[i] {
			// Outputs a crashed writer stored and may not have published,
			// before this fold's: a line's promises go out in the order
			// they were made, so its last record is its promise.
			res.alerts = append(res.alerts, staleOutputs(g, outbox)...)
		}
		res.alerts = append(res.alerts, p.crossed[i]...)
		for _, c := range p.changed[i] {
			res.changes = append(res.changes, change{sku: g.sku, Changed: c, corr: g.corr, ctx: g.span, force: p.stale[i]})
		}
		if p.stale[i] {
			// Part of the SKU's poll was stored before, by an attempt whose
			// outputs may be lost (a crash between the Redis write and the
			// produce): publish its other positions as they stand too.
			for _, c := range s.Current() {
				if !touched(p.changed[i], c.Location) {
					res.changes = append(res.changes, change{sku: g.sku, Changed: c, corr: g.corr, ctx: g.span, force: true})
				}
			}
		}
	}
}

// pendingHold is a decision or release the hold desk journaled at offset
// of the partition (math.MaxInt64 until the broker has given it one).
type pendingHold struct {
	hold   ledger.Hold
	offset int64
}

// settle forgets what the desk journaled at or below offset: the fold has
// stored it.
func (a *applier) settle(offset int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for sku, ps := range a.pending {
		ps = slices.DeleteFunc(ps, func(p *pendingHold) bool { return p.offset <= offset })
		if len(ps) == 0 {
			delete(a.pending, sku)
		} else {
			a.pending[sku] = ps
		}
	}
}

// pendingFor lists the pending holds of sku as the engine takes them.
func (a *applier) pendingFor(sku string) []ledger.Hold {
	ps := a.pending[sku]
	if len(ps) == 0 {
		return nil
	}
	out := make([]ledger.Hold, len(ps))
	for i, p := range ps {
		out[i] = p.hold
	}
	return out
}

func touched(cs []ledger.Changed, loc string) bool {
	for _, c := range cs {
		if c.Location == loc {
			return true
		}
	}
	return false
}

// count records an entry's outcome in the stats and tells the hooks.
func (a *applier) count(st *FolderStats, e *events.LedgerEntry, out ledger.Outcome, now time.Time) {
	switch out.Status {
	case ledger.Duplicate:
		st.Duplicates++
	case ledger.Stale:
		st.Stale++
	case ledger.Absorbed:
		st.Absorbed++
		st.Applied++
	default:
		st.Applied++
	}
	a.hooks.onFolded(e, out, now)
}

// evict keeps the cache within capacity, keeping the SKUs of the last poll.
func (a *applier) evict(keep map[string]*skuEntries) {
	over := len(a.cache) - a.capacity
	if over <= 0 {
		return
	}
	// Go's map order is random: what goes is a random sample of the rest.
	a.gen++
	over += a.capacity / 10
	for sku := range a.cache {
		if over <= 0 {
			break
		}
		if _, ok := keep[sku]; !ok {
			delete(a.cache, sku)
			over--
		}
	}
}
