package api

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// waiter delivers the folder's hold decisions, published on this instance's
// channel, to the requests waiting for them.
type waiter struct {
	rdb     redis.UniversalClient
	channel string
	log     *slog.Logger
	written func(sku, loc string, version int64) // a decision's position version

	mu      sync.Mutex
	pending map[string]chan string // hold|sku|location -> decision
	ready   chan struct{}
	once    sync.Once
}

func newWaiter(rdb redis.UniversalClient, channel string, log *slog.Logger, written func(sku, loc string, version int64)) *waiter {
	return &waiter{rdb: rdb, channel: channel, log: log, written: written, pending: map[string]chan string{}, ready: make(chan struct{})}
}

func (w *waiter) run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		sub := w.rdb.Subscribe(ctx, w.channel)
		if _, err := sub.Receive(ctx); err != nil {
			w.closeSub(sub)
			w.log.Warn("subscribe to hold decisions", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		w.once.Do(func() { close(w.ready) })
		ch := sub.Channel()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case m, ok := <-ch:
				if !ok {
					break loop
				}
				w.deliver(m.Payload)
			}
		}
		w.closeSub(sub)
	}
	return nil
}

// closeSub closes a subscription that is done with; a failure only
// concerns its connection, which the client discards.
func (w *waiter) closeSub(sub *redis.PubSub) {
	if err := sub.Close(); err != nil {
		w.log.Debug("close hold decisions subscription", "err", err)
	}
}

// deliver routes "hold|sku|location|status:atp:version" to its waiter, if
// any, and tells written the position's version, waited for or not.
func (w *waiter) deliver(payload string) {
	parts := strings.SplitN(payload, "|", 4)
	if len(parts) != 4 {
		return
	}
	if i := strings.LastIndexByte(parts[3], ':'); i > 0 && strings.Count(parts[3], ":") == 2 {
		if v, err := strconv.ParseInt(parts[3][i+1:], 10, 64); err == nil && w.written != nil {
			w.written(parts[1], parts[2], v)
		}
	}
	key := parts[0] + "|" + parts[1] + "|" + parts[2]
	w.mu.Lock()
	ch, ok := w.pending[key]
	w.mu.Unlock()
	if ok {
		select {
		case ch <- parts[3]:
		default:
		}
	}
}

// expect registers interest in a decision; call cancel when done.
func (w *waiter) expect(hold, sku, loc string) (<-chan string, func()) {
	key := hold + "|" + sku + "|" + loc
	ch := make(chan string, 1)
	w.mu.Lock()
	w.pending[key] = ch
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		if w.pending[key] == ch {
			delete(w.pending, key)
		}
		w.mu.Unlock()
	}
}
