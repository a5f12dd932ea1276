package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
)

const (
	fxDLQ    = "fx.dlq"
	fxSource = "fx.inventory"
)

// fxBase is when the first dead letter of a fixture failed; each next one
// a second later.
var fxBase = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// dlqFixture is a console over an in-process Kafka whose dead-letter
// topic the test fills, signed in with an admin key.
type dlqFixture struct {
	t       *testing.T
	kc      *kfake.Cluster
	brokers []string
	codec   *avro.Codec
	con     *Console
	e       *echo.Echo
	cookie  *http.Cookie
	n       int // dead letters written

	mu      sync.Mutex
	fetches []int64         // fetch offsets asked for, while watching
	lowest  map[int32]int64 // the lowest of them by partition
	batches []int           // records per produced batch to the source topic, while watching
	watch   bool
}

func newDLQFixture(t *testing.T, partitions int32, mod func(*Config)) *dlqFixture {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, fxDLQ), kfake.SeedTopics(1, fxSource))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	f := &dlqFixture{t: t, kc: kc, brokers: kc.ListenAddrs()}
	f.codec, err = events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.observe()
	prod, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { rdb.Close() })
	cfg := Config{
		Kafka: []kgo.Opt{kgo.SeedBrokers(f.brokers...)}, DLQTopic: fxDLQ, Producer: prod, Codec: f.codec, Redis: rdb,
		Replay: deadletter.ReplayTargets{Topics: config.Topics{Inventory: fxSource, Orders: "fx.orders"}, Codec: f.codec},
		Keys:   map[string][]string{testAdmin: {"admin"}}, API: http.NotFoundHandler(),
	}
	if mod != nil {
		mod(&cfg)
	}
	if f.con, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.e = echo.New()
	f.con.Register(f.e)
	f.cookie = signIn(t, f.e, testAdmin)
	return f
}

// observe records, while f.watch is on, the offsets fetches ask for and
// the size of every batch produced to the source topic.
func (f *dlqFixture) observe() {
	f.kc.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		f.kc.KeepControl()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.watch {
			for _, tp := range req.(*kmsg.FetchRequest).Topics {
				for _, p := range tp.Partitions {
					f.fetches = append(f.fetches, p.FetchOffset)
					if o, ok := f.lowest[p.Partition]; !ok || p.FetchOffset < o {
						f.lowest[p.Partition] = p.FetchOffset
					}
				}
			}
		}
		return nil, nil, false
	})
	f.kc.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		f.kc.KeepControl()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if !f.watch { // while watching, only replays are produced
				continue
			}
			for _, p := range tp.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(p.Records); err == nil {
					f.batches = append(f.batches, int(b.NumRecords))
				}
			}
		}
		return nil, nil, false
	})
}

func (f *dlqFixture) watching(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watch, f.fetches, f.batches, f.lowest = on, nil, nil, map[int32]int64{}
}

// receipt is an inventory receipt in an unknown unit, as Avro.
func (f *dlqFixture) receipt(sku string) []byte {
	f.t.Helper()
	b, err := f.codec.Encode(context.Background(), fxSource, &events.InventoryReceived{
		Meta: events.Meta{EventID: "ev-" + sku, EventTime: fxBase, Source: "wms"},
		SKU:  sku, Location: "DC-EAST", Quantity: 3, UoM: "PALLET",
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// deadLetterRecord is a dead letter as the pipeline writes it.
func (f *dlqFixture) deadLetterRecord(partition int32, class, key string, value []byte) *kgo.Record {
	at := fxBase.Add(time.Duration(f.n) * time.Second)
	f.n++
	return &kgo.Record{Topic: fxDLQ, Partition: partition, Key: []byte(key), Value: value, Timestamp: at,
		Headers: []kgo.RecordHeader{
			{Key: deadletter.HeaderSourceTopic, Value: []byte(fxSource)},
			{Key: deadletter.HeaderSourcePartition, Value: []byte("0")},
			{Key: deadletter.HeaderSourceOffset, Value: []byte(fmt.Sprint(f.n))},
			{Key: deadletter.HeaderErrorClass, Value: []byte(class)},
			{Key: deadletter.HeaderErrorMessage, Value: []byte("failed: " + key)},
			{Key: deadletter.HeaderErrorTime, Value: []byte(at.Format(time.RFC3339Nano))},
		}}
}

// write produces records to the dead-letter topic, in order.
func (f *dlqFixture) write(recs ...*kgo.Record) {
	f.t.Helper()
	w, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		f.t.Fatal(err)
	}
	defer w.Close()
	for start := 0; start < len(recs); start += 50 {
		if err := w.ProduceSync(context.Background(), recs[start:min(start+50, len(recs))]...).FirstErr(); err != nil {
			f.t.Fatal(err)
		}
	}
}

// get fetches a console page as the signed-in admin.
func (f *dlqFixture) get(ctx context.Context, path string) (int, string) {
	f.t.Helper()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	req.AddCookie(f.cookie)
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// post sends a form as the console's own page would, with the session's
// token.
func (f *dlqFixture) post(path string, form url.Values) *httptest.ResponseRecorder {
	f.t.Helper()
	_, page := f.get(context.Background(), "/console/holds")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		f.t.Fatal("no csrf token")
	}
	form.Set("csrf", m[1])
	return do(f.e, http.MethodPost, path, form, f.cookie)
}

// sourceRecords counts the records on the source topic.
func (f *dlqFixture) sourceRecords() int {
	f.t.Helper()
	n := 0
	err := deadletter.ReadTopic(context.Background(), []kgo.Opt{kgo.SeedBrokers(f.brokers...)}, fxSource, nil, func(*kgo.Record) error {
		n++
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

var listedRe = regexp.MustCompile(`data-dlq="([^"]+)" data-state="([^"]+)"`)

// listed are the dead letters a page lists, in order.
func listed(body string) []string {
	var out []string
	for _, m := range listedRe.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

var olderRe = regexp.MustCompile(`<a [^>]*rel="next"[^>]*href="([^"]+)"|<a [^>]*href="([^"]+)"[^>]*rel="next"`)

// older is the page's link to the next, older page, or "".
func older(body string) string {
	m := olderRe.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return strings.ReplaceAll(m[1]+m[2], "&amp;", "&")
}
