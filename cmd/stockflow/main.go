// Command stockflow is the Stockflow inventory availability service.
//
//	stockflow serve     run the service (embedded Kafka and Redis when none is configured)
//	stockflow simulate  produce realistic source events to Kafka
//	stockflow dlq       list or replay dead letters
//	stockflow tail      print a topic's records, decoded, as they arrive
//	stockflow verify    fold the ledger log independently and compare with Redis
//	stockflow reconcile  send a stock snapshot to reconcile; show or apply a run
//	stockflow version   print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/service"
	"github.com/stockflow/stockflow/pkg/sim"
	"github.com/stockflow/stockflow/pkg/telemetry"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: stockflow <command> [flags]

commands:
  serve     run the service; with no Kafka brokers and no Redis address it runs
            embedded (in-process Kafka and Redis) for a first look
  simulate  produce seeded, realistic source events to Kafka
  dlq       list or replay dead letters
  tail      print a topic's records, decoded, as they arrive
  verify    fold the ledger log independently and compare it with Redis
  reconcile  send a stock snapshot (CSV) to be compared with the ledger, follow
             its run, write its exceptions, apply its corrections
  bench     measure ingest, lookups, holds, freshness, rebuild and memory on the real stack
  version   print the version

Run 'stockflow <command> -h' for a command's flags: those of the settings it
uses. Every flag can also be set with its STOCKFLOW_* environment variable or
in the YAML file given by -config; one file or environment may hold the
settings of every command.
`

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "simulate":
		return simulate(ctx, args[1:], stdout, stderr)
	case "dlq":
		return dlq(ctx, args[1:], stdout, stderr)
	case "tail":
		return tailCmd(ctx, args[1:], stdout, stderr)
	case "verify":
		return verify(ctx, args[1:], stdout, stderr)
	case "reconcile":
		return reconcileCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "stockflow", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "stockflow: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// load parses flags and configuration; it prints problems and returns ok=false
// with the exit code to use.
func load(l *config.Loader, args []string, stderr io.Writer) (config.Config, int, bool) {
	cfg, err := l.Load(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, exitOK, false
	}
	if err != nil {
		fmt.Fprintf(stderr, "stockflow %s: %v\n", l.FlagSet.Name(), err)
		return cfg, exitUsage, false
	}
	return cfg, exitOK, true
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	l := config.NewLoader("serve", stderr, config.AllOptions)
	var opts service.Options
	l.FlagSet.IntVar(&opts.EmbeddedKafkaPort, "embedded-kafka-port", 19092, "port of the in-process Kafka in embedded mode")
	l.FlagSet.StringVar(&opts.EmbeddedRedisAddr, "embedded-redis-addr", "127.0.0.1:16379", "address of the in-process Redis in embedded mode")
	l.FlagSet.Float64Var(&opts.SimulateRate, "simulate-rate", 0, "also run the simulator in-process at this many events/s (0: off)")
	l.FlagSet.Uint64Var(&opts.SimulateSeed, "simulate-seed", 1, "simulator seed")
	l.FlagSet.IntVar(&opts.SimulateSKUs, "simulate-skus", 200, "simulated catalogue size")
	l.FlagSet.BoolVar(&opts.NoNormalizer, "no-normalizer", false, "do not run the normalizers in this process")
	l.FlagSet.BoolVar(&opts.NoFolder, "no-folder", false, "do not run the ledger folder in this process")
	l.FlagSet.BoolVar(&opts.NoReconciler, "no-reconciler", false, "do not reconcile snapshots from the snapshot topic in this process (its API still serves and applies runs)")
	l.FlagSet.StringVar(&opts.InstanceID, "instance-id", os.Getenv("STOCKFLOW_INSTANCE_ID"),
		"this instance's name, unique among running instances and stable across restarts: its transactional id and static group membership (default host-pid; env STOCKFLOW_INSTANCE_ID)")
	cfg, code, ok := load(l, args, stderr)
	if !ok {
		return code
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	log.Info("starting", "version", version, "http_addr", cfg.HTTPAddr, "embedded", cfg.Embedded)
	opts.Version = version
	failpoints(&opts)
	if err := service.Serve(ctx, cfg, opts, log); err != nil {
		log.Error("serve failed", "err", err)
		return exitFailed
	}
	return exitOK
}

func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	l := config.NewLoader("simulate", stderr, config.KafkaOptions, config.TopicOptions, config.RecordOptions, config.LogOptions)
	var (
		scfg     sim.Config
		skus     int
		duration time.Duration
	)
	l.FlagSet.Uint64Var(&scfg.Seed, "seed", 1, "generator seed: the same seed gives the same events")
	l.FlagSet.Float64Var(&scfg.Rate, "rate", 100, "events per second (0: as fast as possible)")
	l.FlagSet.IntVar(&scfg.Count, "count", 0, "stop after this many events (0: until interrupted)")
	l.FlagSet.DurationVar(&duration, "duration", 0, "stop after this long (0: no limit)")
	l.FlagSet.IntVar(&skus, "skus", 200, "catalogue size")
	l.FlagSet.BoolVar(&scfg.SkipCatalog, "skip-catalog", false, "do not publish item masters first")
	cfg, code, ok := load(l, args, stderr)
	if !ok {
		return code
	}
	if len(cfg.Kafka.Brokers) == 0 {
		// The embedded broker of a local `stockflow serve`.
		cfg.Kafka.Brokers = []string{"127.0.0.1:19092"}
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	codec, err := events.OpenCodec(cfg.SchemaRegistry, cfg.MaxRecordBytes)
	if err != nil {
		log.Error("codec", "err", err)
		return exitFailed
	}
	cl, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka, kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		log.Error("kafka client", "err", err)
		return exitFailed
	}
	defer cl.Close()
	scfg.Catalogue = sim.Catalogue{SKUs: skus}
	gen := sim.NewGenerator(scfg.Seed, scfg.Catalogue, cfg.Topics, nil)
	st, err := sim.New(scfg, gen, codec, cl, log).Run(ctx)
	fmt.Fprintf(stdout, "produced %d events (+%d item masters and opening counts)\n", st.Produced, st.Catalog)
	for name, n := range st.ByType {
		fmt.Fprintf(stdout, "  %-40s %d\n", name, n)
	}
	if err != nil && ctx.Err() == nil {
		log.Error("simulate failed", "err", err)
		return exitFailed
	}
	return exitOK
}
