package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// clock is a time the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func clockedConsole(t *testing.T, clk *clock) *echo.Echo {
	t.Helper()
	c, err := New(Config{Keys: map[string][]string{testAdmin: {"admin"}, testRead: {"read"}}, API: http.NotFoundHandler(), Now: clk.now,
		ReleaseHold: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	c.Register(e)
	return e
}

func signedIn(e *echo.Echo, ck *http.Cookie) bool {
	return do(e, "GET", "/console/holds", nil, ck).Code == http.StatusOK
}

// Signing out ends the session on the server: the cookie, replayed
// afterwards, no longer signs anyone in.
func TestSignOutEndsTheSession(t *testing.T) {
	e := testConsole(t, map[string][]string{testAdmin: {"admin"}})
	ck := signIn(t, e, testAdmin)
	other := signIn(t, e, testAdmin)
	m := csrfField.FindStringSubmatch(do(e, "GET", "/console/holds", nil, ck).Body.String())
	if m == nil {
		t.Fatal("no csrf token on the page")
	}
	rec := do(e, "POST", "/console/logout", url.Values{"csrf": {m[1]}}, ck)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", rec.Code)
	}
	if signedIn(e, ck) {
		t.Fatal("the cookie still works after signing out")
	}
	if !signedIn(e, other) {
		t.Error("signing out ended another session of the same key")
	}
}

// A session ends after 30 minutes without a request, and 12 hours after
// sign-in however busy.
func TestSessionsEndWhenIdleAndAfterTwelveHours(t *testing.T) {
	clk := &clock{t: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)}
	e := clockedConsole(t, clk)
	ck := signIn(t, e, testAdmin)
	clk.add(29 * time.Minute)
	if !signedIn(e, ck) {
		t.Fatal("signed out after 29 idle minutes")
	}
	clk.add(31 * time.Minute)
	if signedIn(e, ck) {
		t.Fatal("still signed in after 31 idle minutes")
	}

	busy := signIn(t, e, testAdmin)
	for range 12 * 60 / 20 {
		clk.add(20 * time.Minute)
		if clk.now().Before(time.Date(2025, 3, 1, 21, 0, 0, 0, time.UTC)) && !signedIn(e, busy) {
			t.Fatalf("a session in use ended at %s", clk.now())
		}
	}
	clk.add(20 * time.Minute)
	if signedIn(e, busy) {
		t.Fatal("a session in use outlived 12 hours")
	}
}

// The sessions kept are bounded: past the bound, the least recently used
// ones end first.
func TestSessionsAreBounded(t *testing.T) {
	const bound = 100
	// Enough keys that their own bounds together pass the global one.
	keys := map[string][]string{testAdmin: {"admin"}}
	var others []string
	for i := range 2 * bound / maxSessionsPerKey {
		k := fmt.Sprintf("read-key-%02d-0123456789abcdef", i)
		keys[k], others = []string{"read"}, append(others, k)
	}
	c, err := New(Config{Keys: keys, API: http.NotFoundHandler(), MaxSessions: bound})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	c.Register(e)
	first := signIn(t, e, testAdmin)
	kept := signIn(t, e, testAdmin)
	for i := range bound {
		if !signedIn(e, kept) { // kept stays the most recently used
			t.Fatal("the most recently used session ended")
		}
		do(e, "POST", "/console/login", url.Values{"key": {others[i%len(others)]}}, nil)
	}
	if signedIn(e, first) {
		t.Fatalf("%d sign-ins later, the oldest session still works", bound)
	}
	if !signedIn(e, kept) {
		t.Error("a session in use was evicted")
	}
	if n := c.sessions.lru.Len(); n != bound {
		t.Errorf("%d sessions kept, want %d", n, bound)
	}
	if d, _ := New(Config{}); d.sessions.max != defaultMaxSessions {
		t.Errorf("default bound %d, want %d", d.sessions.max, defaultMaxSessions)
	}
}

// Sign-ins with one key end that key's own least recently used sessions
// past maxSessionsPerKey, never another key's: a read key signing in over
// and over does not sign the admins out.
func TestSessionsAreBoundedPerKey(t *testing.T) {
	e := testConsole(t, map[string][]string{testAdmin: {"admin"}, testRead: {"read"}})
	admin := signIn(t, e, testAdmin)
	readers := []*http.Cookie{signIn(t, e, testRead)}
	for range defaultMaxSessions + 10 {
		do(e, "POST", "/console/login", url.Values{"key": {testRead}}, nil)
	}
	if !signedIn(e, admin) {
		t.Fatal("another key's sign-ins ended the admin's session")
	}
	if signedIn(e, readers[0]) {
		t.Fatal("the read key keeps its oldest session past its bound")
	}
	for range maxSessionsPerKey {
		readers = append(readers, signIn(t, e, testRead))
	}
	for i, ck := range readers[1:] {
		if !signedIn(e, ck) {
			t.Errorf("the read key's session %d of its last %d ended", i+1, maxSessionsPerKey)
		}
	}
}
