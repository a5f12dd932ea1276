package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

var inventoryReceived = Register(Def[*events.InventoryReceived]{
	Doc:   "One RECEIPT: on hand rises; against a PO line (po_number and po_line, both or neither) it adds to the line's received.",
	Topic: inventoryTopic,
	Summary: func(e *events.InventoryReceived) string {
		s := fmt.Sprintf("received %d %s of %s at %s", e.Quantity, e.UoM, e.SKU, e.Location)
		if e.PONumber != nil {
			s += " for PO " + *e.PONumber
		}
		return s
	},
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.InventoryReceived) ([]*events.LedgerEntry, error) {
		mv := movement{typ: events.EntryReceipt, sku: e.SKU, loc: e.Location, q: e.Quantity, uom: e.UoM, positive: true}
		return mv.entry(ctx, env, r, &e.Meta, func(le *events.LedgerEntry) error {
			le.PONumber, le.POLine, le.ASNID = e.PONumber, e.POLine, e.ASNID
			if (e.PONumber == nil) != (e.POLine == nil) {
				return Reject(ClassInvalid, "po_number and po_line: give both or neither")
			}
			return nil
		})
	},
})
