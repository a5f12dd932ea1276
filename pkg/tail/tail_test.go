package tail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/tail"
)

// at is when every test record was produced.
var at = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func received(sku string, qty int64, uom string) *events.InventoryReceived {
	return &events.InventoryReceived{
		Meta:     events.Meta{EventID: "ev-" + sku, EventTime: at, Source: "wms"},
		SKU:      sku,
		Location: "DC-EAST",
		Quantity: qty,
		UoM:      uom,
	}
}

func availability(sku, loc string, atp int64) *events.AvailabilityChanged {
	return &events.AvailabilityChanged{SKU: sku, Location: loc, Version: 3, OnHand: atp + 2, Reserved: 2, ATP: atp, AsOf: at}
}

// cluster is an in-process Kafka holding a few records of each kind on
// single-partition topics, so records come in the order produced.
func cluster(t *testing.T) (config.Config, *kgo.Client) {
	t.Helper()
	cfg := config.Default()
	tp := cfg.Topics
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(1, tp.Inventory, tp.Orders, tp.Availability, tp.DLQ, tp.Index))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Kafka.Brokers = c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enc := func(topic string, rec avro.Record) []byte {
		b, err := codec.Encode(ctx, topic, rec)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	idxKey, idxValue := ledger.IndexRecord(ledger.Doc{Kind: ledger.OrderDoc, ID: "O-2"},
		ledger.IndexedLine{Line: "1", SKU: "SKU-2", Location: "DC-EAST"})
	dlHeaders := func(class, msg string, offset string) []kgo.RecordHeader {
		return []kgo.RecordHeader{
			{Key: deadletter.HeaderSourceTopic, Value: []byte(tp.Inventory)},
			{Key: deadletter.HeaderSourcePartition, Value: []byte("0")},
			{Key: deadletter.HeaderSourceOffset, Value: []byte(offset)},
			{Key: deadletter.HeaderErrorClass, Value: []byte(class)},
			{Key: deadletter.HeaderErrorMessage, Value: []byte(msg)},
			{Key: deadletter.HeaderErrorTime, Value: []byte(at.Format(time.RFC3339Nano))},
		}
	}
	recs := []*kgo.Record{
		{Topic: tp.Inventory, Key: []byte("SKU-1"), Value: enc(tp.Inventory, received("SKU-1", 24, "EA"))},
		{Topic: tp.Inventory, Key: []byte("SKU-2"), Value: []byte("not avro")},
		{Topic: tp.Inventory, Key: []byte("SKU-2"), Value: enc(tp.Inventory, received("SKU-2", 6, "EA"))},

		{Topic: tp.Orders, Key: []byte("O-1"), Value: enc(tp.Orders, &events.OrderAccepted{
			Meta: events.Meta{EventID: "ev-o1", EventTime: at, Source: "oms"}, OrderID: "O-1", Channel: "web",
			Lines: []events.OrderLine{{LineID: "1", SKU: "SKU-1", Location: ptr("DC-EAST"), Quantity: 2, UoM: "EA"}},
		})},
		{Topic: tp.Orders, Key: []byte("O-2"), Value: enc(tp.Orders, &events.OrderAccepted{
			Meta: events.Meta{EventID: "ev-o2", EventTime: at, Source: "oms"}, OrderID: "O-2", Channel: "stores",
			Lines: []events.OrderLine{
				{LineID: "1", SKU: "SKU-2", Location: ptr("DC-EAST"), Quantity: 1, UoM: "EA"},
				{LineID: "2", SKU: "SKU-3", Group: ptr("DCS"), Quantity: 4, UoM: "EA"},
			},
		})},

		{Topic: tp.Availability, Key: []byte("SKU-1|DC-EAST"), Value: enc(tp.Availability, availability("SKU-1", "DC-EAST", 22))},
		{Topic: tp.Availability, Key: []byte("SKU-2|DC-EAST"), Value: enc(tp.Availability, availability("SKU-2", "DC-EAST", 5))},

		{Topic: tp.DLQ, Key: []byte("SKU-2"), Value: enc(tp.Inventory, received("SKU-2", 1, "PALLET")),
			Headers: dlHeaders("unknown_uom", "no conversion from PALLET for SKU-2", "7")},
		{Topic: tp.DLQ, Key: []byte("SKU-3"), Value: []byte(`{"sku":"SKU-3"}`),
			Headers: dlHeaders("bad_magic", "not Confluent wire format: magic byte is not 0", "8")},

		{Topic: tp.Index, Key: idxKey, Value: idxValue},
	}
	for _, r := range recs {
		r.Timestamp = at
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return cfg, cl
}

// lockedBuffer is the tail's output, read while the tail writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSuffix(b.b.String(), "\n"), "\n")
}

// tailing is a tail running in the background.
type tailing struct {
	out    *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg config.Config, o tail.Options) *tailing {
	t.Helper()
	out := &lockedBuffer{}
	o.Out = out
	tl, err := tail.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tg := &tailing{out: out, cancel: cancel, done: make(chan error, 1)}
	go func() { tg.done <- tl.Run(ctx) }()
	t.Cleanup(func() { tg.stop(t) })
	return tg
}

// waitLines waits until the tail has printed n lines and returns them.
func (tg *tailing) waitLines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines := tg.out.lines()
		if len(lines) >= n && lines[0] != "" {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d lines, have %d:\n%s", n, len(lines), strings.Join(lines, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop interrupts the tail, which then ends without an error.
func (tg *tailing) stop(t *testing.T) {
	t.Helper()
	tg.cancel()
	select {
	case err, ok := <-tg.done:
		if ok && err != nil {
			t.Errorf("tail ended with %v after its context was cancelled; want nil", err)
		}
		if ok {
			close(tg.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop within 10s of its context being cancelled")
	}
}

func TestTailTable(t *testing.T) {
	cfg, _ := cluster(t)
	const header = "OFFSET    TIME                     KEY                    TYPE                      SUMMARY"
	for _, tc := range []struct {
		name string
		opts tail.Options
		want []string
	}{
		{
			name: "inventory, a record that cannot be decoded among them",
			opts: tail.Options{Topic: "inventory"},
			want: []string{
				header,
				"0:0       2025-03-01T12:00:00.000Z SKU-1                  InventoryReceived         received 24 EA of SKU-1 at DC-EAST",
				"0:1       2025-03-01T12:00:00.000Z SKU-2                  undecodable               bad_magic: not Confluent wire format: magic byte is not 0: byte 0 is 0x6e; 8 bytes: 6e6f74206176726f",
				"0:2       2025-03-01T12:00:00.000Z SKU-2                  InventoryReceived         received 6 EA of SKU-2 at DC-EAST",
			},
		},
		{
			name: "availability of one SKU",
			opts: tail.Options{Topic: "availability", SKU: "SKU-2"},
			want: []string{
				header,
				"0:1       2025-03-01T12:00:00.000Z SKU-2|DC-EAST          AvailabilityChanged       SKU-2 at DC-EAST v3: atp 5, on hand 7, reserved 2, picked 0, held 0, shortfall 0",
			},
		},
		{
			name: "dead letters with why and where from",
			opts: tail.Options{Topic: "dlq"},
			want: []string{
				header,
				"0:0       2025-03-01T12:00:00.000Z SKU-2                  InventoryReceived         dead letter unknown_uom from wms.inventory.v1 0:7: no conversion from PALLET for SKU-2 | received 1 PALLET of SKU-2 at DC-EAST",
				"0:1       2025-03-01T12:00:00.000Z SKU-3                  undecodable               dead letter bad_magic from wms.inventory.v1 0:8: not Confluent wire format: magic byte is not 0 | bad_magic: not Confluent wire format: magic byte is not 0: byte 0 is 0x7b; 15 bytes: 7b22736b75223a22534b552d33227d",
			},
		},
		{
			name: "the document index by its full topic name",
			opts: tail.Options{Topic: cfg.Topics.Index},
			want: []string{
				header,
				"0:0       2025-03-01T12:00:00.000Z ord:3:O-2:1            IndexLine                 order \"O-2\" line 1: SKU-2 at DC-EAST",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.FromBeginning = true
			tc.opts.Format = tail.FormatTable
			tg := start(t, cfg, tc.opts)
			tg.waitLines(t, len(tc.want))
			tg.stop(t)
			got := tg.out.lines() // nothing more once stopped
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestTailJSON(t *testing.T) {
	cfg, _ := cluster(t)
	// Each case's last wanted record is the last on its topic, so once it
	// is printed every record has been seen and the filtered ones left out.
	for _, tc := range []struct {
		name string
		opts tail.Options
		want []string
	}{
		{
			name: "inventory",
			opts: tail.Options{Topic: "inventory"},
			want: []string{
				`{"topic":"wms.inventory.v1","partition":0,"offset":0,"timestamp":"2025-03-01T12:00:00Z","key":"SKU-1","type":"InventoryReceived","schema_id":1001,"value":{"event_id":"ev-SKU-1","event_time":"2025-03-01T12:00:00Z","source":"wms","correlation_id":null,"sku":"SKU-1","location":"DC-EAST","quantity":24,"uom":"EA","po_number":null,"po_line":null,"asn_id":null}}`,
				`{"topic":"wms.inventory.v1","partition":0,"offset":1,"timestamp":"2025-03-01T12:00:00Z","key":"SKU-2","type":"undecodable","value":null,"error":{"class":"bad_magic","reason":"not Confluent wire format: magic byte is not 0: byte 0 is 0x6e"},"value_base64":"bm90IGF2cm8="}`,
				`{"topic":"wms.inventory.v1","partition":0,"offset":2,"timestamp":"2025-03-01T12:00:00Z","key":"SKU-2","type":"InventoryReceived","schema_id":1001,"value":{"event_id":"ev-SKU-2","event_time":"2025-03-01T12:00:00Z","source":"wms","correlation_id":null,"sku":"SKU-2","location":"DC-EAST","quantity":6,"uom":"EA","po_number":null,"po_line":null,"asn_id":null}}`,
			},
		},
		{
			name: "inventory by key",
			opts: tail.Options{Topic: "inventory", Key: "SKU-2"},
			want: []string{`"offset":1,`, `"offset":2,`},
		},
		{
			name: "inventory by SKU: an undecodable record by its key",
			opts: tail.Options{Topic: "inventory", SKU: "SKU-2"},
			want: []string{`"offset":1,`, `"offset":2,`},
		},
		{
			name: "orders by a SKU on a line",
			opts: tail.Options{Topic: "orders", SKU: "SKU-3"},
			want: []string{`"offset":1,"timestamp":"2025-03-01T12:00:00Z","key":"O-2","type":"OrderAccepted"`},
		},
		{
			name: "orders by key",
			opts: tail.Options{Topic: "orders", Key: "O-2"},
			want: []string{`"offset":1,"timestamp":"2025-03-01T12:00:00Z","key":"O-2","type":"OrderAccepted"`},
		},
		{
			name: "availability",
			opts: tail.Options{Topic: "availability"},
			want: []string{
				`{"topic":"stockflow.availability.v1","partition":0,"offset":0,"timestamp":"2025-03-01T12:00:00Z","key":"SKU-1|DC-EAST","type":"AvailabilityChanged","schema_id":1015,"value":{"sku":"SKU-1","location":"DC-EAST","version":3,"on_hand":24,"reserved":2,"picked":0,"held":0,"safety_stock":0,"reorder_point":0,"inbound":[],"atp":22,"shortfall":0,"as_of":"2025-03-01T12:00:00Z","correlation_id":null}}`,
				`"key":"SKU-2|DC-EAST","type":"AvailabilityChanged"`,
			},
		},
		{
			name: "availability by key",
			opts: tail.Options{Topic: "availability", Key: "SKU-2|DC-EAST"},
			want: []string{`"offset":1,"timestamp":"2025-03-01T12:00:00Z","key":"SKU-2|DC-EAST"`},
		},
		{
			name: "dead letters",
			opts: tail.Options{Topic: "dlq"},
			want: []string{
				`{"topic":"stockflow.dlq.v1","partition":0,"offset":0,"timestamp":"2025-03-01T12:00:00Z","key":"SKU-2","headers":{"stockflow.error.class":"unknown_uom","stockflow.error.message":"no conversion from PALLET for SKU-2","stockflow.error.time":"2025-03-01T12:00:00Z","stockflow.source.offset":"7","stockflow.source.partition":"0","stockflow.source.topic":"wms.inventory.v1"},"dead_letter":{"class":"unknown_uom","message":"no conversion from PALLET for SKU-2","source_topic":"wms.inventory.v1","source_partition":0,"source_offset":7,"time":"2025-03-01T12:00:00Z"},"type":"InventoryReceived","schema_id":1001,"value":{"event_id":"ev-SKU-2","event_time":"2025-03-01T12:00:00Z","source":"wms","correlation_id":null,"sku":"SKU-2","location":"DC-EAST","quantity":1,"uom":"PALLET","po_number":null,"po_line":null,"asn_id":null}}`,
				`{"topic":"stockflow.dlq.v1","partition":0,"offset":1,"timestamp":"2025-03-01T12:00:00Z","key":"SKU-3","headers":{"stockflow.error.class":"bad_magic","stockflow.error.message":"not Confluent wire format: magic byte is not 0","stockflow.error.time":"2025-03-01T12:00:00Z","stockflow.source.offset":"8","stockflow.source.partition":"0","stockflow.source.topic":"wms.inventory.v1"},"dead_letter":{"class":"bad_magic","message":"not Confluent wire format: magic byte is not 0","source_topic":"wms.inventory.v1","source_partition":0,"source_offset":8,"time":"2025-03-01T12:00:00Z"},"type":"undecodable","value":null,"error":{"class":"bad_magic","reason":"not Confluent wire format: magic byte is not 0: byte 0 is 0x7b"},"value_base64":"eyJza3UiOiJTS1UtMyJ9"}`,
			},
		},
		{
			name: "the document index",
			opts: tail.Options{Topic: "index", SKU: "SKU-2"},
			want: []string{
				`{"topic":"stockflow.index.v1","partition":0,"offset":0,"timestamp":"2025-03-01T12:00:00Z","key":"ord:3:O-2:1","type":"IndexLine","value":{"document":"order","id":"O-2","line":"1","sku":"SKU-2","location":"DC-EAST","group":"","uom":"","released":null}}`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.FromBeginning = true
			tg := start(t, cfg, tc.opts)
			tg.waitLines(t, len(tc.want))
			tg.stop(t)
			got := tg.out.lines()
			if len(got) != len(tc.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, line := range got {
				if !json.Valid([]byte(line)) {
					t.Errorf("line %d is not JSON: %s", i, line)
				}
				// A whole line is compared whole, a fragment found within.
				if strings.HasPrefix(tc.want[i], "{") && line != tc.want[i] || !strings.Contains(line, tc.want[i]) {
					t.Errorf("line %d:\n got %s\nwant %s", i, line, tc.want[i])
				}
			}
		})
	}
}

func TestTailFollowsOnlyNewRecordsWithoutFromBeginning(t *testing.T) {
	cfg, cl := cluster(t)
	tg := start(t, cfg, tail.Options{Topic: "availability", Format: tail.FormatTable})
	// The tail starts at the end once it has found it; until then a new
	// record may be produced too early to be seen, so produce until one is.
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := codec.Encode(ctx, cfg.Topics.Availability, availability("SKU-9", "DC-WEST", 40))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(tg.out.lines()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no new record printed in 15s:\n%s", strings.Join(tg.out.lines(), "\n"))
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.Topics.Availability, Key: []byte("SKU-9|DC-WEST"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tg.stop(t)
	for _, line := range tg.out.lines()[1:] {
		if !strings.Contains(line, "SKU-9 at DC-WEST v3: atp 40") {
			t.Errorf("printed a record produced before the tail started, or a wrong one: %s", line)
		}
	}
}

func TestTailOfAMissingTopicFails(t *testing.T) {
	cfg, _ := cluster(t)
	tl, err := tail.New(cfg, tail.Options{Topic: "no.such.topic", Out: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = tl.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "topic no.such.topic does not exist") {
		t.Fatalf("Run = %v; want an error saying the topic does not exist", err)
	}
}

func TestOptionsReportEveryProblem(t *testing.T) {
	_, err := tail.New(config.Default(), tail.Options{Format: "yaml"})
	if err == nil {
		t.Fatal("no error for options without topic or output and with an unknown format")
	}
	for _, want := range []string{"topic: required", `format: "yaml" is not json or table`, "out: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestTopicShortNames(t *testing.T) {
	tp := config.Default().Topics
	for name, want := range map[string]string{
		"inventory": tp.Inventory, "orders": tp.Orders, "supplier": tp.Supplier, "catalog": tp.Catalog,
		"ledger": tp.Ledger, "availability": tp.Availability, "alerts": tp.Alerts, "dlq": tp.DLQ, "index": tp.Index,
		"snapshots": tp.Snapshots, "reconciliation": tp.Reconciliation, "some.other.topic": "some.other.topic",
	} {
		if got := tail.Topic(tp, name); got != want {
			t.Errorf("Topic(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestTailDecodesThroughTheSchemaRegistry(t *testing.T) {
	cfg, cl := cluster(t)
	fake := srfake.New()
	t.Cleanup(fake.Close)
	reg, err := avro.NewSchemaRegistry(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	codec, err := events.NewCodec(reg, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := codec.Encode(ctx, cfg.Topics.Inventory, received("SKU-7", 3, "EA"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := avro.SchemaID(v)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.Topics.Inventory, Key: []byte("SKU-7"), Value: v, Timestamp: at}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	want := fmt.Sprintf(`"key":"SKU-7","type":"InventoryReceived","schema_id":%d,`, id)
	cfg.SchemaRegistry = fake.URL()
	tg := start(t, cfg, tail.Options{Topic: "inventory", FromBeginning: true, Key: "SKU-7"})
	if got := tg.waitLines(t, 1)[0]; !strings.Contains(got, want) {
		t.Errorf("through the registry:\n got %s\nwant %s within", got, want)
	}

	// The built-in ids do not know the registry's: the record is shown raw.
	cfg.SchemaRegistry = ""
	tg = start(t, cfg, tail.Options{Topic: "inventory", FromBeginning: true, Key: "SKU-7"})
	if got := tg.waitLines(t, 1)[0]; !strings.Contains(got, `"type":"undecodable","value":null,"error":{"class":"unknown_schema"`) {
		t.Errorf("without the registry: got %s, want the record undecodable for its unknown schema", got)
	}
}
