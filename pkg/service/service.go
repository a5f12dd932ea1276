// Package service wires a Stockflow process together: the stores (real or
// embedded), topics, the HTTP server and, on request, the simulator.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/processors"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/api"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/console"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/reconcile"
	"github.com/stockflow/stockflow/pkg/sim"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/telemetry"
)

// Options are the serve settings that only apply to this command.
type Options struct {
	// EmbeddedKafkaPort and EmbeddedRedisAddr are where the in-process
	// stores listen in embedded mode, so `stockflow simulate` and redis-cli
	// can reach them. Defaults 19092 and 127.0.0.1:16379; a negative port
	// (or :0) picks a free one.
	EmbeddedKafkaPort int
	EmbeddedRedisAddr string
	// SimulateRate > 0 runs the simulator in-process at that many events/s.
	SimulateRate float64
	SimulateSeed uint64
	SimulateSKUs int
	// TopicsTimeout bounds the wait for Kafka and topic creation at start.
	TopicsTimeout time.Duration
	// InstanceID names this process in transactional ids and as a static
	// member of the consumer groups; default host-pid.
	InstanceID string
	// Folder and Normalizer pass through test hooks and tuning.
	Folder     processors.FolderConfig
	Normalizer processors.NormalizerConfig
	// Version is reported in traces.
	Version string
	// NoNormalizer, NoFolder and NoReconciler leave a stage out of this
	// process, to scale the stages apart.
	NoNormalizer, NoFolder, NoReconciler bool
}

func (o *Options) setDefaults() {
	if o.EmbeddedKafkaPort == 0 {
		o.EmbeddedKafkaPort = 19092
	}
	if o.EmbeddedKafkaPort < 0 { // any free port
		o.EmbeddedKafkaPort = 0
	}
	if o.EmbeddedRedisAddr == "" {
		o.EmbeddedRedisAddr = "127.0.0.1:16379"
	}
	if o.TopicsTimeout <= 0 {
		o.TopicsTimeout = 2 * time.Minute
	}
	if o.InstanceID == "" {
		host, _ := os.Hostname()
		o.InstanceID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
}

// Serve runs the service until ctx ends.
func Serve(ctx context.Context, cfg config.Config, opts Options, log *slog.Logger) error {
	opts.setDefaults()
	if cfg.Embedded {
		cluster, err := kafka.StartEmbedded(opts.EmbeddedKafkaPort, int32(cfg.Kafka.Partitions))
		if err != nil {
			return err
		}
		defer cluster.Close()
		mr, err := store.StartEmbedded(opts.EmbeddedRedisAddr)
		if err != nil {
			return err
		}
		defer mr.Close()
		cfg.Kafka.Brokers = cluster.ListenAddrs()
		cfg.Redis.Addr = mr.Addr()
		cfg.Redis.LookupCache = false // the in-process Redis does not track keys
		log.Warn("EMBEDDED MODE: in-process Kafka (kfake) and Redis (miniredis); data is lost on exit. Set -kafka-brokers and -redis-addr for real infrastructure.",
			"kafka", cfg.Kafka.Brokers, "redis", cfg.Redis.Addr)
	}

	tp, shutdownTracing, err := telemetry.NewTracerProvider(ctx, telemetry.TraceConfig{
		Endpoint: cfg.OTLPEndpoint, SampleRatio: cfg.TraceSampleRatio, Version: opts.Version, InstanceID: opts.InstanceID,
	})
	if err != nil {
		return err
	}
	defer func() {
		// Flush the last spans, bounded: the collector may be gone.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}()
	if cfg.OTLPEndpoint != "" {
		log.Info("tracing to OTLP", "endpoint", cfg.OTLPEndpoint, "sample_ratio", cfg.TraceSampleRatio)
	}

	codec, err := events.OpenCodec(cfg.SchemaRegistry, cfg.MaxRecordBytes)
	if err != nil {
		return err
	}
	if cfg.SchemaRegistry != "" {
		if err := registerSchemas(ctx, codec, cfg.Topics); err != nil {
			return err
		}
		log.Info("schema registry: every record written and read goes by its ids", "url", avro.Redact(cfg.SchemaRegistry))
	}
	traceOpt, _ := kafka.Tracing(tp, cfg.Kafka.ClientID, "")
	// No linger: outputs go to the broker at once; records still batch
	// while a request is in flight.
	kcl, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka, traceOpt, kgo.ProducerLinger(0))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	store.Logger(log)
	rdb := store.Open(cfg.Redis)
	defer closeLogged(log, "redis client", rdb)
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tp)); err != nil {
		return fmt.Errorf("redis tracing: %w", err)
	}
	if !cfg.Embedded {
		// Wrong credentials or TLS settings never heal: stop now, naming
		// the connection, rather than serve a /readyz that fails forever.
		// Redis or Kafka merely down is left to readiness.
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := store.Ping(pctx, rdb)
		cancel()
		switch {
		case store.Misconfigured(err):
			return err
		case err != nil:
			log.Warn("redis not answering at start; going on, /readyz says so until it does", "err", err)
		}
		log.Info("kafka connection", "brokers", cfg.Kafka.Brokers, "tls", cfg.Kafka.UsesTLS(), "sasl_mechanism", cfg.Kafka.Mechanism())
		pctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		err = kafka.Ping(pctx, kcl, cfg.Kafka)
		cancel()
		switch {
		case kafka.Misconfigured(err):
			return err
		case err != nil:
			log.Warn("kafka not answering at start; going on, /readyz says so until it does", "err", err)
		}
	}
	led := ledger.New(rdb, ledger.Config{KeyPrefix: cfg.Redis.KeyPrefix})
	switch err := led.CheckLayout(ctx, cfg.Topics.Ledger); {
	case errors.Is(err, ledger.ErrKeyLayout):
		return fmt.Errorf("%w: empty the Redis database (or choose another -redis-key-prefix) and start again; the ledger is rebuilt from the ledger topic", err)
	case err != nil:
		log.Warn("could not check the ledger's key layout in Redis; going on", "err", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cache := store.OpenCache(cfg.Redis)
	switch {
	case cache != nil:
		defer closeLogged(log, "lookup cache", cache)
		led.UseCache(cache)
		cache.Register(reg)
		log.Info("lookup cache on", "entries", cfg.Redis.LookupCacheEntries, "max_age", cfg.Redis.LookupCacheMaxAge)
	case cfg.Embedded:
		log.Info("lookup cache off: the in-process Redis cannot send invalidations")
	case cfg.Redis.Cluster() && cfg.Redis.LookupCache:
		log.Info("lookup cache off: it is not built for a Redis Cluster; lookups read Redis")
	case cfg.Redis.LookupCache:
		log.Warn("lookup cache off: Redis tracks keys for database 0 only; lookups read Redis", "redis_db", cfg.Redis.DB)
	}
	metrics := processors.NewMetrics(reg)
	lag := newLagWatcher(adm, cfg.Kafka.NormalizerGroup, cfg.Kafka.FolderGroup, cfg.Topics.Ledger, led.AppliedOffsets, reg, log.With("component", "lag"))

	var topicsReady atomic.Bool
	// Validated with the rest of the configuration; parsed here for use.
	proxies, _ := config.ParseTrustedProxies(cfg.API.TrustedProxies)
	srv := api.New(api.Config{
		Addr: cfg.HTTPAddr,
		Checks: []api.Check{
			{Name: "kafka", Fn: func(ctx context.Context) error { return kafka.Ping(ctx, kcl, cfg.Kafka) }},
			{Name: "redis", Fn: func(ctx context.Context) error { return store.Ping(ctx, rdb) }},
			{Name: "topics", Fn: func(context.Context) error {
				if !topicsReady.Load() {
					return errors.New("topics not yet verified")
				}
				return nil
			}},
			{Name: "fold_lag", Fn: lag.check(int64(cfg.ReadyMaxLag))},
		},
		Grace:          cfg.ShutdownGrace,
		Registry:       reg,
		Logger:         log,
		TracerProvider: tp,
		TrustedProxies: proxies,
	})

	groups, _ := config.ParseGroups(cfg.API.Groups)
	rules, _ := atp.ParseChannelRules(cfg.API.ChannelRules)
	supply, _ := config.ParseSupplyPolicy(cfg.API.SupplyPolicy)
	keys, _ := config.ParseAPIKeys(cfg.API.Keys)
	console.WarnIfExposed(log, cfg.HTTPAddr, keys)
	// The API produces hold and policy entries through a client of its own,
	// so a hold never queues behind the folder's outputs.
	hcl, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka, traceOpt, kgo.ProducerLinger(0))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer hcl.Close()
	catalog, err := processors.NewCatalog(kafka.ClientOpts(cfg.Kafka), cfg.Topics.Catalog, codec, log.With("component", "catalog"))
	if err != nil {
		return err
	}
	tolerances, _ := config.ParseTolerances(cfg.Reconcile.Tolerance)
	rec := reconcile.New(reconcile.Config{
		Ledger: led, Runs: reconcile.NewRuns(rdb, cfg.Redis.KeyPrefix, cfg.Reconcile.Retention), Units: catalog.ToBase,
		Tolerances: tolerances, Producer: hcl, Codec: codec, ReconciliationTopic: cfg.Topics.Reconciliation, LedgerTopic: cfg.Topics.Ledger,
		AutoApplyUnits: int64(cfg.Reconcile.AutoApplyUnits), MaxLines: int64(cfg.Reconcile.MaxLines), MaxStoredExceptions: int64(cfg.Reconcile.MaxExceptions),
		Registry: reg, Logger: log.With("component", "reconciler"),
	})
	// Lookups of the partitions this process folds are answered from the
	// folder's memory, once the pipeline has started it.
	local := &localFolder{}
	checkout := api.NewCheckout(api.CheckoutConfig{
		Store: led, Producer: hcl, Codec: codec, LedgerTopic: cfg.Topics.Ledger, HoldsTopic: cfg.Topics.Holds, Local: local,
		Groups: groups, Rules: rules, Supply: supply, HoldTimeout: cfg.API.HoldTimeout, OwnHoldsFor: cfg.Redis.LookupCacheMaxAge,
		InstanceID: opts.InstanceID, Keys: keys, RateLimit: cfg.API.RateLimit,
		Logger: log.With("component", "api"), Registry: reg, Reconciler: rec,
	})
	checkout.Register(srv)
	con, err := console.New(console.Config{
		API: srv.Echo(), Keys: keys, Redis: rdb, Prefix: cfg.Redis.KeyPrefix, JaegerURL: strings.TrimRight(cfg.JaegerUIURL, "/"),
		Locations: led.Locations, Groups: groups, ReleaseHold: checkout.ReleaseAny, Logger: log.With("component", "console"),
		Metrics: reg, Kafka: kafka.Conn(cfg.Kafka), DLQTopic: cfg.Topics.DLQ, Producer: hcl, Codec: codec, RunFresh: rec.Fresh,
		Replay: deadletter.ReplayTargets{Topics: cfg.Topics, Codec: codec},
	})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	con.Register(srv.Echo())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return checkout.Run(gctx) })
	g.Go(func() error { return con.Run(gctx) })
	if cache != nil {
		g.Go(func() error { return cache.Run(gctx) })
	}
	g.Go(func() error { return lag.run(gctx) })
	g.Go(func() error {
		if !cfg.Kafka.CreateTopics {
			topicsReady.Store(true)
		} else {
			tctx, cancel := context.WithTimeout(gctx, opts.TopicsTimeout)
			err := prepareTopics(tctx, adm, cfg, log)
			cancel()
			if err != nil {
				return err
			}
			topicsReady.Store(true)
		}
		return runPipeline(gctx, cfg, opts, codec, led, kcl, catalog, rec, tp, metrics, local, log)
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}

// runPipeline runs the catalog reader, the normalizer, the folder and, when
// asked, the simulator, until ctx ends or one of them fails.
func runPipeline(ctx context.Context, cfg config.Config, opts Options, codec *avro.Codec, led *ledger.Store, kcl *kgo.Client,
	catalog *processors.Catalog, rec *reconcile.Reconciler, tp trace.TracerProvider, metrics *processors.Metrics, local *localFolder, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return catalog.Run(ctx) })

	ncfg := opts.Normalizer
	ncfg.Kafka, ncfg.Topics, ncfg.InstanceID, ncfg.Metrics = cfg.Kafka, cfg.Topics, opts.InstanceID, metrics
	if ncfg.TxnTimeout == 0 {
		ncfg.TxnTimeout = cfg.NormalizerTxnTimeout
	}
	nopt, ntracer := kafka.Tracing(tp, cfg.Kafka.ClientID, cfg.Kafka.NormalizerGroup)
	ncfg.ExtraOpts, ncfg.Tracing = append(ncfg.ExtraOpts, nopt, kafka.Logger(log.With("group", cfg.Kafka.NormalizerGroup))), processors.Tracing{Kotel: ntracer}
	norm := processors.NewNormalizer(ncfg, codec, led, catalog, log.With("component", "normalizer"))
	if !opts.NoNormalizer {
		g.Go(func() error { return norm.Run(ctx) })
	}

	fcfg := opts.Folder
	fcfg.Kafka, fcfg.Topics, fcfg.InstanceID, fcfg.Metrics = cfg.Kafka, cfg.Topics, opts.InstanceID, metrics
	fcfg.CacheSKUs, fcfg.InFlight, fcfg.Grace = cfg.FolderCacheSKUs, cfg.FolderInFlight, cfg.ShutdownGrace
	fcfg.HoldTimeout = cfg.API.HoldTimeout
	fcfg.HoldOpts = append(fcfg.HoldOpts, kafka.Logger(log.With("component", "hold-desk")))
	// Validated with the rest of the configuration; the API answers with the same policy.
	supply, _ := config.ParseSupplyPolicy(cfg.API.SupplyPolicy)
	fcfg.Supply = &supply
	fopt, ftracer := kafka.Tracing(tp, cfg.Kafka.ClientID, cfg.Kafka.FolderGroup)
	fcfg.ExtraOpts = append(fcfg.ExtraOpts, fopt, kafka.Logger(log.With("group", cfg.Kafka.FolderGroup)))
	if cfg.OTLPEndpoint != "" {
		// A process span per ledger record only when traces go somewhere.
		fcfg.Tracing = processors.Tracing{Kotel: ftracer}
		hopt, htracer := kafka.Tracing(tp, cfg.Kafka.ClientID, "")
		fcfg.HoldOpts, fcfg.HoldTracing = append(fcfg.HoldOpts, hopt), processors.Tracing{Kotel: htracer}
	}
	folder := processors.NewFolder(fcfg, codec, led, kcl, log.With("component", "folder"))
	if !opts.NoFolder {
		local.f.Store(folder)
		g.Go(func() error { return folder.Run(ctx) })
	}

	if !opts.NoReconciler {
		scfg := processors.SnapshotsConfig{Kafka: cfg.Kafka, Topics: cfg.Topics, InstanceID: opts.InstanceID, EndTimeout: cfg.Reconcile.EndTimeout,
			Metrics: metrics, ExtraOpts: []kgo.Opt{kafka.Logger(log.With("group", cfg.Kafka.ReconcilerGroup))}}
		snaps := processors.NewSnapshots(scfg, codec, rec, kcl, log.With("component", "reconciler"))
		g.Go(func() error { return snaps.Run(ctx) })
	}

	if opts.SimulateRate > 0 {
		g.Go(func() error {
			gen := sim.NewGenerator(opts.SimulateSeed, sim.Catalogue{SKUs: opts.SimulateSKUs}, cfg.Topics, nil)
			s := sim.New(sim.Config{Rate: opts.SimulateRate}, gen, codec, kcl, log.With("component", "simulator"))
			_, err := s.Run(ctx)
			if ctx.Err() != nil {
				return nil
			}
			return err
		})
	}
	return g.Wait()
}

func prepareTopics(ctx context.Context, adm *kadm.Client, cfg config.Config, log *slog.Logger) error {
	if err := kafka.WaitReady(ctx, adm, cfg.Kafka, log); err != nil {
		return err
	}
	specs := kafka.WithMinInsync(kafka.Topics(cfg.Topics), cfg.Kafka.MinInsyncReplicas)
	if err := kafka.EnsureTopics(ctx, adm, int32(cfg.Kafka.Partitions), int16(cfg.Kafka.Replication), specs); err != nil {
		return err
	}
	if err := kafka.CheckCoPartitioned(ctx, adm, cfg.Topics.Ledger, cfg.Topics.Holds); err != nil {
		return err
	}
	log.Info("topics ready", "count", len(specs), "partitions_for_new", strconv.Itoa(cfg.Kafka.Partitions),
		"replication_for_new", cfg.Kafka.Replication, "min_insync_for_new", cfg.Kafka.MinInsyncReplicas)
	return nil
}

// localFolder answers lookups from this process's folder once it runs.
type localFolder struct {
	f atomic.Pointer[processors.Folder]
}

func (l *localFolder) Lookup(sku, loc string, nowMs int64) (ledger.LookupResult, bool) {
	if f := l.f.Load(); f != nil {
		return f.Lookup(sku, loc, nowMs)
	}
	return ledger.LookupResult{}, false
}

// registerSchemas asks the schema registry, at start, for the id of every
// record type the service writes on each of its topics, registering the
// schema where the registry allows. A registry that refuses a schema (an
// incompatible change under the subject's compatibility rule) or cannot be
// reached stops the start with its reason, rather than the first produce.
func registerSchemas(ctx context.Context, codec *avro.Codec, t config.Topics) error {
	entry := &events.LedgerEntry{}
	writes := []struct {
		topic string
		rec   avro.Record
	}{
		{t.Ledger, entry}, {t.Holds, entry},
		{t.Availability, &events.AvailabilityChanged{}}, {t.Alerts, &events.StockAlert{}},
		{t.Reconciliation, &events.ReconciliationException{}}, {t.Reconciliation, &events.ReconciliationSummary{}},
	}
	for _, w := range writes {
		if w.topic == "" {
			continue
		}
		if _, err := codec.Register(ctx, w.topic, w.rec); err != nil {
			return fmt.Errorf("schema registry: %w", err)
		}
	}
	return nil
}

// closeLogged closes c at shutdown; a failure is logged, there being
// nothing more to do about it.
func closeLogged(log *slog.Logger, what string, c io.Closer) {
	if err := c.Close(); err != nil {
		log.Warn("close "+what, "err", err)
	}
}
