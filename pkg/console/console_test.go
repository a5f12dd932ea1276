package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

const (
	testAdmin = "admin-key-0123456789abcdef"
	testRead  = "read-key-0123456789abcdef"
)

var released []string

func testConsole(t *testing.T, keys map[string][]string) *echo.Echo {
	t.Helper()
	_, e := newTestConsole(t, keys)
	return e
}

func newTestConsole(t *testing.T, keys map[string][]string) (*Console, *echo.Echo) {
	t.Helper()
	c, err := New(Config{Keys: keys, API: http.NotFoundHandler(), ReleaseHold: func(_ context.Context, id string) (bool, error) {
		released = append(released, id)
		return true, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	c.Register(e)
	return c, e
}

func do(e *echo.Echo, method, path string, form url.Values, cookie *http.Cookie, hdr ...string) *httptest.ResponseRecorder {
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func signIn(t *testing.T, e *echo.Echo, key string) *http.Cookie {
	t.Helper()
	rec := do(e, "POST", "/console/login", url.Values{"key": {key}, "next": {"/console/holds"}}, nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/console/holds" {
		t.Fatalf("sign in: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookieName {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie %+v: want HttpOnly and SameSite=Strict", c)
			}
			if strings.Contains(c.Value, key) {
				t.Error("the cookie carries the key")
			}
			return c
		}
	}
	t.Fatal("no session cookie")
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestSignInSessionsAndForms(t *testing.T) {
	e := testConsole(t, map[string][]string{testAdmin: {"admin"}, testRead: {"read"}})
	if rec := do(e, "GET", "/console/holds", nil, nil); rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/console/login?next=") {
		t.Fatalf("anonymous: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	if rec := do(e, "POST", "/console/login", url.Values{"key": {"nope"}}, nil); rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "nope") {
		t.Errorf("a wrong key: %d", rec.Code)
	}
	if rec := do(e, "POST", "/console/login", url.Values{"key": {testAdmin}, "next": {"//evil.example/x"}}, nil); rec.Header().Get("Location") != "/console" {
		t.Errorf("an off-site next: redirected to %q", rec.Header().Get("Location"))
	}
	admin := signIn(t, e, testAdmin)
	page := do(e, "GET", "/console/holds", nil, admin)
	if page.Code != 200 || strings.Contains(page.Body.String(), testAdmin) {
		t.Fatalf("holds page: %d (or renders the key)", page.Code)
	}
	m := csrfField.FindStringSubmatch(page.Body.String())
	if m == nil {
		t.Fatal("no csrf token on the page")
	}
	released = nil
	release := url.Values{"hold_id": {"h1"}, "sku": {"A"}}
	if rec := do(e, "POST", "/console/holds/release", release, admin); rec.Code != http.StatusForbidden {
		t.Errorf("no csrf token: %d", rec.Code)
	}
	release.Set("csrf", m[1])
	if rec := do(e, "POST", "/console/holds/release", release, admin, "Origin", "http://evil.example"); rec.Code != http.StatusForbidden {
		t.Errorf("another origin: %d", rec.Code)
	}
	if len(released) != 0 {
		t.Fatalf("forms without the token or from another site released holds: %v", released)
	}
	if rec := do(e, "POST", "/console/holds/release", release, admin); rec.Code != http.StatusSeeOther || len(released) != 1 || released[0] != "h1" {
		t.Errorf("a good form: %d, released %v", rec.Code, released)
	}
	read := signIn(t, e, testRead)
	rp := do(e, "GET", "/console/holds", nil, read)
	rm := csrfField.FindStringSubmatch(rp.Body.String())
	if rm == nil {
		t.Fatal("no csrf token on the read key's page")
	}
	release.Set("csrf", rm[1])
	if rec := do(e, "POST", "/console/holds/release", release, read); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "admin") {
		t.Errorf("a read key releasing: %d", rec.Code)
	}
	release.Set("csrf", m[1]) // the admin's token with the read key's session
	if rec := do(e, "POST", "/console/holds/release", release, read); rec.Code != http.StatusForbidden {
		t.Errorf("another session's token: %d", rec.Code)
	}
	if len(released) != 1 {
		t.Errorf("refused forms released holds: %v", released)
	}
	forged := *admin
	forged.Value = "x" + forged.Value[1:]
	if forged.Value == admin.Value {
		forged.Value = "y" + forged.Value[1:]
	}
	if rec := do(e, "GET", "/console/holds", nil, &forged); rec.Code != http.StatusSeeOther {
		t.Errorf("a tampered cookie: %d", rec.Code)
	}
}

func TestAuthOffSaysSo(t *testing.T) {
	e := testConsole(t, nil)
	rec := do(e, "GET", "/console/holds", nil, nil, "Host", "127.0.0.1:8080")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Authentication is off") {
		t.Fatalf("%d: no banner", rec.Code)
	}
}

// Guessing keys through the sign-in form is throttled per address, as the
// API throttles unknown keys.
func TestSignInIsThrottled(t *testing.T) {
	e := testConsole(t, map[string][]string{testAdmin: {"admin"}})
	for i := range 10 {
		if rec := do(e, "POST", "/console/login", url.Values{"key": {"guess"}}, nil); rec.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, rec.Code)
		}
	}
	rec := do(e, "POST", "/console/login", url.Values{"key": {testAdmin}}, nil)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("after 10 failures, even the right key: %d, want 429 with Retry-After", rec.Code)
	}
	if rec := do(e, "POST", "/console/login", url.Values{"key": {testAdmin}}, nil, "Origin", "null"); rec.Code != http.StatusForbidden {
		t.Errorf("sign-in from a sandboxed frame: %d, want 403", rec.Code)
	}
}

// The console is read or admin only: a key that may only place holds does
// not sign in, and a key sent in the URL instead of the form's body is not
// taken (it would reach access logs).
func TestSignInNeedsReadOrAdminAndAKeyInTheBody(t *testing.T) {
	const holdOnly = "hold-only-key-0123456789"
	e := testConsole(t, map[string][]string{testAdmin: {"admin"}, holdOnly: {"hold"}})
	rec := do(e, "POST", "/console/login", url.Values{"key": {holdOnly}}, nil)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "read or the admin scope") {
		t.Fatalf("a hold-only key signing in: %d", rec.Code)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookieName && c.Value != "" {
			t.Fatal("a hold-only key got a session")
		}
	}
	if rec := do(e, "POST", "/console/login?key="+testAdmin, url.Values{"next": {"/console"}}, nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("a key in the URL: %d, want 401", rec.Code)
	}
	signIn(t, e, testAdmin)
}

// The console's Redis keys are spelt by ledger.Keys; their names are what
// existing deployments hold their dead letters' states and audit log under.
func TestRedisKeyNames(t *testing.T) {
	c := &Console{cfg: Config{Prefix: "sf"}}
	if got := c.auditKey(); got != "sf:console:audit" {
		t.Errorf("audit key %q", got)
	}
	if got := c.dlqStateKey(); got != "sf:dlq:state" {
		t.Errorf("dead-letter state key %q", got)
	}
}
