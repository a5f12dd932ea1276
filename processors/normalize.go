package processors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// ValidID reports whether s is a valid SKU, location or group id: 1–64
// characters of [A-Za-z0-9._-]. Ids become parts of Redis keys.
func ValidID(s string) bool { return events.ValidID(s) }

func checkID(field, v string) error {
	if !ValidID(v) {
		return reject(ClassInvalid, "%s: %q is not 1-64 characters of [A-Za-z0-9._-]", field, v)
	}
	return nil
}

func checkRef(field, v string) error {
	if v == "" || len(v) > 128 {
		return reject(ClassInvalid, "%s: must be 1-128 characters", field)
	}
	return nil
}

func checkPositive(field string, q int64) error {
	if q <= 0 {
		return reject(ClassInvalid, "%s: %d must be > 0", field, q)
	}
	return nil
}

// topicOf says which source topic each event type belongs on.
func (n *Normalizer) topicOf(ev events.Source) string {
	return deadletter.SourceTopic(n.cfg.Topics, ev)
}

// batchState is per-transaction state of the normalizer.
type batchState struct {
	waitedForCatalog bool
	// index is the transaction's view of the document index: the lines of
	// every document its records refer to (indexReads), read in one round
	// trip, with the lines its records record laid over them.
	index *ledger.IndexBatch
}

func orderDoc(id string) ledger.Doc { return ledger.Doc{Kind: ledger.OrderDoc, ID: id} }
func poDoc(po string) ledger.Doc    { return ledger.Doc{Kind: ledger.PODoc, ID: po} }

// indexReads lists the documents whose index lines the batch's events
// look up: each event that names document lines without their SKU.
func indexReads(batch []polled) []ledger.Doc {
	var docs []ledger.Doc
	for _, p := range batch {
		var d ledger.Doc
		switch e := p.ev.(type) {
		case *events.OrderCancelled:
			d = orderDoc(e.OrderID)
		case *events.PurchaseOrderAcknowledged:
			d = poDoc(e.PONumber)
		case *events.AdvanceShipNotice:
			d = poDoc(e.PONumber)
		case *events.PurchaseOrderClosed:
			d = poDoc(e.PONumber)
		default:
			continue
		}
		if checkRef("id", d.ID) == nil { // a bad one is rejected before any look-up
			docs = append(docs, d)
		}
	}
	return docs
}

// toBase converts q in uom to sku's base unit.
func (n *Normalizer) toBase(ctx context.Context, st *batchState, field, sku string, q int64, uom string) (int64, error) {
	b, err := n.catalog.ToBase(sku, q, uom)
	var unknown *unknownUnitError
	if errors.As(err, &unknown) && !st.waitedForCatalog {
		// The item master may be a moment behind the movement: let the
		// catalog catch up (bounded), once per transaction.
		st.waitedForCatalog = true
		if err := n.catalog.waitTimeout(ctx, n.cfg.UoMWait); err != nil && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		b, err = n.catalog.ToBase(sku, q, uom)
	}
	switch {
	case errors.As(err, &unknown):
		return 0, reject(ClassUnknownUoM, "%s: %v", field, err)
	case err != nil:
		return 0, reject(ClassInvalid, "%s: %v", field, err)
	}
	return b, nil
}

func str(s string) *string { return &s }

// newEntry starts an entry carrying the source event's identity and place.
func newEntry(typ, sku string, m *events.Meta, r *kgo.Record) *events.LedgerEntry {
	p, o := r.Partition, r.Offset
	return &events.LedgerEntry{
		EntryType: typ, SKU: sku,
		EventID: m.EventID, EventTime: m.EventTime, Source: m.Source, CorrelationID: m.CorrelationID,
		SourceTopic: str(r.Topic), SourcePartition: &p, SourceOffset: &o,
	}
}

// entries turns one decoded source event into its ledger entries. A
// RejectError means the record is bad; any other error is infrastructure.
func (n *Normalizer) entries(ctx context.Context, st *batchState, r *kgo.Record, ev events.Source) ([]*events.LedgerEntry, error) {
	if want := n.topicOf(ev); want != r.Topic {
		return nil, reject(ClassWrongTopic, "%s belongs on %s, not %s", ev.AvroName(), want, r.Topic)
	}
	m := ev.Metadata()
	if m.EventID == "" || len(m.EventID) > 128 {
		return nil, reject(ClassInvalid, "event_id: must be 1-128 characters")
	}
	if m.EventTime.IsZero() || m.EventTime.Unix() <= 0 {
		return nil, reject(ClassInvalid, "event_time: must be set")
	}
	switch e := ev.(type) {
	case *events.InventoryReceived:
		return n.movement(ctx, st, r, m, events.EntryReceipt, e.SKU, e.Location, e.Quantity, e.UoM, true, func(le *events.LedgerEntry) error {
			le.PONumber, le.POLine, le.ASNID = e.PONumber, e.POLine, e.ASNID
			if (e.PONumber == nil) != (e.POLine == nil) {
				return reject(ClassInvalid, "po_number and po_line: give both or neither")
			}
			return nil
		})
	case *events.InventoryPicked:
		return n.movement(ctx, st, r, m, events.EntryPick, e.SKU, e.Location, e.Quantity, e.UoM, true, func(le *events.LedgerEntry) error {
			le.OrderID, le.LineID = str(e.OrderID), str(e.LineID)
			return firstErr(checkRef("order_id", e.OrderID), checkRef("line_id", e.LineID))
		})
	case *events.InventoryShipped:
		return n.movement(ctx, st, r, m, events.EntryShipment, e.SKU, e.Location, e.Quantity, e.UoM, true, func(le *events.LedgerEntry) error {
			le.OrderID, le.LineID, le.ShipmentID = str(e.OrderID), str(e.LineID), str(e.ShipmentID)
			return firstErr(checkRef("order_id", e.OrderID), checkRef("line_id", e.LineID))
		})
	case *events.InventoryAdjusted:
		if e.Quantity == 0 {
			return nil, reject(ClassInvalid, "quantity: an adjustment of 0 changes nothing")
		}
		return n.movement(ctx, st, r, m, events.EntryAdjustment, e.SKU, e.Location, e.Quantity, e.UoM, false, func(le *events.LedgerEntry) error {
			le.Reason = str(e.Reason)
			return nil
		})
	case *events.InventoryCounted:
		if e.CountedQuantity < 0 {
			return nil, reject(ClassInvalid, "counted_quantity: %d must be >= 0", e.CountedQuantity)
		}
		if e.AsOf.Unix() <= 0 {
			return nil, reject(ClassInvalid, "as_of: must be set")
		}
		return n.movement(ctx, st, r, m, events.EntryCount, e.SKU, e.Location, e.CountedQuantity, e.UoM, false, func(le *events.LedgerEntry) error {
			asOf := e.AsOf
			le.AsOf = &asOf
			return nil
		})
	case *events.OrderAccepted:
		return n.orderAccepted(ctx, st, r, e)
	case *events.OrderCancelled:
		return n.orderCancelled(st, r, e)
	case *events.OrderAllocated:
		if err := firstErr(checkRef("order_id", e.OrderID), checkRef("line_id", e.LineID), checkID("sku", e.SKU), checkID("location", e.Location)); err != nil {
			return nil, err
		}
		le := newEntry(events.EntryOrderAllocate, e.SKU, m, r)
		le.OrderID, le.LineID, le.Location = str(e.OrderID), str(e.LineID), str(e.Location)
		return []*events.LedgerEntry{le}, nil
	case *events.PurchaseOrderReleased:
		return n.poReleased(ctx, st, r, e)
	case *events.PurchaseOrderAcknowledged:
		return n.poAcknowledged(ctx, st, r, e)
	case *events.AdvanceShipNotice:
		return n.asn(ctx, st, r, e)
	case *events.PurchaseOrderClosed:
		return n.poClosed(st, r, e)
	case *events.ItemMaster:
		return n.itemMaster(r, e)
	}
	return nil, reject(ClassWrongTopic, "%s is not a source event", ev.AvroName())
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (n *Normalizer) movement(ctx context.Context, st *batchState, r *kgo.Record, m *events.Meta, typ, sku, loc string, q int64, uom string, positive bool, fill func(*events.LedgerEntry) error) ([]*events.LedgerEntry, error) {
	if err := firstErr(checkID("sku", sku), checkID("location", loc)); err != nil {
		return nil, err
	}
	if positive {
		if err := checkPositive("quantity", q); err != nil {
			return nil, err
		}
	}
	base, err := n.toBase(ctx, st, "quantity", sku, q, uom)
	if err != nil {
		return nil, err
	}
	le := newEntry(typ, sku, m, r)
	le.Location, le.Quantity = str(loc), base
	if err := fill(le); err != nil {
		return nil, err
	}
	return []*events.LedgerEntry{le}, nil
}

func (n *Normalizer) orderAccepted(ctx context.Context, st *batchState, r *kgo.Record, e *events.OrderAccepted) ([]*events.LedgerEntry, error) {
	if err := firstErr(checkRef("order_id", e.OrderID), checkRef("channel", e.Channel)); err != nil {
		return nil, err
	}
	if len(e.Lines) == 0 {
		return nil, reject(ClassInvalid, "lines: an order needs at least one line")
	}
	seen := map[string]bool{}
	out := make([]*events.LedgerEntry, 0, len(e.Lines))
	idx := make([]ledger.IndexedLine, 0, len(e.Lines))
	for i, l := range e.Lines {
		f := func(name string) string { return fmt.Sprintf("lines[%d].%s", i, name) }
		if err := firstErr(checkRef(f("line_id"), l.LineID), checkID(f("sku"), l.SKU), checkPositive(f("quantity"), l.Quantity)); err != nil {
			return nil, err
		}
		if seen[l.LineID] {
			return nil, reject(ClassInvalid, "%s: %q appears twice", f("line_id"), l.LineID)
		}
		seen[l.LineID] = true
		il := ledger.IndexedLine{Line: l.LineID, SKU: l.SKU}
		switch {
		case l.Location != nil:
			if err := checkID(f("location"), *l.Location); err != nil {
				return nil, err
			}
			il.Location = *l.Location
		case l.Group != nil:
			if err := checkID(f("group"), *l.Group); err != nil {
				return nil, err
			}
			il.Group = *l.Group
		default:
			return nil, reject(ClassInvalid, "%s: a line needs a location or a group", f("location"))
		}
		q, err := n.toBase(ctx, st, f("quantity"), l.SKU, l.Quantity, l.UoM)
		if err != nil {
			return nil, err
		}
		le := newEntry(events.EntryOrderLine, l.SKU, &e.Meta, r)
		le.OrderID, le.LineID, le.Channel, le.HoldID = str(e.OrderID), str(l.LineID), str(e.Channel), e.HoldID
		le.Location, le.Group, le.Quantity = l.Location, l.Group, q
		out = append(out, le)
		idx = append(idx, il)
	}
	st.index.Record(orderDoc(e.OrderID), idx)
	return out, nil
}

func (n *Normalizer) orderCancelled(st *batchState, r *kgo.Record, e *events.OrderCancelled) ([]*events.LedgerEntry, error) {
	if err := checkRef("order_id", e.OrderID); err != nil {
		return nil, err
	}
	lines, err := st.index.Lines(orderDoc(e.OrderID))
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
		return nil, reject(ClassUnknownReference, "order_id: order %q was never accepted", e.OrderID)
	}
	out := make([]*events.LedgerEntry, 0, len(want))
	for i, id := range want {
		l, ok := byID[id]
		if !ok {
			return nil, reject(ClassUnknownReference, "line_ids[%d]: order %q has no line %q", i, e.OrderID, id)
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
}

func (n *Normalizer) poReleased(ctx context.Context, st *batchState, r *kgo.Record, e *events.PurchaseOrderReleased) ([]*events.LedgerEntry, error) {
	if err := firstErr(checkRef("po_number", e.PONumber), checkRef("supplier_id", e.SupplierID)); err != nil {
		return nil, err
	}
	if len(e.Lines) == 0 {
		return nil, reject(ClassInvalid, "lines: a purchase order needs at least one line")
	}
	out := make([]*events.LedgerEntry, 0, len(e.Lines))
	idx := make([]ledger.IndexedLine, 0, len(e.Lines))
	seen := map[int32]bool{}
	for i, l := range e.Lines {
		f := func(name string) string { return fmt.Sprintf("lines[%d].%s", i, name) }
		if err := firstErr(checkID(f("sku"), l.SKU), checkID(f("location"), l.Location), checkPositive(f("quantity"), l.Quantity)); err != nil {
			return nil, err
		}
		if seen[l.POLine] {
			return nil, reject(ClassInvalid, "%s: %d appears twice", f("po_line"), l.POLine)
		}
		seen[l.POLine] = true
		q, err := n.toBase(ctx, st, f("quantity"), l.SKU, l.Quantity, l.UoM)
		if err != nil {
			return nil, err
		}
		le := newEntry(events.EntryPOLine, l.SKU, &e.Meta, r)
		pl, d := l.POLine, l.ExpectedDate
		le.PONumber, le.POLine, le.SupplierID, le.Location, le.Quantity, le.ExpectedDate = str(e.PONumber), &pl, str(e.SupplierID), str(l.Location), q, &d
		out = append(out, le)
		idx = append(idx, ledger.IndexedLine{Line: fmt.Sprint(l.POLine), SKU: l.SKU, Location: l.Location, UoM: l.UoM, Released: e.EventTime})
	}
	st.index.Record(poDoc(e.PONumber), idx)
	return out, nil
}

func (n *Normalizer) poLines(st *batchState, po string) (map[string]ledger.IndexedLine, error) {
	lines, err := st.index.Lines(poDoc(po))
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, reject(ClassUnknownReference, "po_number: purchase order %q was never released", po)
	}
	m := make(map[string]ledger.IndexedLine, len(lines))
	for _, l := range lines {
		m[l.Line] = l
	}
	return m, nil
}

// poLine finds line pl of a PO's indexed lines, for the i-th line of an event.
func poLine(lines map[string]ledger.IndexedLine, po string, i int, pl int32) (ledger.IndexedLine, error) {
	l, ok := lines[fmt.Sprint(pl)]
	if !ok {
		return l, reject(ClassUnknownReference, "lines[%d].po_line: PO %q has no line %d", i, po, pl)
	}
	return l, nil
}

func (n *Normalizer) poAcknowledged(ctx context.Context, st *batchState, r *kgo.Record, e *events.PurchaseOrderAcknowledged) ([]*events.LedgerEntry, error) {
	if err := checkRef("po_number", e.PONumber); err != nil {
		return nil, err
	}
	lines, err := n.poLines(st, e.PONumber)
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
			return nil, reject(ClassInvalid, "lines[%d].quantity: %d must be >= 0", i, a.Quantity)
		}
		q, err := n.toBase(ctx, st, fmt.Sprintf("lines[%d].quantity", i), l.SKU, a.Quantity, l.UoM)
		if err != nil {
			return nil, err
		}
		var turnaround time.Duration
		if !l.Released.IsZero() && e.EventTime.After(l.Released) {
			turnaround = e.EventTime.Sub(l.Released)
		}
		n.hooks.onPOAcknowledged(e.SupplierID, a.Status, turnaround)
		le := newEntry(events.EntryPOAck, l.SKU, &e.Meta, r)
		pl, d := a.POLine, a.ExpectedDate
		le.PONumber, le.POLine, le.SupplierID, le.Location = str(e.PONumber), &pl, str(e.SupplierID), str(l.Location)
		le.Status, le.Quantity, le.ExpectedDate = str(a.Status), q, &d
		out = append(out, le)
	}
	return out, nil
}

func (n *Normalizer) asn(ctx context.Context, st *batchState, r *kgo.Record, e *events.AdvanceShipNotice) ([]*events.LedgerEntry, error) {
	if err := firstErr(checkRef("asn_id", e.ASNID), checkRef("po_number", e.PONumber)); err != nil {
		return nil, err
	}
	lines, err := n.poLines(st, e.PONumber)
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
			return nil, reject(ClassInvalid, "lines[%d].sku: %q, but PO line %d is for %q", i, a.SKU, a.POLine, l.SKU)
		}
		if err := checkPositive(fmt.Sprintf("lines[%d].quantity", i), a.Quantity); err != nil {
			return nil, err
		}
		q, err := n.toBase(ctx, st, fmt.Sprintf("lines[%d].quantity", i), l.SKU, a.Quantity, a.UoM)
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
}

func (n *Normalizer) poClosed(st *batchState, r *kgo.Record, e *events.PurchaseOrderClosed) ([]*events.LedgerEntry, error) {
	if err := checkRef("po_number", e.PONumber); err != nil {
		return nil, err
	}
	lines, err := st.index.Lines(poDoc(e.PONumber))
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, reject(ClassUnknownReference, "po_number: purchase order %q was never released", e.PONumber)
	}
	out := make([]*events.LedgerEntry, 0, len(lines))
	for _, l := range lines {
		// poReleased indexes a PO's lines by their numbers; anything else
		// means the index entry is damaged. Waiting would not mend it, and
		// a close for a line the PO does not have must not be emitted: the
		// close goes to the dead-letter topic, to be replayed once the
		// index is right.
		n64, err := strconv.ParseInt(l.Line, 10, 32)
		if err != nil {
			return nil, reject(ClassInvalid, "the document index holds line %q for purchase order %q, which is not a PO line number", clipHeader(l.Line), e.PONumber)
		}
		pl := int32(n64)
		le := newEntry(events.EntryPOClose, l.SKU, &e.Meta, r)
		le.PONumber, le.POLine, le.Location, le.Reason = str(e.PONumber), &pl, str(l.Location), str(e.Reason)
		out = append(out, le)
	}
	return out, nil
}

func (n *Normalizer) itemMaster(r *kgo.Record, e *events.ItemMaster) ([]*events.LedgerEntry, error) {
	if err := checkID("sku", e.SKU); err != nil {
		return nil, err
	}
	for u, f := range e.Conversions {
		if f <= 0 {
			return nil, reject(ClassInvalid, "conversions[%s]: %d must be > 0", u, f)
		}
	}
	locs := map[string]bool{}
	for l := range e.SafetyStock {
		locs[l] = true
	}
	for l := range e.ReorderPoint {
		locs[l] = true
	}
	sorted := make([]string, 0, len(locs))
	for l := range locs {
		if err := checkID("safety_stock/reorder_point location", l); err != nil {
			return nil, err
		}
		sorted = append(sorted, l)
	}
	slices.Sort(sorted)
	out := make([]*events.LedgerEntry, 0, len(sorted))
	for _, l := range sorted {
		le := newEntry(events.EntryItemPolicy, e.SKU, &e.Meta, r)
		le.Location = str(l)
		if v, ok := e.SafetyStock[l]; ok {
			if v < 0 {
				return nil, reject(ClassInvalid, "safety_stock[%s]: %d must be >= 0", l, v)
			}
			le.SafetyStock = &v
		}
		if v, ok := e.ReorderPoint[l]; ok {
			if v < 0 {
				return nil, reject(ClassInvalid, "reorder_point[%s]: %d must be >= 0", l, v)
			}
			le.ReorderPoint = &v
		}
		out = append(out, le)
	}
	return out, nil
}
