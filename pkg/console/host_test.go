package console

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Without keys, the console answers only requests addressed to a loopback
// name: a page on another name that resolves to this machine (DNS
// rebinding) is same-origin with that name, not with the console, and gets
// nothing, neither pages nor actions.
func TestWithoutKeysOnlyLoopbackHostsAreServed(t *testing.T) {
	c, e := newTestConsole(t, nil)
	for _, host := range []string{"localhost", "localhost:8080", "LocalHost:1", "127.0.0.1", "127.0.0.1:8080", "[::1]", "[::1]:8080"} {
		if rec := do(e, "GET", "/console/holds", nil, nil, "Host", host); rec.Code != http.StatusOK {
			t.Errorf("Host %s: %d, want 200", host, rec.Code)
		}
	}
	// The form token is everyone's when authentication is off: a rebinding
	// page could read it from any page with a form.
	token := c.csrf(&user{Anon: true, session: anonSession})
	released = nil
	for _, host := range []string{"rebind.example", "rebind.example:8080", "10.0.0.5:8080", "127.0.0.1.rebind.example", "localhost.rebind.example:8080", ""} {
		for _, path := range []string{"/console", "/console/holds", "/console/login", "/console/exceptions"} {
			rec := do(e, "GET", path, nil, nil, "Host", host)
			if rec.Code != http.StatusMisdirectedRequest || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
				t.Errorf("GET %s with Host %q: %d %s, want 421 problem", path, host, rec.Code, rec.Header().Get("Content-Type"))
			}
		}
		form := url.Values{"hold_id": {"h1"}, "sku": {"A"}, "csrf": {token}}
		if rec := do(e, "POST", "/console/holds/release", form, nil, "Host", host, "Origin", "http://"+host); rec.Code != http.StatusMisdirectedRequest {
			t.Errorf("POST with Host %q: %d, want 421", host, rec.Code)
		}
	}
	if len(released) != 0 {
		t.Fatalf("a request to another name released holds: %v", released)
	}
	// With keys, a signed-in session works under whatever name the
	// deployment is reached by.
	k := testConsole(t, map[string][]string{testAdmin: {"admin"}})
	if rec := do(k, "GET", "/console/holds", nil, signIn(t, k, testAdmin), "Host", "stockflow.internal.example"); rec.Code != http.StatusOK {
		t.Errorf("with keys, Host stockflow.internal.example: %d", rec.Code)
	}
}

func TestExposedWithoutKeys(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": false, "localhost:8080": false, "[::1]:8080": false, "127.0.0.2:80": false,
		":8080": true, "0.0.0.0:8080": true, "[::]:8080": true, "10.1.2.3:8080": true, "stockflow.example:8080": true,
	} {
		if got := ExposedWithoutKeys(addr, nil); got != want {
			t.Errorf("%s without keys: exposed %v, want %v", addr, got, want)
		}
		if ExposedWithoutKeys(addr, map[string][]string{testAdmin: {"admin"}}) {
			t.Errorf("%s with keys: exposed", addr)
		}
	}
}

func TestWarnIfExposed(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	WarnIfExposed(log, "127.0.0.1:8080", nil)
	WarnIfExposed(log, ":8080", map[string][]string{testAdmin: {"admin"}})
	if b.Len() != 0 {
		t.Fatalf("warned about a loopback address or a server with keys: %s", b.String())
	}
	WarnIfExposed(log, ":8080", nil)
	if !strings.Contains(b.String(), "level=WARN") || !strings.Contains(b.String(), "addr=:8080") {
		t.Errorf("no warning for :8080 without keys: %q", b.String())
	}
}
