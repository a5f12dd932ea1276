package service

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestDebugListenerServesProfilesToLoopbackOnly(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := serveDebug(ctx, addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	get := func(path, host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	if code, body := get("/debug/pprof/heap?debug=1", ""); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile: %d %.80q", code, body)
	}
	if code, body := get("/debug/pprof/", ""); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("index: %d %.80q", code, body)
	}
	if code, _ := get("/debug/pprof/cmdline", ""); code != http.StatusNotFound {
		t.Errorf("command line (may carry secrets): %d, want 404", code)
	}
	if code, _ := get("/debug/pprof/heap", "attacker.example:"+strings.Split(addr, ":")[1]); code != http.StatusMisdirectedRequest {
		t.Errorf("a request addressed to another name (DNS rebinding): %d, want 421", code)
	}
	if _, err := serveDebug(ctx, addr, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a second listener on the same address started")
	}
}
