package processors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// caughtUp waits until both groups have committed everything there is.
func (e *env) caughtUp(t *testing.T) {
	t.Helper()
	adm := kadm.NewClient(e.prod)
	groups := []string{e.cfg.Kafka.NormalizerGroup, e.cfg.Kafka.FolderGroup}
	eventually(t, settle, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lags, err := adm.Lag(ctx, groups...)
		if err != nil {
			return err
		}
		for _, g := range groups {
			l, ok := lags[g]
			if !ok || l.Error() != nil {
				return fmt.Errorf("group %s: no lag yet (%v)", g, l.Error())
			}
			if n := l.Lag.Total(); n != 0 {
				return fmt.Errorf("group %s: lag %d", g, n)
			}
		}
		return nil
	})
}

// deadLetters returns the classes of every record on the dead-letter topic.
func (e *env) deadLetters(t *testing.T) []string {
	t.Helper()
	var classes []string
	err := deadletter.Scan(context.Background(), kafka.Conn(e.cfg.Kafka), e.cfg.Topics.DLQ, deadletter.Filter{}, func(d deadletter.DeadLetter) error {
		classes = append(classes, d.Class+": "+d.Message)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return classes
}

// referrer reports whether an event names document lines without their
// SKU, and so needs the document index.
func referrer(ev events.Source) bool {
	switch ev.(type) {
	case *events.OrderCancelled, *events.PurchaseOrderAcknowledged, *events.AdvanceShipNotice, *events.PurchaseOrderClosed:
		return true
	}
	return false
}

// testIndexSurvivesRedisLoss folds each golden file whose documents are
// referred to later (a cancellation, an acknowledgement, an ASN, a close)
// with Redis losing everything just before the first such reference: the
// documents were indexed before the loss, the references come after it. The
// fold must come out as the golden file says, with nothing dead-lettered.
func testIndexSurvivesRedisLoss(t *testing.T, mkEnv func(t *testing.T) *env) {
	for _, running := range []bool{false, true} {
		when := "while stopped"
		if running {
			when = "under a running instance"
		}
		for name, g := range loadGolden(t) {
			split := -1
			for i, ev := range g.Events {
				if referrer(decodeGoldenEvent(t, ev.Type, ev.Event)) {
					split = i
					break
				}
			}
			if split < 0 {
				continue
			}
			t.Run(when+"/"+name, func(t *testing.T) {
				e := mkEnv(t)
				p := e.start(t, pipelineOpts{})
				for _, ev := range g.Events[:split] {
					e.send(t, e.topic(ev.Topic), decodeGoldenEvent(t, ev.Type, ev.Event))
				}
				e.caughtUp(t)
				if !running {
					p.stop()
				}
				// Everything goes: the ledger, the folder's offsets and
				// marker, and the document index.
				e.loseRedis(t, nil)
				if !running {
					p = e.start(t, pipelineOpts{})
				}
				for _, ev := range g.Events[split:] {
					e.send(t, e.topic(ev.Topic), decodeGoldenEvent(t, ev.Type, ev.Event))
				}
				eventually(t, settle, func() error { return e.checkPositions(g.Expect) })
				e.caughtUp(t)
				if dead := e.deadLetters(t); len(dead) > 0 {
					t.Fatalf("dead-lettered after the loss: %q", dead)
				}
				e.verify(t)
				p.stop()
				if st := p.norm.Stats(); st.IndexCatchUps == 0 || st.IndexLines == 0 {
					t.Fatalf("the index was not caught up from its topic: %+v", st)
				}
			})
		}
	}
}

// The normalizer reads the document index for a whole poll in one round
// trip and writes it in one, where it took a round trip per order or PO
// event: orders accepted and cancelled, POs released, acknowledged, shipped
// and closed, all queued before the normalizer starts, so that polls are
// full.
func TestNormalizerIndexRoundTripsPerPoll(t *testing.T) {
	e := embeddedEnv(t)
	const docs = 300
	var orders, supplier []events.Source
	for i := range docs {
		id := fmt.Sprint("SO-R", i)
		loc := "DC1"
		orders = append(orders,
			&events.OrderAccepted{Meta: meta("acc-"+id, 1), OrderID: id, Channel: "web",
				Lines: []events.OrderLine{{LineID: "1", SKU: "SKU-R", Location: &loc, Quantity: 2, UoM: "EA"}}},
			&events.OrderCancelled{Meta: meta("cxl-"+id, 2), OrderID: id})
		po := fmt.Sprint("PO-R", i)
		supplier = append(supplier,
			&events.PurchaseOrderReleased{Meta: meta("rel-"+po, 1), PONumber: po, SupplierID: "SUP",
				Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: "SKU-R", Location: "DC1", Quantity: 3, UoM: "EA", ExpectedDate: t0}}},
			&events.PurchaseOrderAcknowledged{Meta: meta("ack-"+po, 2), PONumber: po, SupplierID: "SUP",
				Lines: []events.AcknowledgedLine{{POLine: 1, Status: events.AckAccepted, Quantity: 3, ExpectedDate: t0}}},
			&events.PurchaseOrderClosed{Meta: meta("cls-"+po, 3), PONumber: po, Reason: "done"})
	}
	e.send(t, e.cfg.Topics.Orders, orders...)
	e.send(t, e.cfg.Topics.Supplier, supplier...)
	e.start(t, pipelineOpts{noNorm: true}) // the folder, on a Redis client of its own

	var rdb redis.UniversalClient
	switch c := e.rdb.(type) {
	case *redis.Client:
		rdb = redis.NewClient(c.Options())
	case *redis.ClusterClient:
		rdb = redis.NewClusterClient(c.Options())
	}
	t.Cleanup(func() { rdb.Close() })
	var rt testenv.RoundTrips
	rdb.AddHook(&rt)
	catalog, err := NewCatalog(kafka.ClientOpts(e.cfg.Kafka), e.cfg.Topics.Catalog, e.codec, e.log)
	if err != nil {
		t.Fatal(err)
	}
	norm := NewNormalizer(NormalizerConfig{Kafka: e.cfg.Kafka, Topics: e.cfg.Topics, InstanceID: "rt"}, e.codec, ledger.New(rdb, ledger.Config{KeyPrefix: e.store.KeyPrefix()}), catalog, e.log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- catalog.Run(ctx) }()
	go func() { done <- norm.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			for range 2 {
				if err := <-done; err != nil {
					t.Error(err)
				}
			}
		}
	}
	t.Cleanup(stop)
	e.caughtUp(t)
	stop()

	st := norm.Stats()
	events := int64(len(orders) + len(supplier))
	if st.Records != events || st.DeadLetters != 0 {
		t.Fatalf("%d records, %d dead letters; want %d records, none dead", st.Records, st.DeadLetters, events)
	}
	trips := rt.N()
	t.Logf("%d order and PO events in %d transactions: %d Redis round trips for the document index (%.2f per transaction); one per event would be %d",
		events, st.Transactions, trips, float64(trips)/float64(st.Transactions), events)
	if trips > 2*st.Transactions {
		t.Fatalf("%d round trips in %d transactions: more than one read and one write each", trips, st.Transactions)
	}
	if err := e.checkPositions([]expectedPos{{SKU: "SKU-R", Location: "DC1"}}); err != nil {
		t.Fatal(err)
	}
}

// Each event that names document lines without their SKU has its document
// read for the batch, before any record is normalized.
func TestIndexReads(t *testing.T) {
	loc := "DC1"
	for _, c := range []struct {
		ev   events.Source
		want []ledger.Doc
	}{
		{&events.OrderCancelled{OrderID: "SO-1"}, []ledger.Doc{ledger.Doc{Kind: ledger.OrderDoc, ID: "SO-1"}}},
		{&events.PurchaseOrderAcknowledged{PONumber: "PO-1"}, []ledger.Doc{ledger.Doc{Kind: ledger.PODoc, ID: "PO-1"}}},
		{&events.AdvanceShipNotice{PONumber: "PO-2"}, []ledger.Doc{ledger.Doc{Kind: ledger.PODoc, ID: "PO-2"}}},
		{&events.PurchaseOrderClosed{PONumber: "PO-3"}, []ledger.Doc{ledger.Doc{Kind: ledger.PODoc, ID: "PO-3"}}},
		{&events.OrderCancelled{OrderID: ""}, nil}, // rejected before any look-up
		{&events.OrderAccepted{OrderID: "SO-2", Lines: []events.OrderLine{{LineID: "1", SKU: "S", Location: &loc}}}, nil},
		{&events.PurchaseOrderReleased{PONumber: "PO-4"}, nil},
		{&events.OrderAllocated{OrderID: "SO-3"}, nil},
		{&events.InventoryReceived{SKU: "S"}, nil},
	} {
		got := indexReads([]polled{{ev: c.ev}})
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: reads %v, want %v", c.ev.AvroName(), got, c.want)
		}
	}
	if got := indexReads([]polled{{err: errors.New("bad record")}}); len(got) != 0 {
		t.Errorf("a record that did not decode is read for: %v", got)
	}
}

// A purchase order close whose document index holds a line that is not a PO
// line number (the index damaged) is dead-lettered, naming the line, and the
// partition moves on: no close is emitted for a line the PO does not have,
// and the record is not retried for ever.
func TestPOCloseWithADamagedIndexIsDeadLettered(t *testing.T) {
	e := embeddedEnv(t)
	e.start(t, pipelineOpts{})
	e.send(t, e.cfg.Topics.Supplier, &events.PurchaseOrderReleased{Meta: meta("rel-dmg", 1), PONumber: "PO-DMG", SupplierID: "SUP",
		Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: "SKU-D", Location: "DC1", Quantity: 3, UoM: "EA", ExpectedDate: t0}}})
	eventually(t, settle, func() error {
		return e.checkPositions([]expectedPos{{SKU: "SKU-D", Location: "DC1", Inbound: 3}})
	})
	err := e.store.WriteIndex(context.Background(), []ledger.IndexWrite{{Doc: ledger.Doc{Kind: ledger.PODoc, ID: "PO-DMG"},
		Lines: []ledger.IndexedLine{{Line: "one", SKU: "SKU-D", Location: "DC1", UoM: "EA", Released: t0}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, e.cfg.Topics.Supplier, &events.PurchaseOrderClosed{Meta: meta("cls-dmg", 2), PONumber: "PO-DMG", Reason: "done"})
	e.send(t, e.cfg.Topics.Supplier, &events.PurchaseOrderReleased{Meta: meta("rel-after", 3), PONumber: "PO-AFTER", SupplierID: "SUP",
		Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: "SKU-D", Location: "DC1", Quantity: 2, UoM: "EA", ExpectedDate: t0}}})
	dead := e.dlq(t, 1)
	if class, _ := deadletter.Header(dead[0], deadletter.HeaderErrorClass); class != ClassInvalid {
		t.Fatalf("dead letter of class %q, want %s", class, ClassInvalid)
	}
	if msg, _ := deadletter.Header(dead[0], deadletter.HeaderErrorMessage); !strings.Contains(msg, `line "one"`) {
		t.Errorf("the dead letter does not name the damaged line: %s", msg)
	}
	eventually(t, settle, func() error {
		return e.checkPositions([]expectedPos{{SKU: "SKU-D", Location: "DC1", Inbound: 5}})
	})
}
