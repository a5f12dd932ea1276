package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

var inventoryPicked = Register(Def[*events.InventoryPicked]{
	Doc:   "One PICK: the order line's picked quantity rises; on hand falls only when it ships.",
	Topic: inventoryTopic,
	Summary: func(e *events.InventoryPicked) string {
		return fmt.Sprintf("picked %d %s of %s at %s for order %s line %s", e.Quantity, e.UoM, e.SKU, e.Location, e.OrderID, e.LineID)
	},
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.InventoryPicked) ([]*events.LedgerEntry, error) {
		mv := movement{typ: events.EntryPick, sku: e.SKU, loc: e.Location, q: e.Quantity, uom: e.UoM, positive: true}
		return mv.entry(ctx, env, r, &e.Meta, func(le *events.LedgerEntry) error {
			le.OrderID, le.LineID = str(e.OrderID), str(e.LineID)
			return firstErr(checkRef("order_id", e.OrderID), checkRef("line_id", e.LineID))
		})
	},
})
