package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/processors/sources"
)

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
	if want := sources.Topic(tp, ev); want != d.SourceTopic {
		return fmt.Errorf("its record is a %T, which belongs on %s, not %s", v, want, d.SourceTopic)
	}
	return nil
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
