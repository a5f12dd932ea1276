package console

import (
	"sync"
	"time"
)

// failures counts failed sign-ins per client address: an address may fail
// burst times, and gets one more try per every; beyond that it waits. The
// table is bounded: when full, the oldest addresses are forgotten.
type failures struct {
	mu    sync.Mutex
	burst int
	every time.Duration
	max   int
	seen  map[string]*tries
}

type tries struct {
	n    float64 // failures not yet forgiven
	last time.Time
}

func newFailures(burst int, every time.Duration, max int) *failures {
	return &failures{burst: burst, every: every, max: max, seen: map[string]*tries{}}
}

// forgive takes off the failures earned back since the last one.
func (f *failures) forgive(t *tries, now time.Time) {
	t.n = max(0, t.n-now.Sub(t.last).Seconds()/f.every.Seconds())
	t.last = now
}

// wait is how long addr must wait before its next sign-in; 0: go ahead.
func (f *failures) wait(addr string, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.seen[addr]
	if t == nil {
		return 0
	}
	f.forgive(t, now)
	if over := t.n - float64(f.burst) + 1; over > 0 {
		return time.Duration(over * float64(f.every))
	}
	return 0
}

// fail counts a failed sign-in of addr.
func (f *failures) fail(addr string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.seen[addr]
	if t == nil {
		if len(f.seen) >= f.max {
			f.evictOldest()
		}
		t = &tries{last: now}
		f.seen[addr] = t
	}
	f.forgive(t, now)
	t.n++
}

func (f *failures) evictOldest() {
	var oldest string
	var at time.Time
	for a, t := range f.seen {
		if oldest == "" || t.last.Before(at) {
			oldest, at = a, t.last
		}
	}
	delete(f.seen, oldest)
}
