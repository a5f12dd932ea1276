//go:build integration

package service

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stockflow/stockflow/pkg/testenv"
)

func TestServeOnRealStackBecomesReady(t *testing.T) {
	cfg := testenv.Config(t, 2)
	startServe(t, cfg, Options{})
}

// The checkout suite on the real stack, its lookups through the lookup
// cache: each subtest on Redis database 0 under a key prefix of its own.
func TestCheckoutRealStack(t *testing.T) {
	runCheckoutSuite(t, func(t *testing.T) *stack {
		cfg := testenv.Config(t, 0)
		testenv.SharedRedis(t, &cfg)
		return startStack(t, cfg, Options{})
	})
}

// A deployment on database 0 serves lookups from its cache, and says so in
// its metrics.
func TestLookupCacheMetrics(t *testing.T) {
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	folds := startStack(t, cfg, Options{})
	// The instance that folds a position answers its lookups from memory;
	// an instance that only serves the API reads through the cache.
	s := startStack(t, cfg, Options{NoFolder: true, NoNormalizer: true, NoReconciler: true, InstanceID: "api-only"})
	folds.send(t, s.cfg.Topics.Inventory, "MET", receiptEv("r-met", "MET", "L1", 7))
	s.waitATP(t, "MET", "L1", 7)
	for range 5 {
		s.atp(t, "MET", "L1")
	}
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	metric := func(name string) float64 {
		t.Helper()
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return n
			}
		}
		t.Fatalf("no %s in /metrics", name)
		return 0
	}
	if hits := metric("stockflow_lookup_cache_hits_total"); hits < 4 {
		t.Errorf("5 lookups of one position after it settled: %v cache hits", hits)
	}
	if n := metric("stockflow_lookup_cache_entries"); n < 1 {
		t.Errorf("cache entries %v", n)
	}
	metric("stockflow_lookup_cache_misses_total")
	metric("stockflow_lookup_cache_invalidations_total")
	metric("stockflow_lookup_cache_evictions_total")
}

// On the real stack, a storm of concurrent one-unit web holds under
// web=cap:50% on 100 units gets exactly 50, and a store hold still gets its
// share of the rest.
func TestHoldStormUnderChannelCap(t *testing.T) {
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	cfg.API.ChannelRules = "web=cap:50%"
	s := startStack(t, cfg, Options{})
	s.send(t, s.cfg.Topics.Inventory, "CAPSTORM", receiptEv("r-capstorm", "CAPSTORM", "L1", 100))
	s.waitATP(t, "CAPSTORM", "L1", 100)
	const n = 200
	codes := make([]int, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			body := hold(fmt.Sprint("web-", i), 600, line("CAPSTORM", "L1", 1))
			body["channel"] = "web"
			codes[i], _ = s.call(t, "POST", "/v1/holds", body)
		})
	}
	wg.Wait()
	held := 0
	for i, c := range codes {
		switch c {
		case 201:
			held++
		case 409:
		default:
			t.Fatalf("hold %d: %d", i, c)
		}
	}
	if held != 50 {
		t.Fatalf("%d of %d one-unit web holds held under web=cap:50%% on 100 units, want 50", held, n)
	}
	body := hold("store-1", 600, line("CAPSTORM", "L1", 50))
	body["channel"] = "stores"
	if c, resp := s.call(t, "POST", "/v1/holds", body); c != 201 {
		t.Fatalf("a store hold of the 50 left: %d %v", c, resp)
	}
}
