package sources

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/sim"
	"github.com/stockflow/stockflow/schemas"
)

// readElsewhere are the records that carry a source event's common fields
// but are not the normalizers' to read, with who reads them.
var readElsewhere = map[string]string{
	"stockflow.v1.SnapshotStarted": "the snapshot reconciler (processors/snapshots.go)",
}

// Every schema in schemas/ that is a source event has exactly one
// registration, and every registration is a schema of schemas/ with a
// record type the codec decodes (events.All).
func TestEverySourceSchemaIsRegistered(t *testing.T) {
	entries, err := schemas.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]any{}
	for _, r := range events.All() {
		types[r.AvroName()] = r
	}
	inManifest := map[string]bool{}
	for _, e := range entries {
		inManifest[e.Name] = true
		r, ok := types[e.Name]
		if !ok {
			t.Errorf("%s is in schemas/manifest.json but events.All has no type for it", e.Name)
			continue
		}
		if _, source := r.(events.Source); !source {
			continue // one of Stockflow's own records
		}
		if who, ok := readElsewhere[e.Name]; ok {
			if byName[e.Name] != nil {
				t.Errorf("%s is registered, but it is read by %s", e.Name, who)
			}
			continue
		}
		if byName[e.Name] == nil {
			t.Errorf("%s is a source event with no registration: add a file to processors/sources and a line to its list", e.Name)
		}
	}
	for _, s := range All() {
		if !inManifest[s.Name] {
			t.Errorf("%s is registered but has no schema in schemas/manifest.json", s.Name)
		}
		if types[s.Name] == nil {
			t.Errorf("%s is registered but events.All does not list its type, so no codec decodes it", s.Name)
		}
		if s.New().AvroName() != s.Name {
			t.Errorf("%s: its zero event is a %s", s.Name, s.New().AvroName())
		}
	}
}

// Every registration names a source topic, and a different one than no
// other type of its kind would: inventory, orders, supplier or catalog.
func TestEveryRegistrationBelongsOnASourceTopic(t *testing.T) {
	topics := config.Default().Topics
	source := []string{topics.Inventory, topics.Orders, topics.Supplier, topics.Catalog}
	for _, s := range All() {
		if got := s.Topic(topics); !slices.Contains(source, got) {
			t.Errorf("%s belongs on %q, not a source topic", s.Name, got)
		}
		if got := Topic(topics, s.New()); got != s.Topic(topics) {
			t.Errorf("Topic(%s) = %q, want %q", s.Name, got, s.Topic(topics))
		}
	}
	if got := Topic(topics, &events.SnapshotStarted{}); got != "" {
		t.Errorf("a snapshot is not a normalizers' source event, yet Topic gives %q", got)
	}
}

// fakeEnv is a normalizer's environment in memory: cases of 12 eaches,
// an index of documents, and the documents looked up.
type fakeEnv struct {
	index map[ledger.Doc][]ledger.IndexedLine
	read  []ledger.Doc
	acks  int
}

func newFakeEnv() *fakeEnv { return &fakeEnv{index: map[ledger.Doc][]ledger.IndexedLine{}} }

func (f *fakeEnv) ToBase(_ context.Context, field, _ string, q int64, uom string) (int64, error) {
	switch uom {
	case "EA":
		return q, nil
	case "CS":
		return q * 12, nil
	}
	return 0, Reject(ClassUnknownUoM, "%s: no conversion from %s", field, uom)
}

func (f *fakeEnv) Lines(d ledger.Doc) ([]ledger.IndexedLine, error) {
	f.read = append(f.read, d)
	return f.index[d], nil
}

func (f *fakeEnv) Record(d ledger.Doc, lines []ledger.IndexedLine) { f.index[d] = lines }

func (f *fakeEnv) POAcknowledged(string, string, time.Duration) { f.acks++ }

var rec = &kgo.Record{Topic: "t", Partition: 1, Offset: 7}

// The simulator's stream exercises every registration end to end: each
// type gives ledger entries of its events (a type the simulator does not
// send, its Example), every event has a summary, and an event that looks
// its document up in the index declared that document (Reads), so a
// transaction reads it in its one round trip.
func TestEveryRegistrationNormalizesTheSimulatorsEvents(t *testing.T) {
	gen := sim.NewGenerator(3, sim.Catalogue{SKUs: 30}, config.Default().Topics, nil)
	env := newFakeEnv()
	entries := map[string]int{}
	msgs := append(gen.Catalog(), gen.Opening()...)
	for range 5000 {
		msgs = append(msgs, gen.Next())
	}
	for _, m := range msgs {
		ev := m.Event
		s := Of(ev)
		if s == nil {
			t.Fatalf("the simulator sends a %s, which has no registration", ev.AvroName())
		}
		env.read = env.read[:0]
		out, err := s.Normalize(context.Background(), env, rec, ev)
		if err != nil {
			t.Fatalf("%s %s: %v", s.Name, ev.Metadata().EventID, err)
		}
		declared, ok := s.Reads(ev)
		for _, d := range env.read {
			if !ok || d != declared {
				t.Errorf("%s looked up %v in the index without declaring it in Reads", s.Name, d)
			}
		}
		for _, le := range out {
			if le.EventID != ev.Metadata().EventID || *le.SourceOffset != rec.Offset || le.SKU == "" {
				t.Fatalf("%s gave an entry without its event's identity or place: %+v", s.Name, le)
			}
		}
		entries[s.Name] += len(out)
		if s.Summary(ev) == "" {
			t.Errorf("%s %s has an empty summary", s.Name, ev.Metadata().EventID)
		}
	}
	for _, s := range All() {
		if entries[s.Name] > 0 {
			continue
		}
		ex := s.Example()
		if ex == nil {
			t.Errorf("%s: no event of the simulator's stream gave a ledger entry, and it has no Example", s.Name)
			continue
		}
		out, err := s.Normalize(context.Background(), newFakeEnv(), rec, ex)
		if err != nil || len(out) == 0 || s.Summary(ex) == "" {
			t.Errorf("%s: its Example gave %d entries, %v, summary %q", s.Name, len(out), err, s.Summary(ex))
		}
	}
	if env.acks == 0 {
		t.Error("no acknowledged PO line reached the hooks")
	}
}

func TestRegisterRefusesAMissingStep(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a registration without Normalize was accepted")
		}
	}()
	Register(Def[*events.InventoryReceived]{Doc: "x", Topic: inventoryTopic})
}
