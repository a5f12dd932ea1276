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
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := New(rdb, Config{})
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
