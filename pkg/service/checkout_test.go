package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/store"
)

// stack is a running service plus a producer of source events.
type stack struct {
	base string
	cfg  config.Config
	prod *kgo.Client
	// key, when set, is sent with every call.
	key string
}

func (s *stack) send(t *testing.T, topic, key string, ev events.Source) {
	t.Helper()
	codec, err := events.OpenCodec(s.cfg.SchemaRegistry, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := codec.Encode(context.Background(), topic, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.prod.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func (s *stack) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func (s *stack) atp(t *testing.T, sku, loc string) float64 {
	t.Helper()
	code, body := s.call(t, "GET", "/v1/availability/"+sku+"?location="+loc, nil)
	if code != 200 {
		t.Fatalf("availability: %d %v", code, body)
	}
	return body["atp"].(float64)
}

func (s *stack) waitATP(t *testing.T, sku, loc string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := s.atp(t, sku, loc)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s@%s: atp %v, want %v", sku, loc, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startStack(t *testing.T, cfg config.Config, opts Options) *stack {
	t.Helper()
	cfg.API.Groups = "G1=L1,L2"
	cfg.API.RateLimit = 0
	base := startServe(t, cfg, opts)
	prod, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &stack{base: base, cfg: cfg, prod: prod}
}

func receiptEv(id, sku, loc string, q int64) *events.InventoryReceived {
	return &events.InventoryReceived{Meta: events.Meta{EventID: id, EventTime: time.Now().UTC().Add(-time.Minute), Source: "test"},
		SKU: sku, Location: loc, Quantity: q, UoM: "EA"}
}

func hold(id string, ttl int, lines ...map[string]any) map[string]any {
	return map[string]any{"hold_id": id, "ttl_seconds": ttl, "lines": lines}
}

func line(sku, loc string, q int) map[string]any {
	return map[string]any{"sku": sku, "location": loc, "quantity": q}
}

func runCheckoutSuite(t *testing.T, mk func(t *testing.T) *stack) {
	t.Run("oversell storm: 1000 concurrent holds on 100 units", func(t *testing.T) {
		s := mk(t)
		s.send(t, s.cfg.Topics.Inventory, "STORM", receiptEv("r-storm", "STORM", "L1", 100))
		s.waitATP(t, "STORM", "L1", 100)
		const n = 1000
		codes := make([]int, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 50) // 50 clients at a time
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				codes[i], _ = s.call(t, "POST", "/v1/holds", hold(fmt.Sprint("storm-", i), 600, line("STORM", "L1", 1)))
			}()
		}
		wg.Wait()
		count := map[int]int{}
		for _, c := range codes {
			count[c]++
		}
		if count[201] != 100 || count[409] != 900 {
			t.Fatalf("outcomes %v: want exactly 100 held and 900 rejected", count)
		}
		if got := s.atp(t, "STORM", "L1"); got != 0 {
			t.Fatalf("atp %v after the storm, want 0", got)
		}
		// Every client retry gets its first answer.
		for i := 0; i < n; i += 97 {
			c, _ := s.call(t, "POST", "/v1/holds", hold(fmt.Sprint("storm-", i), 600, line("STORM", "L1", 1)))
			if c != codes[i] {
				t.Fatalf("retry of storm-%d answered %d, first answer %d", i, c, codes[i])
			}
		}
		// Releasing the held units gives them back.
		released := 0
		for i, c := range codes {
			if c == 201 && released < 40 {
				if code, body := s.call(t, "DELETE", fmt.Sprint("/v1/holds/storm-", i), nil); code != 204 {
					t.Fatalf("release: %d %v", code, body)
				}
				released++
			}
		}
		s.waitATP(t, "STORM", "L1", 40)
	})

	t.Run("holds expire and give the stock back", func(t *testing.T) {
		s := mk(t)
		s.send(t, s.cfg.Topics.Inventory, "EXP", receiptEv("r-exp", "EXP", "L1", 10))
		s.waitATP(t, "EXP", "L1", 10)
		if c, body := s.call(t, "POST", "/v1/holds", hold("short-lived", 1, line("EXP", "L1", 7))); c != 201 {
			t.Fatalf("hold: %d %v", c, body)
		}
		if got := s.atp(t, "EXP", "L1"); got != 3 {
			t.Fatalf("atp %v while held", got)
		}
		time.Sleep(1100 * time.Millisecond)
		if got := s.atp(t, "EXP", "L1"); got != 10 {
			t.Fatalf("atp %v after the hold expired", got)
		}
	})

	t.Run("the instance that answered a hold shows it in its next lookup", func(t *testing.T) {
		s := mk(t)
		s.send(t, s.cfg.Topics.Inventory, "RYW", receiptEv("r-ryw", "RYW", "L1", 100))
		s.waitATP(t, "RYW", "L1", 100)
		// Each lookup right after a 201: the lookup cache may still hold the
		// position from before the hold, unless the instance insists on the
		// version its decision named.
		for i := 1; i <= 40; i++ {
			if c, body := s.call(t, "POST", "/v1/holds", hold(fmt.Sprint("ryw-", i), 300, line("RYW", "L1", 1))); c != 201 {
				t.Fatalf("hold %d: %d %v", i, c, body)
			}
			c, body := s.call(t, "GET", "/v1/availability/RYW?location=L1", nil)
			if c != 200 || body["held"] != float64(i) || body["atp"] != float64(100-i) {
				t.Fatalf("lookup after hold %d: %d held %v atp %v", i, c, body["held"], body["atp"])
			}
		}
	})

	t.Run("a multi-line hold with one line short holds nothing", func(t *testing.T) {
		s := mk(t)
		s.send(t, s.cfg.Topics.Inventory, "ML-A", receiptEv("r-mla", "ML-A", "L1", 10))
		s.send(t, s.cfg.Topics.Inventory, "ML-B", receiptEv("r-mlb", "ML-B", "L1", 2))
		s.waitATP(t, "ML-A", "L1", 10)
		s.waitATP(t, "ML-B", "L1", 2)
		c, body := s.call(t, "POST", "/v1/holds", hold("cart-ml", 300, line("ML-A", "L1", 5), line("ML-B", "L1", 3)))
		if c != 409 || body["status"] != "rejected" {
			t.Fatalf("%d %v", c, body)
		}
		lines := body["lines"].([]any)
		if st := lines[0].(map[string]any)["status"]; st != "released" {
			t.Errorf("line 0 status %v, want released", st)
		}
		if st := lines[1].(map[string]any)["status"]; st != "rejected" {
			t.Errorf("line 1 status %v, want rejected", st)
		}
		s.waitATP(t, "ML-A", "L1", 10)
		if got := s.atp(t, "ML-B", "L1"); got != 2 {
			t.Fatalf("ML-B atp %v", got)
		}
		// And a hold that fits both lines is all held.
		if c, body := s.call(t, "POST", "/v1/holds", hold("cart-ok", 300, line("ML-A", "L1", 5), line("ML-B", "L1", 2))); c != 201 {
			t.Fatalf("%d %v", c, body)
		}
	})

	t.Run("a group hold lands on the location with the most stock", func(t *testing.T) {
		s := mk(t)
		s.send(t, s.cfg.Topics.Inventory, "GRP", receiptEv("r-g1", "GRP", "L1", 3))
		s.send(t, s.cfg.Topics.Inventory, "GRP", receiptEv("r-g2", "GRP", "L2", 9))
		s.waitATP(t, "GRP", "L2", 9)
		c, body := s.call(t, "POST", "/v1/holds", map[string]any{"hold_id": "g-1", "ttl_seconds": 60,
			"lines": []any{map[string]any{"sku": "GRP", "group": "G1", "quantity": 5}}})
		if c != 201 {
			t.Fatalf("%d %v", c, body)
		}
		if loc := body["lines"].([]any)[0].(map[string]any)["location"]; loc != "L2" {
			t.Fatalf("held at %v", loc)
		}
		if got := s.atp(t, "GRP", "L2"); got != 4 {
			t.Fatalf("L2 atp %v", got)
		}
	})

	t.Run("a retry lets go of what an unanswered attempt held", func(t *testing.T) {
		s := mk(t)
		ctx := context.Background()
		s.send(t, s.cfg.Topics.Inventory, "ORPHAN", receiptEv("r-orphan", "ORPHAN", "L1", 10))
		s.waitATP(t, "ORPHAN", "L1", 10)
		// What an instance leaves behind when it dies after producing the
		// first attempt at hold "o-1" and before answering: the attempt
		// counted and open, and its hold entry on the ledger.
		rdb := store.Open(s.cfg.Redis)
		defer rdb.Close()
		if err := rdb.Incr(ctx, s.cfg.Redis.KeyPrefix+":{hold:o-1}:try").Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.SAdd(ctx, s.cfg.Redis.KeyPrefix+":{hold:o-1}:open", "o-1").Err(); err != nil {
			t.Fatal(err)
		}
		loc, ttl, id := "L1", int64(3_600_000), "o-1"
		codec, err := events.NewCodec(nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := codec.Encode(ctx, s.cfg.Topics.Ledger, &events.LedgerEntry{EntryType: events.EntryHold, SKU: "ORPHAN", Location: &loc,
			Quantity: 4, HoldID: &id, TTLMillis: &ttl, EventID: "hold:o-1:0", EventTime: time.Now().UTC(), Source: "api"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.prod.ProduceSync(ctx, &kgo.Record{Topic: s.cfg.Topics.Ledger, Key: []byte("ORPHAN"), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		s.waitATP(t, "ORPHAN", "L1", 6)
		// The client never got an answer and retries with the same hold_id.
		if c, body := s.call(t, "POST", "/v1/holds", hold("o-1", 600, line("ORPHAN", "L1", 4))); c != 201 {
			t.Fatalf("retry: %d %v", c, body)
		}
		if got := s.atp(t, "ORPHAN", "L1"); got != 6 {
			t.Fatalf("atp %v after the retry, want 6: the unanswered attempt still holds stock", got)
		}
		// Releasing the hold gives everything back.
		if c, body := s.call(t, "DELETE", "/v1/holds/o-1", nil); c != 204 {
			t.Fatalf("release: %d %v", c, body)
		}
		s.waitATP(t, "ORPHAN", "L1", 10)
	})

	t.Run("a policy goes through the ledger and shows in positions", func(t *testing.T) {
		s := mk(t)
		s.send(t, s.cfg.Topics.Inventory, "POL", receiptEv("r-pol", "POL", "L1", 50))
		s.waitATP(t, "POL", "L1", 50)
		c, body := s.call(t, "PUT", "/v1/policies/POL/L1", map[string]any{"safety_stock": 12, "reorder_point": 30})
		if c != 202 {
			t.Fatalf("%d %v", c, body)
		}
		s.waitATP(t, "POL", "L1", 38)
		c, body = s.call(t, "GET", "/v1/positions/POL?location=L1", nil)
		if c != 200 || body["safety_stock"] != 12.0 || body["reorder_point"] != 30.0 {
			t.Fatalf("%d %v", c, body)
		}
		entries := body["last_entries"].([]any)
		if len(entries) != 2 || entries[0].(map[string]any)["type"] != "POLICY" || entries[1].(map[string]any)["event_id"] != "r-pol" {
			t.Fatalf("lineage %v", entries)
		}
	})
}

// The same suite on in-process Kafka and Redis; the integration build runs
// it on the real stack.
func TestCheckoutInProcess(t *testing.T) {
	runCheckoutSuite(t, func(t *testing.T) *stack {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		m := miniredis.RunT(t)
		cfg := config.Default()
		cfg.Kafka.Brokers, cfg.Redis.Addr, cfg.Kafka.Partitions = c.ListenAddrs(), m.Addr(), 3
		return startStack(t, cfg, Options{})
	})
}
