package events

import (
	"fmt"

	"github.com/stockflow/stockflow/pkg/avro"
)

// StockAlert has a hand-written Avro codec (avro.BinaryRecord), as
// LedgerEntry has. The codec writes schemas/StockAlert.avsc field by field,
// byte for byte as goavro does; tests in pkg/avro check that on random
// alerts and fuzz the decoder against goavro's.
//
// When the schema changes, the codec must change with it: pkg/avro refuses
// to build a codec while stockAlertFingerprint is not the canonical
// schema's, and its error names the fingerprint to put here once the
// methods below follow the new schema.
const stockAlertFingerprint = "b89c8787b84abd6e5affee629837f88a7a36032ec7072060ff67b4247d40a243"

// alertTypes are the symbols of the AlertType enum, in schema order.
var alertTypes = []string{AlertReplenishmentNeeded, AlertStockOut, AlertBackInStock, AlertNegativeOnHand}

// AvroFingerprint implements avro.BinaryRecord.
func (*StockAlert) AvroFingerprint() string { return stockAlertFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends s's Avro body, in the
// schema's field order.
func (s *StockAlert) AppendAvro(dst []byte) ([]byte, error) {
	dst = avro.AppendString(dst, s.AlertID)
	dst, err := avro.AppendEnum(dst, alertTypes, s.AlertType)
	if err != nil {
		return nil, fmt.Errorf("alert_type: %w", err)
	}
	dst = avro.AppendString(dst, s.SKU)
	dst = avro.AppendString(dst, s.Location)
	dst = avro.AppendLong(dst, s.ATP)
	dst = avro.AppendLong(dst, s.OnHand)
	dst = avro.AppendLong(dst, s.ReorderPoint)
	dst = avro.AppendLong(dst, s.SuggestedQuantity)
	dst = avro.AppendTimestampMillis(dst, s.AsOf)
	dst = avro.AppendOptional(dst, s.CorrelationID, avro.AppendString)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets s to the alert in
// body, an Avro body written with the canonical schema, and leaves s as it
// was when body is not one.
func (s *StockAlert) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	correlationID := new(string)
	var d StockAlert
	d.AlertID = r.ReadString("alert_id")
	d.AlertType = r.ReadEnum("alert_type", alertTypes)
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	d.ATP = r.ReadLong("atp")
	d.OnHand = r.ReadLong("on_hand")
	d.ReorderPoint = r.ReadLong("reorder_point")
	d.SuggestedQuantity = r.ReadLong("suggested_quantity")
	d.AsOf = r.ReadTimestampMillis("as_of")
	d.CorrelationID = r.ReadOptionalString("correlation_id", correlationID)
	if err := r.End(); err != nil {
		return err
	}
	*s = d
	return nil
}
