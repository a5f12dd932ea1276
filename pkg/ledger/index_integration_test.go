//go:build integration

package ledger

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/testenv"
)

func TestIndexOnRealRedis(t *testing.T) {
	runIndexSuite(t, func(t *testing.T) (redis.UniversalClient, Config) { return testenv.Redis(t, 3), Config{} })
}
