package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// KafkaClient is the option that exports a Kafka client's own metrics
// (franz-go's kprom hooks: connections, bytes, records and latencies per
// broker and topic) into reg as stockflow_kafka_*, labelled with the
// client's role in the process (client="normalizer", …). The metrics are
// registered when the client starts and unregistered when it closes, so a
// role has one client at a time: a processor that replaces its client
// closes the old one first, and takes a new option for the new client (the
// hook keeps what it registered for the client it was given).
func KafkaClient(reg prometheus.Registerer, role string) kgo.Opt {
	labelled := prometheus.WrapRegistererWith(prometheus.Labels{"client": role}, reg)
	return kgo.WithHooks(kprom.NewMetrics("stockflow_kafka", kprom.Registerer(labelled)))
}
