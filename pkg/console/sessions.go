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
// unused, how many this process keeps, and how many of them one key has.
const (
	defaultSessionTTL  = 12 * time.Hour
	defaultSessionIdle = 30 * time.Minute
	defaultMaxSessions = 10000
	maxSessionsPerKey  = 20
)

// sessions are the console's sign-ins, in this process's memory. The
// cookie holds only a random id; what it stands for (the key's id, when it
// was made and last used) stays here, so that signing out ends it, and so
// does half an hour unused or twelve hours in all. Past perKey sign-ins of
// one key, that key's least recently used ends first, so that a key
// signing in over and over ends only its own; past max in all, the least
// recently used of any key.
//
// They are not shared: a sign-in is valid at the instance that made it.
type sessions struct {
	mu        sync.Mutex
	ttl, idle time.Duration
	max       int
	perKey    int
	byID      map[[sha256.Size]byte]*list.Element
	lru       *list.List // of *signedSession, most recently used first
	// byKey are each key's sessions, most recently used first.
	byKey map[string]*list.List
}

// signedSession is one session, found by a digest of its id, so that the
// id itself is kept only in the browser.
type signedSession struct {
	digest          [sha256.Size]byte
	keyID           string
	created, usedAt time.Time
	ofKey           *list.Element // in byKey[keyID]
}

func newSessions(ttl, idle time.Duration, max int) *sessions {
	return &sessions{ttl: ttl, idle: idle, max: max, perKey: maxSessionsPerKey, byID: map[[sha256.Size]byte]*list.Element{}, lru: list.New(),
		byKey: map[string]*list.List{}}
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
	own := s.byKey[keyID]
	if own == nil {
		own = list.New()
		s.byKey[keyID] = own
	}
	si.ofKey = own.PushFront(si)
	for own.Len() > s.perKey {
		s.drop(s.byID[own.Back().Value.(*signedSession).digest])
	}
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
	s.byKey[si.keyID].MoveToFront(si.ofKey)
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
	si := el.Value.(*signedSession)
	delete(s.byID, si.digest)
	s.lru.Remove(el)
	if own := s.byKey[si.keyID]; own != nil {
		if own.Remove(si.ofKey); own.Len() == 0 {
			delete(s.byKey, si.keyID)
		}
	}
}
