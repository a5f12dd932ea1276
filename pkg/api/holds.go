package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

type holdLine struct {
	SKU      string `json:"sku"`
	Location string `json:"location,omitempty"`
	Group    string `json:"group,omitempty"`
	Quantity int64  `json:"quantity"`
}

type holdRequest struct {
	HoldID     string     `json:"hold_id"`
	TTLSeconds int64      `json:"ttl_seconds"`
	Channel    string     `json:"channel,omitempty"`
	Lines      []holdLine `json:"lines"`
}

type holdLineOutcome struct {
	SKU      string `json:"sku"`
	Location string `json:"location"`
	Group    string `json:"group,omitempty"`
	Quantity int64  `json:"quantity"`
	Status   string `json:"status"` // held, rejected, released (held, then let go because another line was rejected)
	ATP      int64  `json:"atp"`
}

type holdResponse struct {
	HoldID    string            `json:"hold_id"`
	Status    string            `json:"status"` // held or rejected
	ExpiresAt string            `json:"expires_at,omitempty"`
	Lines     []holdLineOutcome `json:"lines"`
}

// holdRecord is what the API keeps per hold_id, so a repeated request gets
// the first answer and a release knows the lines.
type holdRecord struct {
	Code     int          `json:"code"`
	Response holdResponse `json:"response"`
	Internal string       `json:"internal"` // the hold id in the ledger
}

func holdKey(id string) string            { return "sf:hold:" + id }
func holdLockKey(id string) string        { return "sf:holdlock:" + id }
func holdTryKey(id string) string         { return "sf:holdtry:" + id }
func decisionField(id, loc string) string { return id + "|" + loc }

func (ch *Checkout) parseHold(c echo.Context) (holdRequest, error) {
	var req holdRequest
	if err := decodeBody(c, &req); err != nil {
		return req, err
	}
	if err := checkID("hold_id", req.HoldID); err != nil {
		return req, err
	}
	if req.TTLSeconds < 1 || req.TTLSeconds > 3600 {
		return req, badRequest("ttl_seconds", fmt.Sprintf("%d is outside 1..3600", req.TTLSeconds))
	}
	if err := checkChannel("channel", req.Channel); err != nil {
		return req, err
	}
	if len(req.Lines) == 0 || len(req.Lines) > maxHoldLines {
		return req, badRequest("lines", fmt.Sprintf("give 1 to %d lines, not %d", maxHoldLines, len(req.Lines)))
	}
	seen := map[string]bool{}
	for i, l := range req.Lines {
		prefix := fmt.Sprintf("lines[%d].", i)
		if err := checkID(prefix+"sku", l.SKU); err != nil {
			return req, err
		}
		if _, err := ch.parseTarget(l.Location, l.Group, prefix); err != nil {
			return req, err
		}
		if l.Quantity < 1 || l.Quantity > maxQuantity {
			return req, badRequest(prefix+"quantity", fmt.Sprintf("%d is outside 1..%d", l.Quantity, maxQuantity))
		}
		k := l.SKU + "|" + l.Location + "|" + l.Group
		if seen[k] {
			return req, badRequest(prefix+"sku", "the same SKU and location appear twice; put the quantity on one line")
		}
		seen[k] = true
	}
	return req, nil
}

func (ch *Checkout) placeHold(c echo.Context) error {
	req, err := ch.parseHold(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	rdb := ch.cfg.Store.Client()
	if rec, ok, err := ch.loadHold(ctx, req.HoldID); err != nil {
		return err
	} else if ok {
		return c.JSON(rec.Code, rec.Response)
	}
	// One request per hold_id decides; a concurrent twin waits for its answer.
	lockTTL := ch.cfg.HoldTimeout + 5*time.Second
	got, err := rdb.SetNX(ctx, holdLockKey(req.HoldID), "1", lockTTL).Result()
	if err != nil {
		return err
	}
	if !got {
		deadline := time.Now().Add(lockTTL)
		for time.Now().Before(deadline) {
			if rec, ok, err := ch.loadHold(ctx, req.HoldID); err != nil {
				return err
			} else if ok {
				return c.JSON(rec.Code, rec.Response)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		return unavailable(c, "another request for this hold_id is still being decided")
	}
	defer rdb.Del(context.WithoutCancel(ctx), holdLockKey(req.HoldID))

	// A hold_id whose earlier attempt timed out gets a fresh ledger id, so
	// the release that followed the time-out does not shadow this attempt.
	try, err := rdb.Incr(ctx, holdTryKey(req.HoldID)).Result()
	if err != nil {
		return err
	}
	rdb.Expire(ctx, holdTryKey(req.HoldID), 2*time.Hour)
	internal := req.HoldID
	if try > 1 {
		internal += "~" + strconv.FormatInt(try, 10)
	}
	now := ch.now()
	lines, err := ch.resolveLines(ctx, req, now)
	if err != nil {
		return err
	}
	corr := correlationID(c)
	entries := make([]*events.LedgerEntry, len(lines))
	waits := make([]<-chan string, len(lines))
	ttl := req.TTLSeconds * 1000
	for i, l := range lines {
		loc := l.Location
		e := &events.LedgerEntry{
			EntryType: events.EntryHold, SKU: l.SKU, Location: &loc, Quantity: l.Quantity,
			HoldID: str(internal), TTLMillis: &ttl, ReplyTo: str(ch.waiter.channel),
			EventID: "hold:" + internal + ":" + strconv.Itoa(i), EventTime: now.UTC(), Source: "api", CorrelationID: corr,
		}
		if req.Channel != "" {
			e.Channel = str(req.Channel)
		}
		entries[i] = e
		var cancel func()
		waits[i], cancel = ch.waiter.expect(internal, l.SKU, loc)
		defer cancel()
	}
	sent := time.Now()
	if err := ch.produce(ctx, entries...); err != nil {
		return err
	}
	decisions := ch.awaitDecisions(ctx, internal, lines, waits)
	ch.holdRoundTrip.Observe(time.Since(sent).Seconds())
	for _, d := range decisions {
		if d == "" {
			ch.holdDecisions.WithLabelValues("timeout").Inc()
			// Undecided in time: make sure nothing stays held, then say so.
			ch.release(context.WithoutCancel(ctx), internal, lines, corr)
			return unavailable(c, "the ledger did not decide in time; nothing is held, retry with the same hold_id")
		}
	}
	resp := holdResponse{HoldID: req.HoldID, Status: "held", Lines: make([]holdLineOutcome, len(lines))}
	code := http.StatusCreated
	for i, l := range lines {
		status, atpStr, _ := strings.Cut(decisions[i], ":")
		a, _ := strconv.ParseInt(atpStr, 10, 64)
		a, _ = atp.Clamp(a)
		if status != "held" {
			status = "rejected"
			code, resp.Status = http.StatusConflict, "rejected"
		}
		resp.Lines[i] = holdLineOutcome{SKU: l.SKU, Location: l.Location, Group: l.Group, Quantity: l.Quantity, Status: status, ATP: a}
	}
	if code == http.StatusConflict {
		// All or nothing: let go of the lines that were held.
		var held []holdLine
		for i, o := range resp.Lines {
			if o.Status == "held" {
				held = append(held, lines[i])
				resp.Lines[i].Status = "released"
			}
		}
		if err := ch.release(ctx, internal, held, corr); err != nil {
			return err
		}
	} else {
		resp.ExpiresAt = now.Add(time.Duration(req.TTLSeconds) * time.Second).UTC().Format(time.RFC3339Nano)
	}
	ch.holdDecisions.WithLabelValues(resp.Status).Inc()
	rec := holdRecord{Code: code, Response: resp, Internal: internal}
	b, _ := json.Marshal(rec)
	if err := rdb.Set(ctx, holdKey(req.HoldID), b, time.Duration(req.TTLSeconds)*time.Second+time.Hour).Err(); err != nil {
		return err
	}
	return c.JSON(code, resp)
}

func (ch *Checkout) loadHold(ctx context.Context, id string) (holdRecord, bool, error) {
	var rec holdRecord
	b, err := ch.cfg.Store.Client().Get(ctx, holdKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, false, fmt.Errorf("hold record %s: %w", id, err)
	}
	return rec, true, nil
}

// resolveLines turns group lines into the member location with the most ATP.
func (ch *Checkout) resolveLines(ctx context.Context, req holdRequest, now time.Time) ([]holdLine, error) {
	out := make([]holdLine, len(req.Lines))
	copy(out, req.Lines)
	for i, l := range out {
		if l.Group == "" {
			continue
		}
		members := ch.cfg.Groups[l.Group]
		reqs := make([]ledger.LookupReq, len(members))
		for j, m := range members {
			reqs[j] = ledger.LookupReq{SKU: l.SKU, Location: m}
		}
		res, err := ch.cfg.Store.Lookup(ctx, reqs, now)
		if err != nil {
			return nil, err
		}
		best, bestATP := members[0], int64(-1<<62)
		for j, r := range res {
			if a := r.ATPPosition().Raw(); a > bestATP {
				best, bestATP = members[j], a
			}
		}
		out[i].Location = best
	}
	return out, nil
}

// awaitDecisions waits for every line's decision until the hold timeout,
// then reads any still missing from Redis (a published message can be missed).
func (ch *Checkout) awaitDecisions(ctx context.Context, internal string, lines []holdLine, waits []<-chan string) []string {
	out := make([]string, len(lines))
	timer := time.NewTimer(ch.cfg.HoldTimeout)
	defer timer.Stop()
	for i := range waits {
		select {
		case d := <-waits[i]:
			out[i] = d
		case <-timer.C:
			return ch.readDecisions(ctx, internal, lines, out)
		case <-ctx.Done():
			return ch.readDecisions(ctx, internal, lines, out)
		}
	}
	return out
}

func (ch *Checkout) readDecisions(ctx context.Context, internal string, lines []holdLine, out []string) []string {
	for i, l := range lines {
		if out[i] != "" {
			continue
		}
		_, _, holds, err := ch.cfg.Store.Lines(context.WithoutCancel(ctx), l.SKU)
		if err != nil {
			continue
		}
		for _, h := range holds {
			if h.HoldID == internal && h.Location == l.Location {
				out[i] = h.Status + ":" + strconv.FormatInt(h.ATP, 10)
			}
		}
	}
	return out
}

// release produces a release for each line; releasing what is not held is harmless.
func (ch *Checkout) release(ctx context.Context, internal string, lines []holdLine, corr *string) error {
	if len(lines) == 0 {
		return nil
	}
	now := ch.now().UTC()
	es := make([]*events.LedgerEntry, len(lines))
	for i, l := range lines {
		loc := l.Location
		es[i] = &events.LedgerEntry{
			EntryType: events.EntryHoldRelease, SKU: l.SKU, Location: &loc, HoldID: str(internal),
			EventID:   "release:" + internal + ":" + strconv.Itoa(i) + ":" + strconv.FormatInt(now.UnixNano(), 36),
			EventTime: now, Source: "api", CorrelationID: corr,
		}
	}
	return ch.produce(ctx, es...)
}

func (ch *Checkout) releaseHold(c echo.Context) error {
	id := c.Param("hold_id")
	if err := checkID("hold_id", id); err != nil {
		return err
	}
	ctx := c.Request().Context()
	rec, ok, err := ch.loadHold(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return &problemError{Problem{Type: "about:blank", Title: "hold not found", Status: http.StatusNotFound,
			Detail: fmt.Sprintf("no hold %q (never placed, or expired long ago)", id)}}
	}
	var lines []holdLine
	for _, l := range rec.Response.Lines {
		if l.Status == "held" {
			lines = append(lines, holdLine{SKU: l.SKU, Location: l.Location, Quantity: l.Quantity})
		}
	}
	if err := ch.release(ctx, rec.Internal, lines, correlationID(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
