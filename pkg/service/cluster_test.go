//go:build cluster

package service

import (
	"testing"

	"github.com/stockflow/stockflow/pkg/testenv"
)

// The checkout suite on the cluster stack (make cluster-up): a Redis
// Cluster, and the brokers $STOCKFLOW_TEST_KAFKA names.
func TestCheckoutOnCluster(t *testing.T) {
	runCheckoutSuite(t, func(t *testing.T) *stack {
		return startStack(t, testenv.ClusterConfig(t), Options{})
	})
}
