package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

var purchaseOrderReleased = Register(Def[*events.PurchaseOrderReleased]{
	Doc: "One PO_LINE per line: inbound supply at its location, expected on its date. The lines (SKU, location, unit, " +
		"release time) are recorded in the document index for the acknowledgements, ship notices and close that follow.",
	Topic: supplierTopic,
	Summary: func(e *events.PurchaseOrderReleased) string {
		return fmt.Sprintf("PO %s released to %s: %s", e.PONumber, e.SupplierID, joinLines(e.Lines, func(l events.PurchaseOrderLine) string {
			return fmt.Sprintf("%d %s of %s to %s by %s", l.Quantity, l.UoM, l.SKU, l.Location, day(l.ExpectedDate))
		}))
	},
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.PurchaseOrderReleased) ([]*events.LedgerEntry, error) {
		if err := firstErr(checkRef("po_number", e.PONumber), checkRef("supplier_id", e.SupplierID)); err != nil {
			return nil, err
		}
		if len(e.Lines) == 0 {
			return nil, Reject(ClassInvalid, "lines: a purchase order needs at least one line")
		}
		out := make([]*events.LedgerEntry, 0, len(e.Lines))
		idx := make([]ledger.IndexedLine, 0, len(e.Lines))
		seen := map[int32]bool{}
		for i, l := range e.Lines {
			if err := firstErr(checkID(lineField(i, "sku"), l.SKU), checkID(lineField(i, "location"), l.Location), checkPositive(lineField(i, "quantity"), l.Quantity)); err != nil {
				return nil, err
			}
			if seen[l.POLine] {
				return nil, Reject(ClassInvalid, "%s: %d appears twice", lineField(i, "po_line"), l.POLine)
			}
			seen[l.POLine] = true
			q, err := env.ToBase(ctx, lineField(i, "quantity"), l.SKU, l.Quantity, l.UoM)
			if err != nil {
				return nil, err
			}
			le := newEntry(events.EntryPOLine, l.SKU, &e.Meta, r)
			pl, d := l.POLine, l.ExpectedDate
			le.PONumber, le.POLine, le.SupplierID, le.Location, le.Quantity, le.ExpectedDate = str(e.PONumber), &pl, str(e.SupplierID), str(l.Location), q, &d
			out = append(out, le)
			idx = append(idx, ledger.IndexedLine{Line: fmt.Sprint(l.POLine), SKU: l.SKU, Location: l.Location, UoM: l.UoM, Released: e.EventTime})
		}
		env.Record(poDoc(e.PONumber), idx)
		return out, nil
	},
})
