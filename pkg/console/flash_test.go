package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var flashRe = regexp.MustCompile(`<p class="flash" role="status">([^<]*)</p>`)

// The status banner says only what the console itself says: ?done= names
// a message of a fixed table; any other text shows nothing, on any page.
func TestBannerShowsOnlyKnownCodes(t *testing.T) {
	e := testConsole(t, map[string][]string{testAdmin: {"admin"}})
	const lure = "Your key has expired: sign in at https://evil.example"
	if rec := do(e, "GET", "/console/login?done="+url.QueryEscape(lure), nil, nil); rec.Code != http.StatusOK ||
		strings.Contains(rec.Body.String(), "evil.example") || flashRe.MatchString(rec.Body.String()) {
		t.Errorf("sign-in page with a made-up banner: %d, banner %q", rec.Code, flashRe.FindString(rec.Body.String()))
	}
	ck := signIn(t, e, testAdmin)
	for _, path := range []string{"/console", "/console/holds", "/console/sku"} {
		body := do(e, "GET", path+"?done="+url.QueryEscape(lure), nil, ck).Body.String()
		if strings.Contains(body, "evil.example") || flashRe.MatchString(body) {
			t.Errorf("%s shows a made-up banner: %q", path, flashRe.FindString(body))
		}
	}

	// An action's redirect names its message by code, and the page shows
	// the console's own words for it.
	m := csrfField.FindStringSubmatch(do(e, "GET", "/console/holds", nil, ck).Body.String())
	if m == nil {
		t.Fatal("no csrf token")
	}
	rec := do(e, "POST", "/console/holds/release", url.Values{"hold_id": {"h1"}, "sku": {"A"}, "csrf": {m[1]}}, ck)
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || err != nil || loc.Query().Get("done") != "hold-released" {
		t.Fatalf("release: %d to %s, want a redirect with done=hold-released", rec.Code, rec.Header().Get("Location"))
	}
	got := flashRe.FindStringSubmatch(do(e, "GET", loc.String(), nil, ck).Body.String())
	if got == nil || got[1] != flashes["hold-released"] {
		t.Errorf("banner %q, want %q", got, flashes["hold-released"])
	}
	for code, msg := range flashes {
		if code == "" || msg == "" || strings.ContainsAny(code, " &=?") {
			t.Errorf("flash %q: %q", code, msg)
		}
	}
}
