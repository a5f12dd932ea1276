// Package testenv gives integration tests the real local stack started by
// deploy/local (make stack-up): Kafka, Redis and Jaeger addresses, and
// uniquely named topics so that tests never see each other's records.
//
// When a component is not reachable the test fails, telling how to start
// it: an integration test that silently skips proves nothing.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func reachable(t testing.TB, what, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s (%v): start the local stack with `make stack-up`", what, addr, err)
	}
	_ = conn.Close() // only dialled to see that the port answers
}

// KafkaBrokers returns the real broker's address ($STOCKFLOW_TEST_KAFKA).
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	brokers := strings.Split(env("STOCKFLOW_TEST_KAFKA", "127.0.0.1:9092"), ",")
	reachable(t, "Kafka", brokers[0])
	return brokers
}

// RedisAddr returns the real Redis address ($STOCKFLOW_TEST_REDIS).
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := env("STOCKFLOW_TEST_REDIS", "127.0.0.1:6379")
	reachable(t, "Redis", addr)
	return addr
}

// JaegerURL returns the real Jaeger query API base URL ($STOCKFLOW_TEST_JAEGER).
func JaegerURL(t testing.TB) string {
	t.Helper()
	u := env("STOCKFLOW_TEST_JAEGER", "http://127.0.0.1:16686")
	reachable(t, "Jaeger", strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://"))
	return u
}

// SchemaRegistry returns the base URL of the real schema registry's
// Confluent-compatible API ($STOCKFLOW_TEST_SCHEMA_REGISTRY; the local
// stack's Apicurio Registry).
func SchemaRegistry(t testing.TB) string {
	t.Helper()
	u := env("STOCKFLOW_TEST_SCHEMA_REGISTRY", "http://127.0.0.1:8095/apis/ccompat/v7")
	host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	reachable(t, "the schema registry", host)
	return u
}

// Redis returns a client of the real Redis on database db, emptied before
// and after the test. Tests that share a database must not run in parallel.
func Redis(t testing.TB, db int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr(t), DB: db})
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush redis db %d: %v", db, err)
	}
	t.Cleanup(func() {
		if err := rdb.FlushDB(context.WithoutCancel(ctx)).Err(); err != nil {
			t.Logf("flush redis db %d: %v", db, err)
		}
		if err := rdb.Close(); err != nil {
			t.Logf("close redis client: %v", err)
		}
	})
	return rdb
}

// Suffix returns a short random suffix for names that must be unique per run.
func Suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Config returns a configuration pointing at the real stack with every topic
// and group name suffixed, so the test starts from empty topics. The topics
// are deleted when the test ends.
func Config(t testing.TB, redisDB int) config.Config {
	t.Helper()
	cfg := kafkaConfig(t)
	cfg.Redis.Addr = RedisAddr(t)
	cfg.Redis.DB = redisDB
	return cfg
}

// kafkaConfig is Config without Redis.
func kafkaConfig(t testing.TB) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = KafkaBrokers(t)
	cfg.Kafka.Partitions = 3
	sfx := "." + Suffix()
	tp := &cfg.Topics
	for _, p := range []*string{&tp.Inventory, &tp.Orders, &tp.Supplier, &tp.Catalog, &tp.Ledger, &tp.Holds, &tp.Availability, &tp.Alerts, &tp.DLQ, &tp.Index, &tp.Snapshots, &tp.Reconciliation, &tp.Commitments} {
		*p += sfx
	}
	cfg.Kafka.NormalizerGroup += sfx
	cfg.Kafka.FolderGroup += sfx
	cfg.Kafka.ReconcilerGroup += sfx
	cfg.Kafka.ClientID = "stockflow-test"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a failed test keeps its topics and groups for inspection: suffix %s", sfx)
			return
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm := kadm.NewClient(cl)
		// Best effort: the names are the test's own, so leftovers only clutter the broker.
		if _, err := adm.DeleteTopics(ctx, tp.Inventory, tp.Orders, tp.Supplier, tp.Catalog, tp.Ledger, tp.Holds, tp.Availability, tp.Alerts, tp.DLQ, tp.Index, tp.Snapshots, tp.Reconciliation, tp.Commitments); err != nil {
			t.Logf("delete the test's topics: %v", err)
		}
		if _, err := adm.DeleteGroups(ctx, cfg.Kafka.NormalizerGroup, cfg.Kafka.FolderGroup, cfg.Kafka.ReconcilerGroup); err != nil {
			t.Logf("delete the test's groups: %v", err)
		}
	})
	return cfg
}

// SharedRedis points cfg at database 0 of the real Redis, where the lookup
// cache works, with a key prefix of the test's own, and deletes the test's
// keys when it ends. It returns a client of that database.
func SharedRedis(t testing.TB, cfg *config.Config) *redis.Client {
	t.Helper()
	cfg.Redis.Addr = RedisAddr(t)
	cfg.Redis.DB = 0
	cfg.Redis.KeyPrefix = "t" + Suffix()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr})
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, cfg.Redis.KeyPrefix+":*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				rdb.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			rdb.Unlink(ctx, keys...)
		}
		if err := rdb.Close(); err != nil {
			t.Logf("close redis client: %v", err)
		}
	})
	return rdb
}
