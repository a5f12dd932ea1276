package events

import (
	"github.com/stockflow/stockflow/pkg/avro"
)

// The source events have hand-written Avro codecs (avro.BinaryRecord), as
// LedgerEntry has: the normalizers decode every record they consume, and
// goavro's generic maps and the reflection around them were a large share of
// their CPU. Each codec writes its schemas/*.avsc field by field, byte for
// byte as goavro does; tests in pkg/avro check that on random records and
// fuzz the decoders against goavro's.
//
// When a schema changes, its codec must change with it: pkg/avro refuses to
// build a codec while the record's fingerprint below is not the canonical
// schema's, and its error names the fingerprint to put here once the
// methods follow the new schema.
const (
	inventoryReceivedFingerprint = "f0808cd79e90a6ce13ab2958cb16452e28da092a085e948d1e65acc109f0ae80"
	inventoryPickedFingerprint   = "dd6e72567fe12b388cc02ba6d0c97d44b8fa6fa4d31c08b059bd473dba211cb8"
	inventoryCountedFingerprint  = "b878107bf0dd8c6a435007b9b5d259b0d55ae0dccc387b2f74067c17fe8974da"
	inventoryAdjustedFingerprint = "cde94c438da8104ea6cf33ada0dc2245242d7ab8a16a883160cbf6c9a633c6f3"
	inventoryShippedFingerprint  = "fc0d8c2a2c464acf0486a666f207446761a2dda5e9f914dcf40ec698d4479760"
)

// appendAvro appends the fields every source event's schema starts with.
func (m *Meta) appendAvro(dst []byte) []byte {
	dst = avro.AppendString(dst, m.EventID)
	dst = avro.AppendTimestampMillis(dst, m.EventTime)
	dst = avro.AppendString(dst, m.Source)
	return avro.AppendOptional(dst, m.CorrelationID, avro.AppendString)
}

// readMeta reads the fields every source event's schema starts with; a
// correlation id is stored in *correlationID.
func readMeta(r *avro.Reader, correlationID *string) Meta {
	return Meta{
		EventID:       r.ReadString("event_id"),
		EventTime:     r.ReadTimestampMillis("event_time"),
		Source:        r.ReadString("source"),
		CorrelationID: r.ReadOptionalString("correlation_id", correlationID),
	}
}

// AvroFingerprint implements avro.BinaryRecord.
func (*InventoryReceived) AvroFingerprint() string { return inventoryReceivedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends e's Avro body, in the
// schema's field order.
func (e *InventoryReceived) AppendAvro(dst []byte) ([]byte, error) {
	dst = e.appendAvro(dst)
	dst = avro.AppendString(dst, e.SKU)
	dst = avro.AppendString(dst, e.Location)
	dst = avro.AppendLong(dst, e.Quantity)
	dst = avro.AppendString(dst, e.UoM)
	dst = avro.AppendOptional(dst, e.PONumber, avro.AppendString)
	dst = avro.AppendOptional(dst, e.POLine, avro.AppendInt)
	dst = avro.AppendOptional(dst, e.ASNID, avro.AppendString)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets e to the event in
// body, an Avro body written with the canonical schema, and leaves e as it
// was when body is not one.
func (e *InventoryReceived) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	o := new(struct {
		correlationID, poNumber, asnID string
		poLine                         int32
	})
	var d InventoryReceived
	d.Meta = readMeta(&r, &o.correlationID)
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	d.Quantity = r.ReadLong("quantity")
	d.UoM = r.ReadString("uom")
	d.PONumber = r.ReadOptionalString("po_number", &o.poNumber)
	d.POLine = r.ReadOptionalInt("po_line", &o.poLine)
	d.ASNID = r.ReadOptionalString("asn_id", &o.asnID)
	if err := r.End(); err != nil {
		return err
	}
	*e = d
	return nil
}

// AvroFingerprint implements avro.BinaryRecord.
func (*InventoryPicked) AvroFingerprint() string { return inventoryPickedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends e's Avro body, in the
// schema's field order.
func (e *InventoryPicked) AppendAvro(dst []byte) ([]byte, error) {
	dst = e.appendAvro(dst)
	dst = avro.AppendString(dst, e.SKU)
	dst = avro.AppendString(dst, e.Location)
	dst = avro.AppendLong(dst, e.Quantity)
	dst = avro.AppendString(dst, e.UoM)
	dst = avro.AppendString(dst, e.OrderID)
	dst = avro.AppendString(dst, e.LineID)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets e to the event in
// body, an Avro body written with the canonical schema, and leaves e as it
// was when body is not one.
func (e *InventoryPicked) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d InventoryPicked
	d.Meta = readMeta(&r, new(string))
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	d.Quantity = r.ReadLong("quantity")
	d.UoM = r.ReadString("uom")
	d.OrderID = r.ReadString("order_id")
	d.LineID = r.ReadString("line_id")
	if err := r.End(); err != nil {
		return err
	}
	*e = d
	return nil
}

// AvroFingerprint implements avro.BinaryRecord.
func (*InventoryCounted) AvroFingerprint() string { return inventoryCountedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends e's Avro body, in the
// schema's field order.
func (e *InventoryCounted) AppendAvro(dst []byte) ([]byte, error) {
	dst = e.appendAvro(dst)
	dst = avro.AppendString(dst, e.SKU)
	dst = avro.AppendString(dst, e.Location)
	dst = avro.AppendLong(dst, e.CountedQuantity)
	dst = avro.AppendString(dst, e.UoM)
	dst = avro.AppendTimestampMillis(dst, e.AsOf)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets e to the event in
// body, an Avro body written with the canonical schema, and leaves e as it
// was when body is not one.
func (e *InventoryCounted) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d InventoryCounted
	d.Meta = readMeta(&r, new(string))
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	d.CountedQuantity = r.ReadLong("counted_quantity")
	d.UoM = r.ReadString("uom")
	d.AsOf = r.ReadTimestampMillis("as_of")
	if err := r.End(); err != nil {
		return err
	}
	*e = d
	return nil
}

// AvroFingerprint implements avro.BinaryRecord.
func (*InventoryAdjusted) AvroFingerprint() string { return inventoryAdjustedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends e's Avro body, in the
// schema's field order.
func (e *InventoryAdjusted) AppendAvro(dst []byte) ([]byte, error) {
	dst = e.appendAvro(dst)
	dst = avro.AppendString(dst, e.SKU)
	dst = avro.AppendString(dst, e.Location)
	dst = avro.AppendLong(dst, e.Quantity)
	dst = avro.AppendString(dst, e.UoM)
	dst = avro.AppendString(dst, e.Reason)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets e to the event in
// body, an Avro body written with the canonical schema, and leaves e as it
// was when body is not one.
func (e *InventoryAdjusted) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d InventoryAdjusted
	d.Meta = readMeta(&r, new(string))
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	d.Quantity = r.ReadLong("quantity")
	d.UoM = r.ReadString("uom")
	d.Reason = r.ReadString("reason")
	if err := r.End(); err != nil {
		return err
	}
	*e = d
	return nil
}

// AvroFingerprint implements avro.BinaryRecord.
func (*InventoryShipped) AvroFingerprint() string { return inventoryShippedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends e's Avro body, in the
// schema's field order.
func (e *InventoryShipped) AppendAvro(dst []byte) ([]byte, error) {
	dst = e.appendAvro(dst)
	dst = avro.AppendString(dst, e.SKU)
	dst = avro.AppendString(dst, e.Location)
	dst = avro.AppendLong(dst, e.Quantity)
	dst = avro.AppendString(dst, e.UoM)
	dst = avro.AppendString(dst, e.OrderID)
	dst = avro.AppendString(dst, e.LineID)
	dst = avro.AppendString(dst, e.ShipmentID)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets e to the event in
// body, an Avro body written with the canonical schema, and leaves e as it
// was when body is not one.
func (e *InventoryShipped) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d InventoryShipped
	d.Meta = readMeta(&r, new(string))
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	d.Quantity = r.ReadLong("quantity")
	d.UoM = r.ReadString("uom")
	d.OrderID = r.ReadString("order_id")
	d.LineID = r.ReadString("line_id")
	d.ShipmentID = r.ReadString("shipment_id")
	if err := r.End(); err != nil {
		return err
	}
	*e = d
	return nil
}
