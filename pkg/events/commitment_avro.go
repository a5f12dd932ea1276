package events

import (
	"github.com/stockflow/stockflow/pkg/avro"
)

// CommitmentChanged has a hand-written Avro codec (avro.BinaryRecord), as
// AvailabilityChanged has: the folder writes one for every order line
// promise a fold changes, which made the reflective path a tenth of the
// fold's CPU. The codec writes schemas/CommitmentChanged.avsc field by
// field, byte for byte as goavro does; tests in pkg/avro check that on
// random records and fuzz the decoder against goavro's.
//
// When the schema changes, the codec must change with it: pkg/avro refuses
// to build a codec while commitmentChangedFingerprint is not the canonical
// schema's, and its error names the fingerprint to put here once the
// methods below follow the new schema.
const commitmentChangedFingerprint = "408ac8330ece0ff70812f1666808d828b3d0bc407dd09fe3a70f9b67282486e3"

// promisedQuantityMinBytes is the fewest bytes a PromisedQuantity takes: a
// one-byte date and a one-byte quantity.
const promisedQuantityMinBytes = 2

// AvroFingerprint implements avro.BinaryRecord.
func (*CommitmentChanged) AvroFingerprint() string { return commitmentChangedFingerprint }

// AppendAvro implements avro.BinaryRecord: it appends c's Avro body, in the
// schema's field order.
func (c *CommitmentChanged) AppendAvro(dst []byte) ([]byte, error) {
	dst = avro.AppendString(dst, c.CommitmentID)
	dst = avro.AppendString(dst, c.OrderID)
	dst = avro.AppendString(dst, c.LineID)
	dst = avro.AppendString(dst, c.SKU)
	dst = avro.AppendString(dst, c.Location)
	dst = avro.AppendOptional(dst, c.Channel, avro.AppendString)
	dst = appendLinePromise(dst, c.Promise)
	dst = avro.AppendOptional(dst, c.Previous, appendLinePromise)
	dst = avro.AppendBoolean(dst, c.Late)
	dst = avro.AppendString(dst, c.CauseEventID)
	dst = avro.AppendString(dst, c.CauseEntryType)
	dst = avro.AppendOptional(dst, c.CausePONumber, avro.AppendString)
	dst = avro.AppendOptional(dst, c.CauseASNID, avro.AppendString)
	dst = avro.AppendOptional(dst, c.CorrelationID, avro.AppendString)
	dst = avro.AppendTimestampMillis(dst, c.CauseTime)
	return dst, nil
}

func appendLinePromise(dst []byte, p LinePromise) []byte {
	dst = avro.AppendLong(dst, p.OpenQuantity)
	dst = avro.AppendLong(dst, p.ConfirmedNow)
	// Writing a timestamp and a long cannot fail.
	dst, _ = avro.AppendArray(dst, p.Promised, func(dst []byte, q PromisedQuantity) ([]byte, error) {
		return avro.AppendLong(avro.AppendTimestampMillis(dst, q.Date), q.Quantity), nil
	})
	return avro.AppendLong(dst, p.Unpromised)
}

// UnmarshalAvro implements avro.BinaryRecord: it sets c to the record in
// body, an Avro body written with the canonical schema, and leaves c as it
// was when body is not one.
func (c *CommitmentChanged) UnmarshalAvro(body []byte) error {
	r := avro.NewReader(body)
	opt := new([4]string) // the optional strings, in one allocation
	var d CommitmentChanged
	d.CommitmentID = r.ReadString("commitment_id")
	d.OrderID = r.ReadString("order_id")
	d.LineID = r.ReadString("line_id")
	d.SKU = r.ReadString("sku")
	d.Location = r.ReadString("location")
	d.Channel = r.ReadOptionalString("channel", &opt[0])
	d.Promise = readLinePromise(&r, &promiseFields)
	if r.ReadPresent("previous") {
		p := readLinePromise(&r, &previousFields)
		d.Previous = &p
	}
	d.Late = r.ReadBoolean("late")
	d.CauseEventID = r.ReadString("cause_event_id")
	d.CauseEntryType = r.ReadString("cause_entry_type")
	d.CausePONumber = r.ReadOptionalString("cause_po_number", &opt[1])
	d.CauseASNID = r.ReadOptionalString("cause_asn_id", &opt[2])
	d.CorrelationID = r.ReadOptionalString("correlation_id", &opt[3])
	d.CauseTime = r.ReadTimestampMillis("cause_time")
	if err := r.End(); err != nil {
		return err
	}
	*c = d
	return nil
}

// linePromiseFields name a LinePromise's fields where it is read, for the
// errors (built once, not at every read).
type linePromiseFields struct {
	open, confirmed, promised, date, quantity, unpromised string
}

func fieldsOf(name string) linePromiseFields {
	return linePromiseFields{name + ".open_quantity", name + ".confirmed_now", name + ".promised",
		name + ".promised.date", name + ".promised.quantity", name + ".unpromised"}
}

var promiseFields, previousFields = fieldsOf("promise"), fieldsOf("previous")

func readLinePromise(r *avro.Reader, f *linePromiseFields) LinePromise {
	var p LinePromise
	p.OpenQuantity = r.ReadLong(f.open)
	p.ConfirmedNow = r.ReadLong(f.confirmed)
	p.Promised = avro.ReadArray(r, f.promised, promisedQuantityMinBytes, func(r *avro.Reader, _ string) PromisedQuantity {
		return PromisedQuantity{Date: r.ReadTimestampMillis(f.date), Quantity: r.ReadLong(f.quantity)}
	})
	p.Unpromised = r.ReadLong(f.unpromised)
	return p
}
