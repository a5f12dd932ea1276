package events

import "time"

// Ledger entry types: one per kind of per-SKU fact in stockflow.ledger.v1.
const (
	EntryReceipt       = "RECEIPT"
	EntryPick          = "PICK"
	EntryCount         = "COUNT"
	EntryAdjustment    = "ADJUSTMENT"
	EntryShipment      = "SHIPMENT"
	EntryOrderLine     = "ORDER_LINE"
	EntryOrderCancel   = "ORDER_CANCEL"
	EntryOrderAllocate = "ORDER_ALLOCATE"
	EntryPOLine        = "PO_LINE"
	EntryPOAck         = "PO_ACK"
	EntryASNLine       = "ASN_LINE"
	EntryPOClose       = "PO_CLOSE"
	EntryItemPolicy    = "ITEM_POLICY"
	EntryPolicy        = "POLICY"
	EntryHold          = "HOLD"
	EntryHoldRelease   = "HOLD_RELEASE"
)

// LedgerEntry is one per-SKU fact on stockflow.ledger.v1, in base units.
type LedgerEntry struct {
	EntryType       string     `avro:"entry_type"`
	SKU             string     `avro:"sku"`
	Location        *string    `avro:"location"`
	Group           *string    `avro:"group"`
	Quantity        int64      `avro:"quantity"`
	OrderID         *string    `avro:"order_id"`
	LineID          *string    `avro:"line_id"`
	Channel         *string    `avro:"channel"`
	PONumber        *string    `avro:"po_number"`
	POLine          *int32     `avro:"po_line"`
	ASNID           *string    `avro:"asn_id"`
	ShipmentID      *string    `avro:"shipment_id"`
	SupplierID      *string    `avro:"supplier_id"`
	Status          *string    `avro:"status"`
	ExpectedDate    *time.Time `avro:"expected_date"`
	ETA             *time.Time `avro:"eta"`
	AsOf            *time.Time `avro:"as_of"`
	SafetyStock     *int64     `avro:"safety_stock"`
	ReorderPoint    *int64     `avro:"reorder_point"`
	HoldID          *string    `avro:"hold_id"`
	TTLMillis       *int64     `avro:"ttl_ms"`
	ReplyTo         *string    `avro:"reply_to"`
	Reason          *string    `avro:"reason"`
	EventID         string     `avro:"event_id"`
	EventTime       time.Time  `avro:"event_time"`
	Source          string     `avro:"source"`
	CorrelationID   *string    `avro:"correlation_id"`
	SourceTopic     *string    `avro:"source_topic"`
	SourcePartition *int32     `avro:"source_partition"`
	SourceOffset    *int64     `avro:"source_offset"`
	// ChannelRules, on a HOLD entry, are the channel rules the API held
	// under (ChannelRules.String form), so a replay decides the same.
	ChannelRules *string `avro:"channel_rules"`
	// DecidedATP, DecidedAt and DecidedEpoch, on a HOLD entry that carries a Status, are
	// its journaled decision: the ATP it was decided against (less the
	// hold, when held) and the offset of its ledger partition that the
	// owner had folded when it decided. The fold applies such an entry as
	// recorded, so a replay reaches the same decision.
	DecidedATP *int64 `avro:"decided_atp"`
	DecidedAt  *int64 `avro:"decided_at"`
	// DecidedEpoch is the fencing epoch of the owner that journaled the
	// decision: of two decisions of one hold, the higher epoch's stands.
	DecidedEpoch *int64 `avro:"decided_epoch"`
}

// InboundBucket is inbound quantity expected on a date.
type InboundBucket struct {
	Date     time.Time `avro:"date"`
	Quantity int64     `avro:"quantity"`
}

// AvailabilityChanged is the latest availability of a SKU at a location.
type AvailabilityChanged struct {
	SKU           string          `avro:"sku"`
	Location      string          `avro:"location"`
	Version       int64           `avro:"version"`
	OnHand        int64           `avro:"on_hand"`
	Reserved      int64           `avro:"reserved"`
	Picked        int64           `avro:"picked"`
	Held          int64           `avro:"held"`
	SafetyStock   int64           `avro:"safety_stock"`
	ReorderPoint  int64           `avro:"reorder_point"`
	Inbound       []InboundBucket `avro:"inbound"`
	ATP           int64           `avro:"atp"`
	Shortfall     int64           `avro:"shortfall"`
	AsOf          time.Time       `avro:"as_of"`
	CorrelationID *string         `avro:"correlation_id"`
}

// Alert types.
const (
	AlertReplenishmentNeeded = "ReplenishmentNeeded"
	AlertStockOut            = "StockOut"
	AlertBackInStock         = "BackInStock"
	AlertNegativeOnHand      = "NegativeOnHand"
)

// StockAlert is published when a threshold is crossed.
type StockAlert struct {
	AlertID           string    `avro:"alert_id"`
	AlertType         string    `avro:"alert_type"`
	SKU               string    `avro:"sku"`
	Location          string    `avro:"location"`
	ATP               int64     `avro:"atp"`
	OnHand            int64     `avro:"on_hand"`
	ReorderPoint      int64     `avro:"reorder_point"`
	SuggestedQuantity int64     `avro:"suggested_quantity"`
	AsOf              time.Time `avro:"as_of"`
	CorrelationID     *string   `avro:"correlation_id"`
}

func (*LedgerEntry) AvroName() string         { return Namespace + ".LedgerEntry" }
func (*AvailabilityChanged) AvroName() string { return Namespace + ".AvailabilityChanged" }
func (*StockAlert) AvroName() string          { return Namespace + ".StockAlert" }
