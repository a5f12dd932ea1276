package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/telemetry"
	"github.com/stockflow/stockflow/processors"
)

// verify folds the ledger log independently and compares it with Redis.
func verify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	l := config.NewLoader("verify", stderr, config.KafkaOptions, config.TopicOptions, config.RedisOptions, config.RecordOptions, config.LogOptions)
	timeout := l.FlagSet.Duration("timeout", 30*time.Minute, "give up after this long")
	cfg, code, ok := load(l, args, stderr)
	if !ok {
		return code
	}
	if cfg.Embedded {
		fmt.Fprintln(stderr, "stockflow verify: set -kafka-brokers and -redis-addr (an embedded ledger lives inside its serve process)")
		return exitUsage
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	codec, err := events.OpenCodec(cfg.SchemaRegistry, cfg.MaxRecordBytes)
	if err != nil {
		log.Error("codec", "err", err)
		return exitFailed
	}
	rdb := store.Open(cfg.Redis)
	defer func() {
		if err := rdb.Close(); err != nil {
			log.Warn("redis close", "err", err)
		}
	}()
	start := time.Now()
	topics := cfg.Topics
	if !cfg.Commitments {
		topics.Commitments = "" // no promises kept: none to check
	}
	rep, err := processors.Verify(ctx, cfg.Kafka, topics, cfg.API.Parsed.Supply, ledger.New(rdb, ledger.Config{KeyPrefix: cfg.Redis.KeyPrefix}), codec, stdout)
	if err != nil {
		log.Error("verify", "err", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "folded %d entries: %d SKUs, %d positions, %d dead letters checked in %s\n",
		rep.Entries, rep.SKUs, rep.Positions, rep.DeadLetters, time.Since(start).Round(time.Millisecond))
	if rep.OK() {
		fmt.Fprintln(stdout, "LEDGER==FOLD")
		return exitOK
	}
	for _, d := range rep.Differences {
		fmt.Fprintln(stdout, d)
	}
	fmt.Fprintf(stdout, "LEDGER!=FOLD: %d differences\n", len(rep.Differences))
	return exitFailed
}
