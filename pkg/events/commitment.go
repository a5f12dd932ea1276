package events

import "time"

// PromisedQuantity is a quantity promised for a day.
type PromisedQuantity struct {
	Date     time.Time `avro:"date"` // UTC midnight of the day
	Quantity int64     `avro:"quantity"`
}

// LinePromise is what an order line is promised.
type LinePromise struct {
	OpenQuantity int64              `avro:"open_quantity"`
	ConfirmedNow int64              `avro:"confirmed_now"`
	Promised     []PromisedQuantity `avro:"promised"`
	Unpromised   int64              `avro:"unpromised"`
}

// CommitmentChanged is a change of an order line's promise, on
// stockflow.commitments.v1, keyed by order id.
type CommitmentChanged struct {
	CommitmentID   string       `avro:"commitment_id"`
	OrderID        string       `avro:"order_id"`
	LineID         string       `avro:"line_id"`
	SKU            string       `avro:"sku"`
	Location       string       `avro:"location"`
	Channel        *string      `avro:"channel"`
	Promise        LinePromise  `avro:"promise"`
	Previous       *LinePromise `avro:"previous"`
	Late           bool         `avro:"late"`
	CauseEventID   string       `avro:"cause_event_id"`
	CauseEntryType string       `avro:"cause_entry_type"`
	CausePONumber  *string      `avro:"cause_po_number"`
	CauseASNID     *string      `avro:"cause_asn_id"`
	CorrelationID  *string      `avro:"correlation_id"`
	CauseTime      time.Time    `avro:"cause_time"`
}

// AvroName implements avro.Record.
func (*CommitmentChanged) AvroName() string { return Namespace + ".CommitmentChanged" }

// AffectedLine is an order line a planning exception made later.
type AffectedLine struct {
	OrderID         string `avro:"order_id"`
	LineID          string `avro:"line_id"`
	LateUnits       int64  `avro:"late_units"`
	UnpromisedUnits int64  `avro:"unpromised_units"`
}

// PlanningException is a supplier's acknowledgement or ship notice that
// made order lines' promises later, on the alerts topic beside StockAlert.
type PlanningException struct {
	ExceptionID     string         `avro:"exception_id"`
	SKU             string         `avro:"sku"`
	Location        string         `avro:"location"`
	SupplierID      *string        `avro:"supplier_id"`
	PONumber        *string        `avro:"po_number"`
	POLine          *int32         `avro:"po_line"`
	ASNID           *string        `avro:"asn_id"`
	CauseEventID    string         `avro:"cause_event_id"`
	CauseEntryType  string         `avro:"cause_entry_type"`
	CorrelationID   *string        `avro:"correlation_id"`
	CauseTime       time.Time      `avro:"cause_time"`
	Lines           []AffectedLine `avro:"lines"`
	LateUnits       int64          `avro:"late_units"`
	UnpromisedUnits int64          `avro:"unpromised_units"`
}

// AvroName implements avro.Record.
func (*PlanningException) AvroName() string { return Namespace + ".PlanningException" }
