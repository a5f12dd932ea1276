package service

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs Serve in the background and waits for /readyz 200; the
// service is stopped (and must stop cleanly) when the test ends.
func startServe(t *testing.T, cfg config.Config, opts Options) string {
	t.Helper()
	cfg.HTTPAddr = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- Serve(ctx, cfg, opts, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v on shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s")
		}
	})
	base := "http://" + cfg.HTTPAddr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			var body struct {
				Ready  bool `json:"ready"`
				Checks []struct {
					Name string `json:"name"`
					OK   bool   `json:"ok"`
				} `json:"checks"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if !body.Ready || len(body.Checks) < 3 {
					t.Fatalf("200 but body %+v", body)
				}
				return base
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited before ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestServeEmbeddedBecomesReady(t *testing.T) {
	cfg := config.Default()
	cfg.Embedded = true
	base := startServe(t, cfg, Options{EmbeddedKafkaPort: -1, EmbeddedRedisAddr: "127.0.0.1:0", SimulateRate: 500})
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}
