package sources

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

var advanceShipNotice = Register(Def[*events.AdvanceShipNotice]{
	Doc: "One ASN_LINE per line: that much of the PO line is on its way, arriving at the notice's ETA; its SKU must " +
		"be the PO line's (from the document index).",
	Topic: supplierTopic,
	Summary: func(e *events.AdvanceShipNotice) string {
		return fmt.Sprintf("ASN %s for PO %s from %s, ETA %s: %s", e.ASNID, e.PONumber, e.SupplierID, stamp(e.ETA), joinLines(e.Lines, func(l events.AdvanceShipNoticeLine) string {
			return fmt.Sprintf("%d %s of %s", l.Quantity, l.UoM, l.SKU)
		}))
	},
	Reads: func(e *events.AdvanceShipNotice) (ledger.Doc, bool) { return poDoc(e.PONumber), true },
	Normalize: func(ctx context.Context, env Env, r *kgo.Record, e *events.AdvanceShipNotice) ([]*events.LedgerEntry, error) {
		if err := firstErr(checkRef("asn_id", e.ASNID), checkRef("po_number", e.PONumber)); err != nil {
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
			if a.SKU != l.SKU {
				return nil, Reject(ClassInvalid, "lines[%d].sku: %q, but PO line %d is for %q", i, a.SKU, a.POLine, l.SKU)
			}
			if err := checkPositive(lineField(i, "quantity"), a.Quantity); err != nil {
				return nil, err
			}
			q, err := env.ToBase(ctx, lineField(i, "quantity"), l.SKU, a.Quantity, a.UoM)
			if err != nil {
				return nil, err
			}
			le := newEntry(events.EntryASNLine, l.SKU, &e.Meta, r)
			pl, eta := a.POLine, e.ETA
			le.ASNID, le.PONumber, le.POLine, le.SupplierID, le.Location = str(e.ASNID), str(e.PONumber), &pl, str(e.SupplierID), str(l.Location)
			le.Quantity, le.ETA = q, &eta
			out = append(out, le)
		}
		return out, nil
	},
})
