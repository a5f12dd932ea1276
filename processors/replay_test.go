package processors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

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
	if err := ScanDeadLetters(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "dlq", ReplayFilter{}, func(DeadLetter) error {
		n++
		return nil
	}); err != nil || n != committed {
		t.Fatalf("scan with a transaction open: %d dead letters, %v; want the %d committed ones", n, err, committed)
	}
	topics := config.Default().Topics
	topics.Inventory = "wms.inventory.v1"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	res, err := Replay(ctx, prod, "dlq", ReplayTargets{Topics: topics, Codec: codec}, ReplayFilter{Class: ClassUnknownUoM}, log)
	if err != nil || res.Replayed != committed || len(res.Refused) != 0 {
		t.Fatalf("replay: %+v, %v; want %d replayed", res, err, committed)
	}
	got := 0
	if err := ReadTopic(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "wms.inventory.v1", nil, func(*kgo.Record) error {
		got++
		return nil
	}); err != nil || got != committed {
		t.Fatalf("source topic holds %d records (%v), want %d", got, err, committed)
	}
}
