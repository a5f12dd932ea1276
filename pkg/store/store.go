// Package store opens Stockflow's Redis connection and, for the embedded
// first-run mode, an in-process Redis (miniredis).
package store

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/config"
)

// Open returns a client for cfg. No connection is made until the first command.
func Open(cfg config.Redis) *redis.Client {
	opts := &redis.Options{
		Addr:     cfg.Addr,
		Password: cfg.Password,
		DB:       cfg.DB,
		// Checkout lookups must fail fast rather than queue behind a slow Redis.
		PoolSize:     64,
		MinIdleConns: 4,
	}
	if cfg.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return redis.NewClient(opts)
}

// Ping reports whether Redis answers within ctx.
func Ping(ctx context.Context, rdb redis.UniversalClient) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// StartEmbedded starts an in-process Redis on addr (host:port; port 0 picks one).
func StartEmbedded(addr string) (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start embedded redis on %s: %w", addr, err)
	}
	return m, nil
}
