package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
)

var fixed = func() time.Time { return time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC) }

func TestGeneratorIsDeterministicAndCoversEveryEvent(t *testing.T) {
	topics := config.Default().Topics
	a := NewGenerator(7, Catalogue{SKUs: 50}, topics, fixed)
	b := NewGenerator(7, Catalogue{SKUs: 50}, topics, fixed)
	seen := map[string]int{}
	for i := 0; i < 5000; i++ {
		ma, mb := a.Next(), b.Next()
		if !reflect.DeepEqual(ma, mb) {
			t.Fatalf("event %d differs for the same seed:\n%+v\n%+v", i, ma, mb)
		}
		seen[ma.Event.AvroName()]++
	}
	for _, rec := range events.All()[:12] { // every source event but the item master
		if seen[rec.AvroName()] == 0 {
			t.Errorf("5000 events and not one %s", rec.AvroName())
		}
	}
	c := NewGenerator(8, Catalogue{SKUs: 50}, topics, fixed)
	if reflect.DeepEqual(a.Next(), c.Next()) {
		t.Error("different seeds gave the same event")
	}
}

func TestEventsGoToTheirTopicWithTheirKey(t *testing.T) {
	topics := config.Default().Topics
	g := NewGenerator(3, Catalogue{}, topics, fixed)
	for _, m := range g.Catalog() {
		if m.Topic != topics.Catalog || m.Key != m.Event.(*events.ItemMaster).SKU {
			t.Fatalf("item master to %s key %s", m.Topic, m.Key)
		}
	}
	for i := 0; i < 2000; i++ {
		m := g.Next()
		var topic, key string
		switch e := m.Event.(type) {
		case *events.InventoryReceived:
			topic, key = topics.Inventory, e.SKU
		case *events.InventoryPicked:
			topic, key = topics.Inventory, e.SKU
		case *events.InventoryShipped:
			topic, key = topics.Inventory, e.SKU
		case *events.InventoryCounted:
			topic, key = topics.Inventory, e.SKU
		case *events.InventoryAdjusted:
			topic, key = topics.Inventory, e.SKU
		case *events.OrderAccepted:
			topic, key = topics.Orders, e.OrderID
		case *events.OrderCancelled:
			topic, key = topics.Orders, e.OrderID
		case *events.OrderAllocated:
			topic, key = topics.Orders, e.OrderID
		case *events.PurchaseOrderReleased:
			topic, key = topics.Supplier, e.PONumber
		case *events.PurchaseOrderAcknowledged:
			topic, key = topics.Supplier, e.PONumber
		case *events.AdvanceShipNotice:
			topic, key = topics.Supplier, e.PONumber
		case *events.PurchaseOrderClosed:
			topic, key = topics.Supplier, e.PONumber
		default:
			t.Fatalf("unexpected %T", e)
		}
		if m.Topic != topic || m.Key != key {
			t.Fatalf("%s went to %s with key %s, want %s key %s", m.Event.AvroName(), m.Topic, m.Key, topic, key)
		}
	}
}

// roundTrip produces n simulated events through brokers, consumes every
// source topic back and checks that each decoded event equals what the
// generator made, on the topic and key it chose.
func roundTrip(t *testing.T, brokers []string, topics config.Topics, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	kcfg := config.Default().Kafka
	kcfg.Brokers = brokers
	cl, err := kgo.NewClient(kafka.ClientOpts(kcfg)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), 3, 1, kafka.Topics(topics)); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := New(Config{Count: n}, NewGenerator(42, Catalogue{SKUs: 30}, topics, fixed), codec, cl, log).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Produced != n || st.Catalog != 30+30*5 {
		t.Fatalf("stats %+v", st)
	}

	want := map[string]Message{}
	ref := NewGenerator(42, Catalogue{SKUs: 30}, topics, fixed)
	for _, m := range append(ref.Catalog(), ref.Opening()...) {
		want[m.Event.Metadata().EventID] = m
	}
	for i := 0; i < n; i++ {
		m := ref.Next()
		want[m.Event.Metadata().EventID] = m
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topics.Inventory, topics.Orders, topics.Supplier, topics.Catalog),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	// want loses each event as it arrives: read until it is empty (or the
	// context ends), however many fetches that takes.
	total, got := len(want), 0
	for len(want) > 0 {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read back %d of %d events: %v", got, total, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		for _, r := range fs.Records() {
			rec, err := codec.Decode(ctx, r.Value)
			if err != nil {
				t.Fatalf("decode %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			ev := rec.(events.Source)
			w, ok := want[ev.Metadata().EventID]
			if !ok {
				t.Fatalf("unexpected event %s", ev.Metadata().EventID)
			}
			if r.Topic != w.Topic || string(r.Key) != w.Key {
				t.Fatalf("%s on %s key %s, want %s key %s", ev.Metadata().EventID, r.Topic, r.Key, w.Topic, w.Key)
			}
			if !reflect.DeepEqual(ev, w.Event) {
				t.Fatalf("decoded event differs:\n got %+v\nwant %+v", ev, w.Event)
			}
			delete(want, ev.Metadata().EventID)
			got++
		}
	}
}

func TestSimulatorRoundTripEmbedded(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c.ListenAddrs(), config.Default().Topics, 1000)
}

// An acknowledgement confirms quantities in the PO line's unit of measure
// (schemas/PurchaseOrderAcknowledged.avsc), and a ship notice ships what
// was confirmed, in its own unit: so an accepted or backordered line
// confirms the ordered quantity, a changed one less, a rejected one none,
// and the notice's eaches are the confirmed quantity times the item's
// conversion of the line's unit.
func TestAcknowledgementsAreInThePOLineUnit(t *testing.T) {
	g := NewGenerator(11, Catalogue{SKUs: 40}, config.Default().Topics, fixed)
	conv := map[string]map[string]int64{}
	for _, m := range g.Catalog() {
		im := m.Event.(*events.ItemMaster)
		conv[im.SKU] = im.Conversions
	}
	type line struct {
		sku, uom       string
		ordered, acked int64
		acknowledged   bool
	}
	lines := map[string]*line{} // po|line
	key := func(po string, l int32) string { return fmt.Sprint(po, "|", l) }
	var acks, notices int
	for i := 0; i < 5000; i++ {
		switch e := g.Next().Event.(type) {
		case *events.PurchaseOrderReleased:
			for _, l := range e.Lines {
				lines[key(e.PONumber, l.POLine)] = &line{sku: l.SKU, uom: l.UoM, ordered: l.Quantity}
			}
		case *events.PurchaseOrderAcknowledged:
			acks++
			for _, a := range e.Lines {
				l := lines[key(e.PONumber, a.POLine)]
				if l == nil {
					t.Fatalf("%s acknowledges line %d, never released", e.PONumber, a.POLine)
				}
				l.acked, l.acknowledged = a.Quantity, true
				checkAck(t, e.PONumber, a, l.ordered, l.uom)
			}
		case *events.AdvanceShipNotice:
			notices++
			for _, n := range e.Lines {
				l := lines[key(e.PONumber, n.POLine)]
				if l == nil || !l.acknowledged {
					t.Fatalf("%s line %d shipped before it was acknowledged", e.PONumber, n.POLine)
				}
				if n.UoM != "EA" || n.Quantity != l.acked*conv[l.sku][l.uom] {
					t.Fatalf("%s line %d: notice ships %d %s; acknowledged %d %s of %d EA each",
						e.PONumber, n.POLine, n.Quantity, n.UoM, l.acked, l.uom, conv[l.sku][l.uom])
				}
			}
		}
	}
	if acks == 0 || notices == 0 {
		t.Fatalf("5000 events gave %d acknowledgements and %d ship notices", acks, notices)
	}
}

func checkAck(t *testing.T, po string, a events.AcknowledgedLine, ordered int64, uom string) {
	t.Helper()
	ok := false
	switch a.Status {
	case events.AckAccepted, events.AckBackordered:
		ok = a.Quantity == ordered
	case events.AckChanged:
		ok = a.Quantity > 0 && a.Quantity < ordered
	case events.AckRejected:
		ok = a.Quantity == 0
	}
	if !ok {
		t.Fatalf("%s line %d: %s %d, but the line ordered %d %s (an acknowledgement is in the line's unit)",
			po, a.POLine, a.Status, a.Quantity, ordered, uom)
	}
}

// A long run is a business in its steady state: the open order book and
// the open POs stay within their bounds while orders and POs keep coming
// and going.
func TestOpenDocumentsStayBounded(t *testing.T) {
	g := NewGenerator(9, Catalogue{SKUs: 20, OpenLines: 100, OpenPOs: 20}, config.Default().Topics, fixed)
	late := map[string]int{}
	for i := 0; i < 20000; i++ {
		m := g.Next()
		if lines := len(g.open) + len(g.picked) + len(g.grouped); lines > 100+2 { // an order adds up to 3 lines
			t.Fatalf("event %d: %d order lines open, bound 100", i, lines)
		}
		if len(g.openPOs) > 20 {
			t.Fatalf("event %d: %d POs open, bound 20", i, len(g.openPOs))
		}
		if i >= 15000 {
			late[fmt.Sprintf("%T", m.Event)]++
		}
	}
	for _, typ := range []string{"*events.OrderAccepted", "*events.InventoryShipped", "*events.PurchaseOrderReleased", "*events.InventoryReceived"} {
		if late[typ] == 0 {
			t.Errorf("no %s in the last 5,000 events: %v", typ, late)
		}
	}
}
