package ledger

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/testenv"
)

func TestIndexOnMiniredis(t *testing.T) {
	runIndexSuite(t, func(t *testing.T) (redis.UniversalClient, Config) {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { rdb.Close() })
		return rdb, Config{}
	})
}

// runIndexSuite runs the document index's tests against Redis clients from
// newClient, each on an empty database.
func runIndexSuite(t *testing.T, newClient func(t *testing.T) (redis.UniversalClient, Config)) {
	ctx := context.Background()
	ord := func(id string) Doc { return Doc{Kind: OrderDoc, ID: id} }
	po := func(id string) Doc { return Doc{Kind: PODoc, ID: id} }
	line := func(id, sku string) IndexedLine { return IndexedLine{Line: id, SKU: sku, Location: "DC1"} }
	lines := func(t *testing.T, b *IndexBatch, d Doc) []IndexedLine {
		t.Helper()
		ls, err := b.Lines(d)
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}

	t.Run("a batch sees its own writes laid over what Redis had", func(t *testing.T) {
		s := New(newClient(t))
		if err := s.WriteIndex(ctx, []IndexWrite{{Doc: ord("SO-1"), Lines: []IndexedLine{line("1", "A")}}}); err != nil {
			t.Fatal(err)
		}
		b, err := s.ReadIndex(ctx, []Doc{ord("SO-1"), ord("SO-2"), ord("SO-1")})
		if err != nil {
			t.Fatal(err)
		}
		if got := lines(t, b, ord("SO-2")); len(got) != 0 {
			t.Fatalf("an order never indexed has lines %v", got)
		}
		b.Record(ord("SO-1"), []IndexedLine{line("2", "B")})
		b.Record(ord("SO-2"), []IndexedLine{line("1", "C")})
		b.Record(ord("SO-3"), []IndexedLine{line("1", "D")}) // written, not read in this batch
		if got, want := lines(t, b, ord("SO-1")), []IndexedLine{line("1", "A"), line("2", "B")}; !reflect.DeepEqual(got, want) {
			t.Fatalf("SO-1 %v, want %v", got, want)
		}
		if got, want := lines(t, b, ord("SO-2")), []IndexedLine{line("1", "C")}; !reflect.DeepEqual(got, want) {
			t.Fatalf("SO-2 %v, want %v", got, want)
		}
		if _, err := b.Lines(ord("SO-3")); !errors.Is(err, ErrNotRead) {
			t.Fatalf("a document not read for the batch: err %v, want ErrNotRead", err)
		}
		if _, err := b.Lines(po("SO-1")); !errors.Is(err, ErrNotRead) {
			t.Fatalf("a PO that shares an order's id: err %v, want ErrNotRead", err)
		}
		if got, err := s.ReadIndex(ctx, []Doc{ord("SO-2")}); err != nil || len(lines(t, got, ord("SO-2"))) != 0 {
			t.Fatalf("written before the flush: %v", err)
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if len(b.Pending()) != 0 {
			t.Fatalf("pending after a flush: %v", b.Pending())
		}
		after, err := s.ReadIndex(ctx, []Doc{ord("SO-1"), ord("SO-2"), ord("SO-3")})
		if err != nil {
			t.Fatal(err)
		}
		for d, want := range map[Doc][]IndexedLine{
			ord("SO-1"): {line("1", "A"), line("2", "B")},
			ord("SO-2"): {line("1", "C")},
			ord("SO-3"): {line("1", "D")},
		} {
			if got := lines(t, after, d); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s after the flush: %v, want %v", d, got, want)
			}
		}
	})

	t.Run("a line written again replaces the earlier, in the batch and in Redis", func(t *testing.T) {
		s := New(newClient(t))
		b, err := s.ReadIndex(ctx, []Doc{po("PO-1")})
		if err != nil {
			t.Fatal(err)
		}
		b.Record(po("PO-1"), []IndexedLine{line("1", "A"), line("2", "B")})
		b.Record(po("PO-1"), []IndexedLine{line("1", "Z")})
		want := []IndexedLine{line("1", "Z"), line("2", "B")}
		if got := lines(t, b, po("PO-1")); !reflect.DeepEqual(got, want) {
			t.Fatalf("in the batch %v, want %v", got, want)
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		after, err := s.ReadIndex(ctx, []Doc{po("PO-1")})
		if err != nil {
			t.Fatal(err)
		}
		if got := lines(t, after, po("PO-1")); !reflect.DeepEqual(got, want) {
			t.Fatalf("in Redis %v, want %v", got, want)
		}
	})

	t.Run("lines come in line order, numeric for numbers", func(t *testing.T) {
		s := New(newClient(t))
		rel := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
		var in []IndexedLine
		for _, id := range []string{"10", "2", "1"} {
			in = append(in, IndexedLine{Line: id, SKU: "S" + id, Location: "DC1", UoM: "CS", Released: rel})
		}
		if err := s.WriteIndex(ctx, []IndexWrite{{Doc: po("PO-9"), Lines: in}}); err != nil {
			t.Fatal(err)
		}
		b, err := s.ReadIndex(ctx, []Doc{po("PO-9")})
		if err != nil {
			t.Fatal(err)
		}
		want := []IndexedLine{in[2], in[1], in[0]}
		if got := lines(t, b, po("PO-9")); !reflect.DeepEqual(got, want) {
			t.Fatalf("%v, want %v", got, want)
		}
	})

	t.Run("one round trip for a batch's reads and one for its writes", func(t *testing.T) {
		rdb, cfg := newClient(t)
		var rt testenv.RoundTrips
		rdb.AddHook(&rt)
		s := New(rdb, cfg)
		var docs []Doc
		for i := range 200 {
			docs = append(docs, ord(fmt.Sprint("SO-", i)), po(fmt.Sprint("PO-", i)))
		}
		b, err := s.ReadIndex(ctx, docs)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			b.Record(d, []IndexedLine{line("1", "A"), line("2", "B")})
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if n := rt.N(); n != 2 {
			t.Fatalf("%d round trips for reading and writing 400 documents, want 2", n)
		}
	})

	t.Run("caught-up offsets", func(t *testing.T) {
		s := New(newClient(t))
		got, err := s.IndexCaughtUp(ctx, "index")
		if err != nil || len(got) != 0 {
			t.Fatalf("a new Redis: %v, %v", got, err)
		}
		if err := s.RecordIndexCaughtUp(ctx, "index", map[int32]int64{0: 5, 2: 7}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordIndexCaughtUp(ctx, "index", map[int32]int64{2: 9}); err != nil {
			t.Fatal(err)
		}
		got, err = s.IndexCaughtUp(ctx, "index")
		if want := map[int32]int64{0: 5, 2: 9}; err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%v (%v), want %v", got, err, want)
		}
		if other, err := s.IndexCaughtUp(ctx, "other"); err != nil || len(other) != 0 {
			t.Fatalf("another topic: %v, %v", other, err)
		}
	})
}

func TestIndexRecords(t *testing.T) {
	rel := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		doc  Doc
		line IndexedLine
		key  string
	}{
		{"order line at a location", Doc{OrderDoc, "SO-1"}, IndexedLine{Line: "1", SKU: "A", Location: "DC1"}, "ord:4:SO-1:1"},
		{"order line against a group", Doc{OrderDoc, "SO-2"}, IndexedLine{Line: "x", SKU: "A", Group: "G"}, "ord:4:SO-2:x"},
		{"an id with separators in it", Doc{OrderDoc, "a:1:b"}, IndexedLine{Line: "2:3", SKU: "A", Location: "L"}, "ord:5:a:1:b:2:3"},
		{"PO line with its unit and release", Doc{PODoc, "PO-7"}, IndexedLine{Line: "3", SKU: "B", Location: "DC2", UoM: "CS", Released: rel}, "po:4:PO-7:3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, v := IndexRecord(c.doc, c.line)
			if string(k) != c.key {
				t.Fatalf("key %q, want %q", k, c.key)
			}
			d, l, err := ParseIndexRecord(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if d != c.doc || !reflect.DeepEqual(l, c.line) {
				t.Fatalf("parsed %v %+v, want %v %+v", d, l, c.doc, c.line)
			}
		})
	}
	for _, key := range []string{"", "ord", "ord:", "ord:x:SO-1:1", "ord:0::1", "ord:4:SO-1", "ord:4:SO-1:", "ord:9:SO-1:1", "xx:4:SO-1:1", "ord:4:SO-12:1"} {
		if _, _, err := ParseIndexRecord([]byte(key), []byte("A|DC1|||")); err == nil {
			t.Errorf("key %q parsed", key)
		}
	}
	if _, _, err := ParseIndexRecord([]byte("ord:4:SO-1:1"), nil); err == nil {
		t.Error("a record with no value parsed")
	}
}

func FuzzParseIndexRecord(f *testing.F) {
	f.Add([]byte("ord:4:SO-1:1"), []byte("A|DC1|||"))
	f.Add([]byte("po:4:PO-7:3"), []byte("B|DC2||CS|1790000000000"))
	f.Add([]byte("ord:5:a:1:b:2:3"), []byte("||G||"))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		d, l, err := ParseIndexRecord(key, value)
		if err != nil {
			return
		}
		k2, v2 := IndexRecord(d, l)
		d2, l2, err := ParseIndexRecord(k2, v2)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", k2, err)
		}
		if d2 != d || !reflect.DeepEqual(l2, l) {
			t.Fatalf("re-encoded record parses as %v %+v, first as %v %+v", d2, l2, d, l)
		}
	})
}
