package sources

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

var purchaseOrderClosed = Register(Def[*events.PurchaseOrderClosed]{
	Doc:   "One PO_CLOSE per line of the PO in the document index: what the PO has not delivered is no longer inbound.",
	Topic: supplierTopic,
	Summary: func(e *events.PurchaseOrderClosed) string {
		return fmt.Sprintf("PO %s closed: %s", e.PONumber, e.Reason)
	},
	Reads: func(e *events.PurchaseOrderClosed) (ledger.Doc, bool) { return poDoc(e.PONumber), true },
	Normalize: func(_ context.Context, env Env, r *kgo.Record, e *events.PurchaseOrderClosed) ([]*events.LedgerEntry, error) {
		if err := checkRef("po_number", e.PONumber); err != nil {
			return nil, err
		}
		lines, err := env.Lines(poDoc(e.PONumber))
		if err != nil {
			return nil, err
		}
		if len(lines) == 0 {
			return nil, Reject(ClassUnknownReference, "po_number: purchase order %q was never released", e.PONumber)
		}
		out := make([]*events.LedgerEntry, 0, len(lines))
		for _, l := range lines {
			// A PO's lines are indexed by their numbers; anything else
			// means the index entry is damaged. Waiting would not mend it,
			// and a close for a line the PO does not have must not be
			// emitted: the close goes to the dead-letter topic, to be
			// replayed once the index is right.
			n64, err := strconv.ParseInt(l.Line, 10, 32)
			if err != nil {
				return nil, Reject(ClassInvalid, "the document index holds line %q for purchase order %q, which is not a PO line number", clip(l.Line), e.PONumber)
			}
			pl := int32(n64)
			le := newEntry(events.EntryPOClose, l.SKU, &e.Meta, r)
			le.PONumber, le.POLine, le.Location, le.Reason = str(e.PONumber), &pl, str(l.Location), str(e.Reason)
			out = append(out, le)
		}
		return out, nil
	},
})
