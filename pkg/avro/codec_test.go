package avro_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
)

func ptr[T any](v T) *T { return &v }

var t0 = time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)

func meta(id string) events.Meta {
	return events.Meta{EventID: id, EventTime: t0, Source: "wms-test", CorrelationID: ptr("corr-" + id)}
}

// samples has one populated value of every record type.
func samples() []avro.Record {
	day := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	return []avro.Record{
		&events.InventoryReceived{Meta: meta("r1"), SKU: "SKU-1", Location: "DC1", Quantity: 12, UoM: "CS", PONumber: ptr("PO-9"), POLine: ptr(int32(2)), ASNID: nil},
		&events.InventoryPicked{Meta: meta("p1"), SKU: "SKU-1", Location: "DC1", Quantity: 3, UoM: "EA", OrderID: "O-1", LineID: "1"},
		&events.InventoryCounted{Meta: meta("c1"), SKU: "SKU-1", Location: "DC1", CountedQuantity: 40, UoM: "EA", AsOf: t0.Add(-time.Hour)},
		&events.InventoryAdjusted{Meta: meta("a1"), SKU: "SKU-1", Location: "DC1", Quantity: -2, UoM: "EA", Reason: "damaged"},
		&events.InventoryShipped{Meta: meta("s1"), SKU: "SKU-1", Location: "DC1", Quantity: 3, UoM: "EA", OrderID: "O-1", LineID: "1", ShipmentID: "SH-1"},
		&events.OrderAccepted{Meta: meta("o1"), OrderID: "O-1", Channel: "web", HoldID: ptr("H-1"), Lines: []events.OrderLine{
			{LineID: "1", SKU: "SKU-1", Location: ptr("DC1"), Quantity: 3, UoM: "EA"},
			{LineID: "2", SKU: "SKU-2", Group: ptr("EU"), Quantity: 1, UoM: "EA"},
		}},
		&events.OrderCancelled{Meta: meta("oc1"), OrderID: "O-1", LineIDs: []string{"2"}},
		&events.OrderAllocated{Meta: meta("oa1"), OrderID: "O-1", LineID: "2", SKU: "SKU-2", Location: "DC2"},
		&events.PurchaseOrderReleased{Meta: meta("po1"), PONumber: "PO-9", SupplierID: "SUP-1", Lines: []events.PurchaseOrderLine{
			{POLine: 1, SKU: "SKU-1", Location: "DC1", Quantity: 100, UoM: "EA", ExpectedDate: day},
		}},
		&events.PurchaseOrderAcknowledged{Meta: meta("ack1"), PONumber: "PO-9", SupplierID: "SUP-1", Lines: []events.AcknowledgedLine{
			{POLine: 1, Status: events.AckChanged, Quantity: 80, ExpectedDate: day.AddDate(0, 0, 2)},
		}},
		&events.AdvanceShipNotice{Meta: meta("asn1"), ASNID: "ASN-1", PONumber: "PO-9", SupplierID: "SUP-1", ETA: t0.Add(48 * time.Hour), Lines: []events.AdvanceShipNoticeLine{
			{POLine: 1, SKU: "SKU-1", Quantity: 80, UoM: "EA"},
		}},
		&events.PurchaseOrderClosed{Meta: meta("pc1"), PONumber: "PO-9", Reason: "complete"},
		&events.ItemMaster{Meta: meta("im1"), SKU: "SKU-1", BaseUoM: "EA", Conversions: map[string]int64{"CS": 12, "PL": 480},
			SafetyStock: map[string]int64{"DC1": 5}, ReorderPoint: map[string]int64{"DC1": 20}, LeadTimeDays: 7},
		&events.LedgerEntry{EntryType: events.EntryReceipt, SKU: "SKU-1", Location: ptr("DC1"), Quantity: 144, PONumber: ptr("PO-9"), POLine: ptr(int32(1)),
			ExpectedDate: ptr(day), ETA: ptr(t0), EventID: "r1", EventTime: t0, Source: "wms-test", SourceTopic: ptr("wms.inventory.v1"),
			SourcePartition: ptr(int32(3)), SourceOffset: ptr(int64(77)), ChannelRules: ptr("web=cap:50%"),
			DecidedATP: ptr(int64(-3)), DecidedAt: ptr(int64(41)), DecidedEpoch: ptr(int64(2))},
		&events.AvailabilityChanged{SKU: "SKU-1", Location: "DC1", Version: 9, OnHand: 50, Reserved: 3, SafetyStock: 5, ATP: 42,
			Inbound: []events.InboundBucket{{Date: day, Quantity: 80}}, AsOf: t0},
		&events.StockAlert{AlertID: "al-1", AlertType: events.AlertStockOut, SKU: "SKU-1", Location: "DC1", AsOf: t0},
	}
}

func newCodec(t testing.TB) *avro.Codec {
	t.Helper()
	c, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTripEveryRecord(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t)
	for _, rec := range samples() {
		t.Run(rec.AvroName(), func(t *testing.T) {
			b, err := c.Encode(ctx, "topic", rec)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != 0 {
				t.Fatalf("magic byte %d", b[0])
			}
			got, err := c.Decode(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", got, rec)
			}
		})
	}
}

func TestWireHeaderCarriesManifestID(t *testing.T) {
	c := newCodec(t)
	b, err := c.Encode(context.Background(), "wms.inventory.v1", samples()[0])
	if err != nil {
		t.Fatal(err)
	}
	if id := binary.BigEndian.Uint32(b[1:5]); id != 1001 {
		t.Fatalf("InventoryReceived written with id %d, manifest says 1001", id)
	}
}

// evolvedCodec is a codec whose registry also knows an older and a newer
// writer schema for InventoryAdjusted, under ids 1 and 2.
func evolvedCodec(t *testing.T) (*avro.Codec, map[int]string) {
	t.Helper()
	canon, builtin, err := events.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	all := map[int]string{}
	for id := 1001; id <= 1016; id++ {
		s, err := builtin.SchemaByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		all[id] = s
	}
	// Older: no correlation_id, no uom (both have defaults in the canonical schema).
	all[1] = `{"type":"record","name":"InventoryAdjusted","namespace":"stockflow.v1","fields":[
		{"name":"event_id","type":"string"},
		{"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"source","type":"string"},
		{"name":"sku","type":"string"},{"name":"location","type":"string"},
		{"name":"quantity","type":"long"},{"name":"reason","type":"string"}]}`
	// Newer: an extra field in the middle, and one at the end.
	all[2] = `{"type":"record","name":"InventoryAdjusted","namespace":"stockflow.v1","fields":[
		{"name":"event_id","type":"string"},
		{"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"source","type":"string"},
		{"name":"correlation_id","type":["null","string"],"default":null},
		{"name":"operator","type":"string","default":""},
		{"name":"sku","type":"string"},{"name":"location","type":"string"},
		{"name":"quantity","type":"long"},{"name":"uom","type":"string","default":"EA"},
		{"name":"reason","type":"string"},
		{"name":"lot","type":["null","string"],"default":null}]}`
	// A writer lacking a field the canonical schema has no default for.
	all[3] = `{"type":"record","name":"InventoryAdjusted","namespace":"stockflow.v1","fields":[
		{"name":"event_id","type":"string"}]}`
	reg, err := avro.NewBuiltin(all)
	if err != nil {
		t.Fatal(err)
	}
	c, err := avro.New(avro.Config{Registry: reg, Canonical: canon, Types: events.All()})
	if err != nil {
		t.Fatal(err)
	}
	return c, all
}

// encodeWith writes native data under a given id with a given writer schema.
func encodeWith(t *testing.T, id int, schema string, native map[string]any) []byte {
	t.Helper()
	gc, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	b, err = gc.BinaryFromNative(b, native)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOlderWriterDecodesWithDefaults(t *testing.T) {
	c, all := evolvedCodec(t)
	b := encodeWith(t, 1, all[1], map[string]any{
		"event_id": "e-old", "event_time": t0, "source": "legacy-wms",
		"sku": "SKU-1", "location": "DC1", "quantity": int64(-4), "reason": "shrink",
	})
	got, err := c.Decode(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	want := &events.InventoryAdjusted{Meta: events.Meta{EventID: "e-old", EventTime: t0, Source: "legacy-wms"},
		SKU: "SKU-1", Location: "DC1", Quantity: -4, UoM: "EA", Reason: "shrink"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestNewerWriterExtraFieldsIgnored(t *testing.T) {
	c, all := evolvedCodec(t)
	b := encodeWith(t, 2, all[2], map[string]any{
		"event_id": "e-new", "event_time": t0, "source": "wms-2",
		"correlation_id": map[string]any{"string": "c-9"}, "operator": "jo",
		"sku": "SKU-1", "location": "DC1", "quantity": int64(6), "uom": "CS", "reason": "found",
		"lot": map[string]any{"string": "L-1"},
	})
	got, err := c.Decode(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	want := &events.InventoryAdjusted{Meta: events.Meta{EventID: "e-new", EventTime: t0, Source: "wms-2", CorrelationID: ptr("c-9")},
		SKU: "SKU-1", Location: "DC1", Quantity: 6, UoM: "CS", Reason: "found"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestDecodeErrorClasses(t *testing.T) {
	ctx := context.Background()
	c, all := evolvedCodec(t)
	good, err := c.Encode(ctx, "t", samples()[0])
	if err != nil {
		t.Fatal(err)
	}
	unknownID := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(unknownID[1:5], 4242)
	corrupt := append([]byte(nil), good[:5]...)
	corrupt = append(corrupt, 0x03) // odd zig-zag: negative string length
	trailing := append(append([]byte(nil), good...), 0x00, 0x01)
	small, err := avro.New(avro.Config{Registry: mustBuiltin(t), Canonical: mustCanon(t), Types: events.All(), MaxRecordBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	noGoType, err := avro.New(avro.Config{Registry: mustBuiltin(t), Canonical: mustCanon(t), Types: []avro.Record{&events.InventoryPicked{}}})
	if err != nil {
		t.Fatal(err)
	}
	missing := encodeWith(t, 3, all[3], map[string]any{"event_id": "x"})

	cases := []struct {
		name  string
		codec *avro.Codec
		in    []byte
		class avro.Class
		want  error
	}{
		{"empty", c, nil, avro.ClassTruncated, avro.ErrTruncated},
		{"bad magic", c, append([]byte{1}, good[1:]...), avro.ClassBadMagic, avro.ErrBadMagic},
		{"json instead of avro", c, []byte(`{"sku":"x"}`), avro.ClassBadMagic, avro.ErrBadMagic},
		{"short header", c, good[:3], avro.ClassTruncated, avro.ErrTruncated},
		{"unknown schema id", c, unknownID, avro.ClassUnknownSchema, avro.ErrUnknownSchema},
		{"truncated body", c, good[:len(good)-4], avro.ClassTruncated, avro.ErrTruncated},
		{"corrupt body", c, corrupt, avro.ClassCorrupt, avro.ErrCorrupt},
		{"trailing bytes", c, trailing, avro.ClassCorrupt, avro.ErrCorrupt},
		{"oversized", small, good, avro.ClassOversized, avro.ErrOversized},
		{"unexpected type", noGoType, good, avro.ClassUnexpectedType, avro.ErrUnexpectedType},
		{"writer lacks a required field", c, missing, avro.ClassSchemaMismatch, avro.ErrSchemaMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.codec.Decode(ctx, tc.in)
			if err == nil {
				t.Fatal("decoded without error")
			}
			var de *avro.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if de.Class != tc.class || avro.ClassOf(err) != tc.class {
				t.Fatalf("class %q, want %q (%v)", de.Class, tc.class, err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("errors.Is(%v, %v) is false", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want.Error()) {
				t.Fatalf("message %q does not name the cause", err)
			}
		})
	}
}

func mustCanon(t *testing.T) map[string]string {
	c, _, err := events.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustBuiltin(t *testing.T) avro.Registry {
	_, b, err := events.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSchemaRegistryRoundTripAndCache(t *testing.T) {
	ctx := context.Background()
	fake := srfake.New()
	defer fake.Close()
	var gets int
	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			gets++
		}
		return false
	})
	reg, err := avro.NewSchemaRegistry(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	producer, err := events.NewCodec(reg, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := samples()[3]
	b, err := producer.Encode(ctx, "wms.inventory.v1", rec)
	if err != nil {
		t.Fatal(err)
	}
	subject := "wms.inventory.v1-stockflow.v1.InventoryAdjusted"
	ss, ok := fake.GetSchema(subject, 1)
	if !ok {
		t.Fatalf("subject %s not registered (TopicRecordNameStrategy)", subject)
	}
	if id := int(binary.BigEndian.Uint32(b[1:5])); id != ss.ID {
		t.Fatalf("record written with id %d, registry assigned %d", id, ss.ID)
	}

	// A separate consumer resolves the id through the registry, once.
	gets = 0
	consumerReg, err := avro.NewSchemaRegistry(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := events.NewCodec(consumerReg, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got, err := consumer.Decode(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Fatalf("got %+v", got)
		}
	}
	if gets != 1 {
		t.Fatalf("registry asked %d times for the id, want 1 (cached)", gets)
	}

	// An id the registry does not know is a decode error, not an outage.
	unknown := append([]byte(nil), b...)
	binary.BigEndian.PutUint32(unknown[1:5], 999999)
	if _, err := consumer.Decode(ctx, unknown); avro.ClassOf(err) != avro.ClassUnknownSchema {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestRegistryOutageIsNotADecodeError(t *testing.T) {
	fake := srfake.New()
	url := fake.URL()
	fake.Close()
	reg, err := avro.NewSchemaRegistry(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := events.NewCodec(reg, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0, 0, 0, 0, 7, 2, 'x'}
	_, err = c.Decode(context.Background(), b)
	if err == nil {
		t.Fatal("decoded with the registry down")
	}
	if avro.ClassOf(err) != "" {
		t.Fatalf("registry outage classed as %q: it would be dead-lettered instead of retried", avro.ClassOf(err))
	}
}
