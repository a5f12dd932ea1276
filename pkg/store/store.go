// Package store opens Stockflow's Redis connection and, for the embedded
// first-run mode, an in-process Redis (miniredis).
package store

import (
	"context"
	"fmt"
	"net"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/config"
)

// Open returns a client for cfg. No connection is made until the first command.
func Open(cfg config.Redis) *redis.Client {
	opts := &redis.Options{
		DB: cfg.DB,
		// Checkout lookups must fail fast rather than queue behind a slow Redis.
		PoolSize:     64,
		MinIdleConns: 4,
	}
	secure(opts, cfg)
	return redis.NewClient(opts)
}

// secure sets the address, credentials and TLS of opts from cfg.
func secure(opts *redis.Options, cfg config.Redis) {
	opts.Addr, opts.Username, opts.Password = cfg.Addr, cfg.Username, cfg.Password
	tc, err := cfg.TLSConfig()
	if err != nil {
		// Validated at load, so the files changed since. Fail every
		// connection with the reason rather than connect without TLS.
		opts.Dialer = func(context.Context, string, string) (net.Conn, error) {
			return nil, fmt.Errorf("redis tls: %w", err)
		}
		return
	}
	opts.TLSConfig = tc
}

// Ping reports whether Redis answers within ctx, and if not why, in words
// an operator can act on (see Explain).
func Ping(ctx context.Context, rdb redis.UniversalClient) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		var o *redis.Options
		if c, ok := rdb.(interface{ Options() *redis.Options }); ok {
			o = c.Options()
		}
		return Explain(o, err)
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
