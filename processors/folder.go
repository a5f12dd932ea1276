package processors

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// FolderConfig configures a Folder.
type FolderConfig struct {
	Kafka  config.Kafka
	Topics config.Topics
	// MaxPollRecords bounds one poll. Default 10000.
	MaxPollRecords int
	// PipelineSKUs is how many SKU script calls go in one Redis pipeline. Default 256.
	PipelineSKUs int
	// ExtraOpts are appended to the consumer's options.
	ExtraOpts []kgo.Opt
	// AfterRedisApply runs after a poll is applied to Redis and before its
	// applied offsets are recorded; an error abandons the poll there, as a
	// crash would (failure injection in tests).
	AfterRedisApply func(partitions map[int32]int64) error
	// Metrics, default unregistered.
	Metrics *Metrics
	// Tracing, default off.
	Tracing Tracing
	// Grace is how long a stop lets the poll in hand finish (apply, record,
	// commit) before abandoning it. Default 20s.
	Grace time.Duration
	// InstanceID, when set, makes the folder a static member of its group
	// (group.instance.id): a restart with the same id takes its partitions
	// back at once, without waiting out the session timeout of the member
	// that died and without a rebalance. A stop leaves the group, so its
	// partitions move to the others at once.
	InstanceID string
}

func (c *FolderConfig) setDefaults() {
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 10000
	}
	if c.PipelineSKUs <= 0 {
		c.PipelineSKUs = 256
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Grace <= 0 {
		c.Grace = 20 * time.Second
	}
	if c.Tracing.Kotel == nil {
		c.Tracing.Kotel = kotel.NewTracer(kotel.TracerProvider(noop.NewTracerProvider()))
	}
}

// FolderStats counts entry outcomes.
type FolderStats struct {
	Applied, Duplicates, Stale, Absorbed, DeadLetters int64
}

// Folder consumes the ledger log and applies it to Redis: one worker per
// assigned partition; Redis's applied offsets, not Kafka's, decide where a
// partition resumes.
type Folder struct {
	cfg   FolderConfig
	codec *avro.Codec
	store *ledger.Store
	out   *kgo.Client // availability, alerts and dead letters
	log   *slog.Logger

	cl       *kgo.Client
	mu       sync.Mutex
	workers  map[int32]*worker
	stats    FolderStats
	recorded map[int32]int64 // applied offsets this folder last saw in or wrote to Redis
	// committed is, for each partition this folder owns, the next offset
	// Kafka has as committed for the group.
	committed map[int32]int64
}

// NewFolder returns a folder producing its outputs through out.
func NewFolder(cfg FolderConfig, codec *avro.Codec, store *ledger.Store, out *kgo.Client, log *slog.Logger) *Folder {
	cfg.setDefaults()
	return &Folder{cfg: cfg, codec: codec, store: store, out: out, log: log, workers: map[int32]*worker{}, recorded: map[int32]int64{}, committed: map[int32]int64{}}
}

// Stats returns a copy of the counters.
func (f *Folder) Stats() FolderStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Run folds until ctx ends. On return every worker has stopped and nothing
// is half-applied: a poll is applied, recorded and committed before the
// next rebalance or the stop is allowed.
func (f *Folder) Run(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(f.cfg.Kafka.Brokers...),
		kgo.ClientID(f.cfg.Kafka.ClientID),
		kgo.ConsumerGroup(f.cfg.Kafka.FolderGroup),
		kgo.SessionTimeout(sessionTimeout(f.cfg.Kafka)),
		kgo.ConsumeTopics(f.cfg.Topics.Ledger),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Transaction markers come back too: the applied and committed
		// offsets then reach the end of the partition, and lag reads 0.
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(f.resumeFromRedis),
		kgo.OnPartitionsRevoked(f.dropWorkers),
		kgo.OnPartitionsLost(f.dropWorkers),
		kgo.RetryTimeout(0),
	}, f.cfg.ExtraOpts...)
	if f.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(f.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("folder client: %w", err)
	}
	f.cl = cl
	defer func() {
		// Leave the group only after the last poll is fully handled.
		cl.Close()
		f.stopAll()
		leaveGroup(f.cfg.Kafka, f.cfg.Kafka.FolderGroup, f.cfg.InstanceID, f.log)
	}()
	f.log.Info("folder started", "group", f.cfg.Kafka.FolderGroup)
	// A poll in hand is finished on stop (applied, recorded, committed) so
	// Redis never stays ahead of its applied offsets; only after the grace
	// period is it abandoned, which the watermarks make safe too.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(f.cfg.Grace, cancelWork) })
	defer stop()
	for {
		// Bounded polls: an idle folder still looks for a Redis that went
		// back in time every few seconds.
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollRecords(pctx, f.cfg.MaxPollRecords)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			cl.AllowRebalance()
			return nil
		}
		if fs.Empty() || fs.NumRecords() == 0 {
			if _, err := f.checkRollback(work, nil); err != nil && ctx.Err() == nil {
				f.log.Warn("checking redis applied offsets", "err", err)
			}
			f.commitBehind(work)
			cl.AllowRebalance()
			continue
		}
		fs.EachError(func(topic string, p int32, err error) {
			f.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		if err := f.handle(work, fs); err != nil {
			cl.AllowRebalance()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		cl.AllowRebalance()
	}
}

// resumeFromRedis replaces the committed offsets Kafka has with the applied
// offsets Redis has: Redis is the truth. A partition Redis knows nothing of
// is folded from the start of the log.
func (f *Folder) resumeFromRedis(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	topic := f.cfg.Topics.Ledger
	applied, err := f.appliedRetrying(ctx)
	if err != nil {
		return nil, err
	}
	existed, err := f.store.EnsureMarker(ctx, topic)
	if err != nil {
		return nil, err
	}
	history := false
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, o := range offsets[topic] {
		delete(f.recorded, p)
		if a, ok := applied[p]; ok {
			f.recorded[p] = a
		}
		if o.EpochOffset().Offset > 0 {
			history = true
		}
		f.committed[p] = max(o.EpochOffset().Offset, 0)
		if a, ok := applied[p]; ok {
			offsets[topic][p] = kgo.NewOffset().At(a + 1).WithEpoch(-1)
		} else {
			offsets[topic][p] = kgo.NewOffset().AtStart()
		}
	}
	if !existed && history {
		f.log.Error("redis lost the ledger (marker missing while the group has history): rebuilding from the earliest offset")
	}
	f.log.Info("partitions assigned", "resume_from_redis", applied, "partitions", len(offsets[topic]))
	return offsets, nil
}

func (f *Folder) appliedRetrying(ctx context.Context) (map[int32]int64, error) {
	backoff := 100 * time.Millisecond
	for {
		applied, err := f.store.AppliedOffsets(ctx, f.cfg.Topics.Ledger)
		if err == nil {
			return applied, nil
		}
		f.log.Warn("reading applied offsets", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// worker applies one partition's records, in order.
type worker struct {
	partition int32
	in        chan []*kgo.Record
	done      chan partResult
	quit      chan struct{}
	stopped   chan struct{}
}

type partResult struct {
	last    int64 // highest offset handled
	changes map[string]*change
	alerts  []alert
	dead    []*kgo.Record
	stats   FolderStats
	spans   []trace.Span // process spans, ended once the outputs are out
	err     error
}

// change is one SKU+location's availability within a poll, conflated.
type change struct {
	sku, loc      string
	before, after ledger.Components
	version       int64
	corr          *string
	ctx           context.Context // the span of the last entry behind it
}

type alert struct {
	*events.StockAlert
	ctx context.Context
}

func (f *Folder) workerFor(ctx context.Context, p int32) *worker {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w, ok := f.workers[p]; ok {
		return w
	}
	w := &worker{partition: p, in: make(chan []*kgo.Record), done: make(chan partResult), quit: make(chan struct{}), stopped: make(chan struct{})}
	f.workers[p] = w
	go func() {
		defer close(w.stopped)
		for {
			select {
			case <-w.quit:
				return
			case recs := <-w.in:
				w.done <- f.apply(ctx, recs)
			}
		}
	}()
	return w
}

// dropWorkers stops the workers of revoked or lost partitions. Rebalances
// only happen between polls (BlockRebalanceOnPoll), so they are idle.
func (f *Folder) dropWorkers(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range lost[f.cfg.Topics.Ledger] {
		delete(f.committed, p)
		if w, ok := f.workers[p]; ok {
			close(w.quit)
			<-w.stopped
			delete(f.workers, p)
		}
	}
}

func (f *Folder) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, w := range f.workers {
		close(w.quit)
		<-w.stopped
		delete(f.workers, p)
	}
}

// handle applies one poll: every partition's worker in parallel, then the
// outputs, the applied offsets in Redis and the commit to Kafka.
func (f *Folder) handle(ctx context.Context, fs kgo.Fetches) error {
	var parts []*kgo.FetchTopicPartition
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			parts = append(parts, &p)
		}
	})
	if len(parts) == 0 {
		return nil
	}
	parts, err := f.checkRollback(ctx, parts)
	if err != nil || len(parts) == 0 {
		return err
	}
	ws := make([]*worker, len(parts))
	for i, p := range parts {
		ws[i] = f.workerFor(ctx, p.Partition)
		ws[i].in <- p.Records
	}
	results := make([]partResult, len(parts))
	for i, w := range ws {
		results[i] = <-w.done
	}
	defer func() {
		for _, r := range results {
			for _, sp := range r.spans {
				sp.End()
			}
		}
	}()
	applied := map[int32]int64{}
	var recs []*kgo.Record
	for i, r := range results {
		if r.err != nil {
			return r.err
		}
		applied[parts[i].Partition] = r.last
		for _, c := range r.changes {
			if rec, err := f.availabilityRecord(ctx, c); err != nil {
				return err
			} else if rec != nil {
				recs = append(recs, rec)
			}
		}
		for _, a := range r.alerts {
			b, err := f.codec.Encode(ctx, f.cfg.Topics.Alerts, a.StockAlert)
			if err != nil {
				return fmt.Errorf("encode alert: %w", err)
			}
			recs = append(recs, &kgo.Record{Topic: f.cfg.Topics.Alerts, Key: []byte(a.SKU + "|" + a.Location), Value: b, Context: a.ctx})
		}
		recs = append(recs, r.dead...)
		f.mu.Lock()
		f.stats.Applied += r.stats.Applied
		f.stats.Duplicates += r.stats.Duplicates
		f.stats.Stale += r.stats.Stale
		f.stats.Absorbed += r.stats.Absorbed
		f.stats.DeadLetters += r.stats.DeadLetters
		f.mu.Unlock()
	}
	if f.cfg.AfterRedisApply != nil {
		if err := f.cfg.AfterRedisApply(applied); err != nil {
			return err
		}
	}
	if len(recs) > 0 {
		if err := f.out.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce outputs: %w", err)
		}
	}
	if err := f.recordApplied(ctx, applied); err != nil {
		return err
	}
	var last []*kgo.Record
	for _, p := range parts {
		last = append(last, p.Records[len(p.Records)-1])
	}
	if err := f.cl.CommitRecords(ctx, last...); err != nil {
		// Kafka's committed offsets only serve lag tooling and readiness:
		// Redis decides where to resume, so a failed commit loses nothing,
		// and an idle poll makes it good (commitBehind).
		f.log.Warn("commit to kafka", "err", err)
		return nil
	}
	f.mu.Lock()
	for _, r := range last {
		if _, owned := f.committed[r.Partition]; owned {
			f.committed[r.Partition] = max(f.committed[r.Partition], r.Offset+1)
		}
	}
	f.mu.Unlock()
	return nil
}

// commitBehind commits, for the partitions this folder owns, the offsets
// Redis has applied beyond what Kafka has as committed. A commit lost to a
// rebalance or a broker restart is otherwise only made good by the next
// poll with records, and an idle partition would show lag for ever. Called
// between polls, so the assignment cannot change meanwhile.
func (f *Folder) commitBehind(ctx context.Context) {
	behind := map[int32]kgo.EpochOffset{}
	f.mu.Lock()
	for p, c := range f.committed {
		if a, ok := f.recorded[p]; ok && a+1 > c {
			behind[p] = kgo.EpochOffset{Epoch: -1, Offset: a + 1}
		}
	}
	f.mu.Unlock()
	if len(behind) == 0 {
		return
	}
	var err error
	f.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{f.cfg.Topics.Ledger: behind},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
			err = cerr
			if resp == nil {
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err == nil {
						err = kerr.ErrorForCode(p.ErrorCode)
					}
				}
			}
		})
	if err != nil {
		f.log.Warn("commit to kafka", "err", err)
		return
	}
	f.mu.Lock()
	for p, o := range behind {
		if _, owned := f.committed[p]; owned {
			f.committed[p] = max(f.committed[p], o.Offset)
		}
	}
	f.mu.Unlock()
	f.log.Info("committed offsets a failed commit had left behind", "partitions", len(behind))
}

// checkRollback compares Redis's applied offsets with what this folder last
// recorded, for every partition it holds. Lower means Redis went back in
// time (restored from an older snapshot, a failover that lost writes): such
// a partition is re-read from what Redis still has, and this poll's records
// of it are dropped, so no entry is skipped by a watermark that moved past
// a lost one.
func (f *Folder) checkRollback(ctx context.Context, parts []*kgo.FetchTopicPartition) ([]*kgo.FetchTopicPartition, error) {
	stored, err := f.appliedRetrying(ctx)
	if err != nil {
		return nil, err
	}
	seek := map[int32]kgo.EpochOffset{}
	f.mu.Lock()
	for p, rec := range f.recorded {
		got, has := stored[p]
		if has && got >= rec {
			continue
		}
		next := int64(0)
		if has {
			next = got + 1
			f.recorded[p] = got
		} else {
			delete(f.recorded, p)
		}
		seek[p] = kgo.EpochOffset{Epoch: -1, Offset: next}
		f.log.Error("redis went back in time: re-reading the partition from what redis still holds",
			"partition", p, "recorded", rec, "redis_has", got, "resume_at", next)
	}
	f.mu.Unlock()
	if len(seek) == 0 {
		return parts, nil
	}
	f.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{f.cfg.Topics.Ledger: seek})
	keep := parts[:0]
	for _, p := range parts {
		if _, ok := seek[p.Partition]; !ok {
			keep = append(keep, p)
		}
	}
	return keep, nil
}

func (f *Folder) recordApplied(ctx context.Context, applied map[int32]int64) error {
	backoff := 100 * time.Millisecond
	for {
		err := f.store.RecordApplied(ctx, f.cfg.Topics.Ledger, applied)
		if err == nil {
			f.mu.Lock()
			for p, o := range applied {
				f.recorded[p] = max(f.recorded[p], o)
			}
			f.mu.Unlock()
			return nil
		}
		f.log.Warn("recording applied offsets", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// apply decodes a partition's records and applies them, SKU by SKU,
// pipelining up to PipelineSKUs script calls per round trip. Redis failures
// are retried until they succeed or ctx ends: watermarks make a retried call
// harmless.
func (f *Folder) apply(ctx context.Context, recs []*kgo.Record) partResult {
	res := partResult{changes: map[string]*change{}, last: recs[len(recs)-1].Offset}
	m := f.cfg.Metrics
	var order []string
	bySKU := map[string]*ledger.Batch{}
	corr := map[string]*string{}
	spanOf := map[string]context.Context{} // SKU -> its last entry's span
	var entries []*events.LedgerEntry
	for _, r := range recs {
		if r.Attrs.IsControl() {
			continue // a transaction marker: only its offset counts
		}
		_, span := f.cfg.Tracing.Kotel.WithProcessSpan(r)
		res.spans = append(res.spans, span)
		rec, err := f.codec.Decode(ctx, r.Value)
		if err != nil {
			if class := deadLetterClass(err); class != "" {
				span.SetStatus(codes.Error, class)
				m.deadLetters.WithLabelValues(class, "folder").Inc()
				res.dead = append(res.dead, deadLetter(f.cfg.Topics.DLQ, r, class, err, time.Now()))
				res.stats.DeadLetters++
				continue
			}
			res.err = fmt.Errorf("decode ledger entry %d@%d: %w", r.Partition, r.Offset, err)
			return res
		}
		le, ok := rec.(*events.LedgerEntry)
		if !ok || !ValidID(le.SKU) {
			err := reject(ClassInvalid, "ledger record is not a valid LedgerEntry")
			span.SetStatus(codes.Error, ClassInvalid)
			m.deadLetters.WithLabelValues(ClassInvalid, "folder").Inc()
			res.dead = append(res.dead, deadLetter(f.cfg.Topics.DLQ, r, ClassInvalid, err, time.Now()))
			res.stats.DeadLetters++
			continue
		}
		setEntryAttrs(span, le)
		spanOf[le.SKU] = trace.ContextWithSpan(ctx, span)
		entries = append(entries, le)
		b, ok := bySKU[le.SKU]
		if !ok {
			b = &ledger.Batch{SKU: le.SKU}
			bySKU[le.SKU] = b
			order = append(order, le.SKU)
		}
		b.Entries = append(b.Entries, ledger.Entry{LedgerEntry: le, Partition: r.Partition, Offset: r.Offset})
		if le.CorrelationID != nil {
			corr[le.SKU] = le.CorrelationID
		}
	}
	m.batchEntries.Observe(float64(len(entries)))
	now := time.Now()
	for start := 0; start < len(order); start += f.cfg.PipelineSKUs {
		end := min(start+f.cfg.PipelineSKUs, len(order))
		batches := make([]ledger.Batch, 0, end-start)
		for _, sku := range order[start:end] {
			batches = append(batches, *bySKU[sku])
		}
		// The Redis span joins the trace of the first SKU's last entry.
		t0 := time.Now()
		results, err := f.applyRetrying(spanOf[order[start]], batches)
		m.applySeconds.Observe(time.Since(t0).Seconds())
		if err != nil {
			res.err = err
			return res
		}
		for bi, r := range results {
			for ei, st := range r.Statuses {
				e := batches[bi].Entries[ei].LedgerEntry
				src := "api"
				if e.SourceTopic != nil {
					src = *e.SourceTopic
				}
				switch {
				case st == "dup":
					res.stats.Duplicates++
					m.entries.WithLabelValues("duplicate", src).Inc()
				case st == "stale":
					res.stats.Stale++
					m.entries.WithLabelValues("stale", src).Inc()
				case st == "absorbed":
					res.stats.Absorbed++
					res.stats.Applied++
					m.entries.WithLabelValues("absorbed", src).Inc()
				default:
					res.stats.Applied++
					m.entries.WithLabelValues("applied", src).Inc()
					f.observeKPIs(e, st, now)
				}
			}
			for _, p := range r.Positions {
				key := r.SKU + "|" + p.Location
				c, ok := res.changes[key]
				if !ok {
					c = &change{sku: r.SKU, loc: p.Location, before: p.Before}
					res.changes[key] = c
				}
				c.after, c.version, c.corr, c.ctx = p.After, p.Version, corr[r.SKU], spanOf[r.SKU]
				for _, a := range alertsFor(r.SKU, p) {
					res.alerts = append(res.alerts, alert{a, spanOf[r.SKU]})
				}
			}
		}
	}
	return res
}

func (f *Folder) applyRetrying(ctx context.Context, batches []ledger.Batch) ([]ledger.Result, error) {
	backoff := 100 * time.Millisecond
	for {
		res, err := f.store.Apply(ctx, batches)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		f.log.Warn("redis apply failed; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// observeKPIs records the business measures an applied entry gives.
func (f *Folder) observeKPIs(e *events.LedgerEntry, status string, now time.Time) {
	m := f.cfg.Metrics
	since := now.Sub(e.EventTime).Seconds()
	loc := ""
	if e.Location != nil {
		loc = *e.Location
	}
	switch e.EntryType {
	case events.EntryOrderLine:
		ch := ""
		if e.Channel != nil {
			ch = *e.Channel
		}
		m.reservation.WithLabelValues(m.channels.value(ch)).Observe(since)
	case events.EntryReceipt, events.EntryPick, events.EntryShipment, events.EntryAdjustment, events.EntryCount:
		m.inventoryLag.WithLabelValues(m.locations.value(loc)).Observe(since)
	case events.EntryASNLine:
		sup := ""
		if e.SupplierID != nil {
			sup = *e.SupplierID
		}
		m.asnProcessing.WithLabelValues(m.suppliers.value(sup)).Observe(since)
	}
	if d, ok := strings.CutPrefix(status, "counted:"); ok {
		if delta, err := strconv.ParseInt(d, 10, 64); err == nil && delta != 0 {
			m.reconciliation.WithLabelValues(m.locations.value(loc)).Inc()
			m.countDelta.Observe(float64(max(delta, -delta)))
		}
	}
}

func position(c ledger.Components) atp.Position {
	return atp.Position{OnHand: c.OnHand, Reserved: c.Reserved, Picked: c.Picked, Held: c.Held, SafetyStock: c.SafetyStock}
}

// availabilityRecord builds the AvailabilityChanged of a conflated change,
// or nil when the poll left the position as it was.
func (f *Folder) availabilityRecord(ctx context.Context, c *change) (*kgo.Record, error) {
	if c.before == c.after {
		return nil, nil
	}
	a, short := position(c.after).Today()
	ev := &events.AvailabilityChanged{
		SKU: c.sku, Location: c.loc, Version: c.version,
		OnHand: c.after.OnHand, Reserved: c.after.Reserved, Picked: c.after.Picked, Held: c.after.Held,
		SafetyStock: c.after.SafetyStock, ReorderPoint: c.after.ReorderPoint,
		ATP: a, Shortfall: short, AsOf: time.Now().UTC().Truncate(time.Millisecond), CorrelationID: c.corr,
	}
	if c.after.Inbound > 0 {
		ev.Inbound = []events.InboundBucket{{Date: ev.AsOf.Truncate(24 * time.Hour), Quantity: c.after.Inbound}}
	}
	b, err := f.codec.Encode(ctx, f.cfg.Topics.Availability, ev)
	if err != nil {
		return nil, fmt.Errorf("encode availability: %w", err)
	}
	return &kgo.Record{Topic: f.cfg.Topics.Availability, Key: []byte(c.sku + "|" + c.loc), Value: b, Context: c.ctx}, nil
}

// alertsFor returns the alerts a change crosses into.
func alertsFor(sku string, p ledger.Changed) []*events.StockAlert {
	before, after := position(p.Before).Raw(), position(p.After).Raw()
	now := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(typ string, suggested int64) *events.StockAlert {
		return &events.StockAlert{
			AlertID: sku + "|" + p.Location + "|" + typ + "|" + strconv.FormatInt(p.Version, 10), AlertType: typ,
			SKU: sku, Location: p.Location, ATP: max(after, 0), OnHand: p.After.OnHand,
			ReorderPoint: p.After.ReorderPoint, SuggestedQuantity: suggested, AsOf: now,
		}
	}
	var out []*events.StockAlert
	rop := p.After.ReorderPoint
	if rop > 0 && after < rop && before >= rop {
		// Order up to twice the reorder point, counting what is already inbound.
		out = append(out, mk(events.AlertReplenishmentNeeded, max(2*rop-after-p.After.Inbound, 0)))
	}
	if before > 0 && after <= 0 {
		out = append(out, mk(events.AlertStockOut, 0))
	}
	if before <= 0 && after > 0 {
		out = append(out, mk(events.AlertBackInStock, 0))
	}
	if p.Before.OnHand >= 0 && p.After.OnHand < 0 {
		out = append(out, mk(events.AlertNegativeOnHand, 0))
	}
	return out
}
