//go:build integration

package ledger

import (
	"testing"

	"github.com/stockflow/stockflow/pkg/testenv"
)

func TestLedgerOnRealRedis(t *testing.T) {
	runSuite(t, func(t *testing.T) *Store {
		return New(testenv.Redis(t, 3), Config{})
	})
}
