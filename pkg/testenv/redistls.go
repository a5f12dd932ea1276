package testenv

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/store"
)

// RedisTLSDir is where deploy/local/redis-tls.sh keeps the secured Redis'
// CA, client certificate and key, and the ACL user's password
// ($STOCKFLOW_TEST_REDIS_TLS_DIR).
func RedisTLSDir(t testing.TB) string {
	return env("STOCKFLOW_TEST_REDIS_TLS_DIR", filepath.Join(moduleRoot(t), ".stack", "redis-tls"))
}

// moduleRoot is the directory holding go.mod, above the test's package.
func moduleRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// RedisTLS returns the settings of the real TLS-only Redis
// ($STOCKFLOW_TEST_REDIS_TLS, started by deploy/local/redis-tls.sh, which
// `make stack-up` runs): its private CA, the client certificate, ACL user
// stockflow with its password read from the password file, and a key prefix
// of the test's own whose keys are deleted when the test ends.
func RedisTLS(t testing.TB) config.Redis {
	t.Helper()
	addr := env("STOCKFLOW_TEST_REDIS_TLS", "127.0.0.1:6390")
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("Redis (TLS) is not reachable at %s (%v): start it with `deploy/local/redis-tls.sh start` or `make stack-up`", addr, err)
	}
	_ = conn.Close() // only dialled to see that the port answers
	dir := RedisTLSDir(t)
	pw, err := os.ReadFile(filepath.Join(dir, "password"))
	if err != nil {
		t.Fatalf("the TLS Redis' password: %v", err)
	}
	cfg := config.Default().Redis
	cfg.Addr = addr
	cfg.Username = "stockflow"
	cfg.Password = strings.TrimSpace(string(pw))
	cfg.TLSCA = filepath.Join(dir, "ca.crt")
	cfg.TLSCert = filepath.Join(dir, "client.crt")
	cfg.TLSKey = filepath.Join(dir, "client.key")
	cfg.KeyPrefix = "t" + Suffix()
	t.Cleanup(func() {
		rdb := store.Open(cfg)
		defer func() {
			if err := rdb.Close(); err != nil {
				t.Logf("close redis client: %v", err)
			}
		}()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, cfg.KeyPrefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Unlink(ctx, iter.Val())
		}
	})
	return cfg
}
