package api

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/processors"
)

// newHoldFixture is newFixture with the ledger's folder running on the
// in-process broker and the checkout listening for its decisions, so that
// holds are decided as in the service.
func newHoldFixture(t *testing.T, mod func(*CheckoutConfig)) *fixture {
	t.Helper()
	f := newFixture(t, func(c *CheckoutConfig) {
		// The ledger stamps holds with the wall clock's time of day.
		c.Now = time.Now
		// The first decision waits for the folder to join its group.
		c.HoldTimeout = 30 * time.Second
		c.Rules = nil // channel rules have a test of their own
		// Decided by the partition's hold desk, as in the service.
		c.HoldsTopic = config.Default().Topics.Holds
		if mod != nil {
			mod(c)
		}
	})
	cfg := config.Default()
	cfg.Kafka.Brokers = f.brokers
	prod := f.ch.cfg.Producer
	ctx, cancel := context.WithCancel(context.Background())
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(prod), 1, 1, kafka.Topics(cfg.Topics)); err != nil {
		t.Fatal(err)
	}
	folder := processors.NewFolder(processors.FolderConfig{Kafka: cfg.Kafka, Topics: cfg.Topics}, f.ch.cfg.Codec, f.store, prod, slog.New(slog.DiscardHandler))
	done := make(chan error, 2)
	go func() { done <- folder.Run(ctx) }()
	go func() { done <- f.ch.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	})
	select {
	case <-f.ch.waiter.ready:
	case <-time.After(30 * time.Second):
		t.Fatal("not subscribed to hold decisions within 30s")
	}
	return f
}

// stock receives q units of sku at loc through the ledger and waits until
// the fold shows them.
func (f *fixture) stock(t *testing.T, sku, loc string, q int64, hdr ...string) {
	t.Helper()
	e := receipt(sku, loc, q)
	e.EventID, e.EventTime, e.Source = fmt.Sprint("stock-", sku, "-", loc), time.Now().UTC(), "test"
	if err := f.ch.produce(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, body := f.do(t, "GET", "/v1/availability/"+sku+"?location="+loc, "", hdr...)
		if code == 200 && body["on_hand"] == float64(q) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s@%s not stocked: %d %v", sku, loc, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holdBody(id string, ttl int, lines ...string) string {
	b := fmt.Sprintf(`{"hold_id":%q,"ttl_seconds":%d,"lines":[`, id, ttl)
	for i, l := range lines {
		if i > 0 {
			b += ","
		}
		b += l
	}
	return b + "]}"
}

func holdLineJSON(sku, loc string, q int) string {
	return fmt.Sprintf(`{"sku":%q,"location":%q,"quantity":%d}`, sku, loc, q)
}

const (
	aliceKey = "alice-0123456789abcdef"
	bobKey   = "bob-0123456789abcdefgh"
)

// A hold belongs to the key that placed it: to any other key, admin
// included, its hold_id does not exist for POST or DELETE, and positions
// show another client's hold without its id, except to an admin key.
func TestHoldsBelongToTheirKey(t *testing.T) {
	f := newHoldFixture(t, func(c *CheckoutConfig) {
		c.Keys = map[string][]string{aliceKey: {"hold", "read"}, bobKey: {"hold", "read"}, adminKey: {"admin"}}
	})
	as := func(key string) []string { return []string{"Authorization", "Bearer " + key} }
	f.stock(t, "OWN", "L1", 10, as(adminKey)...)
	body := holdBody("cart-alice", 600, holdLineJSON("OWN", "L1", 3))
	if code, _, resp := f.do(t, "POST", "/v1/holds", body, as(aliceKey)...); code != 201 {
		t.Fatalf("alice's hold: %d %v", code, resp)
	}
	if code, _, resp := f.do(t, "POST", "/v1/holds", holdBody("cart-bob", 600, holdLineJSON("OWN", "L1", 2)), as(bobKey)...); code != 201 {
		t.Fatalf("bob's hold: %d %v", code, resp)
	}
	steps := []struct {
		name, key, method, path, body string
		code                          int
		ids                           []string // hold ids listed by positions, "" for one without
	}{
		{"the owner repeats the request", aliceKey, "POST", "/v1/holds", body, 201, nil},
		{"another key sends the same hold_id", bobKey, "POST", "/v1/holds", body, 404, nil},
		{"an admin key sends the same hold_id", adminKey, "POST", "/v1/holds", body, 404, nil},
		{"another key releases it", bobKey, "DELETE", "/v1/holds/cart-alice", "", 404, nil},
		{"an admin key releases it", adminKey, "DELETE", "/v1/holds/cart-alice", "", 404, nil},
		{"positions to the owner", aliceKey, "GET", "/v1/positions/OWN?location=L1", "", 200, []string{"cart-alice", ""}},
		{"positions to another key", bobKey, "GET", "/v1/positions/OWN?location=L1", "", 200, []string{"", "cart-bob"}},
		{"positions to an admin key", adminKey, "GET", "/v1/positions/OWN?location=L1", "", 200, []string{"cart-alice", "cart-bob"}},
		{"the owner releases it", aliceKey, "DELETE", "/v1/holds/cart-alice", "", 204, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, _, resp := f.do(t, st.method, st.path, st.body, as(st.key)...)
			if code != st.code {
				t.Fatalf("status %d, want %d: %v", code, st.code, resp)
			}
			if code == 404 && resp["field"] != "hold_id" {
				t.Fatalf("404 does not name hold_id: %v", resp)
			}
			if st.ids == nil {
				return
			}
			holds, _ := resp["holds"].([]any)
			var got []string
			for _, h := range holds {
				id, _ := h.(map[string]any)["hold_id"].(string)
				got = append(got, id)
			}
			// Listed by quantity: alice holds 3, bob 2.
			if len(got) != 2 {
				t.Fatalf("holds %v", holds)
			}
			if holds[0].(map[string]any)["quantity"] == 2.0 {
				got[0], got[1] = got[1], got[0]
			}
			if got[0] != st.ids[0] || got[1] != st.ids[1] {
				t.Fatalf("hold ids %q, want %q", got, st.ids)
			}
		})
	}
}

// A hold_id stands for the request first sent with it: the same request
// again gets the first answer, a different one 422, and once the hold is
// released the hold_id answers 410, never "held" again.
func TestHoldIDIdempotency(t *testing.T) {
	f := newHoldFixture(t, nil)
	f.stock(t, "IDEM", "L1", 10)
	f.stock(t, "IDEM2", "L1", 10)
	first := holdBody("cart-1", 600, holdLineJSON("IDEM", "L1", 2), holdLineJSON("IDEM2", "L1", 1))
	if code, _, resp := f.do(t, "POST", "/v1/holds", first); code != 201 {
		t.Fatalf("hold: %d %v", code, resp)
	}
	steps := []struct {
		name, method, path, body string
		code                     int
		status                   string
	}{
		{"the same request", "POST", "/v1/holds", first, 201, "held"},
		{"the same lines in another order, spaced", "POST", "/v1/holds",
			` { "lines" : [` + holdLineJSON("IDEM2", "L1", 1) + `,` + holdLineJSON("IDEM", "L1", 2) + `], "ttl_seconds" : 600, "hold_id" : "cart-1" }`, 201, "held"},
		{"another quantity", "POST", "/v1/holds", holdBody("cart-1", 600, holdLineJSON("IDEM", "L1", 3), holdLineJSON("IDEM2", "L1", 1)), 422, ""},
		{"a line less", "POST", "/v1/holds", holdBody("cart-1", 600, holdLineJSON("IDEM", "L1", 2)), 422, ""},
		{"another ttl", "POST", "/v1/holds", holdBody("cart-1", 60, holdLineJSON("IDEM", "L1", 2), holdLineJSON("IDEM2", "L1", 1)), 422, ""},
		{"a channel", "POST", "/v1/holds", `{"hold_id":"cart-1","ttl_seconds":600,"channel":"web","lines":[` + holdLineJSON("IDEM", "L1", 2) + `,` + holdLineJSON("IDEM2", "L1", 1) + `]}`, 422, ""},
		{"release", "DELETE", "/v1/holds/cart-1", "", 204, ""},
		{"the same request after the release", "POST", "/v1/holds", first, 410, ""},
		{"release again", "DELETE", "/v1/holds/cart-1", "", 204, ""},
		{"still released", "POST", "/v1/holds", first, 410, ""},
		{"a different request after the release", "POST", "/v1/holds", holdBody("cart-1", 600, holdLineJSON("IDEM", "L1", 9)), 422, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, hdr, resp := f.do(t, st.method, st.path, st.body)
			if code != st.code {
				t.Fatalf("status %d, want %d: %v", code, st.code, resp)
			}
			if st.status != "" && resp["status"] != st.status {
				t.Fatalf("status %v, want %s", resp["status"], st.status)
			}
			if code >= 400 && (hdr.Get("Content-Type") != "application/problem+json" || resp["field"] != "hold_id") {
				t.Fatalf("%d is not a problem naming hold_id: %v", code, resp)
			}
		})
	}
	// The release gave the stock back.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, _, resp := f.do(t, "GET", "/v1/availability/IDEM?location=L1", "")
		if resp["held"] == 0.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still held after the release: %v", resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A rejected hold holds nothing, so a release does not change its answer.
func TestRejectedHoldKeepsItsAnswer(t *testing.T) {
	f := newHoldFixture(t, nil)
	f.stock(t, "REJ", "L1", 1)
	body := holdBody("cart-big", 600, holdLineJSON("REJ", "L1", 5))
	steps := []struct {
		name, method, path string
		code               int
	}{
		{"too much", "POST", "/v1/holds", 409},
		{"again", "POST", "/v1/holds", 409},
		{"release", "DELETE", "/v1/holds/cart-big", 204},
		{"again after the release", "POST", "/v1/holds", 409},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			b := body
			if st.method == "DELETE" {
				b = ""
			}
			if code, _, resp := f.do(t, st.method, st.path, b); code != st.code {
				t.Fatalf("status %d, want %d: %v", code, st.code, resp)
			}
		})
	}
}

// Holds are decided under the channel rules lookups answer with: under
// web=cap:50% on 100 units a storm of one-unit web holds gets exactly 50,
// a store hold still gets its share, and a web lookup then shows nothing
// more for web.
func TestHoldsFollowChannelRules(t *testing.T) {
	f := newHoldFixture(t, func(c *CheckoutConfig) {
		rules, err := atp.ParseChannelRules("web=cap:50%")
		if err != nil {
			t.Fatal(err)
		}
		c.Rules = rules
	})
	f.stock(t, "CAP", "L1", 100)
	withChannel := func(id, channel string, q int) string {
		return fmt.Sprintf(`{"hold_id":%q,"ttl_seconds":600,"channel":%q,"lines":[%s]}`, id, channel, holdLineJSON("CAP", "L1", q))
	}
	held := 0
	for i := range 60 {
		code, _, resp := f.do(t, "POST", "/v1/holds", withChannel(fmt.Sprint("web-", i), "web", 1))
		switch code {
		case 201:
			held++
		case 409:
		default:
			t.Fatalf("web hold %d: %d %v", i, code, resp)
		}
	}
	if held != 50 {
		t.Fatalf("%d one-unit web holds held under web=cap:50%% on 100 units, want 50", held)
	}
	if code, _, resp := f.do(t, "GET", "/v1/availability/CAP?location=L1&channel=web", ""); code != 200 || resp["atp"] != float64(0) || resp["held"] != float64(50) {
		t.Fatalf("web lookup after the storm: %d %v", code, resp)
	}
	if code, _, resp := f.do(t, "POST", "/v1/holds", withChannel("store-1", "stores", 30)); code != 201 {
		t.Fatalf("a store hold of 30 of the 50 left: %d %v", code, resp)
	}
	if code, _, resp := f.do(t, "GET", "/v1/availability/CAP?location=L1&channel=stores", ""); code != 200 || resp["atp"] != float64(20) {
		t.Fatalf("stores lookup: %d %v", code, resp)
	}
}

// The hold desk leaves a request no caller can still be waiting on
// undecided (its API released it when its wait ended), and decides the
// next one; a hold request that carries a decision of its own is refused
// (dead-lettered), never journaled.
func TestHoldDeskSkipsStaleAndForgedRequests(t *testing.T) {
	f := newHoldFixture(t, nil)
	f.stock(t, "DESK", "L1", 10)
	ctx := context.Background()
	holds := config.Default().Topics.Holds
	send := func(id string, ts time.Time, forged bool) {
		t.Helper()
		loc, ttl := "L1", int64(600_000)
		e := &events.LedgerEntry{EntryType: events.EntryHold, SKU: "DESK", Location: &loc, Quantity: 4, HoldID: &id, TTLMillis: &ttl,
			EventID: "hold:" + id + ":0", EventTime: ts.UTC(), Source: "test"}
		if forged {
			st := "held"
			e.Status = &st
		}
		b, err := f.ch.cfg.Codec.Encode(ctx, holds, e)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.ch.cfg.Producer.ProduceSync(ctx, &kgo.Record{Topic: holds, Key: []byte("DESK"), Value: b, Timestamp: ts}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	send("stale", time.Now().Add(-time.Hour), false)
	send("forged", time.Now(), true)
	if code, _, body := f.do(t, "POST", "/v1/holds", holdBody("fresh", 600, holdLineJSON("DESK", "L1", 4)), ""); code != 201 {
		t.Fatalf("a fresh hold after them: %d %v", code, body)
	}
	_, _, hs, err := f.store.Lines(ctx, "DESK")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(hs) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		_, _, hs, _ = f.store.Lines(ctx, "DESK")
	}
	if len(hs) != 1 || hs[0].HoldID != "fresh" || hs[0].Status != "held" {
		t.Fatalf("the ledger's holds %+v, want only the fresh one, held", hs)
	}
}
