package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/reconcile"
)

// ClassOrphanSnapshotRecord is the dead-letter class of a snapshot line or
// end whose snapshot never started.
const ClassOrphanSnapshotRecord = deadletter.ClassOrphanSnapshotRecord

// SnapshotsConfig configures the snapshot reconciler.
type SnapshotsConfig struct {
	Kafka      config.Kafka
	Topics     config.Topics
	InstanceID string
	// EndTimeout: a snapshot with no record for this long while its
	// partition is read to the end is incomplete.
	EndTimeout time.Duration
	ExtraOpts  []kgo.Opt
	// Hooks observe the reconciler (metrics); default none.
	Hooks []Hook
}

// Snapshots reconciles each snapshot on the snapshot topic as it arrives:
// a consumer group, one snapshot's records in order on one partition (they
// share the snapshot id as key).
//
// A partition's committed offset never passes the start of a snapshot still
// open on it, so an instance that stops (or loses the partition) mid-way
// leaves the snapshot to be read again from its start by the next owner,
// which starts its run again from nothing. A snapshot already finished is
// not reconciled again: the same snapshot id is one run.
type Snapshots struct {
	cfg   SnapshotsConfig
	codec *avro.Codec
	rec   *reconcile.Reconciler
	out   *kgo.Client // dead letters
	log   *slog.Logger
	hooks *hooks
}

// NewSnapshots returns the snapshot reconciler; out produces dead letters.
func NewSnapshots(cfg SnapshotsConfig, codec *avro.Codec, rec *reconcile.Reconciler, out *kgo.Client, log *slog.Logger) *Snapshots {
	if cfg.EndTimeout <= 0 {
		cfg.EndTimeout = 10 * time.Minute
	}
	return &Snapshots{cfg: cfg, codec: codec, rec: rec, out: out, log: log, hooks: newHooks(cfg.Hooks)}
}

// Run reconciles snapshots until ctx ends, starting over (from the
// committed offsets) after an error such as Redis being unreachable.
func (s *Snapshots) Run(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for {
		err := s.session(ctx)
		if ctx.Err() != nil {
			leaveGroup(s.cfg.Kafka, s.cfg.Kafka.ReconcilerGroup, s.cfg.InstanceID, s.log)
			return nil
		}
		s.log.Warn("snapshot reconciler restarts from the committed offsets", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// open is a snapshot being received.
type open struct {
	sess      *reconcile.Session
	partition int32
	start     int64 // offset of its start record
	last      time.Time
}

// snapState is one consumer session's snapshots in flight.
type snapState struct {
	mu       sync.Mutex
	open     map[string]*open
	done     map[string]bool           // finished or repeated snapshot ids, to skip their records
	next     map[int32]kgo.EpochOffset // per partition: the offset after the last record handled
	caughtUp map[int32]bool
}

func (st *snapState) drop(parts []int32) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, p := range parts {
		for id, o := range st.open {
			if o.partition == p {
				delete(st.open, id)
			}
		}
		delete(st.next, p)
		delete(st.caughtUp, p)
	}
}

func (s *Snapshots) session(ctx context.Context) error {
	topic := s.cfg.Topics.Snapshots
	st := &snapState{open: map[string]*open{}, done: map[string]bool{}, next: map[int32]kgo.EpochOffset{}, caughtUp: map[int32]bool{}}
	revoked := func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
		st.drop(m[topic])
		if err := cl.CommitMarkedOffsets(ctx); err != nil {
			s.log.Warn("commit snapshot offsets on revoke", "err", err)
		}
	}
	opts := append(kafka.Conn(s.cfg.Kafka),
		kgo.ConsumerGroup(s.cfg.Kafka.ReconcilerGroup),
		kgo.SessionTimeout(sessionTimeout(s.cfg.Kafka)),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(revoked),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { st.drop(m[topic]) }),
	)
	opts = append(opts, s.cfg.ExtraOpts...)
	if s.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(s.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("snapshot reconciler client: %w", err)
	}
	defer func() {
		// A poll blocks rebalances until allowed; closing needs one.
		cl.AllowRebalance()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := cl.CommitMarkedOffsets(cctx); err != nil {
			s.log.Warn("commit snapshot offsets", "err", err)
		}
		cancel()
		cl.Close()
	}()
	s.log.Info("snapshot reconciler started", "group", s.cfg.Kafka.ReconcilerGroup, "topic", topic)
	for {
		// Polls return at least every second, so silent snapshots time out.
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollRecords(pctx, 1000)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		logFetchErrors(s.log, "reconciler", fs)
		err := s.handleFetches(ctx, st, fs)
		if err == nil {
			err = s.expire(ctx, st)
		}
		s.mark(cl, st)
		cl.AllowRebalance()
		if err != nil {
			return err
		}
	}
}

func (s *Snapshots) handleFetches(ctx context.Context, st *snapState, fs kgo.Fetches) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var err error
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if err != nil || len(p.Records) == 0 {
			return
		}
		for _, r := range p.Records {
			if err = s.handle(ctx, st, r); err != nil {
				return
			}
			st.next[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
		last := p.Records[len(p.Records)-1]
		st.caughtUp[p.Partition] = last.Offset+1 >= p.LastStableOffset
	})
	return err
}

// handle reconciles one record. An error is infrastructure (Redis, the
// producer): the session starts over from the committed offsets.
func (s *Snapshots) handle(ctx context.Context, st *snapState, r *kgo.Record) error {
	v, err := s.codec.Decode(ctx, r.Value)
	if err != nil {
		class := avro.ClassOf(err)
		if class == "" {
			return err
		}
		return s.deadLetter(ctx, r, string(class), err)
	}
	now := time.Now()
	switch e := v.(type) {
	case *events.SnapshotStarted:
		if !ValidID(e.SnapshotID) {
			return s.deadLetter(ctx, r, ClassInvalid, fmt.Errorf("snapshot_id %q is not an id (1 to 64 of A-Z a-z 0-9 . _ -)", e.SnapshotID))
		}
		if !ValidID(e.Source) {
			return s.deadLetter(ctx, r, ClassInvalid, fmt.Errorf("source %q is not an id (1 to 64 of A-Z a-z 0-9 . _ -)", e.Source))
		}
		// A start seen again while open: the sender started over.
		delete(st.open, e.SnapshotID)
		delete(st.done, e.SnapshotID)
		sess, run, err := s.rec.Start(ctx, e)
		if err != nil {
			return err
		}
		if sess == nil {
			if run.Status == reconcile.StatusRefused {
				s.log.Warn("snapshot refused", "snapshot", run.ID, "source", run.Source, "reason", run.Reason)
			} else {
				s.log.Info("snapshot reconciled before; its records are skipped", "snapshot", run.ID, "status", run.Status)
			}
			s.finished(st, e.SnapshotID)
			return nil
		}
		st.open[e.SnapshotID] = &open{sess: sess, partition: r.Partition, start: r.Offset, last: now}
		s.log.Info("snapshot started", "snapshot", e.SnapshotID, "source", e.Source, "as_of", e.AsOf, "expected_lines", e.ExpectedLines)
		return nil
	case *events.SnapshotLine:
		o, err := s.openFor(ctx, st, r, e.SnapshotID)
		if o == nil || err != nil {
			return err
		}
		o.last = now
		return o.sess.Line(ctx, e)
	case *events.SnapshotEnded:
		o, err := s.openFor(ctx, st, r, e.SnapshotID)
		if o == nil || err != nil {
			return err
		}
		if _, err := o.sess.End(ctx, e); err != nil {
			return err
		}
		delete(st.open, e.SnapshotID)
		s.finished(st, e.SnapshotID)
		return nil
	default:
		return s.deadLetter(ctx, r, ClassWrongTopic, fmt.Errorf("%s does not belong on %s", v.AvroName(), r.Topic))
	}
}

func (s *Snapshots) finished(st *snapState, id string) {
	if len(st.done) > 10000 {
		clear(st.done) // Redis still knows; this only saves a read
	}
	st.done[id] = true
}

// openFor returns the open snapshot a line or end belongs to; nil when its
// records are to be skipped (a finished snapshot) or were dead-lettered (a
// snapshot never started).
func (s *Snapshots) openFor(ctx context.Context, st *snapState, r *kgo.Record, id string) (*open, error) {
	if o := st.open[id]; o != nil {
		return o, nil
	}
	if st.done[id] {
		return nil, nil
	}
	_, err := s.rec.Runs().Get(ctx, id)
	switch {
	case err == nil:
		s.finished(st, id)
		return nil, nil
	case !errors.Is(err, reconcile.ErrNotFound):
		return nil, err
	}
	return nil, s.deadLetter(ctx, r, ClassOrphanSnapshotRecord, fmt.Errorf("snapshot %s has no start record before this one", id))
}

// expire ends, as incomplete, the snapshots silent for the end timeout on
// partitions read to their end.
func (s *Snapshots) expire(ctx context.Context, st *snapState) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	for id, o := range st.open {
		if now.Sub(o.last) < s.cfg.EndTimeout || !st.caughtUp[o.partition] {
			continue
		}
		reason := fmt.Sprintf("no end record within %s of the last record (%d lines arrived)", s.cfg.EndTimeout, o.sess.Run().Lines)
		if _, err := o.sess.Abandon(ctx, reason); err != nil {
			return err
		}
		delete(st.open, id)
		s.finished(st, id)
	}
	return nil
}

// mark marks each partition's offsets for commit: up to the start of the
// earliest snapshot still open on it, else past its last record.
func (s *Snapshots) mark(cl *kgo.Client, st *snapState) {
	st.mu.Lock()
	defer st.mu.Unlock()
	marks := map[int32]kgo.EpochOffset{}
	for p, eo := range st.next {
		marks[p] = eo
	}
	for _, o := range st.open {
		if m, ok := marks[o.partition]; ok && o.start < m.Offset {
			marks[o.partition] = kgo.EpochOffset{Epoch: -1, Offset: o.start}
		}
	}
	if len(marks) > 0 {
		cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{s.cfg.Topics.Snapshots: marks})
	}
}

func (s *Snapshots) deadLetter(ctx context.Context, r *kgo.Record, class string, err error) error {
	s.log.Warn("snapshot record dead-lettered", "partition", r.Partition, "offset", r.Offset, "class", class, "err", err)
	if perr := s.out.ProduceSync(ctx, deadletter.New(s.cfg.Topics.DLQ, r, class, err, time.Now())).FirstErr(); perr != nil {
		return fmt.Errorf("produce dead letter: %w", perr)
	}
	s.hooks.onDeadLetter(StageReconciler, class)
	return nil
}

// unknownUnitError says the catalog has no conversion for a unit.
type unknownUnitError struct{ msg string }

func (e *unknownUnitError) Error() string { return e.msg }

// ToBase converts q in uom to sku's base unit with the item master as the
// catalog has it now (the normalizers wait for it a moment first; snapshot
// lines are judged with no wait).
func (c *Catalog) ToBase(sku string, q int64, uom string) (int64, error) {
	item, known := c.Lookup(sku)
	base := "EA"
	if known {
		base = item.BaseUoM
	}
	if uom == "" || uom == base {
		return q, nil
	}
	factor := item.Conversions[uom]
	if factor <= 0 {
		return 0, &unknownUnitError{fmt.Sprintf("no conversion from %q to the base unit %q of %s", uom, base, sku)}
	}
	if q > math.MaxInt64/factor || q < math.MinInt64/factor {
		return 0, fmt.Errorf("%d %s overflows in base units", q, uom)
	}
	return q * factor, nil
}
