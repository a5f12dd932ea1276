package console

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Bounds on reading the dead-letter topic. A listing reads it whole, so
// that its counts cover it, but keeps of each record only what the counts
// need; of the page's few, a short summary (see deadLetter). What is held
// at once is the client's fetches (fetchBytes, for one partition at a
// time) and one poll's records (scanPoll). A fetch's bytes are compressed:
// decompressed, its records take up to the compression's ratio more (zstd
// on a run of zeros: a thousand times), which is why the fetch is small and
// why only Stockflow should write the dead-letter topic.
const (
	// defaultScanTimeout bounds a listing's read, well inside the HTTP
	// server's 30 s write timeout, so that a slow read is answered, with
	// what was read, rather than dropped.
	defaultScanTimeout = 10 * time.Second
	defaultPageSize    = 50
	scanPoll           = 200
	fetchBytes         = 1 << 20
)

// readDLQ reads the dead-letter topic's committed records from from (each
// partition's offset; nil: its start) up to its last stable offset as the
// call begins, or until, when set and lower (exclusive; a partition not in
// a non-nil until is not read), and gives each
// poll's data records to fn. A transaction left open on the topic does not
// hold the read: it stops before the transaction's first record, as a
// read_committed reader cannot read past it. It returns where it stopped
// reading each partition: the ends it set out for.
func (c *Console) readDLQ(ctx context.Context, from, until map[int32]int64, fn func([]*kgo.Record) error) (map[int32]int64, error) {
	start, end, err := c.dlqBounds(ctx, from, until)
	if err != nil {
		return nil, err
	}
	offs := map[int32]kgo.Offset{}
	for p, e := range end {
		if start[p] < e {
			offs[p] = kgo.NewOffset().At(start[p])
		}
	}
	if len(offs) == 0 {
		return end, nil
	}
	cl, err := kgo.NewClient(append(slices.Clip(c.cfg.Kafka),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.cfg.DLQTopic: offs}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // an offset retention removed: the oldest left
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // markers take offsets too: the ends are reached exactly
		kgo.FetchMaxBytes(fetchBytes), kgo.FetchMaxPartitionBytes(fetchBytes))...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.cfg.DLQTopic, err)
	}
	defer cl.Close()
	return end, c.pollDLQ(ctx, cl, start, end, fn)
}

// dlqBounds are where a read begins and ends in each partition: from, or
// the log's start when later (retention removed what came before it), to
// the last stable offset, or until when lower. A partition whose log
// starts at or past its end has nothing to read: its start is its end.
// Beginning before the log's start would have the consumer reset to it
// and wait, for records that do not come, when retention emptied it.
func (c *Console) dlqBounds(ctx context.Context, from, until map[int32]int64) (start, end map[int32]int64, err error) {
	cl, err := kgo.NewClient(c.cfg.Kafka...)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", c.cfg.DLQTopic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// The last stable offset, as ListOffsets answers with read_committed
	// isolation; the high watermark lies beyond an open transaction.
	lso, err := adm.ListCommittedOffsets(ctx, c.cfg.DLQTopic)
	if err == nil {
		err = lso.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets of %s: %w", c.cfg.DLQTopic, err)
	}
	los, err := adm.ListStartOffsets(ctx, c.cfg.DLQTopic)
	if err == nil {
		err = los.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start offsets of %s: %w", c.cfg.DLQTopic, err)
	}
	start, end = map[int32]int64{}, map[int32]int64{}
	lso.Each(func(o kadm.ListedOffset) {
		f, asked := from[o.Partition]
		u, bounded := until[o.Partition]
		if (from != nil && !asked) || (until != nil && !bounded) {
			return // a partition not asked for
		}
		e := o.Offset
		if bounded && u < e {
			e = u
		}
		logStart, ok := los.Lookup(c.cfg.DLQTopic, o.Partition)
		if !ok {
			return
		}
		start[o.Partition], end[o.Partition] = min(max(f, logStart.Offset), e), e
	})
	return start, end, nil
}

// pollDLQ polls cl until every partition has been read from start to end.
func (c *Console) pollDLQ(ctx context.Context, cl *kgo.Client, start, end map[int32]int64, fn func([]*kgo.Record) error) error {
	pos := maps.Clone(start)
	left := 0
	for p, e := range end {
		if pos[p] < e {
			left++
		}
	}
	batch := make([]*kgo.Record, 0, scanPoll)
	for left > 0 {
		fs := cl.PollRecords(ctx, scanPoll)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("read %s: %w", c.cfg.DLQTopic, ferr)
		}
		batch = batch[:0]
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < pos[r.Partition] || pos[r.Partition] >= end[r.Partition] {
				return
			}
			if pos[r.Partition] = r.Offset + 1; pos[r.Partition] >= end[r.Partition] {
				left--
				cl.PauseFetchPartitions(map[string][]int32{c.cfg.DLQTopic: {r.Partition}})
			}
			if r.Offset < end[r.Partition] && !r.Attrs.IsControl() {
				batch = append(batch, r)
			}
		})
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
		}
	}
	return nil
}

// readOffsets reads the dead letters ids, and nothing before the first of
// them in each partition: an action reads what it acts on, not the topic.
// fn gets each that is still in the topic; the others are not there.
func (c *Console) readOffsets(ctx context.Context, ids []dlqID, fn func(*kgo.Record) error) error {
	from, until := map[int32]int64{}, map[int32]int64{}
	want := map[dlqID]bool{}
	for _, id := range ids {
		want[id] = true
		if o, ok := from[id.Partition]; !ok || id.Offset < o {
			from[id.Partition] = id.Offset
		}
		until[id.Partition] = max(until[id.Partition], id.Offset+1)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := c.readDLQ(ctx, from, until, func(recs []*kgo.Record) error {
		for _, r := range recs {
			if want[dlqID{r.Partition, r.Offset}] {
				if err := fn(r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return err
}
