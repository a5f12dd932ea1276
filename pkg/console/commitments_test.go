package console

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

const fxCommitments = "fx.commitments"

// newCommitmentsFixture is the dead-letter fixture with a commitments
// topic of its own, its clock at fxBase (noon UTC).
func newCommitmentsFixture(t *testing.T, partitions int32, mod func(*Config)) *dlqFixture {
	t.Helper()
	f := newDLQFixture(t, 1, func(c *Config) {
		c.CommitmentsTopic = fxCommitments
		c.Now = func() time.Time { return fxBase }
		if mod != nil {
			mod(c)
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, fxCommitments); err != nil {
		t.Fatal(err)
	}
	return f
}

// change is a promise change of order id's line 1 as the pipeline
// publishes it, at when, on partition p.
func (f *dlqFixture) change(p int32, when time.Time, c *events.CommitmentChanged) *kgo.Record {
	f.t.Helper()
	if c.LineID == "" {
		c.LineID = "1"
	}
	if c.CommitmentID == "" {
		c.CommitmentID = c.OrderID + "|" + c.LineID + "|0:" + when.Format("150405")
	}
	c.SKU, c.Location, c.CauseTime = "SKU-1", "DC-EAST", when.Add(-time.Minute)
	if c.CauseEventID == "" {
		c.CauseEventID = "ev-" + c.OrderID
	}
	b, err := f.codec.Encode(context.Background(), fxCommitments, c)
	if err != nil {
		f.t.Fatal(err)
	}
	return &kgo.Record{Topic: fxCommitments, Partition: p, Key: []byte(c.OrderID), Value: b, Timestamp: when}
}

func days(d time.Time, q ...int64) []events.PromisedQuantity {
	out := make([]events.PromisedQuantity, len(q))
	for i, n := range q {
		out[i] = events.PromisedQuantity{Date: d.AddDate(0, 0, i).Truncate(24 * time.Hour), Quantity: n}
	}
	return out
}

var repromiseRow = regexp.MustCompile(`<tr data-commitment="([^"]+)" data-order="([^"]*)" data-move="([^"]+)"( class="late")?>`)

// listedChanges are the orders a re-promises page lists, in order, each as
// order:move, with "!" when the row is marked late.
func listedChanges(body string) []string {
	var out []string
	for _, m := range repromiseRow.FindAllStringSubmatch(body, -1) {
		s := m[2] + ":" + m[3]
		if m[4] != "" {
			s += "!"
		}
		out = append(out, s)
	}
	return out
}

// The re-promises page lists today's changes from the commitments topic,
// newest first across partitions, each with the promise before it, the
// way it moved and its cause; a change published twice shows once, and
// yesterday's are not read. Records that are not a change (bytes that
// are not Avro, a record too large to decode, another record type) are
// counted and named, not fatal; a forged one with huge fields shows
// clipped. The filters narrow to later changes, a PO or ship notice, a
// SKU.
func TestRepromisesListTodaysChangesNewestFirst(t *testing.T) {
	f := newCommitmentsFixture(t, 2, nil)
	midnight := fxBase.Truncate(24 * time.Hour)
	due := midnight.AddDate(0, 0, 5)
	po, asn, web := "PO-A", "ASN-1", "web"
	// Another record type, which the codec decodes, on the topic.
	other, err := f.codec.Encode(context.Background(), fxCommitments, &events.LedgerEntry{SKU: "SKU-1", EntryType: events.EntryReceipt,
		EventID: "x", EventTime: fxBase, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	late := f.change(1, midnight.Add(10*time.Hour), &events.CommitmentChanged{OrderID: "O2", Channel: &web,
		Promise:  events.LinePromise{OpenQuantity: 20, Promised: days(due, 12), Unpromised: 8},
		Previous: &events.LinePromise{OpenQuantity: 20, Promised: days(due, 20)}, Late: true,
		CauseEntryType: events.EntryPOAck, CausePONumber: &po})
	again := *late
	again.Timestamp = late.Timestamp.Add(5 * time.Minute)
	f.write(
		f.change(0, midnight.Add(-time.Hour), &events.CommitmentChanged{OrderID: "YESTERDAY-1", Promise: events.LinePromise{OpenQuantity: 5, ConfirmedNow: 5}}),
		f.change(0, midnight.Add(9*time.Hour), &events.CommitmentChanged{OrderID: "O1",
			Promise: events.LinePromise{OpenQuantity: 15, ConfirmedNow: 10, Promised: days(due, 5)}, CauseEntryType: events.EntryOrderLine}),
		late, &again,
		&kgo.Record{Topic: fxCommitments, Partition: 1, Value: []byte("not avro at all"), Timestamp: midnight.Add(10*time.Hour + 30*time.Minute)},
		&kgo.Record{Topic: fxCommitments, Partition: 0, Value: make([]byte, 100<<10), Timestamp: midnight.Add(10*time.Hour + 40*time.Minute)},
		&kgo.Record{Topic: fxCommitments, Partition: 0, Value: other, Timestamp: midnight.Add(10*time.Hour + 45*time.Minute)},
		f.change(1, midnight.Add(10*time.Hour+50*time.Minute), &events.CommitmentChanged{OrderID: strings.Repeat("Z", 4000),
			Promise: events.LinePromise{OpenQuantity: 40, Promised: days(due, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)}, CauseEntryType: events.EntryPOLine}),
		f.change(0, midnight.Add(11*time.Hour), &events.CommitmentChanged{OrderID: "O3",
			Promise:        events.LinePromise{OpenQuantity: 20, Promised: days(due.AddDate(0, 0, -3), 20)},
			Previous:       &events.LinePromise{OpenQuantity: 20, Promised: days(due, 20)},
			CauseEntryType: events.EntryASNLine, CausePONumber: &po, CauseASNID: &asn}),
	)
	code, body := f.get(context.Background(), "/console/commitments")
	if code != http.StatusOK {
		t.Fatalf("%d: %s", code, body)
	}
	clipped := strings.Repeat("Z", maxFieldChars)
	want := []string{"O3:earlier", clipped + ":first", "O2:later!", "O1:first"}
	if got := listedChanges(body); !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v\n%s", got, want, regexp.MustCompile(`(?s)id="repromise-unreadable".*?</div>`).FindString(body))
	}
	if strings.Contains(body, strings.Repeat("Z", maxFieldChars+1)) || !strings.Contains(body, "and 4 more days") {
		t.Error("a huge order id or a long promise is not clipped")
	}
	for _, w := range []string{`20 on 2025-03-06`, `12 on 2025-03-06`, `<strong>8 unpromised</strong>`, `badge backordered`, `PO PO-A ASN ASN-1`,
		`3 of the records read are not a change of a promise`, `102,400 bytes, more than`, `stockflow.v1.LedgerEntry, not a change`, `magic byte is not 0`} {
		if !strings.Contains(body, w) {
			t.Errorf("the page lacks %q", w)
		}
	}
	if strings.Contains(body, "YESTERDAY-1") {
		t.Error("yesterday's change is listed")
	}
	if !strings.Contains(body, "4 promise changes read today; 1 of them later than before.") {
		t.Errorf("counts: %s", regexp.MustCompile(`id="repromise-count">[^<]*`).FindString(body))
	}
	for q, want := range map[string][]string{
		"late=1":    {"O2:later!"},
		"po=po-a":   {"O3:earlier", "O2:later!"},
		"po=ASN-1":  {"O3:earlier"},
		"sku=SKU-2": nil,
	} {
		if _, body := f.get(context.Background(), "/console/commitments?"+q); !slices.Equal(listedChanges(body), want) {
			t.Errorf("%s: listed %v, want %v", q, listedChanges(body), want)
		}
	}
}

// The page reads at most the newest CommitmentsScan records of each
// partition, and says that it left older ones of today unread.
func TestRepromisesReadsNoMoreThanItsCap(t *testing.T) {
	f := newCommitmentsFixture(t, 1, func(c *Config) { c.CommitmentsScan = 3 })
	midnight := fxBase.Truncate(24 * time.Hour)
	var recs []*kgo.Record
	for i, id := range []string{"A", "B", "C", "D", "E", "F"} {
		recs = append(recs, f.change(0, midnight.Add(time.Duration(i+1)*time.Hour), &events.CommitmentChanged{OrderID: id,
			Promise: events.LinePromise{OpenQuantity: 1, ConfirmedNow: 1}}))
	}
	f.write(recs...)
	f.watching(true)
	code, body := f.get(context.Background(), "/console/commitments")
	f.mu.Lock()
	lowest, seen := f.lowest[0]
	f.mu.Unlock()
	f.watching(false)
	if code != http.StatusOK {
		t.Fatalf("%d: %s", code, body)
	}
	if got := listedChanges(body); !slices.Equal(got, []string{"F:first", "E:first", "D:first"}) {
		t.Errorf("listed %v, want the newest 3", got)
	}
	if !strings.Contains(body, `id="repromise-capped"`) || !strings.Contains(body, "the newest 3 records of each partition") {
		t.Error("the page does not say that it read only the newest")
	}
	if !seen || lowest < 3 {
		t.Errorf("fetched from offset %d (fetched: %v), want no lower than 3: the older records are not read", lowest, seen)
	}
}

// Without a commitments topic the page says it cannot list anything.
func TestRepromisesWithoutATopicSaySo(t *testing.T) {
	f := newDLQFixture(t, 1, nil)
	code, body := f.get(context.Background(), "/console/commitments")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not configured with the brokers and commitments topic") {
		t.Errorf("%d, want 503 saying why", code)
	}
}
