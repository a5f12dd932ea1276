package events

import (
	"fmt"
	"slices"

	"github.com/stockflow/stockflow/pkg/avro"
)

// AvailabilityChanged has a hand-written Avro codec (avro.BinaryRecord), as
// LedgerEntry has: the folder writes one for every position a poll changes.
// The codec writes schemas/AvailabilityChanged.avsc field by field, byte for
// byte as goavro does; tests in pkg/avro check that on random records and
// fuzz the decoder against goavro's.
//
// When the schema changes, the codec must change with it: pkg/avro refuses
// to build a codec while availabilityChangedFingerprint is not the
// canonical schema's, and its error names the fingerprint to put here once
// the methods below follow the new schema.
const availabilityChangedFingerprint = "556adc607c2c9add5be5cc8dd8a811435b45d74de17291911122bd868352fe0f"

// inboundBucketMinBytes is the fewest bytes an InboundBucket takes: a
// one-byte date and a one-byte quantity.
const inboundBucketMinBytes = 2

// AvroFingerprint implements avro.BinaryRecord.
func (*AvailabilityChanged) AvroFingerprint() string { return availabilityChangedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends a's Avro body, in the
// schema's field order.
func (a *AvailabilityChanged) AppendAvro(dst []byte) ([]byte, error) {
	dst = avro.AppendString(dst, a.SKU)
	dst = avro.AppendString(dst, a.Location)
	dst = avro.AppendLong(dst, a.Version)
	dst = avro.AppendLong(dst, a.OnHand)
	dst = avro.AppendLong(dst, a.Reserved)
	dst = avro.AppendLong(dst, a.Picked)
	dst = avro.AppendLong(dst, a.Held)
	dst = avro.AppendLong(dst, a.SafetyStock)
	dst = avro.AppendLong(dst, a.ReorderPoint)
	dst, err := avro.AppendArray(dst, a.Inbound, appendInboundBucket)
	if err != nil {
		return nil, fmt.Errorf("inbound: %w", err)
	}
	dst = avro.AppendLong(dst, a.ATP)
	dst = avro.AppendLong(dst, a.Shortfall)
	dst = avro.AppendTimestampMillis(dst, a.AsOf)
	dst = avro.AppendOptional(dst, a.CorrelationID, avro.AppendString)
	return dst, nil
}

func appendInboundBucket(dst []byte, b InboundBucket) ([]byte, error) {
	dst, err := avro.AppendDate(dst, b.Date)
	if err != nil {
		return nil, fmt.Errorf("date: %w", err)
	}
	return avro.AppendLong(dst, b.Quantity), nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets a to the record in
// body, an Avro body written with the canonical schema, and leaves a as it
// was when body is not one.
func (a *AvailabilityChanged) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	correlationID := new(string)
	var d AvailabilityChanged
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	d.Version = r.ReadLong("version")
	d.OnHand = r.ReadLong("on_hand")
	d.Reserved = r.ReadLong("reserved")
	d.Picked = r.ReadLong("picked")
	d.Held = r.ReadLong("held")
	d.SafetyStock = r.ReadLong("safety_stock")
	d.ReorderPoint = r.ReadLong("reorder_point")
	for n := r.ReadBlockCount("inbound"); n > 0; n = r.ReadBlockCount("inbound") {
		d.Inbound = slices.Grow(d.Inbound, r.Fit(n, inboundBucketMinBytes))
		for ; n > 0 && !r.Failed(); n-- {
			d.Inbound = append(d.Inbound, InboundBucket{
				Date:     r.ReadDate("inbound.date"),
				Quantity: r.ReadLong("inbound.quantity"),
			})
		}
	}
	d.ATP = r.ReadLong("atp")
	d.Shortfall = r.ReadLong("shortfall")
	d.AsOf = r.ReadTimestampMillis("as_of")
	d.CorrelationID = r.ReadOptionalString("correlation_id", correlationID)
	if err := r.End(); err != nil {
		return err
	}
	*a = d
	return nil
}
