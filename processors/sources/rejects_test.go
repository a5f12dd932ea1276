package sources

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

func meta() events.Meta {
	return events.Meta{EventID: "ev-1", EventTime: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Source: "test"}
}

func p[T any](v T) *T { return &v }

// An indexed order SO-1 (line L1 at DC-1, L2 across group G) and PO PO-1
// (line 1 of SKU-1 in cases, line 2 of SKU-2 in an unknown unit), and PO-BAD
// whose index line is damaged.
func indexedEnv() *fakeEnv {
	env := newFakeEnv()
	env.Record(orderDoc("SO-1"), []ledger.IndexedLine{{Line: "L1", SKU: "SKU-1", Location: "DC-1"}, {Line: "L2", SKU: "SKU-1", Group: "G"}})
	env.Record(poDoc("PO-1"), []ledger.IndexedLine{{Line: "1", SKU: "SKU-1", Location: "DC-1", UoM: "CS"}, {Line: "2", SKU: "SKU-2", Location: "DC-1", UoM: "XX"}})
	env.Record(poDoc("PO-BAD"), []ledger.IndexedLine{{Line: "one", SKU: "SKU-1", Location: "DC-1"}})
	return env
}

func received(f func(*events.InventoryReceived)) events.Source {
	e := &events.InventoryReceived{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: 5, UoM: "EA"}
	f(e)
	return e
}

func accepted(f func(*events.OrderAccepted)) events.Source {
	e := &events.OrderAccepted{Meta: meta(), OrderID: "SO-2", Channel: "web",
		Lines: []events.OrderLine{{LineID: "L1", SKU: "SKU-1", Location: p("DC-1"), Quantity: 2, UoM: "EA"}}}
	f(e)
	return e
}

func released(f func(*events.PurchaseOrderReleased)) events.Source {
	e := &events.PurchaseOrderReleased{Meta: meta(), PONumber: "PO-2", SupplierID: "SUP",
		Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: "SKU-1", Location: "DC-1", Quantity: 3, UoM: "CS"}}}
	f(e)
	return e
}

func acked(f func(*events.PurchaseOrderAcknowledged)) events.Source {
	e := &events.PurchaseOrderAcknowledged{Meta: meta(), PONumber: "PO-1", SupplierID: "SUP",
		Lines: []events.AcknowledgedLine{{POLine: 1, Status: events.AckAccepted, Quantity: 3}}}
	f(e)
	return e
}

func shipNotice(f func(*events.AdvanceShipNotice)) events.Source {
	e := &events.AdvanceShipNotice{Meta: meta(), ASNID: "ASN-1", PONumber: "PO-1", SupplierID: "SUP",
		Lines: []events.AdvanceShipNoticeLine{{POLine: 1, SKU: "SKU-1", Quantity: 2, UoM: "CS"}}}
	f(e)
	return e
}

func item(f func(*events.ItemMaster)) events.Source {
	e := &events.ItemMaster{Meta: meta(), SKU: "SKU-1", BaseUoM: "EA", Conversions: map[string]int64{"CS": 12},
		SafetyStock: map[string]int64{"DC-1": 4}, ReorderPoint: map[string]int64{"DC-1": 10}}
	f(e)
	return e
}

type rejectCase struct {
	name  string
	ev    events.Source
	class string
	msg   string // a part of the message: the field and the rule
}

// rejectCases are every rule a source event is checked by, one bad event
// each, all else valid.
var rejectCases = []rejectCase{
	// The common fields.
	{"event id missing", received(func(e *events.InventoryReceived) { e.EventID = "" }), ClassInvalid, "event_id: must be 1-128"},
	{"event id too long", received(func(e *events.InventoryReceived) { e.EventID = strings.Repeat("e", 129) }), ClassInvalid, "event_id: must be 1-128"},
	{"event time missing", received(func(e *events.InventoryReceived) { e.EventTime = time.Time{} }), ClassInvalid, "event_time: must be set"},
	{"event time at the epoch", received(func(e *events.InventoryReceived) { e.EventTime = time.Unix(0, 0) }), ClassInvalid, "event_time: must be set"},
	// Warehouse movements.
	{"receipt: bad sku", received(func(e *events.InventoryReceived) { e.SKU = "a b" }), ClassInvalid, `sku: "a b" is not 1-64 characters`},
	{"receipt: bad location", received(func(e *events.InventoryReceived) { e.Location = "" }), ClassInvalid, `location: "" is not 1-64`},
	{"receipt: quantity 0", received(func(e *events.InventoryReceived) { e.Quantity = 0 }), ClassInvalid, "quantity: 0 must be > 0"},
	{"receipt: unknown unit", received(func(e *events.InventoryReceived) { e.UoM = "PALLET" }), ClassUnknownUoM, "quantity: no conversion from PALLET"},
	{"receipt: po number without line", received(func(e *events.InventoryReceived) { e.PONumber = p("PO-1") }), ClassInvalid, "po_number and po_line: give both or neither"},
	{"receipt: po line without number", received(func(e *events.InventoryReceived) { e.POLine = p(int32(1)) }), ClassInvalid, "po_number and po_line: give both or neither"},
	{"pick: no order", &events.InventoryPicked{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: 1, UoM: "EA", LineID: "L1"}, ClassInvalid, "order_id: must be 1-128"},
	{"pick: no line", &events.InventoryPicked{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: 1, UoM: "EA", OrderID: "SO-1"}, ClassInvalid, "line_id: must be 1-128"},
	{"pick: negative quantity", &events.InventoryPicked{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: -1, UoM: "EA", OrderID: "SO-1", LineID: "L1"}, ClassInvalid, "quantity: -1 must be > 0"},
	{"shipment: no order", &events.InventoryShipped{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: 1, UoM: "EA", LineID: "L1"}, ClassInvalid, "order_id: must be 1-128"},
	{"shipment: no line", &events.InventoryShipped{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: 1, UoM: "EA", OrderID: "SO-1"}, ClassInvalid, "line_id: must be 1-128"},
	{"adjustment of 0", &events.InventoryAdjusted{Meta: meta(), SKU: "SKU-1", Location: "DC-1", UoM: "EA", Reason: "x"}, ClassInvalid, "quantity: an adjustment of 0 changes nothing"},
	{"adjustment: unknown unit", &events.InventoryAdjusted{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: -2, UoM: "XX"}, ClassUnknownUoM, "quantity: no conversion from XX"},
	{"count below 0", &events.InventoryCounted{Meta: meta(), SKU: "SKU-1", Location: "DC-1", CountedQuantity: -1, UoM: "EA", AsOf: meta().EventTime}, ClassInvalid, "counted_quantity: -1 must be >= 0"},
	{"count without as of", &events.InventoryCounted{Meta: meta(), SKU: "SKU-1", Location: "DC-1", CountedQuantity: 1, UoM: "EA"}, ClassInvalid, "as_of: must be set"},
	{"count: bad sku", &events.InventoryCounted{Meta: meta(), SKU: "", Location: "DC-1", UoM: "EA", AsOf: meta().EventTime}, ClassInvalid, `sku: "" is not`},
	// Orders.
	{"order: no id", accepted(func(e *events.OrderAccepted) { e.OrderID = "" }), ClassInvalid, "order_id: must be 1-128"},
	{"order: no channel", accepted(func(e *events.OrderAccepted) { e.Channel = "" }), ClassInvalid, "channel: must be 1-128"},
	{"order: no lines", accepted(func(e *events.OrderAccepted) { e.Lines = nil }), ClassInvalid, "lines: an order needs at least one line"},
	{"order: line without id", accepted(func(e *events.OrderAccepted) { e.Lines[0].LineID = "" }), ClassInvalid, "lines[0].line_id: must be 1-128"},
	{"order: line with a bad sku", accepted(func(e *events.OrderAccepted) { e.Lines[0].SKU = "x/y" }), ClassInvalid, `lines[0].sku: "x/y" is not`},
	{"order: line of 0", accepted(func(e *events.OrderAccepted) { e.Lines[0].Quantity = 0 }), ClassInvalid, "lines[0].quantity: 0 must be > 0"},
	{"order: a line id twice", accepted(func(e *events.OrderAccepted) { e.Lines = append(e.Lines, e.Lines[0]) }), ClassInvalid, `lines[1].line_id: "L1" appears twice`},
	{"order: bad location", accepted(func(e *events.OrderAccepted) { e.Lines[0].Location = p("") }), ClassInvalid, `lines[0].location: "" is not`},
	{"order: bad group", accepted(func(e *events.OrderAccepted) { e.Lines[0].Location, e.Lines[0].Group = nil, p("g g") }), ClassInvalid, `lines[0].group: "g g" is not`},
	{"order: line placed nowhere", accepted(func(e *events.OrderAccepted) { e.Lines[0].Location = nil }), ClassInvalid, "lines[0].location: a line needs a location or a group"},
	{"order: unknown unit", accepted(func(e *events.OrderAccepted) { e.Lines[0].UoM = "BOX" }), ClassUnknownUoM, "lines[0].quantity: no conversion from BOX"},
	{"cancel: no order id", &events.OrderCancelled{Meta: meta()}, ClassInvalid, "order_id: must be 1-128"},
	{"cancel of an order never accepted", &events.OrderCancelled{Meta: meta(), OrderID: "SO-9"}, ClassUnknownReference, `order_id: order "SO-9" was never accepted`},
	{"cancel of a line the order lacks", &events.OrderCancelled{Meta: meta(), OrderID: "SO-1", LineIDs: []string{"L1", "L9"}}, ClassUnknownReference, `line_ids[1]: order "SO-1" has no line "L9"`},
	{"allocation: no order", &events.OrderAllocated{Meta: meta(), LineID: "L2", SKU: "SKU-1", Location: "DC-1"}, ClassInvalid, "order_id: must be 1-128"},
	{"allocation: no line", &events.OrderAllocated{Meta: meta(), OrderID: "SO-1", SKU: "SKU-1", Location: "DC-1"}, ClassInvalid, "line_id: must be 1-128"},
	{"allocation: bad sku", &events.OrderAllocated{Meta: meta(), OrderID: "SO-1", LineID: "L2", Location: "DC-1"}, ClassInvalid, `sku: "" is not`},
	{"allocation: bad location", &events.OrderAllocated{Meta: meta(), OrderID: "SO-1", LineID: "L2", SKU: "SKU-1", Location: "*"}, ClassInvalid, `location: "*" is not`},
	// Purchase orders and ship notices.
	{"po: no number", released(func(e *events.PurchaseOrderReleased) { e.PONumber = "" }), ClassInvalid, "po_number: must be 1-128"},
	{"po: no supplier", released(func(e *events.PurchaseOrderReleased) { e.SupplierID = "" }), ClassInvalid, "supplier_id: must be 1-128"},
	{"po: no lines", released(func(e *events.PurchaseOrderReleased) { e.Lines = nil }), ClassInvalid, "lines: a purchase order needs at least one line"},
	{"po: bad sku", released(func(e *events.PurchaseOrderReleased) { e.Lines[0].SKU = "" }), ClassInvalid, `lines[0].sku: "" is not`},
	{"po: bad location", released(func(e *events.PurchaseOrderReleased) { e.Lines[0].Location = "" }), ClassInvalid, `lines[0].location: "" is not`},
	{"po: line of 0", released(func(e *events.PurchaseOrderReleased) { e.Lines[0].Quantity = 0 }), ClassInvalid, "lines[0].quantity: 0 must be > 0"},
	{"po: a line number twice", released(func(e *events.PurchaseOrderReleased) { e.Lines = append(e.Lines, e.Lines[0]) }), ClassInvalid, "lines[1].po_line: 1 appears twice"},
	{"po: unknown unit", released(func(e *events.PurchaseOrderReleased) { e.Lines[0].UoM = "KG" }), ClassUnknownUoM, "lines[0].quantity: no conversion from KG"},
	{"ack: no po number", acked(func(e *events.PurchaseOrderAcknowledged) { e.PONumber = "" }), ClassInvalid, "po_number: must be 1-128"},
	{"ack of a po never released", acked(func(e *events.PurchaseOrderAcknowledged) { e.PONumber = "PO-9" }), ClassUnknownReference, `po_number: purchase order "PO-9" was never released`},
	{"ack of a line the po lacks", acked(func(e *events.PurchaseOrderAcknowledged) { e.Lines[0].POLine = 7 }), ClassUnknownReference, `lines[0].po_line: PO "PO-1" has no line 7`},
	{"ack of less than 0", acked(func(e *events.PurchaseOrderAcknowledged) { e.Lines[0].Quantity = -1 }), ClassInvalid, "lines[0].quantity: -1 must be >= 0"},
	{"ack in the po line's unknown unit", acked(func(e *events.PurchaseOrderAcknowledged) { e.Lines[0].POLine = 2 }), ClassUnknownUoM, "lines[0].quantity: no conversion from XX"},
	{"asn: no id", shipNotice(func(e *events.AdvanceShipNotice) { e.ASNID = "" }), ClassInvalid, "asn_id: must be 1-128"},
	{"asn: no po number", shipNotice(func(e *events.AdvanceShipNotice) { e.PONumber = "" }), ClassInvalid, "po_number: must be 1-128"},
	{"asn for a po never released", shipNotice(func(e *events.AdvanceShipNotice) { e.PONumber = "PO-9" }), ClassUnknownReference, `purchase order "PO-9" was never released`},
	{"asn for a line the po lacks", shipNotice(func(e *events.AdvanceShipNotice) { e.Lines[0].POLine = 3 }), ClassUnknownReference, `lines[0].po_line: PO "PO-1" has no line 3`},
	{"asn of another sku than its line's", shipNotice(func(e *events.AdvanceShipNotice) { e.Lines[0].SKU = "SKU-2" }), ClassInvalid, `lines[0].sku: "SKU-2", but PO line 1 is for "SKU-1"`},
	{"asn of 0", shipNotice(func(e *events.AdvanceShipNotice) { e.Lines[0].Quantity = 0 }), ClassInvalid, "lines[0].quantity: 0 must be > 0"},
	{"asn: unknown unit", shipNotice(func(e *events.AdvanceShipNotice) { e.Lines[0].UoM = "TON" }), ClassUnknownUoM, "lines[0].quantity: no conversion from TON"},
	{"close: no po number", &events.PurchaseOrderClosed{Meta: meta()}, ClassInvalid, "po_number: must be 1-128"},
	{"close of a po never released", &events.PurchaseOrderClosed{Meta: meta(), PONumber: "PO-9"}, ClassUnknownReference, `purchase order "PO-9" was never released`},
	{"close of a po whose index is damaged", &events.PurchaseOrderClosed{Meta: meta(), PONumber: "PO-BAD"}, ClassInvalid, `the document index holds line "one" for purchase order "PO-BAD"`},
	// The item master.
	{"item: bad sku", item(func(e *events.ItemMaster) { e.SKU = "" }), ClassInvalid, `sku: "" is not`},
	{"item: a conversion of 0", item(func(e *events.ItemMaster) { e.Conversions["CS"] = 0 }), ClassInvalid, "conversions[CS]: 0 must be > 0"},
	{"item: a policy at a bad location", item(func(e *events.ItemMaster) { e.SafetyStock["x y"] = 1 }), ClassInvalid, `safety_stock/reorder_point location: "x y" is not`},
	{"item: safety stock below 0", item(func(e *events.ItemMaster) { e.SafetyStock["DC-1"] = -1 }), ClassInvalid, "safety_stock[DC-1]: -1 must be >= 0"},
	{"item: reorder point below 0", item(func(e *events.ItemMaster) { e.ReorderPoint["DC-1"] = -3 }), ClassInvalid, "reorder_point[DC-1]: -3 must be >= 0"},
}

// Each rule refuses its bad event under its class, naming the field.
func TestEveryRejectRule(t *testing.T) {
	for _, c := range rejectCases {
		t.Run(c.name, func(t *testing.T) {
			s := Of(c.ev)
			out, err := s.Normalize(context.Background(), indexedEnv(), rec, c.ev)
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("gave %d entries and error %v, want a %s rejection", len(out), err, c.class)
			}
			if re.Class != c.class || !strings.Contains(re.Msg, c.msg) {
				t.Errorf("rejected as %s: %q, want %s with %q", re.Class, re.Msg, c.class, c.msg)
			}
		})
	}
}

// The events the reject cases are made from are valid: each case fails
// by its one change.
func TestTheRejectCasesBasesAreValid(t *testing.T) {
	bases := []events.Source{
		received(func(*events.InventoryReceived) {}), accepted(func(*events.OrderAccepted) {}),
		released(func(*events.PurchaseOrderReleased) {}), acked(func(*events.PurchaseOrderAcknowledged) {}),
		shipNotice(func(*events.AdvanceShipNotice) {}), item(func(*events.ItemMaster) {}),
		&events.OrderCancelled{Meta: meta(), OrderID: "SO-1"},
		&events.OrderAllocated{Meta: meta(), OrderID: "SO-1", LineID: "L2", SKU: "SKU-1", Location: "DC-1"},
		&events.PurchaseOrderClosed{Meta: meta(), PONumber: "PO-1"},
		&events.InventoryAdjusted{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: -2, UoM: "EA"},
		&events.InventoryCounted{Meta: meta(), SKU: "SKU-1", Location: "DC-1", UoM: "EA", AsOf: meta().EventTime},
		&events.InventoryPicked{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: 1, UoM: "EA", OrderID: "SO-1", LineID: "L1"},
		&events.InventoryShipped{Meta: meta(), SKU: "SKU-1", Location: "DC-1", Quantity: 1, UoM: "EA", OrderID: "SO-1", LineID: "L1"},
	}
	for _, ev := range bases {
		out, err := Of(ev).Normalize(context.Background(), indexedEnv(), rec, ev)
		if err != nil || len(out) == 0 {
			t.Errorf("%s: %d entries, %v", ev.AvroName(), len(out), err)
		}
	}
}
