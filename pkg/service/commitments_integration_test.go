//go:build integration

package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// outputs reads the commitments and alerts topics from their start, in
// the background, decoded.
type outputs struct {
	mu          sync.Mutex
	commitments []*events.CommitmentChanged
	exceptions  []*events.PlanningException
}

func readOutputs(t *testing.T, s *stack) *outputs {
	t.Helper()
	codec, err := events.OpenCodec(s.cfg.SchemaRegistry, 0)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kafka.ClientOpts(s.cfg.Kafka, kgo.ConsumeTopics(s.cfg.Topics.Commitments, s.cfg.Topics.Alerts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &outputs{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				v, err := codec.Decode(ctx, r.Value)
				if err != nil {
					return
				}
				o.mu.Lock()
				switch x := v.(type) {
				case *events.CommitmentChanged:
					o.commitments = append(o.commitments, x)
				case *events.PlanningException:
					o.exceptions = append(o.exceptions, x)
				}
				o.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return o
}

// promised is a commitment as the tests write it: "O2: 3 on 2026-03-10, 17 on 2026-03-20".
func promised(c *events.CommitmentChanged) string {
	p := c.Promise
	if p.OpenQuantity == 0 {
		return c.OrderID + ": nothing open"
	}
	var parts []string
	if p.ConfirmedNow > 0 {
		parts = append(parts, fmt.Sprint(p.ConfirmedNow, " now"))
	}
	for _, d := range p.Promised {
		parts = append(parts, fmt.Sprint(d.Quantity, " on ", d.Date.Format(time.DateOnly)))
	}
	if p.Unpromised > 0 {
		parts = append(parts, fmt.Sprint(p.Unpromised, " unpromised"))
	}
	return c.OrderID + ": " + strings.Join(parts, ", ")
}

// causedBy waits until the commitments caused by event id are want (in any
// order), then a moment more, and fails on any other or any repeat.
func (o *outputs) causedBy(t *testing.T, id string, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = o.promisesOf(id)
		if len(got) >= len(want) {
			time.Sleep(time.Second) // a repeat or a stray would be here by now
			got = o.promisesOf(id)
			break
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after %s, the commitments published were\n  %s\nwant\n  %s", id, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func (o *outputs) promisesOf(cause string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, c := range o.commitments {
		if c.CauseEventID == cause {
			out = append(out, promised(c))
		}
	}
	slices.Sort(out)
	return out
}

func (o *outputs) count() (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.commitments), len(o.exceptions)
}

// Three orders backordered in the order they were taken across two POs,
// on the real stack: an acknowledgement cutting one PO re-promises exactly
// the later orders, once, with that cause, and raises a planning exception
// naming them; a ship notice earlier than the PO date brings every promise
// forward; a cancelled order lets the next ones move up; the same events
// again publish nothing new.
func TestCommitmentsFollowSupplyOnTheRealStack(t *testing.T) {
	cfg := testenv.Config(t, 0)
	s := startStack(t, cfg, Options{})
	out := readOutputs(t, s)
	sku, loc := "CMT-"+testenv.Suffix(), "L1"
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	meta := func(id string, min int) events.Meta {
		return events.Meta{EventID: id + "-" + sku, EventTime: base.Add(time.Duration(min) * time.Minute), Source: "test"}
	}
	day := func(d int) time.Time { return time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, d) }
	date := func(d int) string { return day(d).Format(time.DateOnly) }

	s.send(t, cfg.Topics.Catalog, sku, &events.ItemMaster{Meta: meta("item", 0), SKU: sku, BaseUoM: "EA", Conversions: map[string]int64{"EA": 1}})
	s.send(t, cfg.Topics.Inventory, sku, &events.InventoryReceived{Meta: meta("rcv", 1), SKU: sku, Location: loc, Quantity: 10, UoM: "EA"})
	for _, po := range []struct {
		id string
		q  int64
		d  int
	}{{"PO-A", 20, 10}, {"PO-B", 30, 20}} {
		s.send(t, cfg.Topics.Supplier, po.id+sku, &events.PurchaseOrderReleased{Meta: meta(po.id, 2), PONumber: po.id + sku, SupplierID: "SUP-1",
			Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: sku, Location: loc, Quantity: po.q, UoM: "EA", ExpectedDate: day(po.d)}}})
	}
	s.waitATP(t, sku, loc, 10)
	order := func(id string, q int64, min int) *events.OrderAccepted {
		l := loc
		return &events.OrderAccepted{Meta: meta(id, min), OrderID: id + sku, Channel: "web", Lines: []events.OrderLine{{LineID: "1", SKU: sku, Location: &l, Quantity: q, UoM: "EA"}}}
	}
	// Taken O1, O2, O3; O3 arrives first.
	for _, o := range []*events.OrderAccepted{order("O3", 20, 30), order("O1", 15, 10), order("O2", 20, 20)} {
		s.send(t, cfg.Topics.Orders, o.OrderID, o)
	}
	want := map[string]string{
		"O1" + sku: fmt.Sprintf("confirmed 10, %s:5", date(10)),
		"O2" + sku: fmt.Sprintf("%s:15 %s:5", date(10), date(20)),
		"O3" + sku: fmt.Sprintf("%s:20", date(20)),
	}
	s.waitKeyed(t, "the three orders' promises", func() bool {
		for id, w := range want {
			if s.orderPromise(t, id) != w {
				return false
			}
		}
		return true
	})

	// PO-A is cut to 8: O2 and O3 are re-promised, O1 is not.
	s.send(t, cfg.Topics.Supplier, "PO-A"+sku, &events.PurchaseOrderAcknowledged{Meta: meta("ack", 40), PONumber: "PO-A" + sku, SupplierID: "SUP-1",
		Lines: []events.AcknowledgedLine{{POLine: 1, Status: events.AckChanged, Quantity: 8, ExpectedDate: day(10)}}})
	out.causedBy(t, "ack-"+sku,
		fmt.Sprintf("O2%s: 3 on %s, 17 on %s", sku, date(10), date(20)),
		fmt.Sprintf("O3%s: 13 on %s, 7 unpromised", sku, date(20)))
	s.waitKeyed(t, "the planning exception", func() bool {
		out.mu.Lock()
		defer out.mu.Unlock()
		for _, ex := range out.exceptions {
			if ex.CauseEventID == "ack-"+sku {
				return len(ex.Lines) == 2 && ex.Lines[0].OrderID == "O2"+sku && ex.Lines[1].OrderID == "O3"+sku &&
					*ex.SupplierID == "SUP-1" && *ex.PONumber == "PO-A"+sku && ex.UnpromisedUnits == 7 && ex.LateUnits == 12+7
			}
		}
		return false
	})

	// PO-B's goods ship early: every promise comes forward.
	s.send(t, cfg.Topics.Supplier, "PO-B"+sku, &events.AdvanceShipNotice{Meta: meta("asn", 50), ASNID: "ASN-1" + sku, PONumber: "PO-B" + sku, SupplierID: "SUP-1",
		ETA: day(5).Add(9 * time.Hour), Lines: []events.AdvanceShipNoticeLine{{POLine: 1, SKU: sku, Quantity: 30, UoM: "EA"}}})
	out.causedBy(t, "asn-"+sku,
		fmt.Sprintf("O1%s: 10 now, 5 on %s", sku, date(5)),
		fmt.Sprintf("O2%s: 20 on %s", sku, date(5)),
		fmt.Sprintf("O3%s: 5 on %s, 8 on %s, 7 unpromised", sku, date(5), date(10)))

	// O1 is cancelled: the next orders move up.
	s.send(t, cfg.Topics.Orders, "O1"+sku, &events.OrderCancelled{Meta: meta("cancel", 60), OrderID: "O1" + sku})
	out.causedBy(t, "cancel-"+sku,
		"O1"+sku+": nothing open",
		fmt.Sprintf("O2%s: 10 now, 10 on %s", sku, date(5)),
		fmt.Sprintf("O3%s: 20 on %s", sku, date(5)))

	// The same events again: nothing new is published.
	commitments, exceptions := out.count()
	s.send(t, cfg.Topics.Supplier, "PO-A"+sku, &events.PurchaseOrderAcknowledged{Meta: meta("ack", 40), PONumber: "PO-A" + sku, SupplierID: "SUP-1",
		Lines: []events.AcknowledgedLine{{POLine: 1, Status: events.AckChanged, Quantity: 8, ExpectedDate: day(10)}}})
	s.send(t, cfg.Topics.Orders, "O1"+sku, &events.OrderCancelled{Meta: meta("cancel", 60), OrderID: "O1" + sku})
	s.send(t, cfg.Topics.Orders, "O4"+sku, order("O4", 1, 70)) // a marker: its promise shows the others were folded
	s.waitKeyed(t, "the marker order's promise", func() bool { return s.orderPromise(t, "O4"+sku) != "" })
	c2, e2 := out.count()
	if c2 != commitments+1 || e2 != exceptions {
		t.Errorf("the repeated events published %d commitments and %d exceptions (the marker order one commitment)", c2-commitments, e2-exceptions)
	}
	if code, body := s.call(t, "GET", "/v1/orders/NO-SUCH-ORDER/commitments", nil); code != 404 {
		t.Errorf("an unknown order: %d %v", code, body)
	}
	// O3's last promises, newest first, name their causes.
	_, body := s.call(t, "GET", "/v1/orders/O3"+sku+"/commitments", nil)
	var causes []string
	for _, h := range body["lines"].([]any)[0].(map[string]any)["history"].([]any) {
		causes = append(causes, h.(map[string]any)["cause_event_id"].(string))
	}
	if len(causes) < 3 || !slices.Equal(causes[:3], []string{"cancel-" + sku, "asn-" + sku, "ack-" + sku}) {
		t.Errorf("O3's history names %v", causes)
	}
}

// orderPromise is the promise GET /v1/orders/{id}/commitments gives the
// order's one line: "confirmed N, date:q date:q, unpromised N" ("" none).
func (s *stack) orderPromise(t *testing.T, id string) string {
	t.Helper()
	code, body := s.call(t, "GET", "/v1/orders/"+id+"/commitments", nil)
	if code != 200 {
		return ""
	}
	lines, _ := body["lines"].([]any)
	if len(lines) != 1 {
		return ""
	}
	p, ok := lines[0].(map[string]any)["promise"].(map[string]any)
	if !ok {
		return ""
	}
	var parts []string
	if n := p["confirmed_now"].(float64); n > 0 {
		parts = append(parts, fmt.Sprintf("confirmed %.0f,", n))
	}
	for _, x := range p["promised"].([]any) {
		d := x.(map[string]any)
		parts = append(parts, fmt.Sprintf("%s:%.0f", d["date"], d["quantity"]))
	}
	if n := p["unpromised"].(float64); n > 0 {
		parts = append(parts, fmt.Sprintf("unpromised %.0f", n))
	}
	return strings.Join(parts, " ")
}
