package ledger

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func TestLedgerOnMiniredis(t *testing.T) {
	runSuite(t, func(t *testing.T) *Store {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { rdb.Close() })
		return New(rdb, Config{})
	})
}
