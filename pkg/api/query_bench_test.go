package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/pkg/events"
)

// The handler's own cost for a 50-line batch query and a single lookup,
// over a miniredis ledger, without the network.
func BenchmarkQuery(b *testing.B) {
	f := newFixture(b, nil)
	var body strings.Builder
	body.WriteString(`{"lines":[`)
	for i := range 50 {
		sku := fmt.Sprintf("Q-%02d", i)
		f.apply(b, &events.LedgerEntry{EntryType: events.EntryReceipt, SKU: sku, Location: sp("L1"), Quantity: 100, EventID: sku, EventTime: now, Source: "b"})
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"sku":%q,"location":"L1","quantity":3}`, sku)
	}
	body.WriteString(`]}`)
	h := f.srv.Config.Handler
	for _, bc := range []struct {
		name string
		req  func() *http.Request
	}{
		{"get", func() *http.Request {
			r := httptest.NewRequest("GET", "/v1/availability/Q-01?location=L1", nil)
			r.Host = "127.0.0.1" // without keys, the API answers loopback names only
			return r
		}},
		{"query50", func() *http.Request {
			r := httptest.NewRequest("POST", "/v1/availability/query", strings.NewReader(body.String()))
			r.Host = "127.0.0.1"
			r.Header.Set("Content-Type", "application/json")
			return r
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, bc.req())
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
