package processors

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// The document index (which SKU each order line and PO line is for) lives
// in Redis for lookups, and on a compacted topic of its own from which Redis
// is brought back up to date when it lost lines: a restart without
// persistence, a FLUSHALL, a failover or a rollback to an older snapshot.
//
// Why a topic of its own and not the ledger log: the ledger's PO_LINE
// entries carry quantities in base units, not the unit the PO line was in,
// and an acknowledgement's quantities are in that unit. A PO rebuilt from
// the ledger would have its later acknowledgements converted wrongly. The
// index topic holds exactly what Redis holds, written in the transaction
// that carries the document's ledger entries, so it has a line exactly when
// the ledger has the document; compaction keeps one record per line.
//
// When Redis is caught up: only when a reference is not found. Finding a
// line costs nothing extra, and every lost line is looked for by the
// reference that needs it. The transaction is aborted first, so a long
// catch-up never runs inside one, and the batch comes again once Redis has
// everything the topic had. A line the batch's references need was
// committed before the batch was polled (a document's events share its
// key, hence its partition, so the event that indexed it came earlier), so
// after one catch-up the batch's unknown references are really unknown and
// are dead-lettered: each source record costs at most one catch-up per
// instance, and the normal path never reads the topic.

// indexCaughtUpFor reports whether the index was caught up after r was
// polled: then r's references are all in Redis, or unknown.
func (n *Normalizer) indexCaughtUpFor(r *kgo.Record) bool {
	o, ok := n.indexCaughtUp[topicPartition{r.Topic, r.Partition}]
	return ok && r.Offset <= o
}

// catchUpIndex brings the index in Redis up to date with the index topic,
// after the transaction of batch was aborted because of miss, an unknown
// reference. The batch comes again from the last committed offsets.
func (n *Normalizer) catchUpIndex(ctx context.Context, batch []polled, miss error) error {
	n.log.Info("a reference is not in the document index: catching up from the index topic before the batch is taken again",
		"topic", n.cfg.Topics.Index, "reference", miss)
	started := time.Now()
	var lines int
	b := backoff{Initial: 500 * time.Millisecond, Max: 5 * time.Second, Log: n.log,
		ShouldRetry: func(error) bool { return time.Since(started) <= n.cfg.RetryFor }}
	err := b.Do(ctx, "catching up the document index", func(ctx context.Context) error {
		var err error
		lines, err = n.catchUp(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("catch up the document index: %w", err)
	}
	for _, p := range batch {
		tp := topicPartition{p.r.Topic, p.r.Partition}
		if o, ok := n.indexCaughtUp[tp]; !ok || p.r.Offset > o {
			n.indexCaughtUp[tp] = p.r.Offset
		}
	}
	n.stats.IndexCatchUps++
	n.stats.IndexLines += int64(lines)
	n.hooks.onIndexCatchUp(lines)
	n.log.Info("document index caught up", "lines_written", lines, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// indexChunk bounds the lines written in one round trip by a catch-up.
const indexChunk = 5000

// catchUp reads the index topic from where Redis was last caught up (its
// start, when Redis has no record of that) to its last stable offsets, and
// writes every line into Redis, recording the offsets reached after each
// chunk, so an interrupted catch-up goes on from there. It returns how many
// lines it wrote. Records above the last stable offsets belong to
// transactions still open, whose lines their normalizer writes to Redis
// itself before it commits.
func (n *Normalizer) catchUp(ctx context.Context) (int, error) {
	topic := n.cfg.Topics.Index
	from, err := n.store.IndexCaughtUp(ctx, topic)
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(append(kafka.Conn(n.cfg.Kafka),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets too: seeing them, the reader
		// knows exactly when it has reached the last stable offset.
		kgo.KeepControlRecords())...)
	if err != nil {
		return 0, fmt.Errorf("index topic client: %w", err)
	}
	defer cl.Close()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(lctx, topic)
	cancel()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("last stable offsets of %s: %w", topic, err)
	}
	until := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if at, ok := from[o.Partition]; !ok {
			starts[o.Partition] = kgo.NewOffset().AtStart()
		} else if o.Offset > at {
			starts[o.Partition] = kgo.NewOffset().At(at)
		} else {
			return
		}
		until[o.Partition] = o.Offset
	})
	if len(starts) == 0 {
		return 0, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts})

	pos := map[int32]int64{}
	for p := range until {
		pos[p] = from[p]
	}
	var writes []ledger.IndexWrite
	written, skipped := 0, 0
	flush := func() error {
		if err := n.store.WriteIndex(ctx, writes); err != nil {
			return err
		}
		written += len(writes)
		writes = writes[:0]
		return n.store.RecordIndexCaughtUp(ctx, topic, pos)
	}
	err = deadletter.ReadRange(ctx, cl, topic, until, pos, 0, func(r *kgo.Record) error {
		d, l, err := ledger.ParseIndexRecord(r.Key, r.Value)
		if err != nil {
			skipped++
			n.log.Warn("skipping a record of the index topic", "partition", r.Partition, "offset", r.Offset, "err", err)
			return nil
		}
		writes = append(writes, ledger.IndexWrite{Doc: d, Lines: []ledger.IndexedLine{l}})
		if len(writes) >= indexChunk {
			return flush()
		}
		return nil
	}, flush)
	if err != nil {
		return written, err
	}
	if skipped > 0 {
		n.log.Warn("index topic records skipped", "count", skipped)
	}
	return written, nil
}
