package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

var inventoryCounted = Register(Def[*events.InventoryCounted]{
	Doc:   "One COUNT: on hand as of the count's time becomes the counted quantity; movements after that time are kept.",
	Topic: inventoryTopic,
	Summary: func(e *events.InventoryCounted) string {
		return fmt.Sprintf("counted %d %s of %s at %s as of %s", e.CountedQuantity, e.UoM, e.SKU, e.Location, stamp(e.AsOf))
	},
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.InventoryCounted) ([]*events.LedgerEntry, error) {
		if e.CountedQuantity < 0 {
			return nil, Reject(ClassInvalid, "counted_quantity: %d must be >= 0", e.CountedQuantity)
		}
		if e.AsOf.Unix() <= 0 {
			return nil, Reject(ClassInvalid, "as_of: must be set")
		}
		mv := movement{typ: events.EntryCount, sku: e.SKU, loc: e.Location, q: e.CountedQuantity, uom: e.UoM}
		return mv.entry(ctx, env, r, &e.Meta, func(le *events.LedgerEntry) error {
			asOf := e.AsOf
			le.AsOf = &asOf
			return nil
		})
	},
})
