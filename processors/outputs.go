package processors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// change is one SKU+location's availability after a poll, conflated.
type change struct {
	sku string
	ledger.Changed
	corr *string
	ctx  context.Context // the span of the last entry behind it
	// force publishes the position even when this poll left it as it was:
	// its SKU was stored by an earlier attempt whose outputs may be lost.
	force bool
}

// stockAlert is an output kept in its SKU's outbox, encoded: an alert, or
// a commitment (outboxTarget tells them apart by id).
type stockAlert struct {
	sku, id string
	value   []byte
	ctx     context.Context
}

// pollOutputs is what one poll publishes.
type pollOutputs struct {
	changes []change
	alerts  []stockAlert
	dead    []*kgo.Record
}

func (po pollOutputs) empty() bool {
	return len(po.changes) == 0 && len(po.alerts) == 0 && len(po.dead) == 0
}

// flight tracks the records of one poll until the broker has them all.
type flight struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (f *flight) done(_ *kgo.Record, err error) {
	if err != nil {
		f.mu.Lock()
		f.err = errors.Join(f.err, err)
		f.mu.Unlock()
	}
	f.wg.Done()
}

// wait blocks until every record is acknowledged, and returns what failed.
func (f *flight) wait() error {
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// emitter turns a poll's changes into AvailabilityChanged records and
// produces them with the poll's alerts (encoded by the applier, which keeps
// them in their SKU's outbox) and dead letters, without waiting: the flight
// it returns says when the broker has them.
type emitter struct {
	codec  *avro.Codec
	topics config.Topics
	out    *kgo.Client
	supply atp.SupplyPolicy // which supply the inbound schedule counts
}

func (e *emitter) emit(ctx context.Context, po pollOutputs) (*flight, error) {
	var recs []*kgo.Record
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range po.changes {
		c := &po.changes[i]
		if rec, err := e.availability(ctx, c, now); err != nil {
			return nil, err
		} else if rec != nil {
			recs = append(recs, rec)
		}
	}
	for _, a := range po.alerts {
		topic := e.topics.Alerts
		commitment, key := outboxTarget(a.id)
		if commitment {
			topic = e.topics.Commitments
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: a.value, Context: a.ctx})
	}
	recs = append(recs, po.dead...)
	f := &flight{}
	f.wg.Add(len(recs))
	for _, r := range recs {
		e.out.Produce(ctx, r, f.done)
	}
	return f, nil
}

func level(c ledger.Components) atp.Level {
	return atp.Level{
		Position:     atp.Position{OnHand: c.OnHand, Reserved: c.Reserved, Picked: c.Picked, Held: c.Held, SafetyStock: c.SafetyStock},
		ReorderPoint: c.ReorderPoint, InboundTotal: c.Inbound,
	}
}

// availability builds the AvailabilityChanged of a change, or nil when the
// poll left the position as it was. A change that only moved supply between
// days or kinds is published too: its inbound schedule is not what it was.
func (e *emitter) availability(ctx context.Context, c *change, now time.Time) (*kgo.Record, error) {
	if c.Before == c.After && !c.SupplyChanged && !c.force {
		return nil, nil
	}
	a, short := level(c.After).Today()
	ev := &events.AvailabilityChanged{
		SKU: c.sku, Location: c.Location, Version: c.Version,
		OnHand: c.After.OnHand, Reserved: c.After.Reserved, Picked: c.After.Picked, Held: c.After.Held,
		SafetyStock: c.After.SafetyStock, ReorderPoint: c.After.ReorderPoint,
		ATP: a, Shortfall: short, AsOf: now, CorrelationID: c.corr,
	}
	// The schedule the API answers on the record's day, under the same
	// policy: a consumer reading the topic plans with the dates a lookup gives.
	for _, b := range (atp.Position{Inbound: c.Supply}).Buckets(now, e.supply) {
		ev.Inbound = append(ev.Inbound, events.InboundBucket{Date: b.Date, Quantity: b.Quantity})
	}
	b, err := e.codec.Encode(ctx, e.topics.Availability, ev)
	if err != nil {
		return nil, fmt.Errorf("encode availability: %w", err)
	}
	return &kgo.Record{Topic: e.topics.Availability, Key: []byte(c.sku + "|" + c.Location), Value: b, Context: c.ctx}, nil
}

var alertTypes = map[atp.Alert]string{
	atp.ReplenishmentNeeded: events.AlertReplenishmentNeeded,
	atp.StockOut:            events.AlertStockOut,
	atp.BackInStock:         events.AlertBackInStock,
	atp.NegativeOnHand:      events.AlertNegativeOnHand,
}

// alerts returns the alerts a change crosses into. The alert id names the
// position, the alert and the version that crossed, so a repeat of the same
// crossing is recognisable.
func alerts(c *change, now time.Time) []*events.StockAlert {
	var out []*events.StockAlert
	after := level(c.After)
	for _, x := range atp.Crossings(level(c.Before), after) {
		typ := alertTypes[x.Alert]
		out = append(out, &events.StockAlert{
			AlertID: c.sku + "|" + c.Location + "|" + typ + "|" + strconv.FormatInt(c.Version, 10), AlertType: typ,
			SKU: c.sku, Location: c.Location, ATP: max(after.Raw(), 0), OnHand: c.After.OnHand,
			ReorderPoint: c.After.ReorderPoint, SuggestedQuantity: x.Suggested, AsOf: now,
		})
	}
	return out
}
