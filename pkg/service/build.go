package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"

	"github.com/stockflow/stockflow/pkg/api"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/console"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/metrics"
	"github.com/stockflow/stockflow/pkg/reconcile"
	"github.com/stockflow/stockflow/pkg/sim"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/telemetry"
	"github.com/stockflow/stockflow/processors"
)

// startEmbedded starts the in-process Kafka and Redis in embedded mode and
// points the configuration at them.
func (s *Service) startEmbedded(context.Context) error {
	if !s.cfg.Embedded {
		return nil
	}
	cluster, err := kafka.StartEmbedded(s.opts.EmbeddedKafkaPort, int32(s.cfg.Kafka.Partitions))
	if err != nil {
		return err
	}
	s.onClose(cluster.Close)
	mr, err := store.StartEmbedded(s.opts.EmbeddedRedisAddr)
	if err != nil {
		return err
	}
	s.onClose(mr.Close)
	s.cfg.Kafka.Brokers = cluster.ListenAddrs()
	s.cfg.Redis.Addr = mr.Addr()
	s.cfg.Redis.LookupCache = false // the in-process Redis does not track keys
	s.log.Warn("EMBEDDED MODE: in-process Kafka (kfake) and Redis (miniredis); data is lost on exit. Set -kafka-brokers and -redis-addr for real infrastructure.",
		"kafka", s.cfg.Kafka.Brokers, "redis", s.cfg.Redis.Addr)
	return nil
}

func (s *Service) startTracing(ctx context.Context) error {
	tp, shutdown, err := telemetry.NewTracerProvider(ctx, telemetry.TraceConfig{
		Endpoint: s.cfg.OTLPEndpoint, SampleRatio: s.cfg.TraceSampleRatio, Version: s.opts.Version, InstanceID: s.opts.InstanceID,
	})
	if err != nil {
		return err
	}
	s.tp = tp
	s.onClose(func() {
		// Flush the last spans, bounded: the collector may be gone.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			s.log.Warn("flush traces", "err", err)
		}
	})
	if s.cfg.OTLPEndpoint != "" {
		s.log.Info("tracing to OTLP", "endpoint", s.cfg.OTLPEndpoint, "sample_ratio", s.cfg.TraceSampleRatio)
	}
	return nil
}

func (s *Service) openCodec(ctx context.Context) error {
	codec, err := events.OpenCodec(s.cfg.SchemaRegistry, s.cfg.MaxRecordBytes)
	if err != nil {
		return err
	}
	s.codec = codec
	if s.cfg.SchemaRegistry == "" {
		return nil
	}
	if err := registerSchemas(ctx, codec, s.cfg.Topics); err != nil {
		return err
	}
	s.log.Info("schema registry: every record written and read goes by its ids", "url", avro.Redact(s.cfg.SchemaRegistry))
	return nil
}

// openClients makes the Kafka and Redis clients and, on real
// infrastructure, checks them once.
func (s *Service) openClients(ctx context.Context) error {
	traceOpts, _ := s.kafkaTracing("")
	// No linger: outputs go to the broker at once; records still batch
	// while a request is in flight.
	kcl, err := kgo.NewClient(kafka.ClientOpts(s.cfg.Kafka, append(traceOpts, kgo.ProducerLinger(0), metrics.KafkaClient(s.reg, "outputs"))...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	s.onClose(kcl.Close)
	s.kcl, s.adm = kcl, kadm.NewClient(kcl)
	// The API produces hold and policy entries through a client of its
	// own, so a hold never queues behind the folder's outputs.
	hcl, err := kgo.NewClient(kafka.ClientOpts(s.cfg.Kafka, append(traceOpts, kgo.ProducerLinger(0), metrics.KafkaClient(s.reg, "api"))...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	s.onClose(hcl.Close)
	s.hcl = hcl
	store.Logger(s.log)
	s.rdb = store.Open(s.cfg.Redis)
	s.closeLogged("redis client", s.rdb)
	if s.tracing() {
		// No db.statement: a pipeline's statement is every command of it
		// with its arguments (a fold's save scripts), written out as text
		// for each pipeline; the span's name says the commands.
		if err := redisotel.InstrumentTracing(s.rdb, redisotel.WithTracerProvider(s.tp), redisotel.WithDBStatement(false)); err != nil {
			return fmt.Errorf("redis tracing: %w", err)
		}
	}
	if s.cfg.Embedded {
		return nil
	}
	return s.checkConnections(ctx)
}

// checkConnections stops the start on settings that never heal (wrong
// credentials or TLS settings), naming the connection, rather than serve a
// /readyz that fails forever. Redis or Kafka merely down is left to
// readiness.
func (s *Service) checkConnections(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := store.Ping(pctx, s.rdb)
	cancel()
	switch {
	case store.Misconfigured(err):
		return err
	case err != nil:
		s.log.Warn("redis not answering at start; going on, /readyz says so until it does", "err", err)
	}
	s.log.Info("kafka connection", "brokers", s.cfg.Kafka.Brokers, "tls", s.cfg.Kafka.UsesTLS(), "sasl_mechanism", s.cfg.Kafka.Mechanism())
	pctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	err = kafka.Ping(pctx, s.kcl, s.cfg.Kafka)
	cancel()
	switch {
	case kafka.Misconfigured(err):
		return err
	case err != nil:
		s.log.Warn("kafka not answering at start; going on, /readyz says so until it does", "err", err)
	}
	return nil
}

// openLedger makes the ledger store, checks its key layout, and puts the
// lookup cache in front of it where Redis can keep one up to date.
func (s *Service) openLedger(ctx context.Context) error {
	s.led = ledger.New(s.rdb, ledger.Config{KeyPrefix: s.cfg.Redis.KeyPrefix})
	switch err := s.led.CheckLayout(ctx, s.cfg.Topics.Ledger); {
	case errors.Is(err, ledger.ErrKeyLayout):
		return fmt.Errorf("%w: empty the Redis database (or choose another -redis-key-prefix) and start again; the ledger is rebuilt from the ledger topic", err)
	case err != nil:
		s.log.Warn("could not check the ledger's key layout in Redis; going on", "err", err)
	}
	s.cache = store.OpenCache(s.cfg.Redis)
	switch {
	case s.cache != nil:
		s.closeLogged("lookup cache", s.cache)
		s.led.UseCache(s.cache)
		s.cache.Register(s.reg)
		s.log.Info("lookup cache on", "entries", s.cfg.Redis.LookupCacheEntries, "max_age", s.cfg.Redis.LookupCacheMaxAge)
	case s.cfg.Embedded:
		s.log.Info("lookup cache off: the in-process Redis cannot send invalidations")
	case s.cfg.Redis.Cluster() && s.cfg.Redis.LookupCache:
		s.log.Info("lookup cache off: it is not built for a Redis Cluster; lookups read Redis")
	case s.cfg.Redis.LookupCache:
		s.log.Warn("lookup cache off: Redis tracks keys for database 0 only; lookups read Redis", "redis_db", s.cfg.Redis.DB)
	}
	return nil
}

// buildAPI makes the HTTP server with its readiness checks, the checkout
// API, the reconciliation API and the console.
func (s *Service) buildAPI(context.Context) error {
	cfg := s.cfg
	s.lag = newLagWatcher(s.adm, cfg.Kafka.NormalizerGroup, cfg.Kafka.FolderGroup, cfg.Topics.Ledger, s.led.AppliedOffsets, s.reg, s.log.With("component", "lag"))
	s.srv = api.New(api.Config{
		Addr: cfg.HTTPAddr, Checks: s.readiness(), Grace: cfg.ShutdownGrace, Registry: s.reg, Logger: s.log,
		TracerProvider: s.tp, TrustedProxies: cfg.API.Parsed.TrustedProxies,
	})
	console.WarnIfExposed(s.log, cfg.HTTPAddr, cfg.API.Parsed.Keys)
	catalog, err := processors.NewCatalog(kafka.ClientOpts(cfg.Kafka), cfg.Topics.Catalog, s.codec, s.log.With("component", "catalog"))
	if err != nil {
		return err
	}
	s.catalog = catalog
	s.onClose(catalog.Close)
	s.rec = reconcile.New(reconcile.Config{
		Ledger: s.led, Runs: reconcile.NewRuns(s.rdb, cfg.Redis.KeyPrefix, cfg.Reconcile.Retention), Units: catalog.ToBase,
		Tolerances: cfg.Reconcile.Tolerances, Producer: s.hcl, Codec: s.codec, ReconciliationTopic: cfg.Topics.Reconciliation, LedgerTopic: cfg.Topics.Ledger,
		AutoApplyUnits: int64(cfg.Reconcile.AutoApplyUnits), MaxLines: int64(cfg.Reconcile.MaxLines), MaxStoredExceptions: int64(cfg.Reconcile.MaxExceptions),
		Registry: s.reg, Logger: s.log.With("component", "reconciler"),
	})
	// Lookups of the partitions this process folds are answered from the
	// folder's memory, once the pipeline has started it.
	p := cfg.API.Parsed
	s.check = api.NewCheckout(api.CheckoutConfig{
		Store: s.led, Producer: s.hcl, Codec: s.codec, LedgerTopic: cfg.Topics.Ledger, HoldsTopic: cfg.Topics.Holds, Local: s.local,
		Groups: p.Groups, Rules: p.ChannelRules, Supply: p.Supply, HoldTimeout: cfg.API.HoldTimeout, OwnHoldsFor: cfg.Redis.LookupCacheMaxAge,
		InstanceID: s.opts.InstanceID, Keys: p.Keys, RateLimit: cfg.API.RateLimit,
		Logger: s.log.With("component", "api"), Registry: s.reg, Reconciler: s.rec,
	})
	s.check.Register(s.srv)
	s.console, err = console.New(console.Config{
		API: s.srv.Echo(), Keys: p.Keys, Redis: s.rdb, Prefix: cfg.Redis.KeyPrefix, JaegerURL: strings.TrimRight(cfg.JaegerUIURL, "/"),
		Locations: s.led.Locations, Groups: p.Groups, ReleaseHold: s.check.ReleaseAny, Logger: s.log.With("component", "console"),
		Metrics: s.reg, Kafka: kafka.Conn(cfg.Kafka), DLQTopic: cfg.Topics.DLQ, Producer: s.hcl, Codec: s.codec, RunFresh: s.rec.Fresh,
		Replay: deadletter.ReplayTargets{Topics: cfg.Topics, Codec: s.codec}, CommitmentsTopic: cfg.Topics.Commitments,
	})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	s.console.Register(s.srv.Echo())
	return nil
}

// buildProcessors makes the stages this process runs: the catalog reader,
// the normalizer, the folder with its hold desks, the snapshot reconciler
// and the simulator, each as the configuration and Options ask.
func (s *Service) buildProcessors(context.Context) error {
	cfg, log := s.cfg, s.log
	hooks := append([]processors.Hook{metrics.NewProcessors(s.reg)}, s.opts.Hooks...)
	s.stages = append(s.stages, stage{"catalog", s.catalog.Run})
	if !s.opts.NoNormalizer {
		norm := processors.NewNormalizer(s.normalizerConfig(hooks), s.codec, s.led, s.catalog, log.With("component", "normalizer"))
		s.stages = append(s.stages, stage{"normalizer", norm.Run})
	}
	if !s.opts.NoFolder {
		folder := processors.NewFolder(s.folderConfig(hooks), s.codec, s.led, s.kcl, log.With("component", "folder"))
		s.local.f.Store(folder)
		s.stages = append(s.stages, stage{"folder", folder.Run})
	}
	if !s.opts.NoReconciler {
		scfg := processors.SnapshotsConfig{Kafka: cfg.Kafka, Topics: cfg.Topics, InstanceID: s.opts.InstanceID, EndTimeout: cfg.Reconcile.EndTimeout,
			Hooks: hooks, ExtraOpts: []kgo.Opt{kafka.Logger(log.With("group", cfg.Kafka.ReconcilerGroup))}}
		snaps := processors.NewSnapshots(scfg, s.codec, s.rec, s.kcl, log.With("component", "reconciler"))
		s.stages = append(s.stages, stage{"reconciler", snaps.Run})
	}
	if s.opts.SimulateRate > 0 {
		gen := sim.NewGenerator(s.opts.SimulateSeed, sim.Catalogue{SKUs: s.opts.SimulateSKUs}, cfg.Topics, nil)
		simulator := sim.New(sim.Config{Rate: s.opts.SimulateRate}, gen, s.codec, s.kcl, log.With("component", "simulator"))
		s.stages = append(s.stages, stage{"simulator", func(ctx context.Context) error {
			_, err := simulator.Run(ctx)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}})
	}
	return nil
}

func (s *Service) normalizerConfig(hooks []processors.Hook) processors.NormalizerConfig {
	cfg := s.cfg
	n := s.opts.Normalizer
	n.Kafka, n.Topics, n.InstanceID = cfg.Kafka, cfg.Topics, s.opts.InstanceID
	if cfg.NormalizerFetchMaxBytes > 0 {
		n.Kafka.FetchMaxBytes = cfg.NormalizerFetchMaxBytes
	}
	n.Hooks = append(append([]processors.Hook(nil), hooks...), n.Hooks...)
	if n.TxnTimeout == 0 {
		n.TxnTimeout = cfg.NormalizerTxnTimeout
	}
	if n.AlignWindow == 0 {
		n.AlignWindow = cfg.NormalizerAlign
	}
	opts, tracer := s.kafkaTracing(cfg.Kafka.NormalizerGroup)
	n.ExtraOpts = append(append(n.ExtraOpts, opts...), kafka.Logger(s.log.With("group", cfg.Kafka.NormalizerGroup)))
	// A session's client is replaced after a failure: each gets metrics of
	// its own, which go with it.
	n.SessionOpts = func() []kgo.Opt { return []kgo.Opt{metrics.KafkaClient(s.reg, "normalizer")} }
	n.Tracing = processors.Tracing{Kotel: tracer}
	return n
}

func (s *Service) folderConfig(hooks []processors.Hook) processors.FolderConfig {
	cfg := s.cfg
	f := s.opts.Folder
	f.Kafka, f.Topics, f.InstanceID = cfg.Kafka, cfg.Topics, s.opts.InstanceID
	if s.opts.NoHoldDesks {
		f.Topics.Holds = "" // a folder with no holds topic runs no desks
	}
	if !cfg.Commitments {
		f.Topics.Commitments = "" // a folder with no commitments topic keeps no promises
	}
	f.Hooks = append(append([]processors.Hook(nil), hooks...), f.Hooks...)
	f.CacheSKUs, f.InFlight, f.Grace = cfg.FolderCacheSKUs, cfg.FolderInFlight, cfg.ShutdownGrace
	if f.MaxPollRecords == 0 {
		f.MaxPollRecords = cfg.FolderPollRecords
	}
	f.HoldTimeout = cfg.API.HoldTimeout
	f.HoldOpts = append(f.HoldOpts, kafka.Logger(s.log.With("component", "hold-desk")))
	// The API answers with the same policy.
	supply := cfg.API.Parsed.Supply
	f.Supply = &supply
	opts, tracer := s.kafkaTracing(cfg.Kafka.FolderGroup)
	f.ExtraOpts = append(append(f.ExtraOpts, opts...), kafka.Logger(s.log.With("group", cfg.Kafka.FolderGroup)), metrics.KafkaClient(s.reg, "folder"))
	if tracer != nil {
		f.Tracing = processors.Tracing{Kotel: tracer}
		hopts, htracer := s.kafkaTracing("")
		f.HoldOpts, f.HoldTracing = append(f.HoldOpts, hopts...), processors.Tracing{Kotel: htracer}
	}
	return f
}

// tracing is whether traces go somewhere. When they do not, no client
// carries tracing hooks: with no exporter, a span per record would cost
// its attributes (and a Redis pipeline its statement) for nothing.
func (s *Service) tracing() bool { return s.cfg.OTLPEndpoint != "" }

// kafkaTracing is the kotel hooks of a client in group ("" for a
// producer) and its tracer, or nothing when traces go nowhere.
func (s *Service) kafkaTracing(group string) ([]kgo.Opt, *kotel.Tracer) {
	if !s.tracing() {
		return nil, nil
	}
	opt, tracer := kafka.Tracing(s.tp, s.cfg.Kafka.ClientID, group)
	return []kgo.Opt{opt}, tracer
}

// readiness are the checks behind /readyz.
func (s *Service) readiness() []api.Check {
	return []api.Check{
		{Name: "kafka", Fn: func(ctx context.Context) error { return kafka.Ping(ctx, s.kcl, s.cfg.Kafka) }},
		{Name: "redis", Fn: func(ctx context.Context) error { return store.Ping(ctx, s.rdb) }},
		{Name: "topics", Fn: func(context.Context) error {
			if !s.topicsReady.Load() {
				return errors.New("topics not yet verified")
			}
			return nil
		}},
		{Name: "fold_lag", Fn: s.lag.check(int64(s.cfg.ReadyMaxLag))},
	}
}
