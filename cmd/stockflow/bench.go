package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stockflow/stockflow/pkg/bench"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/telemetry"
)

// benchCmd measures Stockflow on the real local stack beside ceilings
// measured in the same run, and prints a Markdown table.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	l := config.NewLoader("bench", stderr, config.AllOptions)
	f := benchFlagsOn(l.FlagSet)
	cfg, code, ok := load(l, args, stderr)
	if !ok {
		return code
	}
	benchStack(&cfg)
	log := telemetry.NewLogger(stderr, "warn", cfg.LogFormat)
	f.opt.Progress = stderr
	if f.cpu != "" {
		stop, err := startCPUProfile(f.cpu, log)
		if err != nil {
			log.Error("cpuprofile", "err", err)
			return exitFailed
		}
		defer stop()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	fmt.Fprintf(stderr, "bench: kafka %v, redis %s db %d, keys %s:* (deleted at start and end), %d cores\n",
		cfg.Kafka.Brokers, cfg.Redis.Addr, cfg.Redis.DB, cfg.Redis.KeyPrefix, runtime.NumCPU())
	r, err := bench.NewRun(ctx, cfg, f.opt, log)
	if err != nil {
		log.Error("bench", "err", err)
		return exitFailed
	}
	defer r.Close(context.WithoutCancel(ctx))
	failed := !runBenchSteps(ctx, r, f.only, stderr)
	bench.Print(stdout, r.Rows())
	if f.mem != "" {
		if err := writeProfile(f.mem, "allocs"); err != nil {
			log.Error("memprofile", "err", err)
			failed = true
		}
	}
	if failed {
		return exitFailed
	}
	return exitOK
}

// benchFlags are the flags of bench beside the configuration's.
type benchFlags struct {
	opt            bench.Options
	only, cpu, mem string
}

// benchFlagsOn registers bench's own flags on fs.
func benchFlagsOn(fs *flag.FlagSet) *benchFlags {
	f := &benchFlags{}
	opt := &f.opt
	fs.IntVar(&opt.Events, "events", 200_000, "source events in the ingest stream (after catalogue and opening counts)")
	fs.IntVar(&opt.SKUs, "skus", 10_000, "catalogue size (5 locations each)")
	fs.DurationVar(&opt.Duration, "duration", 10*time.Second, "length of each load phase")
	fs.Float64Var(&opt.LookupRPS, "lookup-rps", 10_000, "constant rate of the open-loop lookup run, stepped down where the bare handler's p99 reaches 5 ms at it")
	fs.Float64Var(&opt.HoldRPS, "hold-rps", 200, "constant rate of the hold runs")
	fs.Float64Var(&opt.FreshRPS, "fresh-rps", 2_000, "constant rate of the freshness run")
	opt.HoldIngestRates = []float64{0, 1_000, 2_000, 5_000, 10_000}
	fs.BoolVar(&opt.RedisLookups, "redis-lookups", false, "the API reads every lookup from Redis, as an instance that folds nothing does (default: positions the pipeline folds are answered from its memory, as serve does)")
	fs.Func("hold-ingest-rates", "comma-separated source events/s of simulated ingest the holds scenario measures under, one row each, 0 for none (default 0,1000,2000,5000,10000)",
		func(v string) error {
			rates, err := parseRates(v)
			if err == nil {
				opt.HoldIngestRates = rates
			}
			return err
		})
	fs.IntVar(&opt.ReconcileLines, "reconcile-lines", 1_000_000, "lines of the reconciliation step's snapshot, and positions of its ledger")
	fs.IntVar(&opt.CommitmentLines, "commitment-lines", 10_000, "backordered lines the commitments step's PO covers")
	opt.BacklogEvents = []int{250_000, 1_000_000}
	fs.Func("backlog-events", "comma-separated sizes (source events) of the backlogs the backlog step catches up, one row each (default 250000,1000000)",
		func(v string) error {
			sizes, err := parseSizes(v)
			if err == nil {
				opt.BacklogEvents = sizes
			}
			return err
		})
	fs.StringVar(&f.only, "only", "", "comma-separated scenarios to run (ingest runs first whenever a later one needs its ledger): ingest, lookups, hotset, holds, freshness, commitments, rebuild, memory, reconcile")
	fs.StringVar(&f.cpu, "cpuprofile", "", "write a CPU profile of the whole run here")
	fs.StringVar(&f.mem, "memprofile", "", "write an allocation profile here at the end")
	return f
}

// benchStack points an embedded configuration at the local stack, and a
// key prefix left at the service's at one of the benchmark's own.
func benchStack(cfg *config.Config) {
	if cfg.Embedded {
		// The benchmark measures the real stack: the local one by default.
		cfg.Embedded = false
		cfg.Kafka.Brokers = []string{"127.0.0.1:9092"}
		cfg.Redis.Addr = "127.0.0.1:6379"
		cfg.Redis.DB = 0 // the lookup cache works on database 0 only
	}
	// The run deletes every key below its prefix: never the service's.
	if cfg.Redis.KeyPrefix == config.Default().Redis.KeyPrefix {
		cfg.Redis.KeyPrefix = "sfbench"
	}
}

// startCPUProfile profiles the CPU into the file path until stop is called.
func startCPUProfile(path string, log *slog.Logger) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close() // nothing was written; the start's error is the one to report
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("cpuprofile", "err", err)
		}
	}, nil
}

// runBenchSteps runs the scenarios only names (every one when empty), and
// ingest before them when one needs its ledger, stopping at the first
// that fails. It reports whether all succeeded.
func runBenchSteps(ctx context.Context, r *bench.Run, only string, stderr io.Writer) bool {
	steps := []struct {
		name string
		fn   func(context.Context) error
		// ownData: the step makes its own data and needs no ingested ledger
		ownData bool
	}{{"ingest", r.Ingest, false}, {"lookups", r.Lookups, false}, {"hotset", r.HotSet, true}, {"holds", r.Holds, false},
		{"freshness", r.Freshness, false}, {"commitments", r.Commitments, true}, {"rebuild", r.Rebuild, false}, {"memory", r.Memory, false}, {"reconcile", r.Reconcile, true},
		{"backlog", r.Backlog, true}}
	chosen := func(name string) bool { return only == "" || slices.Contains(strings.Split(only, ","), name) }
	needIngest := false
	for _, s := range steps {
		needIngest = needIngest || (chosen(s.name) && !s.ownData)
	}
	for _, s := range steps {
		if !chosen(s.name) && (s.name != "ingest" || !needIngest) {
			continue
		}
		err := s.fn(ctx)
		if err == nil {
			// A component the step ran in the background failed under it.
			err = r.Err()
		}
		if err != nil {
			fmt.Fprintf(stderr, "bench %s: %v\n", s.name, err)
			return false
		}
	}
	return true
}

// parseRates reads a comma-separated list of rates, each 0 or more.
func parseRates(v string) ([]float64, error) {
	var rates []float64
	for _, f := range strings.Split(v, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || x < 0 || math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("%q is not a rate (events/s, 0 or more)", f)
		}
		rates = append(rates, x)
	}
	return rates, nil
}

// parseSizes reads a comma-separated list of counts, each 1 or more.
func parseSizes(v string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a count (1 or more)", f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// writeProfile writes the named runtime profile to the file path.
func writeProfile(path, name string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return pprof.Lookup(name).WriteTo(f, 0)
}
