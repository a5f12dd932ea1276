package console

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
)

// Bounds on reading the dead-letter topic. A listing reads it whole, so
// that its counts cover it, but keeps of each record only what the counts
// need; of the page's few, a short summary (see deadLetter). What is held
// at once is the client's fetches (fetchBytes, for one partition at a
// time) and one poll's records (a few hundred, see deadletter.Read). A
// fetch's bytes are compressed: decompressed, its records take up to the
// compression's ratio more (zstd on a run of zeros: a thousand times),
// which is why the fetch is small and why only Stockflow should write the
// dead-letter topic.
const (
	// defaultScanTimeout bounds a listing's read, well inside the HTTP
	// server's 30 s write timeout, so that a slow read is answered, with
	// what was read, rather than dropped.
	defaultScanTimeout = 10 * time.Second
	defaultPageSize    = 50
	fetchBytes         = 1 << 20
)

// readDLQ reads the dead-letter topic with deadletter.Read, fetching
// little at a time (fetchBytes): from from (nil: each partition's start)
// up to the last stable offsets, or until when lower, giving each poll's
// data records to fn. It returns the ends it set out for.
func (c *Console) readDLQ(ctx context.Context, from, until map[int32]int64, fn func([]*kgo.Record) error) (map[int32]int64, error) {
	conn := append(slices.Clip(c.cfg.Kafka), kgo.FetchMaxBytes(fetchBytes), kgo.FetchMaxPartitionBytes(fetchBytes))
	return deadletter.Read(ctx, conn, c.cfg.DLQTopic, from, until, fn)
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
