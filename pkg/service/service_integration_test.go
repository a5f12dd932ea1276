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

// The checkout suite on the real stack. Its subtests run one after another
// on Redis database 14, emptied between them.
func TestCheckoutRealStack(t *testing.T) {
	runCheckoutSuite(t, func(t *testing.T) *stack {
		cfg := testenv.Config(t, 14)
		testenv.Redis(t, 14)
		return startStack(t, cfg, Options{})
	})
}
