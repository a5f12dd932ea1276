package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

const (
	ctxScopes = "stockflow.scopes"
	// ctxKey is the id of the caller's API key; unset when no keys are configured.
	ctxKey = "stockflow.key"
)

var allScopes = []string{"read", "hold", "admin"}

// apiKey is a configured API key. Its id, a digest of the token, is what
// tables and hold records keep; the token itself is kept nowhere else.
type apiKey struct {
	id     string
	digest [sha256.Size]byte
	scopes []string
	limit  *rate.Limiter // nil: no rate limit
}

func newAPIKeys(keys map[string][]string, perSecond float64) []*apiKey {
	out := make([]*apiKey, 0, len(keys))
	for tok, scopes := range keys {
		d := sha256.Sum256([]byte(tok))
		k := &apiKey{id: hex.EncodeToString(d[:16]), digest: d, scopes: scopes}
		if perSecond > 0 {
			k.limit = rate.NewLimiter(rate.Limit(perSecond), burst(perSecond))
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *apiKey) int { return strings.Compare(a.id, b.id) })
	return out
}

// burst is twice the rate, at least 1.
func burst(perSecond float64) int { return int(math.Max(1, 2*perSecond)) }

// guard decides who a /v1 request comes from and whether it may go on.
//
// With no keys configured every request addressed to a loopback name
// (LoopbackHost) has every scope, and each client address gets RateLimit
// requests/s; a request addressed to any other name is refused (421): a
// page of another site whose name is made to resolve to this machine (DNS
// rebinding) would otherwise act with every scope. With keys, the key is checked before
// anything is kept for the request: a known key gets its scopes and its own
// rate limit, kept per configured key; an unknown or missing key costs its
// client address one of FailedAuthLimit failures, and an address out of
// them gets 429 for every request, with whatever key, until one is back, so
// that a guessed key cannot be told right by a different answer.
func (ch *Checkout) guard() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			now := ch.now()
			who := clientOf(c)
			if len(ch.keys) == 0 {
				if !LoopbackHost(c.Request().Host) {
					return notLoopback()
				}
				c.Set(ctxScopes, allScopes)
				if ch.perClient != nil {
					if d := ch.perClient.take(who, now); d > 0 {
						return tooMany(c, d, "too many requests",
							"the rate limit is "+strconv.FormatFloat(ch.cfg.RateLimit, 'f', -1, 64)+" requests/s per client address")
					}
				}
				return next(c)
			}
			if d := ch.failures.wait(who, now); d > 0 {
				return tooMany(c, d, "too many failed authentications",
					"this client address sent too many missing or unknown API keys; wait for Retry-After")
			}
			k, err := ch.keyFor(c)
			if err != nil {
				ch.failures.take(who, now)
				return err
			}
			c.Set(ctxScopes, k.scopes)
			c.Set(ctxKey, k.id)
			if k.limit != nil {
				r := k.limit.ReserveN(now, 1)
				if d := r.DelayFrom(now); d > 0 {
					r.CancelAt(now)
					return tooMany(c, d, "too many requests",
						"the rate limit for this key is "+strconv.FormatFloat(ch.cfg.RateLimit, 'f', -1, 64)+" requests/s")
				}
			}
			return next(c)
		}
	}
}

// keyFor finds the request's API key. The scheme is case-insensitive
// (RFC 9110 §11.1); the token is compared by digest, in constant time,
// against every key.
func (ch *Checkout) keyFor(c echo.Context) (*apiKey, error) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(c.Request().Header.Get(echo.HeaderAuthorization)), " ")
	tok = strings.TrimLeft(tok, " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="stockflow"`)
		return nil, &problemError{Problem{Type: "about:blank", Title: "unauthorized", Status: http.StatusUnauthorized,
			Detail: "send an API key as Authorization: Bearer <key>"}}
	}
	d := sha256.Sum256([]byte(tok))
	var found *apiKey
	for _, k := range ch.keys {
		if subtle.ConstantTimeCompare(k.digest[:], d[:]) == 1 {
			found = k
		}
	}
	if found == nil {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="stockflow", error="invalid_token"`)
		return nil, &problemError{Problem{Type: "about:blank", Title: "unauthorized", Status: http.StatusUnauthorized, Detail: "unknown API key"}}
	}
	return found, nil
}

// scope requires a scope on a route; admin holds every scope.
func scope(need string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			scopes, _ := c.Get(ctxScopes).([]string)
			if slices.Contains(scopes, need) || slices.Contains(scopes, "admin") {
				return next(c)
			}
			return &problemError{Problem{Type: "about:blank", Title: "forbidden", Status: http.StatusForbidden,
				Detail: "this API key lacks the " + need + " scope"}}
		}
	}
}
