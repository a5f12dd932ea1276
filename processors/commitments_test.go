package processors

import (
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

func TestOutboxTargets(t *testing.T) {
	for _, c := range []struct {
		id         string
		commitment bool
		key        string
	}{
		{"SKU-1|DC-1|StockOut|7", false, "SKU-1|DC-1"},
		{commitmentOutboxID("SO-1|2|3:41"), true, "SO-1"},
		{exceptionOutboxID("SKU-1|DC-1|3:41"), false, "SKU-1|DC-1"},
	} {
		commitment, key := outboxTarget(c.id)
		if commitment != c.commitment || key != c.key {
			t.Errorf("%s goes to commitment=%v key %q, want %v %q", c.id, commitment, key, c.commitment, c.key)
		}
	}
}

// An acknowledgement that makes promises later raises one exception
// naming the lines and their late and unpromised units; one that only
// brings promises forward, or another cause, raises none.
func TestPlanningExceptions(t *testing.T) {
	d := func(s string) int64 { tm, _ := time.Parse(time.DateOnly, s); return tm.Unix() / 86400 }
	early := ledger.Promise{Open: 10, ByDay: []ledger.DayQuantity{{Day: d("2026-03-10"), Quantity: 10}}}
	later := ledger.Promise{Open: 10, ByDay: []ledger.DayQuantity{{Day: d("2026-03-10"), Quantity: 4}, {Day: d("2026-03-20"), Quantity: 3}}, Unpromised: 3}
	cms := []ledger.Commitment{
		{OrderID: "O1", LineID: "1", Location: "DC-1", Had: true, Before: early, After: later},
		{OrderID: "O2", LineID: "1", Location: "DC-1", Had: true, Before: later, After: early},
		{OrderID: "O3", LineID: "1", Location: "DC-1", After: later}, // its first promise
	}
	for i := range cms {
		if cms[i].Had {
			cms[i].LateUnits = cms[i].After.LateUnits(cms[i].Before)
		}
	}
	sup, po := "SUP-1", "PO-7"
	ack := &events.LedgerEntry{EntryType: events.EntryPOAck, EventID: "ack-1", SupplierID: &sup, PONumber: &po, EventTime: time.Now()}
	ex := planningException("SKU-1", "DC-1", cms, ack, 2, 40)
	if ex == nil {
		t.Fatal("no exception")
	}
	if ex.ExceptionID != "SKU-1|DC-1|2:40" || *ex.SupplierID != sup || *ex.PONumber != po || len(ex.Lines) != 1 ||
		ex.Lines[0].OrderID != "O1" || ex.LateUnits != 6 || ex.UnpromisedUnits != 3 {
		t.Errorf("exception %+v", ex)
	}
	if ex := planningException("SKU-1", "DC-1", cms[1:2], ack, 2, 40); ex != nil {
		t.Errorf("promises brought forward raised %+v", ex)
	}
	receipt := &events.LedgerEntry{EntryType: events.EntryReceipt, EventID: "r-1", EventTime: time.Now()}
	if ex := planningException("SKU-1", "DC-1", cms, receipt, 2, 41); ex != nil {
		t.Errorf("a receipt raised %+v", ex)
	}
}

// Outputs a crashed writer left go out in the order they were made: a
// line's last record is its promise.
func TestStaleOutputsInTheOrderMade(t *testing.T) {
	outbox := map[string][]byte{
		commitmentOutboxID("O1|1|3:120"): nil, commitmentOutboxID("O1|1|3:9"): nil,
		"SKU-1|L1|StockOut|4": nil, commitmentOutboxID("O1|1|3:45"): nil,
	}
	var ids []string
	for _, o := range staleOutputs(&skuEntries{sku: "SKU-1"}, outbox) {
		ids = append(ids, o.id)
	}
	want := []string{"SKU-1|L1|StockOut|4", "c|O1|1|3:9", "c|O1|1|3:45", "c|O1|1|3:120"}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("published %v, want %v", ids, want)
	}
}
