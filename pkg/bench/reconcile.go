package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/reconcile"
	"github.com/stockflow/stockflow/pkg/service"
)

// The reconciliation step: a snapshot of ReconcileLines lines compared with
// a ledger of as many positions, end to end as `stockflow reconcile` and
// `stockflow serve` do it (lines produced to the snapshot topic, the
// reconciler consuming them, reading the ledger as of T and recording the
// exceptions), beside the same Kafka and Redis work without the comparison.

const reconcileLocations = 4

// reconcileSKU is the SKU of position i.
func reconcileSKU(i int) string { return "RCN-" + strconv.Itoa(i/reconcileLocations) }
func reconcileLoc(i int) string { return "DC-" + strconv.Itoa(i%reconcileLocations) }

// Reconcile measures a run over a large snapshot.
func (r *Run) Reconcile(ctx context.Context) error {
	n := r.opt.ReconcileLines
	if n <= 0 {
		n = 1_000_000
	}
	asOf := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	r.progress("reconcile: writing a ledger of %d positions", n)
	if err := r.reconcileLedger(ctx, n, asOf); err != nil {
		return err
	}

	// The reconciler as serve runs it: an instance that reconciles only,
	// built by service.Build.
	cfg := r.cfg
	cfg.Reconcile.MaxLines = max(cfg.Reconcile.MaxLines, n)
	_, stop, err := r.startService(ctx, cfg, service.Options{InstanceID: "bench-reconciler", NoNormalizer: true, NoFolder: true})
	if err != nil {
		return err
	}
	defer stop()
	runs := reconcile.NewRuns(r.rdb, r.cfg.Redis.KeyPrefix, time.Hour)

	// The sender as `stockflow reconcile` runs it, its own client.
	prod, err := kgo.NewClient(r.opts(kgo.ProducerLinger(5 * time.Millisecond))...)
	if err != nil {
		return err
	}
	defer prod.Close()
	start := reconcileStart(n, asOf)
	id := start.SnapshotID
	resetPeakRSS()
	rssBefore := peakRSS()
	began := time.Now()
	sent, err := r.sendSnapshot(ctx, prod, start, n)
	if err != nil {
		return err
	}
	sendTook := time.Since(began)
	r.progress("reconcile: %d lines sent in %.1fs; waiting for the run", sent, sendTook.Seconds())
	run, err := awaitRun(ctx, runs, id, began)
	if err != nil {
		return err
	}
	took := time.Since(began)
	peak := peakRSS()
	if err := checkRun(run, id, n); err != nil {
		return err
	}

	ceilKafka, ceilRedis, err := r.reconcileCeiling(ctx, n, asOf)
	if err != nil {
		return err
	}
	ceiling := ceilKafka + ceilRedis
	r.rows = append(r.rows, Row{
		fmt.Sprintf("reconcile: a %d-line snapshot, sent to the topic, compared as of T, exceptions recorded", n),
		fmt.Sprintf("%.1fs (%.0f lines/s; %d exceptions)", took.Seconds(), float64(n)/took.Seconds(), run.Exceptions()),
		fmt.Sprintf("%.1fs: the records produced and consumed alone %.1fs, plus the same Redis reads pipelined alone %.1fs", ceiling.Seconds(), ceilKafka.Seconds(), ceilRedis.Seconds()),
		ceiling.Seconds() / took.Seconds(),
		fmt.Sprintf("sending took %.1fs of it; %s", sendTook.Seconds(), describeRSS(peak, rssBefore)),
	})
	return nil
}

// reconcileStart opens the bench snapshot of n lines, of the ledger as of
// asOf at every bench location, under an id of its own.
func reconcileStart(n int, asOf time.Time) *events.SnapshotStarted {
	locs := make([]string, reconcileLocations)
	for i := range locs {
		locs[i] = reconcileLoc(i)
	}
	id := "BENCH-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	return &events.SnapshotStarted{Meta: events.Meta{EventID: id, EventTime: time.Now().UTC(), Source: "BENCH"},
		SnapshotID: id, Locations: locs, AsOf: asOf, ExpectedLines: int64(n)}
}

// sendSnapshot sends the bench snapshot's n lines after start, as
// `stockflow reconcile` does, and returns how many it sent.
func (r *Run) sendSnapshot(ctx context.Context, prod *kgo.Client, start *events.SnapshotStarted, n int) (int64, error) {
	return reconcile.Send(ctx, prod, r.codec, r.cfg.Topics.Snapshots, start, func(emit func(*events.SnapshotLine) error) error {
		for i := range n {
			if err := emit(reconcileLine(i)); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// awaitRun waits for run id to finish, up to 10 minutes after began.
func awaitRun(ctx context.Context, runs *reconcile.Runs, id string, began time.Time) (reconcile.Run, error) {
	for {
		run, err := runs.Get(ctx, id)
		if err == nil && run.Status != reconcile.StatusRunning {
			return run, nil
		}
		if time.Since(began) > 10*time.Minute {
			return run, fmt.Errorf("run %s not finished after 10 minutes (%+v, %v)", id, run, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRun is an error unless run id completed and counted the drifts and
// missing positions the bench snapshot of n lines has.
func checkRun(run reconcile.Run, id string, n int) error {
	if run.Status != reconcile.StatusCompleted {
		return fmt.Errorf("run %s: %s (%s)", id, run.Status, run.Reason)
	}
	wantDrift, wantMissing := expectedReconcile(n)
	if run.Counts[reconcile.Drift] != wantDrift || run.Counts[reconcile.MissingInSnapshot] != wantMissing {
		return fmt.Errorf("run %s counted %v, want %d drift and %d missing", id, run.Counts, wantDrift, wantMissing)
	}
	return nil
}

// reconcileCeiling times the ceiling's two sides, one after the other: the
// Kafka records alone, then the Redis reads alone.
func (r *Run) reconcileCeiling(ctx context.Context, n int, asOf time.Time) (onKafka, onRedis time.Duration, err error) {
	onKafka, err = r.reconcilePassThrough(ctx, n)
	if err != nil {
		return 0, 0, err
	}
	onRedis, err = r.reconcileReads(ctx, n, asOf)
	if err != nil {
		return 0, 0, err
	}
	return onKafka, onRedis, nil
}

// describeRSS says the process's peak RSS in the step, given the peak
// before it, when it can be read.
func describeRSS(peak, before int64) string {
	if peak <= 0 {
		return "peak RSS not readable here"
	}
	return fmt.Sprintf("process peak RSS %d MiB (before the step %d MiB)", peak>>20, before>>20)
}

// reconcileLine is line i of the bench snapshot, for ledger position i:
// most match the ledger as of T; one in 50 is 3 over (drift); one in 200
// lists, instead of its position (then missing in the snapshot), a SKU the
// ledger does not know.
func reconcileLine(i int) *events.SnapshotLine {
	l := &events.SnapshotLine{Line: int64(i + 2), SKU: reconcileSKU(i), Location: reconcileLoc(i), Quantity: ledgerOnHandAtT(i), UoM: "EA"}
	switch {
	case i%200 == 199:
		l.SKU = "RCN-NEW-" + strconv.Itoa(i)
	case i%50 == 7:
		l.Quantity += 3
	}
	return l
}

// expectedReconcile is how many drifts and missing positions the bench
// snapshot of n lines has.
func expectedReconcile(n int) (drift, missing int64) {
	for i := range n {
		switch {
		case i%200 == 199:
			missing++
		case i%50 == 7:
			drift++
		}
	}
	return drift, missing
}

// reconcileLedger writes n positions as the fold would leave them: totals
// in the position hash, and for one in ten a movement after T in its
// journal, so that on hand at T differs from on hand now.
func (r *Run) reconcileLedger(ctx context.Context, n int, asOf time.Time) error {
	const batch = 5000
	after := float64(asOf.Add(time.Minute).UnixMilli())
	for lo := 0; lo < n; lo += batch {
		pipe := r.rdb.Pipeline()
		for i := lo; i < min(lo+batch, n); i++ {
			key := r.store.SKUKey(reconcileSKU(i))
			pipe.HSet(ctx, key+":p:"+reconcileLoc(i), "v", 1, "at", 0, "oh", ledgerOnHandNow(i))
			if i%10 == 0 {
				pipe.ZAdd(ctx, key+":j:"+reconcileLoc(i), redis.Z{Score: after, Member: "0:" + strconv.Itoa(i) + ":5"})
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("write the bench ledger: %w", err)
		}
	}
	return nil
}

// ledgerOnHandAtT and ledgerOnHandNow are position i's on hand at T and
// now (one in ten received 5 after T).
func ledgerOnHandAtT(i int) int64 { return int64(10 + i%90) }
func ledgerOnHandNow(i int) int64 {
	if i%10 == 0 {
		return ledgerOnHandAtT(i) + 5
	}
	return ledgerOnHandAtT(i)
}

// reconcilePassThrough is the Kafka side of the ceiling: the same records
// produced by one client while another consumes them, nothing done with
// them but decoding, as the reconciler does.
func (r *Run) reconcilePassThrough(ctx context.Context, n int) (time.Duration, error) {
	topic := r.cfg.Topics.Snapshots + ".passthrough"
	if err := kafka.EnsureTopics(ctx, r.adm, int32(r.cfg.Kafka.Partitions), int16(r.cfg.Kafka.Replication), []kafka.TopicSpec{{Name: topic}}); err != nil {
		return 0, err
	}
	defer r.deleteTopics(context.WithoutCancel(ctx), topic)
	prod, err := kgo.NewClient(r.opts(kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))...)
	if err != nil {
		return 0, err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(r.opts(kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	start := time.Now()
	produced := make(chan error, 1)
	go func() {
		var firstErr error
		var once sync.Once
		for i := range n {
			l := reconcileLine(i)
			l.SnapshotID = "PASS"
			b, err := r.codec.Encode(ctx, topic, l)
			if err != nil {
				produced <- err
				return
			}
			prod.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte("PASS"), Value: b}, func(_ *kgo.Record, err error) {
				if err != nil {
					once.Do(func() { firstErr = err })
				}
			})
		}
		if err := prod.Flush(ctx); err != nil {
			produced <- err
			return
		}
		produced <- firstErr
	}()
	for read := 0; read < n; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if _, err := r.codec.Decode(ctx, rec.Value); err == nil {
				read++
			}
		})
	}
	took := time.Since(start)
	return took, <-produced
}

// reconcileReads is the Redis side of the ceiling: each position's totals
// and its journal after T read in pipelines of 2,000, nothing compared.
func (r *Run) reconcileReads(ctx context.Context, n int, asOf time.Time) (time.Duration, error) {
	const batch = 2000
	after := "(" + strconv.FormatInt(asOf.UnixMilli(), 10)
	start := time.Now()
	for lo := 0; lo < n; lo += batch {
		pipe := r.rdb.Pipeline()
		for i := lo; i < min(lo+batch, n); i++ {
			key := r.store.SKUKey(reconcileSKU(i))
			pipe.HMGet(ctx, key+":p:"+reconcileLoc(i), "v", "oh", "ct")
			pipe.ZRangeArgs(ctx, redis.ZRangeArgs{Key: key + ":j:" + reconcileLoc(i), Start: after, Stop: "+inf", ByScore: true})
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// resetPeakRSS starts the process's peak RSS (VmHWM) again from its current
// RSS (Linux: writing 5 to clear_refs).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident set size in bytes, or 0.
func peakRSS() int64 {
	_, peak, err := rssOf(os.Getpid())
	if err != nil {
		return 0
	}
	return peak
}
