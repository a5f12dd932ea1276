package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// env is a Kafka + Redis pair with Stockflow's topics, for pipeline tests:
// kfake and miniredis in unit tests, the real stack in integration tests.
type env struct {
	cfg   config.Config
	codec *avro.Codec
	rdb   redis.UniversalClient
	store *ledger.Store
	prod  *kgo.Client
	log   *slog.Logger
}

func newEnv(t *testing.T, cfg config.Config, rdb redis.UniversalClient) *env {
	t.Helper()
	codec, err := events.NewCodec(nil, 64<<10) // small, so an oversized record fits the broker
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka, kgo.DefaultProduceTopic(cfg.Topics.Inventory))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(prod), int32(cfg.Kafka.Partitions), int16(max(cfg.Kafka.Replication, 1)), kafka.Topics(cfg.Topics)); err != nil {
		t.Fatal(err)
	}
	var log *slog.Logger
	if os.Getenv("STOCKFLOW_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &env{cfg: cfg, codec: codec, rdb: rdb, store: ledger.New(rdb, ledger.Config{KeyPrefix: cfg.Redis.KeyPrefix}), prod: prod, log: log}
}

// forEachKey calls fn with every key of the env's prefix, on every master.
func (e *env) forEachKey(t *testing.T, fn func(node redis.Cmdable, key string)) {
	t.Helper()
	ctx := context.Background()
	nodes, err := ledger.Masters(ctx, e.rdb)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		iter := n.Scan(ctx, 0, e.store.KeyPrefix()+":*", 1000).Iterator()
		for iter.Next(ctx) {
			fn(n, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// loseRedis deletes every key of the env's prefix that keep says not to
// keep (nil: every key), as a Redis that lost its data would.
func (e *env) loseRedis(t *testing.T, keep func(key string) bool) {
	t.Helper()
	e.forEachKey(t, func(n redis.Cmdable, k string) {
		if keep == nil || !keep(k) {
			if err := n.Del(context.Background(), k).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func embeddedEnv(t *testing.T) *env {
	t.Helper()
	e, _ := embeddedCluster(t)
	return e
}

// embeddedCluster is embeddedEnv with its in-process cluster, for tests
// that intercept the broker's requests.
func embeddedCluster(t *testing.T) (*env, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	cfg := config.Default()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.Partitions = 3
	return newEnv(t, cfg, rdb), c
}

// pipeline is one running instance: catalog reader, normalizer and folder.
type pipeline struct {
	cancel context.CancelFunc
	done   chan error
	folder *Folder
	norm   *Normalizer
}

type pipelineOpts struct {
	instance   string
	folder     FolderConfig
	normalizer NormalizerConfig
	noNorm     bool
}

func (e *env) start(t *testing.T, o pipelineOpts) *pipeline {
	t.Helper()
	if o.instance == "" {
		o.instance = "t"
	}
	ctx, cancel := context.WithCancel(context.Background())
	catalog, err := NewCatalog(kafka.ClientOpts(e.cfg.Kafka), e.cfg.Topics.Catalog, e.codec, e.log)
	if err != nil {
		t.Fatal(err)
	}
	o.normalizer.Kafka, o.normalizer.Topics, o.normalizer.InstanceID = e.cfg.Kafka, e.cfg.Topics, o.instance
	if o.normalizer.UoMWait == 0 {
		o.normalizer.UoMWait = 2 * time.Second
	}
	o.folder.Kafka, o.folder.Topics, o.folder.InstanceID = e.cfg.Kafka, e.cfg.Topics, o.instance
	p := &pipeline{
		cancel: cancel,
		done:   make(chan error, 3),
		norm:   NewNormalizer(o.normalizer, e.codec, e.store, catalog, e.log.With("instance", o.instance)),
		folder: NewFolder(o.folder, e.codec, e.store, e.prod, e.log.With("instance", o.instance)),
	}
	n := 2
	go func() { p.done <- catalog.Run(ctx) }()
	go func() { p.done <- p.folder.Run(ctx) }()
	if !o.noNorm {
		n++
		go func() { p.done <- p.norm.Run(ctx) }()
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			for i := 0; i < n; i++ {
				select {
				case err := <-p.done:
					if err != nil {
						t.Errorf("pipeline component: %v", err)
					}
				case <-time.After(60 * time.Second):
					t.Error("pipeline did not stop within 60s")
					return
				}
			}
		})
	}
	p.cancel = stop
	t.Cleanup(stop)
	return p
}

func (p *pipeline) stop() { p.cancel() }

// topic maps a golden file's topic word to the configured name.
func (e *env) topic(word string) string {
	t := e.cfg.Topics
	return map[string]string{"inventory": t.Inventory, "orders": t.Orders, "supplier": t.Supplier, "catalog": t.Catalog}[word]
}

func keyOf(ev events.Source) string {
	switch e := ev.(type) {
	case *events.OrderAccepted:
		return e.OrderID
	case *events.OrderCancelled:
		return e.OrderID
	case *events.OrderAllocated:
		return e.OrderID
	case *events.PurchaseOrderReleased:
		return e.PONumber
	case *events.PurchaseOrderAcknowledged:
		return e.PONumber
	case *events.AdvanceShipNotice:
		return e.PONumber
	case *events.PurchaseOrderClosed:
		return e.PONumber
	}
	v := reflect.ValueOf(ev).Elem().FieldByName("SKU")
	return v.String()
}

func (e *env) send(t *testing.T, topic string, evs ...events.Source) {
	t.Helper()
	ctx := context.Background()
	var recs []*kgo.Record
	for _, ev := range evs {
		b, err := e.codec.Encode(ctx, topic, ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(keyOf(ev)), Value: b})
	}
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// sendAt produces evs to topic stamped with ts, as a producer whose clock
// reads ts would.
func (e *env) sendAt(topic string, ts time.Time, evs ...events.Source) error {
	ctx := context.Background()
	var recs []*kgo.Record
	for _, ev := range evs {
		b, err := e.codec.Encode(ctx, topic, ev)
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(keyOf(ev)), Value: b, Timestamp: ts})
	}
	return e.prod.ProduceSync(ctx, recs...).FirstErr()
}

func (e *env) sendRaw(t *testing.T, topic, key string, value []byte) {
	t.Helper()
	if err := e.prod.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// eventually retries check until it passes or the deadline; the last error fails the test.
func eventually(t *testing.T, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectedPos is a golden file's expected position.
type expectedPos struct {
	SKU          string `json:"sku"`
	Location     string `json:"location"`
	OnHand       int64  `json:"on_hand"`
	Reserved     int64  `json:"reserved"`
	Picked       int64  `json:"picked"`
	Held         int64  `json:"held"`
	Inbound      int64  `json:"inbound"`
	SafetyStock  int64  `json:"safety_stock"`
	ReorderPoint int64  `json:"reorder_point"`
}

func (x expectedPos) components() ledger.Components {
	return ledger.Components{OnHand: x.OnHand, Reserved: x.Reserved, Picked: x.Picked, Held: x.Held,
		Inbound: x.Inbound, SafetyStock: x.SafetyStock, ReorderPoint: x.ReorderPoint}
}

func (e *env) checkPositions(want []expectedPos) error {
	var diffs []string
	for _, w := range want {
		got, err := e.store.Position(context.Background(), w.SKU, w.Location, time.Now())
		if err != nil {
			return err
		}
		if got.Components != w.components() {
			diffs = append(diffs, fmt.Sprintf("%s@%s: got %+v want %+v", w.SKU, w.Location, got.Components, w.components()))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("positions differ:\n  %s", strings.Join(diffs, "\n  "))
	}
	return nil
}

type golden struct {
	Doc    string `json:"doc"`
	Events []struct {
		Topic string          `json:"topic"`
		Type  string          `json:"type"`
		Event json.RawMessage `json:"event"`
	} `json:"events"`
	Expect []expectedPos `json:"expect"`
}

func loadGolden(t *testing.T) map[string]golden {
	t.Helper()
	files, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	out := map[string]golden{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g golden
		if err := json.Unmarshal(raw, &g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = g
	}
	return out
}

func decodeGoldenEvent(t *testing.T, typ string, raw json.RawMessage) events.Source {
	t.Helper()
	for _, r := range events.All() {
		if r.AvroName() == events.Namespace+"."+typ {
			v := reflect.New(reflect.TypeOf(r).Elem()).Interface()
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			return v.(events.Source)
		}
	}
	t.Fatalf("unknown event type %s", typ)
	return nil
}

// verify requires the Redis ledger to equal an independent fold of the log,
// once the folder has recorded everything it applied.
func (e *env) verify(t *testing.T) {
	t.Helper()
	eventually(t, settle, func() error {
		rep, err := Verify(context.Background(), e.cfg.Kafka, e.cfg.Topics, atp.AllSupply, e.store, e.codec, io.Discard)
		if err != nil {
			return err
		}
		if !rep.OK() {
			return fmt.Errorf("LEDGER!=FOLD: %v", rep.Differences)
		}
		if rep.Entries == 0 {
			// The folder applies, then records its offsets: until then
			// verify has nothing to fold, which would prove nothing.
			return errors.New("verify folded no entries yet")
		}
		return nil
	})
}

// snapshot reads every position of the given SKUs.
func (e *env) snapshot(t *testing.T, skus []string) map[string]ledger.Components {
	t.Helper()
	out := map[string]ledger.Components{}
	for _, sku := range skus {
		locs, err := e.store.Locations(context.Background(), sku)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range locs {
			p, err := e.store.Position(context.Background(), sku, l, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			out[sku+"@"+l] = p.Components
		}
	}
	return out
}

// dlq reads the dead-letter topic from the start until it holds n records.
func (e *env) dlq(t *testing.T, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.Conn(e.cfg.Kafka), kgo.ConsumeTopics(e.cfg.Topics.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("dead-letter topic holds %d records, want %d", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition || out[i].Offset < out[j].Offset })
	return out
}
