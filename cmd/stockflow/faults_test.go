//go:build faults

package main

// The fault suite: the real Kafka broker, a redis-server of its own and
// `stockflow serve` instances as separate OS processes, under kill -9,
// SIGTERM, SIGSTOP, broker and Redis restarts. After each scenario the
// ledger must pass `stockflow verify` and equal the ledger an undisturbed
// in-process pipeline makes of the same seeded events.
//
// It kills and restarts the shared local Kafka broker, so nothing else may
// use the broker meanwhile: make test runs it after the other tests, make
// test-faults runs it alone. -soak (make test-soak) runs the long
// variants. STOCKFLOW_FAULTS_KEEP_LOGS=1 keeps every process's log, and
// STOCKFLOW_FAULTS_LOG_LEVEL=debug adds the Kafka clients' group and
// producer details; a scenario that stalls keeps its logs regardless,
// with a goroutine dump of each live process.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/sim"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/testenv"
	"github.com/stockflow/stockflow/processors"
)

var (
	binary string
	soak   = flag.Bool("soak", false, "run the long variants: ten times the events, the faults repeated ten times as often")
)

// soaked is n, or ten times n for the long variants (-soak).
func soaked(n int) int {
	if *soak {
		return 10 * n
	}
	return n
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stockflow-faults")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "stockflow")
	out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// scenario is one fault scenario's world: fresh topics and groups on the
// shared broker, a redis-server of its own, and stockflow processes.
type scenario struct {
	t     *testing.T
	cfg   config.Config
	dir   string
	redis *exec.Cmd
	procs []*proc
	codec *avro.Codec
	prod  *kgo.Client
	adm   *kadm.Client
}

type proc struct {
	name string
	cmd  *exec.Cmd
	http string
	done chan struct{}
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	s := &scenario{t: t, cfg: testenv.Config(t, 0), dir: t.TempDir()}
	s.cfg.Redis.DB = 0
	s.cfg.Redis.Addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.startRedis(true)
	s.setUp()
	return s
}

// setUp makes the scenario's topics (6 partitions) and producer.
func (s *scenario) setUp() {
	t := s.t
	s.cfg.Kafka.Partitions = 6
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.codec = codec
	s.prod, err = kgo.NewClient(kafka.ClientOpts(s.cfg.Kafka, kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		t.Fatal(err)
	}
	s.adm = kadm.NewClient(s.prod)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	specs := kafka.WithMinInsync(kafka.Topics(s.cfg.Topics), s.cfg.Kafka.MinInsyncReplicas)
	if err := kafka.EnsureTopics(ctx, s.adm, 6, int16(s.cfg.Kafka.Replication), specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("STOCKFLOW_FAULTS_KEEP_LOGS") != "" {
			s.keepLogs(false)
		}
		for _, p := range s.procs {
			p.kill()
		}
		s.prod.Close()
		if s.redis != nil && s.redis.Process != nil {
			s.redis.Process.Kill()
			s.redis.Wait()
		}
	})
}

// startRedis runs redis-server on the scenario's port, with AOF (everysec)
// when persist is true, or with no persistence at all.
func (s *scenario) startRedis(persist bool) {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.cfg.Redis.Addr)
	args := []string{"--bind", "127.0.0.1", "--port", port, "--dir", s.dir, "--save", ""}
	if persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = diesWithTest()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	s.redis = cmd
	s.waitPort(s.cfg.Redis.Addr)
}

// diesWithTest has a child process killed when the test binary dies, even
// by a panic (a test timeout) that skips the cleanups.
func diesWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func (s *scenario) killRedis() {
	s.redis.Process.Signal(syscall.SIGKILL)
	s.redis.Wait()
}

func (s *scenario) waitPort(addr string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("%s not listening", addr)
}

// rdb is a client of the scenario's Redis (a Redis Cluster's, in cluster
// mode); store is the ledger in it.
func (s *scenario) rdb() redis.UniversalClient { return store.Open(s.cfg.Redis) }

func (s *scenario) store(rdb redis.UniversalClient) *ledger.Store {
	return ledger.New(rdb, ledger.Config{KeyPrefix: s.cfg.Redis.KeyPrefix})
}

// kafkaFlags point a stockflow command at the scenario's brokers, over
// SASL_SSL when the scenario's Kafka settings say so (the password through
// a file, as a deployment would).
func (s *scenario) kafkaFlags() []string {
	k := s.cfg.Kafka
	out := []string{"-kafka-brokers", strings.Join(k.Brokers, ",")}
	if k.TLSCA != "" {
		out = append(out, "-kafka-tls-ca", k.TLSCA)
	}
	if k.SASLMechanism != "" {
		pw := filepath.Join(s.dir, "kafka-password")
		if err := os.WriteFile(pw, []byte(k.SASLPassword+"\n"), 0o600); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, "-kafka-sasl-mechanism", k.SASLMechanism, "-kafka-sasl-username", k.SASLUsername, "-kafka-sasl-password-file", pw)
	}
	return out
}

// redisFlags point a stockflow command at the scenario's Redis.
func (s *scenario) redisFlags() []string {
	if s.cfg.Redis.Cluster() {
		return []string{"-redis-cluster-addrs", strings.Join(s.cfg.Redis.ClusterAddrs, ","), "-redis-key-prefix", s.cfg.Redis.KeyPrefix}
	}
	return []string{"-redis-addr", s.cfg.Redis.Addr, "-redis-key-prefix", s.cfg.Redis.KeyPrefix}
}

// start runs `stockflow serve` as a process; extra holds STOCKFLOW_*=...
// environment settings and further flags.
func (s *scenario) start(name string, extra ...string) *proc {
	s.t.Helper()
	t := s.cfg.Topics
	p := &proc{name: name, http: fmt.Sprintf("127.0.0.1:%d", freePort(s.t)), done: make(chan struct{})}
	args := append([]string{"serve",
		"-kafka-replication", strconv.Itoa(s.cfg.Kafka.Replication), "-kafka-min-insync-replicas", strconv.Itoa(s.cfg.Kafka.MinInsyncReplicas),
		"-kafka-normalizer-group", s.cfg.Kafka.NormalizerGroup, "-kafka-folder-group", s.cfg.Kafka.FolderGroup,
		"-kafka-reconciler-group", s.cfg.Kafka.ReconcilerGroup, "-topic-snapshots", t.Snapshots, "-topic-reconciliation", t.Reconciliation,
		"-topic-inventory", t.Inventory, "-topic-orders", t.Orders, "-topic-supplier", t.Supplier, "-topic-catalog", t.Catalog,
		"-topic-ledger", t.Ledger, "-topic-holds", t.Holds, "-topic-availability", t.Availability, "-topic-alerts", t.Alerts, "-topic-dlq", t.DLQ, "-topic-index", t.Index,
		"-topic-commitments", t.Commitments,
		"-http-addr", p.http, "-log-format", "json", "-rate-limit", "0", "-groups", "G=L1",
		"-kafka-session-timeout", "6s", "-instance-id", instanceName(name), "-log-level", logLevel(),
	}, append(s.kafkaFlags(), s.redisFlags()...)...)
	env := os.Environ()
	for _, x := range extra {
		if strings.HasPrefix(x, "STOCKFLOW_") {
			env = append(env, x)
		} else {
			args = append(args, x)
		}
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = env
	p.cmd.SysProcAttr = diesWithTest()
	logf, err := os.OpenFile(filepath.Join(s.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p
}

// instanceName is the instance id of a process: restarts of "a" (a1, a2,
// ...) share the id "a", as replicas of a StatefulSet would.
func instanceName(name string) string {
	return strings.TrimRight(name, "0123456789")
}

func (p *proc) signal(sig syscall.Signal) {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
}

func (p *proc) kill() { p.signal(syscall.SIGKILL); <-p.done }

// term stops the process gracefully and fails the test if it takes too long.
func (p *proc) term(t *testing.T) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatalf("%s did not stop within 60s of SIGTERM", p.name)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// clock gives the generator deterministic event times, so a reference run
// makes the very same events.
func clock() func() time.Time {
	var n int64
	base := time.Now().UTC().Truncate(time.Hour)
	return func() time.Time { n++; return base.Add(time.Duration(n) * 10 * time.Millisecond) }
}

const skus = 60

// newGen returns the seeded generator of a scenario; the reference run
// makes one with the same seed and gets the very same events.
func (s *scenario) newGen(seed uint64) *sim.Generator {
	return sim.NewGenerator(seed, sim.Catalogue{SKUs: skus}, s.cfg.Topics, clock())
}

// generate produces the next n events of gen (after its catalogue and
// opening counts, unless skipCatalog) at rate events/s (0: as fast as the
// broker takes them), duplicating a share dup of them.
func (s *scenario) generate(ctx context.Context, gen *sim.Generator, n int, rate, dup float64, skipCatalog bool) sim.Stats {
	s.t.Helper()
	st, err := sim.New(sim.Config{Seed: 7, Count: n, Rate: rate, DuplicateRatio: dup, SkipCatalog: skipCatalog}, gen, s.codec, s.prod, quiet).Run(ctx)
	if err != nil {
		s.t.Fatalf("generate: %v", err)
	}
	return st
}

// generateAsync produces the next n events of gen (after its catalogue) at
// rate events/s in the background; the channel yields when all are
// produced. A scenario that ends early stops the generator and waits for
// it, so it never reports after the scenario is over.
func (s *scenario) generateAsync(gen *sim.Generator, n int, rate float64) <-chan sim.Stats {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan sim.Stats, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		st, err := sim.New(sim.Config{Seed: 7, Count: n, Rate: rate}, gen, s.codec, s.prod, quiet).Run(ctx)
		if err != nil && ctx.Err() == nil {
			s.t.Errorf("generate: %v", err)
		}
		done <- st
	}()
	s.t.Cleanup(func() { cancel(); <-finished })
	return done
}

// caughtUp waits until both groups have no lag, twice in a row, and returns how long it took.
func (s *scenario) caughtUp(within time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	zero := 0
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lags, err := s.adm.Lag(ctx, s.cfg.Kafka.NormalizerGroup, s.cfg.Kafka.FolderGroup)
		cancel()
		total := int64(-1)
		if err == nil {
			total = 0
			lags.Each(func(l kadm.DescribedGroupLag) {
				if l.Error() != nil {
					total = -1
					return
				}
				if total >= 0 {
					total += l.Lag.Total()
				}
			})
			if len(lags) < 2 {
				total = -1
			}
		}
		last = fmt.Sprintf("lag %d (err %v)", total, err)
		if total == 0 {
			zero++
			if zero >= 2 {
				return time.Since(start)
			}
		} else {
			zero = 0
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.keepLogs(true)
	s.t.Fatalf("not caught up within %v: %s", within, last)
	return 0
}

// keepLogs keeps the processes' logs where they can be read after the
// run and prints the last lines of each. With dump, every live process
// first dumps its goroutines (SIGQUIT) into its log.
func (s *scenario) keepLogs(dump bool) {
	keep, err := os.MkdirTemp("", "stockflow-faults-logs-")
	if err != nil {
		keep = s.dir
	}
	for _, p := range s.procs {
		if dump && !p.exited() {
			p.signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
		}
		b, _ := os.ReadFile(filepath.Join(s.dir, p.name+".log"))
		os.WriteFile(filepath.Join(keep, p.name+".log"), b, 0o644)
		var logLines [][]byte // the JSON log lines, without the dump
		for _, l := range bytes.Split(b, []byte("\n")) {
			if bytes.HasPrefix(l, []byte("{")) {
				logLines = append(logLines, l)
			}
		}
		s.t.Logf("%s, last log lines:\n%s", p.name, lastLines(bytes.Join(logLines, []byte("\n")), 15))
	}
	s.t.Logf("full logs: %s", keep)
}

// verify runs `stockflow verify` (the binary) against the scenario.
func (s *scenario) verify() {
	s.t.Helper()
	t := s.cfg.Topics
	args := append([]string{"verify", "-topic-ledger", t.Ledger, "-topic-dlq", t.DLQ, "-log-format", "text"},
		append(s.kafkaFlags(), s.redisFlags()...)...)
	out, err := exec.Command(binary, args...).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("LEDGER==FOLD")) {
		s.t.Fatalf("stockflow verify: %v\n%s", err, lastLines(out, 40))
	}
	s.t.Logf("verify: %s", strings.TrimSpace(string(lastLines(out, 2))))
}

func lastLines(b []byte, lines int) []byte {
	ls := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return bytes.Join(ls, []byte("\n"))
}

// reference folds the same seeded events in an undisturbed in-process
// pipeline and returns every position.
func reference(t *testing.T, seed uint64, n int) map[string]ledger.Components {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	cfg := config.Default()
	cfg.Kafka.Brokers = c.ListenAddrs()
	codec, _ := events.NewCodec(nil, 0)
	cl, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), 6, 1, kafka.Topics(cfg.Topics)); err != nil {
		t.Fatal(err)
	}
	store := ledger.New(rdb, ledger.Config{})
	catalog, err := processors.NewCatalog(kafka.ClientOpts(cfg.Kafka), cfg.Topics.Catalog, codec, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); catalog.Run(ctx) }()
	go func() {
		defer wg.Done()
		processors.NewNormalizer(processors.NormalizerConfig{Kafka: cfg.Kafka, Topics: cfg.Topics, InstanceID: "ref"}, codec, store, catalog, quiet).Run(ctx)
	}()
	go func() {
		defer wg.Done()
		processors.NewFolder(processors.FolderConfig{Kafka: cfg.Kafka, Topics: cfg.Topics}, codec, store, cl, quiet).Run(ctx)
	}()
	gen := sim.NewGenerator(seed, sim.Catalogue{SKUs: skus}, cfg.Topics, clock())
	if _, err := sim.New(sim.Config{Count: n}, gen, codec, cl, quiet).Run(ctx); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(2 * time.Minute)
	for zero := 0; zero < 2; {
		if time.Now().After(deadline) {
			t.Fatal("reference pipeline did not catch up")
		}
		time.Sleep(300 * time.Millisecond)
		lags, err := adm.Lag(ctx, cfg.Kafka.NormalizerGroup, cfg.Kafka.FolderGroup)
		if err != nil || len(lags) < 2 {
			continue
		}
		var total int64
		lags.Each(func(l kadm.DescribedGroupLag) { total += l.Lag.Total() })
		if total == 0 {
			zero++
		} else {
			zero = 0
		}
	}
	out := snapshot(t, store)
	cancel()
	wg.Wait()
	return out
}

func snapshot(t *testing.T, store *ledger.Store) map[string]ledger.Components {
	t.Helper()
	out := map[string]ledger.Components{}
	for k, p := range positions(t, store) {
		out[k] = p.Components
	}
	return out
}

// positions reads every position of the generator's SKUs, with its version.
func positions(t *testing.T, st *ledger.Store) map[string]ledger.Position {
	t.Helper()
	out := map[string]ledger.Position{}
	ctx := context.Background()
	for i := 0; i < skus; i++ {
		sku := sim.SKU(i)
		locs, err := st.Locations(ctx, sku)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range locs {
			p, err := st.Position(ctx, sku, l, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			out[sku+"@"+l] = p
		}
	}
	return out
}

// applied is Redis's applied offsets of the ledger topic.
func (s *scenario) applied() map[int32]int64 {
	s.t.Helper()
	rdb := s.rdb()
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.store(rdb).AppliedOffsets(ctx, s.cfg.Topics.Ledger)
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// appliedSettled waits until Redis's applied offsets have moved past before
// and then stayed the same for 3 s: the folder folded what the ledger had
// beyond before, with nothing new arriving.
func (s *scenario) appliedSettled(before map[int32]int64, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var last map[int32]int64
	var since time.Time
	for time.Now().Before(deadline) {
		now := s.applied()
		if !maps.Equal(now, before) && maps.Equal(now, last) {
			if time.Since(since) >= 3*time.Second {
				return
			}
		} else {
			last, since = now, time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.keepLogs(true)
	s.t.Fatalf("redis's applied offsets did not settle past %v within %v (last %v)", before, within, last)
}

// equalsReference compares the scenario's ledger with the reference.
func (s *scenario) equalsReference(seed uint64, n int) {
	s.t.Helper()
	want := reference(s.t, seed, n)
	rdb := s.rdb()
	defer rdb.Close()
	got := snapshot(s.t, s.store(rdb))
	if len(want) == 0 {
		s.t.Fatal("the reference ledger is empty")
	}
	var diffs []string
	for k, w := range want {
		if got[k] != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v want %+v", k, got[k], w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, k+": not in the reference")
		}
	}
	if len(diffs) > 0 {
		if len(diffs) > 10 {
			diffs = diffs[:10]
		}
		s.keepLogs(false)
		ends, err := s.adm.ListEndOffsets(context.Background(), s.cfg.Topics.Ledger)
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		applied, _ := s.store(rdb).AppliedOffsets(context.Background(), s.cfg.Topics.Ledger)
		s.t.Fatalf("ledger differs from an undisturbed fold of the same events (ledger log end offsets sum to %d (err %v), Redis applied offsets %v):\n%s",
			total, err, applied, strings.Join(diffs, "\n"))
	}
	s.t.Logf("ledger equals the reference fold: %d positions", len(want))
}

// outputsMatchLedger checks what planning tools see: for every position in
// Redis, the last AvailabilityChanged on the availability topic carries the
// same numbers (a position never published must be all zero), so no output
// was lost to a crash between the Redis write and the produce.
func (s *scenario) outputsMatchLedger() {
	s.t.Helper()
	ctx := context.Background()
	last := map[string]*events.AvailabilityChanged{}
	n := 0
	err := deadletter.ReadTopic(ctx, kafka.Conn(s.cfg.Kafka), s.cfg.Topics.Availability, nil, func(r *kgo.Record) error {
		if r.Attrs.IsControl() {
			return nil
		}
		v, err := s.codec.Decode(ctx, r.Value)
		if err != nil {
			return fmt.Errorf("availability %d@%d: %w", r.Partition, r.Offset, err)
		}
		a := v.(*events.AvailabilityChanged)
		if prev, ok := last[a.SKU+"@"+a.Location]; ok && prev.Version > a.Version {
			return nil // an older version published again: the newest stands
		}
		last[a.SKU+"@"+a.Location] = a
		n++
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	rdb := s.rdb()
	defer rdb.Close()
	var diffs []string
	for k, c := range snapshot(s.t, s.store(rdb)) {
		a, ok := last[k]
		if !ok {
			if c != (ledger.Components{}) {
				diffs = append(diffs, fmt.Sprintf("%s: never published, ledger has %+v", k, c))
			}
			continue
		}
		var inbound int64
		for _, b := range a.Inbound {
			inbound += b.Quantity
		}
		got := ledger.Components{OnHand: a.OnHand, Reserved: a.Reserved, Picked: a.Picked, Held: a.Held, Inbound: inbound,
			SafetyStock: a.SafetyStock, ReorderPoint: a.ReorderPoint}
		if got != c {
			diffs = append(diffs, fmt.Sprintf("%s: last published %+v (version %d), ledger has %+v", k, got, a.Version, c))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		if len(diffs) > 10 {
			diffs = diffs[:10]
		}
		s.t.Fatalf("the availability topic differs from the ledger:\n%s", strings.Join(diffs, "\n"))
	}
	s.t.Logf("the last AvailabilityChanged of every position equals the ledger (%d records read)", n)
}

// commitmentsMatchLedger checks what planning tools see of the orders'
// promises: for every order line in Redis, the last CommitmentChanged of
// the line on the commitments topic is its promise (a line never promised
// has none, a line with nothing open ended with nothing open), and a
// change published twice (after a crash between the write and the produce)
// is the same record both times.
func (s *scenario) commitmentsMatchLedger() {
	s.t.Helper()
	ctx := context.Background()
	last := map[string]*events.CommitmentChanged{}
	byID := map[string][]byte{}
	n, repeats := 0, 0
	err := deadletter.ReadTopic(ctx, kafka.Conn(s.cfg.Kafka), s.cfg.Topics.Commitments, nil, func(r *kgo.Record) error {
		if r.Attrs.IsControl() {
			return nil
		}
		v, err := s.codec.Decode(ctx, r.Value)
		if err != nil {
			return fmt.Errorf("commitment %d@%d: %w", r.Partition, r.Offset, err)
		}
		c := v.(*events.CommitmentChanged)
		if prev, ok := byID[c.CommitmentID]; ok {
			repeats++
			if !bytes.Equal(prev, r.Value) {
				return fmt.Errorf("commitment %s was published twice, differently", c.CommitmentID)
			}
		}
		byID[c.CommitmentID] = r.Value
		last[c.SKU+"|"+c.OrderID+"|"+c.LineID] = c
		n++
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	rdb := s.rdb()
	defer rdb.Close()
	st := s.store(rdb)
	var diffs []string
	lines := 0
	for i := 0; i < skus; i++ {
		sku := sim.SKU(i)
		orders, _, _, err := st.Lines(ctx, sku)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, l := range orders {
			lines++
			want, promised := ledger.ParsePromise(l.Promise)
			c, published := last[sku+"|"+l.OrderID+"|"+l.LineID]
			switch {
			case !published && promised:
				diffs = append(diffs, fmt.Sprintf("%s %s/%s: promised %q, never published", sku, l.OrderID, l.LineID, l.Promise))
			case published && !promised && c.Promise.OpenQuantity != 0:
				diffs = append(diffs, fmt.Sprintf("%s %s/%s: no promise in the ledger, last published %+v", sku, l.OrderID, l.LineID, c.Promise))
			case published && promised && !samePromise(c.Promise, want):
				diffs = append(diffs, fmt.Sprintf("%s %s/%s: last published %+v, ledger has %q", sku, l.OrderID, l.LineID, c.Promise, l.Promise))
			}
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		s.t.Fatalf("the commitments topic differs from the ledger (%d of %d lines):\n%s", len(diffs), lines, strings.Join(diffs[:min(10, len(diffs))], "\n"))
	}
	if n == 0 && lines > 0 {
		s.t.Fatalf("%d order lines, but no commitment was published", lines)
	}
	s.t.Logf("the last CommitmentChanged of every order line equals the ledger's promise (%d lines, %d records, %d published again)", lines, n, repeats)
}

func samePromise(p events.LinePromise, q ledger.Promise) bool {
	if p.OpenQuantity != q.Open || p.ConfirmedNow != q.Confirmed || p.Unpromised != q.Unpromised || len(p.Promised) != len(q.ByDay) {
		return false
	}
	for i, d := range q.ByDay {
		if p.Promised[i].Quantity != d.Quantity || p.Promised[i].Date.Unix()/86400 != d.Day {
			return false
		}
	}
	return true
}

func (s *scenario) report(name string, events int, recovery time.Duration) {
	s.t.Logf("RESULT %s: %d source events, caught up %v after the stream ended", name, events, recovery.Round(100*time.Millisecond))
}

// stackScript runs a deploy/local script.
func stackScript(t *testing.T, script string, args ...string) {
	t.Helper()
	out, err := exec.Command(filepath.Join("..", "..", "deploy", "local", script), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
}

func kafkaPid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", ".stack", "kafka.pid"))
	if err != nil {
		t.Fatalf("the local Kafka broker was not started by deploy/local (no pid file): %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func TestFaults(t *testing.T) {
	n := soaked(6000)

	t.Run("kill -9 an instance repeatedly mid-stream", func(t *testing.T) {
		s := newScenario(t)
		p := s.start("a")
		done := s.generateAsync(s.newGen(1), n, 150)
		rnd := rand.New(rand.NewPCG(1, 2))
		kills := 0
	loop:
		for {
			select {
			case <-done:
				break loop
			case <-time.After(time.Duration(2000+rnd.IntN(8000)) * time.Millisecond):
				p.kill()
				kills++
				p = s.start(fmt.Sprint("a", kills))
			}
		}
		rec := s.caughtUp(3 * time.Minute)
		s.verify()
		s.equalsReference(1, n)
		s.outputsMatchLedger()
		s.commitmentsMatchLedger()
		t.Logf("%d kills", kills)
		s.report("kill9-instance", n, rec)
	})

	t.Run("crash after the Redis apply, before the commit", func(t *testing.T) {
		s := newScenario(t)
		s.generate(context.Background(), s.newGen(2), n, 0, 0, false)
		for i := 0; i < 4; i++ {
			p := s.start(fmt.Sprint("fp", i), "STOCKFLOW_FAILPOINT=crash-after-redis-apply:1")
			select {
			case <-p.done:
			case <-time.After(90 * time.Second):
				t.Fatal("the failpoint never fired")
			}
		}
		s.start("after")
		rec := s.caughtUp(3 * time.Minute)
		s.verify()
		s.equalsReference(2, n)
		s.outputsMatchLedger()
		s.commitmentsMatchLedger()
		s.report("crash-after-redis-apply", n, rec)
	})

	t.Run("the folder group's Kafka offsets moved to latest while stopped: Redis wins", func(t *testing.T) {
		s := newScenario(t)
		ctx := context.Background()
		gen := s.newGen(3)
		p := s.start("a")
		s.generate(ctx, gen, n/2, 0, 0, false)
		s.caughtUp(2 * time.Minute)
		p.term(t)
		s.generate(ctx, gen, n/2, 0, 0, true)
		// Let a normalizer-only instance put the second half on the ledger,
		// then move the folder group's committed offsets to the end of it:
		// Kafka now says everything is folded, Redis says half is.
		q := s.start("normalize-only", "-no-folder")
		waitFor(t, 2*time.Minute, func() bool {
			lags, err := s.adm.Lag(ctx, s.cfg.Kafka.NormalizerGroup)
			return err == nil && len(lags) == 1 && lags[s.cfg.Kafka.NormalizerGroup].Lag.Total() == 0
		})
		q.term(t)
		ends, err := s.adm.ListEndOffsets(ctx, s.cfg.Topics.Ledger)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.adm.CommitOffsets(ctx, s.cfg.Kafka.FolderGroup, ends.Offsets()); err != nil {
			t.Fatal(err)
		}
		before := s.applied()
		s.start("b")
		// Kafka's lag reads 0 from the start here, so it cannot say when
		// b is done: Redis's applied offsets can.
		rec := s.caughtUp(3 * time.Minute)
		s.appliedSettled(before, 3*time.Minute)
		s.verify()
		s.equalsReference(3, n)
		s.report("kafka-offsets-to-latest", n, rec)
	})

	t.Run("a paused zombie: SIGSTOP past the session timeout, then SIGCONT", func(t *testing.T) {
		s := newScenario(t)
		done := s.generateAsync(s.newGen(4), n, 400)
		s.start("a")
		b := s.start("b")
		time.Sleep(4 * time.Second)
		b.signal(syscall.SIGSTOP) // frozen mid-stream, possibly mid-apply
		time.Sleep(15 * time.Second)
		b.signal(syscall.SIGCONT) // wakes up as a zombie: its partitions are a's now
		<-done
		rec := s.caughtUp(3 * time.Minute)
		s.verify()
		s.equalsReference(4, n)
		s.report("sigstop-zombie", n, rec)
	})

	t.Run("Redis rolled back to an older snapshot while running", func(t *testing.T) {
		s := newScenario(t)
		ctx := context.Background()
		gen := s.newGen(8)
		s.start("a")
		s.generate(ctx, gen, n/2, 0, 0, false)
		s.caughtUp(2 * time.Minute)
		rdb := s.rdb()
		if err := rdb.Save(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		rdb.Close()
		old, err := os.ReadFile(filepath.Join(s.dir, "dump.rdb"))
		if err != nil {
			t.Fatal(err)
		}
		s.generate(ctx, gen, n/2, 0, 0, true)
		s.caughtUp(2 * time.Minute)
		// Back in time: Redis comes back with the older snapshot, and the
		// instance keeps running through it.
		s.killRedis()
		os.RemoveAll(filepath.Join(s.dir, "appendonlydir"))
		if err := os.WriteFile(filepath.Join(s.dir, "dump.rdb"), old, 0o644); err != nil {
			t.Fatal(err)
		}
		s.startRedis(false)
		// A little more traffic, on SKUs of its own, makes the folder poll.
		for i := 0; i < 30; i++ {
			ev := &events.InventoryReceived{Meta: events.Meta{EventID: fmt.Sprint("after-rollback-", i), EventTime: time.Now().UTC(), Source: "t"},
				SKU: fmt.Sprint("ROLLBACK-", i%6), Location: "L1", Quantity: 1, UoM: "EA"}
			b, _ := s.codec.Encode(ctx, s.cfg.Topics.Inventory, ev)
			if err := s.prod.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.Topics.Inventory, Key: []byte(ev.SKU), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		rec := s.caughtUp(3 * time.Minute)
		s.verify()
		s.equalsReference(8, n)
		s.report("redis-rollback", n, rec)
	})

	t.Run("scale 1 -> 3 -> 1 with SIGTERM, several times", func(t *testing.T) {
		s := newScenario(t)
		done := s.generateAsync(s.newGen(5), n, 400)
		a := s.start("a")
		for round := 0; round < soaked(3); round++ {
			b, c := s.start(fmt.Sprint("b", round)), s.start(fmt.Sprint("c", round))
			time.Sleep(4 * time.Second)
			b.term(t)
			c.term(t)
			time.Sleep(2 * time.Second)
		}
		<-done
		rec := s.caughtUp(3 * time.Minute)
		if a.exited() {
			t.Fatal("instance a died")
		}
		s.verify()
		s.equalsReference(5, n)
		s.report("scale-1-3-1", n, rec)
	})

	t.Run("kill -9 the Kafka broker and restart it, while producing", func(t *testing.T) {
		s := newScenario(t)
		s.start("a")
		done := s.generateAsync(s.newGen(6), n, 300)
		for i := 0; i < soaked(3); i++ {
			time.Sleep(5 * time.Second)
			syscall.Kill(kafkaPid(t), syscall.SIGKILL)
			time.Sleep(time.Second)
			stackScript(t, "kafka.sh", "start")
		}
		<-done
		rec := s.caughtUp(4 * time.Minute)
		s.verify()
		s.equalsReference(6, n)
		t.Logf("%d broker kills", soaked(3))
		s.report("kill9-kafka", n, rec)
	})

	t.Run("kill -9 redis-server (AOF) and restart; then lose Redis entirely: ledger and document index rebuilt", func(t *testing.T) {
		s := newScenario(t)
		ctx := context.Background()
		p := s.start("a")
		gen := s.newGen(7)
		done := s.generateAsync(gen, n, 500)
		time.Sleep(5 * time.Second)
		s.killRedis()
		time.Sleep(2 * time.Second)
		s.startRedis(true)
		<-done
		rec := s.caughtUp(3 * time.Minute)
		s.verify()
		s.equalsReference(7, n)
		s.report("kill9-redis-aof", n, rec)

		// Documents whose every reference comes after the loss: orders
		// (lines at a location and against a group) and a PO in cases.
		docs := s.indexDocs()
		s.produce(docs.before...)
		s.caughtUp(2 * time.Minute)
		docs.check(s, true)

		// Total loss: stop, restart Redis with no data, start again. The
		// folder finds no marker and no applied offsets and rebuilds from
		// the start of the ledger log.
		p.term(t)
		before := func() map[string]ledger.Components {
			rdb := s.rdb()
			defer rdb.Close()
			return snapshot(t, s.store(rdb))
		}()
		s.killRedis()
		os.Remove(filepath.Join(s.dir, "appendonly.aof"))
		os.RemoveAll(filepath.Join(s.dir, "appendonlydir"))
		s.startRedis(false)
		start := time.Now()
		p = s.start("rebuilt")
		waitFor(t, 3*time.Minute, func() bool {
			rdb := s.rdb()
			defer rdb.Close()
			after := snapshot(t, s.store(rdb))
			return fmt.Sprint(after) == fmt.Sprint(before)
		})
		t.Logf("RESULT redis-lost-rebuild: ledger rebuilt identically in %v", time.Since(start).Round(100*time.Millisecond))
		s.verify()

		// The document index went with the rest. What refers to documents
		// accepted or released before the loss must still resolve: the
		// cancellations and the acknowledgement above, and the stream's
		// next events (cancellations, acknowledgements, ASNs and closes of
		// its open documents).
		start = time.Now()
		s.produce(docs.after...)
		more := soaked(1500)
		s.generate(ctx, gen, more, 0, 0, true)
		rec = s.caughtUp(3 * time.Minute)
		if dead := s.deadLetters(); len(dead) > 0 {
			t.Fatalf("dead-lettered: %q", dead)
		}
		docs.check(s, false)
		s.verify()
		s.equalsReference(7, n+more)
		t.Logf("document index: %s", p.metrics(t, "stockflow_normalizer_index_"))
		t.Logf("RESULT redis-lost-index: %d references to documents from before the loss and %d more stream events resolved, none dead-lettered, caught up %v after the stream ended (%v in all)",
			len(docs.after), more, rec.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("duplicates: 5% produced twice, and a whole range replayed", func(t *testing.T) {
		s := newScenario(t)
		s.start("a")
		ctx := context.Background()
		st := s.generate(ctx, s.newGen(9), n, 0, 0.05, false)
		// Replay a whole range: the first quarter of the stream again, verbatim.
		replayed := n / 4
		s.generate(ctx, s.newGen(9), replayed, 0, 0, false)
		rec := s.caughtUp(3 * time.Minute)
		s.verify()
		s.equalsReference(9, n)
		t.Logf("%d duplicates plus a replayed range of %d", st.Duplicates, replayed)
		s.report("duplicates", n+st.Duplicates+replayed, rec)
	})

	t.Run("counts and movements delivered in shuffled orders give the same on hand", func(t *testing.T) {
		s := newScenario(t)
		s.start("a")
		ctx := context.Background()
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		facts := func(sku string) []events.Source {
			m := func(id string, min int) events.Meta {
				return events.Meta{EventID: sku + "-" + id, EventTime: base.Add(time.Duration(min) * time.Minute), Source: "t"}
			}
			var out []events.Source
			for i := 0; i < 12; i++ {
				out = append(out, &events.InventoryAdjusted{Meta: m(fmt.Sprint("adj", i), i*5), SKU: sku, Location: "L1", Quantity: int64(1+i%5) * int64(1-2*(i%2)), UoM: "EA", Reason: "t"})
			}
			for i, at := range []int{7, 23, 41} {
				out = append(out, &events.InventoryCounted{Meta: m(fmt.Sprint("cnt", i), at+2), SKU: sku, Location: "L1", CountedQuantity: int64(100 + 10*i), UoM: "EA", AsOf: base.Add(time.Duration(at) * time.Minute)})
			}
			return out
		}
		rnd := rand.New(rand.NewPCG(10, 10))
		var skus []string
		for k := 0; k < 5; k++ {
			sku := fmt.Sprint("SHUF-", k)
			skus = append(skus, sku)
			fs := facts(sku)
			rnd.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
			for _, ev := range fs {
				b, _ := s.codec.Encode(ctx, s.cfg.Topics.Inventory, ev)
				if err := s.prod.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.Topics.Inventory, Key: []byte(sku), Value: b}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		}
		rec := s.caughtUp(2 * time.Minute)
		rdb := s.rdb()
		defer rdb.Close()
		st := s.store(rdb)
		var first int64
		for i, sku := range skus {
			p, err := st.Position(ctx, sku, "L1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = p.OnHand
			} else if p.OnHand != first {
				t.Fatalf("%s on hand %d, %s on hand %d: arrival order changed the result", skus[0], first, sku, p.OnHand)
			}
		}
		s.verify()
		if first == 0 {
			t.Fatal("on hand 0: the scenario applied nothing")
		}
		t.Logf("every order gives on hand %d", first)
		s.report("shuffled-counts-and-movements", 5*15, rec)
	})

	t.Run("poison records of every class: dead-lettered, lag back to 0", func(t *testing.T) {
		s := newScenario(t)
		s.start("a", "-max-record-bytes", "65536")
		ctx := context.Background()
		good, _ := s.codec.Encode(ctx, s.cfg.Topics.Inventory, &events.InventoryReceived{
			Meta: events.Meta{EventID: "good", EventTime: time.Now().UTC(), Source: "t"}, SKU: "POISON", Location: "L1", Quantity: 3, UoM: "EA"})
		unknownID := append([]byte(nil), good...)
		unknownID[4] = 99
		neg, _ := s.codec.Encode(ctx, s.cfg.Topics.Inventory, &events.InventoryReceived{
			Meta: events.Meta{EventID: "neg", EventTime: time.Now().UTC(), Source: "t"}, SKU: "POISON", Location: "L1", Quantity: -3, UoM: "EA"})
		uom, _ := s.codec.Encode(ctx, s.cfg.Topics.Inventory, &events.InventoryReceived{
			Meta: events.Meta{EventID: "uom", EventTime: time.Now().UTC(), Source: "t"}, SKU: "POISON", Location: "L1", Quantity: 3, UoM: "BARREL"})
		poison := [][]byte{append([]byte{7}, good[1:]...), unknownID, good[:len(good)-2], neg, uom, append(append([]byte(nil), good...), make([]byte, 100<<10)...)}
		for _, v := range append(poison, good) {
			if err := s.prod.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.Topics.Inventory, Key: []byte("POISON"), Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		rec := s.caughtUp(2 * time.Minute)
		classes := map[string]bool{}
		err := deadletter.Scan(ctx, kafka.Conn(s.cfg.Kafka), s.cfg.Topics.DLQ, deadletter.Filter{}, func(d deadletter.DeadLetter) error {
			classes[d.Class] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"bad_magic", "unknown_schema", "truncated", "invalid", "unknown_uom", "oversized"} {
			if !classes[c] {
				t.Errorf("no dead letter of class %s (have %v)", c, classes)
			}
		}
		rdb := s.rdb()
		defer rdb.Close()
		if p, _ := s.store(rdb).Position(ctx, "POISON", "L1", time.Now()); p.OnHand != 3 {
			t.Fatalf("the good record after the poison: on hand %d, want 3", p.OnHand)
		}
		s.verify()
		s.report("poison", len(poison)+1, rec)
	})

	t.Run("an upstream transactional producer aborts 10% of its transactions", func(t *testing.T) {
		s := newScenario(t)
		s.start("a")
		ctx := context.Background()
		txn, err := kgo.NewClient(kafka.ClientOpts(s.cfg.Kafka, kgo.TransactionalID("upstream-"+testenv.Suffix()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Close()
		rnd := rand.New(rand.NewPCG(12, 12))
		committed := int64(0)
		for i := 0; i < 200; i++ {
			if err := txn.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			abort := rnd.IntN(10) == 0
			q := int64(1 + rnd.IntN(9))
			ev := &events.InventoryReceived{Meta: events.Meta{EventID: fmt.Sprint("txn-", i), EventTime: time.Now().UTC(), Source: "upstream"},
				SKU: "TXN", Location: "L1", Quantity: q, UoM: "EA"}
			b, _ := s.codec.Encode(ctx, s.cfg.Topics.Inventory, ev)
			if err := txn.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.Topics.Inventory, Key: []byte("TXN"), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(!abort)); err != nil {
				t.Fatal(err)
			}
			if !abort {
				committed += q
			}
		}
		rec := s.caughtUp(2 * time.Minute)
		rdb := s.rdb()
		defer rdb.Close()
		p, err := s.store(rdb).Position(ctx, "TXN", "L1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if p.OnHand != committed {
			t.Fatalf("on hand %d, committed receipts sum to %d: aborted records were applied, or committed ones lost", p.OnHand, committed)
		}
		s.verify()
		s.report("aborted-upstream-transactions", 200, rec)
	})

	t.Run("a hold storm while instances and the broker are killed: never oversold, one answer per hold_id", func(t *testing.T) {
		stock, requests := soaked(300), soaked(900)
		s := newScenario(t)
		a, b := s.start("a"), s.start("b")
		ctx := context.Background()
		s.stock(stock)
		var mu sync.Mutex
		stop := make(chan struct{})
		var faults sync.WaitGroup
		var instanceKills, brokerKills atomic.Int64
		faults.Add(2)
		go func() { // kill -9 instance b every few seconds, and bring it back
			defer faults.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(3 * time.Second):
				}
				mu.Lock()
				b.kill()
				b = s.start(fmt.Sprint("b", i))
				mu.Unlock()
				instanceKills.Add(1)
			}
		}()
		go func() { // kill -9 the broker twice while holds are being decided
			defer faults.Done()
			for i := 0; i < soaked(2); i++ {
				select {
				case <-stop:
					return
				case <-time.After(7 * time.Second):
				}
				syscall.Kill(kafkaPid(t), syscall.SIGKILL)
				time.Sleep(time.Second)
				stackScript(t, "kafka.sh", "start")
				brokerKills.Add(1)
			}
		}()
		answers, _ := s.holdStorm(requests, 30*time.Millisecond, func(k int) *proc { // the storm outlasts several kills
			mu.Lock()
			defer mu.Unlock()
			return []*proc{a, b}[k%2]
		})
		close(stop)
		faults.Wait()
		if instanceKills.Load() == 0 || brokerKills.Load() == 0 {
			t.Fatalf("the storm ended before the faults: %d instance kills, %d broker kills", instanceKills.Load(), brokerKills.Load())
		}
		held, unavailable := checkStorm(t, answers, requests, stock)
		rec := s.caughtUp(2 * time.Minute)
		rdb := s.rdb()
		defer rdb.Close()
		p, err := s.store(rdb).Position(ctx, "STORM", "L1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if p.Held != int64(held) {
			t.Fatalf("the ledger holds %d units, clients were told %d holds succeeded", p.Held, held)
		}
		s.verify()
		t.Logf("%d of %d holds accepted on %d units; %d answers were 503 (retried); %d instance kills, %d broker kills",
			held, requests, stock, unavailable, instanceKills.Load(), brokerKills.Load())
		s.report("hold-storm-under-kills", requests, rec)
	})
	t.Run("holds while the partitions' owners are paused past the session timeout in turn: never oversold, one answer per hold_id", func(t *testing.T) {
		stock, requests := soaked(300), soaked(900)
		s := newScenario(t)
		a, b := s.start("a"), s.start("b")
		api := s.start("api", "-no-folder", "-no-normalizer")
		s.stock(stock)
		stop := make(chan struct{})
		var pauses sync.WaitGroup
		pauses.Go(func() {
			// Whichever owns STORM's partition is frozen once, mid-storm,
			// and wakes as a zombie whose desk may still hold requests.
			for _, p := range []*proc{b, a} {
				select {
				case <-stop:
					return
				case <-time.After(3 * time.Second):
				}
				p.signal(syscall.SIGSTOP)
				time.Sleep(12 * time.Second) // the session timeout is 6 s
				p.signal(syscall.SIGCONT)
			}
		})
		answers, _ := s.holdStorm(requests, 30*time.Millisecond, func(int) *proc { return api })
		close(stop)
		pauses.Wait()
		held, unavailable := checkStorm(t, answers, requests, stock)
		if held != stock {
			t.Fatalf("%d holds accepted on %d units, want exactly %d", held, stock, stock)
		}
		rec := s.caughtUp(2 * time.Minute)
		s.checkHoldAttempts(answers, requests, stock)
		s.verify()
		fenced := 0
		for _, name := range []string{"a", "b"} {
			b, _ := os.ReadFile(filepath.Join(s.dir, name+".log"))
			fenced += bytes.Count(b, []byte("fenced by a newer owner"))
		}
		t.Logf("%d of %d holds accepted on %d units; %d answers were 503 (retried); zombie desks refused an answer %d times", held, requests, stock, unavailable, fenced)
		s.report("hold-storm-under-paused-owners", requests, rec)
	})

	t.Run("the owner of a partition dies between deciding holds and answering them", func(t *testing.T) {
		const stock, requests = 5, 12
		s := newScenario(t)
		// a owns every partition and dies right after journaling its
		// third batch of hold decisions, before answering; the API-only
		// instance takes the requests and waits for the answers. The
		// clients retry a 503 with the same hold_id until decided.
		a := s.start("a", "STOCKFLOW_FAILPOINT=crash-after-hold-journal:3")
		api := s.start("api", "-no-folder", "-no-normalizer")
		s.stock(stock)
		restarted := make(chan time.Duration, 1)
		go func() {
			t0 := time.Now()
			select {
			case <-a.done:
			case <-time.After(2 * time.Minute):
				restarted <- -1
				return
			}
			died := time.Since(t0)
			// Back after the API has stopped waiting (-hold-timeout, 5 s), as
			// a replacement pod would be: the request it journaled but never
			// answered gets a 503 and is released. (Back at once, it answers
			// it: the new owner reads the requests of the last two hold
			// timeouts again and publishes the decision the log holds.)
			time.Sleep(7 * time.Second)
			s.start("a1") // the same instance id, without the failpoint
			restarted <- died
		}()
		answers, _ := s.holdStorm(requests, 200*time.Millisecond, func(int) *proc { return api })
		if died := <-restarted; died < 0 {
			t.Fatal("the failpoint never fired")
		}
		log, err := os.ReadFile(filepath.Join(s.dir, "a.log"))
		if err != nil || !strings.Contains(string(log), "failpoint crash-after-hold-journal: exiting") {
			t.Fatalf("a did not exit at the failpoint (%v)", err)
		}
		held, unavailable := checkStorm(t, answers, requests, stock)
		if held != stock {
			t.Fatalf("%d holds accepted on %d units, want exactly %d", held, stock, stock)
		}
		if unavailable == 0 {
			t.Fatal("no request went unanswered: the failpoint did not cut an answer off")
		}
		rec := s.caughtUp(2 * time.Minute)
		s.checkHoldAttempts(answers, requests, stock)
		s.verify()
		t.Logf("%d of %d holds accepted on %d units; %d answers were 503 (the owner died before answering, then retried)", held, requests, stock, unavailable)
		s.report("owner-dies-between-decision-and-answer", requests, rec)
	})

	t.Run("kill -9 one of two instances for good: the survivor's stall is bounded by the normalizer's transaction timeout", func(t *testing.T) {
		s := newScenario(t)
		timeout := normalizerTxnTimeout(t)
		s.start("survivor")
		doomed := s.start("doomed")
		watch := s.watchLedger()
		// The stream outlasts the stall, so the survivor's own partitions
		// are busy when the dead instance's come to it.
		count := n * 3 / 2
		done := s.generateAsync(s.newGen(16), count, 150)
		time.Sleep(6 * time.Second) // both instances own partitions and are normalizing
		dead := s.killWithTxnOpen(doomed, "doomed")
		if dead.timeout != timeout {
			t.Fatalf("the dead instance's transaction has a timeout of %v, configured %v", dead.timeout, timeout)
		}
		aborted := s.abortedAfter(dead)
		<-done
		// The dead instance's source partitions that had records after the
		// kill: the survivor must have normalized each of them.
		active := map[string]bool{}
		for k, end := range s.sourceEnds(dead.sources) {
			// Item masters become no ledger entry: the catalog is left out.
			if end > dead.ends[k] && !strings.HasPrefix(k, s.cfg.Topics.Catalog+"/") {
				active[k] = true
			}
		}
		rec := s.caughtUp(3 * time.Minute)
		s.verify()
		s.equalsReference(16, count)
		s.outputsMatchLedger()
		s.commitmentsMatchLedger()
		watch.stop()
		sources, moved, held := watch.stalls(t, dead, active)
		stall := max(sources, held)
		// The broker aborts a timed-out transaction at its next check (every
		// 10 s by default); the survivor takes the dead instance's source
		// partitions once its session (6 s) has timed out. The margin is
		// generous: this is a bound, not a benchmark.
		if bound := timeout + 10*time.Second + 6*time.Second + 30*time.Second; stall > bound {
			t.Fatalf("the dead instance's partitions stalled for %v, more than %v", stall, bound)
		}
		t.Logf("RESULT dead-instance-stall: %d source events, caught up %v after the stream ended; stall %v with a %v transaction timeout: "+
			"%d of the dead instance's %d source partitions (those with records after the kill) normalized again after %v, the %d ledger partitions its open transaction held readable again after %v; the broker aborted it after %v",
			count, rec.Round(100*time.Millisecond), stall.Round(100*time.Millisecond), timeout, moved, len(dead.sources), sources.Round(100*time.Millisecond),
			len(dead.held), held.Round(100*time.Millisecond), (<-aborted).Round(100*time.Millisecond))
	})
}

// normalizerTxnTimeout is the normalizers' transaction timeout in the
// scenario's processes: STOCKFLOW_NORMALIZER_TXN_TIMEOUT, which they
// inherit, or the default.
func normalizerTxnTimeout(t *testing.T) time.Duration {
	v := os.Getenv("STOCKFLOW_NORMALIZER_TXN_TIMEOUT")
	if v == "" {
		return config.Default().NormalizerTxnTimeout
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("STOCKFLOW_NORMALIZER_TXN_TIMEOUT: %v", err)
	}
	return d
}

// deadInstance is an instance killed with its normalizer's transaction
// open: its transactional producer, the transaction's timeout, the source
// partitions it was normalizing and the ledger partitions the transaction
// held, each with the offset the transaction starts at.
type deadInstance struct {
	txnID    string
	killed   time.Time
	producer int64
	timeout  time.Duration
	sources  map[string]bool
	held     map[int32]int64
	// ends are the end offsets of sources when it was killed.
	ends map[string]int64
}

// killWithTxnOpen kills p (instance id instance) with kill -9 while its
// normalizer has a transaction open on the ledger: p is stopped (SIGSTOP)
// until the broker shows one ongoing, and let go again between tries.
func (s *scenario) killWithTxnOpen(p *proc, instance string) deadInstance {
	t := s.t
	t.Helper()
	d := deadInstance{txnID: config.Default().Kafka.ClientID + "-normalizer-" + instance}
	deadline := time.Now().Add(time.Minute)
	for tries := 1; ; tries++ {
		if time.Now().After(deadline) {
			t.Fatalf("in %d tries, %s never had a transaction open on the ledger", tries, instance)
		}
		p.signal(syscall.SIGSTOP)
		if s.openTxn(&d, instance) {
			d.killed = time.Now()
			d.ends = s.sourceEnds(d.sources)
			p.kill()
			t.Logf("%s killed with its transaction open (try %d): producer %d, ledger partitions %v, source partitions %d",
				instance, tries, d.producer, d.held, len(d.sources))
			return d
		}
		p.signal(syscall.SIGCONT)
		time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
	}
}

// openTxn fills d if instance's normalizer transaction is ongoing and
// holds ledger partitions, with the source partitions the instance owns.
func (s *scenario) openTxn(d *deadInstance, instance string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	txns, err := s.adm.DescribeTransactions(ctx, d.txnID)
	if err != nil {
		return false
	}
	txn, ok := txns[d.txnID]
	if !ok || txn.Err != nil || txn.State != "Ongoing" || len(txn.Topics[s.cfg.Topics.Ledger]) == 0 {
		return false
	}
	d.producer, d.timeout = txn.ProducerID, time.Duration(txn.TimeoutMillis)*time.Millisecond
	producers, err := s.adm.DescribeProducers(ctx, kadm.TopicsSet{s.cfg.Topics.Ledger: txn.Topics[s.cfg.Topics.Ledger]})
	if err != nil {
		return false
	}
	d.held = map[int32]int64{}
	producers.EachProducer(func(p kadm.DescribedProducer) {
		if p.ProducerID == d.producer && p.CurrentTxnStartOffset >= 0 {
			d.held[p.Partition] = p.CurrentTxnStartOffset
		}
	})
	groups, err := s.adm.DescribeGroups(ctx, s.cfg.Kafka.NormalizerGroup)
	if err != nil {
		return false
	}
	d.sources = map[string]bool{}
	for _, m := range groups[s.cfg.Kafka.NormalizerGroup].Members {
		c, ok := m.Assigned.AsConsumer()
		if m.InstanceID == nil || *m.InstanceID != instance || !ok {
			continue
		}
		for _, tp := range c.Topics {
			for _, p := range tp.Partitions {
				d.sources[fmt.Sprint(tp.Topic, "/", p)] = true
			}
		}
	}
	return len(d.held) > 0 && len(d.sources) > 0
}

// sourceEnds lists the end offsets of the source partitions named in keys
// ("topic/partition").
func (s *scenario) sourceEnds(keys map[string]bool) map[string]int64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp := s.cfg.Topics
	ends, err := s.adm.ListEndOffsets(ctx, tp.Inventory, tp.Orders, tp.Supplier, tp.Catalog)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if k := fmt.Sprint(o.Topic, "/", o.Partition); keys[k] {
			out[k] = o.Offset
		}
	})
	return out
}

// abortedAfter yields how long after the kill the broker ended the dead
// instance's transaction (it aborts it once it has timed out).
func (s *scenario) abortedAfter(d deadInstance) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	over, end := context.WithCancel(context.Background())
	s.t.Cleanup(end)
	go func() {
		for over.Err() == nil && time.Since(d.killed) < 5*time.Minute {
			ctx, cancel := context.WithTimeout(over, 10*time.Second)
			txns, err := s.adm.DescribeTransactions(ctx, d.txnID)
			cancel()
			if txn := txns[d.txnID]; err == nil && txn.Err == nil && (txn.State != "Ongoing" || txn.ProducerID != d.producer) {
				out <- time.Since(d.killed)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		out <- -1
	}()
	return out
}

// ledgerWatch reads the ledger read_committed, as the folders do, and
// notes when each record became readable.
type ledgerWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	seen   []seenEntry
	err    error
}

type seenEntry struct {
	at        time.Time
	partition int32
	offset    int64
	producer  int64
	source    string // topic/partition of the source record
}

func (s *scenario) watchLedger() *ledgerWatch {
	s.t.Helper()
	cl, err := kgo.NewClient(append(kafka.Conn(s.cfg.Kafka), kgo.ConsumeTopics(s.cfg.Topics.Ledger),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &ledgerWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			at := time.Now()
			for _, r := range fs.Records() {
				v, err := s.codec.Decode(ctx, r.Value)
				le, ok := v.(*events.LedgerEntry)
				if err != nil || !ok {
					w.err = fmt.Errorf("ledger %d@%d: %v", r.Partition, r.Offset, err)
					return
				}
				e := seenEntry{at: at, partition: r.Partition, offset: r.Offset, producer: r.ProducerID}
				if le.SourceTopic != nil && le.SourcePartition != nil {
					e.source = fmt.Sprint(*le.SourceTopic, "/", *le.SourcePartition)
				}
				w.seen = append(w.seen, e)
			}
		}
	}()
	s.t.Cleanup(w.stop)
	return w
}

func (w *ledgerWatch) stop() { w.cancel(); <-w.done }

// stalls returns, after the watch stopped, how long after the kill the
// ledger had entries again, written by the survivor, from every source
// partition the dead instance owned that had any (and from how many), and
// records past the dead transaction's start on every ledger partition it
// held. Every partition in active (those with records after the kill) must
// be among them.
func (w *ledgerWatch) stalls(t *testing.T, d deadInstance, active map[string]bool) (sources time.Duration, moved int, held time.Duration) {
	t.Helper()
	if w.err != nil {
		t.Fatal(w.err)
	}
	srcFirst, heldFirst := map[string]time.Duration{}, map[int32]time.Duration{}
	for _, e := range w.seen {
		if !e.at.After(d.killed) || e.producer == d.producer {
			continue
		}
		after := e.at.Sub(d.killed)
		if _, ok := srcFirst[e.source]; !ok && d.sources[e.source] {
			srcFirst[e.source] = after
		}
		if start, ok := d.held[e.partition]; ok && e.offset > start {
			if _, ok := heldFirst[e.partition]; !ok {
				heldFirst[e.partition] = after
			}
		}
	}
	for k := range active {
		if _, ok := srcFirst[k]; !ok {
			t.Errorf("source partition %s had records after the kill, and the survivor normalized none of them", k)
		}
	}
	if len(srcFirst) == 0 || len(heldFirst) < len(d.held) {
		t.Fatalf("after the kill: entries from %d of the dead instance's %d source partitions, records on %d of the %d ledger partitions its transaction held",
			len(srcFirst), len(d.sources), len(heldFirst), len(d.held))
	}
	for _, v := range srcFirst {
		sources = max(sources, v)
	}
	for _, v := range heldFirst {
		held = max(held, v)
	}
	return sources, len(srcFirst), held
}

// checkHoldAttempts fails the test unless every hold_id of the storm holds
// through at most one of its attempts, and through one exactly when its
// client was told 201 (an attempt whose answer was lost was released, not
// kept beside its retry), and the ledger holds stock units in all.
func (s *scenario) checkHoldAttempts(answers map[string][]int, requests, stock int) {
	t := s.t
	t.Helper()
	rdb := s.rdb()
	defer rdb.Close()
	ctx := context.Background()
	_, _, holds, err := s.store(rdb).Lines(ctx, "STORM")
	if err != nil {
		t.Fatal(err)
	}
	holding := map[string]int{}
	for _, h := range holds {
		if h.Status == ledger.HoldHeld {
			id, _, _ := strings.Cut(h.HoldID, "~")
			holding[id]++
		}
	}
	for i := range requests {
		id := fmt.Sprint("storm-", i)
		want := 0
		if slices.Contains(answers[id], 201) {
			want = 1
		}
		if holding[id] != want {
			t.Fatalf("%s answered %v holds through %d attempts, want %d", id, answers[id], holding[id], want)
		}
	}
	p, err := s.store(rdb).Position(ctx, "STORM", "L1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Held != int64(stock) {
		t.Fatalf("the ledger holds %d units, want %d", p.Held, stock)
	}
}

// stock receives units of STORM at L1 and waits for the fold.
func (s *scenario) stock(units int) {
	s.t.Helper()
	ctx := context.Background()
	ev := &events.InventoryReceived{Meta: events.Meta{EventID: "storm-stock", EventTime: time.Now().UTC(), Source: "t"},
		SKU: "STORM", Location: "L1", Quantity: int64(units), UoM: "EA"}
	b, err := s.codec.Encode(ctx, s.cfg.Topics.Inventory, ev)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.prod.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.Topics.Inventory, Key: []byte("STORM"), Value: b}).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
	s.caughtUp(2 * time.Minute)
}

// holdStorm sends requests holds of one unit of STORM@L1, one every pace,
// each to target(k) for its k-th try (k counts on across requests), retried
// until decided (201 or 409) and then asked once more: a retry must get the
// same answer. It returns every answer per hold_id, and when each decision
// came.
func (s *scenario) holdStorm(requests int, pace time.Duration, target func(k int) *proc) (map[string][]int, []time.Time) {
	var mu sync.Mutex
	answers := map[string][]int{}
	var decided []time.Time
	client := &http.Client{Timeout: 15 * time.Second}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 40)
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; i < requests; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprint("storm-", i)
			body := fmt.Sprintf(`{"hold_id":%q,"ttl_seconds":3600,"lines":[{"sku":"STORM","location":"L1","quantity":1}]}`, id)
			for attempt := 0; attempt < 200; attempt++ {
				resp, err := client.Post("http://"+target(i+attempt).http+"/v1/holds", "application/json", strings.NewReader(body))
				if err != nil {
					time.Sleep(250 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				answers[id] = append(answers[id], resp.StatusCode)
				if resp.StatusCode == 201 || resp.StatusCode == 409 {
					decided = append(decided, time.Now())
				}
				mu.Unlock()
				if resp.StatusCode == 201 || resp.StatusCode == 409 {
					if r2, err := client.Post("http://"+target(i+attempt+1).http+"/v1/holds", "application/json", strings.NewReader(body)); err == nil {
						io.Copy(io.Discard, r2.Body)
						r2.Body.Close()
						mu.Lock()
						answers[id] = append(answers[id], r2.StatusCode)
						mu.Unlock()
					}
					return
				}
				time.Sleep(250 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return answers, decided
}

// checkStorm fails the test unless every hold got one decision, the same
// each time it was asked, and no more were held than stock; it returns
// how many were held and how many answers were 503.
func checkStorm(t *testing.T, answers map[string][]int, requests, stock int) (held, unavailable int) {
	t.Helper()
	undecided := 0
	for i := 0; i < requests; i++ {
		id := fmt.Sprint("storm-", i)
		codes := answers[id]
		final := 0
		for _, c := range codes {
			switch c {
			case 201, 409:
				if final != 0 && c != final {
					t.Fatalf("%s answered %v: two different decisions", id, codes)
				}
				final = c
			case 503:
				unavailable++
			}
		}
		switch final {
		case 201:
			held++
		case 0:
			undecided++
		}
	}
	if undecided > 0 {
		t.Fatalf("%d of %d hold requests never got a decision", undecided, requests)
	}
	if held > stock {
		t.Fatalf("%d holds accepted on %d units: oversold", held, stock)
	}
	return held, unavailable
}

// produce sends source events to their topics, keyed as their producers key them.
func (s *scenario) produce(evs ...events.Source) {
	s.t.Helper()
	ctx := context.Background()
	t := s.cfg.Topics
	var recs []*kgo.Record
	for _, ev := range evs {
		var topic, key string
		switch e := ev.(type) {
		case *events.ItemMaster:
			topic, key = t.Catalog, e.SKU
		case *events.OrderAccepted:
			topic, key = t.Orders, e.OrderID
		case *events.OrderCancelled:
			topic, key = t.Orders, e.OrderID
		case *events.PurchaseOrderReleased:
			topic, key = t.Supplier, e.PONumber
		case *events.PurchaseOrderAcknowledged:
			topic, key = t.Supplier, e.PONumber
		default:
			s.t.Fatalf("produce: no topic for %T", ev)
		}
		b, err := s.codec.Encode(ctx, topic, ev)
		if err != nil {
			s.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: b})
	}
	if err := s.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

// deadLetters returns every dead letter's class and message.
func (s *scenario) deadLetters() []string {
	s.t.Helper()
	var out []string
	err := deadletter.Scan(context.Background(), kafka.Conn(s.cfg.Kafka), s.cfg.Topics.DLQ, deadletter.Filter{}, func(d deadletter.DeadLetter) error {
		out = append(out, d.Class+": "+d.Message)
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// metrics returns the lines of a process's /metrics whose names start with prefix.
func (p *proc) metrics(t *testing.T, prefix string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// indexDocs are documents of SKUs outside the generated stream, with the
// events that refer to them. before accepts and releases them; after
// cancels every order (half by line, half whole) and acknowledges the PO in
// its unit, cases.
type indexDocs struct {
	before, after []events.Source
	orders        int
}

const (
	idxSKU   = "IDX-1"
	idxLoc   = "DC-EAST"
	idxGroup = "DCS"
	idxCase  = 12
)

func (s *scenario) indexDocs() indexDocs {
	var d indexDocs
	at := time.Now().UTC().Truncate(time.Millisecond)
	m := func(id string) events.Meta { return events.Meta{EventID: "idx-" + id, EventTime: at, Source: "faults"} }
	loc, group := idxLoc, idxGroup
	d.before = append(d.before, &events.ItemMaster{Meta: m("im"), SKU: idxSKU, BaseUoM: "EA", Conversions: map[string]int64{"CS": idxCase},
		SafetyStock: map[string]int64{}, ReorderPoint: map[string]int64{}})
	d.orders = 40
	for i := range d.orders {
		id := fmt.Sprint("IDX-SO-", i)
		d.before = append(d.before, &events.OrderAccepted{Meta: m("acc-" + id), OrderID: id, Channel: "web", Lines: []events.OrderLine{
			{LineID: "1", SKU: idxSKU, Location: &loc, Quantity: 2, UoM: "EA"},
			{LineID: "2", SKU: idxSKU, Group: &group, Quantity: 3, UoM: "EA"},
			{LineID: "3", SKU: idxSKU, Location: &loc, Quantity: 1, UoM: "CS"},
		}})
		cancel := &events.OrderCancelled{Meta: m("cxl-" + id), OrderID: id}
		if i%2 == 0 {
			cancel.LineIDs = []string{"1", "2", "3"}
		}
		d.after = append(d.after, cancel)
	}
	due := at.Truncate(24*time.Hour).AddDate(0, 0, 10)
	d.before = append(d.before, &events.PurchaseOrderReleased{Meta: m("po"), PONumber: "IDX-PO-1", SupplierID: "SUP-IDX",
		Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: idxSKU, Location: idxLoc, Quantity: 10, UoM: "CS", ExpectedDate: due}}})
	d.after = append(d.after, &events.PurchaseOrderAcknowledged{Meta: m("ack"), PONumber: "IDX-PO-1", SupplierID: "SUP-IDX",
		Lines: []events.AcknowledgedLine{{POLine: 1, Status: events.AckChanged, Quantity: 7, ExpectedDate: due}}})
	return d
}

// check requires the documents' reservations and inbound: all of them
// before the references, none reserved and the acknowledged quantity
// inbound after.
func (d indexDocs) check(s *scenario, before bool) {
	s.t.Helper()
	ctx := context.Background()
	rdb := s.rdb()
	defer rdb.Close()
	st := s.store(rdb)
	p, err := st.Position(ctx, idxSKU, idxLoc, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	group, err := st.GroupDemand(ctx, idxSKU, idxGroup)
	if err != nil {
		s.t.Fatal(err)
	}
	want := struct{ reserved, group, inbound int64 }{int64(d.orders) * (2 + idxCase), int64(d.orders) * 3, 10 * idxCase}
	if !before {
		want.reserved, want.group, want.inbound = 0, 0, 7*idxCase
	}
	if p.Reserved != want.reserved || group != want.group || p.Inbound != want.inbound {
		s.t.Fatalf("%s at %s: reserved %d, group %s demand %d, inbound %d; want %d, %d, %d",
			idxSKU, idxLoc, p.Reserved, idxGroup, group, p.Inbound, want.reserved, want.group, want.inbound)
	}
}

func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", within)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// logLevel is the processes' log level: STOCKFLOW_FAULTS_LOG_LEVEL, or info.
func logLevel() string {
	if l := os.Getenv("STOCKFLOW_FAULTS_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}
