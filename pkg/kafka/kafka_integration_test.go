//go:build integration

package kafka_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/testenv"
)

func TestEnsureTopicsOnRealBroker(t *testing.T) {
	cfg := testenv.Config(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := kafka.WaitReady(ctx, adm, cfg.Kafka, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	specs := kafka.Topics(cfg.Topics)
	for range 2 { // the second run finds them all and must not fail
		if err := kafka.EnsureTopics(ctx, adm, 3, 1, specs); err != nil {
			t.Fatal(err)
		}
	}
	details, err := adm.ListTopics(ctx, cfg.Topics.Ledger, cfg.Topics.Catalog, cfg.Topics.Availability, cfg.Topics.DLQ, cfg.Topics.Index)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range details {
		if d.Err != nil || len(d.Partitions) != 3 {
			t.Errorf("%s: err %v, %d partitions", name, d.Err, len(d.Partitions))
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, cfg.Topics.Catalog, cfg.Topics.Availability, cfg.Topics.Ledger, cfg.Topics.Index)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		cfg.Topics.Catalog:      {"cleanup.policy": "compact"},
		cfg.Topics.Availability: {"cleanup.policy": "compact"},
		cfg.Topics.Ledger:       {"cleanup.policy": "delete", "retention.ms": "-1"},
		cfg.Topics.Index:        {"cleanup.policy": "compact"},
	}
	for _, rc := range rcs {
		for k, v := range want[rc.Name] {
			got := ""
			for _, c := range rc.Configs {
				if c.Key == k {
					got = c.MaybeValue()
				}
			}
			if got != v {
				t.Errorf("%s %s = %q, want %q", rc.Name, k, got, v)
			}
		}
	}
}
