package events

import (
	"fmt"

	"github.com/stockflow/stockflow/pkg/avro"
)

// The supplier events' hand-written Avro codecs; see inventory_avro.go.
const (
	purchaseOrderReleasedFingerprint     = "ad70ac20b78aaac9f113b870c2897da13c1c4f8c8d5e22a69079a0bc9155ed81"
	purchaseOrderAcknowledgedFingerprint = "84263bef20f85e13eb71c38ac147cce0838ef26ef483ef5d12a60556869f8a4b"
	advanceShipNoticeFingerprint         = "6017f9e00303c50fd7e53c3d831b585ba1454a338d196a4f2b35082c889d3bef"
	purchaseOrderClosedFingerprint       = "a2a06a7bad3ff91860b6b4dac6a7caa8ee29d140d21be0ee80b346af672d2ac8"
)

// The fewest bytes a line takes on the wire: one byte for each field.
const (
	purchaseOrderLineMinBytes     = 6
	acknowledgedLineMinBytes      = 4
	advanceShipNoticeLineMinBytes = 4
)

// ackStatuses are the symbols of the AckStatus enum, in schema order.
var ackStatuses = []string{AckAccepted, AckChanged, AckRejected, AckBackordered}

// AvroFingerprint implements avro.BinaryRecord.
func (*PurchaseOrderReleased) AvroFingerprint() string { return purchaseOrderReleasedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends p's Avro body, in the
// schema's field order.
func (p *PurchaseOrderReleased) AppendAvro(dst []byte) ([]byte, error) {
	dst = p.appendAvro(dst)
	dst = avro.AppendString(dst, p.PONumber)
	dst = avro.AppendString(dst, p.SupplierID)
	dst, err := avro.AppendArray(dst, p.Lines, appendPurchaseOrderLine)
	if err != nil {
		return nil, fmt.Errorf("lines: %w", err)
	}
	return dst, nil
}

func appendPurchaseOrderLine(dst []byte, l PurchaseOrderLine) ([]byte, error) {
	dst = avro.AppendInt(dst, l.POLine)
	dst = avro.AppendString(dst, l.SKU)
	dst = avro.AppendString(dst, l.Location)
	dst = avro.AppendLong(dst, l.Quantity)
	dst = avro.AppendString(dst, l.UoM)
	dst, err := avro.AppendDate(dst, l.ExpectedDate)
	if err != nil {
		return nil, fmt.Errorf("expected_date: %w", err)
	}
	return dst, nil
}

func readPurchaseOrderLine(r *avro.Reader, _ string) PurchaseOrderLine {
	return PurchaseOrderLine{
		POLine:       r.ReadInt("lines.po_line"),
		SKU:          r.ReadString("lines.sku"),
		Location:     r.ReadString("lines.location"),
		Quantity:     r.ReadLong("lines.quantity"),
		UoM:          r.ReadString("lines.uom"),
		ExpectedDate: r.ReadDate("lines.expected_date"),
	}
}

// UnmarshalAvro implements avro.BinaryRecord: it sets p to the purchase
// order in body, an Avro body written with the canonical schema, and leaves
// p as it was when body is not one.
func (p *PurchaseOrderReleased) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d PurchaseOrderReleased
	d.Meta = readMeta(&r, new(string))
	d.PONumber = r.ReadString("po_number")
	d.SupplierID = r.ReadString("supplier_id")
	d.Lines = avro.ReadArray(&r, "lines", purchaseOrderLineMinBytes, readPurchaseOrderLine)
	if err := r.End(); err != nil {
		return err
	}
	*p = d
	return nil
}

// AvroFingerprint implements avro.BinaryRecord.
func (*PurchaseOrderAcknowledged) AvroFingerprint() string {
	return purchaseOrderAcknowledgedFingerprint
}

// AppendAvro implements avro.BinaryRecord: it appends p's Avro body, in the
// schema's field order.
func (p *PurchaseOrderAcknowledged) AppendAvro(dst []byte) ([]byte, error) {
	dst = p.appendAvro(dst)
	dst = avro.AppendString(dst, p.PONumber)
	dst = avro.AppendString(dst, p.SupplierID)
	dst, err := avro.AppendArray(dst, p.Lines, appendAcknowledgedLine)
	if err != nil {
		return nil, fmt.Errorf("lines: %w", err)
	}
	return dst, nil
}

func appendAcknowledgedLine(dst []byte, l AcknowledgedLine) ([]byte, error) {
	dst = avro.AppendInt(dst, l.POLine)
	dst, err := avro.AppendEnum(dst, ackStatuses, l.Status)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	dst = avro.AppendLong(dst, l.Quantity)
	if dst, err = avro.AppendDate(dst, l.ExpectedDate); err != nil {
		return nil, fmt.Errorf("expected_date: %w", err)
	}
	return dst, nil
}

func readAcknowledgedLine(r *avro.Reader, _ string) AcknowledgedLine {
	return AcknowledgedLine{
		POLine:       r.ReadInt("lines.po_line"),
		Status:       r.ReadEnum("lines.status", ackStatuses),
		Quantity:     r.ReadLong("lines.quantity"),
		ExpectedDate: r.ReadDate("lines.expected_date"),
	}
}

// UnmarshalAvro implements avro.BinaryRecord: it sets p to the
// acknowledgement in body, an Avro body written with the canonical schema,
// and leaves p as it was when body is not one.
func (p *PurchaseOrderAcknowledged) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d PurchaseOrderAcknowledged
	d.Meta = readMeta(&r, new(string))
	d.PONumber = r.ReadString("po_number")
	d.SupplierID = r.ReadString("supplier_id")
	d.Lines = avro.ReadArray(&r, "lines", acknowledgedLineMinBytes, readAcknowledgedLine)
	if err := r.End(); err != nil {
		return err
	}
	*p = d
	return nil
}

// AvroFingerprint implements avro.BinaryRecord.
func (*AdvanceShipNotice) AvroFingerprint() string { return advanceShipNoticeFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends a's Avro body, in the
// schema's field order.
func (a *AdvanceShipNotice) AppendAvro(dst []byte) ([]byte, error) {
	dst = a.appendAvro(dst)
	dst = avro.AppendString(dst, a.ASNID)
	dst = avro.AppendString(dst, a.PONumber)
	dst = avro.AppendString(dst, a.SupplierID)
	dst = avro.AppendTimestampMillis(dst, a.ETA)
	return avro.AppendArray(dst, a.Lines, appendAdvanceShipNoticeLine)
}

func appendAdvanceShipNoticeLine(dst []byte, l AdvanceShipNoticeLine) ([]byte, error) {
	dst = avro.AppendInt(dst, l.POLine)
	dst = avro.AppendString(dst, l.SKU)
	dst = avro.AppendLong(dst, l.Quantity)
	dst = avro.AppendString(dst, l.UoM)
	return dst, nil
}

func readAdvanceShipNoticeLine(r *avro.Reader, _ string) AdvanceShipNoticeLine {
	return AdvanceShipNoticeLine{
		POLine:   r.ReadInt("lines.po_line"),
		SKU:      r.ReadString("lines.sku"),
		Quantity: r.ReadLong("lines.quantity"),
		UoM:      r.ReadString("lines.uom"),
	}
}

// UnmarshalAvro implements avro.BinaryRecord: it sets a to the notice in
// body, an Avro body written with the canonical schema, and leaves a as it
// was when body is not one.
func (a *AdvanceShipNotice) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d AdvanceShipNotice
	d.Meta = readMeta(&r, new(string))
	d.ASNID = r.ReadString("asn_id")
	d.PONumber = r.ReadString("po_number")
	d.SupplierID = r.ReadString("supplier_id")
	d.ETA = r.ReadTimestampMillis("eta")
	d.Lines = avro.ReadArray(&r, "lines", advanceShipNoticeLineMinBytes, readAdvanceShipNoticeLine)
	if err := r.End(); err != nil {
		return err
	}
	*a = d
	return nil
}

// AvroFingerprint implements avro.BinaryRecord.
func (*PurchaseOrderClosed) AvroFingerprint() string { return purchaseOrderClosedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends p's Avro body, in the
// schema's field order.
func (p *PurchaseOrderClosed) AppendAvro(dst []byte) ([]byte, error) {
	dst = p.appendAvro(dst)
	dst = avro.AppendString(dst, p.PONumber)
	dst = avro.AppendString(dst, p.Reason)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets p to the closure in
// body, an Avro body written with the canonical schema, and leaves p as it
// was when body is not one.
func (p *PurchaseOrderClosed) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d PurchaseOrderClosed
	d.Meta = readMeta(&r, new(string))
	d.PONumber = r.ReadString("po_number")
	d.Reason = r.ReadString("reason")
	if err := r.End(); err != nil {
		return err
	}
	*p = d
	return nil
}
