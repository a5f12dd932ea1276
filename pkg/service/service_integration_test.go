//go:build integration

package service

import (
	"testing"

	"github.com/stockflow/stockflow/pkg/testenv"
)

func TestServeOnRealStackBecomesReady(t *testing.T) {
	cfg := testenv.Config(t, 2)
	startServe(t, cfg, Options{})
}

// The checkout suite on the real stack, its lookups through the lookup
// cache: each subtest on Redis database 0 under a key prefix of its own.
func TestCheckoutRealStack(t *testing.T) {
	runCheckoutSuite(t, func(t *testing.T) *stack {
		cfg := testenv.Config(t, 0)
		testenv.SharedRedis(t, &cfg)
		return startStack(t, cfg, Options{})
	})
}
