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
	return ch.holdKey(id) + ":claim"
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

// claim takes hold_id for the caller and request, or checks that it is
// theirs and the same request.
func (ch *Checkout) claim(ctx context.Context, id string, want holdClaim) error {
	b, _ := json.Marshal(want)
	rdb := ch.cfg.Store.Client()
	for range 2 { // a claim may expire between SETNX and GET
		got, err := rdb.SetNX(ctx, ch.holdClaimKey(id), b, holdStateTTL).Result()
		if err != nil || got {
			return err
		}
		raw, err := rdb.Get(ctx, ch.holdClaimKey(id)).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return err
		}
		var have holdClaim
		if err := json.Unmarshal(raw, &have); err != nil {
			return fmt.Errorf("hold claim %s: %w", id, err)
		}
		return ch.checkClaim(id, have, want)
	}
	return fmt.Errorf("hold claim %s: claimed and gone twice", id)
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
