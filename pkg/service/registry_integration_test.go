//go:build integration

package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// The whole pipeline with a real schema registry (the local stack's
// Apicurio): the source events go in under the registry's ids, the service
// registers its own subjects at start, and every record it writes (ledger
// entries, hold requests, availability) carries the id the registry holds
// for its subject, topic-recordname.
func TestPipelineThroughSchemaRegistry(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	cfg.SchemaRegistry = testenv.SchemaRegistry(t)
	s := startStack(t, cfg, Options{})

	s.send(t, cfg.Topics.Inventory, "REG1", receiptEv("r-reg-1", "REG1", "L1", 40))
	s.waitATP(t, "REG1", "L1", 40)
	if c, body := s.call(t, "POST", "/v1/holds", hold("h-reg-1", 600, line("REG1", "L1", 5))); c != 201 {
		t.Fatalf("hold: %d %v", c, body)
	}
	s.waitATP(t, "REG1", "L1", 35)

	reg := registryClient(t, cfg.SchemaRegistry)
	for _, w := range []struct{ topic, record string }{
		{cfg.Topics.Inventory, "stockflow.v1.InventoryReceived"},
		{cfg.Topics.Ledger, "stockflow.v1.LedgerEntry"},
		{cfg.Topics.Holds, "stockflow.v1.LedgerEntry"},
		{cfg.Topics.Availability, "stockflow.v1.AvailabilityChanged"},
	} {
		subject := w.topic + "-" + w.record
		latest, err := reg.SchemaByVersion(ctx, subject, -1)
		if err != nil {
			t.Fatalf("subject %s: %v", subject, err)
		}
		ids := recordIDs(t, cfg.Kafka.Brokers, w.topic)
		if len(ids) == 0 {
			t.Fatalf("%s: no records", w.topic)
		}
		for id, n := range ids {
			if id != latest.ID {
				t.Errorf("%s: %d records under schema id %d, want the registry's id %d for %s", w.topic, n, id, latest.ID, subject)
			}
		}
	}
	// A reader that resolves ids through the same registry reads them back.
	codec, err := events.OpenCodec(cfg.SchemaRegistry, 0)
	if err != nil {
		t.Fatal(err)
	}
	av := newTopicReader(t, cfg.Kafka.Brokers, cfg.Topics.Availability)
	av.codec = codec
	api, _ := s.availabilityView(t, "REG1", "L1")
	if v := av.waitVersion(t, "REG1|L1", api.Version); v.ATP != 35 || v.Held != 5 {
		t.Fatalf("availability topic read through the registry: %s, want atp 35 held 5", v)
	}
}

// Schema evolution against the real registry, under its BACKWARD rule: a
// producer adding an optional field registers its new version and the
// service folds what it writes; a producer adding a required field is
// refused. Removing a field Stockflow needs is allowed by BACKWARD (new
// readers ignore old fields), so the source subjects Stockflow reads should
// be FULL (docs/production.md): then that is refused too.
func TestSourceSchemaEvolutionThroughRegistry(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	cfg.SchemaRegistry = testenv.SchemaRegistry(t)
	s := startStack(t, cfg, Options{})
	reg := registryClient(t, cfg.SchemaRegistry)

	// Version 1, as the producers of today write it.
	s.send(t, cfg.Topics.Inventory, "EVO", receiptEv("r-evo-1", "EVO", "L1", 10))
	s.waitATP(t, "EVO", "L1", 10)
	subject := cfg.Topics.Inventory + "-stockflow.v1.InventoryReceived"

	// Version 2 adds an optional field: accepted, and folded.
	v2 := withField(t, receivedSchema(t), map[string]any{"name": "carrier", "type": []any{"null", "string"}, "default": nil})
	ss, err := reg.CreateSchema(ctx, subject, sr.Schema{Schema: v2, Type: sr.TypeAvro})
	if err != nil {
		t.Fatalf("an added optional field was refused: %v", err)
	}
	native := canonicalNative(t, receiptEv("r-evo-2", "EVO", "L1", 7))
	native["carrier"] = goavro.Union("string", "ACME Freight")
	s.produceRaw(t, cfg.Topics.Inventory, "EVO", encodeWith(t, v2, ss.ID, native))
	s.waitATP(t, "EVO", "L1", 17)

	// A new required field (no default): refused by BACKWARD.
	required := withField(t, receivedSchema(t), map[string]any{"name": "dock", "type": "string"})
	if _, err := reg.CreateSchema(ctx, subject, sr.Schema{Schema: required, Type: sr.TypeAvro}); !isConflict(err) {
		t.Fatalf("a new required field: got %v, want 409 (incompatible)", err)
	}
	// A removed required field: allowed by BACKWARD, refused under FULL.
	removed := withoutField(t, receivedSchema(t), "quantity")
	if res := reg.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFull}, subject); res[0].Err != nil {
		t.Fatalf("set FULL on %s: %v", subject, res[0].Err)
	}
	if _, err := reg.CreateSchema(ctx, subject, sr.Schema{Schema: removed, Type: sr.TypeAvro}); !isConflict(err) {
		t.Fatalf("a removed required field under FULL: got %v, want 409 (incompatible)", err)
	}
	// The refused versions never reached the subject.
	versions, err := reg.SubjectVersions(ctx, subject)
	if err != nil || len(versions) != 2 {
		t.Fatalf("%s versions: %v %v, want 2", subject, versions, err)
	}
}

func registryClient(t *testing.T, url string) *sr.Client {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(url), sr.HTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func isConflict(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusConflict
}

// recordIDs reads topic from the start until it is quiet for a second and
// counts its records by schema id.
func recordIDs(t *testing.T, brokers []string, topic string) map[int]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ids := map[int]int{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.NumRecords() == 0 && len(ids) > 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			id, err := avro.SchemaID(r.Value)
			if err != nil {
				t.Fatalf("%s@%d: %v", topic, r.Offset, err)
			}
			ids[id]++
		})
	}
	return ids
}

func (s *stack) produceRaw(t *testing.T, topic, key string, value []byte) {
	t.Helper()
	if err := s.prod.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func receivedSchema(t *testing.T) map[string]any {
	t.Helper()
	canon, _, err := events.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(canon["stockflow.v1.InventoryReceived"]), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func withField(t *testing.T, doc map[string]any, field map[string]any) string {
	t.Helper()
	doc["fields"] = append(doc["fields"].([]any), field)
	b, _ := json.Marshal(doc)
	return string(b)
}

func withoutField(t *testing.T, doc map[string]any, name string) string {
	t.Helper()
	var kept []any
	for _, f := range doc["fields"].([]any) {
		if f.(map[string]any)["name"] != name {
			kept = append(kept, f)
		}
	}
	if len(kept) == len(doc["fields"].([]any)) {
		t.Fatalf("no field %s", name)
	}
	doc["fields"] = kept
	b, _ := json.Marshal(doc)
	return string(b)
}

// canonicalNative is rec as goavro's native form of its canonical schema.
func canonicalNative(t *testing.T, rec avro.Record) map[string]any {
	t.Helper()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := codec.Encode(context.Background(), "", rec)
	if err != nil {
		t.Fatal(err)
	}
	canon, _, _ := events.Canonical()
	gc, err := goavro.NewCodec(canon[rec.AvroName()])
	if err != nil {
		t.Fatal(err)
	}
	native, _, err := gc.NativeFromBinary(b[5:])
	if err != nil {
		t.Fatal(err)
	}
	return native.(map[string]any)
}

// encodeWith writes native in the wire format under schema id.
func encodeWith(t *testing.T, schema string, id int, native map[string]any) []byte {
	t.Helper()
	gc, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	b, err := gc.BinaryFromNative([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, native)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
