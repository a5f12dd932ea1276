package sources

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

var purchaseOrderAcknowledged = Register(Def[*events.PurchaseOrderAcknowledged]{
	Doc: "One PO_ACK per line: the supplier accepts, changes, backorders or rejects it, with a quantity (in the PO " +
		"line's unit, from the document index) and a date.",
	Topic: supplierTopic,
	Summary: func(e *events.PurchaseOrderAcknowledged) string {
		return fmt.Sprintf("PO %s acknowledged by %s: %s", e.PONumber, e.SupplierID, joinLines(e.Lines, func(l events.AcknowledgedLine) string {
			return fmt.Sprintf("line %d %s %d by %s", l.POLine, l.Status, l.Quantity, day(l.ExpectedDate))
		}))
	},
	Reads: func(e *events.PurchaseOrderAcknowledged) (ledger.Doc, bool) { return poDoc(e.PONumber), true },
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.PurchaseOrderAcknowledged) ([]*events.LedgerEntry, error) {
		if err := checkRef("po_number", e.PONumber); err != nil {
			return nil, err
		}
		lines, err := poLines(env, e.PONumber)
		if err != nil {
			return nil, err
		}
		out := make([]*events.LedgerEntry, 0, len(e.Lines))
		for i, a := range e.Lines {
			l, err := poLine(lines, e.PONumber, i, a.POLine)
			if err != nil {
				return nil, err
			}
			if a.Quantity < 0 {
				return nil, Reject(ClassInvalid, "lines[%d].quantity: %d must be >= 0", i, a.Quantity)
			}
			q, err := env.ToBase(ctx, lineField(i, "quantity"), l.SKU, a.Quantity, l.UoM)
			if err != nil {
				return nil, err
			}
			var turnaround time.Duration
			if !l.Released.IsZero() && e.EventTime.After(l.Released) {
				turnaround = e.EventTime.Sub(l.Released)
			}
			env.POAcknowledged(e.SupplierID, a.Status, turnaround)
			le := newEntry(events.EntryPOAck, l.SKU, &e.Meta, r)
			pl, d := a.POLine, a.ExpectedDate
			le.PONumber, le.POLine, le.SupplierID, le.Location = str(e.PONumber), &pl, str(e.SupplierID), str(l.Location)
			le.Status, le.Quantity, le.ExpectedDate = str(a.Status), q, &d
			out = append(out, le)
		}
		return out, nil
	},
})
