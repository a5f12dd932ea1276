package sources

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// The rules the registrations share.

func checkID(field, v string) error {
	if !events.ValidID(v) {
		return Reject(ClassInvalid, "%s: %q is not 1-64 characters of [A-Za-z0-9._-]", field, v)
	}
	return nil
}

func checkRef(field, v string) error {
	if v == "" || len(v) > 128 {
		return Reject(ClassInvalid, "%s: must be 1-128 characters", field)
	}
	return nil
}

func checkPositive(field string, q int64) error {
	if q <= 0 {
		return Reject(ClassInvalid, "%s: %d must be > 0", field, q)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// lineField names a field of an event's i-th line.
func lineField(i int, name string) string { return fmt.Sprintf("lines[%d].%s", i, name) }

func str(s string) *string { return &s }

// The summaries' formats.

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
func day(t time.Time) string   { return t.UTC().Format(time.DateOnly) }

// place is where an order line is reserved.
func place(l events.OrderLine) string {
	switch {
	case l.Location != nil:
		return "at " + *l.Location
	case l.Group != nil:
		return "in group " + *l.Group
	}
	return "at no location"
}

// joinLines is an event's lines, each as f says, joined by "; ".
func joinLines[L any](lines []L, f func(L) string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = f(l)
	}
	return strings.Join(out, "; ")
}

// clip is a text from a record cut for a message.
func clip(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// newEntry starts an entry carrying the source event's identity and place.
func newEntry(typ, sku string, m *events.Meta, r *kgo.Record) *events.LedgerEntry {
	p, o := r.Partition, r.Offset
	return &events.LedgerEntry{
		EntryType: typ, SKU: sku,
		EventID: m.EventID, EventTime: m.EventTime, Source: m.Source, CorrelationID: m.CorrelationID,
		SourceTopic: str(r.Topic), SourcePartition: &p, SourceOffset: &o,
	}
}

// movement is the entry of a warehouse movement of q uom of sku at loc,
// in the base unit; positive asks q > 0. fill sets the entry's own fields
// and checks them.
type movement struct {
	typ, sku, loc string
	q             int64
	uom           string
	positive      bool
}

func (mv movement) entry(ctx context.Context, env Env, r *kgo.Record, m *events.Meta, fill func(*events.LedgerEntry) error) ([]*events.LedgerEntry, error) {
	if err := firstErr(checkID("sku", mv.sku), checkID("location", mv.loc)); err != nil {
		return nil, err
	}
	if mv.positive {
		if err := checkPositive("quantity", mv.q); err != nil {
			return nil, err
		}
	}
	base, err := env.ToBase(ctx, "quantity", mv.sku, mv.q, mv.uom)
	if err != nil {
		return nil, err
	}
	le := newEntry(mv.typ, mv.sku, m, r)
	le.Location, le.Quantity = str(mv.loc), base
	if err := fill(le); err != nil {
		return nil, err
	}
	return []*events.LedgerEntry{le}, nil
}

func orderDoc(id string) ledger.Doc { return ledger.Doc{Kind: ledger.OrderDoc, ID: id} }
func poDoc(po string) ledger.Doc    { return ledger.Doc{Kind: ledger.PODoc, ID: po} }

// poLines are a released PO's indexed lines by line number.
func poLines(env Env, po string) (map[string]ledger.IndexedLine, error) {
	lines, err := env.Lines(poDoc(po))
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, Reject(ClassUnknownReference, "po_number: purchase order %q was never released", po)
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
		return l, Reject(ClassUnknownReference, "lines[%d].po_line: PO %q has no line %d", i, po, pl)
	}
	return l, nil
}
