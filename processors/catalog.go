package processors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
)

// Item is what normalizers need of an item master.
type Item struct {
	BaseUoM     string
	Conversions map[string]int64 // base units per one unit
}

// Catalog is every item master, read in full from the compacted catalog
// topic by every instance (unit conversions must be known whatever the
// partition assignment).
type Catalog struct {
	cl     *kgo.Client
	closed sync.Once
	adm    *kadm.Client
	topic  string
	codec  *avro.Codec
	log    *slog.Logger

	mu    sync.RWMutex
	items map[string]Item
	pos   map[int32]int64 // next offset to read per partition
	cond  *sync.Cond
}

// NewCatalog returns a catalog reader. Run must be running for it to fill.
func NewCatalog(opts []kgo.Opt, topic string, codec *avro.Codec, log *slog.Logger) (*Catalog, error) {
	opts = append(opts,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets too: seeing them lets the reader
		// know exactly when it has reached the end offset.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("catalog client: %w", err)
	}
	c := &Catalog{cl: cl, adm: kadm.NewClient(cl), topic: topic, codec: codec, log: log,
		items: map[string]Item{}, pos: map[int32]int64{}}
	c.cond = sync.NewCond(&c.mu)
	return c, nil
}

// Lookup returns the item master of sku.
func (c *Catalog) Lookup(sku string) (Item, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	it, ok := c.items[sku]
	return it, ok
}

// Close releases the catalog's client; Run does when it returns. It may be
// called more than once, and without Run.
func (c *Catalog) Close() { c.closed.Do(c.cl.Close) }

// Run reads the catalog topic until ctx ends.
func (c *Catalog) Run(ctx context.Context) error {
	defer c.Close()
	for {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
			return nil
		}
		logFetchErrors(c.log, "catalog", fs)
		c.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			c.pos[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() || r.Value == nil {
				return
			}
			rec, err := c.codec.Decode(ctx, r.Value)
			if err != nil {
				// The normalizer dead-letters it; here it simply has no effect.
				return
			}
			im, ok := rec.(*events.ItemMaster)
			if !ok {
				return
			}
			base := im.BaseUoM
			if base == "" {
				base = "EA"
			}
			c.items[im.SKU] = Item{BaseUoM: base, Conversions: im.Conversions}
		})
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// WaitCaughtUp blocks until every item master committed to the topic before
// the call has been read, or ctx ends.
func (c *Catalog) WaitCaughtUp(ctx context.Context) error {
	ends, err := c.adm.ListEndOffsets(ctx, c.topic)
	if err != nil {
		return fmt.Errorf("catalog end offsets: %w", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		behind := false
		for p, end := range want {
			if c.pos[p] < end {
				behind = true
			}
		}
		if !behind {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.cond.Wait()
	}
}

// waitTimeout is WaitCaughtUp bounded by d.
func (c *Catalog) waitTimeout(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return c.WaitCaughtUp(ctx)
}
