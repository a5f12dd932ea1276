package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/tail"
	"github.com/stockflow/stockflow/pkg/telemetry"
)

const tailUsage = `usage: stockflow tail TOPIC [flags]

Print a topic's records as they arrive (read_committed), decoded, until
interrupted. TOPIC is a topic name or one of inventory, orders, supplier,
catalog, ledger, availability, alerts, dlq, index, snapshots, reconciliation
for the configured topics.
A record that cannot be decoded is printed with its raw bytes and the reason.

  stockflow tail availability -from-beginning -sku SKU-00042 -format table
  stockflow tail dlq -from-beginning

flags:
`

func tailCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	l := config.NewLoader("tail", stderr, config.KafkaOptions, config.TopicOptions, config.RecordOptions, config.LogOptions)
	o := tail.Options{Out: stdout}
	l.FlagSet.BoolVar(&o.FromBeginning, "from-beginning", false, "start at the earliest offset (default: only records produced from now on)")
	l.FlagSet.StringVar(&o.Key, "key", "", "only records with this key")
	l.FlagSet.StringVar(&o.SKU, "sku", "", "only records about this SKU")
	l.FlagSet.StringVar(&o.Format, "format", tail.FormatJSON, "json (one object per line) or table")
	l.FlagSet.Usage = func() {
		fmt.Fprint(stderr, tailUsage)
		l.FlagSet.PrintDefaults()
	}
	// TOPIC may come before the flags or after them.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.Topic, args = args[0], args[1:]
	}
	cfg, code, ok := load(l, args, stderr)
	if !ok {
		return code
	}
	rest := l.FlagSet.Args()
	if o.Topic == "" && len(rest) > 0 {
		o.Topic, rest = rest[0], rest[1:]
	}
	if o.Topic == "" || len(rest) > 0 {
		l.FlagSet.Usage()
		return exitUsage
	}
	if len(cfg.Kafka.Brokers) == 0 {
		cfg.Kafka.Brokers = []string{"127.0.0.1:19092"}
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	o.Log = log
	t, err := tail.New(cfg, o)
	if err != nil {
		fmt.Fprintf(stderr, "stockflow tail: %v\n", err)
		return exitUsage
	}
	if err := t.Run(ctx); err != nil {
		log.Error("tail", "topic", t.TopicName(), "err", err)
		return exitFailed
	}
	return exitOK
}
