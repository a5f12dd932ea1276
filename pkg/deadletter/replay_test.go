package deadletter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
)

// Anyone who may write the dead-letter topic may leave a transaction open
// on it. Listing and replaying (stockflow dlq) stop at the last stable
// offset: they answer with the committed dead letters at once instead of
// waiting for the transaction, and a replay sends them in batches.
func TestDeadLetterScanStopsAtTheLastStableOffset(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dlq", "wms.inventory.v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deadLetter := func(i int) *kgo.Record {
		ev := &events.InventoryReceived{Meta: events.Meta{EventID: fmt.Sprint("r-", i), EventTime: time.Now().UTC(), Source: "test"},
			SKU: "SKU-1", Location: "L1", Quantity: 1, UoM: "EA"}
		v, err := codec.Encode(ctx, "wms.inventory.v1", ev)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: "dlq", Key: []byte("SKU-1"), Value: v, Headers: []kgo.RecordHeader{
			{Key: HeaderSourceTopic, Value: []byte("wms.inventory.v1")}, {Key: HeaderErrorClass, Value: []byte(ClassUnknownUoM)}}}
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const committed = 2*ReplayBatch + 7
	for i := range committed {
		if err := prod.ProduceSync(ctx, deadLetter(i)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("left-open"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, deadLetter(-1)).FirstErr(); err != nil {
		t.Fatal(err)
	}

	n := 0
	if err := Scan(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "dlq", Filter{}, func(DeadLetter) error {
		n++
		return nil
	}); err != nil || n != committed {
		t.Fatalf("scan with a transaction open: %d dead letters, %v; want the %d committed ones", n, err, committed)
	}
	// Count the records of each produce request from here on: only the
	// replay's (requests may name topics by id, not name).
	var mu sync.Mutex
	var perRequest []int
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			n := 0
			for _, p := range tp.Partitions {
				var batch kmsg.RecordBatch
				if err := batch.ReadFrom(p.Records); err == nil {
					n += int(batch.NumRecords)
				}
			}
			mu.Lock()
			perRequest = append(perRequest, n)
			mu.Unlock()
		}
		return nil, nil, false
	})
	topics := config.Default().Topics
	topics.Inventory = "wms.inventory.v1"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	res, err := Replay(ctx, prod, "dlq", ReplayTargets{Topics: topics, Codec: codec}, Filter{Class: ClassUnknownUoM}, log)
	if err != nil || res.Replayed != committed || len(res.Refused) != 0 {
		t.Fatalf("replay: %+v, %v; want %d replayed", res, err, committed)
	}
	mu.Lock()
	if len(perRequest) < 3 || slices.Max(perRequest) > ReplayBatch {
		t.Errorf("records per produce request %v: want batches of at most %d", perRequest, ReplayBatch)
	}
	mu.Unlock()
	got := 0
	if err := ReadTopic(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "wms.inventory.v1", nil, func(*kgo.Record) error {
		got++
		return nil
	}); err != nil || got != committed {
		t.Fatalf("source topic holds %d records (%v), want %d", got, err, committed)
	}
}

// Records of a transaction aborted just before one still open are dropped by
// a read_committed reader, and their abort marker lies past the last stable
// offset: a scan cannot see that partition's end. It stops after a quiet
// while with a *ShortRead, having delivered what it read, rather than
// failing after a minute.
func TestDeadLetterScanAfterAnAbortedTransaction(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := func(v string) *kgo.Record { return &kgo.Record{Topic: "dlq", Value: []byte(v)} }
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, rec("committed")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	begin := func(id string) *kgo.Client {
		tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tx.Close)
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, rec(id)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	aborted := begin("aborted")
	begin("left-open")
	if err := aborted.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = Scan(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "dlq", Filter{}, func(d DeadLetter) error {
		got = append(got, string(d.Record.Value))
		return nil
	})
	var short *ShortRead
	if !errors.As(err, &short) || len(got) != 1 || got[0] != "committed" {
		t.Fatalf("scan: %v, read %q; want a short read that delivered the committed record", err, got)
	}
}
