package api

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const okLine = `{"sku":"A","location":"L1","quantity":1}`

func TestStrictJSONBodies(t *testing.T) {
	f := newFixture(t, nil)
	hold := func(extra string) string {
		return `{"hold_id":"h1","ttl_seconds":60,"lines":[` + okLine + `]` + extra + `}`
	}
	cases := []struct {
		name, method, path, body string
		code                     int
		field, detail            string
	}{
		{"exact names pass", "POST", "/v1/availability/query", ` { "lines" : [ ` + okLine + ` ] } `, 200, "", ""},
		{"a name in another case", "POST", "/v1/availability/query", `{"LINES":[` + okLine + `]}`, 400, "LINES", "unknown field"},
		{"a nested name in another case", "POST", "/v1/availability/query", `{"lines":[{"SKU":"A","location":"L1","quantity":1}]}`, 400, "lines[0].SKU", "unknown field"},
		{"a hold field in another case", "POST", "/v1/holds", `{"Hold_ID":"h1","ttl_seconds":60,"lines":[` + okLine + `]}`, 400, "Hold_ID", "unknown field"},
		{"a duplicate member", "POST", "/v1/availability/query", `{"lines":[` + okLine + `],"lines":[` + okLine + `]}`, 400, "lines", "twice"},
		{"a duplicate spelt with an escape", "POST", "/v1/availability/query", `{"lines":[` + okLine + `],"line\u0073":[]}`, 400, "lines", "twice"},
		{"a duplicate nested member", "POST", "/v1/availability/query", `{"lines":[` + okLine + `,{"sku":"A","sku":"B","location":"L1","quantity":1}]}`, 400, "lines[1].sku", "twice"},
		{"a duplicate policy number", "PUT", "/v1/policies/A/L1", `{"safety_stock":1,"safety_stock":2,"reorder_point":1}`, 400, "safety_stock", "twice"},
		{"an unknown hold field", "POST", "/v1/holds", hold(`,"priority":1`), 400, "priority", "unknown field"},
		{"an unknown nested field", "POST", "/v1/availability/query", `{"lines":[` + okLine + `,{"sku":"A","location":"L1","quantity":3,"qty":1}]}`, 400, "lines[1].qty", "unknown field"},
		{"a string for a number", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","quantity":"3"}]}`, 400, "lines[0].quantity", "must be a whole number, not a string"},
		{"a number for a string", "POST", "/v1/holds", `{"hold_id":7,"ttl_seconds":60,"lines":[` + okLine + `]}`, 400, "hold_id", "must be a string, not a number"},
		{"an object for an array", "POST", "/v1/availability/query", `{"lines":{}}`, 400, "lines", "must be an array, not an object"},
		{"an array for the body", "POST", "/v1/holds", `[]`, 400, "", "the body must be an object, not an array"},
		{"a policy number as a boolean", "PUT", "/v1/policies/A/L1", `{"safety_stock":true,"reorder_point":1}`, 400, "safety_stock", "not a boolean"},
		{"a fraction", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","quantity":1.5}]}`, 400, "lines[0].quantity", "whole number"},
		{"a number beyond 64 bits", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","quantity":99999999999999999999}]}`, 400, "lines[0].quantity", "whole number"},
		{"a second value", "POST", "/v1/availability/query", `{"lines":[` + okLine + `]} {}`, 400, "", "more than one JSON value"},
		{"cut short", "POST", "/v1/availability/query", `{"lines":[` + okLine, 400, "", "ends inside"},
		{"malformed", "POST", "/v1/availability/query", `{"lines":[` + okLine + `,]}`, 400, "", "malformed JSON"},
		{"an empty channel", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","quantity":1,"channel":""}]}`, 400, "lines[0].channel", "empty"},
		{"an empty location beside a group", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"","group":"G1","quantity":1}]}`, 400, "lines[0].location", "empty"},
		{"an empty hold channel", "POST", "/v1/holds", hold(`,"channel":""`), 400, "channel", "empty"},
		{"a null hold channel", "POST", "/v1/holds", hold(`,"channel":null`), 400, "channel", "must be a string, not null"},
		{"a null group", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","group":null,"quantity":1}]}`, 400, "lines[0].group", "not null"},
		{"a null policy number", "PUT", "/v1/policies/A/L1", `{"safety_stock":null,"reorder_point":1}`, 400, "safety_stock", "must be a whole number, not null"},
		{"a null body", "POST", "/v1/availability/query", `null`, 400, "", "the body must be an object, not null"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := f.do(t, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, body)
			}
			if code == 200 {
				return
			}
			detail, _ := body["detail"].(string)
			if got, _ := body["field"].(string); got != tc.field || !strings.Contains(detail, tc.detail) {
				t.Fatalf("field %q detail %q, want field %q and a detail with %q", got, detail, tc.field, tc.detail)
			}
			for _, goType := range []string{"api.", "int64", "holdRequest", "queryLine"} {
				if strings.Contains(detail, goType) {
					t.Fatalf("the detail names a Go type: %q", detail)
				}
			}
		})
	}
}

func TestBodyMustBeJSON(t *testing.T) {
	f := newFixture(t, nil)
	query := `{"lines":[` + okLine + `]}`
	cases := []struct {
		name, method, path, contentType string
		code                            int
	}{
		{"no content type", "POST", "/v1/availability/query", "", 415},
		{"plain text", "POST", "/v1/availability/query", "text/plain", 415},
		{"a form", "POST", "/v1/availability/query", "application/x-www-form-urlencoded", 415},
		{"JSON in another charset", "POST", "/v1/availability/query", "application/json; charset=latin1", 415},
		{"not a media type", "POST", "/v1/availability/query", "json", 415},
		{"a hold as text", "POST", "/v1/holds", "text/plain", 415},
		{"a policy without a type", "PUT", "/v1/policies/A/L1", "", 415},
		{"JSON", "POST", "/v1/availability/query", "application/json", 200},
		{"JSON in UTF-8", "POST", "/v1/availability/query", "application/json; charset=UTF-8", 200},
		{"JSON in capitals", "POST", "/v1/availability/query", "Application/JSON", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := query
			if tc.method == "PUT" {
				body = `{"safety_stock":1,"reorder_point":2}`
			}
			code, hdr, p := f.do(t, tc.method, tc.path, body, "Content-Type", tc.contentType)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, p)
			}
			if code == 415 && (hdr.Get("Content-Type") != "application/problem+json" || p["field"] != "Content-Type") {
				t.Fatalf("415 is not a problem naming Content-Type: %v", p)
			}
		})
	}
}

// A problem quotes a bad value escaped and at most 64 bytes of it, so the
// answer does not echo a megabyte back or carry control characters raw.
func TestProblemsQuoteAShortExcerpt(t *testing.T) {
	f := newFixture(t, nil)
	long := strings.Repeat("x\n\"", 2000)
	cases := []struct {
		name, method, path, body, field string
	}{
		{"a long sku in a query", "POST", "/v1/availability/query", `{"lines":[{"sku":"` + strings.Repeat("s", 10000) + `","location":"L1","quantity":1}]}`, "lines[0].sku"},
		{"a long hold id with escapes", "POST", "/v1/holds", `{"hold_id":"` + strings.ReplaceAll(strings.ReplaceAll(long, `"`, `\"`), "\n", `\n`) + `","ttl_seconds":60,"lines":[` + okLine + `]}`, "hold_id"},
		{"a long channel", "GET", "/v1/availability/A?location=L1&channel=" + strings.Repeat("c", 5000), "", "channel"},
		{"a long date", "GET", "/v1/availability/A?location=L1&at=" + strings.Repeat("2", 5000), "", "at"},
		{"a long group", "GET", "/v1/availability/A?group=" + strings.Repeat("G", 60) + "%C3%A9" + strings.Repeat("G", 5000), "", "group"},
		{"a long unknown field", "POST", "/v1/availability/query", `{"` + strings.Repeat("f", 5000) + `":1}`, strings.Repeat("f", 64)},
		{"a long number", "POST", "/v1/availability/query", `{"lines":[{"sku":"A","location":"L1","quantity":` + strings.Repeat("9", 5000) + `}]}`, "lines[0].quantity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := f.do(t, tc.method, tc.path, tc.body)
			detail, _ := body["detail"].(string)
			if code != 400 || body["field"] != tc.field {
				t.Fatalf("status %d field %v, want 400 naming %s", code, body["field"], tc.field)
			}
			// 64 bytes quoted take at most 256 (\xff), plus the sentence.
			if len(detail) > 360 || strings.ContainsAny(detail, "\n\x00") {
				t.Fatalf("detail of %d bytes: %q", len(detail), detail)
			}
		})
	}
}

// A body the client stops sending, cut off by the server's read timeout, is
// the client's delay (408), not malformed JSON (400).
func TestSlowBodyIs408(t *testing.T) {
	addr := running(t, Config{ReadTimeout: 200 * time.Millisecond})
	cases := []struct {
		name, method, path, partial string
	}{
		{"a query", "POST", "/v1/availability/query", `{"lines":[{"sku":"A",`},
		{"nothing of the body", "POST", "/v1/availability/query", ``},
		{"a policy", "PUT", "/v1/policies/A/L1", `{"safety_stock":`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Only a guard against hanging the test: the server answers
			// once its read timeout cuts the body off.
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			_, err = conn.Write([]byte(tc.method + " " + tc.path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + tc.partial))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d %q, want 408 problem+json", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		})
	}
}
