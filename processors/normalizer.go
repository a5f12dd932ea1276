package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// NormalizerConfig configures a Normalizer.
type NormalizerConfig struct {
	Kafka  config.Kafka
	Topics config.Topics
	// InstanceID names the transactional id. Required. It must be unique
	// among running instances and should stay the same across restarts of
	// one (a pod name, say): a restarted instance then aborts its
	// predecessor's unfinished transaction at once.
	InstanceID string
	// UoMWait bounds how long a record with an unknown unit waits for the
	// item master before it is dead-lettered as unknown_uom. Default 10s.
	UoMWait time.Duration
	// RetryFor bounds how long an infrastructure failure is retried inside
	// one transaction before the normalizer gives up and returns (nothing is
	// committed, so a restart reprocesses the batch). Default 30s.
	RetryFor time.Duration
	// MaxPollRecords bounds one transaction, so it stays well inside the
	// transaction timeout however far behind the normalizer is. Default 5000.
	MaxPollRecords int
	// TxnTimeout is the Kafka transaction timeout: the broker aborts a
	// transaction open longer. An instance that dies and never comes back
	// holds back every read_committed reader of the partitions it wrote
	// to until then (plus the broker's periodic check for timed-out
	// transactions). A transaction is open on the broker only while one
	// poll's records are produced and committed: the poll is normalized
	// first. Default 10s (config.Config.NormalizerTxnTimeout).
	TxnTimeout time.Duration
	// ExtraOpts are appended to the client options (tracing hooks, tests).
	ExtraOpts []kgo.Opt
	// SessionOpts, when set, gives options made anew for each session's
	// client (hooks that keep per-client state, such as its metrics).
	SessionOpts func() []kgo.Opt
	// Hooks observe the normalizer (metrics); default none.
	Hooks []Hook
	// Tracing, default off.
	Tracing Tracing
	// AlignWindow keeps the source partitions in step by record time: a
	// partition read more than this past the earliest one still being read
	// waits for it (aligner). 0 reads them as the fetches bring them.
	AlignWindow time.Duration
}

func (c *NormalizerConfig) setDefaults() {
	if c.UoMWait <= 0 {
		c.UoMWait = 10 * time.Second
	}
	if c.RetryFor <= 0 {
		c.RetryFor = 30 * time.Second
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 5000
	}
	if c.TxnTimeout <= 0 {
		c.TxnTimeout = config.Default().NormalizerTxnTimeout
	}
}

// Normalizer consumes the source topics and produces ledger entries and dead
// letters inside one Kafka transaction per poll, together with the consumed
// offsets (docs/design.md §3.1; §3.2 says which entries each source event
// becomes).
type Normalizer struct {
	cfg     NormalizerConfig
	codec   *avro.Codec
	store   *ledger.Store
	catalog *Catalog
	log     *slog.Logger
	hooks   *hooks
	stats   NormalizerStats
	// indexCaughtUp holds, per source partition, the highest offset of a
	// batch whose poll came before a catch-up of the document index (see
	// catchUpIndex). Only Run's goroutine uses it.
	indexCaughtUp map[topicPartition]int64
}

type topicPartition struct {
	topic     string
	partition int32
}

// NormalizerStats counts what the normalizer did. Updated only by Run's goroutine.
type NormalizerStats struct {
	Transactions, Records, Entries, DeadLetters int64
	// IndexCatchUps counts the times the document index topic was written
	// back into Redis, and IndexLines the lines it wrote.
	IndexCatchUps, IndexLines int64
}

// NewNormalizer returns a normalizer. The catalog must be running.
func NewNormalizer(cfg NormalizerConfig, codec *avro.Codec, store *ledger.Store, catalog *Catalog, log *slog.Logger) *Normalizer {
	cfg.setDefaults()
	return &Normalizer{cfg: cfg, codec: codec, store: store, catalog: catalog, log: log, hooks: newHooks(cfg.Hooks), indexCaughtUp: map[topicPartition]int64{}}
}

// Run consumes until ctx ends. A transactional session that can no longer
// continue (a broker restart can fence or fail it) is closed and replaced:
// nothing it had not committed was committed, so the next one reprocesses it.
func (n *Normalizer) Run(ctx context.Context) error {
	defer leaveGroup(n.cfg.Kafka, n.cfg.Kafka.NormalizerGroup, n.cfg.InstanceID, n.log)
	backoff := 500 * time.Millisecond
	for {
		err := n.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		n.log.Error("normalizer session failed; starting a new one", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// session runs one transactional session until ctx ends or it fails.
func (n *Normalizer) session(ctx context.Context) error {
	t := n.cfg.Topics
	sources := []string{t.Inventory, t.Orders, t.Supplier, t.Catalog}
	opts := append(kafka.Conn(n.cfg.Kafka),
		kgo.TransactionalID(n.cfg.Kafka.ClientID+"-normalizer-"+n.cfg.InstanceID),
		// A restarted instance with the same InstanceID fences its
		// predecessor's open transaction at once; otherwise it holds
		// back read_committed readers until it times out.
		kgo.TransactionTimeout(n.cfg.TxnTimeout),
		kgo.ConsumerGroup(n.cfg.Kafka.NormalizerGroup),
		kgo.SessionTimeout(sessionTimeout(n.cfg.Kafka)),
		kgo.ConsumeTopics(sources...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come back too, so committed offsets reach the
		// end of a partition and lag reads 0 when everything is processed.
		kgo.KeepControlRecords(),
		// A new group starts at the beginning: nothing produced before the
		// first start is skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(0),
		kgo.RetryTimeout(0),
	)
	opts = append(opts, n.cfg.ExtraOpts...)
	if n.cfg.SessionOpts != nil {
		opts = append(opts, n.cfg.SessionOpts()...)
	}
	if n.cfg.InstanceID != "" {
		// A static member: a restart with the same InstanceID takes its
		// partitions back at once (Run leaves the group when it stops).
		opts = append(opts, kgo.InstanceID(n.cfg.InstanceID))
	}
	var align *aligner
	if n.cfg.AlignWindow > 0 {
		align = newAligner(n.cfg.AlignWindow)
		opts = append(opts, kgo.OnPartitionsAssigned(align.assigned), kgo.OnPartitionsRevoked(align.revoked), kgo.OnPartitionsLost(align.revoked),
			kgo.FetchMaxPartitionBytes(alignedPartitionBytes(n.cfg.Kafka, len(sources))))
	}
	n.bootstrapOffsets(ctx)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("normalizer session: %w", err)
	}
	defer sess.Close()
	// Fence the predecessor with this transactional id now rather than at
	// the first produce: its open transaction is aborted at once. Until
	// then the group's offsets it had added to that transaction are
	// pending, and the offset fetch (which must see stable offsets) would
	// wait for the transaction to time out before anything is consumed.
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, _, err = sess.Client().ProducerID(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("normalizer producer id: %w", err)
	}
	n.log.Info("normalizer started", "group", n.cfg.Kafka.NormalizerGroup)
	pausing := false
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if pausing {
			// Plan again soon even when the partitions read give nothing.
			pctx, cancel = context.WithTimeout(ctx, align.tick)
		}
		fs := sess.PollRecords(pctx, n.cfg.MaxPollRecords)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		logFetchErrors(n.log, "normalizer", fs)
		if align != nil {
			now := time.Now()
			align.observe(fs, now)
			pausing = align.apply(sess.Client(), now)
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := n.transact(ctx, sess, fs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// polled is one source record of a transaction, decoded.
type polled struct {
	r    *kgo.Record
	span trace.Span
	ctx  context.Context // the run's context (for cancellation) carrying the record's span
	ev   events.Source   // nil when there is nothing to normalize (a compaction tombstone) or err is set
	err  error           // why the record is bad: it goes to the dead-letter topic
}

// transact processes one poll in one transaction. Every record is decoded
// first, so that the document index lines the whole poll refers to are read
// in one round trip; the records are then normalized in order over that
// read, seeing the index lines recorded by the records before them; the
// lines recorded go to Redis in one round trip; and only then is anything
// produced, so the transaction is open on the broker (and its timeout
// runs) only while the poll's records are produced and committed, never
// while the normalizer waits for an item master or retries Redis.
func (n *Normalizer) transact(ctx context.Context, sess *kgo.GroupTransactSession, fs kgo.Fetches) error {
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	started := time.Now()
	batch, err := n.decodeBatch(ctx, fs, started)
	defer func() {
		for _, p := range batch {
			p.span.End()
		}
	}()
	if err != nil {
		// Stopping, or infrastructure failed for longer than RetryFor:
		// abort, commit nothing; the batch comes again after a restart.
		n.abort(ctx, sess)
		return err
	}
	st := batchState{n: n}
	err = n.retrying(ctx, started, nil, func() error {
		var err error
		st.index, err = n.store.ReadIndex(ctx, indexReads(batch))
		return err
	})
	if err != nil {
		n.abort(ctx, sess)
		return fmt.Errorf("normalize: %w", err)
	}
	out, err := n.normalizeBatch(ctx, batch, &st, started)
	var miss *indexMiss
	switch {
	case errors.As(err, &miss):
		// Redis may have lost index lines the index topic still has:
		// write them back and take the batch again, rather than
		// dead-letter a reference that is good.
		n.abort(ctx, sess)
		return n.catchUpIndex(ctx, batch, miss.err)
	case err != nil:
		n.abort(ctx, sess)
		return err
	}
	// The index lines go to Redis before the commit: a committed document
	// is in the index, and in the topic the index is caught up from.
	err = n.retrying(ctx, started, nil, func() error { return st.index.Flush(ctx) })
	if err != nil {
		n.abort(ctx, sess)
		return fmt.Errorf("normalize: %w", err)
	}
	committed, err := n.commit(ctx, sess, out.recs)
	if err != nil || !committed {
		return err
	}
	n.stats.Transactions++
	n.stats.Records += int64(len(batch))
	n.stats.Entries += out.entries
	n.stats.DeadLetters += out.dead
	return nil
}

// normalized is what one poll comes to: the records to produce in its
// transaction, in order, and how many are entries and dead letters.
type normalized struct {
	recs          []*kgo.Record
	entries, dead int64
}

// indexMiss is an unknown reference met before the document index was
// caught up from its topic for the record's partition.
type indexMiss struct{ err error }

func (m *indexMiss) Error() string { return m.err.Error() }

// normalizeBatch turns the decoded records of a poll into its ledger
// entries, dead letters and index records, produced nowhere yet. An
// infrastructure failure that outlasts RetryFor (or ctx) is returned.
func (n *Normalizer) normalizeBatch(ctx context.Context, batch []polled, st *batchState, started time.Time) (normalized, error) {
	var out normalized
	var buf []byte
	indexed := 0 // st.index.Pending()[:indexed] have their records in out
	for i := range batch {
		p := &batch[i]
		r, span, pctx := p.r, p.span, p.ctx
		var entries []*events.LedgerEntry
		err := p.err
		if err == nil && p.ev != nil {
			err = n.retrying(pctx, started, r, func() error {
				var err error
				entries, err = n.entries(pctx, st, r, p.ev)
				return err
			})
		}
		if class := deadLetterClass(err); class != "" {
			if class == ClassUnknownReference && !n.indexCaughtUpFor(r) {
				return out, &indexMiss{err}
			}
			out.dead++
			span.SetStatus(codes.Error, class)
			span.SetAttributes(attribute.String("stockflow.error_class", class))
			n.hooks.onSourceRecord(r.Topic, OutcomeDeadLetter)
			n.hooks.onDeadLetter(StageNormalizer, class)
			n.log.WarnContext(pctx, "dead letter", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "class", class, "err", err)
			dl := deadletter.New(n.cfg.Topics.DLQ, r, class, err, time.Now())
			dl.Context = pctx
			out.recs = append(out.recs, dl)
			continue
		}
		if err != nil {
			return out, fmt.Errorf("normalize %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		setEntryAttrs(span, entries...)
		n.hooks.onSourceRecord(r.Topic, OutcomeEntries)
		for _, le := range entries {
			buf, err = n.codec.AppendEncode(ctx, buf[:0], n.cfg.Topics.Ledger, le)
			if err != nil {
				return out, fmt.Errorf("encode ledger entry: %w", err)
			}
			// The process span's context rides in the record's headers (kotel).
			out.recs = append(out.recs, &kgo.Record{Topic: n.cfg.Topics.Ledger, Key: []byte(le.SKU), Value: slices.Clone(buf), Context: pctx})
			out.entries++
		}
		// The index lines the record recorded go to the index topic in
		// the same transaction.
		for _, w := range st.index.Pending()[indexed:] {
			for _, l := range w.Lines {
				k, v := ledger.IndexRecord(w.Doc, l)
				out.recs = append(out.recs, &kgo.Record{Topic: n.cfg.Topics.Index, Key: k, Value: v, Context: pctx})
			}
		}
		indexed = len(st.index.Pending())
	}
	return out, nil
}

// commit produces a normalized poll's records and ends its transaction,
// committing the poll's offsets with them. The broker's transaction, and
// its timeout, start with the first record.
func (n *Normalizer) commit(ctx context.Context, sess *kgo.GroupTransactSession, recs []*kgo.Record) (bool, error) {
	var (
		// Promises run on the client's goroutines, some after Produce
		// returns (a record failed before it was buffered, by a cancelled
		// context, say): the commit decision waits for every one of them.
		mu         sync.Mutex
		produceErr error
		pending    sync.WaitGroup
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if produceErr == nil {
				produceErr = err
			}
			mu.Unlock()
		}
		pending.Done()
	}
	opened := time.Now()
	pending.Add(len(recs))
	for _, r := range recs {
		sess.Produce(ctx, r, promise)
	}
	// End outlives a stop request: a transaction left open on a cancelled
	// End holds back every read_committed reader until it times out.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	// Every record's outcome must be known before deciding: committing
	// with a failure still on its way would commit the offsets of a
	// source record whose entries never reached the ledger.
	if err := waitGroup(ectx, &pending); err != nil {
		n.abort(ctx, sess)
		return false, fmt.Errorf("waiting for the transaction's records: %w", err)
	}
	mu.Lock()
	perr := produceErr
	mu.Unlock()
	committed, err := sess.End(ectx, kgo.TransactionEndTry(perr == nil))
	if open := time.Since(opened); open > n.cfg.TxnTimeout/2 {
		n.log.Warn("a transaction was open for more than half its timeout", "open", open, "timeout", n.cfg.TxnTimeout, "records", len(recs))
	}
	if err != nil {
		return false, fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		// A rebalance or a produce failure: the session rewound to the last
		// committed offsets and the records come again.
		n.log.Info("transaction aborted; the batch will be reprocessed", "produce_err", perr)
	}
	return committed, nil
}

// decodeBatch starts a process span for every source record of fs and
// decodes it. A record that fails to decode for good is returned with its
// error, to be dead-lettered; an infrastructure failure that outlasts
// RetryFor (or ctx) is returned as the error, with the records so far.
func (n *Normalizer) decodeBatch(ctx context.Context, fs kgo.Fetches, started time.Time) ([]polled, error) {
	batch := make([]polled, 0, fs.NumRecords())
	iter := fs.RecordIter()
	for !iter.Done() {
		r := iter.Next()
		if r.Attrs.IsControl() {
			continue // a transaction marker: nothing to normalize, its offset is committed with the rest
		}
		// A process span per record only when traces go somewhere.
		span, pctx := noSpan, ctx
		if k := n.cfg.Tracing.Kotel; k != nil {
			_, span = k.WithProcessSpan(r)
			pctx = trace.ContextWithSpan(ctx, span)
		}
		p := polled{r: r, span: span, ctx: pctx}
		p.err = n.retrying(p.ctx, started, r, func() error {
			var err error
			p.ev, err = n.decode(p.ctx, r)
			return err
		})
		batch = append(batch, p)
		if p.err != nil && deadLetterClass(p.err) == "" {
			return batch, fmt.Errorf("normalize %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, p.err)
		}
	}
	return batch, nil
}

// waitGroup waits for wg until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bootstrapOffsets commits the start of every source partition the group
// has no offset for. An aborted transaction rewinds the session to the
// group's committed offsets; a partition with none would not be rewound,
// and the records of a new group's first, aborted transaction would be
// skipped. The commit only succeeds while the group has no members, so it
// never moves an active group's offsets.
func (n *Normalizer) bootstrapOffsets(ctx context.Context) {
	if err := n.bootstrap(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("bootstrapping the group's offsets", "err", err)
	}
}

func (n *Normalizer) bootstrap(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kafka.Conn(n.cfg.Kafka)...)
	if err != nil {
		return fmt.Errorf("bootstrap client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := n.cfg.Topics
	topics := []string{t.Inventory, t.Orders, t.Supplier, t.Catalog}
	committed, err := adm.FetchOffsets(ctx, n.cfg.Kafka.NormalizerGroup)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // a group never seen (some brokers say so): no offsets yet
	}
	if err != nil {
		return fmt.Errorf("fetch normalizer offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list start offsets: %w", err)
	}
	missing := kadm.Offsets{}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			return
		}
		missing.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	if len(missing) == 0 {
		return nil
	}
	if _, err := adm.CommitOffsets(ctx, n.cfg.Kafka.NormalizerGroup, missing); err != nil {
		// The group has members already: one of them bootstrapped it.
		n.log.Debug("bootstrap offsets not committed", "err", err)
	}
	return nil
}

// abort ends the open transaction without committing, within a bounded
// time even when ctx is already done.
func (n *Normalizer) abort(ctx context.Context, sess *kgo.GroupTransactSession) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := sess.End(actx, kgo.TryAbort); err != nil {
		n.log.Warn("abort transaction", "err", err)
	}
}

// retrying runs fn until it succeeds or fails for good. A bad record
// (deadLetterClass) is not retried; an infrastructure failure is, with
// backoff, until RetryFor has passed since the batch started. r, when
// set, is the record fn works on, for the log.
func (n *Normalizer) retrying(ctx context.Context, started time.Time, r *kgo.Record, fn func() error) error {
	what := "normalizing"
	if r != nil {
		what = fmt.Sprintf("normalizing %s/%d@%d", r.Topic, r.Partition, r.Offset)
	}
	b := retry(n.log)
	b.ShouldRetry = func(err error) bool {
		return deadLetterClass(err) == "" && time.Since(started) <= n.cfg.RetryFor
	}
	return b.Do(ctx, what, func(context.Context) error { return fn() })
}

// decode returns the source event in r; none for a catalog tombstone.
func (n *Normalizer) decode(ctx context.Context, r *kgo.Record) (events.Source, error) {
	if r.Value == nil {
		if r.Topic == n.cfg.Topics.Catalog {
			return nil, nil // a compaction tombstone: nothing to apply
		}
		return nil, reject(ClassInvalid, "record has no value")
	}
	rec, err := n.codec.Decode(ctx, r.Value)
	if err != nil {
		return nil, err
	}
	ev, ok := rec.(events.Source)
	if !ok {
		return nil, reject(ClassWrongTopic, "%s is not a source event", rec.AvroName())
	}
	if et := ev.Metadata().EventTime; !et.IsZero() {
		n.hooks.onSourceLag(r.Topic, time.Since(et))
	}
	return ev, nil
}

// Stats returns the counters; call only after Run returned or from tests.
func (n *Normalizer) Stats() NormalizerStats { return n.stats }
