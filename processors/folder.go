package processors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// FolderConfig configures a Folder.
type FolderConfig struct {
	Kafka  config.Kafka
	Topics config.Topics
	// MaxPollRecords bounds one poll. Default 10000.
	MaxPollRecords int
	// CacheSKUs bounds how many SKU states each partition keeps between
	// polls. Default 50000.
	CacheSKUs int
	// InFlight bounds how many applied polls may wait for their outputs,
	// applied offsets and commit at once before polling waits. Default 4.
	InFlight int
	// ExtraOpts are appended to the consumer's options.
	ExtraOpts []kgo.Opt
	// AfterRedisApply runs after a poll is stored in Redis and before its
	// outputs are produced and its applied offsets recorded; an error
	// abandons the poll there, as a crash would (failure injection in tests).
	AfterRedisApply func(partitions map[int32]int64) error
	// Hooks observe the folder and its hold desks (metrics); default none.
	Hooks []Hook
	// Tracing, default off (no process span per record).
	Tracing Tracing
	// Grace is how long a stop lets the work in hand finish (the poll being
	// folded, then the outputs, applied offsets and commits of every poll
	// already folded) before abandoning it. Default 20s.
	Grace time.Duration
	// Supply is the supply policy the inbound schedule of AvailabilityChanged
	// counts: the API's, so that the topic and a lookup give the same dates.
	// Default (nil) every kind, atp.AllSupply.
	Supply *atp.SupplyPolicy
	// InstanceID, when set, makes the folder a static member of its group
	// (group.instance.id): a restart with the same id takes its partitions
	// back at once, without waiting out the session timeout of the member
	// that died and without a rebalance. A stop leaves the group, so its
	// partitions move to the others at once.
	InstanceID string
	// HoldTimeout is how long the API waits for a hold decision: a hold
	// desk leaves requests older than twice this undecided (their API has
	// released them), and the first desk of a partition starts with the
	// requests of the last two of these. Default 5s.
	HoldTimeout time.Duration
	// HoldOpts are appended to the hold desks' client options.
	HoldOpts []kgo.Opt
	// HoldTracing traces the hold desks: a process span per request, in
	// the trace the request's headers carry (its hooks must be among
	// HoldOpts). Default off.
	HoldTracing Tracing
	// AfterHoldJournal runs after a hold desk has journaled a batch of
	// decisions and before it answers them (failure injection in tests).
	AfterHoldJournal func()
}

func (c *FolderConfig) setDefaults() {
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 10000
	}
	if c.CacheSKUs <= 0 {
		c.CacheSKUs = 50000
	}
	if c.InFlight <= 0 {
		c.InFlight = 4
	}
	if c.Grace <= 0 {
		c.Grace = 20 * time.Second
	}
	if c.Supply == nil {
		all := atp.AllSupply
		c.Supply = &all
	}
	if c.HoldTimeout <= 0 {
		c.HoldTimeout = 5 * time.Second
	}
}

// FolderStats counts entry outcomes.
type FolderStats struct {
	Applied, Duplicates, Stale, Absorbed, DeadLetters int64
}

// Folder consumes the ledger log and folds it into Redis. Its parts:
//
//   - the poll loop and group lifecycle (this file): polls, hands each
//     partition's records to its applier, and the applied poll to the
//     pipeline;
//   - an applier per partition (applier.go): decode, dead letters, fold
//     with the ledger engine, guarded writes, its cache of SKU states;
//   - the pipeline (offsets.go, outputs.go): the emitter produces a poll's
//     availability changes, alerts and dead letters, then the offset keeper
//     records its applied offsets in Redis and commits to Kafka, in order,
//     off the poll loop.
//
// Redis's applied offsets, not Kafka's, decide where a partition resumes
// (docs/design.md §6.4). §6 explains the folder as a whole.
type Folder struct {
	cfg    FolderConfig
	codec  *avro.Codec
	store  *ledger.Store
	out    *kgo.Client // availability, alerts and dead letters
	log    *slog.Logger
	hooks  *hooks
	keeper *offsetKeeper

	cl       *kgo.Client
	work     context.Context // the work's context, which outlives a stop by the grace period
	pipe     *postApply
	mu       sync.Mutex
	appliers map[int32]*partitionWorker
	stats    FolderStats

	// owned are the appliers of the partitions this folder owns, for
	// lookups answered from their memory; partitions is the ledger's
	// partition count, once a hold desk has read it (0: unknown).
	owned      sync.Map // int32 -> *applier
	partitions atomic.Int32
}

// NewFolder returns a folder producing its outputs through out.
func NewFolder(cfg FolderConfig, codec *avro.Codec, store *ledger.Store, out *kgo.Client, log *slog.Logger) *Folder {
	cfg.setDefaults()
	return &Folder{cfg: cfg, codec: codec, store: store, out: out, log: log, hooks: newHooks(cfg.Hooks),
		keeper: newOffsetKeeper(store, cfg.Topics.Ledger, log), appliers: map[int32]*partitionWorker{}}
}

// Stats returns a copy of the counters.
func (f *Folder) Stats() FolderStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Run folds until ctx ends. On return every partition worker has stopped,
// and every poll folded into Redis has had its outputs produced, its applied
// offsets recorded and its offsets committed, unless the grace period ran
// out first (which the watermarks make safe too).
func (f *Folder) Run(ctx context.Context) error {
	opts := append(kafka.Conn(f.cfg.Kafka),
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
		kgo.OnPartitionsRevoked(f.revoked),
		kgo.OnPartitionsLost(f.revoked),
		kgo.RetryTimeout(0),
	)
	opts = append(opts, f.cfg.ExtraOpts...)
	if f.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(f.cfg.InstanceID))
	}
	// Work in hand is finished on stop; only after the grace period is it
	// abandoned.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(f.cfg.Grace, cancelWork) })
	defer stop()
	f.work = work
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("folder client: %w", err)
	}

	f.cl = cl
	em := &emitter{codec: f.codec, topics: f.cfg.Topics, out: f.out, supply: *f.cfg.Supply}
	f.pipe = newPostApply(em, f.keeper, cl, f.cfg.InFlight, f.log)
	go f.pipe.run(work)
	defer func() {
		// Outputs, applied offsets and commits of every folded poll first,
		// then leave the group.
		f.pipe.close()
		<-f.pipe.stopped
		cl.Close()
		f.stopAll()
		leaveGroup(f.cfg.Kafka, f.cfg.Kafka.FolderGroup, f.cfg.InstanceID, f.log)
	}()
	f.log.Info("folder started", "group", f.cfg.Kafka.FolderGroup)
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
		if err := f.pipe.failed(); err != nil {
			cl.AllowRebalance()
			return err
		}
		logFetchErrors(f.log, "folder", fs)
		err := f.handle(work, fs)
		cl.AllowRebalance()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// resumeFromRedis replaces the committed offsets Kafka has with the applied
// offsets Redis has: Redis is the truth. A partition Redis knows nothing of
// is folded from the start of the log.
func (f *Folder) resumeFromRedis(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	topic := f.cfg.Topics.Ledger
	var applied map[int32]int64
	err := retry(f.log).Do(ctx, "reading applied offsets", func(ctx context.Context) error {
		var err error
		applied, err = f.store.AppliedOffsets(ctx, topic)
		return err
	})
	if err != nil {
		return nil, err
	}
	existed, err := f.store.EnsureMarker(ctx, topic)
	if err != nil {
		return nil, err
	}
	if f.store.Cluster() {
		// Both only inform: without a topology the first poll is read
		// twice, and the coverage is looked at again at the next assignment.
		if _, err := f.store.Topology(ctx); err != nil {
			f.log.Warn("reading the redis cluster's masters", "err", err)
		}
		if none, err := f.store.UncoveredMasters(ctx); err != nil {
			f.log.Warn("reading the redis cluster's slots", "err", err)
		} else if len(none) > 0 {
			f.log.Error("redis cluster masters hold no copy of the folder's applied offsets: a failover that loses their writes would go unnoticed; move slots so that every master owns one of the copy slots",
				"masters", none, "copy_slots", ledger.CopySlots())
		}
	}
	history := false
	for p, o := range offsets[topic] {
		if o.EpochOffset().Offset > 0 {
			history = true
		}
		a, ok := applied[p]
		f.keeper.assigned(p, a, ok, max(o.EpochOffset().Offset, 0))
		f.dropWorker(p)
		// The worker starts now, not with the partition's first records:
		// its hold desk must be open on a partition the fold has no news of.
		w := f.workerFor(f.work, p)
		if ok {
			w.app.folded.Store(a)
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

// partitionWorker runs one partition's applier on a goroutine of its own,
// one poll at a time.
type partitionWorker struct {
	app     *applier
	in      chan []*kgo.Record
	done    chan applied
	quit    chan struct{}
	stopped chan struct{}
	// closeDesk stops the partition's hold desk and waits for it.
	closeDesk func()
}

func (f *Folder) workerFor(ctx context.Context, p int32) *partitionWorker {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w, ok := f.appliers[p]; ok {
		return w
	}
	w := &partitionWorker{
		app: &applier{partition: p, codec: f.codec, store: f.store, topics: f.cfg.Topics, supply: *f.cfg.Supply, hooks: f.hooks,
			tracing: f.cfg.Tracing, log: f.log, capacity: f.cfg.CacheSKUs, cache: map[string]*ledger.State{}},
		in: make(chan []*kgo.Record), done: make(chan applied), quit: make(chan struct{}), stopped: make(chan struct{}),
		closeDesk: func() {},
	}
	w.app.folded.Store(-1)
	f.appliers[p] = w
	f.owned.Store(p, w.app)
	if f.cfg.Topics.Holds != "" {
		dctx, cancel := context.WithCancel(ctx)
		desk := &holdDesk{p: p, cfg: f.cfg, hooks: f.hooks, codec: f.codec, store: f.store, app: w.app, out: f.out, log: f.log, partitions: &f.partitions}
		deskDone := make(chan struct{})
		go func() {
			defer close(deskDone)
			desk.run(dctx)
		}()
		w.closeDesk = func() {
			cancel()
			<-deskDone
		}
	}
	go func() {
		defer close(w.stopped)
		for {
			select {
			case <-w.quit:
				return
			case recs := <-w.in:
				w.done <- w.app.apply(ctx, recs)
			}
		}
	}()
	return w
}

// dropWorker stops a partition's worker and forgets its cached states. It
// is only called between polls, when every worker is idle.
func (f *Folder) dropWorker(p int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w, ok := f.appliers[p]; ok {
		f.owned.Delete(p)
		w.closeDesk()
		close(w.quit)
		<-w.stopped
		delete(f.appliers, p)
	}
}

// revoked finishes the work of revoked or lost partitions — their outputs,
// applied offsets and commits — and drops their workers, so the next owner
// resumes where this one stopped. Rebalances only happen between polls
// (BlockRebalanceOnPoll), so the workers are idle.
func (f *Folder) revoked(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	if f.pipe != nil {
		f.pipe.flush(ctx)
	}
	for _, p := range lost[f.cfg.Topics.Ledger] {
		f.keeper.revoked(p)
		f.dropWorker(p)
	}
}

func (f *Folder) stopAll() {
	f.mu.Lock()
	var ps []int32
	for p := range f.appliers {
		ps = append(ps, p)
	}
	f.mu.Unlock()
	for _, p := range ps {
		f.dropWorker(p)
	}
}

// handle folds one poll: every partition's applier in parallel; then the
// poll goes to the pipeline for its outputs, applied offsets and commit.
func (f *Folder) handle(ctx context.Context, fs kgo.Fetches) error {
	parts := map[int32][]*kgo.Record{}
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			parts[p.Partition] = p.Records
		}
	})
	// Redis going back in time is looked for before every poll, and every
	// few seconds when idle.
	var seek map[int32]kgo.EpochOffset
	err := retry(f.log).Do(ctx, "checking redis applied offsets", func(ctx context.Context) error {
		var err error
		seek, err = f.keeper.rewinds(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if len(seek) > 0 {
		f.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{f.cfg.Topics.Ledger: seek})
		for p := range seek {
			delete(parts, p)
			f.dropWorker(p)
		}
	}
	if len(parts) == 0 {
		// Idle: commit what a failed commit left behind.
		return f.pipe.push(ctx, afterApply{})
	}
	// The masters as they are before this poll writes (see record).
	topo := f.store.LastTopology()
	type running struct {
		p int32
		w *partitionWorker
	}
	var rs []running
	for p, recs := range parts {
		w := f.workerFor(ctx, p)
		w.in <- recs
		rs = append(rs, running{p, w})
	}
	a := afterApply{applied: map[int32]int64{}, topo: topo}
	var firstErr error
	// The outputs wait in the pipeline (up to InFlight polls of them):
	// their slices are sized once, not grown by doubling.
	results := make([]applied, len(rs))
	var nc, na, nd int
	for i, r := range rs {
		results[i] = <-r.w.done
		nc, na, nd = nc+len(results[i].changes), na+len(results[i].alerts), nd+len(results[i].dead)
	}
	a.outputs.changes = make([]change, 0, nc)
	a.outputs.alerts = make([]stockAlert, 0, na)
	a.outputs.dead = make([]*kgo.Record, 0, nd)
	for i, r := range rs {
		res := results[i]
		if res.err != nil {
			firstErr = res.err
			continue
		}
		f.mu.Lock()
		f.stats.Applied += res.stats.Applied
		f.stats.Duplicates += res.stats.Duplicates
		f.stats.Stale += res.stats.Stale
		f.stats.Absorbed += res.stats.Absorbed
		f.stats.DeadLetters += res.stats.DeadLetters
		f.mu.Unlock()
		a.outputs.changes = append(a.outputs.changes, res.changes...)
		a.outputs.alerts = append(a.outputs.alerts, res.alerts...)
		a.outputs.dead = append(a.outputs.dead, res.dead...)
		if res.refused {
			// Not recorded: the partition is re-read from what Redis has.
			f.keeper.markSuspect(r.p)
			continue
		}
		a.applied[r.p] = res.last
	}
	if firstErr != nil {
		return firstErr
	}
	if f.cfg.AfterRedisApply != nil {
		if err := f.cfg.AfterRedisApply(a.applied); err != nil {
			return err
		}
	}
	a.epochs = f.keeper.epochs(a.applied)
	return f.pipe.push(ctx, a)
}

// Lookup answers a lookup of sku at loc from the memory of the partition
// that owns sku, when this folder owns it and has the SKU cached: that
// state is as fresh as the ledger gets (folded, stored or about to be, and
// the holds its desk decided since), and reading it costs no round trip to
// Redis. ok is false otherwise, and the caller reads Redis.
func (f *Folder) Lookup(sku, loc string, nowMs int64) (ledger.LookupResult, bool) {
	n := f.partitions.Load()
	if n <= 0 {
		return ledger.LookupResult{}, false
	}
	v, ok := f.owned.Load(ledgerPartition(sku, int(n)))
	if !ok {
		return ledger.LookupResult{}, false
	}
	a := v.(*applier)
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.cache[sku]
	if s == nil {
		return ledger.LookupResult{}, false
	}
	// Holds the desk decided count as soon as they are decided.
	return s.Local(loc, nowMs, a.pendingFor(sku))
}
