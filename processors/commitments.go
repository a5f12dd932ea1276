package processors

import (
	"strconv"
	"strings"
	"time"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// commitmentPrefix marks a commitment in a SKU's outbox, beside its alerts:
// "c|" then the commitment's id, which starts with its order id.
const commitmentPrefix = "c|"

func commitmentOutboxID(commitmentID string) string { return commitmentPrefix + commitmentID }

// outboxTarget is where an output kept in an outbox under id goes: a
// commitment to the commitments topic keyed by its order id, an alert to
// the alerts topic keyed by its SKU and location (its id is
// sku|location|type|version).
func outboxTarget(id string) (commitment bool, key string) {
	if rest, ok := strings.CutPrefix(id, commitmentPrefix); ok {
		order, _, _ := strings.Cut(rest, "|")
		return true, order
	}
	key = id
	if i := strings.Index(key, "|"); i >= 0 {
		if j := strings.Index(key[i+1:], "|"); j >= 0 {
			key = key[:i+1+j]
		}
	}
	return false, key
}

// commitmentRecord is the CommitmentChanged of a changed promise of sku,
// caused by the ledger entry at partition:offset. Its id is the order, the
// line and the cause's place in the log: the same fold reaches the same id.
func commitmentRecord(sku string, cm ledger.Commitment, cause *events.LedgerEntry, partition int32, offset int64) *events.CommitmentChanged {
	rec := &events.CommitmentChanged{
		CommitmentID: cm.OrderID + "|" + cm.LineID + "|" + strconv.Itoa(int(partition)) + ":" + strconv.FormatInt(offset, 10),
		OrderID:      cm.OrderID, LineID: cm.LineID, SKU: sku, Location: cm.Location,
		Promise:        linePromise(cm.After),
		Late:           cm.Had && cm.After.Late(cm.Before),
		CauseEventID:   cause.EventID,
		CauseEntryType: cause.EntryType,
		CausePONumber:  cause.PONumber,
		CauseASNID:     cause.ASNID,
		CorrelationID:  cause.CorrelationID,
		CauseTime:      cause.EventTime.UTC(),
	}
	if cm.Channel != "" {
		rec.Channel = &cm.Channel
	}
	if cm.Had {
		prev := linePromise(cm.Before)
		rec.Previous = &prev
	}
	return rec
}

func linePromise(p ledger.Promise) events.LinePromise {
	lp := events.LinePromise{OpenQuantity: p.Open, ConfirmedNow: p.Confirmed, Unpromised: p.Unpromised,
		Promised: make([]events.PromisedQuantity, len(p.ByDay))}
	for i, d := range p.ByDay {
		lp.Promised[i] = events.PromisedQuantity{Date: time.Unix(d.Day*86400, 0).UTC(), Quantity: d.Quantity}
	}
	return lp
}
