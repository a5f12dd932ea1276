package console

import (
	"context"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stockflow/stockflow/pkg/deadletter"
)

// confirmForm posts a class replay's confirmation step and returns the
// form its page carries, to replay.
func (f *dlqFixture) confirmForm(class string) url.Values {
	f.t.Helper()
	rec := f.post("/console/exceptions/replay", url.Values{"class": {class}, "source_topic": {fxSource}, "step": {"confirm"}, "return": {"class=" + class}})
	if rec.Code != http.StatusOK {
		f.t.Fatalf("confirmation: %d", rec.Code)
	}
	return replayForm(f.t, rec.Body.String())
}

// replayForm is the replay form a page carries, but its CSRF token.
func replayForm(t *testing.T, page string) url.Values {
	t.Helper()
	form := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(page, -1) {
		if m[1] != "csrf" {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
	}
	if form.Get("step") != "replay" {
		t.Fatalf("the page carries no replay form: %v", form)
	}
	return form
}

var stoppedRe = regexp.MustCompile(`id="replay-stopped">[^<]*?([0-9,]+) were replayed and marked, and ([0-9,]+) of those the confirmation counted remain open`)

// A confirmed class replay works for at most its budget, well inside the
// HTTP server's write timeout: past it, it stops between batches, each
// written and marked, and says how many were replayed and how many remain,
// with a form to go on from where it stopped.
func TestClassReplayStopsWithinItsBudget(t *testing.T) {
	const budget, total = time.Second, 600
	f := newDLQFixture(t, 2, func(c *Config) { c.ReplayBudget = budget })
	var recs []*kgo.Record
	for i := range total {
		recs = append(recs, f.deadLetterRecord(int32(i%2), deadletter.ClassUnknownUoM, fmt.Sprintf("SKU-%d", i), f.receipt(fmt.Sprintf("SKU-%d", i))))
	}
	f.write(recs...)
	var slow atomic.Bool
	f.kc.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		f.kc.KeepControl()
		if slow.Load() {
			time.Sleep(budget * 6 / 10)
		}
		return nil, nil, false
	})
	form := f.confirmForm(deadletter.ClassUnknownUoM)
	slow.Store(true)
	start := time.Now()
	rec := f.post("/console/exceptions/replay", form)
	took := time.Since(start)
	slow.Store(false)
	body := html.UnescapeString(rec.Body.String())
	m := stoppedRe.FindStringSubmatch(body)
	if rec.Code != http.StatusOK || m == nil {
		t.Fatalf("a replay past its budget: %d, does not say it stopped:\n%s", rec.Code, body)
	}
	if took > 3*budget {
		t.Errorf("the replay answered after %s, its budget %s", took, budget)
	}
	done := f.sourceRecords()
	if m[1] != fmt.Sprint(done) || m[2] != fmt.Sprint(total-done) || done == 0 || done >= total {
		t.Fatalf("the page says %s replayed and %s remain; %d are on the source topic", m[1], m[2], done)
	}
	// Confirming again goes on from where it stopped, to the end.
	again := replayForm(t, rec.Body.String())
	f.watching(true)
	rec = f.post("/console/exceptions/replay", again)
	lowest := maps.Clone(f.lowest)
	f.watching(false)
	from, _ := parseOffsets(again.Get("from"))
	for p, o := range from {
		if lo, ok := lowest[p]; ok && lo < o {
			t.Errorf("going on from %s fetched partition %d from %d: it read again what it had read", again.Get("from"), p, lo)
		}
	}
	if from[0]+from[1] == 0 {
		t.Errorf("going on from %q: from the start", again.Get("from"))
	}
	if rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "done=dlq-replayed-class") {
		t.Fatalf("going on: %d to %s", rec.Code, rec.Header().Get("Location"))
	}
	if n := f.sourceRecords(); n != total {
		t.Fatalf("%d replayed in all, want %d", n, total)
	}
	if _, body := f.get(context.Background(), "/console/exceptions?class=unknown_uom"); len(listed(body)) != 0 {
		t.Errorf("still open: %v", listed(body))
	}
}

// A class replay that fails gives its slot back before it shows the
// exception queue, which reads the topic with one: with the other slot
// taken, the queue is still listed under the error.
func TestFailedClassReplayReleasesItsSlotFirst(t *testing.T) {
	closed, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	f := newDLQFixture(t, 1, func(c *Config) { c.Producer = closed; c.ScanTimeout = 2 * time.Second })
	f.write(f.deadLetterRecord(0, deadletter.ClassUnknownUoM, "SKU-1", f.receipt("SKU-1")))
	form := f.confirmForm(deadletter.ClassUnknownUoM)
	f.con.scans <- struct{}{} // another view reads the topic
	defer func() { <-f.con.scans }()
	rec := f.post("/console/exceptions/replay", form)
	body := rec.Body.String()
	if rec.Code != http.StatusBadGateway || !strings.Contains(body, "stopped") {
		t.Fatalf("a failed replay: %d\n%s", rec.Code, body)
	}
	if got := listed(body); len(got) != 1 || strings.Contains(body, "two other views") {
		t.Errorf("the failed replay's page lists %v: it could not read the topic while the replay held a slot", got)
	}
}
