package service

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/processors"
)

// Run serves the API and console at once and, once the topics are ready,
// runs the stages, until ctx ends or one of them fails.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.srv.Run(gctx) })
	g.Go(func() error { return s.check.Run(gctx) })
	g.Go(func() error { return s.console.Run(gctx) })
	if s.cache != nil {
		g.Go(func() error { return s.cache.Run(gctx) })
	}
	g.Go(func() error { return s.lag.run(gctx) })
	g.Go(func() error {
		if err := s.prepareTopics(gctx); err != nil {
			return err
		}
		return s.runStages(gctx)
	})
	err := g.Wait()
	s.log.Info("stopped")
	return err
}

// runStages runs the stages until ctx ends or one of them fails.
func (s *Service) runStages(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, st := range s.stages {
		g.Go(func() error {
			if err := st.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// prepareTopics waits for Kafka and creates the topics the configuration
// asks for, checking the ledger and holds topics are co-partitioned.
func (s *Service) prepareTopics(ctx context.Context) error {
	cfg := s.cfg
	if !cfg.Kafka.CreateTopics {
		s.topicsReady.Store(true)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.TopicsTimeout)
	defer cancel()
	if err := kafka.WaitReady(ctx, s.adm, cfg.Kafka, s.log); err != nil {
		return err
	}
	specs := kafka.WithMinInsync(kafka.Topics(cfg.Topics), cfg.Kafka.MinInsyncReplicas)
	if err := kafka.EnsureTopics(ctx, s.adm, int32(cfg.Kafka.Partitions), int16(cfg.Kafka.Replication), specs); err != nil {
		return err
	}
	if cfg.Topics.Holds != "" {
		if err := kafka.CheckCoPartitioned(ctx, s.adm, cfg.Topics.Ledger, cfg.Topics.Holds); err != nil {
			return err
		}
	}
	s.log.Info("topics ready", "count", len(specs), "partitions_for_new", strconv.Itoa(cfg.Kafka.Partitions),
		"replication_for_new", cfg.Kafka.Replication, "min_insync_for_new", cfg.Kafka.MinInsyncReplicas)
	s.topicsReady.Store(true)
	return nil
}

// localFolder answers lookups from this process's folder once it runs.
type localFolder struct {
	f atomic.Pointer[processors.Folder]
}

func (l *localFolder) Lookup(sku, loc string, nowMs int64) (ledger.LookupResult, bool) {
	if f := l.f.Load(); f != nil {
		return f.Lookup(sku, loc, nowMs)
	}
	return ledger.LookupResult{}, false
}

// registerSchemas asks the schema registry, at start, for the id of every
// record type the service writes on each of its topics, registering the
// schema where the registry allows. A registry that refuses a schema (an
// incompatible change under the subject's compatibility rule) or cannot be
// reached stops the start with its reason, rather than the first produce.
func registerSchemas(ctx context.Context, codec *avro.Codec, t config.Topics) error {
	entry := &events.LedgerEntry{}
	writes := []struct {
		topic string
		rec   avro.Record
	}{
		{t.Ledger, entry}, {t.Holds, entry},
		{t.Availability, &events.AvailabilityChanged{}}, {t.Alerts, &events.StockAlert{}},
		{t.Reconciliation, &events.ReconciliationException{}}, {t.Reconciliation, &events.ReconciliationSummary{}},
		{t.Commitments, &events.CommitmentChanged{}}, {t.Alerts, &events.PlanningException{}},
	}
	for _, w := range writes {
		if w.topic == "" {
			continue
		}
		if _, err := codec.Register(ctx, w.topic, w.rec); err != nil {
			return fmt.Errorf("schema registry: %w", err)
		}
	}
	return nil
}
