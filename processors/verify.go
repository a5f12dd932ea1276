package processors

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
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
// match, that every order line's promise is the one the same rule makes
// from the fold (supply counted as policy says; when commitments are on),
// and that every dead letter carries its headers. Progress and differences
// go to out.
func Verify(ctx context.Context, kcfg config.Kafka, topics config.Topics, supply atp.SupplyPolicy, store *ledger.Store, codec *avro.Codec, out io.Writer) (VerifyReport, error) {
	var rep VerifyReport
	applied, err := store.AppliedOffsets(ctx, topics.Ledger)
	if err != nil {
		return rep, err
	}
	v := &verification{store: store, fold: NewVerifyFold(), applied: applied, rep: &rep, promises: topics.Commitments != "", supply: supply}
	if err := v.foldLog(ctx, kcfg, topics.Ledger, codec, out); err != nil {
		return rep, err
	}
	for _, sku := range v.fold.SKUs() {
		rep.SKUs++
		if err := v.checkSKU(ctx, sku); err != nil {
			return rep, err
		}
	}
	for _, k := range v.fold.Oversold {
		v.diff("hold %s was accepted beyond ATP", k)
	}
	if err := v.checkDeadLetters(ctx, kcfg, topics.DLQ); err != nil {
		return rep, err
	}
	sort.Strings(rep.Differences)
	return rep, nil
}

// verification is one run of Verify: the store it checks, the fold of the
// log it checks it against, and the report it fills in.
type verification struct {
	store   *ledger.Store
	fold    *ledger.Fold
	applied map[int32]int64 // per partition: the last offset Redis applied
	rep     *VerifyReport
	// promises: the folder keeps order lines' promises, by supply.
	promises bool
	supply   atp.SupplyPolicy
}

func (v *verification) diff(format string, a ...any) {
	v.rep.Differences = append(v.rep.Differences, fmt.Sprintf(format, a...))
}

// foldLog folds the ledger log up to the applied offsets. An entry that
// does not decode, or names no valid SKU, is skipped: the folder
// dead-lettered it too, so it never reached Redis.
func (v *verification) foldLog(ctx context.Context, kcfg config.Kafka, topic string, codec *avro.Codec, out io.Writer) error {
	if len(v.applied) == 0 {
		return nil
	}
	until := make(map[int32]int64, len(v.applied))
	for p, o := range v.applied {
		until[p] = o + 1
	}
	return deadletter.ReadTopic(ctx, kafka.Conn(kcfg), topic, until, func(r *kgo.Record) error {
		rec, err := codec.Decode(ctx, r.Value)
		if err != nil {
			return nil // dead-lettered by the folder too; it never reached Redis
		}
		le, ok := rec.(*events.LedgerEntry)
		if !ok || !ValidID(le.SKU) {
			return nil
		}
		v.fold.Apply(le, r.Partition, r.Offset)
		v.rep.Entries++
		if v.rep.Entries%100000 == 0 {
			fmt.Fprintf(out, "folded %d entries\n", v.rep.Entries)
		}
		return nil
	})
}

// checkSKU compares one SKU in Redis with its fold: its positions, its
// watermarks and its hold decisions.
func (v *verification) checkSKU(ctx context.Context, sku string) error {
	if err := v.checkPositions(ctx, sku); err != nil {
		return err
	}
	if err := v.checkWatermarks(ctx, sku); err != nil {
		return err
	}
	if err := v.checkHolds(ctx, sku); err != nil {
		return err
	}
	return v.checkPromises(ctx, sku)
}

// checkPromises compares the promise each order line of the SKU keeps in
// Redis with the one the fold's final state gives it.
func (v *verification) checkPromises(ctx context.Context, sku string) error {
	if !v.promises {
		return nil
	}
	lines, _, _, err := v.store.Lines(ctx, sku)
	if err != nil {
		return err
	}
	want := v.fold.Promises(sku, v.supply)
	for _, l := range lines {
		k := l.OrderID + "|" + l.LineID
		if l.Promise != want[k] {
			v.diff("%s order %s line %s: expected promise %q, actual %q", sku, l.OrderID, l.LineID, want[k], l.Promise)
		}
		delete(want, k)
	}
	for k, p := range want {
		v.diff("%s order line %s: expected promise %q, actual none", sku, k, p)
	}
	return nil
}

// checkPositions compares the totals of every location of the SKU, read in
// one round trip.
func (v *verification) checkPositions(ctx context.Context, sku string) error {
	positions := v.fold.Positions(sku)
	locs := make([]string, 0, len(positions))
	reqs := make([]ledger.LookupReq, 0, len(positions))
	for loc := range positions {
		locs = append(locs, loc)
		reqs = append(reqs, ledger.LookupReq{SKU: sku, Location: loc})
	}
	res, err := v.store.Lookup(ctx, reqs, time.Time{})
	if err != nil {
		return err
	}
	for i, loc := range locs {
		v.rep.Positions++
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
				v.diff("%s %s %s: expected %d, actual %d", sku, loc, f.name, f.want, f.got)
			}
		}
	}
	return nil
}

// checkWatermarks compares the SKU's watermarks with the fold's, and checks
// that none is past the offset Redis says it applied.
func (v *verification) checkWatermarks(ctx context.Context, sku string) error {
	w, err := v.store.Watermarks(ctx, sku)
	if err != nil {
		return err
	}
	for p, off := range v.fold.Watermarks(sku) {
		got := w[p]
		if got != off {
			v.diff("%s watermark of partition %d: expected %d, actual %d", sku, p, off, got)
		}
		if a, ok := v.applied[p]; ok && got > a {
			v.diff("%s watermark of partition %d is %d, past the applied offset %d", sku, p, got, a)
		}
	}
	return nil
}

// checkHolds compares the SKU's hold decisions in Redis with the fold's.
func (v *verification) checkHolds(ctx context.Context, sku string) error {
	_, _, holds, err := v.store.Lines(ctx, sku)
	if err != nil {
		return err
	}
	fh := v.fold.Holds(sku)
	for _, h := range holds {
		if wh, ok := fh[h.HoldID+"|"+h.Location]; !ok || wh.Status != h.Status {
			v.diff("%s hold %s at %s: expected %q, actual %q", sku, h.HoldID, h.Location, wh.Status, h.Status)
		}
	}
	return nil
}

// checkDeadLetters counts the dead letters and checks that each carries
// every header that says where it came from and why.
func (v *verification) checkDeadLetters(ctx context.Context, kcfg config.Kafka, topic string) error {
	return deadletter.Scan(ctx, kafka.Conn(kcfg), topic, deadletter.Filter{}, func(d deadletter.DeadLetter) error {
		v.rep.DeadLetters++
		for _, h := range []string{deadletter.HeaderSourceTopic, deadletter.HeaderSourcePartition, deadletter.HeaderSourceOffset, deadletter.HeaderErrorClass, deadletter.HeaderErrorMessage, deadletter.HeaderErrorTime} {
			if val, ok := deadletter.Header(d.Record, h); !ok || val == "" {
				v.diff("dead letter %d:%d lacks header %s", d.Partition, d.Offset, h)
			}
		}
		return nil
	})
}

// NewVerifyFold is the fold verify uses, with the store's default windows.
func NewVerifyFold() *ledger.Fold { return ledger.NewFold(ledger.Config{}) }
