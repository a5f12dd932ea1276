//go:build integration

package sim

import (
	"testing"

	"github.com/stockflow/stockflow/pkg/testenv"
)

// Avro events produced to the real broker come back decoded, unchanged.
func TestSimulatorRoundTripRealKafka(t *testing.T) {
	cfg := testenv.Config(t, 0)
	roundTrip(t, cfg.Kafka.Brokers, cfg.Topics, 3000)
}
