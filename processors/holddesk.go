package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// holdDesk decides the holds of one ledger partition as they arrive, while
// its folder owns the partition (docs/design.md §7.1; docs/holds.md has the
// path in full). Hold requests and releases come on the holds topic, whose
// partition p carries the same SKUs as the ledger's partition p (§2.3) and
// takes no transactional writes, so that no open normalizer transaction
// stands between a checkout and its answer.
//
// A desk decides in memory, against the SKU's state as the partition's
// applier folded it plus the decisions it journaled that the fold has not
// stored yet, then journals its decisions (and the releases) to the ledger
// partition, and only once the broker has them answers, through a Redis call
// that first checks the partition's hold fence. A new owner's desk takes the
// fence (a new epoch), so the old one answers nothing more; the new one
// decides nothing until the fold has stored everything the log held at that
// moment, so every decision that was answered is counted. A decision a
// fenced desk journaled but could not answer is released by the API when
// its wait ends; were a newer desk to decide the same request too, the
// newer epoch's decision stands in the fold.
type holdDesk struct {
	p     int32
	cfg   FolderConfig
	hooks *hooks
	codec *avro.Codec
	store *ledger.Store
	app   *applier
	out   *kgo.Client // dead letters
	log   *slog.Logger
	epoch int64 // the hold fence's epoch this desk took
	// partitions is the ledger's partition count, which the desk reads at
	// each start and shares with its folder.
	partitions *atomic.Int32
}

// errDeskFenced: a newer owner took the partition's hold fence.
var errDeskFenced = errors.New("hold desk fenced by a newer owner of the partition")

// run decides until ctx ends, starting over (fence, catch up) after any
// failure.
func (d *holdDesk) run(ctx context.Context) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.session(ctx)
		if ctx.Err() != nil {
			return
		}
		pause := wait
		if errors.Is(err, errDeskFenced) {
			// Another instance owns the partition now; this one will be
			// told so by its group shortly, and the desk closed. Taking
			// the fence back at once would only fence the new owner.
			pause = fencedPause
		}
		d.log.Warn("hold desk restarting", "partition", d.p, "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// fencedPause is how long a fenced desk waits before it takes the fence
// again: longer than a group takes to tell a member it lost a partition.
const fencedPause = 15 * time.Second

// session is one owner's term at the desk: fence, catch up, decide.
func (d *holdDesk) session(ctx context.Context) error {
	epoch, err := d.store.TakeHoldFence(ctx, d.cfg.Topics.Ledger, d.p)
	if err != nil {
		return err
	}
	d.epoch = epoch
	// On from where the last desk of the partition stopped, so that no
	// release is ever skipped; the first desk starts with the requests
	// a caller may still be waiting on.
	from := kgo.NewOffset().AfterMilli(time.Now().Add(-d.stale()).UnixMilli())
	if next, ok, err := d.store.HoldsNext(ctx, d.cfg.Topics.Ledger, d.p); err != nil {
		return err
	} else if ok {
		from = kgo.NewOffset().At(next)
	}
	opts := append(kafka.Conn(d.cfg.Kafka),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(time.Second),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{d.cfg.Topics.Holds: {d.p: from}}),
		// A position the topic no longer has (retention): its oldest.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	opts = append(opts, d.cfg.HoldOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("hold desk client: %w", err)
	}
	defer cl.Close()
	if err := d.catchUp(ctx, cl); err != nil {
		return err
	}
	d.log.Debug("hold desk open", "partition", d.p)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return ctx.Err()
		}
		logFetchErrors(d.log, "hold desk", fs)
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		if len(recs) == 0 {
			continue
		}
		if err := d.batch(ctx, cl, recs); err != nil {
			return err
		}
	}
}

// catchUp waits until the fold has stored everything the ledger partition
// held when the desk took the fence, then forgets the pending
// decisions: the fold holds every one of them now.
func (d *holdDesk) catchUp(ctx context.Context, cl *kgo.Client) error {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, d.cfg.Topics.Ledger)
	if err != nil {
		return fmt.Errorf("ledger end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("ledger end offsets: %w", err)
	}
	end, ok := ends.Lookup(d.cfg.Topics.Ledger, d.p)
	if !ok {
		return fmt.Errorf("ledger partition %d has no end offset", d.p)
	}
	d.partitions.Store(int32(len(ends[d.cfg.Topics.Ledger])))
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for d.app.folded.Load() < end.Offset-1 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	d.app.mu.Lock()
	clear(d.app.pending)
	d.app.mu.Unlock()
	return nil
}

// stale is the age past which a hold request is not decided: the API that
// sent it stopped waiting long ago (twice its wait, for clocks that
// disagree) and releases it, so deciding it would only hold stock until
// that release is folded.
func (d *holdDesk) stale() time.Duration { return 2 * d.cfg.HoldTimeout }

// request is one record of the holds topic, decoded.
type request struct {
	rec *kgo.Record
	en  *events.LedgerEntry
	ctx context.Context // its process span's, when traced
}

// batch decides the requests of one poll, journals the decisions and
// releases, and then answers.
func (d *holdDesk) batch(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	var reqs []request
	var dead []*kgo.Record
	var spans []trace.Span
	defer func() {
		for _, sp := range spans {
			sp.End()
		}
	}()
	for _, r := range recs {
		span, sctx := noSpan, ctx
		if k := d.cfg.HoldTracing.Kotel; k != nil {
			_, span = k.WithProcessSpan(r)
			spans = append(spans, span)
			sctx = trace.ContextWithSpan(ctx, span)
		}
		en, err := d.decode(ctx, r)
		if err != nil {
			class := deadLetterClass(err)
			if class == "" {
				return err
			}
			span.SetStatus(codes.Error, class)
			d.hooks.onDeadLetter(StageHolds, class)
			dead = append(dead, deadletter.New(d.cfg.Topics.DLQ, r, class, err, time.Now()))
			continue
		}
		if span.IsRecording() {
			setEntryAttrs(span, en)
		}
		if en.EntryType == events.EntryHold && time.Since(r.Timestamp) > d.stale() {
			continue
		}
		reqs = append(reqs, request{r, en, sctx})
	}
	if len(dead) > 0 {
		if err := d.out.ProduceSync(ctx, dead...).FirstErr(); err != nil {
			return fmt.Errorf("dead-letter hold requests: %w", err)
		}
	}
	next := recs[len(recs)-1].Offset + 1
	if len(reqs) == 0 {
		return d.answer(ctx, next, nil)
	}
	journal, pend, replies, err := d.decide(ctx, reqs)
	if err != nil {
		return err
	}
	if len(journal) > 0 {
		if err := d.journal(ctx, cl, journal, pend); err != nil {
			return err
		}
		if d.cfg.AfterHoldJournal != nil {
			d.cfg.AfterHoldJournal()
		}
	}
	// The answer joins the trace of the batch's first request.
	return d.answer(reqs[0].ctx, next, replies)
}

// answer gives the batch's answers and records next, the offset of the
// next request, if this desk still holds the partition's fence.
func (d *holdDesk) answer(ctx context.Context, next int64, replies []ledger.HoldAnswer) error {
	ok, err := d.store.AnswerHolds(ctx, d.cfg.Topics.Ledger, d.p, d.epoch, next, replies)
	if err != nil {
		// Unanswered: the API's wait ends, it releases the attempt and
		// its client tries again.
		return err
	}
	if !ok {
		return errDeskFenced
	}
	return nil
}

// decode returns the request in r, or a dead-letter error saying why it is
// not one.
func (d *holdDesk) decode(ctx context.Context, r *kgo.Record) (*events.LedgerEntry, error) {
	v, err := d.codec.Decode(ctx, r.Value)
	if err != nil {
		if deadLetterClass(err) != "" {
			return nil, err
		}
		return nil, fmt.Errorf("decode hold request %d@%d: %w", r.Partition, r.Offset, err)
	}
	en, ok := v.(*events.LedgerEntry)
	switch {
	case !ok:
		return nil, reject(ClassInvalid, "a %T on the holds topic: only HOLD and HOLD_RELEASE entries belong there", v)
	case en.EntryType != events.EntryHold && en.EntryType != events.EntryHoldRelease:
		return nil, reject(ClassInvalid, "a %s entry on the holds topic: only HOLD and HOLD_RELEASE entries belong there", en.EntryType)
	case !ValidID(en.SKU):
		return nil, reject(ClassInvalid, "sku is not a valid id")
	case en.Location == nil || !ValidID(*en.Location):
		return nil, reject(ClassInvalid, "location is missing or not a valid id")
	case en.HoldID == nil || *en.HoldID == "" || len(*en.HoldID) > 200:
		return nil, reject(ClassInvalid, "hold_id is missing or longer than 200 characters")
	case en.Status != nil || en.DecidedATP != nil || en.DecidedAt != nil || en.DecidedEpoch != nil:
		return nil, reject(ClassInvalid, "a hold request carries a decision: only the partition's owner decides")
	}
	if n := int(d.partitions.Load()); n > 0 {
		if p := ledgerPartition(en.SKU, n); p != d.p {
			return nil, reject(ClassInvalid, "sku %s belongs to partition %d, not %d: produce hold requests keyed by SKU", en.SKU, p, d.p)
		}
	}
	if en.EntryType == events.EntryHold {
		if en.Quantity < 1 || en.Quantity > 1_000_000_000 {
			return nil, reject(ClassInvalid, "quantity %d is outside 1..1000000000", en.Quantity)
		}
		if en.TTLMillis == nil || *en.TTLMillis < 1 || *en.TTLMillis > 3_600_000 {
			return nil, reject(ClassInvalid, "ttl_ms is missing or outside 1..3600000")
		}
	}
	return en, nil
}

// skuPartitioner is the default partitioner every Stockflow producer uses,
// for keyed records: a pure function of the key, safe to share.
var skuPartitioner = kgo.StickyKeyPartitioner(nil).ForTopic("")

// ledgerPartition is the partition a record keyed sku goes to among n.
func ledgerPartition(sku string, n int) int32 {
	return int32(skuPartitioner.Partition(&kgo.Record{Key: []byte(sku)}, n))
}

// decide decides the requests in order, under the applier's lock, and
// returns the ledger records to journal, what each adds to the pending,
// and the answers to give.
func (d *holdDesk) decide(ctx context.Context, reqs []request) ([]*kgo.Record, []*pendingHold, []ledger.HoldAnswer, error) {
	// The states the applier has not cached are read first, in one call.
	d.app.mu.Lock()
	var missing []string
	seen := map[string]bool{}
	for _, r := range reqs {
		if r.en.EntryType == events.EntryHold && d.app.cache[r.en.SKU] == nil && !seen[r.en.SKU] {
			seen[r.en.SKU] = true
			missing = append(missing, r.en.SKU)
		}
	}
	gen := d.app.gen
	d.app.mu.Unlock()
	loaded := map[string]*ledger.State{}
	if len(missing) > 0 {
		states, err := d.store.Load(ctx, missing)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("load states for holds: %w", err)
		}
		for i, s := range states {
			loaded[missing[i]] = s
		}
	}
	at := d.app.folded.Load()
	eng := d.store.Engine()
	var journal []*kgo.Record
	var pend []*pendingHold
	var replies []ledger.HoldAnswer
	d.app.mu.Lock()
	defer d.app.mu.Unlock()
	if d.app.gen != gen {
		// The fold dropped states from its cache meanwhile: one it cached,
		// stored and dropped after the read above would be newer than
		// what was read, and its pending decisions settled. Read again.
		clear(loaded)
	}
	if d.app.pending == nil {
		d.app.pending = map[string][]*pendingHold{}
	}
	add := func(sku string, h ledger.Hold) {
		p := &pendingHold{hold: h, offset: math.MaxInt64}
		d.app.pending[sku] = append(d.app.pending[sku], p)
		pend = append(pend, p)
	}
	for _, r := range reqs {
		en := *r.en
		en.ReplyTo = nil
		if en.EntryType == events.EntryHoldRelease {
			b, err := d.codec.Encode(ctx, d.cfg.Topics.Ledger, &en)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%w: hold release: %w", errEncode, err)
			}
			journal = append(journal, &kgo.Record{Topic: d.cfg.Topics.Ledger, Partition: d.p, Key: []byte(en.SKU), Value: b, Context: r.ctx})
			add(en.SKU, ledger.Hold{HoldID: *en.HoldID, Location: *en.Location, Status: ledger.HoldReleased})
			continue
		}
		// The cached state is newer than one read before the lock, if the
		// fold cached it meanwhile; a loaded one is never cached (the fold
		// may be storing a newer one).
		s := d.app.cache[en.SKU]
		if s == nil {
			s = loaded[en.SKU]
		}
		if s == nil {
			// Dropped from the cache since the read: rare enough to read
			// it here.
			st, err := d.store.Load(ctx, []string{en.SKU})
			if err != nil {
				return nil, nil, nil, fmt.Errorf("load state for a hold: %w", err)
			}
			s, loaded[en.SKU] = st[0], st[0]
		}
		h, known := eng.Decide(s, &en, d.app.pendingFor(en.SKU))
		if !known {
			status, atpv, epoch := h.Status, h.ATP, d.epoch
			h.Epoch = epoch
			en.Status, en.DecidedATP, en.DecidedAt, en.DecidedEpoch = &status, &atpv, &at, &epoch
			b, err := d.codec.Encode(ctx, d.cfg.Topics.Ledger, &en)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%w: hold decision: %w", errEncode, err)
			}
			journal = append(journal, &kgo.Record{Topic: d.cfg.Topics.Ledger, Partition: d.p, Key: []byte(en.SKU), Value: b, Context: r.ctx})
			add(en.SKU, h)
		}
		if r.en.ReplyTo != nil && *r.en.ReplyTo != "" {
			replies = append(replies, ledger.HoldAnswer{Channel: *r.en.ReplyTo, SKU: en.SKU, Hold: h})
		}
	}
	return journal, pend, replies, nil
}

// journal writes recs to the ledger partition, and gives pend[i], what
// recs[i] adds to the pending, the offset it got.
func (d *holdDesk) journal(ctx context.Context, cl *kgo.Client, recs []*kgo.Record, pend []*pendingHold) error {
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		// What did reach the log is unanswered: released by the API.
		return fmt.Errorf("journal hold decisions: %w", err)
	}
	d.app.mu.Lock()
	for i, p := range pend {
		p.offset = recs[i].Offset
	}
	d.app.mu.Unlock()
	return nil
}
