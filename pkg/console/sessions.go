package console

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// Bounds on sign-ins: how long one lasts however busy, how long it lasts
// unused, and how many this process keeps.
const (
	defaultSessionTTL  = 12 * time.Hour
	defaultSessionIdle = 30 * time.Minute
	defaultMaxSessions = 10000
)

// sessions are the console's sign-ins, in this process's memory. The
// cookie holds only a random id; what it stands for (the key's id, when it
// was made and last used) stays here, so that signing out ends it, and so
// does half an hour unused or twelve hours in all. Past max sign-ins the
// least recently used ends first.
//
// They are not shared: a sign-in is valid at the instance that made it.
type sessions struct {
	mu        sync.Mutex
	ttl, idle time.Duration
	max       int
	byID      map[[sha256.Size]byte]*list.Element
	lru       *list.List // of *signedSession, most recently used first
}

// signedSession is one session, found by a digest of its id, so that the
// id itself is kept only in the browser.
type signedSession struct {
	digest          [sha256.Size]byte
	keyID           string
	created, usedAt time.Time
}

func newSessions(ttl, idle time.Duration, max int) *sessions {
	return &sessions{ttl: ttl, idle: idle, max: max, byID: map[[sha256.Size]byte]*list.Element{}, lru: list.New()}
}

// start makes a session for the key keyID and returns its id, to be the
// cookie's value.
func (s *sessions) start(keyID string, now time.Time) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	si := &signedSession{digest: sha256.Sum256([]byte(id)), keyID: keyID, created: now, usedAt: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[si.digest] = s.lru.PushFront(si)
	for s.lru.Len() > s.max {
		s.drop(s.lru.Back())
	}
	return id, nil
}

// use returns the key id of session id if it is still valid, and counts
// now as its last use; an expired one is dropped.
func (s *sessions) use(id string, now time.Time) (string, bool) {
	d := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.byID[d]
	if !ok {
		return "", false
	}
	si := el.Value.(*signedSession)
	if now.Sub(si.usedAt) > s.idle || now.Sub(si.created) > s.ttl {
		s.drop(el)
		return "", false
	}
	si.usedAt = now
	s.lru.MoveToFront(el)
	return si.keyID, true
}

// end drops session id, if there is one.
func (s *sessions) end(id string) {
	d := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.byID[d]; ok {
		s.drop(el)
	}
}

// drop removes el; s.mu is held.
func (s *sessions) drop(el *list.Element) {
	delete(s.byID, el.Value.(*signedSession).digest)
	s.lru.Remove(el)
}
