package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestWrongMethodIs405WithAllow(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name, method, path string
		allow              []string
	}{
		{"POST on availability", "POST", "/v1/availability/A?location=L1", []string{"GET", "HEAD"}},
		{"DELETE on the batch query", "DELETE", "/v1/availability/query", []string{"POST"}},
		{"GET on holds", "GET", "/v1/holds", []string{"POST"}},
		{"PUT on a hold", "PUT", "/v1/holds/h1", []string{"DELETE"}},
		{"GET on a policy", "GET", "/v1/policies/A/L1", []string{"PUT"}},
		{"POST on positions", "POST", "/v1/positions/A?location=L1", []string{"GET", "HEAD"}},
		{"DELETE on healthz", "DELETE", "/healthz", []string{"GET", "HEAD"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := f.do(t, tc.method, tc.path, "")
			if code != http.StatusMethodNotAllowed {
				t.Fatalf("status %d, want 405: %v", code, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/problem+json" || body["status"] != 405.0 {
				t.Fatalf("not a problem document: %s %v", ct, body)
			}
			allow := hdr.Get("Allow")
			for _, m := range tc.allow {
				if !strings.Contains(allow, m) {
					t.Fatalf("Allow %q lacks %s", allow, m)
				}
			}
		})
	}
}

func TestHeadOnGetRoutes(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name, path, contentType string
		code                    int
	}{
		{"availability", "/v1/availability/A?location=L1", "application/json", 200},
		{"positions", "/v1/positions/A?location=L1", "application/json", 200},
		{"a bad request", "/v1/availability/A", "application/problem+json", 400},
		{"healthz", "/healthz", "application/json", 200},
		{"openapi", "/openapi.yaml", "application/yaml", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, _ := f.do(t, "HEAD", tc.path, "")
			if code != tc.code || !strings.HasPrefix(hdr.Get("Content-Type"), tc.contentType) {
				t.Fatalf("HEAD %s: %d %q, want %d %q", tc.path, code, hdr.Get("Content-Type"), tc.code, tc.contentType)
			}
		})
	}
}

// A path is decoded once, then checked against the id rule: an escaped
// character the rule allows is that character, and one it refuses is
// refused, whether or not it was escaped.
func TestPathIsDecodedOnceThenValidated(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name, method, path, body string
		code                     int
		field, key, want         string
	}{
		{"escaped hyphen is a hyphen", "GET", "/v1/availability/SKU%2D000001?location=L1", "", 200, "", "sku", "SKU-000001"},
		{"escaped letters", "GET", "/v1/positions/%41?location=L1", "", 200, "", "sku", "A"},
		{"escaped hyphen in a policy location", "PUT", "/v1/policies/A/L%2D1", `{"safety_stock":1,"reorder_point":2}`, 202, "", "location", "L-1"},
		{"escaped hyphen in a hold id", "DELETE", "/v1/holds/h%2D1", "", 404, "hold_id", "", ""},
		{"non-ASCII", "GET", "/v1/availability/%C3%A9?location=L1", "", 400, "sku", "", ""},
		{"NUL", "GET", "/v1/availability/A%00?location=L1", "", 400, "sku", "", ""},
		{"escaped slash", "GET", "/v1/availability/a%2Fb?location=L1", "", 400, "sku", "", ""},
		{"escaped percent is not decoded twice", "GET", "/v1/availability/SKU%252D1?location=L1", "", 400, "sku", "", ""},
		{"escaped space in a hold id", "DELETE", "/v1/holds/a%20b", "", 400, "hold_id", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := f.do(t, tc.method, tc.path, tc.body, "Content-Type", "application/json")
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, body)
			}
			if got, _ := body["field"].(string); got != tc.field {
				t.Fatalf("field %q, want %q: %v", got, tc.field, body)
			}
			if tc.key != "" && body[tc.key] != tc.want {
				t.Fatalf("%s %v, want %q", tc.key, body[tc.key], tc.want)
			}
		})
	}
}

// Oversized headers are answered as a problem document, like every other
// error, up to twice the limit; beyond, net/http answers 431 in plain text.
func TestOversizedHeadersAreProblems(t *testing.T) {
	addr := running(t, Config{})
	cases := []struct {
		name    string
		headers map[string]string
		code    int
	}{
		{"within the limit", map[string]string{"X-Pad": strings.Repeat("p", 60<<10)}, 200},
		{"one header over the limit", map[string]string{"X-Pad": strings.Repeat("p", 80<<10)}, 431},
		{"many headers over the limit", func() map[string]string {
			m := map[string]string{}
			for i := range 800 {
				m[fmt.Sprintf("X-Pad-%d", i)] = strings.Repeat("p", 90)
			}
			return m
		}(), 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+addr+"/v1/availability/A?location=L1", nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if ct := resp.Header.Get("Content-Type"); tc.code == 431 && ct != "application/problem+json" {
				t.Fatalf("431 as %q", ct)
			}
		})
	}
}

// OPTIONS is answered 204 with the route's Allow header and no body, with
// or without a key, as the document says.
func TestOptionsListsTheMethods(t *testing.T) {
	f := newFixture(t, func(c *CheckoutConfig) { c.Keys = map[string][]string{readerKey: {"read"}} })
	cases := []struct {
		path  string
		allow []string
	}{
		{"/v1/holds", []string{"POST"}},
		{"/v1/holds/h1", []string{"DELETE"}},
		{"/v1/availability/A", []string{"GET", "HEAD"}},
		{"/healthz", []string{"GET", "HEAD"}},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			code, hdr, _ := f.do(t, "OPTIONS", tc.path, "")
			if code != http.StatusNoContent {
				t.Fatalf("status %d, want 204", code)
			}
			allow := hdr.Get("Allow")
			for _, m := range append(tc.allow, "OPTIONS") {
				if !strings.Contains(allow, m) {
					t.Fatalf("Allow %q lacks %s", allow, m)
				}
			}
		})
	}
}
