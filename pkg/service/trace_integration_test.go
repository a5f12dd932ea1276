//go:build integration

package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/testenv"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type jaegerSpan struct {
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
}

// jaegerTrace polls Jaeger's query API until the trace holds every wanted
// span (by name prefix), or fails after a minute listing what it found.
func jaegerTrace(t *testing.T, base, traceID string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var names []string
	for time.Now().Before(deadline) {
		names = nil
		resp, err := http.Get(base + "/api/traces/" + traceID)
		if err == nil {
			var body struct {
				Data []struct {
					Spans     []jaegerSpan `json:"spans"`
					Processes map[string]struct {
						ServiceName string `json:"serviceName"`
					} `json:"processes"`
				} `json:"data"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			for _, tr := range body.Data {
				for _, s := range tr.Spans {
					if tr.Processes[s.ProcessID].ServiceName == "stockflow" {
						names = append(names, s.OperationName)
					}
				}
			}
			missing := ""
			for _, w := range want {
				found := false
				for _, n := range names {
					if strings.HasPrefix(n, w) {
						found = true
					}
				}
				if !found {
					missing = w
				}
			}
			if missing == "" {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("trace %s in Jaeger lacks some of %q; spans found: %q", traceID, want, names)
}

func TestTraceInJaeger(t *testing.T) {
	jaeger := testenv.JaegerURL(t)
	cfg := testenv.Config(t, 15)
	testenv.Redis(t, 15)
	cfg.OTLPEndpoint = "http://127.0.0.1:4318"
	s := startStack(t, cfg, Options{})

	t.Run("a hold: HTTP, holds topic, hold desk, ledger journal, fold process, Redis, one trace", func(t *testing.T) {
		traceID := randHex(16)
		body := strings.NewReader(`{"hold_id":"trace-1","ttl_seconds":60,"lines":[{"sku":"TRACED","location":"L1","quantity":1}]}`)
		req, _ := http.NewRequest("POST", s.base+"/v1/holds", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", fmt.Sprintf("00-%s-%s-01", traceID, randHex(8)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 409 && resp.StatusCode != 201 {
			t.Fatalf("hold answered %d", resp.StatusCode)
		}
		jaegerTrace(t, jaeger, traceID,
			"POST /v1/holds",
			cfg.Topics.Holds+" publish",
			cfg.Topics.Holds+" process",
			cfg.Topics.Ledger+" publish",
			cfg.Topics.Ledger+" process",
			"redis.pipeline evalsha",
		)
	})

	t.Run("a WMS event: normalizer, ledger, fold, Redis, availability, one trace", func(t *testing.T) {
		traceID := randHex(16)
		codec, err := events.NewCodec(nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ev := receiptEv("traced-receipt", "TRACED", "L1", 5)
		b, err := codec.Encode(context.Background(), cfg.Topics.Inventory, ev)
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: cfg.Topics.Inventory, Key: []byte("TRACED"), Value: b,
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(fmt.Sprintf("00-%s-%s-01", traceID, randHex(8)))}}}
		if err := s.prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		jaegerTrace(t, jaeger, traceID,
			cfg.Topics.Inventory+" process",
			cfg.Topics.Ledger+" publish",
			cfg.Topics.Ledger+" process",
			"redis.pipeline evalsha",
			cfg.Topics.Availability+" publish",
		)
	})
}
