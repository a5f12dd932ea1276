package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/sim"
)

// backlogTimeout bounds one backlog's catch-up.
const backlogTimeout = 30 * time.Minute

// Backlog catches up backlogs of Options.BacklogEvents source events (one
// row each) with `stockflow serve` as a process of its own, started with
// the default settings on the backlog's topics, and reports its peak
// resident memory and CPU beside its rate: what a container running the
// service needs while it catches up, and whether that grows with the
// backlog's length. The ledger is then verified against a fold of its log.
func (r *Run) Backlog(ctx context.Context) error {
	for i, n := range r.opt.BacklogEvents {
		row, err := r.backlog(ctx, i, n)
		if err != nil {
			return fmt.Errorf("backlog of %d events: %w", n, err)
		}
		r.rows = append(r.rows, row)
	}
	return nil
}

// backlogConfig is the run's configuration with topics, groups and a key
// prefix of backlog i's own, and the service's default settings otherwise,
// but for the folder's, the memory and the normalizer's alignment
// settings and the debug address: the run's, which are the defaults unless
// `stockflow bench` was given them.
func (r *Run) backlogConfig(i int) config.Config {
	cfg := config.Default()
	cfg.Kafka, cfg.Redis, cfg.SchemaRegistry = r.cfg.Kafka, r.cfg.Redis, r.cfg.SchemaRegistry
	cfg.FolderCacheSKUs, cfg.FolderPollRecords, cfg.FolderInFlight = r.cfg.FolderCacheSKUs, r.cfg.FolderPollRecords, r.cfg.FolderInFlight
	cfg.MemoryLimitMiB, cfg.NormalizerAlign, cfg.NormalizerFetchMaxBytes = r.cfg.MemoryLimitMiB, r.cfg.NormalizerAlign, r.cfg.NormalizerFetchMaxBytes
	cfg.DebugAddr = r.cfg.DebugAddr // profiles of the catch-up while it runs
	sfx := ".backlog" + strconv.Itoa(i)
	cfg.Topics = r.cfg.Topics
	for _, p := range topicNames(&cfg.Topics) {
		*p += sfx
	}
	cfg.Kafka.NormalizerGroup += sfx
	cfg.Kafka.FolderGroup += sfx
	cfg.Kafka.ReconcilerGroup += sfx
	cfg.Redis.KeyPrefix += "bl" + strconv.Itoa(i)
	// The process's own settings, not the run's: a free port, the run's
	// topics, and quiet logs.
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Kafka.CreateTopics = false
	cfg.LogLevel, cfg.LogFormat = "warn", "text"
	return cfg
}

// backlog produces backlog i of n source events to topics of its own,
// catches it up with a serve process, and verifies the ledger.
func (r *Run) backlog(ctx context.Context, i, n int) (Row, error) {
	cfg := r.backlogConfig(i)
	if err := cfg.Validate(); err != nil {
		return Row{}, err
	}
	keys := ledger.NewKeys(cfg.Redis.KeyPrefix).All()
	var topics []string
	for _, p := range topicNames(&cfg.Topics) {
		topics = append(topics, *p)
	}
	defer func() {
		dctx := context.WithoutCancel(ctx)
		r.dropKeys(dctx, keys)
		r.deleteTopics(dctx, topics...)
		r.deleteGroups(dctx, cfg.Kafka.NormalizerGroup, cfg.Kafka.FolderGroup, cfg.Kafka.ReconcilerGroup)
	}()
	if err := kafka.EnsureTopics(ctx, r.adm, int32(cfg.Kafka.Partitions), int16(cfg.Kafka.Replication), kafka.Topics(cfg.Topics)); err != nil {
		return Row{}, err
	}
	r.progress("backlog: producing %d events (+ catalogue and opening counts)", n)
	gen := sim.NewGenerator(uint64(100+i), sim.Catalogue{SKUs: r.opt.SKUs}, cfg.Topics, nil)
	st, err := sim.New(sim.Config{Count: n}, gen, r.codec, r.cl, r.log).Run(ctx)
	if err != nil {
		return Row{}, err
	}
	source := st.Produced + st.Catalog
	r.progress("backlog: stockflow serve catching up %d source events", source)
	caught, err := r.catchUp(ctx, cfg)
	if err != nil {
		return Row{}, err
	}
	entries, err := r.ledgerEntries(ctx, cfg.Topics.Ledger)
	if err != nil {
		return Row{}, err
	}
	verified := r.verify(ctx, cfg)
	rate := float64(source) / caught.took.Seconds()
	return Row{
		fmt.Sprintf("catch up a backlog of %s source events: stockflow serve, %s, a process of its own", thousands(float64(source)), settingsOf(cfg)),
		fmt.Sprintf("%.0f/s (%.1fs); peak RSS %s (at lag 0 %s)", rate, caught.took.Seconds(), mib(caught.peak), mib(caught.rss)),
		fmt.Sprintf("CPU µs per source event: %s (per ledger entry %s); Redis %s per entry", perUnit(caught.cpu, int64(source)), perUnit(caught.cpu, int64(entries)),
			perUnit(caught.redisCPU, int64(entries))),
		0, fmt.Sprintf("aim: peak RSS ≤ 256 MiB whatever the backlog's length; %d ledger entries; event topics up to %.0f%% apart while normalized; %s",
			entries, 100*caught.spread, verified),
	}, nil
}

// caughtUp is what a serve process took to catch up a backlog.
type caughtUp struct {
	took      time.Duration
	peak, rss int64         // peak and final resident set, bytes
	cpu       time.Duration // the process's CPU time
	redisCPU  time.Duration // Redis's, over the same time
	// spread is how far apart the normalizer read its source topics: the
	// largest gap between two topics' read fractions, sampled while it ran.
	spread float64
}

// catchUp runs `stockflow serve -no-reconciler` with cfg (none of this
// process's own Stockflow settings) until its groups' lag reaches 0, then
// stops it. The process dies with this one.
func (r *Run) catchUp(ctx context.Context, cfg config.Config) (caughtUp, error) {
	exe, err := os.Executable()
	if err != nil {
		return caughtUp{}, err
	}
	cmd := exec.Command(exe, "serve", "-no-reconciler")
	cmd.Env = childEnv(cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	logs := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = logs, logs
	redis0 := r.redisCPU(ctx)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return caughtUp{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// stop ends the process; how it exits is not what is measured.
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // gone already: Wait says so
		var err error
		select {
		case err = <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			err = <-exited
		}
		if err != nil {
			r.progress("  stockflow serve stopped: %v", err)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, backlogTimeout)
	defer cancel()
	// The normalizer's lag, read while waiting for lag 0, also says how far
	// apart it reads the event topics (read by the waiting goroutine only).
	var spread float64
	events := []string{cfg.Topics.Inventory, cfg.Topics.Orders, cfg.Topics.Supplier}
	watch := func(lags kadm.DescribedGroupLags) {
		if l, ok := lags[cfg.Kafka.NormalizerGroup]; ok && l.Error() == nil {
			spread = max(spread, topicSpread(l.Lag, events...))
		}
	}
	done := make(chan bool, 1)
	go func() {
		done <- r.lagZeroWatching(lctx, backlogTimeout, watch, cfg.Kafka.NormalizerGroup, cfg.Kafka.FolderGroup)
	}()
	select {
	case err := <-exited:
		cancel()
		<-done
		return caughtUp{}, fmt.Errorf("stockflow serve exited (%v): %s", err, logs)
	case ok := <-done:
		if !ok {
			stop()
			return caughtUp{}, fmt.Errorf("not caught up within %v: %s", backlogTimeout, logs)
		}
	}
	c := caughtUp{took: time.Since(start), redisCPU: r.redisCPU(ctx) - redis0}
	c.spread = spread // done was received: the watcher has stopped
	pid := cmd.Process.Pid
	c.rss, c.peak, err = rssOf(pid)
	if err == nil {
		c.cpu, err = cpuOf(pid)
	}
	stop()
	return c, err
}

// topicSpread is the largest difference between the read fractions
// (committed offsets over end offsets, each summed over the topic's
// partitions) of two of topics in lag, among those that have records: 0
// when a group reads them in step, near 1 when it reads one to its end
// before it starts another. Reference data (the item master, produced
// before a backlog and meant to be read first) is left out by the caller.
func topicSpread(lag kadm.GroupLag, topics ...string) float64 {
	lo, hi, n := 1.0, 0.0, 0
	for _, t := range topics {
		ps := lag[t]
		var read, end int64
		for _, m := range ps {
			read += max(m.Commit.At, 0)
			end += m.End.Offset
		}
		if end <= 0 {
			continue
		}
		f := min(float64(read)/float64(end), 1)
		lo, hi, n = min(lo, f), max(hi, f), n+1
	}
	if n < 2 {
		return 0
	}
	return hi - lo
}

// childEnv is the environment of a serve process run with cfg: this
// process's, less every Stockflow setting, plus cfg's.
func childEnv(cfg config.Config) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STOCKFLOW_") {
			env = append(env, kv)
		}
	}
	return append(env, cfg.Env()...)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) == 0 {
		return "(no output)"
	}
	return strings.TrimSpace(string(t.b))
}

// settingsOf says which of the folder's and memory settings cfg changes
// from the defaults, or "default settings".
func settingsOf(cfg config.Config) string {
	def := config.Default()
	var out []string
	for _, o := range []struct {
		flag      string
		got, want int
	}{{"-folder-cache-skus", cfg.FolderCacheSKUs, def.FolderCacheSKUs}, {"-folder-poll-records", cfg.FolderPollRecords, def.FolderPollRecords},
		{"-folder-in-flight", cfg.FolderInFlight, def.FolderInFlight}, {"-memory-limit-mib", cfg.MemoryLimitMiB, def.MemoryLimitMiB},
		{"-normalizer-fetch-max-bytes", cfg.NormalizerFetchMaxBytes, def.NormalizerFetchMaxBytes}} {
		if o.got != o.want {
			out = append(out, fmt.Sprintf("%s %d", o.flag, o.got))
		}
	}
	if cfg.NormalizerAlign != def.NormalizerAlign {
		out = append(out, fmt.Sprintf("-normalizer-align %v", cfg.NormalizerAlign))
	}
	if cfg.Kafka.FetchMaxBytes != def.Kafka.FetchMaxBytes {
		out = append(out, fmt.Sprintf("-kafka-fetch-max-bytes %d", cfg.Kafka.FetchMaxBytes))
	}
	if len(out) == 0 {
		return "default settings"
	}
	return "default settings but " + strings.Join(out, " ")
}
