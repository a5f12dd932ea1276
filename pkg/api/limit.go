package api

import (
	"container/list"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// clients keeps a token bucket per client address, for at most max
// addresses: when it is full the least recently seen address is forgotten,
// so no run of requests grows it beyond max. An IPv6 client counts by its
// /64, the block one subscriber is usually given, so that walking through
// the addresses of one block gains nothing.
type clients struct {
	every rate.Limit
	burst int
	max   int

	mu    sync.Mutex
	byKey map[netip.Prefix]*list.Element
	lru   list.List // of *client, the most recently seen first
}

type client struct {
	key    netip.Prefix
	bucket *rate.Limiter
}

func newClients(max int, every rate.Limit, burst int) *clients {
	return &clients{every: every, burst: burst, max: max, byKey: map[netip.Prefix]*list.Element{}}
}

// take spends one of who's tokens, making its bucket if need be; with none
// left it spends nothing and says how long until one is back.
func (cs *clients) take(who netip.Prefix, now time.Time) time.Duration {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	b := cs.bucket(who, true)
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// wait says how long until who has a token, spending none, and keeps
// nothing for an address it does not know.
func (cs *clients) wait(who netip.Prefix, now time.Time) time.Duration {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	b := cs.bucket(who, false)
	if b == nil {
		return 0
	}
	if t := b.TokensAt(now); t < 1 {
		return time.Duration((1 - t) / float64(cs.every) * float64(time.Second))
	}
	return 0
}

func (cs *clients) bucket(who netip.Prefix, create bool) *rate.Limiter {
	if e, ok := cs.byKey[who]; ok {
		cs.lru.MoveToFront(e)
		return e.Value.(*client).bucket
	}
	if !create {
		return nil
	}
	if cs.lru.Len() >= cs.max {
		oldest := cs.lru.Back()
		cs.lru.Remove(oldest)
		delete(cs.byKey, oldest.Value.(*client).key)
	}
	c := &client{key: who, bucket: rate.NewLimiter(cs.every, cs.burst)}
	cs.byKey[who] = cs.lru.PushFront(c)
	return c.bucket
}

// len is how many addresses are kept.
func (cs *clients) len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.lru.Len()
}

// clientOf is the request's client address as a table key: the address
// echo's IPExtractor gives (the connection's, or a trusted proxy's
// X-Forwarded-For), a whole IPv4 address or an IPv6 /64. Anything
// unparseable shares one key.
func clientOf(c echo.Context) netip.Prefix {
	a, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// tooMany is a 429 telling the client when to come back.
func tooMany(c echo.Context, wait time.Duration, title, detail string) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	return &problemError{Problem{Type: "about:blank", Title: title, Status: http.StatusTooManyRequests, Detail: detail}}
}
