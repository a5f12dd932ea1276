package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/ledger"
)

// A hold_id belongs to the API key that first used it, and stands for the
// request first sent with it. The claim says so from the first attempt on,
// before anything reaches the ledger; the hold's record repeats it once
// the hold is decided. To another key a claimed hold_id does not exist
// (404, as if never placed: nothing tells it the id is taken by someone
// else); to its owner, a different request under it is a 422. With no keys
// configured there are no owners, and everyone may use every hold_id.
type holdClaim struct {
	Owner       string `json:"owner,omitempty"` // the id of the API key; empty without keys
	Fingerprint string `json:"fingerprint"`
}

func (ch *Checkout) holdClaimKey(id string) string {
	return ch.cfg.Store.Keys().HoldPart(id, "claim")
}

// caller is the id of the request's API key; empty without keys.
func caller(c echo.Context) string {
	id, _ := c.Get(ctxKey).(string)
	return id
}

// owns says whether the caller's key may see and act on a hold owned by owner.
func (ch *Checkout) owns(caller, owner string) bool {
	return len(ch.keys) == 0 || caller == owner
}

// fingerprint is a digest of what a hold request asks for: its ttl,
// channel and lines, in any order (a hold is a set of lines). The hold_id
// is what it is stored under, so not part of it.
func (r holdRequest) fingerprint() string {
	lines := slices.Clone(r.Lines)
	slices.SortFunc(lines, func(a, b holdLine) int {
		return strings.Compare(a.SKU+"\x00"+a.Location+"\x00"+a.Group, b.SKU+"\x00"+b.Location+"\x00"+b.Group)
	})
	b, _ := json.Marshal(struct {
		TTLSeconds int64      `json:"ttl_seconds"`
		Channel    string     `json:"channel"`
		Lines      []holdLine `json:"lines"`
	}{r.TTLSeconds, r.Channel, lines})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// beginLua is the bookkeeping that starts an attempt at a hold_id, in one
// round trip. Every key carries the hold_id's hash tag, so the script
// stays in one slot of a Redis Cluster.
//
//	KEYS[1] the hold's record (holdKey)
//	KEYS[2] its claim (holdClaimKey)
//	KEYS[3] its lock (holdLockKey)
//	KEYS[4] its try counter (holdTryKey)
//	KEYS[5] its open attempts (holdOpenKey)
//	ARGV[1] the claim to take, as JSON; empty: skip the claim step (the
//	        caller has checked the claim that stands)
//	ARGV[2] the hold_id, which the attempt ids are made of
//	ARGV[3] the lock's ttl, in ms
//	ARGV[4] the ttl of the claim, the try counter and the open attempts, in ms
//
// It stops at the first of: the record, if the hold is decided
// ({"record", record}); a claim other than ARGV[1] ({"claimed", claim});
// the lock held by another request ({"busy"}). Otherwise it takes the
// lock, counts the try, and adds its attempt id (attemptID's) to the open
// attempts: {"begun", try, {the open attempts before it}}.
const beginLua = `
local rec = redis.call('GET', KEYS[1])
if rec then
  return {'record', rec}
end
if ARGV[1] ~= '' then
  local have = redis.call('GET', KEYS[2])
  if not have then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
  elseif have ~= ARGV[1] then
    return {'claimed', have}
  end
end
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then
  return {'busy'}
end
local try = redis.call('INCR', KEYS[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
local prior = redis.call('SMEMBERS', KEYS[5])
local id = ARGV[2]
if try > 1 then
  id = id .. '~' .. string.format('%d', try)
end
redis.call('SADD', KEYS[5], id)
redis.call('PEXPIRE', KEYS[5], ARGV[4])
return {'begun', try, prior}`

var beginScript = redis.NewScript(beginLua)

// holdStart is what beginning an attempt at a hold_id found: one of a
// decided hold's record, a claim by someone else, a busy lock, or the
// attempt begun.
type holdStart struct {
	record *holdRecord // the hold is decided: its first answer
	claim  *holdClaim  // the hold_id is claimed for another owner or request
	busy   bool        // another request for the hold_id is deciding it
	// The attempt begun, under the lock: its try (1, 2, ...), and the
	// earlier attempts still open.
	try   int64
	prior []string
}

// holdLockTTL bounds an attempt's lock, and a twin request's wait for its
// answer.
func (ch *Checkout) holdLockTTL() time.Duration { return ch.cfg.HoldTimeout + 5*time.Second }

// beginHold claims hold_id for the caller and request, or checks that it is
// theirs and the same request, and begins an attempt at it: one round trip,
// two when a claim that is not the same as want's is acceptable all the
// same (no keys configured). An error is the answer for a hold_id of
// someone else's (404) or for another request (422).
func (ch *Checkout) beginHold(ctx context.Context, id string, want holdClaim) (holdStart, error) {
	b, _ := json.Marshal(want)
	st, err := ch.runBegin(ctx, id, string(b))
	if err != nil || st.claim == nil {
		return st, err
	}
	if err := ch.checkClaim(id, *st.claim, want); err != nil {
		return holdStart{}, err
	}
	return ch.runBegin(ctx, id, "")
}

// runBegin runs beginLua with claim as ARGV[1] and decodes its reply.
func (ch *Checkout) runBegin(ctx context.Context, id, claim string) (holdStart, error) {
	keys := []string{ch.holdKey(id), ch.holdClaimKey(id), ch.holdLockKey(id), ch.holdTryKey(id), ch.holdOpenKey(id)}
	reply, err := beginScript.Run(ctx, ch.cfg.Store.Client(), keys,
		claim, id, ch.holdLockTTL().Milliseconds(), holdStateTTL.Milliseconds()).Slice()
	if err != nil {
		return holdStart{}, fmt.Errorf("begin hold %s: %w", id, err)
	}
	return decodeBegin(id, reply)
}

func decodeBegin(id string, reply []any) (holdStart, error) {
	var st holdStart
	var kind string
	if len(reply) > 0 {
		kind, _ = reply[0].(string)
	}
	switch {
	case kind == "record" && len(reply) == 2:
		raw, _ := reply[1].(string)
		st.record = new(holdRecord)
		if err := json.Unmarshal([]byte(raw), st.record); err != nil {
			return st, fmt.Errorf("hold record %s: %w", id, err)
		}
	case kind == "claimed" && len(reply) == 2:
		raw, _ := reply[1].(string)
		st.claim = new(holdClaim)
		if err := json.Unmarshal([]byte(raw), st.claim); err != nil {
			return st, fmt.Errorf("hold claim %s: %w", id, err)
		}
	case kind == "busy":
		st.busy = true
	case kind == "begun" && len(reply) == 3:
		st.try, _ = reply[1].(int64)
		prior, _ := reply[2].([]any)
		for _, p := range prior {
			s, _ := p.(string)
			st.prior = append(st.prior, s)
		}
		if st.try < 1 {
			return st, fmt.Errorf("begin hold %s: try %v", id, reply[1])
		}
	default:
		return st, fmt.Errorf("begin hold %s: unexpected reply %v", id, reply)
	}
	return st, nil
}

// checkClaim answers a request under a claimed hold_id that is not the
// owner's (404) or not the same request (422).
func (ch *Checkout) checkClaim(id string, have, want holdClaim) error {
	if !ch.owns(want.Owner, have.Owner) {
		return holdNotFound(id)
	}
	if have.Fingerprint != want.Fingerprint {
		return &problemError{Problem{Type: "about:blank", Title: "hold_id already used", Status: http.StatusUnprocessableEntity, Field: "hold_id",
			Detail: fmt.Sprintf("hold %q was requested with other lines, ttl_seconds or channel; a different request needs a new hold_id", id)}}
	}
	return nil
}

// replay answers a repeated request with the hold's first answer, unless it
// is not the caller's, not the same request, or released since.
func (ch *Checkout) replay(c echo.Context, id string, rec holdRecord, want holdClaim) error {
	if err := ch.checkClaim(id, holdClaim{Owner: rec.Owner, Fingerprint: rec.Fingerprint}, want); err != nil {
		return err
	}
	if rec.Released {
		return &problemError{Problem{Type: "about:blank", Title: "hold released", Status: http.StatusGone, Field: "hold_id",
			Detail: fmt.Sprintf("hold %q was released and holds nothing; place a new hold under a new hold_id", id)}}
	}
	return c.JSON(rec.Code, rec.Response)
}

func holdNotFound(id string) error {
	return &problemError{Problem{Type: "about:blank", Title: "hold not found", Status: http.StatusNotFound, Field: "hold_id",
		Detail: fmt.Sprintf("no hold %q for this API key (never placed, or expired long ago)", id)}}
}

// holdOwners reads the owner of each hold_id, in one round trip; a hold_id
// with no claim left has no entry.
func (ch *Checkout) holdOwners(ctx context.Context, ids []string) (map[string]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := ch.cfg.Store.Client().Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, ch.holdClaimKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read hold owners: %w", err)
	}
	out := make(map[string]string, len(ids))
	for i, cmd := range cmds {
		raw, err := cmd.Bytes()
		if err != nil {
			continue
		}
		var cl holdClaim
		if json.Unmarshal(raw, &cl) == nil {
			out[ids[i]] = cl.Owner
		}
	}
	return out, nil
}

// activeHolds lists the holds active at loc. A key sees the hold_ids of its
// own holds; an admin key, and everyone when no keys are configured, sees
// every hold_id. Other holds are listed without theirs: their quantities
// are still part of the numbers.
func (ch *Checkout) activeHolds(c echo.Context, holds []ledger.Hold, loc string, now time.Time) ([]holdJSON, error) {
	out := []holdJSON{}
	var ids []string
	for _, h := range holds {
		if h.Location == loc && h.Status == "held" && h.ExpMillis > now.UnixMilli() {
			id, _, _ := strings.Cut(h.HoldID, "~") // a later attempt's ledger id
			ids = append(ids, id)
			out = append(out, holdJSON{HoldID: id, Quantity: h.Quantity, ExpiresAt: time.UnixMilli(h.ExpMillis).UTC().Format(time.RFC3339Nano)})
		}
	}
	scopes, _ := c.Get(ctxScopes).([]string)
	if len(ch.keys) == 0 || slices.Contains(scopes, "admin") {
		return out, nil
	}
	owners, err := ch.holdOwners(c.Request().Context(), ids)
	if err != nil {
		return nil, err
	}
	me := caller(c)
	for i := range out {
		if owner, ok := owners[ids[i]]; !ok || owner != me {
			out[i].HoldID = ""
		}
	}
	return out, nil
}
