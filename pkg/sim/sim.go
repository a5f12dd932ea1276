package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
)

// Config configures a Simulator.
type Config struct {
	Seed      uint64
	Catalogue Catalogue
	// Rate is events per second; 0 produces as fast as the broker takes them.
	Rate float64
	// Count stops after this many stream events (the catalogue not counted);
	// 0 runs until the context ends.
	Count int
	// SkipCatalog leaves out the item masters and opening counts published
	// before the stream.
	SkipCatalog bool
	// DuplicateRatio produces this share of stream events a second time,
	// with the same event_id, as an upstream at-least-once producer would.
	DuplicateRatio float64
}

// Stats says what a run produced.
type Stats struct {
	Duplicates int // events produced a second time
	Catalog    int // item masters and opening counts
	Produced   int
	ByType     map[string]int
}

// Simulator produces a Generator's events to Kafka.
type Simulator struct {
	dupRand *rand.Rand
	cfg     Config
	gen     *Generator
	codec   *avro.Codec
	cl      *kgo.Client
	log     *slog.Logger
}

// New returns a simulator producing through cl, which must not set a
// default topic. The generator decides the topics.
func New(cfg Config, gen *Generator, codec *avro.Codec, cl *kgo.Client, log *slog.Logger) *Simulator {
	return &Simulator{cfg: cfg, gen: gen, codec: codec, cl: cl, log: log, dupRand: rand.New(rand.NewPCG(cfg.Seed, 0xd0b1e))}
}

// Run produces until Count events are out or ctx ends, then flushes. It
// returns the first produce error.
func (s *Simulator) Run(ctx context.Context) (Stats, error) {
	st := Stats{ByType: map[string]int{}}
	var (
		mu       sync.Mutex
		firstErr error
		acked    atomic.Int64
	)
	produce := func(m Message) error {
		b, err := s.codec.Encode(ctx, m.Topic, m.Event)
		if err != nil {
			return fmt.Errorf("encode %s: %w", m.Event.AvroName(), err)
		}
		rec := &kgo.Record{Topic: m.Topic, Key: []byte(m.Key), Value: b}
		s.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			acked.Add(1)
		})
		return nil
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}

	if !s.cfg.SkipCatalog {
		for _, m := range append(s.gen.Catalog(), s.gen.Opening()...) {
			if err := produce(m); err != nil {
				return st, err
			}
			st.Catalog++
		}
		// Item masters first: conversions must be known before case quantities arrive.
		if err := s.cl.Flush(ctx); err != nil {
			return st, fmt.Errorf("flush catalog: %w", err)
		}
	}

	start := time.Now()
	lastLog := start
	for s.cfg.Count == 0 || st.Produced < s.cfg.Count {
		if err := failed(); err != nil {
			return st, fmt.Errorf("produce: %w", err)
		}
		if s.cfg.Rate > 0 {
			due := int(s.cfg.Rate * time.Since(start).Seconds())
			if st.Produced >= due {
				select {
				case <-ctx.Done():
					return st, s.finish(ctx, st, failed)
				case <-time.After(5 * time.Millisecond):
				}
				continue
			}
		} else if ctx.Err() != nil {
			return st, s.finish(ctx, st, failed)
		}
		m := s.gen.Next()
		if err := produce(m); err != nil {
			return st, err
		}
		if s.cfg.DuplicateRatio > 0 && s.dupRand.Float64() < s.cfg.DuplicateRatio {
			if err := produce(m); err != nil {
				return st, err
			}
			st.Duplicates++
		}
		st.Produced++
		st.ByType[m.Event.AvroName()]++
		if time.Since(lastLog) > 10*time.Second {
			s.log.Info("simulator", "produced", st.Produced, "acked", acked.Load())
			lastLog = time.Now()
		}
	}
	return st, s.finish(ctx, st, failed)
}

func (s *Simulator) finish(ctx context.Context, st Stats, failed func() error) error {
	// The run's context may be done: give buffered records a bounded flush.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.cl.Flush(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("flush: %w", err)
	}
	s.log.Info("simulator stopped", "catalog", st.Catalog, "produced", st.Produced)
	return failed()
}
