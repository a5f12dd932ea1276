//go:build integration

package tail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/tail"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// On the real Kafka, a tail from the beginning prints a record produced
// after it started, leaves out a record whose transaction was aborted, and
// stops when its context is cancelled.
func TestTailRealKafka(t *testing.T) {
	cfg := testenv.Config(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka, kgo.TransactionalID("tail-test-"+testenv.Suffix()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(prod), int32(cfg.Kafka.Partitions), 1, kafka.Topics(cfg.Topics)); err != nil {
		t.Fatal(err)
	}
	codec, err := events.NewCodec(nil, cfg.MaxRecordBytes)
	if err != nil {
		t.Fatal(err)
	}

	tg := start(t, cfg, tail.Options{Topic: "availability", FromBeginning: true, Format: tail.FormatTable})

	// Both records share a key, hence a partition: once the committed one
	// is printed, the aborted one before it has been passed over.
	key := []byte("SKU-1|DC-EAST")
	produce := func(atp int64, commit kgo.TransactionEndTry) {
		t.Helper()
		v, err := codec.Encode(ctx, cfg.Topics.Availability, availability("SKU-1", "DC-EAST", atp))
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: cfg.Topics.Availability, Key: key, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	produce(666, kgo.TryAbort)
	produce(17, kgo.TryCommit)

	tg.waitLines(t, 2)
	tg.stop(t)
	lines := tg.out.lines()
	if len(lines) != 2 || !strings.Contains(lines[1], "SKU-1|DC-EAST") || !strings.Contains(lines[1], "AvailabilityChanged") ||
		!strings.Contains(lines[1], "SKU-1 at DC-EAST v3: atp 17,") {
		t.Fatalf("want the header and the committed record only, got:\n%s", strings.Join(lines, "\n"))
	}
}
