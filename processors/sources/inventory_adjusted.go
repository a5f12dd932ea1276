package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

var inventoryAdjusted = Register(Def[*events.InventoryAdjusted]{
	Doc:   "One ADJUSTMENT: on hand changes by the signed quantity (0 is refused), with its reason.",
	Topic: inventoryTopic,
	Summary: func(e *events.InventoryAdjusted) string {
		return fmt.Sprintf("adjusted %+d %s of %s at %s: %s", e.Quantity, e.UoM, e.SKU, e.Location, e.Reason)
	},
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.InventoryAdjusted) ([]*events.LedgerEntry, error) {
		if e.Quantity == 0 {
			return nil, Reject(ClassInvalid, "quantity: an adjustment of 0 changes nothing")
		}
		mv := movement{typ: events.EntryAdjustment, sku: e.SKU, loc: e.Location, q: e.Quantity, uom: e.UoM}
		return mv.entry(ctx, env, r, &e.Meta, func(le *events.LedgerEntry) error {
			le.Reason = str(e.Reason)
			return nil
		})
	},
})
