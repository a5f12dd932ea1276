package api

import (
	"crypto/subtle"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

const ctxScopes = "stockflow.scopes"
const ctxKey = "stockflow.key"

// authenticate resolves the bearer token to its scopes. With no keys
// configured every request gets every scope.
func (ch *Checkout) authenticate() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if len(ch.cfg.Keys) == 0 {
				c.Set(ctxScopes, []string{"read", "hold", "admin"})
				return next(c)
			}
			tok, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
			if !ok || tok == "" {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="stockflow"`)
				return &problemError{Problem{Type: "about:blank", Title: "unauthorized", Status: http.StatusUnauthorized,
					Detail: "send an API key as Authorization: Bearer <key>"}}
			}
			for key, scopes := range ch.cfg.Keys {
				if subtle.ConstantTimeCompare([]byte(key), []byte(tok)) == 1 {
					c.Set(ctxScopes, scopes)
					c.Set(ctxKey, key)
					return next(c)
				}
			}
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="stockflow", error="invalid_token"`)
			return &problemError{Problem{Type: "about:blank", Title: "unauthorized", Status: http.StatusUnauthorized, Detail: "unknown API key"}}
		}
	}
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

// rateLimit allows RateLimit requests/s per API key (per client address
// without keys), with bursts of twice that, and answers 429 beyond.
func (ch *Checkout) rateLimit() echo.MiddlewareFunc {
	var mu sync.Mutex
	limiters := map[string]*rate.Limiter{}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if ch.cfg.RateLimit <= 0 {
				return next(c)
			}
			who := c.RealIP()
			if tok, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer "); ok && len(ch.cfg.Keys) > 0 {
				who = "key:" + tok
			}
			mu.Lock()
			l, ok := limiters[who]
			if !ok {
				if len(limiters) > 100_000 { // bound memory against many distinct clients
					clear(limiters)
				}
				l = rate.NewLimiter(rate.Limit(ch.cfg.RateLimit), int(math.Max(1, 2*ch.cfg.RateLimit)))
				limiters[who] = l
			}
			mu.Unlock()
			r := l.Reserve()
			if d := r.Delay(); d > 0 {
				r.Cancel()
				c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
				return &problemError{Problem{Type: "about:blank", Title: "too many requests", Status: http.StatusTooManyRequests,
					Detail: "the rate limit for this key is " + strconv.FormatFloat(ch.cfg.RateLimit, 'f', -1, 64) + " requests/s"}}
			}
			return next(c)
		}
	}
}
