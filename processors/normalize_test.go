package processors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/sim"
)

// The simulator's purchase orders are in cases, and their acknowledgements
// confirm quantities in the PO line's unit. Folded through the normalizer
// and the ledger engine, an acknowledged line's inbound is what the
// supplier confirmed: the ordered eaches for an accepted or backordered
// line, the confirmed cases in eaches for a changed one, none for a
// rejected one. (An acknowledgement in eaches reads as that many cases.)
func TestSimulatedAcknowledgementsFoldInThePOLineUnit(t *testing.T) {
	e := embeddedEnv(t)
	e.start(t, pipelineOpts{})
	gen := sim.NewGenerator(5, sim.Catalogue{SKUs: 20}, e.cfg.Topics, nil)
	caseOf := map[string]int64{}
	for _, m := range gen.Catalog() {
		im := m.Event.(*events.ItemMaster)
		caseOf[im.SKU] = im.Conversions["CS"]
		e.send(t, m.Topic, im)
	}
	type line struct {
		sku, loc string
		inbound  int64
	}
	lines := map[string]*line{}
	var docs []sim.Message
	acked := map[string]int{}
	for i := 0; i < 600; i++ {
		m := gen.Next()
		switch ev := m.Event.(type) {
		case *events.PurchaseOrderReleased:
			for _, l := range ev.Lines {
				if l.UoM != "CS" {
					t.Fatalf("%s line %d in %s: this test expects cases", ev.PONumber, l.POLine, l.UoM)
				}
				lines[fmt.Sprint(ev.PONumber, "|", l.POLine)] = &line{sku: l.SKU, loc: l.Location, inbound: l.Quantity * caseOf[l.SKU]}
			}
		case *events.PurchaseOrderAcknowledged:
			for _, a := range ev.Lines {
				l := lines[fmt.Sprint(ev.PONumber, "|", a.POLine)]
				switch a.Status {
				case events.AckChanged:
					l.inbound = a.Quantity * caseOf[l.sku]
				case events.AckRejected:
					l.inbound = 0
				}
				acked[a.Status]++
			}
		default:
			continue // ship notices, receipts and closes would move inbound again
		}
		docs = append(docs, m)
	}
	if acked[events.AckAccepted] == 0 || acked[events.AckChanged] == 0 {
		t.Fatalf("600 events acknowledged too little to check: %v", acked)
	}
	for _, m := range docs {
		e.send(t, m.Topic, m.Event)
	}
	want := map[[2]string]int64{}
	for _, l := range lines {
		want[[2]string{l.sku, l.loc}] += l.inbound
	}
	var exp []expectedPos
	for k, q := range want {
		exp = append(exp, expectedPos{SKU: k[0], Location: k[1], Inbound: q})
	}
	eventually(t, settle, func() error { return e.checkInbound(exp) })
	e.verify(t)
	t.Logf("%d PO lines at %d positions; acknowledgements %v", len(lines), len(want), acked)
}

// checkInbound compares only the inbound of each expected position.
func (e *env) checkInbound(want []expectedPos) error {
	for _, w := range want {
		got, err := e.store.Position(context.Background(), w.SKU, w.Location, time.Now())
		if err != nil {
			return err
		}
		if got.Inbound != w.Inbound {
			return fmt.Errorf("%s@%s: inbound %d, want %d", w.SKU, w.Location, got.Inbound, w.Inbound)
		}
	}
	return nil
}
