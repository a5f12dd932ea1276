package events

import (
	"fmt"
	"time"

	"github.com/stockflow/stockflow/pkg/avro"
)

// LedgerEntry has a hand-written Avro codec (avro.BinaryRecord): every
// record Stockflow produces is one, and the folder decodes each again, so
// goavro's generic maps and the reflection around them are the cost to
// avoid. The codec writes schemas/LedgerEntry.avsc field by field, byte for
// byte as goavro does; tests in pkg/avro check that on random entries and
// fuzz the decoder against goavro's.
//
// When the schema changes, the codec must change with it: pkg/avro refuses
// to build a codec while ledgerEntryFingerprint is not the canonical
// schema's, and its error names the fingerprint to put here once the
// methods below follow the new schema.
const ledgerEntryFingerprint = "c3099fb46fe568920f36e76d20fa9eb037e4c01511ae7699dbfb4bf7ab518a17"

// entryTypes are the symbols of the EntryType enum, in schema order.
var entryTypes = []string{
	EntryReceipt, EntryPick, EntryCount, EntryAdjustment, EntryShipment,
	EntryOrderLine, EntryOrderCancel, EntryOrderAllocate,
	EntryPOLine, EntryPOAck, EntryASNLine, EntryPOClose,
	EntryItemPolicy, EntryPolicy, EntryHold, EntryHoldRelease,
}

// AvroFingerprint implements avro.BinaryRecord.
func (*LedgerEntry) AvroFingerprint() string { return ledgerEntryFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends e's Avro body, in the
// schema's field order.
func (e *LedgerEntry) AppendAvro(dst []byte) ([]byte, error) {
	dst, err := avro.AppendEnum(dst, entryTypes, e.EntryType)
	if err != nil {
		return nil, fmt.Errorf("entry_type: %w", err)
	}
	dst = avro.AppendString(dst, e.SKU)
	dst = avro.AppendOptional(dst, e.Location, avro.AppendString)
	dst = avro.AppendOptional(dst, e.Group, avro.AppendString)
	dst = avro.AppendLong(dst, e.Quantity)
	dst = avro.AppendOptional(dst, e.OrderID, avro.AppendString)
	dst = avro.AppendOptional(dst, e.LineID, avro.AppendString)
	dst = avro.AppendOptional(dst, e.Channel, avro.AppendString)
	dst = avro.AppendOptional(dst, e.PONumber, avro.AppendString)
	dst = avro.AppendOptional(dst, e.POLine, avro.AppendInt)
	dst = avro.AppendOptional(dst, e.ASNID, avro.AppendString)
	dst = avro.AppendOptional(dst, e.ShipmentID, avro.AppendString)
	dst = avro.AppendOptional(dst, e.SupplierID, avro.AppendString)
	dst = avro.AppendOptional(dst, e.Status, avro.AppendString)
	if dst, err = avro.AppendOptionalDate(dst, e.ExpectedDate); err != nil {
		return nil, fmt.Errorf("expected_date: %w", err)
	}
	dst = avro.AppendOptional(dst, e.ETA, avro.AppendTimestampMillis)
	dst = avro.AppendOptional(dst, e.AsOf, avro.AppendTimestampMillis)
	dst = avro.AppendOptional(dst, e.SafetyStock, avro.AppendLong)
	dst = avro.AppendOptional(dst, e.ReorderPoint, avro.AppendLong)
	dst = avro.AppendOptional(dst, e.HoldID, avro.AppendString)
	dst = avro.AppendOptional(dst, e.TTLMillis, avro.AppendLong)
	dst = avro.AppendOptional(dst, e.ReplyTo, avro.AppendString)
	dst = avro.AppendOptional(dst, e.Reason, avro.AppendString)
	dst = avro.AppendString(dst, e.EventID)
	dst = avro.AppendTimestampMillis(dst, e.EventTime)
	dst = avro.AppendString(dst, e.Source)
	dst = avro.AppendOptional(dst, e.CorrelationID, avro.AppendString)
	dst = avro.AppendOptional(dst, e.SourceTopic, avro.AppendString)
	dst = avro.AppendOptional(dst, e.SourcePartition, avro.AppendInt)
	dst = avro.AppendOptional(dst, e.SourceOffset, avro.AppendLong)
	dst = avro.AppendOptional(dst, e.ChannelRules, avro.AppendString)
	dst = avro.AppendOptional(dst, e.DecidedATP, avro.AppendLong)
	dst = avro.AppendOptional(dst, e.DecidedAt, avro.AppendLong)
	dst = avro.AppendOptional(dst, e.DecidedEpoch, avro.AppendLong)
	return dst, nil
}

// ledgerOptionals holds the values LedgerEntry's optional fields point to,
// so that decoding allocates them all at once.
type ledgerOptionals struct {
	location, group, orderID, lineID, channel, poNumber, asnID, shipmentID    string
	supplierID, status, holdID, replyTo, reason, correlationID, sourceTopic   string
	channelRules                                                              string
	poLine, sourcePartition                                                   int32
	safetyStock, reorderPoint, ttlMillis, sourceOffset, decidedATP, decidedAt int64
	decidedEpoch                                                              int64
	expectedDate, eta, asOf                                                   time.Time
}

// UnmarshalAvro implements avro.BinaryRecord: it sets e to the entry in
// body, an Avro body written with the canonical schema, and leaves e as it
// was when body is not one.
func (e *LedgerEntry) UnmarshalAvro(body []byte) error {
	// The folder keeps an entry's strings in its SKU states.
	r := avro.NewOwningReader(body)
	o := new(ledgerOptionals)
	var d LedgerEntry
	d.EntryType = r.ReadEnum("entry_type", entryTypes)
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadOptionalString("location", &o.location)
	d.Group = r.ReadOptionalString("group", &o.group)
	d.Quantity = r.ReadLong("quantity")
	d.OrderID = r.ReadOptionalString("order_id", &o.orderID)
	d.LineID = r.ReadOptionalString("line_id", &o.lineID)
	d.Channel = r.ReadOptionalString("channel", &o.channel)
	d.PONumber = r.ReadOptionalString("po_number", &o.poNumber)
	d.POLine = r.ReadOptionalInt("po_line", &o.poLine)
	d.ASNID = r.ReadOptionalString("asn_id", &o.asnID)
	d.ShipmentID = r.ReadOptionalString("shipment_id", &o.shipmentID)
	d.SupplierID = r.ReadOptionalString("supplier_id", &o.supplierID)
	d.Status = r.ReadOptionalString("status", &o.status)
	d.ExpectedDate = r.ReadOptionalDate("expected_date", &o.expectedDate)
	d.ETA = r.ReadOptionalTimestampMillis("eta", &o.eta)
	d.AsOf = r.ReadOptionalTimestampMillis("as_of", &o.asOf)
	d.SafetyStock = r.ReadOptionalLong("safety_stock", &o.safetyStock)
	d.ReorderPoint = r.ReadOptionalLong("reorder_point", &o.reorderPoint)
	d.HoldID = r.ReadOptionalString("hold_id", &o.holdID)
	d.TTLMillis = r.ReadOptionalLong("ttl_ms", &o.ttlMillis)
	d.ReplyTo = r.ReadOptionalString("reply_to", &o.replyTo)
	d.Reason = r.ReadOptionalString("reason", &o.reason)
	d.EventID = r.ReadString("event_id")
	d.EventTime = r.ReadTimestampMillis("event_time")
	d.Source = r.ReadString("source")
	d.CorrelationID = r.ReadOptionalString("correlation_id", &o.correlationID)
	d.SourceTopic = r.ReadOptionalString("source_topic", &o.sourceTopic)
	d.SourcePartition = r.ReadOptionalInt("source_partition", &o.sourcePartition)
	d.SourceOffset = r.ReadOptionalLong("source_offset", &o.sourceOffset)
	d.ChannelRules = r.ReadOptionalString("channel_rules", &o.channelRules)
	d.DecidedATP = r.ReadOptionalLong("decided_atp", &o.decidedATP)
	d.DecidedAt = r.ReadOptionalLong("decided_at", &o.decidedAt)
	d.DecidedEpoch = r.ReadOptionalLong("decided_epoch", &o.decidedEpoch)
	if err := r.End(); err != nil {
		return err
	}
	*e = d
	return nil
}
