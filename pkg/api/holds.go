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
	// Owner and Fingerprint repeat the hold_id's claim.
	Owner       string `json:"owner,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// Released is set by a release of a held hold: from then on the hold_id
	// answers 410, never its first answer, "held".
	Released bool `json:"released,omitempty"`
}

// The keys of a hold_id share its hash tag, so that the transactions over
// them stay in one slot of a Redis Cluster.
func (ch *Checkout) holdKey(id string) string     { return ch.cfg.Store.Keys().Hold(id) }
func (ch *Checkout) holdLockKey(id string) string { return ch.cfg.Store.Keys().HoldPart(id, "lock") }
func (ch *Checkout) holdTryKey(id string) string  { return ch.cfg.Store.Keys().HoldPart(id, "try") }
func (ch *Checkout) holdOpenKey(id string) string { return ch.cfg.Store.Keys().HoldPart(id, "open") }

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

// placeHold begins an attempt at the hold (or answers from what the hold_id
// already has), sends it to the ledger, awaits its decision and answers.
func (ch *Checkout) placeHold(c echo.Context) error {
	req, err := ch.parseHold(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	want := holdClaim{Owner: caller(c), Fingerprint: req.fingerprint()}
	st, err := ch.beginHold(ctx, req.HoldID, want)
	switch {
	case err != nil:
		return err
	case st.record != nil:
		return ch.replay(c, req.HoldID, *st.record, want)
	case st.busy:
		// One request per hold_id decides; a concurrent twin waits for its answer.
		return ch.awaitTwin(c, req.HoldID, want)
	}
	defer ch.cfg.Store.Client().Del(context.WithoutCancel(ctx), ch.holdLockKey(req.HoldID))
	// A hold_id whose earlier attempt timed out gets a fresh ledger id, so
	// the release that followed the time-out does not shadow this attempt.
	// The earlier attempts still open ended without an answer and without a
	// delivered release: their instance died, or the ledger was out of reach
	// for longer than their release could wait.
	return ch.attemptHold(c, req, want, attemptID(req.HoldID, st.try), st.prior)
}

// awaitTwin answers a request whose twin holds the hold_id's lock with the
// twin's answer, once it is stored.
func (ch *Checkout) awaitTwin(c echo.Context, id string, want holdClaim) error {
	ctx := c.Request().Context()
	deadline := time.Now().Add(ch.holdLockTTL())
	for time.Now().Before(deadline) {
		if rec, ok, err := ch.loadHold(ctx, id); err != nil {
			return err
		} else if ok {
			return ch.replay(c, id, rec, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return unavailable(c, "another request for this hold_id is still being decided")
}

// attemptHold sends the attempt internal at req to the ledger, behind
// releases of the earlier attempts still open (prior), awaits its decision
// and answers.
func (ch *Checkout) attemptHold(c echo.Context, req holdRequest, want holdClaim, internal string, prior []string) error {
	ctx := c.Request().Context()
	now := ch.now()
	lines, err := ch.resolveLines(ctx, req, now)
	if err != nil {
		return err
	}
	corr := correlationID(c)
	// The whole attempt, produce and decision, fits in the hold timeout, so
	// it ends before its lock expires and a retry can start.
	dctx, cancel := context.WithTimeout(ctx, ch.cfg.HoldTimeout)
	defer cancel()
	entries := ch.holdEntries(req, internal, lines, now, corr)
	waits := make([]<-chan string, len(lines))
	for i, l := range lines {
		var cancel func()
		waits[i], cancel = ch.waiter.expect(internal, l.SKU, l.Location)
		defer cancel()
	}
	// Whatever unanswered earlier attempts may have held is let go first:
	// the releases share the new hold's partitions and go ahead of it.
	prior = prior[max(0, len(prior)-maxPriorAttempts):]
	releases := ch.releaseEntries(prior, ch.releaseTargets(req), corr)
	sent := time.Now()
	recs, err := ch.produceHolds(dctx, append(releases, entries...)...)
	if err != nil {
		ch.holdDecisions.WithLabelValues("timeout").Inc()
		ch.releaseLater(req.HoldID, internal, lines, corr)
		ch.log.WarnContext(ctx, "hold not sent to the ledger", "hold_id", req.HoldID, "err", err)
		return unavailable(c, "the ledger log could not be reached in time; nothing is held, retry with the same hold_id")
	}
	if len(prior) > 0 {
		ch.cfg.Store.Client().SRem(ctx, ch.holdOpenKey(req.HoldID), prior)
	}
	parts := make([]int32, len(lines))
	for i, r := range recs[len(releases):] {
		parts[i] = r.Partition
	}
	decisions := ch.awaitDecisions(dctx, internal, lines, parts, waits)
	ch.holdRoundTrip.Observe(time.Since(sent).Seconds())
	for _, d := range decisions {
		if d == "" {
			ch.holdDecisions.WithLabelValues("timeout").Inc()
			// Undecided in time: make sure nothing stays held, then say so.
			ch.releaseLater(req.HoldID, internal, lines, corr)
			return unavailable(c, "the ledger did not decide in time; nothing is held, retry with the same hold_id")
		}
	}
	return ch.answerHold(c, req, want, internal, lines, decisions, now, corr)
}

// holdEntries are the ledger's hold entries of the attempt internal, a line each.
func (ch *Checkout) holdEntries(req holdRequest, internal string, lines []holdLine, now time.Time, corr *string) []*events.LedgerEntry {
	entries := make([]*events.LedgerEntry, len(lines))
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
		if len(ch.cfg.Rules) > 0 {
			// The fold decides under the rules this instance answers lookups with.
			e.ChannelRules = str(ch.rulesText)
		}
		entries[i] = e
	}
	return entries
}

// answerHold answers the attempt internal from its lines' decisions (all
// there): all held, or rejected with whatever was held let go. The answer
// is kept as the hold's record.
func (ch *Checkout) answerHold(c echo.Context, req holdRequest, want holdClaim, internal string, lines []holdLine, decisions []string, now time.Time, corr *string) error {
	ctx := c.Request().Context()
	resp := holdResponse{HoldID: req.HoldID, Status: "held", Lines: make([]holdLineOutcome, len(lines))}
	code := http.StatusCreated
	for i, l := range lines {
		status, rest, _ := strings.Cut(decisions[i], ":") // status:atp, then :version from the folder
		atpStr, _, _ := strings.Cut(rest, ":")
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
		exp := now.Add(time.Duration(req.TTLSeconds) * time.Second)
		resp.ExpiresAt = exp.UTC().Format(time.RFC3339Nano)
		// This instance's lookups show the hold from now on, stored or not.
		for _, l := range lines {
			ch.own.held(l.SKU, l.Location, atp.Hold{ID: internal, Quantity: l.Quantity, Expires: exp.UnixMilli(), Channel: req.Channel},
				ch.now(), 2*ch.cfg.HoldTimeout)
		}
	}
	ch.holdDecisions.WithLabelValues(resp.Status).Inc()
	rec := holdRecord{Code: code, Response: resp, Internal: internal, Owner: want.Owner, Fingerprint: want.Fingerprint}
	b, _ := json.Marshal(rec)
	// The answer is kept, and the attempt is no longer open: it answered.
	// The claim lasts as long as the answer.
	keep := time.Duration(req.TTLSeconds)*time.Second + time.Hour
	pipe := ch.cfg.Store.Client().TxPipeline()
	pipe.Set(ctx, ch.holdKey(req.HoldID), b, keep)
	pipe.Expire(ctx, ch.holdClaimKey(req.HoldID), keep)
	pipe.SRem(ctx, ch.holdOpenKey(req.HoldID), internal)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	return c.JSON(code, resp)
}

func (ch *Checkout) loadHold(ctx context.Context, id string) (holdRecord, bool, error) {
	var rec holdRecord
	b, err := ch.cfg.Store.Client().Get(ctx, ch.holdKey(id)).Bytes()
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
		res, err := ch.lookup(ctx, reqs, now)
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

// awaitDecisions waits for every line's decision until ctx ends, then reads
// any still missing from Redis (a published message can be missed). parts
// are the lines' ledger partitions.
func (ch *Checkout) awaitDecisions(ctx context.Context, internal string, lines []holdLine, parts []int32, waits []<-chan string) []string {
	out := make([]string, len(lines))
	for i := range waits {
		select {
		case d := <-waits[i]:
			out[i] = d
		case <-ctx.Done():
			return ch.readDecisions(ctx, internal, lines, parts, out)
		}
	}
	return out
}

func (ch *Checkout) readDecisions(ctx context.Context, internal string, lines []holdLine, parts []int32, out []string) []string {
	if ch.cfg.HoldsTopic != "" {
		// What the partition's desk answered, and only that: a decision
		// in the ledger that no desk could answer (its desk was fenced)
		// is released, not taken for an answer.
		for i, l := range lines {
			if out[i] != "" {
				continue
			}
			msg, err := ch.cfg.Store.AnsweredHold(context.WithoutCancel(ctx), ch.cfg.LedgerTopic, parts[i], internal, l.Location)
			if err != nil || msg == "" {
				continue
			}
			if d, ok := afterFields(msg, 3); ok {
				out[i] = d
			}
		}
		return out
	}
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
	_, err := ch.produceHolds(ctx, ch.releaseEntries([]string{internal}, lines, corr)...)
	return err
}

// releaseLater releases the lines of an attempt that got no answer, without
// holding up its response: with the broker out of reach the releases wait
// in the producer, behind the attempt's hold entries, until it is back.
// Once they are delivered the attempt is closed; until then the next
// attempt at the hold_id sends releases for it again.
func (ch *Checkout) releaseLater(holdID, internal string, lines []holdLine, corr *string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		if err := ch.release(ctx, internal, lines, corr); err != nil {
			ch.log.Warn("releasing an unanswered hold attempt", "hold", internal, "err", err)
			return
		}
		ch.cfg.Store.Client().SRem(ctx, ch.holdOpenKey(holdID), internal)
	}()
}

const (
	// releaseTimeout bounds how long a release of an unanswered attempt
	// waits for the ledger log.
	releaseTimeout = 2 * time.Minute
	// holdStateTTL is how long the attempts at a hold_id are remembered.
	holdStateTTL = 2 * time.Hour
	// maxPriorAttempts bounds how many unanswered earlier attempts at one
	// hold_id a new attempt releases.
	maxPriorAttempts = 32
)

// attemptID is the ledger's id for attempt try (1, 2, ...) at hold_id.
func attemptID(holdID string, try int64) string {
	if try <= 1 {
		return holdID
	}
	return holdID + "~" + strconv.FormatInt(try, 10)
}

// releaseTargets lists every place an attempt at req may have held: a line's
// location, or each member of its group, since an earlier attempt may have
// picked another one.
func (ch *Checkout) releaseTargets(req holdRequest) []holdLine {
	var out []holdLine
	for _, l := range req.Lines {
		if l.Group == "" {
			out = append(out, holdLine{SKU: l.SKU, Location: l.Location})
			continue
		}
		for _, m := range ch.cfg.Groups[l.Group] {
			out = append(out, holdLine{SKU: l.SKU, Location: m})
		}
	}
	return out
}

// releaseEntries makes a release entry for each of ids at each line. This
// instance's lookups leave those holds out from then on.
func (ch *Checkout) releaseEntries(ids []string, lines []holdLine, corr *string) []*events.LedgerEntry {
	now := ch.now().UTC()
	for _, id := range ids {
		for _, l := range lines {
			ch.own.release(l.SKU, l.Location, id, now, 2*ch.cfg.HoldTimeout)
		}
	}
	stamp := strconv.FormatInt(now.UnixNano(), 36)
	es := make([]*events.LedgerEntry, 0, len(ids)*len(lines))
	for _, id := range ids {
		for i, l := range lines {
			loc := l.Location
			es = append(es, &events.LedgerEntry{
				EntryType: events.EntryHoldRelease, SKU: l.SKU, Location: &loc, HoldID: str(id),
				EventID:   "release:" + id + ":" + strconv.Itoa(i) + ":" + stamp,
				EventTime: now, Source: "api", CorrelationID: corr,
			})
		}
	}
	return es
}

func (ch *Checkout) releaseHold(c echo.Context) error {
	id, err := pathID(c, "hold_id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	rec, ok, err := ch.loadHold(ctx, id)
	if err != nil {
		return err
	}
	if !ok || !ch.owns(caller(c), rec.Owner) {
		return holdNotFound(id)
	}
	if err := ch.releaseRecord(ctx, id, rec, correlationID(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// ReleaseAny releases the hold hold_id whichever key placed it: an
// operator's action (the console's, admin only). It says whether there was
// such a hold.
func (ch *Checkout) ReleaseAny(ctx context.Context, holdID string) (bool, error) {
	rec, ok, err := ch.loadHold(ctx, holdID)
	if err != nil || !ok {
		return false, err
	}
	corr := "console-release:" + holdID
	return true, ch.releaseRecord(ctx, holdID, rec, &corr)
}

// releaseRecord releases the held lines of a hold and marks its record
// released.
func (ch *Checkout) releaseRecord(ctx context.Context, id string, rec holdRecord, corr *string) error {
	var lines []holdLine
	for _, l := range rec.Response.Lines {
		if l.Status == "held" {
			lines = append(lines, holdLine{SKU: l.SKU, Location: l.Location, Quantity: l.Quantity})
		}
	}
	if err := ch.release(ctx, rec.Internal, lines, corr); err != nil {
		return err
	}
	if len(lines) > 0 && !rec.Released {
		rec.Released = true
		b, _ := json.Marshal(rec)
		// XX: a record that expired meanwhile stays gone; a plain SET would
		// bring it back with no expiry at all.
		err := ch.cfg.Store.Client().SetArgs(ctx, ch.holdKey(id), b, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// afterFields is what follows the nth '|' of s.
func afterFields(s string, n int) (string, bool) {
	i := 0
	for range n {
		j := strings.IndexByte(s[i:], '|')
		if j < 0 {
			return "", false
		}
		i += j + 1
	}
	return s[i:], true
}
