//go:build integration

package service

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/testenv"
)

// The whole service runs on the TLS-only Redis as its ACL user, the
// lookup cache included, and becomes ready.
func TestServeOnTLSRedisBecomesReady(t *testing.T) {
	cfg := testenv.Config(t, 0)
	cfg.Redis = testenv.RedisTLS(t)
	startServe(t, cfg, Options{})
}

// Wrong credentials or a wrong CA never heal: serve stops at start with an
// error naming the connection, instead of running unready for ever.
func TestServeStopsOnWrongRedisCredentials(t *testing.T) {
	otherCA := filepath.Join(t.TempDir(), "ca.crt")
	// The client certificate is no CA of the server's: a wrong CA file.
	client, err := os.ReadFile(filepath.Join(testenv.RedisTLSDir(t), "client.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCA, client, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		wrong      func(pw *string, ca *string)
	}{
		{"password", "redis: authentication failed for user stockflow", func(pw, _ *string) { *pw = "wrong-" + testenv.Suffix() }},
		{"ca", "redis: TLS handshake with", func(_, ca *string) { *ca = otherCA }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testenv.Config(t, 0)
			cfg.Redis = testenv.RedisTLS(t)
			tc.wrong(&cfg.Redis.Password, &cfg.Redis.TLSCA)
			cfg.HTTPAddr = freeAddr(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := Serve(ctx, cfg, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve returned %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), cfg.Redis.Password) {
				t.Fatalf("the error shows the password: %v", err)
			}
			if time.Since(start) > 15*time.Second {
				t.Fatalf("serve took %v to give up", time.Since(start))
			}
			t.Log(err)
		})
	}
}
