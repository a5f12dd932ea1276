//go:build cluster

package processors

import (
	"testing"

	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// The pipeline suite on the cluster stack (make cluster-up): a Redis
// Cluster, and the brokers $STOCKFLOW_TEST_KAFKA names.
func TestPipelineOnCluster(t *testing.T) {
	runPipelineSuite(t, func(t *testing.T) *env {
		cfg := testenv.ClusterConfig(t)
		rdb := store.Open(cfg.Redis)
		t.Cleanup(func() { rdb.Close() })
		return newEnv(t, cfg, rdb)
	})
}
