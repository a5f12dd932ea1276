package events

import (
	"github.com/stockflow/stockflow/pkg/avro"
)

// The order events' hand-written Avro codecs; see inventory_avro.go.
const (
	orderAcceptedFingerprint  = "8d9df9ed4cf548ced053c83b2bd6160d35e80d3411e33c2a32cd2ce5affe9381"
	orderCancelledFingerprint = "bcdfc8c0ee7fca239aff68007cc8019ee8b09d841e34020857859c282b3a9e52"
	orderAllocatedFingerprint = "7740e09676a3c4eace85237d307702169e5ec076a12a5ba0811a4cd8829844ab"
)

// orderLineMinBytes is the fewest bytes an OrderLine takes: two empty
// strings, two nulls, a one-byte quantity and an empty unit.
const orderLineMinBytes = 6

// AvroFingerprint implements avro.BinaryRecord.
func (*OrderAccepted) AvroFingerprint() string { return orderAcceptedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends o's Avro body, in the
// schema's field order.
func (o *OrderAccepted) AppendAvro(dst []byte) ([]byte, error) {
	dst = o.appendAvro(dst)
	dst = avro.AppendString(dst, o.OrderID)
	dst = avro.AppendString(dst, o.Channel)
	dst = avro.AppendOptional(dst, o.HoldID, avro.AppendString)
	return avro.AppendArray(dst, o.Lines, appendOrderLine)
}

func appendOrderLine(dst []byte, l OrderLine) ([]byte, error) {
	dst = avro.AppendString(dst, l.LineID)
	dst = avro.AppendString(dst, l.SKU)
	dst = avro.AppendOptional(dst, l.Location, avro.AppendString)
	dst = avro.AppendOptional(dst, l.Group, avro.AppendString)
	dst = avro.AppendLong(dst, l.Quantity)
	dst = avro.AppendString(dst, l.UoM)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets o to the order in
// body, an Avro body written with the canonical schema, and leaves o as it
// was when body is not one.
func (o *OrderAccepted) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	// The values the optional fields point to: the order's two, then two
	// per line.
	vals := make([]string, 0, 4)
	var d OrderAccepted
	d.Meta = readMeta(&r, spare(&vals))
	d.OrderID = r.ReadString("order_id")
	d.Channel = r.ReadString("channel")
	d.HoldID = r.ReadOptionalString("hold_id", spare(&vals))
	d.Lines = avro.ReadArray(&r, "lines", orderLineMinBytes, func(r *avro.Reader, _ string) OrderLine {
		return OrderLine{
			LineID:   r.ReadString("lines.line_id"),
			SKU:      r.ReadString("lines.sku"),
			Location: r.ReadOptionalString("lines.location", spare(&vals)),
			Group:    r.ReadOptionalString("lines.group", spare(&vals)),
			Quantity: r.ReadLong("lines.quantity"),
			UoM:      r.ReadString("lines.uom"),
		}
	})
	if err := r.End(); err != nil {
		return err
	}
	*o = d
	return nil
}

// spare appends an empty string to *vals and returns a pointer to it, a
// place for an optional field's value. A pointer into an earlier backing
// array stays valid when append moves on to a larger one.
func spare(vals *[]string) *string {
	*vals = append(*vals, "")
	return &(*vals)[len(*vals)-1]
}

// AvroFingerprint implements avro.BinaryRecord.
func (*OrderCancelled) AvroFingerprint() string { return orderCancelledFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends o's Avro body, in the
// schema's field order.
func (o *OrderCancelled) AppendAvro(dst []byte) ([]byte, error) {
	dst = o.appendAvro(dst)
	dst = avro.AppendString(dst, o.OrderID)
	return avro.AppendArray(dst, o.LineIDs, appendStringItem)
}

func appendStringItem(dst []byte, s string) ([]byte, error) {
	return avro.AppendString(dst, s), nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets o to the cancellation
// in body, an Avro body written with the canonical schema, and leaves o as
// it was when body is not one.
func (o *OrderCancelled) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d OrderCancelled
	d.Meta = readMeta(&r, new(string))
	d.OrderID = r.ReadString("order_id")
	d.LineIDs = avro.ReadArray(&r, "line_ids", 1, (*avro.Reader).ReadString)
	if err := r.End(); err != nil {
		return err
	}
	*o = d
	return nil
}

// AvroFingerprint implements avro.BinaryRecord.
func (*OrderAllocated) AvroFingerprint() string { return orderAllocatedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends o's Avro body, in the
// schema's field order.
func (o *OrderAllocated) AppendAvro(dst []byte) ([]byte, error) {
	dst = o.appendAvro(dst)
	dst = avro.AppendString(dst, o.OrderID)
	dst = avro.AppendString(dst, o.LineID)
	dst = avro.AppendString(dst, o.SKU)
	dst = avro.AppendString(dst, o.Location)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets o to the allocation
// in body, an Avro body written with the canonical schema, and leaves o as
// it was when body is not one.
func (o *OrderAllocated) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d OrderAllocated
	d.Meta = readMeta(&r, new(string))
	d.OrderID = r.ReadString("order_id")
	d.LineID = r.ReadString("line_id")
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	if err := r.End(); err != nil {
		return err
	}
	*o = d
	return nil
}
