package console

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/api"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/reconcile"
)

// wiredConsole is the console over the real API's handler, as the service
// wires them, over a miniredis ledger, with these keys.
func wiredConsole(t *testing.T, keys map[string][]string) *echo.Echo {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { rdb.Close() })
	led := ledger.New(rdb, ledger.Config{})
	groups := map[string][]string{"G1": {"L1"}}
	rec := reconcile.New(reconcile.Config{Ledger: led, Runs: reconcile.NewRuns(rdb, "sf", time.Hour), Registry: prometheus.NewRegistry()})
	srv := api.New(api.Config{Addr: "127.0.0.1:0"})
	api.NewCheckout(api.CheckoutConfig{Store: led, InstanceID: "test", Supply: atp.AllSupply, Groups: groups, Keys: keys, Reconciler: rec}).Register(srv)
	con, err := New(Config{API: srv.Echo(), Keys: keys, Redis: rdb, Groups: groups, RunFresh: rec.Fresh,
		Locations: func(context.Context, string) ([]string, error) { return []string{"L1"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	con.Register(srv.Echo())
	return srv.Echo()
}

var apiAnswer = regexp.MustCompile(`The API answered [^<]*`)

// Without keys, the pages that read the API in process are answered: the
// API, which then answers only requests addressed to a loopback name, gets
// the console's own Host, not one of its own making.
func TestPagesReadTheRealAPIWithoutKeys(t *testing.T) {
	e := wiredConsole(t, nil)
	for _, host := range []string{"localhost:8080", "127.0.0.1", "[::1]:8080"} {
		for _, path := range []string{"/console/reconciliations", "/console/sku?sku=SKU-1"} {
			rec := do(e, http.MethodGet, path, nil, nil, "Host", host)
			if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "The API answered") {
				t.Errorf("GET %s at %s: %d %s", path, host, rec.Code, apiAnswer.FindString(rec.Body.String()))
			}
		}
	}
	// With keys, the signed-in key is what the API checks, whatever the
	// name the console is reached by.
	k := wiredConsole(t, map[string][]string{testRead: {"read"}})
	ck := signIn(t, k, testRead)
	for _, path := range []string{"/console/reconciliations", "/console/sku?sku=SKU-1"} {
		if rec := do(k, http.MethodGet, path, nil, ck, "Host", "stockflow.internal.example"); rec.Code != http.StatusOK {
			t.Errorf("with keys, GET %s: %d %s", path, rec.Code, apiAnswer.FindString(rec.Body.String()))
		}
	}
}
