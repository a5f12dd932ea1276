package processors

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// A SKU's outbox keeps, beside its alerts, its commitments and planning
// exceptions, told apart by a prefix of their ids: "c|" then the
// commitment's id (which starts with its order id), "x|" then the
// exception's (which starts with sku|location).
const (
	commitmentPrefix = "c|"
	exceptionPrefix  = "x|"
)

func commitmentOutboxID(commitmentID string) string { return commitmentPrefix + commitmentID }
func exceptionOutboxID(exceptionID string) string   { return exceptionPrefix + exceptionID }

// outboxTarget is where an output kept in an outbox under id goes: a
// commitment to the commitments topic keyed by its order id; an alert or a
// planning exception to the alerts topic keyed by its SKU and location (an
// alert's id is sku|location|type|version).
func outboxTarget(id string) (commitment bool, key string) {
	if rest, ok := strings.CutPrefix(id, commitmentPrefix); ok {
		order, _, _ := strings.Cut(rest, "|")
		return true, order
	}
	key = strings.TrimPrefix(id, exceptionPrefix)
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
		Late:           cm.LateUnits > 0,
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

// supplierOf is the supplier an entry names, "" for none.
func supplierOf(e *events.LedgerEntry) string {
	if e.SupplierID == nil {
		return ""
	}
	return *e.SupplierID
}

// planningException is the exception a supplier's acknowledgement or ship
// notice raises when it made promises at loc later (cms, the promises it
// changed), or nil: another cause, or no promise made later.
func planningException(sku, loc string, cms []ledger.Commitment, cause *events.LedgerEntry, partition int32, offset int64) *events.PlanningException {
	if cause.EntryType != events.EntryPOAck && cause.EntryType != events.EntryASNLine {
		return nil
	}
	ex := &events.PlanningException{
		ExceptionID: sku + "|" + loc + "|" + strconv.Itoa(int(partition)) + ":" + strconv.FormatInt(offset, 10),
		SKU:         sku, Location: loc, SupplierID: cause.SupplierID, PONumber: cause.PONumber, POLine: cause.POLine, ASNID: cause.ASNID,
		CauseEventID: cause.EventID, CauseEntryType: cause.EntryType, CorrelationID: cause.CorrelationID, CauseTime: cause.EventTime.UTC(),
	}
	for _, cm := range cms {
		if cm.LateUnits == 0 {
			continue
		}
		ex.Lines = append(ex.Lines, events.AffectedLine{OrderID: cm.OrderID, LineID: cm.LineID, LateUnits: cm.LateUnits, UnpromisedUnits: cm.After.Unpromised})
		ex.LateUnits += cm.LateUnits
		ex.UnpromisedUnits += cm.After.Unpromised
	}
	if len(ex.Lines) == 0 {
		return nil
	}
	return ex
}

// staleOutputs are the outputs a SKU's outbox kept unpublished, in the
// order they were made: commitments by the offset of the entry that caused
// them (the SKU's entries are all on one partition), after the alerts.
func staleOutputs(g *skuEntries, outbox map[string][]byte) []stockAlert {
	out := make([]stockAlert, 0, len(outbox))
	for id, v := range outbox {
		out = append(out, stockAlert{sku: g.sku, id: id, value: v, ctx: g.span})
	}
	slices.SortFunc(out, func(a, b stockAlert) int {
		return cmp.Compare(causeOffset(a.id), causeOffset(b.id))
	})
	return out
}

// causeOffset is the offset of the entry behind a commitment kept under
// id ("c|order|line|partition:offset"), -1 for any other output.
func causeOffset(id string) int64 {
	if !strings.HasPrefix(id, commitmentPrefix) {
		return -1
	}
	_, o, ok := strings.Cut(id[strings.LastIndexByte(id, '|')+1:], ":")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(o, 10, 64)
	if err != nil {
		return -1
	}
	return n
}
