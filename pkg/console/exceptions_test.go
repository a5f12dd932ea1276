package console_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/console"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
)

const (
	dlqTopic    = "stockflow.dlq"
	sourceTopic = "stockflow.inventory"
	ledgerTopic = "stockflow.ledger"
	adminKey    = "admin-key-0123456789abcdef"
	readKey     = "read-key-0123456789abcdef"
	stateKey    = "sf:dlq:state"
)

// base is when the first dead letter failed; each next one a minute later.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// deadLetter is one dead letter the harness writes.
type deadLetter struct {
	partition int32
	class     string
	message   string
	key       string
	value     []byte
}

type harness struct {
	t       *testing.T
	e       *echo.Echo
	brokers []string
	redis   *miniredis.Miniredis
}

// newHarness is a console over an in-process Kafka whose dead-letter topic
// (two partitions) holds, in this order of time:
//
//	0:0 unknown_uom SKU-1 PALLET   0:1 unknown_uom SKU-2 PALLET
//	1:0 unknown_uom SKU-3 at DC-NORTH   1:1 bad_magic (not Avro)
func newHarness(t *testing.T) *harness {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, dlqTopic), kfake.SeedTopics(1, sourceTopic), kfake.SeedTopics(1, ledgerTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	brokers := kc.ListenAddrs()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(sku, loc, uom string) []byte {
		b, err := codec.Encode(context.Background(), sourceTopic, &events.InventoryReceived{
			Meta: events.Meta{EventID: "ev-" + sku, EventTime: base, Source: "wms"},
			SKU:  sku, Location: loc, Quantity: 3, UoM: uom,
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	writeDeadLetters(t, brokers, []deadLetter{
		{0, deadletter.ClassUnknownUoM, "no conversion from PALLET for SKU-1", "SKU-1", enc("SKU-1", "DC-EAST", "PALLET")},
		{0, deadletter.ClassUnknownUoM, "no conversion from PALLET for SKU-2", "SKU-2", enc("SKU-2", "DC-EAST", "PALLET")},
		{1, deadletter.ClassUnknownUoM, "no conversion from CASE for SKU-3", "SKU-3", enc("SKU-3", "DC-NORTH", "CASE")},
		{1, "bad_magic", "not Confluent wire format: magic byte is not 0", "SKU-4", []byte(`{"sku":"SKU-4"}`)},
	})

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	con, err := console.New(console.Config{
		Kafka: []kgo.Opt{kgo.SeedBrokers(brokers...)}, DLQTopic: dlqTopic, Producer: prod, Codec: codec, Redis: rdb,
		Replay: deadletter.ReplayTargets{Topics: config.Topics{Inventory: sourceTopic, Orders: "stockflow.orders", Ledger: ledgerTopic}, Codec: codec},
		Keys:   map[string][]string{adminKey: {"admin"}, readKey: {"read"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	con.Register(e)
	return &harness{t: t, e: e, brokers: brokers, redis: mr}
}

// writeDeadLetters writes dead letters as the pipeline does, each from its
// own offset of the source topic and a minute after the one before.
func writeDeadLetters(t *testing.T, brokers []string, ds []deadLetter) {
	t.Helper()
	w, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, d := range ds {
		at := base.Add(time.Duration(i) * time.Minute)
		r := &kgo.Record{Topic: dlqTopic, Partition: d.partition, Key: []byte(d.key), Value: d.value, Timestamp: at,
			Headers: []kgo.RecordHeader{
				{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
				{Key: deadletter.HeaderSourceTopic, Value: []byte(sourceTopic)},
				{Key: deadletter.HeaderSourcePartition, Value: []byte("0")},
				{Key: deadletter.HeaderSourceOffset, Value: []byte{byte('0' + i)}},
				{Key: deadletter.HeaderErrorClass, Value: []byte(d.class)},
				{Key: deadletter.HeaderErrorMessage, Value: []byte(d.message)},
				{Key: deadletter.HeaderErrorTime, Value: []byte(at.Format(time.RFC3339Nano))},
			}}
		if err := w.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// session is a signed-in browser: it keeps the console's cookie.
type session struct {
	h      *harness
	cookie *http.Cookie
}

func (h *harness) signIn(key string) *session {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/console/login", strings.NewReader(url.Values{"key": {key}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.e.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		h.t.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == "stockflow_console" {
			return &session{h: h, cookie: c}
		}
	}
	h.t.Fatal("sign-in set no cookie")
	return nil
}

func (s *session) get(path string) (int, string) {
	s.h.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(s.cookie)
	rec := httptest.NewRecorder()
	s.h.e.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// post sends a form as a browser on the console's own page would.
func (s *session) post(path string, form url.Values) (int, string, string) {
	s.h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://example.com")
	req.AddCookie(s.cookie)
	rec := httptest.NewRecorder()
	s.h.e.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header().Get("Location")
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token on the page, as a browser would send it.
func (s *session) csrf() string {
	s.h.t.Helper()
	_, body := s.get("/console/exceptions")
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		s.h.t.Fatal("no csrf token on the page")
	}
	return m[1]
}

// action posts a form with the page's token and expects a redirect back.
func (s *session) action(path string, form url.Values) string {
	s.h.t.Helper()
	form.Set("csrf", s.csrf())
	code, body, loc := s.post(path, form)
	if code != http.StatusSeeOther {
		s.h.t.Fatalf("POST %s %v: %d %s", path, form, code, errorOf(body))
	}
	return loc
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// confirmClass asks to replay a class and returns the confirmation's form
// (without its token), and the page as "page".
func (s *session) confirmClass(form url.Values) url.Values {
	s.h.t.Helper()
	form.Set("step", "confirm")
	form.Set("csrf", s.csrf())
	code, body, _ := s.post("/console/exceptions/replay", form)
	if code != http.StatusOK {
		s.h.t.Fatalf("confirmation of %v: %d %s", form, code, errorOf(body))
	}
	out := url.Values{"page": {html.UnescapeString(body)}}
	if i := strings.Index(body, `class="replay-class-confirm`); i >= 0 {
		for _, m := range hiddenRe.FindAllStringSubmatch(body[i:], -1) {
			if m[1] != "csrf" {
				out.Set(m[1], html.UnescapeString(m[2]))
			}
		}
	}
	return out
}

var stateRe = regexp.MustCompile(`data-dlq="([^"]+)" data-state="([^"]+)" data-class="([^"]*)"`)

// states are the dead letters a page lists, in order, as "id state".
func states(body string) []string {
	var out []string
	for _, m := range stateRe.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1]+" "+m[2])
	}
	return out
}

var errorRe = regexp.MustCompile(`(?s)<p class="error" role="alert"[^>]*>(.*?)</p>`)

func errorOf(body string) string {
	if m := errorRe.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// replayed reads the source topic's records that carry the replay header,
// as "key replay-header".
func (h *harness) replayed() []string {
	h.t.Helper()
	var out []string
	err := deadletter.ReadTopic(context.Background(), []kgo.Opt{kgo.SeedBrokers(h.brokers...)}, sourceTopic, nil, func(r *kgo.Record) error {
		v, ok := deadletter.Header(r, deadletter.HeaderReplay)
		if !ok {
			h.t.Errorf("record %s on the source topic without a replay header", r.Key)
		}
		if _, ok := deadletter.Header(r, deadletter.HeaderErrorClass); ok {
			h.t.Errorf("replayed record %s keeps its dead-letter headers", r.Key)
		}
		out = append(out, string(r.Key)+" "+v)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func TestExceptionsPageListsDeadLettersNewestFirstAndDecoded(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn(adminKey)
	code, body := admin.get("/console/exceptions")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, errorOf(body))
	}
	// The bad_magic dead letter is the newest, so its group comes first;
	// within unknown_uom, newest first.
	got, want := states(body), []string{"1:1 open", "1:0 open", "0:1 open", "0:0 open"}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	text := html.UnescapeString(body)
	for _, s := range []string{
		`"uom": "PALLET"`, `"event_time": "2025-03-01T12:00:00Z"`, `"po_number": null`, // decoded to JSON
		"stockflow.v1.InventoryReceived",
		"no conversion from CASE for SKU-3",                     // the error
		"traceparent",                                           // the headers
		"The record cannot be shown decoded", `{"sku":"SKU-4"}`, // raw, with the reason
		`<form method="post" action="/console/exceptions/replay" class="replay-one`,
		`<form method="post" action="/console/exceptions/replay" class="replay-class`,
		`<form method="post" action="/console/exceptions/discard" class="discard`,
	} {
		if !strings.Contains(text, s) {
			t.Errorf("the page does not show %s", s)
		}
	}
	if !regexp.MustCompile(`<label for="dlq-0-1-reason">[^<]+</label><input id="dlq-0-1-reason" name="reason" required`).MatchString(body) {
		t.Error("the discard reason has no label or is not required")
	}
	groups := regexp.MustCompile(`<tr data-class="([^"]+)" data-source-topic="[^"]+">\s*<th scope="row"><a[^>]*>[^<]+</a></th>\s*<td>[^<]+</td>\s*<td class="n" data-count="open">(\d+)</td>`).FindAllStringSubmatch(body, -1)
	if len(groups) != 2 || groups[0][1] != "bad_magic" || groups[0][2] != "1" || groups[1][1] != "unknown_uom" || groups[1][2] != "3" {
		t.Errorf("groups %v, want bad_magic 1 open then unknown_uom 3 open", groups)
	}
}

func TestExceptionsFilterAndSearch(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn(adminKey)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"class=bad_magic", []string{"1:1 open"}},
		{"class=unknown_uom&source_topic=" + sourceTopic, []string{"1:0 open", "0:1 open", "0:0 open"}},
		{"source_topic=elsewhere", nil},
		{"q=sku-2", []string{"0:1 open"}},                // the key, any case
		{"q=CASE", []string{"1:0 open"}},                 // the error message
		{"q=dc-north", []string{"1:0 open"}},             // only in the decoded record
		{"q=%22sku%22%3A%22SKU-4", []string{"1:1 open"}}, // the raw text of an undecodable one
		{"state=replayed", nil},
	} {
		code, body := admin.get("/console/exceptions?" + tc.query)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.query, code, errorOf(body))
		}
		if got := states(body); !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %v, want %v", tc.query, got, tc.want)
		}
		if tc.want == nil && !strings.Contains(body, `id="dlq-none-match"`) {
			t.Errorf("%s: no empty state", tc.query)
		}
	}
}

func TestReplayOneReplaysItAndMarksItReplayed(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn(adminKey)
	loc := admin.action("/console/exceptions/replay", url.Values{"dlq": {"0:1"}, "return": {"class=unknown_uom"}})
	if !strings.HasPrefix(loc, "/console/exceptions?class=unknown_uom&done=") {
		t.Errorf("redirected to %s, want the page as filtered, with what was done", loc)
	}
	if got, want := h.replayed(), []string{"SKU-2 " + dlqTopic + "/0@1"}; !slices.Equal(got, want) {
		t.Fatalf("source topic has %v, want %v", got, want)
	}
	_, body := admin.get("/console/exceptions?state=all")
	if got := states(body); !slices.Contains(got, "0:1 replayed") || !slices.Contains(got, "0:0 open") {
		t.Fatalf("states %v: 0:1 should be replayed, the others open", got)
	}
	if !strings.Contains(body, "Replayed</dt><dd><time") {
		t.Error("the page does not say when and by whom it was replayed")
	}
	_, flash := admin.get(loc)
	if !strings.Contains(flash, `<p class="flash" role="status">Dead letter replayed to its source topic.`) {
		t.Error("the page does not say what was done")
	}
	var m struct{ State, By string }
	if err := json.Unmarshal([]byte(h.redis.HGet(stateKey, "0:1")), &m); err != nil || m.State != "replayed" || !strings.Contains(m.By, "admin") {
		t.Errorf("state in Redis %+v (%v)", m, err)
	}
	if !regexp.MustCompile(`<td>replay</td><td>dead letter 0:1 \(unknown_uom from ` + regexp.QuoteMeta(sourceTopic) + ` 0:1\)</td>`).MatchString(body) {
		t.Error("the replay is not in the recent actions")
	}

	// The open view no longer lists it, and it cannot go twice.
	_, body = admin.get("/console/exceptions")
	if slices.Contains(states(body), "0:1 replayed") {
		t.Error("the default view lists a replayed dead letter")
	}
	code, body, _ := admin.post("/console/exceptions/replay", url.Values{"dlq": {"0:1"}, "csrf": {admin.csrf()}})
	if code != http.StatusConflict || !strings.Contains(errorOf(body), "already replayed") {
		t.Errorf("replaying it again: %d %q", code, errorOf(body))
	}
	if n := len(h.replayed()); n != 1 {
		t.Errorf("%d records replayed, want 1", n)
	}
}

func TestReplayClassReplaysOnlyTheOpenOnes(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn(adminKey)
	admin.action("/console/exceptions/discard", url.Values{"dlq": {"0:0"}, "reason": {"test record from staging"}})
	admin.action("/console/exceptions/replay", url.Values{"dlq": {"0:1"}})
	confirm := admin.confirmClass(url.Values{"class": {"unknown_uom"}, "source_topic": {sourceTopic}})
	if !strings.Contains(confirm.Get("page"), "1 dead letter to <code>"+sourceTopic+"</code>") {
		t.Errorf("the confirmation does not say that 1 goes to %s", sourceTopic)
	}
	if n := len(h.replayed()); n != 1 {
		t.Fatalf("%d records on the source topic before the class replay was confirmed, want 1", n)
	}
	confirm.Del("page")
	loc := admin.action("/console/exceptions/replay", confirm)
	want := []string{"SKU-2 " + dlqTopic + "/0@1", "SKU-3 " + dlqTopic + "/1@0"}
	if got := h.replayed(); !slices.Equal(got, want) {
		t.Fatalf("source topic has %v, want %v: the discarded one must not go, the replayed one not again", got, want)
	}
	_, body := admin.get(loc)
	if !strings.Contains(loc, "done=dlq-replayed-class") || !strings.Contains(body, `<p class="flash" role="status">The open dead letters were replayed`) {
		t.Errorf("flash: %s", regexp.MustCompile(`<p class="flash"[^>]*>[^<]*`).FindString(body))
	}
	_, body = admin.get("/console/exceptions?state=all")
	want = []string{"1:1 open", "1:0 replayed", "0:1 replayed", "0:0 discarded"}
	if got := states(body); !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	if !strings.Contains(body, "<td>replay-class</td><td>class unknown_uom from "+sourceTopic+": 1 replayed (1:0)</td>") {
		t.Error("the class replay is not in the recent actions")
	}
	// Nothing open is left of the class: nothing more goes.
	if page := admin.confirmClass(url.Values{"class": {"unknown_uom"}}).Get("page"); !strings.Contains(page, `id="replay-nothing"`) {
		t.Error("the confirmation of a class with nothing open offers a replay")
	}
	if n := len(h.replayed()); n != 2 {
		t.Errorf("%d records replayed, want 2", n)
	}
}

func TestDiscardNeedsAReason(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn(adminKey)
	for _, reason := range []string{"", "   ", strings.Repeat("x", 201)} {
		code, body, _ := admin.post("/console/exceptions/discard", url.Values{"dlq": {"1:1"}, "reason": {reason}, "csrf": {admin.csrf()}})
		if code != http.StatusBadRequest || !strings.Contains(errorOf(body), "reason") {
			t.Errorf("reason %q: %d %q, want 400 saying the reason is needed", reason, code, errorOf(body))
		}
	}
	if h.redis.Exists(stateKey) {
		t.Fatal("a refused discard recorded a state")
	}
	admin.action("/console/exceptions/discard", url.Values{"dlq": {"1:1"}, "reason": {"a <test> record"}})
	_, body := admin.get("/console/exceptions?state=discarded")
	if got := states(body); !slices.Equal(got, []string{"1:1 discarded"}) {
		t.Fatalf("states %v", got)
	}
	if !strings.Contains(body, `<q class="reason">a &lt;test&gt; record</q>`) {
		t.Error("the reason is not shown, escaped")
	}
	if strings.Contains(body, `name="dlq" value="1:1"`) {
		t.Error("a discarded dead letter still has action forms")
	}
	if !strings.Contains(body, "<td>discard</td><td>dead letter 1:1 (bad_magic from "+sourceTopic+" 0:3): a &lt;test&gt; record</td>") {
		t.Error("the discard is not in the recent actions")
	}
	code, body, _ := admin.post("/console/exceptions/discard", url.Values{"dlq": {"1:1"}, "reason": {"again"}, "csrf": {admin.csrf()}})
	if code != http.StatusConflict || !strings.Contains(errorOf(body), "already discarded") {
		t.Errorf("discarding twice: %d %q", code, errorOf(body))
	}
	code, body, _ = admin.post("/console/exceptions/discard", url.Values{"dlq": {"1:9"}, "reason": {"gone"}, "csrf": {admin.csrf()}})
	if code != http.StatusNotFound {
		t.Errorf("discarding a dead letter that is not there: %d %q", code, errorOf(body))
	}
}

func TestReadKeySeesNoActionsAndCannotAct(t *testing.T) {
	h := newHarness(t)
	reader := h.signIn(readKey)
	code, body := reader.get("/console/exceptions")
	if code != http.StatusOK || len(states(body)) != 4 {
		t.Fatalf("%d, listed %v", code, states(body))
	}
	for _, class := range []string{"replay-one", "replay-class", "discard"} {
		if regexp.MustCompile(`<form[^>]*class="` + class).MatchString(body) {
			t.Errorf("a read key sees a %s form", class)
		}
	}
	code, _, _ = reader.post("/console/exceptions/replay", url.Values{"dlq": {"0:0"}, "csrf": {reader.csrf()}})
	if code != http.StatusForbidden {
		t.Errorf("a read key's replay: %d, want 403", code)
	}
	if n := len(h.replayed()); n != 0 {
		t.Errorf("%d records replayed", n)
	}
}

func TestFormsWithoutTheSessionsTokenAreRefused(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn(adminKey)
	other := h.signIn(readKey) // another session's token is not this one's
	for name, form := range map[string]url.Values{
		"no token":                {"dlq": {"0:0"}},
		"wrong token":             {"dlq": {"0:0"}, "csrf": {"forged"}},
		"another session's token": {"dlq": {"0:0"}, "csrf": {other.csrf()}},
	} {
		for _, path := range []string{"/console/exceptions/replay", "/console/exceptions/discard"} {
			form.Set("reason", "forged")
			if code, _, _ := admin.post(path, form); code != http.StatusForbidden {
				t.Errorf("%s to %s: %d, want 403 (%v)", name, path, code, form)
			}
		}
	}
	if n := len(h.replayed()); n != 0 {
		t.Errorf("%d records replayed", n)
	}
	if h.redis.Exists(stateKey) {
		t.Error("a forged form recorded a state")
	}
}

func TestAMarkOfARecordThatIsGoneIsIgnored(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn(adminKey)
	// A mark left from before the topic was re-created: same offset, other record.
	h.redis.HSet(stateKey, "0:0", `{"state":"discarded","at":"2024-01-01T00:00:00Z","by":"someone","record_ms":1}`)
	h.redis.HSet(stateKey, "0:1", `{"state":"discarded","at":"2024-01-01T00:00:00Z","by":"someone","reason":"old"}`)
	_, body := admin.get("/console/exceptions?state=all")
	got := states(body)
	if !slices.Contains(got, "0:0 open") || !slices.Contains(got, "0:1 discarded") {
		t.Errorf("states %v: a mark for another record must not apply, one without a record time must", got)
	}
}

// A dead letter is replayed only to the source topic its record's type
// belongs on: one that names the ledger (its headers are anyone's to write
// who can write the dead-letter topic) or carries an order as an inventory
// event is refused, stays open, and nothing reaches any topic.
func TestReplayRefusesForgedDeadLetters(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	loc := "DC-EAST"
	count, err := codec.Encode(ctx, ledgerTopic, &events.LedgerEntry{EntryType: events.EntryCount, SKU: "SKU-1", Location: &loc,
		Quantity: 999_999, AsOf: &base, EventID: "forged", EventTime: base, Source: "attacker"})
	if err != nil {
		t.Fatal(err)
	}
	order, err := codec.Encode(ctx, "stockflow.orders", &events.OrderAccepted{Meta: events.Meta{EventID: "o-1", EventTime: base, Source: "oms"},
		OrderID: "SO-1", Channel: "web", Lines: []events.OrderLine{{LineID: "1", SKU: "SKU-1", Location: &loc, Quantity: 1, UoM: "EA"}}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, f := range []struct {
		topic string
		value []byte
	}{{ledgerTopic, count}, {sourceTopic, order}} {
		r := &kgo.Record{Topic: dlqTopic, Partition: 1, Key: []byte("SKU-1"), Value: f.value, Timestamp: base,
			Headers: []kgo.RecordHeader{
				{Key: deadletter.HeaderSourceTopic, Value: []byte(f.topic)},
				{Key: deadletter.HeaderErrorClass, Value: []byte(deadletter.ClassUnknownUoM)},
				{Key: deadletter.HeaderErrorMessage, Value: []byte("forged")},
				{Key: deadletter.HeaderErrorTime, Value: []byte(base.Format(time.RFC3339Nano))},
			}}
		if err := w.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	admin := h.signIn(adminKey)
	for _, c := range []struct{ id, why string }{
		{"1:2", "which is not a source topic"},
		{"1:3", "belongs on stockflow.orders, not " + sourceTopic},
	} {
		form := url.Values{"dlq": {c.id}, "csrf": {admin.csrf()}}
		code, body, _ := admin.post("/console/exceptions/replay", form)
		if code != http.StatusConflict || !strings.Contains(errorOf(body), c.why) {
			t.Fatalf("replay of forged %s: %d %q, want 409 saying %q", c.id, code, errorOf(body), c.why)
		}
	}
	// A class-wide replay leaves them too, and replays the genuine ones.
	confirm := admin.confirmClass(url.Values{"class": {deadletter.ClassUnknownUoM}})
	if !strings.Contains(confirm.Get("page"), "2 open dead letters of this class cannot be replayed") {
		t.Error("the confirmation does not say that the forged ones stay")
	}
	confirm.Del("page")
	admin.action("/console/exceptions/replay", confirm)
	_, body := admin.get("/console/exceptions?state=all")
	if got := states(body); !slices.Contains(got, "1:2 open") || !slices.Contains(got, "1:3 open") {
		t.Fatalf("states %v: the forged dead letters should stay open", got)
	}
	var onLedger int
	if err := deadletter.ReadTopic(ctx, []kgo.Opt{kgo.SeedBrokers(h.brokers...)}, ledgerTopic, nil, func(*kgo.Record) error {
		onLedger++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if onLedger != 0 {
		t.Fatalf("%d records reached the ledger topic", onLedger)
	}
	for _, r := range h.replayed() {
		if strings.HasPrefix(r, "SKU-1 "+dlqTopic+"/1@") {
			t.Fatalf("a forged dead letter was replayed: %s", r)
		}
	}
}

// A run that stored only some of its exceptions says so on the run's page
// and in the list of runs, beside its status.
func TestTruncatedRunSaysSo(t *testing.T) {
	const note = "truncated: 4 of the run&#39;s 6 exceptions are stored, the cap of a run"
	run := `{"id":"T","source":"ERP","locations":["L1"],"as_of":"2026-11-27T11:00:00Z","status":"completed","expected_lines":6,"lines":6,` +
		`"counts":{"drift":6},"started_at":"2026-11-27T12:00:00Z","unstored":{"drift":2},` +
		`"truncated":"truncated: 4 of the run's 6 exceptions are stored, the cap of a run; the other 2 (drift 2) are counted by class but not listed, published or applied"}`
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/reconciliations":
			w.Write([]byte(`{"runs":[` + run + `]}`))
		case "/v1/reconciliations/T":
			w.Write([]byte(`{"run":` + run + `,"exceptions":[],"next_cursor":""}`))
		default:
			http.NotFound(w, r)
		}
	})
	con, err := console.New(console.Config{API: api})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	con.Register(e)
	for _, path := range []string{"/console/reconciliations/T", "/console/reconciliations"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "localhost"
		e.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), note) {
			t.Errorf("%s: %d, does not say the run was truncated:\n%s", path, rec.Code, rec.Body.String())
		}
	}
}

// Signing in is not an action: a read key signing in over and over leaves
// the recent actions, the audit list in Redis, as they were.
func TestSignInsDoNotPushActionsOutOfTheAudit(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn(adminKey)
	admin.action("/console/exceptions/discard", url.Values{"dlq": {"1:1"}, "reason": {"staging record"}})
	for range 10_001 {
		h.signIn(readKey)
	}
	_, body := admin.get("/console/exceptions?state=all")
	if !strings.Contains(body, "<td>discard</td><td>dead letter 1:1 (") {
		t.Error("the discard is no longer in the recent actions after the read key's sign-ins")
	}
}
