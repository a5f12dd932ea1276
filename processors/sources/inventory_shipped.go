package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

var inventoryShipped = Register(Def[*events.InventoryShipped]{
	Doc:   "One SHIPMENT: on hand falls and the order line's shipped quantity rises.",
	Topic: inventoryTopic,
	Summary: func(e *events.InventoryShipped) string {
		return fmt.Sprintf("shipped %d %s of %s at %s for order %s line %s", e.Quantity, e.UoM, e.SKU, e.Location, e.OrderID, e.LineID)
	},
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.InventoryShipped) ([]*events.LedgerEntry, error) {
		mv := movement{typ: events.EntryShipment, sku: e.SKU, loc: e.Location, q: e.Quantity, uom: e.UoM, positive: true}
		return mv.entry(ctx, env, r, &e.Meta, func(le *events.LedgerEntry) error {
			le.OrderID, le.LineID, le.ShipmentID = str(e.OrderID), str(e.LineID), str(e.ShipmentID)
			return firstErr(checkRef("order_id", e.OrderID), checkRef("line_id", e.LineID))
		})
	},
})
