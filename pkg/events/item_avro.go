package events

import (
	"github.com/stockflow/stockflow/pkg/avro"
)

// ItemMaster's hand-written Avro codec; see inventory_avro.go. Its maps are
// written in Go's map order, as goavro writes them (see avro.AppendMap).
const itemMasterFingerprint = "7a3be8280639bf5638a1052335516582bf490e349fe6f4b49b636ecd6ae73294"

// longValueMinBytes is the fewest bytes a long map value takes.
const longValueMinBytes = 1

// AvroFingerprint implements avro.BinaryRecord.
func (*ItemMaster) AvroFingerprint() string { return itemMasterFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends m's Avro body, in the
// schema's field order.
func (m *ItemMaster) AppendAvro(dst []byte) ([]byte, error) {
	dst = m.appendAvro(dst)
	dst = avro.AppendString(dst, m.SKU)
	dst = avro.AppendString(dst, m.BaseUoM)
	dst = avro.AppendMap(dst, m.Conversions, avro.AppendLong)
	dst = avro.AppendMap(dst, m.SafetyStock, avro.AppendLong)
	dst = avro.AppendMap(dst, m.ReorderPoint, avro.AppendLong)
	dst = avro.AppendInt(dst, m.LeadTimeDays)
	return dst, nil
}

// UnmarshalAvro implements avro.BinaryRecord: it sets m to the item in
// body, an Avro body written with the canonical schema, and leaves m as it
// was when body is not one.
func (m *ItemMaster) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	var d ItemMaster
	d.Meta = readMeta(&r, new(string))
	d.SKU = r.ReadString("sku")
	d.BaseUoM = r.ReadString("base_uom")
	d.Conversions = avro.ReadMap(&r, "conversions", longValueMinBytes, (*avro.Reader).ReadLong)
	d.SafetyStock = avro.ReadMap(&r, "safety_stock", longValueMinBytes, (*avro.Reader).ReadLong)
	d.ReorderPoint = avro.ReadMap(&r, "reorder_point", longValueMinBytes, (*avro.Reader).ReadLong)
	d.LeadTimeDays = r.ReadInt("lead_time_days")
	if err := r.End(); err != nil {
		return err
	}
	*m = d
	return nil
}
