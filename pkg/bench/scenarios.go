package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/api"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/service"
	"github.com/stockflow/stockflow/pkg/sim"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/processors"
)

// Options size a run.
type Options struct {
	Events    int           // source events in the stream (after the catalogue and opening counts)
	SKUs      int           // catalogue size; 5 locations each
	Duration  time.Duration // per load phase
	LookupRPS float64       // the constant-rate lookup run, or lower (see openRate)
	HoldRPS   float64       // the constant-rate hold run
	FreshRPS  float64       // the constant-rate freshness run
	// HoldIngestRates are the source events/s of simulated warehouse
	// ingest the holds scenario measures under, one row each (0: none).
	HoldIngestRates []float64
	// RedisLookups makes the API read every lookup from Redis, as an
	// instance that folds nothing does, instead of answering the
	// positions the live pipeline folds from its memory (as stockflow
	// serve does).
	RedisLookups bool
	// ReconcileLines is the size of the reconciliation step's snapshot
	// (and of its ledger). Default 1,000,000.
	ReconcileLines int
	// CommitmentLines is how many backordered lines the commitments step's
	// PO covers. Default 10,000.
	CommitmentLines int
	// BacklogEvents are the sizes (source events) of the backlogs the
	// backlog step catches up, one row each. Default 250,000 and 1,000,000.
	BacklogEvents []int
	Progress      io.Writer // progress lines (a terminal), or nil
}

// Run is one benchmark run against the stack cfg points at. Its topics and
// groups are suffixed so each run starts empty; its Redis keys, everything
// below cfg.Redis.KeyPrefix, are deleted when it starts and when it closes,
// and nothing else in the database is touched.
type Run struct {
	cfg   config.Config
	opt   Options
	codec *avro.Codec
	rdb   redis.UniversalClient
	store *ledger.Store
	cl    *kgo.Client
	adm   *kadm.Client
	log   *slog.Logger
	rows  []Row
	// filled by Ingest, used by the later scenarios
	sourceEvents int
	entries      int64
	// live is the service Ingest started, kept running for the lookup,
	// holds and freshness runs as a deployed service keeps running: its
	// folder's cache is warm, and its memory answers the API's lookups of
	// what it folds. stopLive stops it.
	live     *service.Service
	stopLive func()
	// saidUncached is set once the progress has said the API's lookups
	// read Redis without the lookup cache.
	saidUncached bool
	// bgErr is what the components run in the background returned; bgMu
	// guards it.
	bgMu  sync.Mutex
	bgErr error
}

// NewRun prepares a run.
func NewRun(ctx context.Context, cfg config.Config, opt Options, log *slog.Logger) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	sfx := "." + strconv.FormatInt(time.Now().Unix(), 36)
	for _, p := range topicNames(&cfg.Topics) {
		*p = "bench." + *p + sfx
	}
	cfg.Kafka.NormalizerGroup += ".bench" + sfx
	cfg.Kafka.FolderGroup += ".bench" + sfx
	cfg.Kafka.ReconcilerGroup += ".bench" + sfx
	codec, err := events.OpenCodec(cfg.SchemaRegistry, cfg.MaxRecordBytes)
	if err != nil {
		return nil, err
	}
	// As stockflow serve's producer: no linger (holds go out at once).
	cl, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka, kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(0))...)
	if err != nil {
		return nil, err
	}
	if cfg.Redis.Cluster() {
		cl.Close()
		return nil, errors.New("the benchmark measures one Redis (-redis-addr); it does not run on a Redis Cluster")
	}
	r := &Run{cfg: cfg, opt: opt, codec: codec, cl: cl, adm: kadm.NewClient(cl), log: log}
	r.rdb = store.Open(cfg.Redis)
	if n, err := r.deleteKeys(ctx, ledger.NewKeys(cfg.Redis.KeyPrefix).All()); err != nil {
		return nil, fmt.Errorf("delete the keys of an earlier run: %w", err)
	} else if n > 0 {
		r.progress("deleted %d keys of an earlier run (%s:*)", n, cfg.Redis.KeyPrefix)
	}
	r.store = ledger.New(r.rdb, ledger.Config{KeyPrefix: cfg.Redis.KeyPrefix})
	if err := kafka.EnsureTopics(ctx, r.adm, int32(cfg.Kafka.Partitions), int16(cfg.Kafka.Replication), kafka.Topics(cfg.Topics)); err != nil {
		return nil, err
	}
	return r, nil
}

// topicNames are the names of every topic t holds, to rename them.
func topicNames(t *config.Topics) []*string {
	return []*string{&t.Inventory, &t.Orders, &t.Supplier, &t.Catalog, &t.Ledger, &t.Holds, &t.Availability, &t.Alerts, &t.DLQ, &t.Index, &t.Snapshots, &t.Reconciliation, &t.Commitments}
}

// Close deletes the run's topics and Redis keys and closes its clients.
func (r *Run) Close(ctx context.Context) {
	r.stopService()
	r.dropKeys(ctx, ledger.NewKeys(r.cfg.Redis.KeyPrefix).All())
	t := r.cfg.Topics
	r.deleteTopics(ctx, t.Inventory, t.Orders, t.Supplier, t.Catalog, t.Ledger, t.Holds, t.Availability, t.Alerts, t.DLQ, t.Index, t.Ledger+".scratch",
		t.Snapshots, t.Reconciliation, t.Commitments)
	r.deleteGroups(ctx, r.cfg.Kafka.NormalizerGroup, r.cfg.Kafka.FolderGroup, r.cfg.Kafka.FolderGroup+".rebuild", r.cfg.Kafka.NormalizerGroup+".passthrough",
		r.cfg.Kafka.ReconcilerGroup)
	r.cl.Close()
	if err := r.rdb.Close(); err != nil {
		r.progress("close redis: %v", err)
	}
}

// dropKeys deletes the keys matching pattern, best effort: a failure is
// only said.
func (r *Run) dropKeys(ctx context.Context, pattern string) {
	if _, err := r.deleteKeys(ctx, pattern); err != nil {
		r.progress("delete keys %s: %v", pattern, err)
	}
}

// deleteTopics deletes topics of the run, best effort: a failure is
// only said.
func (r *Run) deleteTopics(ctx context.Context, topics ...string) {
	if _, err := r.adm.DeleteTopics(ctx, topics...); err != nil {
		r.progress("delete topics %v: %v", topics, err)
	}
}

// deleteGroups deletes consumer groups of the run, best effort: a failure is
// only said.
func (r *Run) deleteGroups(ctx context.Context, groups ...string) {
	if _, err := r.adm.DeleteGroups(ctx, groups...); err != nil {
		r.progress("delete groups %v: %v", groups, err)
	}
}

// background runs a component's run in wg; an error it returns, other than
// its stop, is logged and kept for Err.
func (r *Run) background(wg *sync.WaitGroup, name string, run func() error) {
	wg.Go(func() {
		err := run()
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		r.log.Error("bench: a component stopped", "component", name, "err", err)
		r.bgMu.Lock()
		defer r.bgMu.Unlock()
		r.bgErr = errors.Join(r.bgErr, fmt.Errorf("%s: %w", name, err))
	})
}

// Err is what the components the run started in the background returned
// so far, nil if they have not failed.
func (r *Run) Err() error {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	return r.bgErr
}

// deleteKeys unlinks every key matching pattern, a thousand at a time as
// SCAN finds them, and returns how many it unlinked.
func (r *Run) deleteKeys(ctx context.Context, pattern string) (int64, error) {
	var n int64
	batch := make([]string, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		k, err := r.rdb.Unlink(ctx, batch...).Result()
		n += k
		batch = batch[:0]
		return err
	}
	iter := r.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, err
	}
	return n, flush()
}

// Rows are the results so far.
func (r *Run) Rows() []Row { return r.rows }

func (r *Run) progress(format string, a ...any) {
	if r.opt.Progress != nil {
		fmt.Fprintf(r.opt.Progress, format+"\n", a...)
	}
}

// lagZero waits until the groups have no lag; it returns false on timeout.
func (r *Run) lagZero(ctx context.Context, within time.Duration, groups ...string) bool {
	return r.lagZeroWatching(ctx, within, nil, groups...)
}

// lagZeroWatching is lagZero that also hands every lag it reads to watch
// (when not nil).
func (r *Run) lagZeroWatching(ctx context.Context, within time.Duration, watch func(kadm.DescribedGroupLags), groups ...string) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		lags, err := r.adm.Lag(ctx, groups...)
		if err == nil && watch != nil {
			watch(lags)
		}
		if err == nil && len(lags) == len(groups) {
			var total int64
			ok := true
			var each []string
			lags.Each(func(l kadm.DescribedGroupLag) {
				if l.Error() != nil || len(l.Lag) == 0 {
					ok = false
				}
				total += l.Lag.Total()
				each = append(each, fmt.Sprintf("%s %d", l.Group, l.Lag.Total()))
			})
			if ok && total == 0 {
				return true
			}
			sort.Strings(each)
			r.progress("  lag %d (%s)", total, strings.Join(each, ", "))
		}
		time.Sleep(250 * time.Millisecond)
	}
	return false
}

// running starts the live service when there is none.
func (r *Run) running(ctx context.Context) error {
	if r.live != nil {
		return nil
	}
	// The reconciliation step runs an instance of its own.
	svc, stop, err := r.startService(ctx, r.cfg, service.Options{InstanceID: "bench", NoReconciler: true})
	if err != nil {
		return err
	}
	r.live = svc
	r.stopLive = func() {
		stop()
		r.live, r.stopLive = nil, nil
	}
	return nil
}

// stopService stops the live service, if one runs.
func (r *Run) stopService() {
	if r.stopLive != nil {
		r.stopLive()
	}
}

// startService builds the service with service.Build, exactly as
// stockflow serve does, and runs it until stop is called. Its API listens
// on a free loopback port; the run's topics exist already; the API's rate
// limit is off, the load coming from one client address.
func (r *Run) startService(ctx context.Context, cfg config.Config, opts service.Options) (_ *service.Service, stop func(), _ error) {
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Kafka.CreateTopics = false
	cfg.API.RateLimit = 0
	// The load sends no API key; the run's figures are of the work, not of
	// exporting spans; the reconciliation step checks the counts of an
	// untolerant, report-only run. A deployment's settings for these (from
	// its file or environment) stay out of the run.
	cfg.API.Keys, cfg.OTLPEndpoint = "", ""
	cfg.Reconcile.Tolerance, cfg.Reconcile.AutoApplyUnits = "", 0
	opts.Logger = r.log
	began := time.Now()
	svc, err := service.Build(ctx, cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	built := time.Since(began)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	r.background(&wg, "service "+opts.InstanceID, func() error { return svc.Run(ctx) })
	stop = func() {
		cancel()
		wg.Wait()
		svc.Close()
	}
	for deadline := time.Now().Add(10 * time.Second); svc.Addr() == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) || r.Err() != nil {
			stop()
			return nil, nil, errors.Join(errors.New("the service's API did not start listening"), r.Err())
		}
	}
	r.progress("service %s: built in %v, listening after %v", opts.InstanceID, built.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	return svc, stop, nil
}

// Ingest pre-produces the stream, then times the pipeline from start to
// zero lag; ceilings: a transactional pass-through of the same records, and
// the Redis apply calls alone.
func (r *Run) Ingest(ctx context.Context) error {
	gen := sim.NewGenerator(1, sim.Catalogue{SKUs: r.opt.SKUs}, r.cfg.Topics, nil)
	r.progress("ingest: producing %d events (+ catalogue and opening counts)", r.opt.Events)
	st, err := sim.New(sim.Config{Count: r.opt.Events}, gen, r.codec, r.cl, r.log).Run(ctx)
	if err != nil {
		return err
	}
	r.sourceEvents = st.Produced + st.Catalog
	// Ceilings first, on the same source records: the I/O floor of the same
	// topology (consume, produce one record per source record in a
	// transaction, consume that, one pipelined HSET per record, commit),
	// and a plain transactional pass-through.
	m := r.startCPU(ctx)
	floorRate, err := r.ioFloor(ctx)
	if err != nil {
		return err
	}
	floorCPU, floorRedis := r.used(ctx, m)
	passRate, err := r.passThrough(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	m = r.startCPU(ctx)
	if err := r.running(ctx); err != nil {
		return err
	}
	if !r.lagZero(ctx, 30*time.Minute, r.cfg.Kafka.NormalizerGroup, r.cfg.Kafka.FolderGroup) {
		return fmt.Errorf("ingest did not finish")
	}
	elapsed := time.Since(start)
	cpu, redisCPU := r.used(ctx, m)
	rate := float64(r.sourceEvents) / elapsed.Seconds()
	entries, err := r.ledgerEntries(ctx, r.cfg.Topics.Ledger)
	if err != nil {
		return err
	}
	r.entries = int64(entries)
	perEvent := float64(entries) / float64(r.sourceEvents)
	n := int64(r.sourceEvents)
	r.rows = append(r.rows,
		Row{"ingest end to end (source events/s)", fmt.Sprintf("%.0f/s (%d events, %.1fs); CPU µs per source event: Stockflow %s, Redis %s",
			rate, r.sourceEvents, elapsed.Seconds(), perUnit(cpu, n), perUnit(redisCPU, n)),
			fmt.Sprintf("I/O floor %.0f/s (CPU µs per source event: its two stages %s, Redis %s); pass-through %.0f/s",
				floorRate, perUnit(floorCPU, n), perUnit(floorRedis, n), passRate),
			rate / floorRate, fmt.Sprintf("ratio to the I/O floor; %.2f ledger entries per source event (Stockflow CPU µs per entry %s); %s",
				perEvent, perUnit(cpu, int64(entries)), r.verify(ctx, r.cfg))})
	return nil
}

// verify compares the ledger cfg names in Redis with a fold of its log:
// LEDGER==FOLD, or how they differ.
func (r *Run) verify(ctx context.Context, cfg config.Config) string {
	rep, err := processors.Verify(ctx, cfg.Kafka, cfg.Topics, r.cfg.API.Parsed.Supply, ledger.New(r.rdb, ledger.Config{KeyPrefix: cfg.Redis.KeyPrefix}), r.codec, io.Discard)
	switch {
	case err != nil:
		return "verify failed: " + err.Error()
	case !rep.OK():
		return fmt.Sprintf("LEDGER!=FOLD (%d differences, first: %s)", len(rep.Differences), rep.Differences[0])
	}
	return "LEDGER==FOLD"
}

// ioFloor is what the machine, Kafka and Redis allow for the topology of
// ingest without Stockflow's logic: a transactional stage that consumes the
// source topics and produces one record per source record to a scratch
// topic (with the consumed offsets), beside a second stage that consumes the
// scratch topic (read_committed), writes one HSET per record in one
// pipeline per poll, and commits. Both stages run at once, as the
// normalizer and the folder do; the time runs until the second stage has
// written every record.
func (r *Run) ioFloor(ctx context.Context) (float64, error) {
	scratch := r.cfg.Topics.Ledger + ".floor"
	if err := kafka.EnsureTopics(ctx, r.adm, int32(r.cfg.Kafka.Partitions), 1, []kafka.TopicSpec{{Name: scratch}}); err != nil {
		return 0, err
	}
	defer r.deleteTopics(context.WithoutCancel(ctx), scratch)
	// The floor's hashes sit below the run's prefix, apart from the ledger's
	// keys, and go when the floor is measured.
	floorKey := r.cfg.Redis.KeyPrefix + ":floor:"
	defer r.dropKeys(context.WithoutCancel(ctx), floorKey+"*")
	rdb := r.rdb
	t := r.cfg.Topics
	group := r.cfg.Kafka.NormalizerGroup + ".floor"
	defer r.deleteGroups(context.WithoutCancel(ctx), group, group+".out")
	sess, err := kgo.NewGroupTransactSession(r.opts(kgo.TransactionalID("bench-floor-"+t.Ledger),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(t.Inventory, t.Orders, t.Supplier, t.Catalog),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerLinger(0))...)
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	out, err := kgo.NewClient(r.opts(kgo.ConsumerGroup(group+".out"), kgo.ConsumeTopics(scratch),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())...)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 2)
	go func() {
		moved := 0
		for moved < r.sourceEvents && ctx.Err() == nil {
			fs := sess.PollRecords(ctx, 5000)
			if ctx.Err() != nil {
				break
			}
			if err := sess.Begin(); err != nil {
				errc <- err
				return
			}
			fs.EachRecord(func(rec *kgo.Record) {
				sess.Produce(ctx, &kgo.Record{Topic: scratch, Key: rec.Key, Value: rec.Value}, nil)
				moved++
			})
			if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	written := 0
	for written < r.sourceEvents {
		fs := out.PollRecords(ctx, 10000)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var recs []*kgo.Record
		fs.EachRecord(func(rec *kgo.Record) { recs = append(recs, rec) })
		if len(recs) == 0 {
			continue
		}
		pipe := rdb.Pipeline()
		for _, rec := range recs {
			pipe.HSet(ctx, floorKey+"{"+string(rec.Key)+"}", "v", rec.Value)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, err
		}
		if err := out.CommitRecords(ctx, recs...); err != nil {
			return 0, err
		}
		written += len(recs)
	}
	elapsed := time.Since(start)
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(written) / elapsed.Seconds(), nil
}

func (r *Run) passThrough(ctx context.Context) (float64, error) {
	scratch := r.cfg.Topics.Ledger + ".scratch"
	if err := kafka.EnsureTopics(ctx, r.adm, int32(r.cfg.Kafka.Partitions), 1, []kafka.TopicSpec{{Name: scratch}}); err != nil {
		return 0, err
	}
	t := r.cfg.Topics
	sess, err := kgo.NewGroupTransactSession(r.opts(kgo.TransactionalID("bench-pass-"+t.Ledger),
		kgo.ConsumerGroup(r.cfg.Kafka.NormalizerGroup+".passthrough"), kgo.ConsumeTopics(t.Inventory, t.Orders, t.Supplier, t.Catalog),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerLinger(0))...)
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	start := time.Now()
	moved := 0
	for moved < r.sourceEvents {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if err := sess.Begin(); err != nil {
			return 0, err
		}
		fs.EachRecord(func(rec *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Topic: scratch, Key: rec.Key, Value: rec.Value}, nil)
			moved++
		})
		if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
			return 0, err
		}
	}
	rd, err := kgo.NewClient(r.opts(kgo.ConsumeTopics(scratch),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	for read := 0; read < moved; {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		read += fs.NumRecords()
	}
	return float64(moved) / time.Since(start).Seconds(), nil
}

// ledgerEntries counts the entries of a whole ledger log.
func (r *Run) ledgerEntries(ctx context.Context, topic string) (int, error) {
	n := 0
	err := deadletter.ReadTopic(ctx, kafka.Conn(r.cfg.Kafka), topic, nil, func(*kgo.Record) error {
		n++
		return nil
	})
	return n, err
}

// endpoints are the servers a scenario loads.
type endpoints struct {
	api, bare string // base URLs
	// cache is the API's lookup cache, nil when its lookups read Redis.
	cache *store.Cache
	// reg holds the API's hold metrics.
	reg  *prometheus.Registry
	stop func()
}

// holdCounts are the API's hold decisions so far, by outcome.
type holdCounts struct{ held, rejected, timeout float64 }

// holdOutcomes reads the API's hold decision counters; a timeout is a 503.
func (e *endpoints) holdOutcomes() holdCounts {
	var c holdCounts
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "stockflow_hold_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "outcome" {
					continue
				}
				switch l.GetValue() {
				case "held":
					c.held += m.GetCounter().GetValue()
				case "rejected":
					c.rejected += m.GetCounter().GetValue()
				case "timeout":
					c.timeout += m.GetCounter().GetValue()
				}
			}
		}
	}
	return c
}

// cacheStats reads the API's lookup cache counters (zero without a cache).
func (e *endpoints) cacheStats() store.CacheStats {
	if e.cache == nil {
		return store.CacheStats{}
	}
	return e.cache.Stats()
}

// servers gives the API to load, and starts a bare handler answering a
// constant body of the same size. The API is the live service's, whose
// folder's memory answers the lookups of what it folds, as stockflow
// serve's does; without a live service, or with Options.RedisLookups, it is
// an instance that folds nothing, built alike, reading every lookup from
// Redis through its lookup cache.
func (r *Run) servers(ctx context.Context, bodyLen, queryLen int) (*endpoints, error) {
	svc, stopSvc := r.live, func() {}
	if svc == nil || r.opt.RedisLookups {
		var err error
		svc, stopSvc, err = r.startService(ctx, r.cfg, service.Options{InstanceID: "bench-api", NoNormalizer: true, NoFolder: true, NoReconciler: true})
		if err != nil {
			return nil, err
		}
	}
	if svc.LookupCache() == nil && !r.saidUncached {
		r.saidUncached = true
		why := "turned off"
		if r.cfg.Redis.LookupCache {
			why = fmt.Sprintf("Redis tracks keys for database 0 only, and the run uses database %d", r.cfg.Redis.DB)
		}
		r.progress("lookup cache off (%s): the API's lookups read Redis", why)
	}
	// The ceiling: the API's server, with its middleware (tracing, metrics,
	// recovery, limits), answering a constant body of the same size: the
	// same chain minus the read. A POST still receives its body.
	body := bytes.Repeat([]byte("x"), bodyLen)
	queryBody := bytes.Repeat([]byte("x"), max(queryLen, bodyLen))
	bare := api.New(api.Config{Addr: "127.0.0.1:0", Logger: r.log})
	bare.Echo().GET("/v1/availability/:sku", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/json", body) })
	bare.Echo().POST("/v1/availability/query", func(c echo.Context) error {
		if _, err := io.Copy(io.Discard, c.Request().Body); err != nil {
			return err
		}
		return c.Blob(http.StatusOK, "application/json", queryBody)
	})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	r.background(&wg, "bare server", func() error { return bare.Run(ctx) })
	stop := func() {
		cancel()
		wg.Wait()
		stopSvc()
	}
	for deadline := time.Now().Add(10 * time.Second); bare.Addr() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("the bare server did not start listening")
		}
	}
	time.Sleep(200 * time.Millisecond) // the hold decision subscription
	return &endpoints{api: "http://" + svc.Addr(), bare: "http://" + bare.Addr().String(), cache: svc.LookupCache(), reg: svc.Registry(), stop: stop}, nil
}

var locations = []string{"DC-EAST", "DC-WEST", "DC-CENTRAL", "STORE-NYC", "STORE-SFO"}

// Lookups loads GET availability and 50-line batch queries over random keys
// of the ingested ledger, beside a bare handler in the same run. The
// API reads through the lookup cache.
func (r *Run) Lookups(ctx context.Context) error {
	rnd := r.lookupKey
	query := func(base string) Request {
		return func(i int) (*http.Request, error) {
			var b strings.Builder
			b.WriteString(`{"lines":[`)
			for j := 0; j < 50; j++ {
				if j > 0 {
					b.WriteByte(',')
				}
				s, l := rnd(i*50 + j)
				fmt.Fprintf(&b, `{"sku":%q,"location":%q,"quantity":3}`, s, l)
			}
			b.WriteString(`]}`)
			req, err := http.NewRequest(http.MethodPost, base+"/v1/availability/query", strings.NewReader(b.String()))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
			return req, err
		}
	}
	sku, loc := rnd(0)
	sample, err := getBody(ctx, r, sku, loc)
	if err != nil {
		return err
	}
	// The bare handler answers bodies as long as the API's: a lookup's, and
	// a 50-line query's.
	probe, err := query("")(0)
	if err != nil {
		return err
	}
	answer := r.probe(probe)
	ep, err := r.servers(ctx, len(sample), len(answer))
	if err != nil {
		return err
	}
	defer ep.stop()
	get := func(base string) Request { return r.lookupRequest(base, 0) }
	d := r.opt.Duration
	r.progress("lookups: closed loop, 64 connections, %v each", d)
	bare := Closed(ctx, 64, d, get(ep.bare))
	c0 := ep.cacheStats()
	sf := Closed(ctx, 64, d, get(ep.api))
	r.rows = append(r.rows, Row{"GET availability, 64 connections (closed loop)",
		fmt.Sprintf("%.0f req/s, p50 %s p99 %s p99.9 %s", sf.RPS(), ms(sf.P50), ms(sf.P99), ms(sf.P999)),
		fmt.Sprintf("bare handler %.0f req/s, p99 %s", bare.RPS(), ms(bare.P99)), sf.RPS() / bare.RPS(),
		fmt.Sprintf("%d errors; %s", sf.Errors, describeCache(ep.cache, c0, ep.cacheStats()))})

	rate, probes := r.openRate(ctx, get(ep.bare))
	r.progress("lookups: open loop at %.0f req/s, %v each", rate, d)
	bareO := Open(ctx, rate, d, 512, get(ep.bare))
	c0 = ep.cacheStats()
	sfO := Open(ctx, rate, d, 512, get(ep.api))
	r.rows = append(r.rows, Row{fmt.Sprintf("GET availability at a constant %.0f req/s (open loop)", rate),
		fmt.Sprintf("p50 %s p99 %s p99.9 %s", ms(sfO.P50), ms(sfO.P99), ms(sfO.P999)),
		fmt.Sprintf("bare handler p50 %s p99 %s p99.9 %s", ms(bareO.P50), ms(bareO.P99), ms(bareO.P999)), 0,
		fmt.Sprintf("%d of %d answered; %s; %s", sfO.Requests, sfO.Requests+sfO.Errors, probes,
			describeCache(ep.cache, c0, ep.cacheStats()))})

	r.progress("batch queries of 50 lines: closed loop, 16 connections")
	c0 = ep.cacheStats()
	qs := Closed(ctx, 16, d, query(ep.api))
	c1 := ep.cacheStats()
	qb := Closed(ctx, 16, d, query(ep.bare))
	r.rows = append(r.rows, Row{"POST availability/query, 50 lines, 16 connections",
		fmt.Sprintf("%.0f req/s (%.0f lines/s), p50 %s p99 %s", qs.RPS(), 50*qs.RPS(), ms(qs.P50), ms(qs.P99)),
		fmt.Sprintf("bare handler %.0f req/s", qb.RPS()), qs.RPS() / qb.RPS(),
		fmt.Sprintf("the bare handler: the server and its middleware, reading the body and answering a constant one as long as the API's; %d errors; %s", qs.Errors, describeCache(ep.cache, c0, c1))})
	return nil
}

// lookupKey is the i-th position a lookup run reads: a random SKU of the
// catalogue at a random location.
func (r *Run) lookupKey(i int) (sku, location string) {
	x := rand.New(rand.NewPCG(uint64(i), 7))
	return sim.SKU(x.IntN(r.opt.SKUs)), locations[x.IntN(len(locations))]
}

// lookupRequest makes GET availability of position i+offset.
func (r *Run) lookupRequest(base string, offset int) Request {
	return func(i int) (*http.Request, error) {
		s, l := r.lookupKey(i + offset)
		return http.NewRequest(http.MethodGet, base+"/v1/availability/"+s+"?location="+l, nil)
	}
}

// The open-loop lookup run goes at Options.LookupRPS, or at the highest rate
// at which the bare handler keeps its p99 under openP99 on this machine if
// that is lower: found by short runs of the bare handler, stepping the rate
// down by openStep at most openSteps times.
const (
	openP99   = 5 * time.Millisecond
	openStep  = 0.8
	openSteps = 5
	openProbe = 3 * time.Second
)

// openRate chooses the open-loop rate, and says how in a few words.
func (r *Run) openRate(ctx context.Context, bare Request) (float64, string) {
	rate := r.opt.LookupRPS
	probe := min(openProbe, r.opt.Duration)
	var tried []string
	for step := 0; ; step++ {
		r.progress("lookups: bare handler at %.0f req/s for %v (open loop), for a p99 under %v", rate, probe, openP99)
		l := Open(ctx, rate, probe, 512, bare)
		tried = append(tried, fmt.Sprintf("%.0f/s p99 %s", rate, ms(l.P99)))
		if l.P99 < openP99 {
			if step == 0 {
				return rate, fmt.Sprintf("the bare handler's p99 at %.0f req/s in a %v probe: %s", rate, probe, ms(l.P99))
			}
			return rate, fmt.Sprintf("rate stepped down from %.0f req/s, where the bare handler's p99 was %s or more in %v probes (%s)",
				r.opt.LookupRPS, ms(openP99), probe, strings.Join(tried, ", "))
		}
		if step == openSteps || ctx.Err() != nil {
			return rate, fmt.Sprintf("the bare handler's p99 stayed at %s or more down to this rate in %v probes (%s)",
				ms(openP99), probe, strings.Join(tried, ", "))
		}
		rate *= openStep
	}
}

// describeCache says what the lookup cache did between two readings.
func describeCache(c *store.Cache, a, b store.CacheStats) string {
	if c == nil {
		return "lookup cache off"
	}
	hits, misses := b.Hits-a.Hits, b.Misses-a.Misses
	ratio := 0.0
	if hits+misses > 0 {
		ratio = float64(hits) / float64(hits+misses)
	}
	return fmt.Sprintf("lookup cache hit ratio %.3f (%d hits, %d misses), %d invalidations, %d evictions",
		ratio, hits, misses, b.Invalidations-a.Invalidations, b.Evictions-a.Evictions)
}

func getBody(ctx context.Context, r *Run, sku, loc string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/v1/availability/"+sku+"?location="+loc, nil)
	return r.probe(req), nil
}

// probe is the API's answer to req, served in process.
func (r *Run) probe(req *http.Request) []byte {
	p := r.cfg.API.Parsed
	s := api.New(api.Config{Addr: "127.0.0.1:0"})
	api.NewCheckout(api.CheckoutConfig{Store: r.store, Groups: p.Groups, Rules: p.ChannelRules, Supply: p.Supply, InstanceID: "probe"}).Register(s)
	rec := &bodyRecorder{h: http.Header{}}
	s.Echo().ServeHTTP(rec, req)
	return rec.b.Bytes()
}

type bodyRecorder struct {
	h http.Header
	b bytes.Buffer
}

func (w *bodyRecorder) Header() http.Header         { return w.h }
func (w *bodyRecorder) Write(p []byte) (int, error) { return w.b.Write(p) }
func (w *bodyRecorder) WriteHeader(int)             {}

// Holds measures the checkout path under simulated warehouse ingest: for
// each rate of Options.HoldIngestRates (source events/s; 0: none), with that
// stream flowing, POST holds at a constant Options.HoldRPS beside the
// broker's produce→consume round trip and the freshness of receipts, all
// three at once, then GET availability beside the bare handler. It prints
// one row per rate for each of the three, grouped by kind.
func (r *Run) Holds(ctx context.Context) error {
	if err := r.running(ctx); err != nil {
		return err
	}
	sku, loc := r.lookupKey(0)
	sample, err := getBody(ctx, r, sku, loc)
	if err != nil {
		return err
	}
	ep, err := r.servers(ctx, len(sample), len(sample))
	if err != nil {
		return err
	}
	defer ep.stop()
	// The warehouses' producer: the simulator's records do not queue in the
	// clients that time the round trip and the receipts.
	wh, err := kgo.NewClient(kafka.ClientOpts(r.cfg.Kafka, kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(0))...)
	if err != nil {
		return err
	}
	defer wh.Close()
	var holds, fresh, lookups []Row
	defer func() { r.rows = slices.Concat(r.rows, holds, fresh, lookups) }()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i, ingest := range r.opt.HoldIngestRates {
		res, err := r.underIngest(ctx, ep, wh, run, i, ingest)
		if err != nil {
			return err
		}
		holds, fresh, lookups = append(holds, res.holds), append(fresh, res.fresh), append(lookups, res.lookups)
	}
	return nil
}

const (
	// ingestWarmUp runs the stream before anything is measured.
	ingestWarmUp = 2 * time.Second
	// ingestFreshRPS is the rate of the receipts timed for freshness under
	// ingest: a few hundred per row, on top of the stream.
	ingestFreshRPS = 50
	// rttEvery paces the round trips timed under ingest: about a thousand
	// in a 10 s run, and little load of their own.
	rttEvery = 10 * time.Millisecond
	// lagDrain bounds the wait for the pipeline to catch up between rows.
	lagDrain = 2 * time.Minute
)

// ingestRows are the rows of one ingest rate.
type ingestRows struct{ holds, fresh, lookups Row }

// underIngest measures one ingest rate: the stream starts and flows for
// ingestWarmUp; then for Options.Duration, holds at Options.HoldRPS (open
// loop), paced round trips and receipts for fresh SKUs at ingestFreshRPS;
// then GET availability with 64 connections, half the duration against the
// bare handler and half against the API; then the stream stops.
func (r *Run) underIngest(ctx context.Context, ep *endpoints, wh *kgo.Client, run string, row int, ingest float64) (ingestRows, error) {
	d := r.opt.Duration
	groups := []string{r.cfg.Kafka.NormalizerGroup, r.cfg.Kafka.FolderGroup}
	var notes []string
	if !r.lagZero(ctx, lagDrain, groups...) {
		notes = append(notes, fmt.Sprintf("the pipeline still had %d records of lag when the row started", r.lagTotal(ctx, groups...)))
	}
	under := "with no ingest"
	stopIngest := func() (int, time.Duration) { return 0, 0 }
	if ingest > 0 {
		under = fmt.Sprintf("under %s source events/s", thousands(ingest))
		stopIngest = r.startIngest(ctx, wh, row, ingest)
		defer stopIngest()
		r.progress("holds %s: warming up for %v", under, ingestWarmUp)
		select {
		case <-ctx.Done():
			return ingestRows{}, ctx.Err()
		case <-time.After(ingestWarmUp):
		}
	}

	// The round trips and the receipts start as the holds do, and run
	// alongside them.
	freshc := r.startFresh(ctx, d, run+"-"+strconv.Itoa(row))
	holds, err := r.holdsBesideRoundTrips(ctx, ep, d, run+"-"+strconv.Itoa(row), under)
	if err != nil {
		<-freshc
		return ingestRows{}, err
	}
	lag := r.lagTotal(ctx, groups...)
	look := r.lookupsUnderIngest(ctx, ep, d, row, under)

	produced, took := stopIngest()
	fr := <-freshc
	if fr.err != nil {
		return ingestRows{}, fmt.Errorf("freshness: %w", fr.err)
	}
	// No position may hold more than it had: on hand covers reserved,
	// picked, held and safety stock wherever a hold was accepted.
	over, err := r.oversold(ctx)
	if err != nil {
		return ingestRows{}, err
	}

	if ingest > 0 {
		under += fmt.Sprintf(" (%s/s achieved)", thousands(float64(produced)/took.Seconds()))
	}
	extra := ""
	if len(notes) > 0 {
		extra = "; " + strings.Join(notes, "; ")
	}
	rtt := fmt.Sprintf("broker produce+consume round trip, same ingest, at once: p50 %s p99 %s (%d trips)", ms(holds.rtt.P50), ms(holds.rtt.P99), holds.rtt.Requests)
	return ingestRows{
		holds:   r.holdsRow(holds, under, rtt, over, lag, extra),
		fresh:   freshRow(fr, holds.rtt, under, rtt, extra),
		lookups: lookupsRow(look, ep.cache, d, under, extra),
	}, nil
}

// startIngest starts the warehouses' stream at ingest source events/s, the
// generator seeded by row. The stop it returns ends the stream and says
// how many records it produced in how long; it may be called more than
// once.
func (r *Run) startIngest(ctx context.Context, wh *kgo.Client, row int, ingest float64) (stop func() (int, time.Duration)) {
	sctx, cancel := context.WithCancel(ctx)
	produced := make(chan int, 1)
	start := time.Now()
	go func() {
		gen := sim.NewGenerator(uint64(2+row), sim.Catalogue{SKUs: r.opt.SKUs}, r.cfg.Topics, nil)
		st, err := sim.New(sim.Config{Rate: ingest, SkipCatalog: true}, gen, r.codec, wh, r.log).Run(sctx)
		if err != nil && sctx.Err() == nil {
			r.progress("  simulator: %v", err)
		}
		produced <- st.Produced
	}()
	var once sync.Once
	var n int
	var took time.Duration
	return func() (int, time.Duration) {
		once.Do(func() { took = time.Since(start); cancel(); n = <-produced })
		return n, took
	}
}

// freshResult is what the receipts timed for freshness came to.
type freshResult struct {
	lat  Latencies
	sent int
	err  error
}

// startFresh times receipts for fresh SKUs at ingestFreshRPS for d in the
// background, tagged tag; their result comes on the channel.
func (r *Run) startFresh(ctx context.Context, d time.Duration, tag string) <-chan freshResult {
	freshc := make(chan freshResult, 1)
	go func() {
		lat, sent, err := r.fresh(ctx, ingestFreshRPS, d, tag)
		freshc <- freshResult{lat, sent, err}
	}()
	return freshc
}

// holdsTimed are the holds of one ingest rate, timed beside the broker's
// round trip.
type holdsTimed struct {
	lat Latencies
	// before and after are the API's hold decisions around the holds.
	before, after holdCounts
	rtt           Latencies
}

// holdsBesideRoundTrips posts holds at Options.HoldRPS for d, the hold ids
// tagged tag, while round trips run every rttEvery.
func (r *Run) holdsBesideRoundTrips(ctx context.Context, ep *endpoints, d time.Duration, tag, under string) (holdsTimed, error) {
	type rttResult struct {
		lat Latencies
		err error
	}
	rttc := make(chan rttResult, 1)
	go func() {
		lat, err := r.roundTrip(ctx, int(d/rttEvery), rttEvery)
		rttc <- rttResult{lat, err}
	}()
	r.progress("holds %s: %.0f holds/s for %v, with round trips every %v and %d receipts/s", under, r.opt.HoldRPS, d, rttEvery, ingestFreshRPS)
	var h holdsTimed
	h.before = ep.holdOutcomes()
	h.lat = Open(ctx, r.opt.HoldRPS, d, 256, r.holdRequest(ep.api, tag))
	h.after = ep.holdOutcomes()
	rt := <-rttc
	if rt.err != nil {
		return holdsTimed{}, fmt.Errorf("round trip: %w", rt.err)
	}
	h.rtt = rt.lat
	return h, nil
}

// lookupsTimed is GET availability of one ingest rate.
type lookupsTimed struct {
	bare, api Latencies
	// before and after are the lookup cache's counters around the API's run.
	before, after store.CacheStats
}

// lookupsUnderIngest loads GET availability with 64 connections, d/2
// against the bare handler, then d/2 against the API, the positions offset
// by row.
func (r *Run) lookupsUnderIngest(ctx context.Context, ep *endpoints, d time.Duration, row int, under string) lookupsTimed {
	r.progress("holds %s: GET availability, 64 connections, %v against the bare handler, then %v against the API", under, d/2, d/2)
	var l lookupsTimed
	l.bare = Closed(ctx, 64, d/2, r.lookupRequest(ep.bare, row<<24))
	l.before = ep.cacheStats()
	l.api = Closed(ctx, 64, d/2, r.lookupRequest(ep.api, row<<24))
	l.after = ep.cacheStats()
	return l
}

// holdsRow is the holds' row of an ingest rate, beside the round trip
// (rtt describes it).
func (r *Run) holdsRow(h holdsTimed, under, rtt string, over int, lag int64, extra string) Row {
	hl, o0, o1 := h.lat, h.before, h.after
	timeouts := int(o1.timeout - o0.timeout)
	return Row{fmt.Sprintf("POST holds at %.0f/s %s", r.opt.HoldRPS, under),
		fmt.Sprintf("p50 %s p99 %s p99.9 %s", ms(hl.P50), ms(hl.P99), ms(hl.P999)),
		rtt, ratio(hl.P99, h.rtt.P99),
		fmt.Sprintf("ratio: hold p99 / round-trip p99 (aim ≤ 5); %d answered (%d held, %d rejected), %d timeouts (503), %d other errors; oversold positions: %d; pipeline lag after the holds: %d records%s",
			hl.Requests, int(o1.held-o0.held), int(o1.rejected-o0.rejected), timeouts, max(0, hl.Errors-timeouts), over, lag, extra)}
}

// freshRow is the receipts' freshness row of an ingest rate, beside the
// round trip (rt; rtt describes it).
func freshRow(fr freshResult, rt Latencies, under, rtt, extra string) Row {
	return Row{fmt.Sprintf("freshness of %d receipts/s %s: produce to first AvailabilityChanged (read_committed)", ingestFreshRPS, under),
		fmt.Sprintf("p50 %s p99 %s", ms(fr.lat.P50), ms(fr.lat.P99)),
		rtt, ratio(fr.lat.P99, rt.P99),
		fmt.Sprintf("ratio: p99 / round-trip p99; aim p99 ≤ 50 ms at 2,000 events/s, ≤ 100 ms at 5,000; %d of %d seen%s", fr.lat.Requests, fr.sent, extra)}
}

// lookupsRow is the GET availability row of an ingest rate, each side
// loaded for d/2.
func lookupsRow(l lookupsTimed, cache *store.Cache, d time.Duration, under, extra string) Row {
	look, bare := l.api, l.bare
	return Row{fmt.Sprintf("GET availability, 64 connections (closed loop), %s", under),
		fmt.Sprintf("%.0f req/s, p50 %s p99 %s p99.9 %s", look.RPS(), ms(look.P50), ms(look.P99), ms(look.P999)),
		fmt.Sprintf("bare handler, same ingest: %.0f req/s, p99 %s", bare.RPS(), ms(bare.P99)), look.RPS() / bare.RPS(),
		fmt.Sprintf("aim ≥ 0.6 with no ingest, ≥ 0.5 at 5,000 events/s; %v each; %d errors; %s%s", d/2, look.Errors, describeCache(cache, l.before, l.after), extra)}
}

// holdRequest makes the i-th hold of a run: one unit of a random position,
// under a hold_id of its own.
func (r *Run) holdRequest(base, run string) Request {
	return func(i int) (*http.Request, error) {
		x := rand.New(rand.NewPCG(uint64(i), 11))
		body := fmt.Sprintf(`{"hold_id":"b%s-%d","ttl_seconds":600,"lines":[{"sku":%q,"location":%q,"quantity":1}]}`,
			run, i, sim.SKU(x.IntN(r.opt.SKUs)), locations[x.IntN(len(locations))])
		req, err := http.NewRequest(http.MethodPost, base+"/v1/holds", strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}
}

// lagTotal is the groups' lag now, or -1 when it cannot be read.
func (r *Run) lagTotal(ctx context.Context, groups ...string) int64 {
	lags, err := r.adm.Lag(ctx, groups...)
	if err != nil {
		return -1
	}
	var total int64
	lags.Each(func(l kadm.DescribedGroupLag) { total += l.Lag.Total() })
	return total
}

// ratio is a/b, 0 (printed as —) when b is 0.
func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// thousands prints v rounded, with thousands separated by commas.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func (r *Run) oversold(ctx context.Context) (int, error) {
	over := 0
	for i := 0; i < r.opt.SKUs; i++ {
		_, _, holds, err := r.store.Lines(ctx, sim.SKU(i))
		if err != nil {
			return 0, err
		}
		for _, h := range holds {
			if h.Status == "held" && h.ATP < 0 {
				over++
			}
		}
	}
	return over, nil
}

// roundTrip times n records, each produced to the broker and consumed back,
// one at a time, starting one at most every every (0: back to back).
func (r *Run) roundTrip(ctx context.Context, n int, every time.Duration) (Latencies, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n)*every+time.Minute)
	defer cancel()
	topic := r.cfg.Topics.Alerts // any topic of the run; read from its end
	cons, err := kgo.NewClient(r.opts(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		return Latencies{}, err
	}
	defer cons.Close()
	pollFor(ctx, cons, time.Second) // join at the end
	var ds []time.Duration
	start := time.Now()
	for i := 0; i < n; i++ {
		if w := time.Until(start.Add(time.Duration(i) * every)); w > 0 {
			time.Sleep(w)
		}
		t0 := time.Now()
		want := strconv.Itoa(i)
		if err := r.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("rtt"), Value: []byte(want)}).FirstErr(); err != nil {
			return Latencies{}, err
		}
		for got := false; !got; {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				return Latencies{}, ctx.Err()
			}
			fs.EachRecord(func(rec *kgo.Record) {
				if string(rec.Key) == "rtt" && string(rec.Value) == want {
					got = true
				}
			})
		}
		ds = append(ds, time.Since(t0))
	}
	return summarise(ds, 0, time.Since(start)), nil
}

// pollFor polls once, for at most d.
func pollFor(ctx context.Context, cl *kgo.Client, d time.Duration) kgo.Fetches {
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return cl.PollFetches(c)
}

// Freshness produces receipts at a constant rate and measures, for each,
// the time from produce to its AvailabilityChanged on the output topic.
func (r *Run) Freshness(ctx context.Context) error {
	if err := r.running(ctx); err != nil {
		return err
	}
	lat, n, err := r.fresh(ctx, r.opt.FreshRPS, r.opt.Duration, strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		return err
	}
	rtt, err := r.roundTrip(ctx, 300, 0)
	if err != nil {
		return err
	}
	r.rows = append(r.rows, Row{fmt.Sprintf("freshness at %.0f events/s: produce to AvailabilityChanged", r.opt.FreshRPS),
		fmt.Sprintf("p50 %s p99 %s", ms(lat.P50), ms(lat.P99)),
		fmt.Sprintf("produce+consume round trip p50 %s p99 %s", ms(rtt.P50), ms(rtt.P99)), 0,
		fmt.Sprintf("p99 is %.1f× the round trip's; %d of %d seen", ratio(lat.P99, rtt.P99), lat.Requests, n)})
	return nil
}

// fresh produces receipts at rate for d, each for a SKU of its own
// (FRESH-tag-i at L1), and times each from its produce to the first
// AvailabilityChanged record of its SKU on the availability topic, read
// read_committed. It returns the times of those seen within 30 s of the
// last produce, and how many it produced.
func (r *Run) fresh(ctx context.Context, rate float64, d time.Duration, tag string) (Latencies, int, error) {
	cons, err := kgo.NewClient(r.opts(kgo.ConsumeTopics(r.cfg.Topics.Availability),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		return Latencies{}, 0, err
	}
	defer cons.Close()
	pollFor(ctx, cons, time.Second) // join at the end
	prefix := "FRESH-" + tag + "-"
	n := int(rate * d.Seconds())
	sent := make([]time.Time, n)
	seen := make([]bool, n)
	var mu sync.Mutex
	var ds []time.Duration
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	defer func() { stop(); <-done }()
	go func() {
		defer close(done)
		deadline := time.Now().Add(d + 30*time.Second)
		for len(ds) < n && time.Now().Before(deadline) && pctx.Err() == nil {
			fs := pollFor(pctx, cons, time.Second)
			now := time.Now()
			fs.EachRecord(func(rec *kgo.Record) {
				key, ok := strings.CutPrefix(string(rec.Key), prefix)
				if !ok {
					return
				}
				i, err := strconv.Atoi(strings.TrimSuffix(key, "|L1"))
				if err != nil || i < 0 || i >= n {
					return
				}
				mu.Lock()
				if !sent[i].IsZero() && !seen[i] {
					seen[i] = true
					ds = append(ds, now.Sub(sent[i]))
				}
				mu.Unlock()
			})
		}
	}()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		sku := prefix + strconv.Itoa(i)
		ev := &events.InventoryReceived{Meta: events.Meta{EventID: "fresh-" + tag + "-" + strconv.Itoa(i), EventTime: time.Now().UTC(), Source: "bench"},
			SKU: sku, Location: "L1", Quantity: 5, UoM: "EA"}
		b, err := r.codec.Encode(ctx, r.cfg.Topics.Inventory, ev)
		if err != nil {
			return Latencies{}, 0, err
		}
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		r.cl.Produce(ctx, &kgo.Record{Topic: r.cfg.Topics.Inventory, Key: []byte(sku), Value: b}, nil)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	return summarise(ds, n-len(ds), time.Since(start)), n, nil
}

// Rebuild deletes the run's Redis keys and folds the whole ledger log again
// from offset 0.
func (r *Run) Rebuild(ctx context.Context) error {
	r.stopService() // it would take the deletion for Redis going back in time
	if _, err := r.deleteKeys(ctx, ledger.NewKeys(r.cfg.Redis.KeyPrefix).All()); err != nil {
		return err
	}
	// A folder alone, its own consumer group folding the log from offset
	// 0; its hold desks stay off, the live service's having decided the
	// holds.
	cfg := r.cfg
	cfg.Kafka.FolderGroup += ".rebuild"
	start := time.Now()
	m := r.startCPU(ctx)
	_, stop, err := r.startService(ctx, cfg, service.Options{InstanceID: "bench-rebuild", NoNormalizer: true, NoReconciler: true, NoHoldDesks: true})
	if err != nil {
		return err
	}
	ok := r.lagZero(ctx, 30*time.Minute, cfg.Kafka.FolderGroup)
	elapsed := time.Since(start)
	cpu, redisCPU := r.used(ctx, m)
	stop()
	if !ok {
		return fmt.Errorf("rebuild did not finish")
	}
	entries, err := r.ledgerEntries(ctx, r.cfg.Topics.Ledger)
	if err != nil {
		return err
	}
	n := int64(entries)
	r.rows = append(r.rows, Row{"rebuild: the run's Redis keys deleted, ledger folded from offset 0",
		fmt.Sprintf("%.0f entries/s (%d entries, %.1fs); CPU µs per entry: Stockflow %s, Redis %s",
			float64(entries)/elapsed.Seconds(), entries, elapsed.Seconds(), perUnit(cpu, n), perUnit(redisCPU, n)),
		"—", 0, "aim ≥ 100,000 entries/s; " + r.verify(ctx, r.cfg)})
	return nil
}

// Memory reports Redis memory per SKU+location position after the rebuild.
func (r *Run) Memory(ctx context.Context) error {
	var positions, bare int64
	var sampled int64
	for i := 0; i < r.opt.SKUs; i++ {
		sku := sim.SKU(i)
		locs, err := r.store.Locations(ctx, sku)
		if err != nil {
			return err
		}
		positions += int64(len(locs))
		if i%20 == 0 {
			for _, l := range locs {
				n, err := r.store.PositionMemory(ctx, sku, l)
				if err == nil {
					bare += n
					sampled++
				}
			}
		}
	}
	var all int64
	var keys int64
	iter := r.store.SKUKeys(ctx, "SKU-")
	for iter.Next(ctx) {
		keys++
		if keys%10 == 0 {
			n, err := r.rdb.MemoryUsage(ctx, iter.Val()).Result()
			if err == nil {
				all += 10 * n
			}
		}
	}
	if positions == 0 || sampled == 0 {
		return fmt.Errorf("no positions to measure")
	}
	r.rows = append(r.rows, Row{"Redis memory per position",
		fmt.Sprintf("%d bytes per bare position hash; %d bytes per position with its lines, holds, journal, dedupe ids and lineage",
			bare/sampled, all/positions), "—", 0, fmt.Sprintf("%d positions, MEMORY USAGE sampled", positions)})
	return nil
}

// opts are the options of a client of the bench's own: the connection
// to the brokers (kafka.Conn), then extra.
func (r *Run) opts(extra ...kgo.Opt) []kgo.Opt {
	return append(kafka.Conn(r.cfg.Kafka), extra...)
}
