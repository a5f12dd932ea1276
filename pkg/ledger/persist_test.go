package ledger

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// The hand-written JSON of order lines, holds and lineage entries reads
// back as what was written, whatever the strings hold.
func TestHandWrittenJSONReadsBack(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "DC-1", `quo"te`, `back\slash`, "tab\tnew\nline\x00", "é ü 漢字 🙂", "bad \xff utf8"}
	str := func() string { return strs[rnd.IntN(len(strs))] }
	num := func() int64 { return rnd.Int64() - rnd.Int64() }
	for i := 0; i < 2000; i++ {
		l := OrderLine{Location: str(), Group: str(), Ordered: num(), Picked: num(), Shipped: num(), Cancelled: rnd.IntN(2), Channel: str(),
			At: num(), Promise: str()}
		for range rnd.IntN(3) {
			l.History = append(l.History, PromiseChange{Promise: str(), EventID: str(), EntryType: str(), At: num()})
		}
		var gotL OrderLine
		if err := json.Unmarshal(appendOrderLine(nil, &l), &gotL); err != nil || !reflect.DeepEqual(gotL, sanitized(l)) {
			t.Fatalf("order line %+v read back as %+v (%v)", l, gotL, err)
		}
		h := Hold{Location: str(), Quantity: num(), ExpMillis: num(), Status: str(), ATP: num()}
		var gotH Hold
		if err := json.Unmarshal(appendHold(nil, &h), &gotH); err != nil || gotH != sanitizedHold(h) {
			t.Fatalf("hold %+v read back as %+v (%v)", h, gotH, err)
		}
		le := LineageEntry{Partition: rnd.Int32(), Offset: num(), EventID: str(), CorrelationID: str(), EntryType: str(), Place: str()}
		gotE, err := decodeLineage(string(appendLineage(nil, le)))
		if err != nil || gotE != sanitizedEntry(le) {
			t.Fatalf("lineage %+v read back as %+v (%v)", le, gotE, err)
		}
	}
}

// valid replaces invalid UTF-8 as the writer does.
func valid(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}

func sanitized(l OrderLine) OrderLine {
	l.Location, l.Group, l.Channel, l.Promise = valid(l.Location), valid(l.Group), valid(l.Channel), valid(l.Promise)
	if l.History != nil {
		h := make([]PromiseChange, len(l.History))
		for i, c := range l.History {
			h[i] = PromiseChange{Promise: valid(c.Promise), EventID: valid(c.EventID), EntryType: valid(c.EntryType), At: c.At}
		}
		l.History = h
	}
	return l
}

func sanitizedHold(h Hold) Hold {
	h.Location, h.Status = valid(h.Location), valid(h.Status)
	return h
}

func sanitizedEntry(e LineageEntry) LineageEntry {
	e.EventID, e.CorrelationID, e.EntryType, e.Place = valid(e.EventID), valid(e.CorrelationID), valid(e.EntryType), valid(e.Place)
	return e
}

// Lineage written by earlier versions ("partition:offset|event_id|
// correlation_id|type|place") still reads.
func TestLineageOfEarlierVersionsReads(t *testing.T) {
	got, err := decodeLineage("3:17|ev-1|corr-9|RECEIPT|DC1")
	want := LineageEntry{Partition: 3, Offset: 17, EventID: "ev-1", CorrelationID: "corr-9", EntryType: "RECEIPT", Place: "DC1"}
	if err != nil || got != want {
		t.Fatalf("got %+v %v, want %+v", got, err, want)
	}
	for _, bad := range []string{"", "3:17|ev", `[1,2,"a"]`, `["x",2,"a","b","c","d"]`, "{}"} {
		if _, err := decodeLineage(bad); err == nil {
			t.Errorf("%q read without an error", bad)
		}
	}
}
