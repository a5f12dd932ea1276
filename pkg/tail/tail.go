// Package tail prints what is on a Stockflow topic as it arrives: every
// record decoded (source events, ledger entries, availability, alerts, the
// document index and dead letters with their headers), one line each, as
// JSON or as an aligned table. A record that cannot be decoded is printed
// with its raw bytes and the reason.
package tail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
)

// Output formats.
const (
	FormatJSON  = "json"
	FormatTable = "table"
)

// Options are what to read and how to print it.
type Options struct {
	// Topic is a full topic name or the short name of a configured topic
	// (see Topic). Required.
	Topic string
	// FromBeginning starts at the earliest offset. Default: the end, so
	// only records produced from now on are printed.
	FromBeginning bool
	// Key keeps only records whose key is exactly this. Default: any key.
	Key string
	// SKU keeps only records whose decoded value names this SKU (a record
	// that cannot be decoded: whose key is the SKU or starts with SKU|).
	// Default: any SKU.
	SKU string
	// Format is FormatJSON (the default) or FormatTable.
	Format string
	// Out receives the lines. Required.
	Out io.Writer
	// Log receives warnings, such as fetch errors the client retries.
	// Default: discarded.
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Format == "" {
		o.Format = FormatJSON
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	if o.Topic == "" {
		errs = append(errs, errors.New("topic: required"))
	}
	if o.Format != FormatJSON && o.Format != FormatTable {
		errs = append(errs, fmt.Errorf("format: %q is not %s or %s", o.Format, FormatJSON, FormatTable))
	}
	if o.Out == nil {
		errs = append(errs, errors.New("out: required"))
	}
	return errors.Join(errs...)
}

// Topic returns the topic a name given on the command line means: the
// configured topic for a short name (inventory, orders, supplier, catalog,
// ledger, availability, alerts, dlq, index, snapshots, reconciliation),
// otherwise the name itself.
func Topic(t config.Topics, name string) string {
	switch strings.ToLower(name) {
	case "inventory":
		return t.Inventory
	case "orders":
		return t.Orders
	case "supplier":
		return t.Supplier
	case "catalog":
		return t.Catalog
	case "ledger":
		return t.Ledger
	case "availability":
		return t.Availability
	case "alerts":
		return t.Alerts
	case "dlq":
		return t.DLQ
	case "index":
		return t.Index
	case "snapshots":
		return t.Snapshots
	case "reconciliation":
		return t.Reconciliation
	case "commitments":
		return t.Commitments
	}
	return name
}

// Tail reads one topic and prints its records.
type Tail struct {
	kafka   config.Kafka
	topic   string
	dec     decoder
	opts    Options
	printer printer
}

// New builds a tail of o.Topic with cfg's brokers and topic names. Records
// are decoded through cfg's schema registry when one is set, else with the
// built-in schema ids of schemas/manifest.json.
func New(cfg config.Config, o Options) (*Tail, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	codec, err := events.OpenCodec(cfg.SchemaRegistry, cfg.MaxRecordBytes)
	if err != nil {
		return nil, fmt.Errorf("codec: %w", err)
	}
	topic := Topic(cfg.Topics, o.Topic)
	t := &Tail{
		kafka: cfg.Kafka,
		topic: topic,
		dec:   decoder{codec: codec, index: topic == cfg.Topics.Index},
		opts:  o,
	}
	if o.Format == FormatTable {
		t.printer = newTablePrinter(o.Out)
	} else {
		t.printer = newJSONPrinter(o.Out)
	}
	return t, nil
}

// TopicName is the full name of the topic read.
func (t *Tail) TopicName() string { return t.topic }

// Run prints the topic's records, read_committed, until ctx ends, which is
// the normal way to stop and returns nil. It fails when the topic does not
// exist or the output cannot be written.
func (t *Tail) Run(ctx context.Context) error {
	start := kgo.NewOffset().AtEnd()
	if t.opts.FromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kafka.ClientOpts(t.kafka,
		kgo.ConsumeTopics(t.topic),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := t.checkTopic(ctx, cl); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := t.printer.begin(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fs.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.opts.Log.Warn("fetch", "topic", topic, "partition", p, "err", err)
		})
		var werr error
		fs.EachRecord(func(r *kgo.Record) {
			if werr != nil {
				return
			}
			if t.opts.Key != "" && string(r.Key) != t.opts.Key {
				return
			}
			rec := t.dec.decode(ctx, r)
			if t.opts.SKU != "" && !rec.hasSKU(t.opts.SKU) {
				return
			}
			werr = t.printer.print(rec)
		})
		if werr != nil {
			return fmt.Errorf("write: %w", werr)
		}
	}
}

// checkTopic fails when the topic does not exist: a consumer of a missing
// topic would wait for it silently.
func (t *Tail) checkTopic(ctx context.Context, cl *kgo.Client) error {
	details, err := kadm.NewClient(cl).ListTopics(ctx, t.topic)
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", t.topic, err)
	}
	d, ok := details[t.topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %s does not exist", t.topic)
	}
	if d.Err != nil {
		return fmt.Errorf("describe topic %s: %w", t.topic, d.Err)
	}
	return nil
}
