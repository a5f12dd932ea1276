package processors

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// VerifyReport is what verify found.
type VerifyReport struct {
	Entries     int64
	SKUs        int
	Positions   int
	Differences []string
	DeadLetters int
}

// OK reports whether Redis equals the fold of the log and every invariant holds.
func (r VerifyReport) OK() bool { return len(r.Differences) == 0 }

// Verify re-reads the ledger log up to the offsets Redis says it applied,
// folds it in memory with ledger.Fold (the same engine the folder runs),
// and compares Redis with the result position by position; it also checks
// the watermarks, that no hold was accepted beyond ATP, that hold decisions
// match, and that every dead letter carries its headers. Progress and
// differences go to out.
func Verify(ctx context.Context, kcfg config.Kafka, topics config.Topics, store *ledger.Store, codec *avro.Codec, out io.Writer) (VerifyReport, error) {
	var rep VerifyReport
	applied, err := store.AppliedOffsets(ctx, topics.Ledger)
	if err != nil {
		return rep, err
	}
	fold := NewVerifyFold()
	if len(applied) > 0 {
		until := make(map[int32]int64, len(applied))
		for p, o := range applied {
			until[p] = o + 1
		}
		if err := deadletter.ReadTopic(ctx, kafka.Conn(kcfg), topics.Ledger, until, func(r *kgo.Record) error {
			rec, err := codec.Decode(ctx, r.Value)
			if err != nil {
				return nil // dead-lettered by the folder too; it never reached Redis
			}
			le, ok := rec.(*events.LedgerEntry)
			if !ok || !ValidID(le.SKU) {
				return nil
			}
			fold.Apply(le, r.Partition, r.Offset)
			rep.Entries++
			if rep.Entries%100000 == 0 {
				fmt.Fprintf(out, "folded %d entries\n", rep.Entries)
			}
			return nil
		}); err != nil {
			return rep, err
		}
	}
	diff := func(format string, a ...any) {
		rep.Differences = append(rep.Differences, fmt.Sprintf(format, a...))
	}
	for _, sku := range fold.SKUs() {
		rep.SKUs++
		// Every location of the SKU in one round trip.
		positions := fold.Positions(sku)
		locs := make([]string, 0, len(positions))
		reqs := make([]ledger.LookupReq, 0, len(positions))
		for loc := range positions {
			locs = append(locs, loc)
			reqs = append(reqs, ledger.LookupReq{SKU: sku, Location: loc})
		}
		res, err := store.Lookup(ctx, reqs, time.Time{})
		if err != nil {
			return rep, err
		}
		for i, loc := range locs {
			rep.Positions++
			want, got := positions[loc], res[i]
			for _, f := range []struct {
				name      string
				want, got int64
			}{
				{"on_hand", want.OnHand, got.OnHand}, {"reserved", want.Reserved, got.Reserved}, {"picked", want.Picked, got.Picked},
				{"held", want.Held, got.Held}, {"inbound", want.Inbound, got.Inbound}, {"safety_stock", want.SafetyStock, got.SafetyStock},
				{"reorder_point", want.ReorderPoint, got.ReorderPoint},
			} {
				if f.want != f.got {
					diff("%s %s %s: expected %d, actual %d", sku, loc, f.name, f.want, f.got)
				}
			}
		}
		w, err := store.Watermarks(ctx, sku)
		if err != nil {
			return rep, err
		}
		for p, off := range fold.Watermarks(sku) {
			got := w[p]
			if got != off {
				diff("%s watermark of partition %d: expected %d, actual %d", sku, p, off, got)
			}
			if a, ok := applied[p]; ok && got > a {
				diff("%s watermark of partition %d is %d, past the applied offset %d", sku, p, got, a)
			}
		}
		_, _, holds, err := store.Lines(ctx, sku)
		if err != nil {
			return rep, err
		}
		fh := fold.Holds(sku)
		for _, h := range holds {
			if wh, ok := fh[h.HoldID+"|"+h.Location]; !ok || wh.Status != h.Status {
				diff("%s hold %s at %s: expected %q, actual %q", sku, h.HoldID, h.Location, wh.Status, h.Status)
			}
		}
	}
	for _, k := range fold.Oversold {
		diff("hold %s was accepted beyond ATP", k)
	}
	err = deadletter.Scan(ctx, kafka.Conn(kcfg), topics.DLQ, deadletter.Filter{}, func(d deadletter.DeadLetter) error {
		rep.DeadLetters++
		for _, h := range []string{deadletter.HeaderSourceTopic, deadletter.HeaderSourcePartition, deadletter.HeaderSourceOffset, deadletter.HeaderErrorClass, deadletter.HeaderErrorMessage, deadletter.HeaderErrorTime} {
			if v, ok := deadletter.Header(d.Record, h); !ok || v == "" {
				diff("dead letter %d:%d lacks header %s", d.Partition, d.Offset, h)
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	sort.Strings(rep.Differences)
	return rep, nil
}

// NewVerifyFold is the fold verify uses, with the store's default windows.
func NewVerifyFold() *ledger.Fold { return ledger.NewFold(ledger.Config{}) }
