package api

import "testing"

// Without keys the API acts with every scope, so it answers only requests
// addressed to this machine's loopback names: a page of another site whose
// name resolves to 127.0.0.1 (DNS rebinding) is refused, whatever it asks.
// With keys, the key decides and any name is served.
func TestWithoutKeysOnlyLoopbackHostsAreServed(t *testing.T) {
	open := newFixture(t, nil)
	for _, host := range []string{"attacker.example", "attacker.example:8080", "10.0.0.5:8080", "127.0.0.1.attacker.example", "localhost.attacker.example"} {
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/v1/availability/A?location=L1", ""},
			{"PUT", "/v1/policies/A/L1", `{"safety_stock":5}`},
		} {
			code, _, body := open.do(t, r.method, r.path, r.body, "Host", host)
			if code != 421 || body["title"] != "misdirected request" {
				t.Errorf("%s %s to %s without keys: %d %v, want 421", r.method, r.path, host, code, body)
			}
		}
	}
	for _, host := range []string{"localhost", "LOCALHOST:8080", "127.0.0.1:9999", "[::1]:8080", "[::1]"} {
		if code, _, body := open.do(t, "GET", "/v1/availability/A?location=L1", "", "Host", host); code != 200 {
			t.Errorf("GET to %s without keys: %d %v, want 200", host, code, body)
		}
	}
	keyedAPI := newFixture(t, keyed)
	if code, _, body := keyedAPI.do(t, "GET", "/v1/availability/A?location=L1", "", "Host", "stockflow.internal:8080", "Authorization", "Bearer "+readerKey); code != 200 {
		t.Errorf("GET to another name with a key: %d %v, want 200", code, body)
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:80": true, "127.0.0.1": true, "127.0.0.1:8080": true, "[::1]": true, "[::1]:1": true,
		"": false, "127.0.0.2": false, "::1": true, "example.com": false, "localhost.": false, "127.0.0.1:8080.evil": false,
	} {
		if got := LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
