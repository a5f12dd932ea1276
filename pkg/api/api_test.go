package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/reconcile"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func sp(s string) *string { return &s }

// fixture is a server over a miniredis ledger, with no Kafka: enough for
// every route that only reads, and for request validation.
type fixture struct {
	srv     *httptest.Server
	store   *ledger.Store
	ch      *Checkout
	brokers []string
	off     int64
}

func newFixture(t testing.TB, mod func(*CheckoutConfig)) *fixture {
	t.Helper()
	return newServerFixture(t, Config{}, mod)
}

// newServerFixture is newFixture with a server configuration.
func newServerFixture(t testing.TB, srv Config, mod func(*CheckoutConfig)) *fixture {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	store := ledger.New(rdb, ledger.Config{})
	rules, err := atp.ParseChannelRules("web=cap:50%;stores=protect:10")
	if mod == nil {
		mod = func(*CheckoutConfig) {}
	}
	if err != nil {
		t.Fatal(err)
	}
	// An in-process broker takes what the API produces (policies).
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "stockflow.ledger.v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kf.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kf.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := CheckoutConfig{
		Store: store, LedgerTopic: "stockflow.ledger.v1", InstanceID: "test", Producer: prod, Codec: codec,
		Groups: map[string][]string{"G1": {"L1", "L2", "L3"}},
		Rules:  rules, Supply: atp.AllSupply, Now: func() time.Time { return now },
	}
	mod(&cfg)
	srv.Addr = "127.0.0.1:0"
	s := New(srv)
	ch := NewCheckout(cfg)
	ch.Register(s)
	f := &fixture{srv: httptest.NewServer(s.Echo()), store: store, ch: ch, brokers: kf.ListenAddrs()}
	t.Cleanup(f.srv.Close)
	return f
}

// running starts a Server as the service does, on its own listener with
// its http.Server limits and timeouts, with the read-only checkout routes
// over a miniredis ledger; it returns the server's host:port.
func running(t *testing.T, cfg Config) string {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	cfg.Addr = "127.0.0.1:0"
	s := New(cfg)
	NewCheckout(CheckoutConfig{Store: ledger.New(rdb, ledger.Config{}), InstanceID: "test", Supply: atp.AllSupply}).Register(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	for s.Addr() == nil {
		select {
		case err := <-done:
			t.Fatalf("run: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return s.Addr().String()
}

// apply writes ledger entries straight into the store (no Kafka).
func (f *fixture) apply(t testing.TB, es ...*events.LedgerEntry) {
	t.Helper()
	for _, e := range es {
		e.EventID = fmt.Sprint("e", f.off)
		if e.EventTime.IsZero() {
			e.EventTime = now.Add(-time.Hour)
		}
		if _, err := f.store.Apply(context.Background(), []ledger.Batch{{SKU: e.SKU, Entries: []ledger.Entry{{LedgerEntry: e, Offset: f.off}}}}); err != nil {
			t.Fatal(err)
		}
		f.off++
	}
}

func (f *fixture) do(t *testing.T, method, path, body string, hdr ...string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	// hdr is name, value, ...; an empty value removes the header.
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, resp.Header, out
}

func receipt(sku, loc string, q int64) *events.LedgerEntry {
	return &events.LedgerEntry{EntryType: events.EntryReceipt, SKU: sku, Location: sp(loc), Quantity: q}
}

func TestAvailabilityByLocation(t *testing.T) {
	f := newFixture(t, nil)
	ack := &events.LedgerEntry{EntryType: events.EntryPOAck, SKU: "A", Location: sp("L1"), PONumber: sp("PO1"), POLine: new(int32), Quantity: 30,
		Status: sp("ACCEPTED"), ExpectedDate: ptrTime(now.AddDate(0, 0, 4))}
	f.apply(t, receipt("A", "L1", 40),
		&events.LedgerEntry{EntryType: events.EntryPolicy, SKU: "A", Location: sp("L1"), SafetyStock: ptrInt(5), ReorderPoint: ptrInt(20)},
		&events.LedgerEntry{EntryType: events.EntryPOLine, SKU: "A", Location: sp("L1"), PONumber: sp("PO1"), POLine: new(int32), Quantity: 30, ExpectedDate: ptrTime(now.AddDate(0, 0, 3))},
		ack)
	code, _, body := f.do(t, "GET", "/v1/availability/A?location=L1", "")
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	// 40 on hand - 5 safety stock = 35, less 10 protected for the stores channel.
	if body["atp"] != 25.0 || body["on_hand"] != 40.0 || body["safety_stock"] != 5.0 || body["shortfall"] != 0.0 {
		t.Fatalf("body %v", body)
	}
	inb, _ := body["inbound"].([]any)
	if len(inb) != 1 || inb[0].(map[string]any)["date"] != "2026-11-30" || inb[0].(map[string]any)["quantity"] != 30.0 {
		t.Fatalf("inbound %v", body["inbound"])
	}
	_, _, body = f.do(t, "GET", "/v1/availability/A?location=L1&at=2026-11-30", "")
	if body["atp"] != 55.0 { // 35 + 30 acknowledged by the 30th, less the protection
		t.Fatalf("time-phased atp %v", body["atp"])
	}
	_, _, body = f.do(t, "GET", "/v1/availability/A?location=L1&channel=stores", "")
	if body["atp"] != 35.0 { // its own protection does not apply to it
		t.Fatalf("stores channel atp %v", body["atp"])
	}
	_, _, body = f.do(t, "GET", "/v1/availability/A?location=L1&channel=web", "")
	if body["atp"] != 17.0 { // 35 - 10 protected for stores = 25, capped at 50% of 35 = 17
		t.Fatalf("web channel atp %v", body["atp"])
	}
}

func TestAvailabilityByGroup(t *testing.T) {
	f := newFixture(t, nil)
	f.apply(t, receipt("B", "L1", 50), receipt("B", "L3", 20),
		&events.LedgerEntry{EntryType: events.EntryAdjustment, SKU: "B", Location: sp("L2"), Quantity: -10},
		&events.LedgerEntry{EntryType: events.EntryOrderLine, SKU: "B", Group: sp("G1"), OrderID: sp("O1"), LineID: sp("1"), Quantity: 5})
	// L2 is short by 10 but takes nothing from the others; 5 units are
	// reserved against the group: 50 + 20 - 5 = 65 before channel rules.
	code, _, body := f.do(t, "GET", "/v1/availability/B?group=G1&channel=stores", "")
	if code != 200 || body["atp"] != 65.0 {
		t.Fatalf("%d %v", code, body)
	}
	// Every member of G1, in the group's order, each with its own ATP.
	locs, _ := body["locations"].([]any)
	want := []struct {
		location string
		atp      float64
	}{{"L1", 50}, {"L2", 0}, {"L3", 20}}
	if len(locs) != len(want) {
		t.Fatalf("locations %v, want %v", body["locations"], want)
	}
	for i, w := range want {
		m, _ := locs[i].(map[string]any)
		if m["location"] != w.location || m["atp"] != w.atp {
			t.Fatalf("locations[%d] = %v, want %s with atp %v (all: %v)", i, locs[i], w.location, w.atp, locs)
		}
	}
	for ch, w := range map[string]float64{"web": 32, "stores": 65, "": 55} {
		_, _, body = f.do(t, "GET", "/v1/availability/B?group=G1&channel="+ch, "")
		if body["atp"] != w {
			t.Errorf("channel %q: atp %v, want %v", ch, body["atp"], w)
		}
	}
}

func TestBatchQueryWithPromiseDates(t *testing.T) {
	f := newFixture(t, func(c *CheckoutConfig) { c.Rules = nil })
	asn := &events.LedgerEntry{EntryType: events.EntryASNLine, SKU: "C", Location: sp("L1"), PONumber: sp("PO9"), POLine: new(int32), Quantity: 40,
		ASNID: sp("ASN1"), ETA: ptrTime(now.AddDate(0, 0, 2))}
	rej := &events.LedgerEntry{EntryType: events.EntryPOAck, SKU: "C", Location: sp("L1"), PONumber: sp("PO8"), POLine: new(int32), Quantity: 0, Status: sp("REJECTED")}
	f.apply(t, receipt("C", "L1", 10),
		&events.LedgerEntry{EntryType: events.EntryPOLine, SKU: "C", Location: sp("L1"), PONumber: sp("PO9"), POLine: new(int32), Quantity: 40, ExpectedDate: ptrTime(now.AddDate(0, 0, 6))},
		asn,
		&events.LedgerEntry{EntryType: events.EntryPOLine, SKU: "C", Location: sp("L1"), PONumber: sp("PO8"), POLine: new(int32), Quantity: 500, ExpectedDate: ptrTime(now.AddDate(0, 0, 1))},
		rej)
	code, _, body := f.do(t, "POST", "/v1/availability/query", `{"lines":[
		{"sku":"C","location":"L1","quantity":10},
		{"sku":"C","location":"L1","quantity":30},
		{"sku":"C","location":"L1","quantity":51},
		{"sku":"C","group":"G1","quantity":12}]}`)
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	lines := body["lines"].([]any)
	want := []struct {
		fulfill bool
		date    any
	}{{true, "2026-11-26"}, {false, "2026-11-28"}, {false, nil}, {false, "2026-11-28"}}
	for i, w := range want {
		l := lines[i].(map[string]any)
		if l["can_fulfill"] != w.fulfill || l["promise_date"] != w.date {
			t.Errorf("line %d: %v, want fulfill %v date %v", i, l, w.fulfill, w.date)
		}
	}
}

func ptrTime(t time.Time) *time.Time { return &t }
func ptrInt(v int64) *int64          { return &v }

func TestBadRequestsNameTheField(t *testing.T) {
	f := newFixture(t, nil)
	big := `{"lines":[` + strings.Repeat(`{"sku":"A","location":"L1","quantity":1},`, 1000) + `{"sku":"A","location":"L1","quantity":1}]}`
	cases := []struct {
		name, method, path, body, field string
		code                            int
	}{
		{"bad sku", "GET", "/v1/availability/bad%20sku?location=L1", "", "sku", 400},
		{"sku too long", "GET", "/v1/availability/" + strings.Repeat("x", 65) + "?location=L1", "", "sku", 400},
		{"no location or group", "GET", "/v1/availability/A", "", "location", 400},
		{"both location and group", "GET", "/v1/availability/A?location=L1&group=G1", "", "location", 400},
		{"unknown group", "GET", "/v1/availability/A?group=NOPE", "", "group", 400},
		{"bad date", "GET", "/v1/availability/A?location=L1&at=tomorrow", "", "at", 400},
		{"bad channel", "GET", "/v1/availability/A?location=L1&channel=a%20b", "", "channel", 400},
		{"query: empty lines", "POST", "/v1/availability/query", `{"lines":[]}`, "lines", 400},
		{"query: too many lines", "POST", "/v1/availability/query", big, "lines", 400},
		{"query: zero quantity", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","quantity":0}]}`, "lines[0].quantity", 400},
		{"query: quantity is a string", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","quantity":"3"}]}`, "lines[0].quantity", 400},
		{"query: unknown field", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","quantity":3,"qty":1}]}`, "lines[0].qty", 400},
		{"query: bad location", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L 1","quantity":3}]}`, "lines[0].location", 400},
		{"query: malformed", "POST", "/v1/availability/query", `{"lines":[`, "", 400},
		{"hold: ttl too long", "POST", "/v1/holds", `{"hold_id":"h1","ttl_seconds":7200,"lines":[{"sku":"A","location":"L1","quantity":1}]}`, "ttl_seconds", 400},
		{"hold: bad id", "POST", "/v1/holds", `{"hold_id":"h 1","ttl_seconds":60,"lines":[{"sku":"A","location":"L1","quantity":1}]}`, "hold_id", 400},
		{"hold: no lines", "POST", "/v1/holds", `{"hold_id":"h1","ttl_seconds":60,"lines":[]}`, "lines", 400},
		{"hold: negative quantity", "POST", "/v1/holds", `{"hold_id":"h1","ttl_seconds":60,"lines":[{"sku":"A","location":"L1","quantity":-1}]}`, "lines[0].quantity", 400},
		{"hold: same line twice", "POST", "/v1/holds", `{"hold_id":"h1","ttl_seconds":60,"lines":[{"sku":"A","location":"L1","quantity":1},{"sku":"A","location":"L1","quantity":1}]}`, "lines[1].sku", 400},
		{"release: bad id", "DELETE", "/v1/holds/a%20b", "", "hold_id", 400},
		{"release: unknown", "DELETE", "/v1/holds/never-placed", "", "hold_id", 404},
		{"policy: missing reorder point", "PUT", "/v1/policies/A/L1", `{"safety_stock":3}`, "reorder_point", 400},
		{"policy: negative", "PUT", "/v1/policies/A/L1", `{"safety_stock":-3,"reorder_point":1}`, "safety_stock", 400},
		{"policy: bad location", "PUT", "/v1/policies/A/L%201", `{"safety_stock":3,"reorder_point":1}`, "location", 400},
		{"positions: no location", "GET", "/v1/positions/A", "", "location", 400},
		{"unknown route", "GET", "/v1/nope", "", "", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := f.do(t, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			if body["status"] != float64(tc.code) || body["title"] == "" || body["type"] == "" {
				t.Fatalf("not a problem document: %v", body)
			}
			if got, _ := body["field"].(string); got != tc.field {
				t.Fatalf("field %q, want %q (%v)", got, tc.field, body)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	f := newFixture(t, nil)
	body := `{"lines":[{"sku":"A","location":"L1","quantity":1,"channel":"` + strings.Repeat("x", 2<<20) + `"}]}`
	code, _, _ := f.do(t, "POST", "/v1/availability/query", body)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", code)
	}
}

func TestAPIKeysAndScopes(t *testing.T) {
	f := newFixture(t, func(c *CheckoutConfig) {
		c.Keys = map[string][]string{"reader-0123456789abcd": {"read"}, "admin-0123456789abcde": {"admin"}}
	})
	cases := []struct {
		name, method, path, body, key string
		code                          int
	}{
		{"no key", "GET", "/v1/availability/A?location=L1", "", "", 401},
		{"unknown key", "GET", "/v1/availability/A?location=L1", "", "nope-0123456789abcdef", 401},
		{"read key reads", "GET", "/v1/availability/A?location=L1", "", "reader-0123456789abcd", 200},
		{"read key cannot hold", "POST", "/v1/holds", `{}`, "reader-0123456789abcd", 403},
		{"read key cannot set policy", "PUT", "/v1/policies/A/L1", `{}`, "reader-0123456789abcd", 403},
		{"admin reads too", "GET", "/v1/positions/A?location=L1", "", "admin-0123456789abcde", 200},
		{"health needs no key", "GET", "/healthz", "", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.key != "" {
				hdr = []string{"Authorization", "Bearer " + tc.key}
			}
			code, h, body := f.do(t, tc.method, tc.path, tc.body, hdr...)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, body)
			}
			if code == 401 && h.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestRateLimitPerKey(t *testing.T) {
	f := newFixture(t, func(c *CheckoutConfig) {
		c.RateLimit = 5
		c.Keys = map[string][]string{"key-a-0123456789abcdef": {"read"}, "key-b-0123456789abcdef": {"read"}}
	})
	limited := 0
	for i := 0; i < 30; i++ {
		code, h, _ := f.do(t, "GET", "/v1/availability/A?location=L1", "", "Authorization", "Bearer key-a-0123456789abcdef")
		if code == 429 {
			limited++
			if h.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
	}
	if limited < 15 {
		t.Fatalf("only %d of 30 rapid requests limited at 5/s (burst 10)", limited)
	}
	if code, _, _ := f.do(t, "GET", "/v1/availability/A?location=L1", "", "Authorization", "Bearer key-b-0123456789abcdef"); code != 200 {
		t.Fatalf("another key was limited too: %d", code)
	}
}

func TestOpenAPIDocumentValidatesAndMatchesRoutes(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiDoc)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	s := New(Config{Addr: "127.0.0.1:0"})
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	led := ledger.New(rdb, ledger.Config{})
	rec := reconcile.New(reconcile.Config{Ledger: led, Runs: reconcile.NewRuns(rdb, "sf", 0)})
	NewCheckout(CheckoutConfig{Store: led, InstanceID: "x", Reconciler: rec}).Register(s)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	served := map[string]bool{}
	gets := map[string]bool{}
	for _, r := range s.Echo().Routes() {
		if r.Method == http.MethodGet {
			gets[r.Path] = true
		}
	}
	for _, r := range s.Echo().Routes() {
		if r.Method == "echo_route_not_found" || strings.HasSuffix(r.Path, "/*") {
			continue
		}
		if r.Method == http.MethodHead {
			// Every GET route answers HEAD too, as the document says once.
			if !gets[r.Path] {
				t.Errorf("HEAD %s has no GET", r.Path)
			}
			continue
		}
		p := r.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		served[r.Method+" "+p] = true
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("route %s is not in openapi.yaml", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("openapi.yaml documents %s, which is not served", k)
		}
	}
	keys := slices.Collect(func(yield func(string) bool) {
		for k := range served {
			if !yield(k) {
				return
			}
		}
	})
	if len(keys) < 10 {
		t.Fatalf("only %d routes served: %v", len(keys), keys)
	}
}

func TestPanicBecomesAProblem(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"})
	s.Echo().GET("/boom", func(echo.Context) error { panic("secret internal detail") })
	srv := httptest.NewServer(s.Echo())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if strings.Contains(string(raw), "secret") {
		t.Fatalf("the answer leaks the panic: %s", raw)
	}
}

// The document says, in its schemas, what the server refuses, and lists
// the statuses each operation answers.
func TestOpenAPIDocumentExpressesTheContract(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapiDoc)
	if err != nil {
		t.Fatal(err)
	}
	bodies := []struct {
		name, schema, body string
		valid              bool
	}{
		{"a hold line at a location", "HoldLine", `{"sku":"A","location":"L1","quantity":1}`, true},
		{"a hold line for a group", "HoldLine", `{"sku":"A","group":"G1","quantity":1}`, true},
		{"a hold line with both", "HoldLine", `{"sku":"A","location":"L1","group":"G1","quantity":1}`, false},
		{"a hold line with neither", "HoldLine", `{"sku":"A","quantity":1}`, false},
		{"a query line with both", "QueryLine", `{"sku":"A","location":"L1","group":"G1","quantity":1}`, false},
		{"a query line with neither", "QueryLine", `{"sku":"A","quantity":1}`, false},
		{"a policy at the maximum", "PolicyRequest", `{"safety_stock":1000000000,"reorder_point":1000000000}`, true},
		{"a safety stock past the maximum", "PolicyRequest", `{"safety_stock":1000000001,"reorder_point":0}`, false},
		{"a reorder point past the maximum", "PolicyRequest", `{"safety_stock":0,"reorder_point":1000000001}`, false},
		{"a 64-character id", "Id", `"` + strings.Repeat("a", 64) + `"`, true},
		{"a 65-character id", "Id", `"` + strings.Repeat("a", 65) + `"`, false},
		{"a 65-character hold_id", "HoldRequest", `{"hold_id":"` + strings.Repeat("a", 65) + `","ttl_seconds":60,"lines":[{"sku":"A","location":"L1","quantity":1}]}`, false},
	}
	for _, tc := range bodies {
		t.Run(tc.name, func(t *testing.T) {
			ref, ok := doc.Components.Schemas[tc.schema]
			if !ok {
				t.Fatalf("no schema %s", tc.schema)
			}
			var v any
			if err := json.Unmarshal([]byte(tc.body), &v); err != nil {
				t.Fatal(err)
			}
			if err := ref.Value.VisitJSON(v); (err == nil) != tc.valid {
				t.Fatalf("valid %v, want %v: %v", err == nil, tc.valid, err)
			}
		})
	}
	statuses := []struct {
		method, path string
		want         []string
	}{
		{"POST", "/v1/holds", []string{"201", "400", "401", "403", "404", "408", "409", "410", "413", "415", "422", "429", "503"}},
		{"DELETE", "/v1/holds/{hold_id}", []string{"204", "400", "401", "403", "404", "429"}},
		{"POST", "/v1/availability/query", []string{"200", "400", "401", "403", "408", "413", "415", "429"}},
		{"PUT", "/v1/policies/{sku}/{location}", []string{"202", "400", "401", "403", "408", "413", "415", "429"}},
	}
	for _, tc := range statuses {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			op := doc.Paths.Find(tc.path).GetOperation(tc.method)
			for _, code := range tc.want {
				if op.Responses.Value(code) == nil {
					t.Errorf("%s %s does not document %s", tc.method, tc.path, code)
				}
			}
		})
	}
	for _, name := range []string{"MethodNotAllowed", "Timeout", "UnsupportedMediaType", "HeaderTooLarge", "TooMany"} {
		if doc.Components.Responses[name] == nil {
			t.Errorf("no %s response", name)
		}
	}
}
