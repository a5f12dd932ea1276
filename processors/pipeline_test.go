package processors

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
)

var t0 = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func meta(id string, min int) events.Meta {
	return events.Meta{EventID: id, EventTime: t0.Add(time.Duration(min) * time.Minute), Source: "test"}
}

func receipt(id, sku, loc string, q int64, uom string) *events.InventoryReceived {
	return &events.InventoryReceived{Meta: meta(id, 1), SKU: sku, Location: loc, Quantity: q, UoM: uom}
}

const settle = 60 * time.Second

// startCrashingAfterApply starts a pipeline whose folder stops, as a crash
// would, after its first poll is written to Redis and before anything else
// of it happens; crashed is closed then.
func (e *env) startCrashingAfterApply(t *testing.T) (crashed chan struct{}, p *pipeline) {
	crashed = make(chan struct{})
	p = e.start(t, pipelineOpts{folder: FolderConfig{AfterRedisApply: func(map[int32]int64) error {
		select {
		case <-crashed:
			return nil
		default:
			close(crashed)
			go p.stop()
			time.Sleep(200 * time.Millisecond) // the stop is under way
			return errors.New("crash injected after the Redis apply")
		}
	}}})
	return crashed, p
}

// runPipelineSuite runs the ledger pipeline scenarios against one kind of env.
// dlqHeaderBytes is the bytes of the headers a dead letter adds, but the
// truncation mark: what the original record's size was measured with.
func dlqHeaderBytes(r *kgo.Record) int {
	n := 0
	for _, h := range r.Headers {
		if h.Key != deadletter.HeaderTruncated && strings.HasPrefix(h.Key, "stockflow.") {
			n += len(h.Key) + len(h.Value)
		}
	}
	return n
}

func runPipelineSuite(t *testing.T, mkEnv func(t *testing.T) *env) {
	t.Run("golden folds", func(t *testing.T) {
		for name, g := range loadGolden(t) {
			t.Run(name, func(t *testing.T) {
				e := mkEnv(t)
				e.start(t, pipelineOpts{})
				for _, ev := range g.Events {
					e.send(t, e.topic(ev.Topic), decodeGoldenEvent(t, ev.Type, ev.Event))
				}
				eventually(t, settle, func() error { return e.checkPositions(g.Expect) })
				e.verify(t)
			})
		}
	})

	t.Run("with the sources aligned by time every golden fold comes out the same", func(t *testing.T) {
		e := mkEnv(t)
		e.start(t, pipelineOpts{normalizer: NormalizerConfig{AlignWindow: time.Second}})
		// One pipeline for every golden: its SKUs are its own.
		goldens := loadGolden(t)
		var exp []expectedPos
		for _, g := range goldens {
			for _, ev := range g.Events {
				e.send(t, e.topic(ev.Topic), decodeGoldenEvent(t, ev.Type, ev.Event))
			}
			exp = append(exp, g.Expect...)
		}
		eventually(t, settle, func() error { return e.checkPositions(exp) })
		e.verify(t)
	})

	t.Run("aligned, a source whose producers' clock runs a minute ahead flows while the others do", func(t *testing.T) {
		// Record times come from the producers. Only a partition with a
		// backlog waits, and one read to its end holds no one back, so a
		// source stamped ahead of the window never waits for the others
		// to fall silent: the orders here keep coming until the skewed
		// receipts are all in the ledger.
		e := mkEnv(t)
		e.start(t, pipelineOpts{normalizer: NormalizerConfig{AlignWindow: time.Second}})
		done := make(chan struct{})
		flowing := make(chan error, 1)
		go func() {
			loc := "DC1"
			for i := 0; ; i++ {
				select {
				case <-done:
					flowing <- nil
					return
				case <-time.After(50 * time.Millisecond):
				}
				id := fmt.Sprint("SO-SKEW-", i)
				ev := &events.OrderAccepted{Meta: meta("acc-"+id, 1), OrderID: id, Channel: "web",
					Lines: []events.OrderLine{{LineID: "1", SKU: "SKU-ON-TIME", Location: &loc, Quantity: 1, UoM: "EA"}}}
				if err := e.sendAt(e.cfg.Topics.Orders, time.Now(), ev); err != nil {
					flowing <- err
					return
				}
			}
		}()
		const receipts = 20
		for i := range receipts {
			if err := e.sendAt(e.cfg.Topics.Inventory, time.Now().Add(time.Minute), receipt(fmt.Sprint("skew-", i), "SKU-SKEW", "DC1", 1, "EA")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Well under a minute: a source held back until the others fall
		// silent would be held for as long as they flow.
		eventually(t, 30*time.Second, func() error {
			select {
			case err := <-flowing:
				t.Fatalf("the orders stopped: %v", err)
			default:
			}
			return e.checkPositions([]expectedPos{{SKU: "SKU-SKEW", Location: "DC1", OnHand: receipts}})
		})
		close(done)
		if err := <-flowing; err != nil {
			t.Fatal(err)
		}
		e.verify(t)
	})

	t.Run("duplicate delivery and a replayed range change nothing", func(t *testing.T) {
		e := mkEnv(t)
		p := e.start(t, pipelineOpts{})
		var evs []events.Source
		for i := 0; i < 20; i++ {
			evs = append(evs, receipt(fmt.Sprint("dup-", i), fmt.Sprintf("SKU-D%d", i%4), "DC1", int64(i+1), "EA"))
		}
		e.send(t, e.cfg.Topics.Inventory, evs...)
		e.send(t, e.cfg.Topics.Inventory, evs[5])      // one event twice
		e.send(t, e.cfg.Topics.Inventory, evs[10:]...) // a whole range again
		want := map[int]int64{}
		for i := 0; i < 20; i++ {
			want[i%4] += int64(i + 1)
		}
		var exp []expectedPos
		for k, v := range want {
			exp = append(exp, expectedPos{SKU: fmt.Sprintf("SKU-D%d", k), Location: "DC1", OnHand: v})
		}
		eventually(t, settle, func() error {
			if err := e.checkPositions(exp); err != nil {
				return err
			}
			if st := p.folder.Stats(); st.Duplicates != 11 {
				return fmt.Errorf("folder saw %d duplicates, want 11", st.Duplicates)
			}
			return nil
		})
	})

	t.Run("every dead-letter class, and the partition moves on", func(t *testing.T) {
		e := mkEnv(t)
		e.start(t, pipelineOpts{normalizer: NormalizerConfig{UoMWait: 300 * time.Millisecond}})
		good, err := e.codec.Encode(context.Background(), e.cfg.Topics.Inventory, receipt("ok-1", "SKU-P", "DC1", 2, "EA"))
		if err != nil {
			t.Fatal(err)
		}
		unknownID := append([]byte(nil), good...)
		binary.BigEndian.PutUint32(unknownID[1:5], 77777)
		oversized := append(append([]byte(nil), good...), make([]byte, 100<<10)...)
		key := "SKU-P" // every poison record on the good record's partition
		e.sendRaw(t, e.cfg.Topics.Inventory, key, append([]byte{9}, good[1:]...))
		e.sendRaw(t, e.cfg.Topics.Inventory, key, unknownID)
		e.sendRaw(t, e.cfg.Topics.Inventory, key, good[:len(good)-3])
		e.sendRaw(t, e.cfg.Topics.Inventory, key, oversized)
		e.send(t, e.cfg.Topics.Inventory, receipt("neg-1", "SKU-P", "DC1", -5, "EA"))
		e.send(t, e.cfg.Topics.Inventory, receipt("uom-1", "SKU-P", "DC1", 1, "CRATE"))
		e.send(t, e.cfg.Topics.Inventory, receipt("bad-sku", "SKU P!", "DC1", 1, "EA"))
		e.send(t, e.cfg.Topics.Inventory, &events.OrderAllocated{Meta: meta("wrong-topic", 1), OrderID: "SO-1", LineID: "1", SKU: "SKU-P", Location: "DC1"})
		e.send(t, e.cfg.Topics.Orders, &events.OrderAccepted{Meta: meta("no-loc", 1), OrderID: "SO-X", Channel: "web",
			Lines: []events.OrderLine{{LineID: "1", SKU: "SKU-P", Quantity: 1, UoM: "EA"}}})
		e.send(t, e.cfg.Topics.Orders, &events.OrderCancelled{Meta: meta("unknown-order", 1), OrderID: "SO-NEVER"})
		e.sendRaw(t, e.cfg.Topics.Inventory, key, good)

		eventually(t, settle, func() error {
			return e.checkPositions([]expectedPos{{SKU: "SKU-P", Location: "DC1", OnHand: 2}})
		})
		dead := e.dlq(t, 10)
		classes := map[string]string{}
		for _, r := range dead {
			class, _ := deadletter.Header(r, deadletter.HeaderErrorClass)
			msg, _ := deadletter.Header(r, deadletter.HeaderErrorMessage)
			for _, h := range []string{deadletter.HeaderSourceTopic, deadletter.HeaderSourcePartition, deadletter.HeaderSourceOffset, deadletter.HeaderErrorTime} {
				if v, ok := deadletter.Header(r, h); !ok || v == "" {
					t.Errorf("dead letter %s lacks header %s", class, h)
				}
			}
			classes[class] = msg
		}
		for _, c := range []string{string(avro.ClassBadMagic), string(avro.ClassUnknownSchema), string(avro.ClassTruncated),
			string(avro.ClassOversized), ClassInvalid, ClassUnknownUoM, ClassWrongTopic, ClassUnknownReference} {
			if _, ok := classes[c]; !ok {
				t.Errorf("no dead letter of class %s (have %v)", c, classes)
			}
		}
	})

	t.Run("a record too large for a dead letter whole: kept in part, not replayable, and the partition moves on", func(t *testing.T) {
		e := mkEnv(t)
		e.start(t, pipelineOpts{})
		// As large as the broker takes (1 MiB less its overheads), sent by a
		// producer allowed batches that large; the dead letter's headers
		// would take it past what the normalizer may produce.
		big, err := kgo.NewClient(append(kafka.Conn(e.cfg.Kafka), kgo.ProducerBatchMaxBytes(1<<20))...)
		if err != nil {
			t.Fatal(err)
		}
		defer big.Close()
		value := bytes.Repeat([]byte{7}, 1_040_000)
		headers := []kgo.RecordHeader{{Key: "trace", Value: bytes.Repeat([]byte{'h'}, 4000)}}
		if err := big.ProduceSync(context.Background(), &kgo.Record{Topic: e.cfg.Topics.Inventory, Key: []byte("SKU-BIG"),
			Value: value, Headers: headers}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		e.send(t, e.cfg.Topics.Inventory, receipt("after-big", "SKU-BIG", "DC1", 3, "EA"))
		eventually(t, settle, func() error {
			return e.checkPositions([]expectedPos{{SKU: "SKU-BIG", Location: "DC1", OnHand: 3}})
		})
		dead := e.dlq(t, 1)[0]
		size, cut := deadletter.Header(dead, deadletter.HeaderTruncated)
		if !cut || size != fmt.Sprint(len(value)+len("SKU-BIG")+len("trace")+4000+dlqHeaderBytes(dead)) {
			t.Errorf("truncated header %q (%v), want the original size", size, cut)
		}
		if _, ok := deadletter.Header(dead, "trace"); ok || !bytes.Equal(dead.Value, value[:len(dead.Value)]) || string(dead.Key) != "SKU-BIG" {
			t.Error("the dead letter does not keep the start of the value and the key, without the original headers")
		}
		res, err := deadletter.Replay(context.Background(), e.prod, e.cfg.Topics.DLQ, deadletter.ReplayTargets{Topics: e.cfg.Topics, Codec: e.codec}, deadletter.Filter{}, e.log)
		if err != nil || res.Replayed != 0 || len(res.Refused) != 1 {
			t.Fatalf("replay of a cut dead letter: %+v, %v; want it refused", res, err)
		}
	})

	t.Run("unknown unit dead-lettered, replayed after the item master, applied once", func(t *testing.T) {
		e := mkEnv(t)
		e.start(t, pipelineOpts{normalizer: NormalizerConfig{UoMWait: 300 * time.Millisecond}})
		e.send(t, e.cfg.Topics.Inventory, receipt("cs-1", "SKU-U", "DC1", 2, "CS"))
		dead := e.dlq(t, 1)
		if c, _ := deadletter.Header(dead[0], deadletter.HeaderErrorClass); c != ClassUnknownUoM {
			t.Fatalf("class %q", c)
		}
		e.send(t, e.cfg.Topics.Catalog, &events.ItemMaster{Meta: meta("im-u", 0), SKU: "SKU-U", BaseUoM: "EA", Conversions: map[string]int64{"CS": 24}})
		ctx := context.Background()
		for range 2 { // replaying twice applies once
			res, err := deadletter.Replay(ctx, e.prod, e.cfg.Topics.DLQ, deadletter.ReplayTargets{Topics: e.cfg.Topics, Codec: e.codec}, deadletter.Filter{Class: ClassUnknownUoM}, e.log)
			if err != nil || res.Replayed != 1 || len(res.Refused) != 0 {
				t.Fatalf("replay: %+v, %v", res, err)
			}
		}
		eventually(t, settle, func() error {
			return e.checkPositions([]expectedPos{{SKU: "SKU-U", Location: "DC1", OnHand: 48}})
		})
		time.Sleep(time.Second)
		if err := e.checkPositions([]expectedPos{{SKU: "SKU-U", Location: "DC1", OnHand: 48}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("crash after the Redis apply, before offsets are recorded: nothing applied twice", func(t *testing.T) {
		e := mkEnv(t)
		var evs []events.Source
		for i := 0; i < 30; i++ {
			evs = append(evs, receipt(fmt.Sprint("c-", i), fmt.Sprintf("SKU-C%d", i%5), "DC1", 1, "EA"))
		}
		crashed, p := e.startCrashingAfterApply(t)
		e.send(t, e.cfg.Topics.Inventory, evs...)
		<-crashed
		p.stop()
		p2 := e.start(t, pipelineOpts{instance: "t2"})
		var exp []expectedPos
		for k := 0; k < 5; k++ {
			exp = append(exp, expectedPos{SKU: fmt.Sprintf("SKU-C%d", k), Location: "DC1", OnHand: 6})
		}
		eventually(t, settle, func() error {
			if err := e.checkPositions(exp); err != nil {
				return err
			}
			if p2.folder.Stats().Stale == 0 {
				return fmt.Errorf("the restarted folder re-read nothing it had applied: the crash point was not exercised")
			}
			return nil
		})
		e.verify(t)
	})

	t.Run("a crash between the Redis write and the produce loses no output", func(t *testing.T) {
		e := mkEnv(t)
		crashed, p := e.startCrashingAfterApply(t)
		// 0 -> 12 on hand crosses into BackInStock, in the poll that crashes.
		e.send(t, e.cfg.Topics.Inventory, receipt("out-1", "SKU-OUT", "DC1", 12, "EA"))
		<-crashed
		p.stop()
		e.start(t, pipelineOpts{instance: "t2"})
		eventually(t, settle, func() error {
			var avail *events.AvailabilityChanged
			var back []string
			ctx := context.Background()
			err := deadletter.ReadTopic(ctx, kafka.Conn(e.cfg.Kafka), e.cfg.Topics.Availability, nil, func(r *kgo.Record) error {
				if v, err := e.codec.Decode(ctx, r.Value); err == nil {
					avail = v.(*events.AvailabilityChanged)
				}
				return nil
			})
			if err != nil {
				return err
			}
			err = deadletter.ReadTopic(ctx, kafka.Conn(e.cfg.Kafka), e.cfg.Topics.Alerts, nil, func(r *kgo.Record) error {
				if v, err := e.codec.Decode(ctx, r.Value); err == nil && v.(*events.StockAlert).AlertType == events.AlertBackInStock {
					back = append(back, v.(*events.StockAlert).AlertID)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if avail == nil || avail.SKU != "SKU-OUT" || avail.OnHand != 12 {
				return fmt.Errorf("last availability %+v, want SKU-OUT with 12 on hand", avail)
			}
			if len(back) == 0 {
				return fmt.Errorf("no BackInStock alert for SKU-OUT")
			}
			for _, id := range back[1:] {
				if id != back[0] {
					return fmt.Errorf("alert published again under another id: %v", back)
				}
			}
			states, err := e.store.Load(ctx, []string{"SKU-OUT"})
			if err != nil {
				return err
			}
			if left := states[0].TakeOutbox(); len(left) != 0 {
				return fmt.Errorf("alerts left unpublished in the outbox: %v", left)
			}
			return nil
		})
	})

	t.Run("verify finds a tampered ledger", func(t *testing.T) {
		e := mkEnv(t)
		e.start(t, pipelineOpts{})
		e.send(t, e.cfg.Topics.Inventory, receipt("v-1", "SKU-V", "DC1", 9, "EA"))
		eventually(t, settle, func() error {
			return e.checkPositions([]expectedPos{{SKU: "SKU-V", Location: "DC1", OnHand: 9}})
		})
		e.verify(t)
		if err := e.rdb.HIncrBy(context.Background(), e.store.SKUKey("SKU-V")+":p:DC1", "oh", 1).Err(); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(context.Background(), e.cfg.Kafka, e.cfg.Topics, atp.AllSupply, e.store, e.codec, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || len(rep.Differences) != 1 || rep.Differences[0] != "SKU-V DC1 on_hand: expected 9, actual 10" {
			t.Fatalf("differences %q", rep.Differences)
		}
	})

	t.Run("redis flushed: the ledger is rebuilt identically from the log", func(t *testing.T) {
		e := mkEnv(t)
		p := e.start(t, pipelineOpts{})
		g := loadGolden(t)["order_lifecycle.json"]
		for _, ev := range g.Events {
			e.send(t, e.topic(ev.Topic), decodeGoldenEvent(t, ev.Type, ev.Event))
		}
		eventually(t, settle, func() error { return e.checkPositions(g.Expect) })
		before := e.snapshot(t, []string{"SKU-G1"})
		p.stop()
		// The folder's state goes; the normalizers' document index stays
		// (losing that too is the next test's).
		e.loseRedis(t, func(k string) bool {
			return strings.Contains(k, ":po:") || strings.Contains(k, ":ord:") || strings.Contains(k, ":idx:") || strings.HasSuffix(k, ":layout")
		})
		e.start(t, pipelineOpts{instance: "t2", noNorm: true})
		eventually(t, settle, func() error { return e.checkPositions(g.Expect) })
		if after := e.snapshot(t, []string{"SKU-G1"}); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("rebuilt ledger differs:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("redis loses everything, the document index too: later references still resolve", func(t *testing.T) {
		testIndexSurvivesRedisLoss(t, mkEnv)
	})

	t.Run("a normalizer stopped mid-transaction, again and again, loses nothing", func(t *testing.T) {
		e := mkEnv(t)
		want := map[string]int64{}
		p := e.start(t, pipelineOpts{instance: "n"})
		for round := 0; round < 16; round++ {
			var evs []events.Source
			for i := 0; i < 300; i++ {
				sku := fmt.Sprintf("SKU-S%02d", i%20)
				evs = append(evs, receipt(fmt.Sprintf("s-%d-%d", round, i), sku, "DC1", 1, "EA"))
				want[sku]++
			}
			e.send(t, e.cfg.Topics.Inventory, evs...)
			// Stop while the normalizer is busy with what just arrived,
			// and start again under the same instance id.
			time.Sleep(time.Duration(round) * time.Millisecond)
			p.stop()
			p = e.start(t, pipelineOpts{instance: "n"})
		}
		var exp []expectedPos
		for sku, q := range want {
			exp = append(exp, expectedPos{SKU: sku, Location: "DC1", OnHand: q})
		}
		eventually(t, settle, func() error { return e.checkPositions(exp) })
		e.verify(t)
	})

	t.Run("two folders in one group, one stopped mid-stream", func(t *testing.T) {
		e := mkEnv(t)
		e.start(t, pipelineOpts{instance: "a"})
		b := e.start(t, pipelineOpts{instance: "b", noNorm: true})
		want := map[string]int64{}
		for round := 0; round < 6; round++ {
			var evs []events.Source
			for i := 0; i < 50; i++ {
				sku := fmt.Sprintf("SKU-T%02d", i%25)
				evs = append(evs, receipt(fmt.Sprintf("t-%d-%d", round, i), sku, "DC1", int64(round+1), "EA"))
				want[sku] += int64(round + 1)
			}
			e.send(t, e.cfg.Topics.Inventory, evs...)
			if round == 2 {
				b.stop()
			}
			time.Sleep(100 * time.Millisecond)
		}
		var exp []expectedPos
		for sku, q := range want {
			exp = append(exp, expectedPos{SKU: sku, Location: "DC1", OnHand: q})
		}
		eventually(t, settle, func() error { return e.checkPositions(exp) })
		e.verify(t)
	})
}

func TestPipelineEmbedded(t *testing.T) {
	runPipelineSuite(t, embeddedEnv)
}
