package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/events"
)

func TestLedgerOnMiniredis(t *testing.T) {
	runSuite(t, func(t *testing.T) *Store {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { rdb.Close() })
		return New(rdb, Config{})
	})
}

// halfUnscripted sends only the second half of the first pipeline it sees
// and fails the first half with NOSCRIPT, as when another client loads the
// script while this pipeline is under way.
type halfUnscripted struct{ done bool }

func (h *halfUnscripted) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *halfUnscripted) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *halfUnscripted) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.done || len(cmds) < 2 {
			return next(ctx, cmds)
		}
		h.done = true
		half := len(cmds) / 2
		for _, c := range cmds[:half] {
			c.SetErr(errors.New("NOSCRIPT No matching script. Please use EVAL."))
		}
		next(ctx, cmds[half:])
		return cmds[0].Err()
	}
}

// A save whose pipeline met a Redis without the script for part of its
// calls sends only those again: the calls that ran are not refused by their
// own guard.
func TestSaveSendsAgainOnlyWhatHadNoScript(t *testing.T) {
	s, rdb := miniStore(t, Config{})
	ctx := context.Background()
	var skus []string
	for i := 0; i < 8; i++ {
		skus = append(skus, fmt.Sprintf("SKU-%d", i))
	}
	states, err := s.Load(ctx, skus)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		s.Engine().Apply(st, le(events.EntryReceipt, "DC1", int64(i+1), 1, "r"), 0, int64(i))
	}
	if err := saveScript.Load(ctx, rdb).Err(); err != nil { // the script is there...
		t.Fatal(err)
	}
	rdb.AddHook(&halfUnscripted{}) // ...but half of the first pipeline finds them missing
	stored, err := s.Save(ctx, states)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range stored {
		if !ok {
			t.Fatalf("%s refused by its own earlier call", skus[i])
		}
		p, err := s.Position(ctx, skus[i], "DC1", at(0))
		if err != nil || p.OnHand != int64(i+1) {
			t.Fatalf("%s: %+v %v", skus[i], p, err)
		}
	}
}

// pipelineSizes records the size of every pipeline sent.
type pipelineSizes struct{ sizes []int }

func (h *pipelineSizes) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *pipelineSizes) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *pipelineSizes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.sizes = append(h.sizes, len(cmds))
		return next(ctx, cmds)
	}
}

// receiptOf is a receipt of q units of sku at DC1, minute min.
func receiptOf(sku string, q int64, min int, eid string) *events.LedgerEntry {
	e := le(events.EntryReceipt, "DC1", q, min, eid)
	e.SKU = sku
	return e
}

// A save of more SKUs than one round trip takes stores them all, a chunk
// at a time, and still tells which one its guard refused.
func TestSaveStoresManySKUsInBoundedRoundTrips(t *testing.T) {
	s, rdb := miniStore(t, Config{})
	ctx := context.Background()
	n := 2*saveChunk + 100
	var skus []string
	for i := range n {
		skus = append(skus, fmt.Sprintf("SKU-%d", i))
	}
	states, err := s.Load(ctx, skus)
	if err != nil {
		t.Fatal(err)
	}
	// Another writer moves one SKU of the last chunk on first.
	moved := 2*saveChunk + 7
	other, err := s.Load(ctx, skus[moved:moved+1])
	if err != nil {
		t.Fatal(err)
	}
	s.Engine().Apply(other[0], receiptOf(skus[moved], 500, 1, "other"), 0, 0)
	if ok, err := s.Save(ctx, other); err != nil || !ok[0] {
		t.Fatalf("the other writer: %v %v", ok, err)
	}
	for i, st := range states {
		s.Engine().Apply(st, receiptOf(skus[i], int64(i+1), 1, "r"), 0, 0)
	}
	sizes := &pipelineSizes{}
	rdb.AddHook(sizes)
	stored, err := s.Save(ctx, states)
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes.sizes) != 3 || sizes.sizes[0] != saveChunk || sizes.sizes[1] != saveChunk || sizes.sizes[2] != 100 {
		t.Fatalf("round trips of %v calls, want %d, %d and 100", sizes.sizes, saveChunk, saveChunk)
	}
	for i, ok := range stored {
		want := int64(i + 1)
		if i == moved {
			want = 500
		}
		if ok != (i != moved) {
			t.Fatalf("%s: stored %v", skus[i], ok)
		}
		p, err := s.Position(ctx, skus[i], "DC1", at(0))
		if err != nil || p.OnHand != want {
			t.Fatalf("%s: on hand %d, want %d (%v)", skus[i], p.OnHand, want, err)
		}
	}
	// A stored state moved on: its next change is stored too.
	s.Engine().Apply(states[0], receiptOf(skus[0], 10, 2, "r2"), 0, 1)
	if ok, err := s.Save(ctx, states[:1]); err != nil || !ok[0] {
		t.Fatalf("next save: %v %v", ok, err)
	}
	if p, _ := s.Position(ctx, skus[0], "DC1", at(0)); p.OnHand != 11 {
		t.Fatalf("after the next save on hand %d, want 11", p.OnHand)
	}
}
