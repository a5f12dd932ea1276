package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

// Commitments measures re-promising at scale: one PO covers n backordered
// order lines of one SKU at one location (n single-unit orders, no stock),
// then one acknowledgement moves the PO a week; the time runs from its
// produce to the last of the n CommitmentChanged records it causes on the
// commitments topic. The ceiling is the same number of records of the same
// size produced and consumed alone.
func (r *Run) Commitments(ctx context.Context) error {
	if err := r.running(ctx); err != nil {
		return err
	}
	n := r.opt.CommitmentLines
	if n <= 0 {
		n = 10_000
	}
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	sku, po := "CMT-"+tag, "PO-CMT-"+tag
	due := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 10)
	r.progress("commitments: %d backordered lines of %s on %s", n, sku, po)
	if err := r.backorder(ctx, sku, po, due, n); err != nil {
		return err
	}
	if _, err := r.awaitCommitments(ctx, sku, "", n, time.Time{}, 5*time.Minute); err != nil {
		return fmt.Errorf("the %d first promises: %w", n, err)
	}
	ack := &events.PurchaseOrderAcknowledged{Meta: r.benchMeta("ack-" + tag), PONumber: po, SupplierID: "SUP-BENCH",
		Lines: []events.AcknowledgedLine{{POLine: 1, Status: events.AckAccepted, Quantity: int64(n), ExpectedDate: due.AddDate(0, 0, 7)}}}
	start := time.Now()
	if err := r.produceEvent(ctx, r.cfg.Topics.Supplier, po, ack); err != nil {
		return err
	}
	last, err := r.awaitCommitments(ctx, sku, events.EntryPOAck, n, start, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("the %d re-promises: %w", n, err)
	}
	took := last.Sub(start)
	ceil, err := r.commitmentCeiling(ctx, n)
	if err != nil {
		return err
	}
	r.rows = append(r.rows, Row{fmt.Sprintf("re-promise: one acknowledgement moving a PO that covers %d backordered lines", n),
		fmt.Sprintf("%d re-promises published in %s (%.0f/s)", n, ms(took), float64(n)/took.Seconds()),
		fmt.Sprintf("%d records of the same size produced and consumed alone: %s", n, ms(ceil)), ratio(took, ceil),
		"aim ≤ 1 s; from the acknowledgement's produce to the last CommitmentChanged read"})
	return nil
}

func (r *Run) benchMeta(id string) events.Meta {
	return events.Meta{EventID: id, EventTime: time.Now().UTC(), Source: "bench"}
}

func (r *Run) produceEvent(ctx context.Context, topic, key string, ev events.Source) error {
	b, err := r.codec.Encode(ctx, topic, ev)
	if err != nil {
		return err
	}
	return r.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: b}).FirstErr()
}

// backorder releases po for n units of sku due on due, and places n
// single-unit orders for it: the location holds none, so each waits on
// the PO.
func (r *Run) backorder(ctx context.Context, sku, po string, due time.Time, n int) error {
	const loc = "DC-EAST"
	if err := r.produceEvent(ctx, r.cfg.Topics.Catalog, sku, &events.ItemMaster{Meta: r.benchMeta("item-" + sku), SKU: sku, BaseUoM: "EA",
		Conversions: map[string]int64{"EA": 1}}); err != nil {
		return err
	}
	if err := r.produceEvent(ctx, r.cfg.Topics.Supplier, po, &events.PurchaseOrderReleased{Meta: r.benchMeta("rel-" + po), PONumber: po, SupplierID: "SUP-BENCH",
		Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: sku, Location: loc, Quantity: int64(n), UoM: "EA", ExpectedDate: due}}}); err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	for i := range n {
		id := sku + "-SO-" + strconv.Itoa(i)
		l := loc
		o := &events.OrderAccepted{Meta: r.benchMeta(id), OrderID: id, Channel: "web",
			Lines: []events.OrderLine{{LineID: "1", SKU: sku, Location: &l, Quantity: 1, UoM: "EA"}}}
		b, err := r.codec.Encode(ctx, r.cfg.Topics.Orders, o)
		if err != nil {
			return err
		}
		r.cl.Produce(ctx, &kgo.Record{Topic: r.cfg.Topics.Orders, Key: []byte(id), Value: b}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	if err := r.cl.Flush(ctx); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// awaitCommitments reads the commitments topic from its start until n
// records of sku caused by an entry of type cause ("" any) were written
// after since, and returns when the last was read.
func (r *Run) awaitCommitments(ctx context.Context, sku, cause string, n int, since time.Time, within time.Duration) (time.Time, error) {
	cons, err := kgo.NewClient(r.opts(kgo.ConsumeTopics(r.cfg.Topics.Commitments), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		return time.Time{}, err
	}
	defer cons.Close()
	seen := map[string]bool{}
	deadline := time.Now().Add(within)
	var last time.Time
	for len(seen) < n {
		if time.Now().After(deadline) {
			return last, fmt.Errorf("%d of %d seen within %s", len(seen), n, within)
		}
		fs := pollFor(ctx, cons, time.Second)
		now := time.Now()
		for it := fs.RecordIter(); !it.Done(); {
			rec := it.Next()
			if rec.Timestamp.Before(since.Add(-time.Second)) {
				continue
			}
			v, err := r.codec.Decode(ctx, rec.Value)
			if err != nil {
				return last, err
			}
			c, ok := v.(*events.CommitmentChanged)
			if !ok || c.SKU != sku || (cause != "" && c.CauseEntryType != cause) {
				continue
			}
			seen[c.OrderID+"|"+c.LineID] = true
			last = now
		}
	}
	return last, nil
}

// commitmentCeiling produces n records of a CommitmentChanged's size to a
// scratch topic and reads them back: what the broker and the clients take
// for the records alone.
func (r *Run) commitmentCeiling(ctx context.Context, n int) (time.Duration, error) {
	topic := r.cfg.Topics.Commitments + ".ceiling"
	adm := kadm.NewClient(r.cl)
	if _, err := adm.CreateTopic(ctx, int32(r.cfg.Kafka.Partitions), int16(r.cfg.Kafka.Replication), nil, topic); err != nil {
		return 0, err
	}
	defer r.deleteTopics(ctx, topic)
	value := make([]byte, 160) // about a CommitmentChanged's encoded size
	cons, err := kgo.NewClient(r.opts(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	// One record through first, so the time counts neither the topic's
	// creation nor the consumer's start, as the service's clients run
	// already.
	if err := r.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
		return 0, err
	}
	for warm, deadline := 0, time.Now().Add(time.Minute); warm == 0; {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, errors.New("ceiling: the first record was not read back within a minute")
		}
		warm = pollFor(ctx, cons, time.Second).NumRecords()
	}
	start := time.Now()
	for i := range n {
		r.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte("SO-" + strconv.Itoa(i)), Value: value}, nil)
	}
	got := 0
	for got < n && ctx.Err() == nil && time.Since(start) < time.Minute {
		got += pollFor(ctx, cons, time.Second).NumRecords()
	}
	if got < n {
		return 0, fmt.Errorf("ceiling: %d of %d records read back", got, n)
	}
	return time.Since(start), nil
}
