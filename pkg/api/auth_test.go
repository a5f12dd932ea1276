package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

const (
	readerKey = "reader-0123456789abcd"
	adminKey  = "admin-0123456789abcde"
)

func keyed(c *CheckoutConfig) {
	c.Keys = map[string][]string{readerKey: {"read"}, adminKey: {"admin"}}
}

func TestAuthorizationHeader(t *testing.T) {
	f := newFixture(t, keyed)
	cases := []struct {
		name, header string
		code         int
	}{
		{"Bearer", "Bearer " + readerKey, 200},
		{"bearer in lower case", "bearer " + readerKey, 200},
		{"BEARER in capitals", "BEARER " + readerKey, 200},
		{"more than one space", "Bearer   " + readerKey, 200},
		{"another scheme", "Basic " + readerKey, 401},
		{"a scheme and no key", "Bearer ", 401},
		{"the key alone", readerKey, 401},
		{"a key with something after it", "Bearer " + readerKey + "x", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := f.do(t, "GET", "/v1/availability/A?location=L1", "", "Authorization", tc.header)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, body)
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

// An unknown key is checked before anything is kept for it: a flood of
// distinct unknown keys leaves one entry, for its client address, and every
// table kept per client address stays within MaxClients.
func TestPerClientTablesAreBounded(t *testing.T) {
	trustLoopback := Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	cases := []struct {
		name      string
		keys      bool
		addresses int // distinct client addresses, through a trusted proxy
		table     func(*Checkout) *clients
		want      int
	}{
		{"unknown keys from one address", true, 1, func(ch *Checkout) *clients { return ch.failures }, 1},
		{"unknown keys from many addresses", true, 300, func(ch *Checkout) *clients { return ch.failures }, 16},
		{"no keys, many addresses", false, 300, func(ch *Checkout) *clients { return ch.perClient }, 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newServerFixture(t, trustLoopback, func(c *CheckoutConfig) {
				if tc.keys {
					keyed(c)
				}
				c.RateLimit, c.MaxClients = 1000, 16
			})
			for i := range 300 {
				hdr := []string{"X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", i%tc.addresses/256, i%tc.addresses%256)}
				if tc.keys {
					hdr = append(hdr, "Authorization", fmt.Sprintf("Bearer unknown-%04d-0123456789abcdef", i))
				}
				if code, _, body := f.do(t, "GET", "/v1/availability/A?location=L1", "", hdr...); code != 200 && code != 401 && code != 429 {
					t.Fatalf("status %d: %v", code, body)
				}
			}
			if n := tc.table(f.ch).len(); n != tc.want {
				t.Fatalf("%d client addresses kept, want %d", n, tc.want)
			}
		})
	}
}

// Failed authentications are throttled per client address; once an address
// is throttled every request from it gets 429, the right key too, so the
// answer does not tell a right guess from a wrong one. The fixture's clock
// stands still: nothing comes back during the test.
func TestFailedAuthenticationsAreThrottled(t *testing.T) {
	f := newServerFixture(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, keyed)
	steps := []struct {
		name, from, key string
		times, code     int
	}{
		{"ten wrong keys", "203.0.113.1", "wrong-0123456789abcdef", 10, 401},
		{"an eleventh", "203.0.113.1", "wrong-0123456789abcdef", 1, 429},
		{"the right key from the throttled address", "203.0.113.1", readerKey, 1, 429},
		{"no key from the throttled address", "203.0.113.1", "", 1, 429},
		{"the right key from another address", "203.0.113.2", readerKey, 1, 200},
		{"a wrong key from another address", "203.0.113.2", "wrong-0123456789abcdef", 1, 401},
		{"missing keys count too", "203.0.113.3", "", 10, 401},
		{"and throttle", "203.0.113.3", readerKey, 1, 429},
		{"ten wrong keys from an IPv6 address", "2001:db8::1", "wrong-0123456789abcdef", 10, 401},
		{"another address in its /64", "2001:db8::2", readerKey, 1, 429},
		{"an address in another /64", "2001:db8:0:1::1", readerKey, 1, 200},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			for range st.times {
				hdr := []string{"X-Forwarded-For", st.from}
				if st.key != "" {
					hdr = append(hdr, "Authorization", "Bearer "+st.key)
				}
				code, h, body := f.do(t, "GET", "/v1/availability/A?location=L1", "", hdr...)
				if code != st.code {
					t.Fatalf("status %d, want %d: %v", code, st.code, body)
				}
				if code == 429 && (h.Get("Retry-After") == "" || h.Get("Content-Type") != "application/problem+json") {
					t.Fatalf("429 without Retry-After or not a problem: %v %v", h, body)
				}
			}
		})
	}
}

// X-Forwarded-For names the client only when it comes from a trusted proxy.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	cases := []struct {
		name, remote string
		trusted      []string
		xff          string
		want         string
	}{
		{"nothing trusted", "127.0.0.1", nil, "203.0.113.9", "127.0.0.1"},
		{"the proxy trusted", "127.0.0.1", []string{"127.0.0.1/32"}, "203.0.113.9", "203.0.113.9"},
		{"the nearest untrusted address", "127.0.0.1", []string{"127.0.0.1/32"}, "203.0.113.9, 198.51.100.1", "198.51.100.1"},
		{"a chain of trusted proxies", "127.0.0.1", []string{"127.0.0.0/8", "198.51.100.0/24"}, "203.0.113.9, 198.51.100.1", "203.0.113.9"},
		{"another proxy trusted", "127.0.0.1", []string{"10.0.0.0/8"}, "203.0.113.9", "127.0.0.1"},
		{"a private address is not trusted unless configured", "10.0.0.5", []string{"192.168.0.0/16"}, "203.0.113.9", "10.0.0.5"},
		{"IPv6 proxy", "[2001:db8::7]", []string{"2001:db8::/64"}, "203.0.113.9", "203.0.113.9"},
		{"garbage from a trusted proxy", "127.0.0.1", []string{"127.0.0.1/32"}, "not-an-address", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var trusted []netip.Prefix
			for _, p := range tc.trusted {
				trusted = append(trusted, netip.MustParsePrefix(p))
			}
			s := New(Config{TrustedProxies: trusted})
			s.Echo().GET("/who", func(c echo.Context) error { return c.String(200, c.RealIP()) })
			req := httptest.NewRequest("GET", "/who", nil)
			req.RemoteAddr = tc.remote + ":40000"
			req.Header.Set("X-Forwarded-For", tc.xff)
			rec := httptest.NewRecorder()
			s.Echo().ServeHTTP(rec, req)
			if got := strings.TrimSpace(rec.Body.String()); got != tc.want {
				t.Fatalf("client %q, want %q", got, tc.want)
			}
		})
	}
}

// A client cannot escape the failed-authentication throttle by sending a
// new X-Forwarded-For each time, unless its proxy is trusted.
func TestForwardedForAndTheThrottle(t *testing.T) {
	cases := []struct {
		name     string
		trusted  []netip.Prefix
		eleventh int
	}{
		{"no trusted proxy: one client", nil, http.StatusTooManyRequests},
		{"another proxy trusted: one client", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, http.StatusTooManyRequests},
		{"a trusted proxy: a client per forwarded address", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newServerFixture(t, Config{TrustedProxies: tc.trusted}, keyed)
			for i := range 11 {
				code, _, body := f.do(t, "GET", "/v1/availability/A?location=L1", "",
					"Authorization", "Bearer wrong-0123456789abcdef", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
				want := http.StatusUnauthorized
				if i == 10 {
					want = tc.eleventh
				}
				if code != want {
					t.Fatalf("request %d: status %d, want %d: %v", i, code, want, body)
				}
			}
		})
	}
}
