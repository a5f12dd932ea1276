// Package store opens Stockflow's Redis connection and, for the embedded
// first-run mode, an in-process Redis (miniredis).
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/config"
)

// Open returns a client for cfg: of one Redis, or of a Redis Cluster when
// cfg gives cluster seeds. No connection is made until the first command.
func Open(cfg config.Redis) redis.UniversalClient {
	if cfg.Cluster() {
		return openCluster(cfg)
	}
	opts := &redis.Options{
		DB: cfg.DB,
		// Checkout lookups must fail fast rather than queue behind a slow Redis.
		PoolSize:     64,
		MinIdleConns: 4,
	}
	secure(opts, cfg)
	return redis.NewClient(opts)
}

// openCluster returns a Redis Cluster client. Its pools are per node; it
// learns the slots from the seeds and follows MOVED and ASK as slots move
// or a replica is promoted. Reads go to masters only: a replica may lag the
// writes the folder has just made.
func openCluster(cfg config.Redis) *redis.ClusterClient {
	one := &redis.Options{}
	secure(one, cfg)
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:        cfg.ClusterAddrs,
		Username:     one.Username,
		Password:     one.Password,
		TLSConfig:    one.TLSConfig,
		Dialer:       one.Dialer,
		PoolSize:     64,
		MinIdleConns: 2,
		// A failover takes the cluster a few seconds (cluster-node-timeout
		// plus the election): keep following redirections meanwhile.
		MaxRedirects: 16,
		// A master that died refuses connections; it sends no MOVED. The
		// client learns of its replica's promotion only by reading the
		// slots again, by default once a minute: every second instead (one
		// CLUSTER SLOTS), so a failover costs seconds, not a minute.
		ClusterStateReloadInterval: time.Second,
		DialerRetries:              2,
	})
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
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return pingCluster(ctx, cc)
	}
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

// pingCluster asks every master, so that one shard out of reach (its slots
// unserved) is noticed, not only the node a lone PING happened to reach.
func pingCluster(ctx context.Context, cc *redis.ClusterClient) error {
	o := cc.Options()
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		if err := node.Ping(ctx).Err(); err != nil {
			return Explain(node.Options(), err)
		}
		return nil
	}); err != nil {
		if Misconfigured(err) || isConnError(err) {
			return err
		}
		return Explain(&redis.Options{Addr: "cluster " + strings.Join(o.Addrs, ","), Username: o.Username, Password: o.Password}, err)
	}
	info, err := cc.ClusterInfo(ctx).Result()
	if err != nil {
		return Explain(&redis.Options{Addr: "cluster", Username: o.Username, Password: o.Password}, err)
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return &ConnError{msg: "redis: the cluster is not serving every slot (cluster_state is not ok): a shard has no master"}
	}
	return nil
}

func isConnError(err error) bool {
	var e *ConnError
	return errors.As(err, &e)
}

// Logger has go-redis log through log (as warnings, component redis)
// instead of printing plain lines to standard error, which a JSON log
// collector would not parse. go-redis logs from its pools and cluster state
// (a node refusing connections, say), for the whole process.
func Logger(log *slog.Logger) {
	redis.SetLogger(redisLogger{log.With("component", "redis")})
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}
