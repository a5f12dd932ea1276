package api

import (
	"strings"
	"testing"
)

func TestCorrelationIDs(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name, method, path, body, id string
		code                         int
	}{
		{"none", "GET", "/v1/availability/A?location=L1", "", "", 200},
		{"128 characters", "GET", "/v1/availability/A?location=L1", "", strings.Repeat("c", 128), 200},
		{"punctuation", "GET", "/v1/availability/A?location=L1", "", "cart-42:retry/2=ok~#", 200},
		{"129 characters", "GET", "/v1/availability/A?location=L1", "", strings.Repeat("c", 129), 400},
		{"129 characters on a policy", "PUT", "/v1/policies/A/L1", `{"safety_stock":1,"reorder_point":2}`, strings.Repeat("c", 129), 400},
		{"129 characters on a hold", "POST", "/v1/holds", `{"hold_id":"h1","ttl_seconds":60,"lines":[` + okLine + `]}`, strings.Repeat("c", 129), 400},
		{"129 characters on a release", "DELETE", "/v1/holds/h1", "", strings.Repeat("c", 129), 400},
		{"the lineage separator", "GET", "/v1/availability/A?location=L1", "", "cart|42", 400},
		{"a space", "GET", "/v1/availability/A?location=L1", "", "cart 42", 400},
		{"non-ASCII", "GET", "/v1/availability/A?location=L1", "", "caf\u00e9", 400},
		{"a tab", "GET", "/v1/availability/A?location=L1", "", "cart\t42", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.id != "" {
				hdr = []string{"X-Correlation-Id", tc.id}
			}
			code, _, body := f.do(t, tc.method, tc.path, tc.body, hdr...)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, body)
			}
			if code == 400 && body["field"] != "X-Correlation-Id" {
				t.Fatalf("the problem does not name the header: %v", body)
			}
		})
	}
}
