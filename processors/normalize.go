package processors

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/processors/sources"
)

// ValidID reports whether s is a valid SKU, location or group id: 1–64
// characters of [A-Za-z0-9._-]. Ids become parts of Redis keys.
func ValidID(s string) bool { return events.ValidID(s) }

// SourceTopic is the source topic ev's type belongs on, among t ("" for a
// type of none).
func SourceTopic(t config.Topics, ev events.Source) string { return sources.Topic(t, ev) }

// batchState is per-transaction state of the normalizer. It is the
// sources.Env the source events are normalized with.
type batchState struct {
	n                *Normalizer
	waitedForCatalog bool
	// index is the transaction's view of the document index: the lines of
	// every document its records refer to (indexReads), read in one round
	// trip, with the lines its records record laid over them.
	index *ledger.IndexBatch
}

var _ sources.Env = (*batchState)(nil)

// indexReads lists the documents whose index lines the batch's events
// look up: each event that names document lines without their SKU.
func indexReads(batch []polled) []ledger.Doc {
	var docs []ledger.Doc
	for _, p := range batch {
		if p.ev == nil {
			continue
		}
		if src := sources.Of(p.ev); src != nil {
			if d, ok := src.Reads(p.ev); ok {
				docs = append(docs, d)
			}
		}
	}
	return docs
}

// ToBase converts q in uom to sku's base unit.
func (st *batchState) ToBase(ctx context.Context, field, sku string, q int64, uom string) (int64, error) {
	n := st.n
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

// Lines are a document's index lines as the transaction sees them.
func (st *batchState) Lines(d ledger.Doc) ([]ledger.IndexedLine, error) { return st.index.Lines(d) }

// Record lays a document's lines over the transaction's view of the index.
func (st *batchState) Record(d ledger.Doc, lines []ledger.IndexedLine) { st.index.Record(d, lines) }

// POAcknowledged tells the hooks of an acknowledged PO line.
func (st *batchState) POAcknowledged(supplier, status string, turnaround time.Duration) {
	st.n.hooks.onPOAcknowledged(supplier, status, turnaround)
}

// entries turns one decoded source event into its ledger entries, by its
// registration (processors/sources). A RejectError means the record is
// bad; any other error is infrastructure.
func (n *Normalizer) entries(ctx context.Context, st *batchState, r *kgo.Record, ev events.Source) ([]*events.LedgerEntry, error) {
	src := sources.Of(ev)
	if src == nil {
		return nil, reject(ClassWrongTopic, "%s is not a source event", ev.AvroName())
	}
	if want := src.Topic(n.cfg.Topics); want != r.Topic {
		return nil, reject(ClassWrongTopic, "%s belongs on %s, not %s", ev.AvroName(), want, r.Topic)
	}
	return src.Normalize(ctx, st, r, ev)
}
