package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
)

// Holds are decided by the owner of their ledger partition as soon as they
// arrive, not when the fold reaches them (docs/design.md §7.1, and
// docs/holds.md in full): the owner decides against the state folded so far
// plus the holds it decided that the fold has not applied yet, and journals
// each decision to the ledger log as a HOLD entry carrying its Status. The
// fold applies such an entry as recorded (hold, below; §5.8), so a replay
// reaches the same decisions.

// judge decides en against raw, the location's ATP before channel rules;
// heldBy is what the hold's channel holds at the location already.
func (e *Engine) judge(en *events.LedgerEntry, et, raw int64, heldBy func() int64) Hold {
	loc, channel := deref(en.Location), deref(en.Channel)
	allowed := raw
	if en.ChannelRules != nil && *en.ChannelRules != "" {
		allowed = e.channelRules(*en.ChannelRules).ForChannelHolding(max(raw, 0), channel, heldBy())
	}
	h := Hold{HoldID: deref(en.HoldID), Location: loc, Quantity: en.Quantity, Status: HoldRejected, ATP: allowed, Channel: channel}
	if allowed >= en.Quantity {
		ttl := int64(0)
		if en.TTLMillis != nil {
			ttl = *en.TTLMillis
		}
		h.ExpMillis, h.Status, h.ATP = et+ttl, HoldHeld, allowed-en.Quantity
	}
	return h
}

// recorded is the decision a journaled HOLD entry carries.
func recorded(en *events.LedgerEntry, et int64) Hold {
	h := Hold{HoldID: deref(en.HoldID), Location: deref(en.Location), Quantity: en.Quantity, Status: HoldRejected, Channel: deref(en.Channel)}
	if en.DecidedATP != nil {
		h.ATP = *en.DecidedATP
	}
	if en.DecidedEpoch != nil {
		h.Epoch = *en.DecidedEpoch
	}
	if *en.Status == HoldHeld {
		ttl := int64(0)
		if en.TTLMillis != nil {
			ttl = *en.TTLMillis
		}
		h.Status, h.ExpMillis = HoldHeld, et+ttl
	}
	return h
}

// HoldKey is the key of a hold's decision within its SKU: one per hold id
// and location.
func HoldKey(holdID, location string) string { return holdID + "|" + location }

// Decide decides the hold request en against s, the SKU's state as folded
// so far, and pending, what was journaled for the SKU but may not be folded
// into s yet: decisions, and releases (Status HoldReleased). A decision
// both folded and pending is counted twice, which can only refuse, never
// oversell; a release is counted once whichever. Decide changes neither.
// When s or pending already has a decision for the hold, that one is
// returned with known set, and there is nothing to journal. Holds past
// their expiry at the request's time count for nothing, as the fold would
// purge them.
func (e *Engine) Decide(s *State, en *events.LedgerEntry, pending []Hold) (h Hold, known bool) {
	loc := deref(en.Location)
	key := HoldKey(deref(en.HoldID), loc)
	if d, ok := s.holds[key]; ok {
		return *d, true
	}
	var released map[string]bool
	for _, d := range pending {
		if d.Status == HoldReleased {
			if released == nil {
				released = map[string]bool{}
			}
			released[HoldKey(d.HoldID, d.Location)] = true
		} else if HoldKey(d.HoldID, d.Location) == key {
			return d, true
		}
	}
	et := en.EventTime.UnixMilli()
	var c Components
	if p, ok := s.pos[loc]; ok {
		c = p.Components
	}
	channel := deref(en.Channel)
	// What the folded state holds that has lapsed by now, and what the
	// pending decisions hold that has not.
	held, byChannel := c.Held, int64(0)
	for k, a := range s.active {
		if a.Location != loc {
			continue
		}
		switch {
		case atp.Lapsed(a.ExpMillis, et) || released[k]:
			held -= a.Quantity
		case a.Channel == channel:
			byChannel += a.Quantity
		}
	}
	for _, d := range pending {
		if d.Location == loc && d.Status == HoldHeld && !atp.Lapsed(d.ExpMillis, et) && !released[HoldKey(d.HoldID, d.Location)] {
			held += d.Quantity
			if d.Channel == channel {
				byChannel += d.Quantity
			}
		}
	}
	raw := c.OnHand - c.Reserved - c.Picked - held - c.SafetyStock
	return e.judge(en, et, raw, func() int64 { return byChannel }), false
}

// HoldMessage is what a hold's waiter is told of decision h: the fold's
// message, without a position version (the decision may not be stored yet).
func HoldMessage(sku string, h Hold) string {
	return holdMessage(h.HoldID, sku, h.Location, &h, 0)
}

// The hold fence of a ledger partition: an epoch every new owner of the
// partition's hold desk takes (INCR) before it decides anything. A desk
// answers only while the epoch is still its own, checked in the same call
// that publishes the answers, so an owner that lost the partition answers
// nothing more. The answers are kept under the fence's hash tag too, for an
// API instance that missed the published message.

func (s *Store) holdFenceKey(topic string, p int32) string { return s.Keys().HoldFence(topic, p) }

func (s *Store) holdAnswerKey(topic string, p int32, holdID, loc string) string {
	return s.Keys().HoldDecision(topic, p, HoldKey(holdID, loc))
}

// TakeHoldFence makes the caller the hold desk of ledger partition p of
// topic, fencing the previous one, and returns its epoch.
func (s *Store) TakeHoldFence(ctx context.Context, topic string, p int32) (int64, error) {
	n, err := s.rdb.Incr(ctx, s.holdFenceKey(topic, p)).Result()
	if err != nil {
		return 0, fmt.Errorf("take the hold fence of partition %d: %w", p, err)
	}
	return n, nil
}

// HoldAnswer is a decision to give the API instance waiting on it.
type HoldAnswer struct {
	Channel, SKU string
	Hold         Hold
}

// answerLua publishes the answers and keeps them, and records where the
// desk's next request is, if the fence's epoch is still the caller's.
// KEYS[1] the fence, KEYS[2] the position, KEYS[3..] each answer's key;
// ARGV[1] the epoch, ARGV[2] how long answers are kept (ms), ARGV[3] the
// position, then per answer its channel and message.
const answerLua = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
for i = 3, #KEYS do
  local ch, msg = ARGV[2*i-2], ARGV[2*i-1]
  redis.call('SET', KEYS[i], msg, 'PX', ARGV[2])
  redis.call('PUBLISH', ch, msg)
end
return 1
`

var answerScript = redis.NewScript(answerLua)

// AnswerKeep is how long an answer stays readable for an API instance that
// missed its message.
const AnswerKeep = 10 * time.Minute

// AnswerHolds publishes answers to their waiting API instances and keeps
// them, and records next, the offset of the next request the desk will
// read, in one call, unless the desk of partition p is no longer the one
// that took epoch: then it does nothing and says so (ok false).
func (s *Store) AnswerHolds(ctx context.Context, topic string, p int32, epoch, next int64, answers []HoldAnswer) (ok bool, err error) {
	keys := make([]string, 0, 2+len(answers))
	args := make([]any, 0, 3+2*len(answers))
	keys = append(keys, s.holdFenceKey(topic, p), s.holdFenceKey(topic, p)+":next")
	args = append(args, epoch, AnswerKeep.Milliseconds(), next)
	for _, a := range answers {
		keys = append(keys, s.holdAnswerKey(topic, p, a.Hold.HoldID, a.Hold.Location))
		args = append(args, a.Channel, HoldMessage(a.SKU, a.Hold))
	}
	n, err := answerScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("answer holds of partition %d: %w", p, err)
	}
	return n == 1, nil
}

// HoldsNext is where the desks of ledger partition p have read the holds
// topic to: the offset of the next request, or false when none recorded.
func (s *Store) HoldsNext(ctx context.Context, topic string, p int32) (int64, bool, error) {
	n, err := s.rdb.Get(ctx, s.holdFenceKey(topic, p)+":next").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read where partition %d's hold desk stopped: %w", p, err)
	}
	return n, true, nil
}

// AnsweredHold reads the answer the desk of partition p gave hold holdID
// at loc: the message it published, or "" when it gave none.
func (s *Store) AnsweredHold(ctx context.Context, topic string, p int32, holdID, loc string) (string, error) {
	v, err := s.rdb.Get(ctx, s.holdAnswerKey(topic, p, holdID, loc)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}
