//go:build cluster

package store_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// The readiness check of a Redis Cluster asks every master, and says in
// words which seeds could not be reached.
func TestPingCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rdb := store.Open(config.Redis{ClusterAddrs: testenv.RedisClusterAddrs(t)})
	defer rdb.Close()
	if err := store.Ping(ctx, rdb); err != nil {
		t.Fatalf("ping a healthy cluster: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	gone := store.Open(config.Redis{ClusterAddrs: []string{dead}})
	defer gone.Close()
	err = store.Ping(ctx, gone)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), dead) {
		t.Fatalf("ping an unreachable seed: %v; want connection refused naming %s", err, dead)
	}
	if store.Misconfigured(err) {
		t.Fatalf("an unreachable seed is not a misconfiguration (serve waits for it): %v", err)
	}
}
