package sources

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

var orderCancelled = Register(Def[*events.OrderCancelled]{
	Doc: "One ORDER_CANCEL per line named, or per line of the order when none is, releasing its reservation; " +
		"the lines' SKUs and places come from the document index.",
	Topic: ordersTopic,
	Summary: func(e *events.OrderCancelled) string {
		if len(e.LineIDs) == 0 {
			return fmt.Sprintf("order %s cancelled", e.OrderID)
		}
		return fmt.Sprintf("order %s lines %s cancelled", e.OrderID, strings.Join(e.LineIDs, ","))
	},
	Reads: func(e *events.OrderCancelled) (ledger.Doc, bool) { return orderDoc(e.OrderID), true },
	Normalize: func(_ context.Context, env Env, r *kgo.Record, e *events.OrderCancelled) ([]*events.LedgerEntry, error) {
		if err := checkRef("order_id", e.OrderID); err != nil {
			return nil, err
		}
		lines, err := env.Lines(orderDoc(e.OrderID))
		if err != nil {
			return nil, err
		}
		byID := map[string]ledger.IndexedLine{}
		for _, l := range lines {
			byID[l.Line] = l
		}
		want := e.LineIDs
		if len(want) == 0 {
			for _, l := range lines {
				want = append(want, l.Line)
			}
		}
		if len(want) == 0 {
			return nil, Reject(ClassUnknownReference, "order_id: order %q was never accepted", e.OrderID)
		}
		out := make([]*events.LedgerEntry, 0, len(want))
		for i, id := range want {
			l, ok := byID[id]
			if !ok {
				return nil, Reject(ClassUnknownReference, "line_ids[%d]: order %q has no line %q", i, e.OrderID, id)
			}
			le := newEntry(events.EntryOrderCancel, l.SKU, &e.Meta, r)
			le.OrderID, le.LineID = str(e.OrderID), str(id)
			if l.Location != "" {
				le.Location = str(l.Location)
			} else {
				le.Group = str(l.Group)
			}
			out = append(out, le)
		}
		return out, nil
	},
})
