package testenv

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/config"
)

// RedisClusterAddrs returns the seeds of the real Redis Cluster
// ($STOCKFLOW_TEST_REDIS_CLUSTER; default the one `make cluster-up` starts).
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	addrs := strings.Split(env("STOCKFLOW_TEST_REDIS_CLUSTER", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"), ",")
	for _, a := range addrs {
		reachable(t, "Redis Cluster (make cluster-up)", a)
	}
	return addrs
}

// RedisCluster returns a client of the real Redis Cluster and a key prefix
// of the test's own; the test's keys are deleted, on every master, when it
// ends.
func RedisCluster(t testing.TB) (*redis.ClusterClient, string) {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: RedisClusterAddrs(t)})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis cluster: %v", err)
	}
	prefix := "t" + Suffix()
	t.Cleanup(func() {
		if err := DeleteClusterKeys(rdb, prefix); err != nil {
			t.Logf("delete the test's cluster keys: %v", err)
		}
		if err := rdb.Close(); err != nil {
			t.Logf("close redis cluster client: %v", err)
		}
	})
	return rdb, prefix
}

// DeleteClusterKeys deletes the keys under prefix on every master.
func DeleteClusterKeys(rdb *redis.ClusterClient, prefix string) error {
	ctx := context.Background()
	var mu sync.Mutex
	return rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		iter := node.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := node.Unlink(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	})
}

// ClusterConfig returns Config's configuration with Redis the real Redis
// Cluster under a key prefix of the test's own (deleted when it ends),
// topics replicated 3 times with min ISR 2 when
// $STOCKFLOW_TEST_KAFKA_REPLICATION is 3, and Kafka reached over SASL_SSL
// with the mechanism $STOCKFLOW_TEST_CLUSTER_SASL names, if any
// ($STOCKFLOW_TEST_KAFKA_SASL_SSL names those listeners,
// $STOCKFLOW_TEST_KAFKA the plaintext ones).
func ClusterConfig(t testing.TB) config.Config {
	t.Helper()
	cfg := kafkaConfig(t)
	_, prefix := RedisCluster(t)
	cfg.Redis.ClusterAddrs = RedisClusterAddrs(t)
	cfg.Redis.KeyPrefix = prefix
	if r := env("STOCKFLOW_TEST_KAFKA_REPLICATION", ""); r == "3" {
		cfg.Kafka.Replication, cfg.Kafka.MinInsyncReplicas = 3, 2
	}
	if m := env("STOCKFLOW_TEST_CLUSTER_SASL", ""); m != "" {
		// Stockflow over SASL_SSL; the test's own cleanup keeps the
		// plaintext listener ($STOCKFLOW_TEST_KAFKA).
		KafkaSASL(t, &cfg.Kafka, m)
	}
	return cfg
}
