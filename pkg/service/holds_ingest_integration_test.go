//go:build integration

package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/sim"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/testenv"
	"github.com/stockflow/stockflow/processors"
)

// A storm of 1,000 concurrent one-unit holds on 100 units, while warehouse
// events stream at 5,000/s through the same partitions, holds exactly the
// stock; afterwards Redis equals the fold of the ledger log, and folding
// that log again, twice, gives every hold the decision its client was told.
func TestHoldStormUnderIngest(t *testing.T) {
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	s := startStack(t, cfg, Options{})
	const stock, requests = 100, 1000
	s.send(t, s.cfg.Topics.Inventory, "INGSTORM", receiptEv("r-ingstorm", "INGSTORM", "L1", stock))
	s.waitATP(t, "INGSTORM", "L1", stock)

	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopSim := context.WithCancel(context.Background())
	var streamed sim.Stats
	var simDone sync.WaitGroup
	simDone.Go(func() {
		gen := sim.NewGenerator(7, sim.Catalogue{SKUs: 2000}, s.cfg.Topics, nil)
		// Bounded: 5,000/s for at most a minute.
		streamed, _ = sim.New(sim.Config{Rate: 5000, Count: 300_000}, gen, codec, s.prod, slog.New(slog.DiscardHandler)).Run(ctx)
	})
	time.Sleep(2 * time.Second) // the stream flows before the first hold

	codes := make([]int, requests)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range requests {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			codes[i], _ = s.call(t, "POST", "/v1/holds", hold(fmt.Sprint("ing-", i), 600, line("INGSTORM", "L1", 1)))
		})
	}
	wg.Wait()
	stopSim()
	simDone.Wait()
	told := map[string]string{}
	held := 0
	for i, c := range codes {
		id := fmt.Sprint("ing-", i)
		switch c {
		case 201:
			held++
			told[id] = ledger.HoldHeld
		case 409:
			told[id] = ledger.HoldRejected
		default:
			t.Fatalf("hold %s: %d", id, c)
		}
	}
	if held != stock {
		t.Fatalf("%d of %d one-unit holds held on %d units while %d events streamed, want exactly %d", held, requests, stock, streamed.Produced, stock)
	}
	if streamed.Produced < 5000 {
		t.Fatalf("only %d warehouse events streamed during the storm", streamed.Produced)
	}

	// Caught up: every ledger partition folded to its end.
	rdb := store.Open(s.cfg.Redis)
	defer rdb.Close()
	led := ledger.New(rdb, ledger.Config{KeyPrefix: s.cfg.Redis.KeyPrefix})
	adm := kadm.NewClient(s.prod)
	waitFolded(t, adm, led, s.cfg.Topics.Ledger)
	var report processors.VerifyReport
	report, err = processors.Verify(context.Background(), s.cfg.Kafka, s.cfg.Topics, atp.AllSupply, led, codec, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Fatalf("LEDGER != FOLD: %v", report.Differences)
	}
	var runs [2]map[string]string
	for k := range runs {
		fold := ledger.NewFold(ledger.Config{})
		err := deadletter.ReadTopic(context.Background(), kafka.Conn(s.cfg.Kafka), s.cfg.Topics.Ledger, nil, func(r *kgo.Record) error {
			if v, err := codec.Decode(context.Background(), r.Value); err == nil {
				if le, ok := v.(*events.LedgerEntry); ok {
					fold.Apply(le, r.Partition, r.Offset)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		runs[k] = map[string]string{}
		for key, st := range fold.Decisions {
			runs[k][key] = st
		}
		if len(fold.Oversold) > 0 {
			t.Fatalf("replay %d: accepted beyond ATP: %v", k, fold.Oversold)
		}
	}
	if !maps.Equal(runs[0], runs[1]) {
		t.Fatal("two replays of the ledger log decided the holds differently")
	}
	for id, want := range told {
		if got := runs[0][id+"|L1|INGSTORM"]; got != want {
			t.Fatalf("hold %s: the replay decided %q, its client was told %q", id, got, want)
		}
	}
	t.Logf("%d holds held, %d refused, while %d warehouse events streamed; %d ledger entries verified", held, requests-held, streamed.Produced, report.Entries)
}

// waitFolded waits until Redis has applied every ledger partition to its
// end, twice in a row.
func waitFolded(t *testing.T, adm *kadm.Client, led *ledger.Store, topic string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	streak := 0
	for streak < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the ledger was not folded to its end within 2 minutes")
		}
		time.Sleep(250 * time.Millisecond)
		ends, err := adm.ListEndOffsets(context.Background(), topic)
		if err != nil {
			continue
		}
		applied, err := led.AppliedOffsets(context.Background(), topic)
		if err != nil {
			continue
		}
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && applied[o.Partition] < o.Offset-1 {
				done = false
			}
		})
		if done {
			streak++
		} else {
			streak = 0
		}
	}
}
