package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// fuzzBody feeds arbitrary bodies to a route: whatever comes in, the answer
// is a success or a problem+json 4xx naming what is wrong; never a 5xx,
// never a panic.
// idPattern is the ids' rule as the contract writes it.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func fuzzBody(f *testing.F, method, path string, seeds ...string) {
	fx := newFixture(f, nil)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req, _ := http.NewRequest(method, fx.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s answered %d to %q", method, path, resp.StatusCode, body)
		}
		if resp.StatusCode >= 400 {
			var p Problem
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("4xx with content type %q", ct)
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Status != resp.StatusCode || p.Title == "" {
				t.Fatalf("4xx body is not a problem document: %+v %v", p, err)
			}
		}
	})
}

func FuzzQueryBody(f *testing.F) {
	fuzzBody(f, http.MethodPost, "/v1/availability/query",
		`{"lines":[{"sku":"A","location":"L1","quantity":3}]}`,
		`{"lines":[{"sku":"A","group":"G1","quantity":3,"channel":"web"}]}`,
		`{"lines":[{"sku":"A","location":"L1","quantity":"3"}]}`, `{"lines":[`, `[]`, ``, `{"lines":null}`)
}

func FuzzPolicyBody(f *testing.F) {
	fuzzBody(f, http.MethodPut, "/v1/policies/A/L1",
		`{"safety_stock":3,"reorder_point":10}`, `{"safety_stock":-1,"reorder_point":10}`, `{"safety_stock":3}`, `{}`, `nul`)
}

// FuzzHoldBody fuzzes the hold request parser (placing a hold needs Kafka,
// which the fast tests do not have): it accepts only what the contract
// allows, or says which field is wrong.
func FuzzHoldBody(f *testing.F) {
	fx := newFixture(f, nil)
	ch := NewCheckout(CheckoutConfig{Store: fx.store, InstanceID: "fuzz", Groups: map[string][]string{"G1": {"L1"}}})
	for _, s := range []string{
		`{"hold_id":"h1","ttl_seconds":60,"lines":[{"sku":"A","location":"L1","quantity":1}]}`,
		`{"hold_id":"h1","ttl_seconds":60,"lines":[{"sku":"A","group":"G1","quantity":1}]}`,
		`{"hold_id":"h 1","ttl_seconds":0,"lines":[]}`, `{"hold_id":"h1","ttl_seconds":60,"lines":[{"sku":"A","location":"L1","quantity":1},{"sku":"A","location":"L1","quantity":1}]}`,
	} {
		f.Add(s)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/holds", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		c := e.NewContext(req, httptest.NewRecorder())
		h, err := ch.parseHold(c)
		if err != nil {
			pe, ok := err.(*problemError)
			if !ok || pe.p.Status != http.StatusBadRequest {
				t.Fatalf("parse error %T %v is not a 400 problem", err, err)
			}
			return
		}
		if !idPattern.MatchString(h.HoldID) || h.TTLSeconds < 1 || h.TTLSeconds > 3600 || len(h.Lines) == 0 || len(h.Lines) > maxHoldLines {
			t.Fatalf("accepted an out-of-contract hold: %+v", h)
		}
		for _, l := range h.Lines {
			if !idPattern.MatchString(l.SKU) || l.Quantity < 1 || l.Quantity > maxQuantity || (l.Location == "") == (l.Group == "") {
				t.Fatalf("accepted an out-of-contract line: %+v", l)
			}
		}
	})
}
