//go:build integration

package service

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/testenv"
)

// The whole service runs on the TLS-only Redis as its ACL user, the
// lookup cache included: an instance that only serves the API answers
// repeated lookups from the cache, and sees a change to a position it has
// cached through Redis' invalidation.
func TestServeOnTLSRedisLooksUpThroughTheCache(t *testing.T) {
	cfg := testenv.Config(t, 0)
	cfg.Redis = testenv.RedisTLS(t)
	// Far longer than any wait below: a cached entry is only ever replaced
	// within this test by an invalidation, never by its age.
	cfg.Redis.LookupCacheMaxAge = 10 * time.Minute
	folds := startStack(t, cfg, Options{})
	// The instance that folds a position answers its lookups from memory;
	// an instance that only serves the API reads through the cache.
	s := startStack(t, cfg, Options{NoFolder: true, NoNormalizer: true, NoReconciler: true, InstanceID: "api-only"})

	folds.send(t, s.cfg.Topics.Inventory, "TLSC", receiptEv("r-tlsc-1", "TLSC", "L1", 7))
	s.waitATP(t, "TLSC", "L1", 7)
	// A lookup that misses brings the position into the cache in the
	// background: wait (bounded) for the first one answered from memory.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		before := cacheMetrics(t, s.base)
		s.atp(t, "TLSC", "L1")
		if after := cacheMetrics(t, s.base); after.hits > before.hits {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no lookup of a settled position was answered from the lookup cache within 30s: %+v", after)
		}
	}
	// Then every lookup of the unchanged position is.
	before := cacheMetrics(t, s.base)
	for range 5 {
		if got := s.atp(t, "TLSC", "L1"); got != 7 {
			t.Fatalf("atp %v after it settled at 7", got)
		}
	}
	after := cacheMetrics(t, s.base)
	if hits := after.hits - before.hits; hits < 5 {
		t.Fatalf("5 lookups of one cached, unchanged position: %v cache hits (%+v then %+v)", hits, before, after)
	}
	if after.entries < 1 {
		t.Fatalf("cache entries %v", after.entries)
	}

	// A change to the cached position: only an invalidation can bring it
	// to the API-only instance (waitATP is bounded well inside the max age).
	folds.send(t, s.cfg.Topics.Inventory, "TLSC", receiptEv("r-tlsc-2", "TLSC", "L1", 3))
	s.waitATP(t, "TLSC", "L1", 10)
	if changed := cacheMetrics(t, s.base); changed.invalidations <= after.invalidations {
		t.Fatalf("the change was seen without an invalidation: %+v then %+v", after, changed)
	}
}

type cacheCounts struct{ hits, entries, invalidations float64 }

// cacheMetrics reads the lookup cache's metrics from the service at base.
func cacheMetrics(t *testing.T, base string) cacheCounts {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	get := func(name string) float64 {
		t.Helper()
		v, ok := metricValue(body, name, "")
		if !ok {
			t.Fatalf("no %s in /metrics", name)
		}
		return v
	}
	return cacheCounts{
		hits:          get("stockflow_lookup_cache_hits_total"),
		entries:       get("stockflow_lookup_cache_entries"),
		invalidations: get("stockflow_lookup_cache_invalidations_total"),
	}
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
			// A bound on the test only: serve must stop by itself, for
			// the cause, long before it.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := Serve(ctx, cfg, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if ctx.Err() != nil {
				t.Fatalf("serve kept waiting for a misconfigured Redis until stopped after a minute (returned %v)", err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve returned %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), cfg.Redis.Password) {
				t.Fatalf("the error shows the password: %v", err)
			}
			t.Log(err)
		})
	}
}
