package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

var orderAccepted = Register(Def[*events.OrderAccepted]{
	Doc: "One ORDER_LINE per line, reserving its quantity at a location or across a group for the order's channel; " +
		"naming a hold, it converts it. The lines are recorded in the document index for later cancels.",
	Topic: ordersTopic,
	Summary: func(e *events.OrderAccepted) string {
		return fmt.Sprintf("order %s accepted on %s: %s", e.OrderID, e.Channel, joinLines(e.Lines, func(l events.OrderLine) string {
			return fmt.Sprintf("%d %s of %s %s", l.Quantity, l.UoM, l.SKU, place(l))
		}))
	},
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.OrderAccepted) ([]*events.LedgerEntry, error) {
		if err := firstErr(checkRef("order_id", e.OrderID), checkRef("channel", e.Channel)); err != nil {
			return nil, err
		}
		if len(e.Lines) == 0 {
			return nil, Reject(ClassInvalid, "lines: an order needs at least one line")
		}
		seen := map[string]bool{}
		out := make([]*events.LedgerEntry, 0, len(e.Lines))
		idx := make([]ledger.IndexedLine, 0, len(e.Lines))
		for i, l := range e.Lines {
			il, err := orderLine(i, l, seen)
			if err != nil {
				return nil, err
			}
			q, err := env.ToBase(ctx, lineField(i, "quantity"), l.SKU, l.Quantity, l.UoM)
			if err != nil {
				return nil, err
			}
			le := newEntry(events.EntryOrderLine, l.SKU, &e.Meta, r)
			le.OrderID, le.LineID, le.Channel, le.HoldID = str(e.OrderID), str(l.LineID), str(e.Channel), e.HoldID
			le.Location, le.Group, le.Quantity = l.Location, l.Group, q
			out = append(out, le)
			idx = append(idx, il)
		}
		env.Record(orderDoc(e.OrderID), idx)
		return out, nil
	},
})

// orderLine checks the i-th line of an order and gives its index line;
// seen holds the line ids before it.
func orderLine(i int, l events.OrderLine, seen map[string]bool) (ledger.IndexedLine, error) {
	il := ledger.IndexedLine{Line: l.LineID, SKU: l.SKU}
	if err := firstErr(checkRef(lineField(i, "line_id"), l.LineID), checkID(lineField(i, "sku"), l.SKU), checkPositive(lineField(i, "quantity"), l.Quantity)); err != nil {
		return il, err
	}
	if seen[l.LineID] {
		return il, Reject(ClassInvalid, "%s: %q appears twice", lineField(i, "line_id"), l.LineID)
	}
	seen[l.LineID] = true
	switch {
	case l.Location != nil:
		il.Location = *l.Location
		return il, checkID(lineField(i, "location"), *l.Location)
	case l.Group != nil:
		il.Group = *l.Group
		return il, checkID(lineField(i, "group"), *l.Group)
	}
	return il, Reject(ClassInvalid, "%s: a line needs a location or a group", lineField(i, "location"))
}
