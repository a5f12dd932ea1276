package service

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
)

// metricValue sums the samples of a metric whose labels match.
func metricValue(body, name, labels string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	var sum float64
	found := false
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		if labels != "" && !regexp.MustCompile(labels).MatchString(m[1]) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

func TestMetricsAfterAScriptedRun(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	m := miniredis.RunT(t)
	cfg := config.Default()
	cfg.Kafka.Brokers, cfg.Redis.Addr, cfg.Kafka.Partitions = c.ListenAddrs(), m.Addr(), 3
	s := startStack(t, cfg, Options{})
	s.send(t, cfg.Topics.Inventory, "MET", receiptEv("met-1", "MET", "L1", 10))
	if err := s.prod.ProduceSync(t.Context(), &kgo.Record{Topic: cfg.Topics.Inventory, Key: []byte("MET"), Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s.waitATP(t, "MET", "L1", 10)
	s.call(t, "POST", "/v1/holds", hold("met-hold", 60, line("MET", "L1", 2)))

	want := []struct{ name, labels string }{
		{"stockflow_event_lag_seconds_count", `topic="wms.inventory.v1"`},
		{"stockflow_fold_apply_seconds_count", ""},
		{"stockflow_fold_batch_entries_count", ""},
		{"stockflow_inventory_event_lag_seconds_count", `location="L1"`},
		{"stockflow_ledger_entries_total", `outcome="applied"`},
		{"stockflow_dead_letters_total", `class="bad_magic"`},
		{"stockflow_hold_decisions_total", `outcome="held"`},
		{"stockflow_hold_roundtrip_seconds_count", ""},
		{"stockflow_http_requests_total", `route="/v1/holds"`},
		// The Kafka clients' own metrics (kprom), by the client's role.
		{"stockflow_kafka_produce_bytes_total", `client="normalizer"`},
		{"stockflow_kafka_fetch_bytes_total", `client="folder"`},
		{"stockflow_kafka_produce_bytes_total", `client="outputs"`},
		{"stockflow_kafka_produce_bytes_total", `client="api"`},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(raw)
		var missing []string
		for _, w := range want {
			if v, ok := metricValue(body, w.name, w.labels); !ok || v <= 0 {
				missing = append(missing, w.name+w.labels)
			}
		}
		// The lag gauge is measured every few seconds: present, for both groups.
		for _, g := range []string{cfg.Kafka.NormalizerGroup, cfg.Kafka.FolderGroup} {
			if _, ok := metricValue(body, "stockflow_consumer_lag", `group="`+g+`"`); !ok {
				missing = append(missing, "stockflow_consumer_lag{group="+g+"}")
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics missing or zero: %v", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
