package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
)

// Filter selects dead letters. Zero fields match everything.
type Filter struct {
	Class       string
	SourceTopic string
	Since       time.Time // by the error time header
	Until       time.Time
	// Offsets, when set, selects dead letters by their own partition/offset.
	Offsets map[int32][]int64
}

// DeadLetter is one record of the dead-letter topic, described.
type DeadLetter struct {
	Partition       int32
	Offset          int64
	Class, Message  string
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	Time            time.Time
	Replayed        bool
	Record          *kgo.Record
}

// Describe reads a dead-letter record's headers: why it failed and where
// it came from. Headers a record lacks leave their fields zero.
func Describe(r *kgo.Record) DeadLetter {
	d := DeadLetter{Partition: r.Partition, Offset: r.Offset, Record: r}
	d.Class, _ = Header(r, HeaderErrorClass)
	d.Message, _ = Header(r, HeaderErrorMessage)
	d.SourceTopic, _ = Header(r, HeaderSourceTopic)
	if v, ok := Header(r, HeaderSourcePartition); ok {
		p, _ := strconv.Atoi(v)
		d.SourcePartition = int32(p)
	}
	if v, ok := Header(r, HeaderSourceOffset); ok {
		d.SourceOffset, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := Header(r, HeaderErrorTime); ok {
		d.Time, _ = time.Parse(time.RFC3339Nano, v)
	}
	_, d.Replayed = Header(r, HeaderReplay)
	return d
}

func (f Filter) match(d DeadLetter) bool {
	if f.Class != "" && d.Class != f.Class {
		return false
	}
	if f.SourceTopic != "" && d.SourceTopic != f.SourceTopic {
		return false
	}
	if !f.Since.IsZero() && d.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && d.Time.After(f.Until) {
		return false
	}
	if f.Offsets != nil {
		for _, o := range f.Offsets[d.Partition] {
			if o == d.Offset {
				return true
			}
		}
		return false
	}
	return true
}

// Scan reads the whole dead-letter topic as it stands now, with a
// client of its own made from conn (kafka.Conn), and calls fn for each
// record that matches.
//
// It stops at the last stable offsets the topic has when the call starts:
// anyone who may write the dead-letter topic can leave a transaction open
// on it, and reading up to the high watermark would wait for that
// transaction.
func Scan(ctx context.Context, conn []kgo.Opt, topic string, f Filter, fn func(DeadLetter) error) error {
	until, err := stableEnds(ctx, conn, topic)
	if err != nil {
		return err
	}
	return readTopic(ctx, conn, topic, until, deadLetterQuiet, func(r *kgo.Record) error {
		if d := Describe(r); f.match(d) {
			return fn(d)
		}
		return nil
	})
}

// stableEnds is each partition's last stable offset, where it holds any
// data: what a read_committed reader can reach without waiting for an open
// transaction.
func stableEnds(ctx context.Context, conn []kgo.Opt, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(slices.Clip(conn)...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("last stable offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("last stable offsets of %s: %w", topic, err)
	}
	until := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			until[o.Partition] = o.Offset
		}
	})
	return until, nil
}

// deadLetterQuiet is how long a dead-letter scan waits for a record short
// of the last stable offset before it stops with a ShortRead. Records of a
// transaction aborted just before one still open are dropped by the reader,
// and their abort marker lies past that offset, so a partition can end
// there without the reader ever seeing its end.
const deadLetterQuiet = 5 * time.Second

// ShortRead is a read that stopped short of where it meant to: no record
// came for a while (deadLetterQuiet). What it read was delivered.
type ShortRead struct {
	Topic      string
	Pos, Until map[int32]int64
}

func (e *ShortRead) Error() string {
	return fmt.Sprintf("read %s: stopped at %v short of %v: nothing more came (records of aborted transactions, or a partition not answering)",
		e.Topic, e.Pos, e.Until)
}

// ReadTopic reads topic from the start (read_committed), with a client of
// its own made from conn (kafka.Conn), and calls fn for each data record
// below until[partition] (exclusive), or, with until nil, below the end
// offsets the topic has when the call starts.
func ReadTopic(ctx context.Context, conn []kgo.Opt, topic string, until map[int32]int64, fn func(*kgo.Record) error) error {
	return readTopic(ctx, conn, topic, until, 0, fn)
}

// readTopic is ReadTopic; with quiet > 0, a read that gets no record for
// that long stops with a *ShortRead instead of waiting a minute to fail.
func readTopic(ctx context.Context, conn []kgo.Opt, topic string, until map[int32]int64, quiet time.Duration, fn func(*kgo.Record) error) error {
	cl, err := kgo.NewClient(append(slices.Clip(conn), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())...) // markers take offsets too: the ends are reached exactly
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	if until == nil {
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		until = map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Offset > 0 {
				until[o.Partition] = o.Offset
			}
		})
	}
	return ReadRange(ctx, cl, topic, until, map[int32]int64{}, quiet, fn, nil)
}

// ReadRange polls cl, which consumes topic, until every partition in until
// has been read up to its offset there (exclusive), calling each for every
// data record below it and afterPoll, when set, after every poll. pos says
// where each partition's reading stands and is kept up to date. A minute
// without a record short of until is an error: the reader is stuck; with
// quiet > 0, that long without a record ends the read with a *ShortRead.
func ReadRange(ctx context.Context, cl *kgo.Client, topic string, until, pos map[int32]int64,
	quiet time.Duration, each func(*kgo.Record) error, afterPoll func() error) error {
	done := func() bool {
		for p, end := range until {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		wait := time.Minute
		if quiet > 0 {
			wait = quiet
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("read %s: %w", topic, ferr)
		}
		if fs.NumRecords() == 0 && quiet > 0 {
			return &ShortRead{Topic: topic, Pos: maps.Clone(pos), Until: until}
		}
		if fs.NumRecords() == 0 {
			return fmt.Errorf("read %s: no progress for a minute at %v, reading up to %v", topic, pos, until)
		}
		for _, r := range fs.Records() {
			if r.Offset >= until[r.Partition] {
				continue
			}
			pos[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				continue
			}
			if err := each(r); err != nil {
				return err
			}
		}
		if afterPoll != nil {
			if err := afterPoll(); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReplayTargets says where dead letters may go back to: only to the source
// topic (inventory, orders, supplier, catalog) that their record's type
// belongs on, so a replayed record passes the normalizers' checks again like
// any other. Anyone who can write the dead-letter topic can write its
// headers: a dead letter that names the ledger, the holds topic or any
// other topic, or a record of another type than its topic's, is refused.
type ReplayTargets struct {
	Topics config.Topics
	Codec  *avro.Codec
}

// Check says why d may not be replayed, or nil when it may.
func (t ReplayTargets) Check(ctx context.Context, d DeadLetter) error {
	tp := t.Topics
	switch d.SourceTopic {
	case "":
		return errors.New("it does not say which topic it came from")
	case tp.Inventory, tp.Orders, tp.Supplier, tp.Catalog:
	default:
		return fmt.Errorf("it names %s, which is not a source topic: only records of the source topics are replayed", d.SourceTopic)
	}
	if size, cut := Header(d.Record, HeaderTruncated); cut {
		return fmt.Errorf("its record (%s bytes) was too large to keep whole, so only part of it is here: the original is at %s/%d@%d",
			clipHeader(size), d.SourceTopic, d.SourcePartition, d.SourceOffset)
	}
	if t.Codec == nil {
		return errors.New("no codec to check its record with")
	}
	v, err := t.Codec.Decode(ctx, d.Record.Value)
	if err != nil {
		// Still undecodable (say, a schema not registered yet): the
		// normalizers judge it again, as they did the first time.
		return nil
	}
	ev, ok := v.(events.Source)
	if !ok {
		return fmt.Errorf("its record is a %T, not a source event", v)
	}
	if want := SourceTopic(tp, ev); want != d.SourceTopic {
		return fmt.Errorf("its record is a %T, which belongs on %s, not %s", v, want, d.SourceTopic)
	}
	return nil
}

// SourceTopic is the source topic ev's type belongs on, among t ("" for a
// type of none). The normalizers dead-letter a record found on another
// topic (ClassWrongTopic), and ReplayTargets sends a dead letter nowhere
// else.
func SourceTopic(t config.Topics, ev events.Source) string {
	switch ev.(type) {
	case *events.InventoryReceived, *events.InventoryPicked, *events.InventoryCounted, *events.InventoryAdjusted, *events.InventoryShipped:
		return t.Inventory
	case *events.OrderAccepted, *events.OrderCancelled, *events.OrderAllocated:
		return t.Orders
	case *events.PurchaseOrderReleased, *events.PurchaseOrderAcknowledged, *events.AdvanceShipNotice, *events.PurchaseOrderClosed:
		return t.Supplier
	case *events.ItemMaster:
		return t.Catalog
	}
	return ""
}

// ReplayBatch is how many dead letters a replay produces at a time.
const ReplayBatch = 100

// ReplayRecord is d as it goes back to its source topic: its key, value and
// headers but the dead-letter ones, and a replay header naming it.
func ReplayRecord(dlqTopic string, d DeadLetter) *kgo.Record {
	var h []kgo.RecordHeader
	for _, x := range d.Record.Headers {
		switch x.Key {
		case HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset, HeaderErrorClass, HeaderErrorMessage, HeaderErrorTime, HeaderReplay, HeaderTruncated:
			continue
		}
		h = append(h, x)
	}
	h = append(h, kgo.RecordHeader{Key: HeaderReplay, Value: fmt.Appendf(nil, "%s/%d@%d", dlqTopic, d.Partition, d.Offset)})
	return &kgo.Record{Topic: d.SourceTopic, Key: d.Record.Key, Value: d.Record.Value, Headers: h}
}

// maxRefusedListed bounds what a replay keeps of the dead letters it refused.
const maxRefusedListed = 1000

// clipHeader is a header's text cut for a message.
func clipHeader(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// ReplayResult is what a replay did.
type ReplayResult struct {
	Replayed int
	// Refused are the matching dead letters that were not replayed, with
	// why (ReplayTargets.Check), by their place in the dead-letter topic:
	// the first maxRefusedListed of them; RefusedMore counts the rest.
	Refused     map[string]string
	RefusedMore int
}

// Replay re-produces the matching dead letters to their source topics with
// the original key, value and headers (less the dead-letter ones) and a
// replay header; those targets refuses are left where they are. Replays
// are safe to repeat: event_id dedupe applies a replayed event once.
func Replay(ctx context.Context, prod *kgo.Client, dlqTopic string, targets ReplayTargets, f Filter, log *slog.Logger) (ReplayResult, error) {
	var recs []*kgo.Record
	res := ReplayResult{Refused: map[string]string{}}
	// Records go out a batch at a time, so a replay holds at most one
	// batch of dead letters whatever the topic holds.
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		res.Replayed += len(recs)
		clear(recs)
		recs = recs[:0]
		return nil
	}
	// Read as the producer connects: the same brokers, TLS and SASL.
	err := Scan(ctx, kafka.ConnOf(prod), dlqTopic, f, func(d DeadLetter) error {
		if err := targets.Check(ctx, d); err != nil {
			if len(res.Refused) == maxRefusedListed {
				res.RefusedMore++
				return nil
			}
			res.Refused[fmt.Sprintf("%d:%d", d.Partition, d.Offset)] = err.Error()
			log.Warn("dead letter not replayed", "partition", d.Partition, "offset", d.Offset, "source_topic", d.SourceTopic, "why", err)
			return nil
		}
		recs = append(recs, ReplayRecord(dlqTopic, d))
		if len(recs) < ReplayBatch {
			return nil
		}
		return flush()
	})
	var short *ShortRead
	if err == nil || errors.As(err, &short) {
		if ferr := flush(); ferr != nil {
			err = ferr
		}
	}
	if err != nil {
		return res, err
	}
	if res.Replayed > 0 {
		log.Info("replayed dead letters", "count", res.Replayed, "refused", len(res.Refused))
	}
	return res, nil
}
