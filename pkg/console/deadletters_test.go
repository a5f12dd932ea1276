package console

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
)

// The exception queue lists a page of dead letters at a time, newest
// first, with a link to the next, older page.
func TestExceptionQueuePages(t *testing.T) {
	f := newDLQFixture(t, 2, nil)
	var recs []*kgo.Record
	for i := range 120 {
		recs = append(recs, f.deadLetterRecord(int32(i%2), deadletter.ClassUnknownUoM, fmt.Sprintf("SKU-%d", i), f.receipt(fmt.Sprintf("SKU-%d", i))))
	}
	f.write(recs...)
	var want []string // newest first
	for i := 119; i >= 0; i-- {
		want = append(want, fmt.Sprintf("%d:%d", i%2, i/2))
	}
	path, pages := "/console/exceptions", 0
	var got []string
	for path != "" && pages < 5 {
		code, body := f.get(context.Background(), path)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", path, code)
		}
		page := listed(body)
		if len(page) > defaultPageSize {
			t.Fatalf("%s lists %d dead letters, more than a page of %d", path, len(page), defaultPageSize)
		}
		got = append(got, page...)
		path, pages = older(body), pages+1
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Fatalf("%d pages listing %d dead letters; want 3 pages listing all 120, newest first:\n got %v\nwant %v", pages, len(got), got, want)
	}
}

// What a view keeps of the dead letters is bounded by its page, not by the
// topic: no record is kept whole, a value shows as a short preview, and
// the page's few dead letters are all that is kept.
func TestExceptionQueueKeepsSummariesNotRecords(t *testing.T) {
	f := newDLQFixture(t, 1, nil)
	const n, size = 240, 256 << 10
	// The records written are unreachable once this block ends: the heap
	// measured below does not hold them.
	{
		big := bytes.Repeat([]byte("x"), size)
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, f.deadLetterRecord(0, "bad_magic", fmt.Sprintf("K-%d", i), big))
		}
		f.write(recs...)
	}
	before := liveHeap()
	l, err := f.con.listDeadLetters(context.Background(), dlqFilter{State: stateAll})
	if err != nil {
		t.Fatal(err)
	}
	grew := liveHeap() - before
	runtime.KeepAlive(l)
	if l.Matched != n || l.Listed == 0 || l.Listed > defaultPageSize {
		t.Fatalf("matched %d, listed %d: want %d matched and at most a page listed", l.Matched, l.Listed, n)
	}
	for _, s := range l.Sections {
		for _, d := range s.Listed {
			if d.Record != nil || len(d.RawHex) > 2*maxRawBytes || d.RawLen != size {
				t.Fatalf("dead letter %s keeps its record (%v) or %d hex characters of its %d bytes", d.ID, d.Record != nil, len(d.RawHex), d.RawLen)
			}
		}
	}
	// n records of 256 KiB are 60 MiB; a page of previews is a few KiB.
	if grew > 16<<20 {
		t.Errorf("the listing keeps %d MiB of the topic's %d MiB", grew>>20, n*size>>20)
	}
}

func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// An action on one dead letter reads that dead letter, from its own
// offset, not the topic from its start.
func TestDiscardReadsOnlyItsDeadLetter(t *testing.T) {
	f := newDLQFixture(t, 1, nil)
	var recs []*kgo.Record
	for i := range 300 {
		recs = append(recs, f.deadLetterRecord(0, deadletter.ClassUnknownUoM, fmt.Sprintf("SKU-%d", i), f.receipt(fmt.Sprintf("SKU-%d", i))))
	}
	f.write(recs...)
	f.watching(true)
	rec := f.post("/console/exceptions/discard", url.Values{"dlq": {"0:290"}, "reason": {"a test record"}})
	fetches := slices.Clone(f.fetches)
	f.watching(false)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("discard: %d", rec.Code)
	}
	if len(fetches) == 0 || slices.Min(fetches) < 290 {
		t.Errorf("discarding 0:290 fetched from offsets %v: it read the topic from before the dead letter", fetches)
	}
	_, body := f.get(context.Background(), "/console/exceptions?state=discarded")
	if got := listed(body); !slices.Equal(got, []string{"0:290"}) {
		t.Errorf("discarded: %v", got)
	}
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// A class-wide replay shows first how many dead letters go to which topic,
// and replays only once that is confirmed, in batches.
func TestClassReplayIsConfirmedThenBatched(t *testing.T) {
	f := newDLQFixture(t, 2, nil)
	var recs []*kgo.Record
	for i := range 250 {
		recs = append(recs, f.deadLetterRecord(int32(i%2), deadletter.ClassUnknownUoM, fmt.Sprintf("SKU-%d", i), f.receipt(fmt.Sprintf("SKU-%d", i))))
	}
	recs = append(recs, f.deadLetterRecord(0, "bad_magic", "junk", []byte("junk")))
	f.write(recs...)

	form := url.Values{"class": {deadletter.ClassUnknownUoM}, "source_topic": {fxSource}, "step": {"confirm"}, "return": {"class=unknown_uom"}}
	rec := f.post("/console/exceptions/replay", form)
	if n := f.sourceRecords(); n != 0 {
		t.Fatalf("asking to replay a class replayed %d records before any confirmation", n)
	}
	page := html.UnescapeString(rec.Body.String())
	if rec.Code != http.StatusOK || !regexp.MustCompile(`250 dead letters?\s+to\s+<code>`+regexp.QuoteMeta(fxSource)+`</code>`).MatchString(page) {
		t.Fatalf("confirmation: %d; want it to say that 250 go to %s:\n%s", rec.Code, fxSource, page)
	}
	confirm := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(rec.Body.String(), -1) {
		if m[1] != "csrf" {
			confirm.Set(m[1], html.UnescapeString(m[2]))
		}
	}
	if confirm.Get("step") != "replay" {
		t.Fatalf("the confirmation's form carries %v", confirm)
	}
	f.watching(true)
	rec = f.post("/console/exceptions/replay", confirm)
	batches := slices.Clone(f.batches)
	f.watching(false)
	if rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "done=dlq-replayed-class") {
		t.Fatalf("confirmed replay: %d to %s", rec.Code, rec.Header().Get("Location"))
	}
	if n := f.sourceRecords(); n != 250 {
		t.Fatalf("%d records replayed, want 250", n)
	}
	total := 0
	for _, b := range batches {
		total += b
		if b > deadletter.ReplayBatch {
			t.Errorf("a produced batch of %d records: more than %d", b, deadletter.ReplayBatch)
		}
	}
	if total != 250 {
		t.Errorf("watched %d replayed records in batches %v", total, batches)
	}
	_, body := f.get(context.Background(), "/console/exceptions?class=unknown_uom")
	if got := listed(body); len(got) != 0 {
		t.Errorf("still open after the replay: %v", got)
	}
	// Confirming again replays nothing: they are marked replayed.
	f.post("/console/exceptions/replay", confirm)
	if n := f.sourceRecords(); n != 250 {
		t.Errorf("confirming twice: %d records on the source topic, want 250", n)
	}
}

// An open transaction on the dead-letter topic does not hold the page: it
// lists what was committed before it.
func TestOpenTransactionDoesNotHoldTheExceptionQueue(t *testing.T) {
	f := newDLQFixture(t, 1, nil)
	f.write(f.deadLetterRecord(0, "bad_magic", "A", []byte("a")), f.deadLetterRecord(0, "bad_magic", "B", []byte("b")))
	openTransaction(t, f.brokers, f.deadLetterRecord(0, "bad_magic", "C", []byte("c")))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, body := f.get(ctx, "/console/exceptions?state=all")
	if code != http.StatusOK || !slices.Equal(listed(body), []string{"0:1", "0:0"}) {
		t.Fatalf("%d, listed %v; want 200 listing the two committed dead letters", code, listed(body))
	}
}

// openTransaction produces r in a transaction it leaves open until the
// test ends.
func openTransaction(t *testing.T, brokers []string, r *kgo.Record) {
	t.Helper()
	transaction(t, brokers, r)
}

// transaction begins a transaction, produces r in it and returns its
// client, the transaction still open.
func transaction(t *testing.T, brokers []string, r *kgo.Record) *kgo.Client {
	t.Helper()
	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(fmt.Sprintf("open-%d", time.Now().UnixNano())),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tx.Close)
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return tx
}
