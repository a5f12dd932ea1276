package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
)

// holdTrips logs, for one hold_id, the Redis round trips that touch its
// keys (each the names of its commands) and the produce of its entries
// ("produce"), in order.
type holdTrips struct {
	mu  sync.Mutex
	id  string
	log []string
}

// watch starts a fresh log for hold_id id.
func (h *holdTrips) watch(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.id, h.log = id, nil
}

func (h *holdTrips) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

func (h *holdTrips) saw(cmds ...redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.id == "" {
		return
	}
	tag := "{hold:" + h.id + "}"
	var names []string
	touches := false
	for _, c := range cmds {
		names = append(names, c.Name())
		for _, a := range c.Args() {
			if s, ok := a.(string); ok && strings.Contains(s, tag) {
				touches = true
			}
		}
	}
	if touches {
		h.log = append(h.log, strings.Join(names, " "))
	}
}

func (h *holdTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.saw(cmd)
		return next(ctx, cmd)
	}
}

func (h *holdTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.saw(cmds...)
		return next(ctx, cmds)
	}
}

// OnProduceRecordBuffered logs the produce of an entry of the hold_id's
// attempts (its ledger ids start with the hold_id).
func (h *holdTrips) OnProduceRecordBuffered(r *kgo.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.id != "" && bytes.Contains(r.Value, []byte(h.id)) {
		h.log = append(h.log, "produce")
	}
}

// beforeProduce is the round trips logged before the first produce; ok
// says whether there was one.
func beforeProduce(log []string) (trips []string, ok bool) {
	i := slices.Index(log, "produce")
	if i < 0 {
		return log, false
	}
	return log[:i], true
}

// newTripsFixture is newHoldFixture with the hold_id's round trips and
// produces logged.
func newTripsFixture(t *testing.T, mod func(*CheckoutConfig)) (*fixture, *holdTrips) {
	t.Helper()
	h := &holdTrips{}
	f := newHoldFixture(t, func(c *CheckoutConfig) {
		c.Store.Client().AddHook(h)
		seeds, _ := c.Producer.OptValue(kgo.SeedBrokers).([]string)
		prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.WithHooks(h))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(prod.Close)
		c.Producer = prod
		if mod != nil {
			mod(c)
		}
	})
	// The script as Redis has it after its first run (which loads it: an
	// EVALSHA, then an EVAL).
	if err := beginScript.Load(context.Background(), f.store.Client()).Err(); err != nil {
		t.Fatal(err)
	}
	return f, h
}

// A fresh hold does its bookkeeping in Redis in one round trip before it
// is sent to the ledger: the record looked up, the hold_id claimed, the
// lock taken, the try counted and the attempt opened, by one script. A
// repeated request takes one round trip as well, and gets the first answer.
func TestHoldBookkeepingIsOneRoundTrip(t *testing.T) {
	f, trips := newTripsFixture(t, nil)
	f.stock(t, "TRIP", "L1", 10)
	body := holdBody("cart-trip", 600, holdLineJSON("TRIP", "L1", 2))
	trips.watch("cart-trip")
	code, _, first := f.do(t, "POST", "/v1/holds", body)
	if code != 201 {
		t.Fatalf("hold: %d %v", code, first)
	}
	log := trips.take()
	before, ok := beforeProduce(log)
	if !ok {
		t.Fatalf("no produce logged: %q", log)
	}
	if len(before) != 1 || before[0] != "evalsha" {
		t.Fatalf("round trips before the produce: %q, want one, the script (all: %q)", before, log)
	}

	trips.watch("cart-trip")
	code, _, again := f.do(t, "POST", "/v1/holds", body)
	if code != 201 || !reflect.DeepEqual(again, first) {
		t.Fatalf("repeated: %d %v, want the first answer 201 %v", code, again, first)
	}
	if log := trips.take(); len(log) != 1 || log[0] != "evalsha" {
		t.Fatalf("round trips of the repeated request: %q, want one, the script", log)
	}
}

// A claim that is not the caller's but that the caller may use all the
// same (no keys configured: everyone may use every hold_id) costs a second
// round trip; one for another request is answered 422 after one.
func TestHoldOnAClaimOfAnotherOwner(t *testing.T) {
	f, trips := newTripsFixture(t, nil)
	f.stock(t, "CLM", "L1", 10)
	ctx := context.Background()
	rdb := f.store.Client()
	body := holdBody("cart-claimed", 600, holdLineJSON("CLM", "L1", 2))
	var req holdRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	claim, _ := json.Marshal(holdClaim{Owner: "a-key-since-removed", Fingerprint: req.fingerprint()})
	if err := rdb.Set(ctx, f.ch.holdClaimKey(req.HoldID), claim, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	trips.watch(req.HoldID)
	if code, _, resp := f.do(t, "POST", "/v1/holds", body); code != 201 {
		t.Fatalf("hold: %d %v", code, resp)
	}
	before, ok := beforeProduce(trips.take())
	if !ok || len(before) != 2 {
		t.Fatalf("round trips before the produce: %q (produced: %v), want two", before, ok)
	}

	trips.watch(req.HoldID)
	other := holdBody("cart-claimed", 600, holdLineJSON("CLM", "L1", 3))
	if code, _, resp := f.do(t, "POST", "/v1/holds", other); code != 422 || resp["field"] != "hold_id" {
		t.Fatalf("another request: %d %v, want 422 naming hold_id", code, resp)
	}
	if log := trips.take(); len(log) != 1 {
		t.Fatalf("round trips of another request: %q, want one", log)
	}
}

// An attempt after one that ended unanswered gets the next ledger id, and
// releases the earlier one; once answered, no attempt is open.
func TestHoldAfterAnUnansweredAttempt(t *testing.T) {
	f, _ := newTripsFixture(t, nil)
	f.stock(t, "RETRY", "L1", 10)
	ctx := context.Background()
	rdb := f.store.Client()
	id := "cart-retry"
	if err := rdb.Set(ctx, f.ch.holdTryKey(id), 1, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, f.ch.holdOpenKey(id), attemptID(id, 1)).Err(); err != nil {
		t.Fatal(err)
	}
	if code, _, resp := f.do(t, "POST", "/v1/holds", holdBody(id, 600, holdLineJSON("RETRY", "L1", 2))); code != 201 {
		t.Fatalf("hold: %d %v", code, resp)
	}
	rec, ok, err := f.ch.loadHold(ctx, id)
	if err != nil || !ok {
		t.Fatalf("record: %v %v", ok, err)
	}
	if rec.Internal != attemptID(id, 2) {
		t.Fatalf("ledger id %q, want %q", rec.Internal, attemptID(id, 2))
	}
	if open, err := rdb.SMembers(ctx, f.ch.holdOpenKey(id)).Result(); err != nil || len(open) != 0 {
		t.Fatalf("open attempts %q %v, want none", open, err)
	}
}

// The script's steps one by one, on Redis directly.
func TestBeginHoldScript(t *testing.T) {
	f := newFixture(t, nil)
	ch, rdb, ctx := f.ch, f.store.Client(), context.Background()
	want := holdClaim{Fingerprint: "fp"}
	const id = "cart-s"

	st, err := ch.beginHold(ctx, id, want)
	if err != nil || st.record != nil || st.claim != nil || st.busy || st.try != 1 || len(st.prior) != 0 {
		t.Fatalf("fresh: %+v %v", st, err)
	}
	for key, ttl := range map[string]time.Duration{
		ch.holdClaimKey(id): holdStateTTL, ch.holdLockKey(id): ch.holdLockTTL(),
		ch.holdTryKey(id): holdStateTTL, ch.holdOpenKey(id): holdStateTTL,
	} {
		if got := rdb.PTTL(ctx, key).Val(); got <= 0 || got > ttl {
			t.Errorf("%s: ttl %v, want up to %v", key, got, ttl)
		}
	}
	if open := rdb.SMembers(ctx, ch.holdOpenKey(id)).Val(); !slices.Equal(open, []string{attemptID(id, 1)}) {
		t.Fatalf("open attempts %q", open)
	}

	if st, err := ch.beginHold(ctx, id, want); err != nil || !st.busy {
		t.Fatalf("with the lock taken: %+v %v, want busy", st, err)
	}
	var pe *problemError
	if _, err := ch.beginHold(ctx, id, holdClaim{Fingerprint: "other"}); !errors.As(err, &pe) || pe.p.Status != 422 {
		t.Fatalf("another request: %v, want 422", err)
	}

	// Attempt 10 after nine, the first still open.
	rdb.Del(ctx, ch.holdLockKey(id))
	rdb.Set(ctx, ch.holdTryKey(id), 9, time.Hour)
	st, err = ch.beginHold(ctx, id, want)
	if err != nil || st.try != 10 || !slices.Equal(st.prior, []string{attemptID(id, 1)}) {
		t.Fatalf("tenth: %+v %v", st, err)
	}
	open := rdb.SMembers(ctx, ch.holdOpenKey(id)).Val()
	slices.Sort(open)
	if wantOpen := []string{attemptID(id, 1), attemptID(id, 10)}; !slices.Equal(open, wantOpen) {
		t.Fatalf("open attempts %q, want %q", open, wantOpen)
	}

	rec := holdRecord{Code: 201, Internal: attemptID(id, 10), Fingerprint: "fp", Response: holdResponse{HoldID: id, Status: "held"}}
	b, _ := json.Marshal(rec)
	rdb.Set(ctx, ch.holdKey(id), b, time.Hour)
	st, err = ch.beginHold(ctx, id, want)
	if err != nil || st.record == nil || !reflect.DeepEqual(*st.record, rec) {
		t.Fatalf("decided: %+v %v, want the record", st, err)
	}
	// The record comes first: the claim check is replay's.
	if st, err := ch.beginHold(ctx, id, holdClaim{Fingerprint: "other"}); err != nil || st.record == nil {
		t.Fatalf("decided, another request: %+v %v, want the record", st, err)
	}
}
