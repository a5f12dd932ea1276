// Package events holds the Go form of every record in schemas/: the source
// events Stockflow consumes and the records it produces. Field tags name the
// Avro fields; pkg/avro binds the two. Every record also has a hand-written
// Avro codec (the *_avro.go files) that pkg/avro uses in place of the binding
// for records written with the canonical schema.
//
// See docs/design.md §14 (records on the wire, §14.4 the hand-written
// codecs) and §2.1 (which topic carries which record).
package events

import "time"

// Namespace is the Avro namespace of every Stockflow record.
const Namespace = "stockflow.v1"

// Meta are the fields every source event carries.
type Meta struct {
	EventID       string    `avro:"event_id"`
	EventTime     time.Time `avro:"event_time"`
	Source        string    `avro:"source"`
	CorrelationID *string   `avro:"correlation_id"`
}

// Metadata returns the common fields; every source event has it.
func (m *Meta) Metadata() *Meta { return m }

// Source is implemented by every source event.
type Source interface {
	AvroName() string
	Metadata() *Meta
}

// InventoryReceived is stock received into a location.
type InventoryReceived struct {
	Meta
	SKU      string  `avro:"sku"`
	Location string  `avro:"location"`
	Quantity int64   `avro:"quantity"`
	UoM      string  `avro:"uom"`
	PONumber *string `avro:"po_number"`
	POLine   *int32  `avro:"po_line"`
	ASNID    *string `avro:"asn_id"`
}

// InventoryPicked moves quantity of an order line from reserved to picked.
type InventoryPicked struct {
	Meta
	SKU      string `avro:"sku"`
	Location string `avro:"location"`
	Quantity int64  `avro:"quantity"`
	UoM      string `avro:"uom"`
	OrderID  string `avro:"order_id"`
	LineID   string `avro:"line_id"`
}

// InventoryCounted is a cycle count as of a point in time.
type InventoryCounted struct {
	Meta
	SKU             string    `avro:"sku"`
	Location        string    `avro:"location"`
	CountedQuantity int64     `avro:"counted_quantity"`
	UoM             string    `avro:"uom"`
	AsOf            time.Time `avro:"as_of"`
}

// InventoryAdjusted is a signed on-hand adjustment.
type InventoryAdjusted struct {
	Meta
	SKU      string `avro:"sku"`
	Location string `avro:"location"`
	Quantity int64  `avro:"quantity"`
	UoM      string `avro:"uom"`
	Reason   string `avro:"reason"`
}

// InventoryShipped is quantity shipped for an order line.
type InventoryShipped struct {
	Meta
	SKU        string `avro:"sku"`
	Location   string `avro:"location"`
	Quantity   int64  `avro:"quantity"`
	UoM        string `avro:"uom"`
	OrderID    string `avro:"order_id"`
	LineID     string `avro:"line_id"`
	ShipmentID string `avro:"shipment_id"`
}

// OrderLine is one line of an accepted order. Location or Group is set.
type OrderLine struct {
	LineID   string  `avro:"line_id"`
	SKU      string  `avro:"sku"`
	Location *string `avro:"location"`
	Group    *string `avro:"group"`
	Quantity int64   `avro:"quantity"`
	UoM      string  `avro:"uom"`
}

// OrderAccepted reserves stock for each line.
type OrderAccepted struct {
	Meta
	OrderID string      `avro:"order_id"`
	Channel string      `avro:"channel"`
	HoldID  *string     `avro:"hold_id"`
	Lines   []OrderLine `avro:"lines"`
}

// OrderCancelled cancels lines, or the whole order when LineIDs is empty.
type OrderCancelled struct {
	Meta
	OrderID string   `avro:"order_id"`
	LineIDs []string `avro:"line_ids"`
}

// OrderAllocated moves an order line's group demand to a location.
type OrderAllocated struct {
	Meta
	OrderID  string `avro:"order_id"`
	LineID   string `avro:"line_id"`
	SKU      string `avro:"sku"`
	Location string `avro:"location"`
}

// PurchaseOrderLine is one line of a released purchase order.
type PurchaseOrderLine struct {
	POLine       int32     `avro:"po_line"`
	SKU          string    `avro:"sku"`
	Location     string    `avro:"location"`
	Quantity     int64     `avro:"quantity"`
	UoM          string    `avro:"uom"`
	ExpectedDate time.Time `avro:"expected_date"`
}

// PurchaseOrderReleased is a PO released to a supplier.
type PurchaseOrderReleased struct {
	Meta
	PONumber   string              `avro:"po_number"`
	SupplierID string              `avro:"supplier_id"`
	Lines      []PurchaseOrderLine `avro:"lines"`
}

// Acknowledgement statuses of a PO line.
const (
	AckAccepted    = "ACCEPTED"
	AckChanged     = "CHANGED"
	AckRejected    = "REJECTED"
	AckBackordered = "BACKORDERED"
)

// AcknowledgedLine is the supplier's answer for one PO line.
type AcknowledgedLine struct {
	POLine       int32     `avro:"po_line"`
	Status       string    `avro:"status"`
	Quantity     int64     `avro:"quantity"`
	ExpectedDate time.Time `avro:"expected_date"`
}

// PurchaseOrderAcknowledged is the supplier's acknowledgement of a PO.
type PurchaseOrderAcknowledged struct {
	Meta
	PONumber   string             `avro:"po_number"`
	SupplierID string             `avro:"supplier_id"`
	Lines      []AcknowledgedLine `avro:"lines"`
}

// AdvanceShipNoticeLine is one shipped PO line of an ASN.
type AdvanceShipNoticeLine struct {
	POLine   int32  `avro:"po_line"`
	SKU      string `avro:"sku"`
	Quantity int64  `avro:"quantity"`
	UoM      string `avro:"uom"`
}

// AdvanceShipNotice announces a shipment from a supplier with its ETA.
type AdvanceShipNotice struct {
	Meta
	ASNID      string                  `avro:"asn_id"`
	PONumber   string                  `avro:"po_number"`
	SupplierID string                  `avro:"supplier_id"`
	ETA        time.Time               `avro:"eta"`
	Lines      []AdvanceShipNoticeLine `avro:"lines"`
}

// PurchaseOrderClosed withdraws whatever a PO still had inbound.
type PurchaseOrderClosed struct {
	Meta
	PONumber string `avro:"po_number"`
	Reason   string `avro:"reason"`
}

// ItemMaster is an item's base unit, conversions and stock policies.
type ItemMaster struct {
	Meta
	SKU          string           `avro:"sku"`
	BaseUoM      string           `avro:"base_uom"`
	Conversions  map[string]int64 `avro:"conversions"`
	SafetyStock  map[string]int64 `avro:"safety_stock"`
	ReorderPoint map[string]int64 `avro:"reorder_point"`
	LeadTimeDays int32            `avro:"lead_time_days"`
}

// AvroName implementations.
func (*InventoryReceived) AvroName() string         { return Namespace + ".InventoryReceived" }
func (*InventoryPicked) AvroName() string           { return Namespace + ".InventoryPicked" }
func (*InventoryCounted) AvroName() string          { return Namespace + ".InventoryCounted" }
func (*InventoryAdjusted) AvroName() string         { return Namespace + ".InventoryAdjusted" }
func (*InventoryShipped) AvroName() string          { return Namespace + ".InventoryShipped" }
func (*OrderAccepted) AvroName() string             { return Namespace + ".OrderAccepted" }
func (*OrderCancelled) AvroName() string            { return Namespace + ".OrderCancelled" }
func (*OrderAllocated) AvroName() string            { return Namespace + ".OrderAllocated" }
func (*PurchaseOrderReleased) AvroName() string     { return Namespace + ".PurchaseOrderReleased" }
func (*PurchaseOrderAcknowledged) AvroName() string { return Namespace + ".PurchaseOrderAcknowledged" }
func (*AdvanceShipNotice) AvroName() string         { return Namespace + ".AdvanceShipNotice" }
func (*PurchaseOrderClosed) AvroName() string       { return Namespace + ".PurchaseOrderClosed" }
func (*ItemMaster) AvroName() string                { return Namespace + ".ItemMaster" }
