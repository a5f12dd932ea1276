package processors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stockflow/stockflow/pkg/ledger"
)

// offsetKeeper keeps the folder's offsets: the applied offsets it records
// in Redis (where a partition resumes), Redis going back in time, and the
// commits to Kafka (which only serve lag tooling and readiness).
//
// Lock order: redisMu, then mu.
type offsetKeeper struct {
	store *ledger.Store
	topic string
	log   *slog.Logger

	// redisMu makes reading Redis's applied offsets and comparing them with
	// recorded one step, and so writing them and updating recorded.
	redisMu sync.Mutex

	mu sync.Mutex
	// recorded is, per partition, the applied offset this folder last saw
	// in or wrote to Redis.
	recorded map[int32]int64
	// committed is, for each partition this folder owns, the next offset
	// Kafka has as committed for the group.
	committed map[int32]int64
	// epoch counts the times a partition was (re)assigned or re-read from
	// Redis: a poll applied before that must not record its offsets.
	epoch map[int32]uint64
	// suspect marks partitions whose Redis moved under this folder (a
	// refused guarded write or record): re-read them from Redis.
	suspect map[int32]bool
}

func newOffsetKeeper(store *ledger.Store, topic string, log *slog.Logger) *offsetKeeper {
	return &offsetKeeper{store: store, topic: topic, log: log,
		recorded: map[int32]int64{}, committed: map[int32]int64{}, epoch: map[int32]uint64{}, suspect: map[int32]bool{}}
}

// assigned starts a partition afresh: Redis has applied up to applied (ok
// false: nothing), Kafka has committed up to committed.
func (k *offsetKeeper) assigned(p int32, applied int64, ok bool, committed int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.recorded, p)
	if ok {
		k.recorded[p] = applied
	}
	k.committed[p] = committed
	k.epoch[p]++
	delete(k.suspect, p)
}

// revoked forgets a partition this folder no longer owns.
func (k *offsetKeeper) revoked(p int32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.committed, p)
	delete(k.recorded, p)
	delete(k.suspect, p)
	k.epoch[p]++
}

// markSuspect asks for p to be re-read from what Redis has.
func (k *offsetKeeper) markSuspect(p int32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.suspect[p] = true
}

func (k *offsetKeeper) epochs(ps map[int32]int64) map[int32]uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[int32]uint64, len(ps))
	for p := range ps {
		out[p] = k.epoch[p]
	}
	return out
}

// rewinds compares Redis's applied offsets with what this folder recorded,
// and returns where to re-read the partitions where Redis went back in time
// (restored from an older snapshot, a failover that lost writes) or moved
// under this folder: from what Redis still holds, so no entry is skipped by
// a watermark that moved past a lost one.
func (k *offsetKeeper) rewinds(ctx context.Context) (map[int32]kgo.EpochOffset, error) {
	k.redisMu.Lock()
	defer k.redisMu.Unlock()
	stored, err := k.store.AppliedOffsets(ctx, k.topic)
	if err != nil {
		return nil, err
	}
	// Which partitions to re-read is decided first; the folder's memory
	// changes only once Redis has been made consistent, so an error
	// leaves every decision to be taken again by the retry.
	type rewind struct {
		p        int32
		rec, got int64
		has      bool
	}
	var todo []rewind
	k.mu.Lock()
	check := func(p int32, rec int64, known bool) {
		got, has := stored[p]
		if !k.suspect[p] && has && known && got >= rec {
			return
		}
		todo = append(todo, rewind{p, rec, got, has})
	}
	for p, rec := range k.recorded {
		check(p, rec, true)
	}
	for p := range k.suspect {
		if _, ok := k.recorded[p]; !ok {
			check(p, -1, false)
		}
	}
	k.mu.Unlock()
	if len(todo) == 0 {
		return nil, nil
	}
	// On a Redis Cluster the copies of the applied offsets may now
	// disagree (one shard went back): bring them all to the lowest, so the
	// next guarded record finds what it expects in each.
	ps := make([]int32, len(todo))
	for i, r := range todo {
		ps[i] = r.p
	}
	if err := k.store.AlignApplied(ctx, k.topic, ps, stored); err != nil {
		return nil, err
	}
	lost, err := k.store.ShardsLost(ctx, k.topic)
	if err != nil {
		return nil, err
	}
	if len(lost) > 0 {
		k.log.Error("a redis cluster shard lost its data: its SKUs are folded again from the log, the other shards' SKUs are skipped by their watermarks",
			"lost_copies", lost)
		if _, err := k.store.EnsureMarker(ctx, k.topic); err != nil {
			return nil, err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	seek := make(map[int32]kgo.EpochOffset, len(todo))
	for _, r := range todo {
		next := int64(0)
		if r.has {
			next = r.got + 1
			k.recorded[r.p] = r.got
		} else {
			delete(k.recorded, r.p)
		}
		k.epoch[r.p]++
		delete(k.suspect, r.p)
		seek[r.p] = kgo.EpochOffset{Epoch: -1, Offset: next}
		k.log.Error("redis went back in time or moved under this folder: re-reading the partition from what redis holds",
			"partition", r.p, "recorded", r.rec, "redis_has", r.got, "resume_at", next)
	}
	return seek, nil
}

// record writes a poll's applied offsets to Redis, each guarded by what
// this folder last recorded, for the partitions not re-read since the poll
// (epochs). A refusal marks the partition suspect.
//
// On a Redis Cluster, topo is the masters as they were before the oldest of
// the polls wrote its states. When they changed by the time the offsets are
// recorded (a replica promoted, a master restarted), the states may be lost
// while the offsets landed on the new master: the offsets are moved back
// and the partitions read again.
func (k *offsetKeeper) record(ctx context.Context, applied map[int32]int64, epochs map[int32]uint64, topo ledger.Topology) error {
	k.redisMu.Lock()
	defer k.redisMu.Unlock()
	k.mu.Lock()
	from, to := map[int32]int64{}, map[int32]int64{}
	for p, o := range applied {
		if k.epoch[p] != epochs[p] || k.suspect[p] {
			continue
		}
		if rec, ok := k.recorded[p]; ok {
			if o <= rec {
				continue
			}
			from[p] = rec
		}
		to[p] = o
	}
	k.mu.Unlock()
	refused, err := k.store.RecordApplied(ctx, k.topic, from, to)
	if err != nil {
		return err
	}
	now, err := k.store.Topology(ctx)
	if err != nil {
		return err
	}
	if !now.Equal(topo) {
		ps := make([]int32, 0, len(to))
		for p := range to {
			ps = append(ps, p)
		}
		if err := k.store.AlignApplied(ctx, k.topic, ps, from); err != nil {
			return err
		}
		k.log.Warn("redis cluster masters changed while a poll was written: re-reading it", "partitions", ps, "before", topo, "now", now)
		k.mu.Lock()
		defer k.mu.Unlock()
		for _, p := range ps {
			k.suspect[p] = true
		}
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range refused {
		k.suspect[p] = true
		delete(to, p)
		k.log.Warn("applied offset moved under this folder", "partition", p)
	}
	for p, o := range to {
		k.recorded[p] = o
	}
	return nil
}

// commitBehind commits, for the partitions this folder owns, the offsets
// Redis has applied beyond what Kafka has as committed. A commit lost to a
// rebalance or a broker restart is made good by the next one.
func (k *offsetKeeper) commitBehind(ctx context.Context, cl *kgo.Client) {
	behind := map[int32]kgo.EpochOffset{}
	k.mu.Lock()
	for p, c := range k.committed {
		if a, ok := k.recorded[p]; ok && a+1 > c {
			behind[p] = kgo.EpochOffset{Epoch: -1, Offset: a + 1}
		}
	}
	k.mu.Unlock()
	if len(behind) == 0 {
		return
	}
	var err error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{k.topic: behind},
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
		// Redis decides where to resume, so a failed commit loses nothing;
		// the next one makes it good.
		k.log.Warn("commit to kafka", "err", err)
		return
	}
	k.mu.Lock()
	for p, o := range behind {
		if _, owned := k.committed[p]; owned {
			k.committed[p] = max(k.committed[p], o.Offset)
		}
	}
	k.mu.Unlock()
}

// afterApply is the work a poll leaves once Redis has it: publish its
// outputs, then record its applied offsets, then commit. It runs in order,
// poll after poll, off the poll loop.
type afterApply struct {
	outputs pollOutputs
	applied map[int32]int64
	epochs  map[int32]uint64
	topo    ledger.Topology // the Redis Cluster's masters before the poll was written
	flushed chan struct{}   // a flush marker instead of a poll
}

// postApply runs afterApply items through two stages: the emitter produces a
// poll's outputs, then the keeper waits for the broker to have them and
// records and commits the poll's offsets. A poll's offsets are recorded only
// once its outputs are out, so a crash loses none of them.
type postApply struct {
	em     *emitter
	keeper *offsetKeeper
	cl     *kgo.Client
	log    *slog.Logger

	in      chan afterApply
	stopped chan struct{}
	mu      sync.Mutex
	err     error
	// inMu guards closing in against a push under way.
	inMu   sync.RWMutex
	closed bool
}

type produced struct {
	afterApply
	flight *flight
}

func newPostApply(em *emitter, keeper *offsetKeeper, cl *kgo.Client, inFlight int, log *slog.Logger) *postApply {
	return &postApply{em: em, keeper: keeper, cl: cl, log: log, in: make(chan afterApply, inFlight), stopped: make(chan struct{})}
}

// run works until in is closed and drained. Past ctx's end, it drains
// without recording.
func (p *postApply) run(ctx context.Context) {
	defer close(p.stopped)
	mid := make(chan produced, cap(p.in))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(mid)
		for a := range p.in {
			var f *flight
			if !a.outputs.empty() {
				var err error
				if f, err = p.em.emit(ctx, a.outputs); err != nil {
					p.fail(err)
					f = nil
					a.applied = nil
				}
			}
			mid <- produced{a, f}
		}
	}()
	// The keeper takes every poll that is ready at once: one record and one
	// commit for all of them, so it keeps up with the poll loop.
	for pr := range mid {
		batch := []produced{pr}
	more:
		for len(batch) < 64 {
			select {
			case next, ok := <-mid:
				if !ok {
					break more
				}
				batch = append(batch, next)
			default:
				break more
			}
		}
		p.keep(ctx, batch)
	}
	wg.Wait()
}

// keep finishes polls in order: waits until the broker has their outputs,
// clears their alerts from the outboxes, records their applied offsets and
// commits; then answers the flushes among them.
func (p *postApply) keep(ctx context.Context, batch []produced) {
	defer func() {
		for _, pr := range batch {
			if pr.flushed != nil {
				close(pr.flushed)
			}
		}
	}()
	applied, epochs := map[int32]int64{}, map[int32]uint64{}
	var (
		topo     ledger.Topology
		haveTopo bool
	)
	sent := map[string][]string{}
	for _, pr := range batch {
		if pr.flight != nil {
			if err := pr.flight.wait(); err != nil {
				// Not recorded: the poll is read again after a restart.
				p.fail(fmt.Errorf("produce outputs: %w", err))
				return
			}
		}
		for _, a := range pr.outputs.alerts {
			sent[a.sku] = append(sent[a.sku], a.id)
		}
		// Polls come in order: a later one's offset (and epoch) supersedes;
		// the masters are the oldest poll's.
		if len(pr.applied) > 0 && !haveTopo {
			topo, haveTopo = pr.topo, true
		}
		for part, o := range pr.applied {
			applied[part], epochs[part] = o, pr.epochs[part]
		}
	}
	if p.failed() != nil {
		return
	}
	if len(sent) > 0 {
		err := retry(p.log).Do(ctx, "clearing published alerts", func(ctx context.Context) error {
			return p.keeper.store.ClearOutbox(ctx, sent)
		})
		if err != nil {
			return
		}
	}
	if len(applied) > 0 {
		err := retry(p.log).Do(ctx, "recording applied offsets", func(ctx context.Context) error {
			return p.keeper.record(ctx, applied, epochs, topo)
		})
		if err != nil {
			return
		}
	}
	p.keeper.commitBehind(ctx, p.cl)
}

func (p *postApply) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// failed returns the error that stopped the pipeline, if any.
func (p *postApply) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// push hands a poll to the pipeline; it blocks while inFlight polls are
// already under way.
func (p *postApply) push(ctx context.Context, a afterApply) error {
	p.inMu.RLock()
	defer p.inMu.RUnlock()
	if p.closed {
		return fmt.Errorf("folder pipeline stopped")
	}
	select {
	case p.in <- a:
		return nil
	case <-p.stopped:
		return fmt.Errorf("folder pipeline stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close lets the pipeline finish what it was handed and stop.
func (p *postApply) close() {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.in)
	}
}

// flush waits until every poll handed over so far is published, recorded
// and committed (or the pipeline stopped).
func (p *postApply) flush(ctx context.Context) {
	done := make(chan struct{})
	if p.push(ctx, afterApply{flushed: done}) != nil {
		return
	}
	select {
	case <-done:
	case <-p.stopped:
	case <-ctx.Done():
	}
}
