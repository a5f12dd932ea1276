// Package service builds a Stockflow process from its configuration: the
// stores (real or embedded), the Kafka and Redis clients, the processors,
// the HTTP API and console and, on request, the simulator. Build is the one
// place the service is put together: `stockflow serve`, the benchmarks and
// the tests all run what it builds.
//
// See docs/design.md §1.4 (one process, many instances), §2.3 and §2.4 (the
// topics it creates and checks at start) and §16.3 (readiness).
package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockflow/stockflow/pkg/api"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/console"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/reconcile"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/processors"
)

// Options are the settings of one process that are not the deployment's
// configuration: where the embedded stores listen, which stages run here,
// the simulator, and what tests and benchmarks attach.
type Options struct {
	// Logger receives the process's logs; default discarded.
	Logger *slog.Logger
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
	// Folder and Normalizer pass through test hooks and tuning; the
	// settings the configuration holds are filled in from it.
	Folder     processors.FolderConfig
	Normalizer processors.NormalizerConfig
	// Hooks are attached to every processor beside the service's metrics.
	Hooks []processors.Hook
	// Version is reported in traces.
	Version string
	// NoNormalizer, NoFolder and NoReconciler leave a stage out of this
	// process, to scale the stages apart.
	NoNormalizer, NoFolder, NoReconciler bool
	// NoHoldDesks runs the folder without its hold desks: a folder that
	// rebuilds a ledger from its log beside the deployment's own, whose
	// desks decide the holds.
	NoHoldDesks bool
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
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

// Service is one Stockflow process, built and not yet running.
type Service struct {
	cfg  config.Config
	opts Options
	log  *slog.Logger

	tp      trace.TracerProvider
	codec   *avro.Codec
	kcl     *kgo.Client // the processors' outputs
	hcl     *kgo.Client // the API's hold and policy entries
	adm     *kadm.Client
	rdb     redis.UniversalClient
	led     *ledger.Store
	cache   *store.Cache
	reg     *prometheus.Registry
	lag     *lagWatcher
	srv     *api.Server
	check   *api.Checkout
	console *console.Console
	catalog *processors.Catalog
	rec     *reconcile.Reconciler
	local   *localFolder
	stages  []stage
	// topicsReady is set once the topics are verified (readiness).
	topicsReady atomic.Bool

	// closers run in reverse order at Close.
	closers []func()
}

// stage is a component Run runs once the topics are ready.
type stage struct {
	name string
	run  func(context.Context) error
}

// Serve builds the service and runs it until ctx ends.
func Serve(ctx context.Context, cfg config.Config, opts Options, log *slog.Logger) error {
	opts.Logger = log
	// The process's soft memory limit: Serve runs a process, Build (as a
	// benchmark or a test uses it) only a part of one.
	setMemoryLimit(cfg, log)
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(ctx, cfg.DebugAddr, log)
		if err != nil {
			return fmt.Errorf("debug listener: %w", err)
		}
		defer stop()
	}
	s, err := Build(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run(ctx)
}

// Build puts the service together from a validated configuration: it
// connects (failing at once on settings that can never work, such as
// wrong credentials), registers its schemas, and builds every component.
// Nothing consumes or listens until Run. Close releases what Build made,
// whether or not Run was called.
func Build(ctx context.Context, cfg config.Config, opts Options) (_ *Service, err error) {
	opts.setDefaults()
	// Validate parses the settings written as text (groups, keys, rules…)
	// into the configuration's typed fields, which the components take.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	s := &Service{cfg: cfg, opts: opts, log: opts.Logger, local: &localFolder{}, reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	steps := []func(context.Context) error{
		s.startEmbedded, s.startTracing, s.openCodec, s.openClients, s.openLedger, s.buildAPI, s.buildProcessors,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close releases the clients, the embedded stores and the tracer, last
// built first.
func (s *Service) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func (s *Service) onClose(f func()) { s.closers = append(s.closers, f) }

// closeLogged closes c at shutdown; a failure is logged, there being
// nothing more to do about it.
func (s *Service) closeLogged(what string, c io.Closer) {
	s.onClose(func() {
		if err := c.Close(); err != nil {
			s.log.Warn("close "+what, "err", err)
		}
	})
}

// Config is the configuration the service runs with (in embedded mode,
// with the in-process stores' addresses).
func (s *Service) Config() config.Config { return s.cfg }

// Ledger is the service's ledger store.
func (s *Service) Ledger() *ledger.Store { return s.led }

// Codec is the service's Avro codec.
func (s *Service) Codec() *avro.Codec { return s.codec }

// LookupCache is the API's lookup cache, or nil when it is off.
func (s *Service) LookupCache() *store.Cache { return s.cache }

// Registry holds the service's metrics.
func (s *Service) Registry() *prometheus.Registry { return s.reg }

// Addr is where the HTTP server listens, once Run has started it; empty
// before.
func (s *Service) Addr() string {
	if a := s.srv.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// Folder is the process's folder, or nil when it folds nothing.
func (s *Service) Folder() *processors.Folder { return s.local.f.Load() }
