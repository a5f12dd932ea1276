package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

var orderAllocated = Register(Def[*events.OrderAllocated]{
	Doc:   "One ORDER_ALLOCATE: an order line reserved across a group moves to the location that will fill it.",
	Topic: ordersTopic,
	Summary: func(e *events.OrderAllocated) string {
		return fmt.Sprintf("order %s line %s of %s allocated to %s", e.OrderID, e.LineID, e.SKU, e.Location)
	},
	Normalize: func(_ context.Context, _ Env, r *kgo.Record, e *events.OrderAllocated) ([]*events.LedgerEntry, error) {
		if err := firstErr(checkRef("order_id", e.OrderID), checkRef("line_id", e.LineID), checkID("sku", e.SKU), checkID("location", e.Location)); err != nil {
			return nil, err
		}
		le := newEntry(events.EntryOrderAllocate, e.SKU, &e.Meta, r)
		le.OrderID, le.LineID, le.Location = str(e.OrderID), str(e.LineID), str(e.Location)
		return []*events.LedgerEntry{le}, nil
	},
})
