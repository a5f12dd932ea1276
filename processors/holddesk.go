package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// holdDesk decides the holds of one ledger partition as they arrive, while
// its folder owns the partition (docs/holds.md). Hold requests and releases
// come on the holds topic, whose partition p carries the same SKUs as the
// ledger's partition p and takes no transactional writes, so that no open
// normalizer transaction stands between a checkout and its answer.
//
// A desk decides in memory, against the SKU's state as the partition's
// applier folded it plus the decisions it journaled that the fold has not
// stored yet, then journals its decisions (and the releases) to the ledger
// partition in one Kafka transaction under a transactional id of the
// partition's own. Only then does it answer. A new owner's desk takes the
// same transactional id, which fences the old one (its commits fail from
// then on, so it answers nothing more) and aborts what it left open; it
// decides nothing until the fold has stored everything the log held at that
// moment, so every decision journaled before is counted.
type holdDesk struct {
	p      int32
	cfg    FolderConfig
	codec  *avro.Codec
	store  *ledger.Store
	app    *applier
	out    *kgo.Client // dead letters
	log    *slog.Logger
	ledger int // the ledger's partition count, for the key check
}

// errDeskFenced: another owner took the partition's transactional id.
var errDeskFenced = errors.New("hold desk fenced by a newer owner of the partition")

// transactionalID is the id every owner of ledger partition p journals
// hold decisions under.
func holdTransactionalID(group string, p int32) string {
	return group + "-holds-" + strconv.Itoa(int(p))
}

// run decides until ctx ends, starting over (fence, catch up) after any
// failure.
func (d *holdDesk) run(ctx context.Context) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.session(ctx)
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("hold desk restarting", "partition", d.p, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// session is one owner's term at the desk: fence, catch up, decide.
func (d *holdDesk) session(ctx context.Context) error {
	since := time.Now().Add(-2 * d.cfg.HoldTimeout).UnixMilli()
	opts := append(kafka.Conn(d.cfg.Kafka),
		kgo.TransactionalID(holdTransactionalID(d.cfg.Kafka.FolderGroup, d.p)),
		// An owner that dies mid-transaction and never returns holds the
		// partition's readers back this long at most.
		kgo.TransactionTimeout(d.cfg.HoldTxnTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(time.Second),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			d.cfg.Topics.Holds: {d.p: kgo.NewOffset().AfterMilli(since)},
		}),
	)
	opts = append(opts, d.cfg.HoldOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("hold desk client: %w", err)
	}
	defer cl.Close()
	// Taking the transactional id fences the previous owner and aborts
	// what it left open.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("take the partition's transactional id: %w", err)
	}
	if err := d.catchUp(ctx, cl); err != nil {
		return err
	}
	d.log.Debug("hold desk open", "partition", d.p)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return ctx.Err()
		}
		fs.EachError(func(t string, p int32, err error) {
			d.log.Warn("hold desk fetch", "topic", t, "partition", p, "err", err)
		})
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
// held when the desk took its transactional id, then forgets the pending
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
	d.ledger = len(ends[d.cfg.Topics.Ledger])
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

// request is one record of the holds topic, decoded.
type request struct {
	rec *kgo.Record
	en  *events.LedgerEntry
}

// reply is what a waiting API instance is told.
type reply struct{ channel, message string }

// batch decides the requests of one poll, journals the decisions and
// releases in one transaction, and then answers.
func (d *holdDesk) batch(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	var reqs []request
	var dead []*kgo.Record
	for _, r := range recs {
		en, err := d.decode(ctx, r)
		if err != nil {
			class := deadLetterClass(err)
			if class == "" {
				return err
			}
			d.cfg.Metrics.deadLetters.WithLabelValues(class, "holds").Inc()
			dead = append(dead, deadLetter(d.cfg.Topics.DLQ, r, class, err, time.Now()))
			continue
		}
		reqs = append(reqs, request{r, en})
	}
	if len(dead) > 0 {
		if err := d.out.ProduceSync(ctx, dead...).FirstErr(); err != nil {
			return fmt.Errorf("dead-letter hold requests: %w", err)
		}
	}
	if len(reqs) == 0 {
		return nil
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
	if len(replies) > 0 {
		pipe := d.store.Client().Pipeline()
		for _, r := range replies {
			pipe.Publish(ctx, r.channel, r.message)
		}
		// A lost answer is not lost: the API reads the decision from the
		// ledger once its wait ends.
		if _, err := pipe.Exec(ctx); err != nil {
			d.log.Warn("publishing hold decisions", "partition", d.p, "err", err)
		}
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
	case en.Status != nil || en.DecidedATP != nil || en.DecidedAt != nil:
		return nil, reject(ClassInvalid, "a hold request carries a decision: only the partition's owner decides")
	case d.ledger > 0 && ledgerPartition(en.SKU, d.ledger) != d.p:
		return nil, reject(ClassInvalid, "sku %s belongs to partition %d, not %d: produce hold requests keyed by SKU", en.SKU, ledgerPartition(en.SKU, d.ledger), d.p)
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

// ledgerPartition is the partition a record keyed sku goes to among n, by
// the default partitioner every Stockflow producer uses.
func ledgerPartition(sku string, n int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: []byte(sku)}, n))
}

// decide decides the requests in order, under the applier's lock, and
// returns the ledger records to journal, what each adds to the pending,
// and the answers to give.
func (d *holdDesk) decide(ctx context.Context, reqs []request) ([]*kgo.Record, []*pendingHold, []reply, error) {
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
	var replies []reply
	d.app.mu.Lock()
	defer d.app.mu.Unlock()
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
			journal = append(journal, &kgo.Record{Topic: d.cfg.Topics.Ledger, Partition: d.p, Key: []byte(en.SKU), Value: b})
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
			// Cached before the read, evicted since: rare enough to read
			// it here.
			st, err := d.store.Load(ctx, []string{en.SKU})
			if err != nil {
				return nil, nil, nil, fmt.Errorf("load state for a hold: %w", err)
			}
			s, loaded[en.SKU] = st[0], st[0]
		}
		h, known := eng.Decide(s, &en, d.app.pendingFor(en.SKU))
		if !known {
			status, atpv := h.Status, h.ATP
			en.Status, en.DecidedATP, en.DecidedAt = &status, &atpv, &at
			b, err := d.codec.Encode(ctx, d.cfg.Topics.Ledger, &en)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%w: hold decision: %w", errEncode, err)
			}
			journal = append(journal, &kgo.Record{Topic: d.cfg.Topics.Ledger, Partition: d.p, Key: []byte(en.SKU), Value: b})
			add(en.SKU, h)
		}
		if r.en.ReplyTo != nil && *r.en.ReplyTo != "" {
			replies = append(replies, reply{*r.en.ReplyTo, ledger.HoldMessage(en.SKU, h)})
		}
	}
	return journal, pend, replies, nil
}

// journal writes recs to the ledger partition in one transaction, and
// gives pend[i], what recs[i] adds to the pending, the offset it got.
func (d *holdDesk) journal(ctx context.Context, cl *kgo.Client, recs []*kgo.Record, pend []*pendingHold) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin a hold transaction: %w", err)
	}
	perr := cl.ProduceSync(ctx, recs...).FirstErr()
	if perr == nil {
		d.app.mu.Lock()
		for i, p := range pend {
			p.offset = recs[i].Offset
		}
		d.app.mu.Unlock()
	}
	commit := kgo.TryCommit
	if perr != nil {
		commit = kgo.TryAbort
	}
	// The end of a transaction is not cut short by a stop: a stop right
	// after the produce would otherwise leave the journal's fate unknown.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.HoldTxnTimeout)
	defer cancel()
	eerr := cl.EndTransaction(ectx, commit)
	switch {
	case perr != nil:
		return fmt.Errorf("journal hold decisions: %w", perr)
	case eerr != nil:
		if isFenced(eerr) {
			return fmt.Errorf("%w: %w", errDeskFenced, eerr)
		}
		return fmt.Errorf("commit hold decisions: %w", eerr)
	}
	return nil
}

func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}
