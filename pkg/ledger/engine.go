package ledger

import (
	"maps"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
)

// The ledger engine: the one implementation of the ledger's semantics
// (docs/design.md §5). It folds entries into a SKU's State in memory; the
// folder keeps states cached per partition and stores them in Redis with
// guarded writes (store.go), verify and the tests fold whole logs with it
// (Fold). It reads no clock: only entry times, so a replay decides the same.

// Config sets the engine's windows.
type Config struct {
	// DedupeWindow is how long an applied event id is remembered. Default 24h.
	DedupeWindow time.Duration
	// JournalWindow is how long movements are kept for the count rule. Default 24h.
	JournalWindow time.Duration
	// LineageLen is how many recent entries each SKU keeps for lineage. Default 20.
	LineageLen int
	// KeyPrefix starts every Redis key of the ledger, so that several
	// ledgers (tests, benchmarks) can share one database. Default "sf".
	KeyPrefix string
}

func (c *Config) setDefaults() {
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 24 * time.Hour
	}
	if c.JournalWindow <= 0 {
		c.JournalWindow = 24 * time.Hour
	}
	if c.LineageLen <= 0 {
		c.LineageLen = 20
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "sf"
	}
}

// Status is what the engine did with an entry.
type Status uint8

// The statuses of an entry.
const (
	// Applied: the entry changed the ledger (or was a no-op fact, such as a
	// cancel of an unknown line, that the ledger now remembers).
	Applied Status = iota
	// Duplicate: the same business fact was applied before (dedupe window).
	Duplicate
	// Stale: the SKU has already folded this offset of its partition.
	Stale
	// Absorbed: a movement inside the last applied count.
	Absorbed
	// Ignored: a count older than the last applied count.
	Ignored
	// Counted: a count was applied; Outcome.CountDelta is the correction.
	Counted
	// Held: a hold was accepted (or is a repeat of an accepted one).
	Held
	// Rejected: a hold was refused for want of ATP (or repeats a refusal).
	Rejected
	// Unknown: an entry type this engine does not know; nothing changed.
	Unknown
)

var statusNames = [...]string{"applied", "duplicate", "stale", "absorbed", "ignored", "counted", "held", "rejected", "unknown"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Outcome is the engine's answer for one entry.
type Outcome struct {
	Status Status
	// CountDelta is how far the book was from a Counted count.
	CountDelta int64
	// Hold is the decision for a HOLD entry (new or repeated), else nil.
	Hold *Hold
}

// Components are the ledger totals of one SKU at one location.
type Components struct {
	OnHand, Reserved, Picked, Held, Inbound, SafetyStock, ReorderPoint int64
}

// Changed is a location whose components a fold changed or touched.
type Changed struct {
	Location      string
	Before, After Components
	Version       int64
	// Supply is the location's open supply after the fold, by kind and day,
	// earliest first: what a lookup reads as LookupResult.Supply.
	Supply []atp.Supply
	// SupplyChanged says the fold moved supply between days or kinds, which
	// After alone does not show when the total stayed the same.
	SupplyChanged bool
}

// OrderLine is an order line as the ledger keeps it.
type OrderLine struct {
	OrderID   string `json:"-"`
	LineID    string `json:"-"`
	Location  string `json:"loc,omitempty"`
	Group     string `json:"grp,omitempty"`
	Ordered   int64  `json:"o"`
	Picked    int64  `json:"p,omitempty"`
	Shipped   int64  `json:"s,omitempty"`
	Cancelled int    `json:"c,omitempty"`
	Channel   string `json:"ch,omitempty"`
	// At is when the order was accepted (event time, ms): the line's
	// place in the order its location's stock and supply serve lines.
	At int64 `json:"t,omitempty"`
	// Promise is the line's last published promise (Promise.encode), ""
	// when it has none.
	Promise string `json:"pr,omitempty"`
	// History is the line's last promises with their causes, oldest first
	// (at most PromiseHistory).
	History []PromiseChange `json:"ph,omitempty"`
}

// POLine is a purchase order line as the ledger keeps it.
type POLine struct {
	PONumber    string           `json:"-"`
	POLine      int              `json:"-"`
	Location    string           `json:"loc,omitempty"`
	Ordered     int64            `json:"q"`
	ExpectedDay int64            `json:"ed,omitempty"` // days since the Unix epoch
	Status      string           `json:"st,omitempty"`
	AckQuantity int64            `json:"aq,omitempty"`
	AckDay      int64            `json:"ad,omitempty"`
	ASN         map[string]int64 `json:"an,omitempty"`
	ETAMillis   int64            `json:"eta,omitempty"`
	Received    int64            `json:"r,omitempty"`
	Closed      int              `json:"cl,omitempty"`
}

// Hold statuses.
const (
	HoldHeld      = "held"
	HoldRejected  = "rejected"
	HoldReleased  = "released"
	HoldExpired   = "expired"
	HoldConverted = "converted"
)

// Hold is a hold decision as the ledger keeps it.
type Hold struct {
	HoldID    string `json:"-"`
	Location  string `json:"loc"`
	Quantity  int64  `json:"q"`
	ExpMillis int64  `json:"exp,omitempty"`
	Status    string `json:"st"` // held, rejected, released, expired, converted
	ATP       int64  `json:"atp"`
	Channel   string `json:"ch,omitempty"`
	// Epoch is the fencing epoch of the owner that journaled the decision
	// (0: decided by the fold itself).
	Epoch int64 `json:"ep,omitempty"`
}

// LineageEntry is one recent entry of a SKU, for explaining its numbers.
type LineageEntry struct {
	Partition     int32
	Offset        int64
	EventID       string
	CorrelationID string
	EntryType     string
	// Place is the entry's location, or its group when it has none.
	Place string
}

type journalEntry struct {
	et     int64
	member string // partition:offset:delta, unique per movement
	delta  int64
}

// position is one location of a SKU.
type position struct {
	Components
	version int64
	counted bool
	countAt int64 // as-of of the last applied count (ms), when counted
	journal []journalEntry
	supply  map[string]int64 // open supply by "kind|day"
}

// State is one SKU's ledger: what the engine needs to fold its next
// entries, and what changed since it was last stored.
type State struct {
	SKU    string
	marks  map[int32]int64 // per partition: the last offset folded
	stored map[int32]int64 // the watermarks Redis has for this state
	// seen maps applied dedupe ids to their event times (ms). A state
	// folded in memory keeps every id within the window; one a Store
	// loaded knows only the ids Store.Prime looked up for the entries
	// about to be folded and those folded since the last save: the rest
	// stay in Redis.
	seen     map[string]int64
	newest   int64 // the newest event time among applied entries (ms)
	swept    int   // len(seen) after the last sweep of ids out of the window
	prunedTo int64 // the window's start when Redis's ids were last pruned
	pos      map[string]*position
	group    map[string]int64 // unallocated demand per group
	lines    map[string]*OrderLine
	po       map[string]*POLine
	holds    map[string]*Hold  // hold_id|location
	active   map[string]*Hold  // the held ones
	nextExp  int64             // earliest expiry among active holds
	outbox   map[string][]byte // outputs stored unpublished, as loaded

	d dirty
}

// dirty is what a fold changed since the state was loaded or stored.
type dirty struct {
	touched   []string              // locations, in the order first touched
	before    map[string]Components // their components when first touched
	newLocs   []string              // locations the state did not have
	lines     map[string]bool
	po        map[string]bool
	holds     map[string]bool
	groups    map[string]bool
	supply    map[string]map[string]bool // location -> its supply buckets before the first change
	seenAdd   map[string]int64
	pruneTo   int64           // the window's start to prune Redis's ids to, 0: none
	readLines map[string]bool // lines Store.Prime read back (shed again once stored)
	readPOs   map[string]bool
	jAdd      map[string]map[string]int64 // location -> member -> score
	jDel      map[string]map[string]bool
	lineage   []LineageEntry
	publishes []publish
	outbox    map[string][]byte
	marks     bool
}

type publish struct{ channel, message string }

// NewState returns the empty ledger of sku.
func NewState(sku string) *State {
	return &State{SKU: sku, marks: map[int32]int64{}, stored: map[int32]int64{}, seen: map[string]int64{}, pos: map[string]*position{},
		group: map[string]int64{}, lines: map[string]*OrderLine{}, po: map[string]*POLine{},
		holds: map[string]*Hold{}, active: map[string]*Hold{}, nextExp: math.MaxInt64}
}

// Watermark is the last offset of partition folded into the state, or -1.
func (s *State) Watermark(partition int32) int64 {
	if w, ok := s.marks[partition]; ok {
		return w
	}
	return -1
}

// Watermarks returns a copy of the per-partition watermarks.
func (s *State) Watermarks() map[int32]int64 {
	out := make(map[int32]int64, len(s.marks))
	for p, o := range s.marks {
		out[p] = o
	}
	return out
}

// Dirty reports whether the state changed since it was loaded or stored.
func (s *State) Dirty() bool { return s.d.marks }

// Changes lists the locations touched since the state was loaded or
// stored, with their components before and now, and the version they get
// when stored.
func (s *State) Changes() []Changed {
	out := make([]Changed, 0, len(s.d.touched))
	for _, loc := range s.d.touched {
		p := s.pos[loc]
		_, moved := s.d.supply[loc]
		out = append(out, Changed{Location: loc, Before: s.d.before[loc], After: p.Components, Version: p.version + 1,
			Supply: p.openSupply(), SupplyChanged: moved})
	}
	return out
}

// Current lists every location of the SKU as it stands, with the version
// it was stored with.
func (s *State) Current() []Changed {
	out := make([]Changed, 0, len(s.pos))
	for l, p := range s.pos {
		out = append(out, Changed{Location: l, Before: p.Components, After: p.Components, Version: p.version, Supply: p.openSupply()})
	}
	return out
}

// openSupply lists the position's supply buckets as lookups parse them from
// the stored hash, so that what the folder publishes and what a lookup
// answers are read from the same buckets.
func (p *position) openSupply() []atp.Supply {
	if len(p.supply) == 0 {
		return nil
	}
	out := make([]atp.Supply, 0, len(p.supply))
	for b, q := range p.supply {
		if s, ok := bucketSupply(b, q); ok && s.Quantity > 0 {
			out = append(out, s)
		}
	}
	sortSupply(out)
	return out
}

// Positions returns the components of every location of the SKU.
func (s *State) Positions() map[string]Components {
	out := make(map[string]Components, len(s.pos))
	for l, p := range s.pos {
		out[l] = p.Components
	}
	return out
}

// Holds returns the SKU's hold decisions by hold_id|location.
func (s *State) Holds() map[string]Hold {
	out := make(map[string]Hold, len(s.holds))
	for k, h := range s.holds {
		out[k] = *h
	}
	return out
}

// GroupDemand is the SKU's unallocated demand within group.
func (s *State) GroupDemand(group string) int64 { return s.group[group] }

// Outbox stores an output with the state's next write, to be published
// and then cleared (Store.ClearOutbox): a writer that dies between its
// write and the publish leaves it for the next owner (TakeOutbox). id must
// be unique to the output, so a repeat can be recognised.
func (s *State) Outbox(id string, value []byte) {
	if s.d.outbox == nil {
		s.d.outbox = map[string][]byte{}
	}
	s.d.outbox[id] = value
}

// TakeOutbox returns the outputs that were stored unpublished when the state
// was loaded, once.
func (s *State) TakeOutbox() map[string][]byte {
	o := s.outbox
	s.outbox = nil
	return o
}

// Engine folds entries into states, each entry type as docs/design.md §5.1
// says, skipping what its watermarks (§5.5) and dedupe ids (§5.6) show
// applied already.
type Engine struct {
	cfg   Config
	rules sync.Map // channel rules text -> atp.ChannelRules, as hold entries carry them
}

// NewEngine returns an engine with cfg's windows.
func NewEngine(cfg Config) *Engine {
	cfg.setDefaults()
	return &Engine{cfg: cfg}
}

// Apply folds one entry, read at partition/offset of the log, into s.
func (e *Engine) Apply(s *State, en *events.LedgerEntry, partition int32, offset int64) Outcome {
	if offset <= s.Watermark(partition) {
		return Outcome{Status: Stale}
	}
	s.marks[partition] = offset
	s.d.marks = true
	et := en.EventTime.UnixMilli()
	id := DedupeID(en)
	window := e.cfg.DedupeWindow.Milliseconds()
	if t, dup := s.seen[id]; dup && t >= s.newest-window {
		if en.EntryType == events.EntryHold {
			// A hold produced twice still owes its waiter an answer: the first one.
			return e.hold(s, en, et)
		}
		return Outcome{Status: Duplicate}
	}
	s.addSeen(id, et, window)
	s.purgeHolds(et)
	out := e.applyEntry(s, en, et, partition, offset)
	e.addLineage(s, en, partition, offset)
	return out
}

// applyEntry folds a new entry (not stale, not a duplicate) by its type.
func (e *Engine) applyEntry(s *State, en *events.LedgerEntry, et int64, partition int32, offset int64) Outcome {
	loc := deref(en.Location)
	switch en.EntryType {
	case events.EntryReceipt:
		return Outcome{Status: e.applyReceipt(s, en, loc, et, partition, offset)}
	case events.EntryAdjustment:
		return Outcome{Status: e.movement(s, loc, en.Quantity, et, partition, offset)}
	case events.EntryShipment:
		return Outcome{Status: e.applyShipment(s, en, loc, et, partition, offset)}
	case events.EntryPick:
		s.applyPick(en, loc)
	case events.EntryCount:
		return e.count(s, loc, en.Quantity, en.AsOf)
	case events.EntryOrderLine:
		s.applyOrderLine(en, loc)
	case events.EntryOrderCancel:
		s.updateLine(en, func(l *OrderLine) { l.Cancelled = 1 })
	case events.EntryOrderAllocate:
		s.applyAllocate(en, loc)
	case events.EntryPOLine:
		s.applyPOLine(en, loc)
	case events.EntryPOAck:
		s.applyPOAck(en, loc)
	case events.EntryASNLine:
		s.applyASNLine(en, loc)
	case events.EntryPOClose:
		s.updatePO(en, func(l *POLine) { l.Closed = 1 })
	case events.EntryItemPolicy, events.EntryPolicy:
		s.applyPolicy(en, loc)
	case events.EntryHold:
		return e.hold(s, en, et)
	case events.EntryHoldRelease:
		s.releaseHold(deref(en.HoldID)+"|"+loc, HoldReleased)
	default:
		return Outcome{Status: Unknown}
	}
	return Outcome{Status: Applied}
}

// applyReceipt adds received stock at loc, and counts it as received on
// the PO line it names, if any.
func (e *Engine) applyReceipt(s *State, en *events.LedgerEntry, loc string, et int64, partition int32, offset int64) Status {
	st := e.movement(s, loc, en.Quantity, et, partition, offset)
	if en.PONumber != nil && en.POLine != nil {
		s.updatePO(en, func(l *POLine) {
			if l.Location == "" {
				l.Location = loc
			}
			l.Received += en.Quantity
		})
	}
	return st
}

// applyShipment takes shipped stock off loc and off what its order line
// reserves.
func (e *Engine) applyShipment(s *State, en *events.LedgerEntry, loc string, et int64, partition int32, offset int64) Status {
	st := e.movement(s, loc, -en.Quantity, et, partition, offset)
	s.updateLine(en, func(l *OrderLine) {
		if l.Location == "" {
			l.Location = loc
		}
		l.Shipped += en.Quantity
	})
	return st
}

func (s *State) applyPick(en *events.LedgerEntry, loc string) {
	s.touch(loc)
	s.updateLine(en, func(l *OrderLine) {
		if l.Location == "" {
			l.Location = loc
		}
		l.Picked += en.Quantity
	})
}

// applyOrderLine sets an order line's quantity and channel. A line placed
// at a location converts the hold it names; one without a location is
// demand on its group until allocated.
func (s *State) applyOrderLine(en *events.LedgerEntry, loc string) {
	if en.HoldID != nil && en.Location != nil {
		s.releaseHold(*en.HoldID+"|"+loc, HoldConverted)
	}
	s.updateLine(en, func(l *OrderLine) {
		l.Ordered = en.Quantity
		if en.Location != nil {
			l.Location, l.Group = loc, ""
		} else if l.Location == "" {
			l.Group = deref(en.Group)
		}
		l.Channel = deref(en.Channel)
		if l.At == 0 {
			l.At = en.EventTime.UnixMilli()
		}
	})
}

func (s *State) applyAllocate(en *events.LedgerEntry, loc string) {
	s.updateLine(en, func(l *OrderLine) {
		if loc != "" {
			l.Location, l.Group = loc, ""
		}
	})
}

func (s *State) applyPOLine(en *events.LedgerEntry, loc string) {
	s.updatePO(en, func(l *POLine) {
		l.Location, l.Ordered = loc, en.Quantity
		l.ExpectedDay = dayNumOf(en.ExpectedDate)
	})
}

func (s *State) applyPOAck(en *events.LedgerEntry, loc string) {
	s.updatePO(en, func(l *POLine) {
		if l.Location == "" {
			l.Location = loc
		}
		l.Status, l.AckQuantity = deref(en.Status), en.Quantity
		l.AckDay = dayNumOf(en.ExpectedDate)
	})
}

// applyASNLine records what an advance shipping notice says is coming on a
// PO line; a notice without an ETA clears the line's.
func (s *State) applyASNLine(en *events.LedgerEntry, loc string) {
	s.updatePO(en, func(l *POLine) {
		if l.Location == "" {
			l.Location = loc
		}
		if l.ASN == nil {
			l.ASN = map[string]int64{}
		}
		l.ASN[deref(en.ASNID)] = en.Quantity
		l.ETAMillis = 0
		if en.ETA != nil {
			l.ETAMillis = en.ETA.UnixMilli()
		}
	})
}

// applyPolicy sets the safety stock and reorder point the entry carries,
// leaving the one it does not as it was.
func (s *State) applyPolicy(en *events.LedgerEntry, loc string) {
	p := s.touch(loc)
	if en.SafetyStock != nil {
		p.SafetyStock = *en.SafetyStock
	}
	if en.ReorderPoint != nil {
		p.ReorderPoint = *en.ReorderPoint
	}
}

// addLineage remembers the entry among the SKU's recent ones. The list is
// cut back to LineageLen once it holds twice that, not on every entry.
func (e *Engine) addLineage(s *State, en *events.LedgerEntry, partition int32, offset int64) {
	place := deref(en.Location)
	if en.Location == nil {
		place = deref(en.Group)
	}
	s.d.lineage = append(s.d.lineage, LineageEntry{Partition: partition, Offset: offset, EventID: en.EventID,
		CorrelationID: deref(en.CorrelationID), EntryType: en.EntryType, Place: place})
	if n := e.cfg.LineageLen; len(s.d.lineage) > 2*n {
		s.d.lineage = append(s.d.lineage[:0], s.d.lineage[len(s.d.lineage)-n:]...)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func dayNum(t time.Time) int64 { return t.UTC().Truncate(24*time.Hour).Unix() / 86400 }

func dayNumOf(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return dayNum(*t)
}

// touch returns the position at loc, creating it, and marks it changed.
func (s *State) touch(loc string) *position {
	p, ok := s.pos[loc]
	if !ok {
		p = &position{}
		s.pos[loc] = p
		s.d.newLocs = append(s.d.newLocs, loc)
	}
	if _, ok := s.d.before[loc]; !ok {
		if s.d.before == nil {
			s.d.before = map[string]Components{}
		}
		s.d.before[loc] = p.Components
		s.d.touched = append(s.d.touched, loc)
	}
	return p
}

func mark(m *map[string]bool, k string) {
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[k] = true
}

// addSeen remembers an applied id. An id counts as applied while its event
// time is within the window of the newest applied entry's: the rule does
// not depend on when ids are pruned, so a state folded in memory, which
// sweeps them now and then, and one stored in Redis, pruned as its writes
// go, agree.
func (s *State) addSeen(id string, et, window int64) {
	if s.seen == nil {
		s.seen = map[string]int64{}
	}
	s.seen[id] = et
	s.newest = max(s.newest, et)
	if s.d.seenAdd == nil {
		s.d.seenAdd = map[string]int64{}
	}
	s.d.seenAdd[id] = et
	// Sweep when the map has doubled since the last sweep: amortised O(1).
	if len(s.seen) >= 2*max(s.swept, 1024) {
		for k, t := range s.seen {
			if t < s.newest-window {
				delete(s.seen, k)
			}
		}
		s.swept = len(s.seen)
	}
}

// movement applies an on-hand change. One at or before the last count's
// as-of time is inside that count already.
func (e *Engine) movement(s *State, loc string, d, et int64, partition int32, offset int64) Status {
	p := s.touch(loc)
	if p.counted && et <= p.countAt {
		return Absorbed
	}
	p.OnHand += d
	m := strconv.Itoa(int(partition)) + ":" + strconv.FormatInt(offset, 10) + ":" + strconv.FormatInt(d, 10)
	p.journal = append(p.journal, journalEntry{et: et, member: m, delta: d})
	s.journalAdd(loc, m, et)
	s.pruneJournal(loc, p, func(je journalEntry) bool { return je.et < et-e.cfg.JournalWindow.Milliseconds() })
	return Applied
}

func (s *State) journalAdd(loc, member string, et int64) {
	if s.d.jAdd == nil {
		s.d.jAdd = map[string]map[string]int64{}
	}
	if s.d.jAdd[loc] == nil {
		s.d.jAdd[loc] = map[string]int64{}
	}
	s.d.jAdd[loc][member] = et
}

func (s *State) pruneJournal(loc string, p *position, drop func(journalEntry) bool) {
	kept := p.journal[:0]
	for _, je := range p.journal {
		if !drop(je) {
			kept = append(kept, je)
			continue
		}
		if _, added := s.d.jAdd[loc][je.member]; added {
			delete(s.d.jAdd[loc], je.member)
			continue
		}
		if s.d.jDel == nil {
			s.d.jDel = map[string]map[string]bool{}
		}
		if s.d.jDel[loc] == nil {
			s.d.jDel[loc] = map[string]bool{}
		}
		s.d.jDel[loc][je.member] = true
	}
	clear(p.journal[len(kept):])
	p.journal = kept
}

// count sets on hand to the counted quantity plus the movements after the
// count's as-of time. A count older than the last applied one is ignored.
func (e *Engine) count(s *State, loc string, q int64, asOf *time.Time) Outcome {
	p := s.touch(loc)
	ao := int64(0)
	if asOf != nil {
		ao = asOf.UnixMilli()
	}
	if p.counted && ao <= p.countAt {
		return Outcome{Status: Ignored}
	}
	var sum int64
	for _, je := range p.journal {
		if je.et > ao {
			sum += je.delta
		}
	}
	s.pruneJournal(loc, p, func(je journalEntry) bool { return je.et <= ao })
	delta := q + sum - p.OnHand
	p.OnHand += delta
	p.counted, p.countAt = true, ao
	return Outcome{Status: Counted, CountDelta: delta}
}

// lineContrib is what an order line reserves and has picked: a shipped unit
// was picked, recorded or not.
func lineContrib(l *OrderLine) (reserved, picked int64) {
	return l.Open(), max(l.Picked-l.Shipped, 0)
}

// Open is what the line still reserves: ordered, less what was picked or
// shipped; nothing once cancelled.
func (l *OrderLine) Open() int64 {
	if l.Cancelled == 1 {
		return 0
	}
	return max(l.Ordered-max(l.Picked, l.Shipped), 0)
}

func (s *State) lineDelta(l *OrderLine, sign int64) {
	if l == nil {
		return
	}
	res, pk := lineContrib(l)
	switch {
	case l.Location != "":
		if res != 0 || pk != 0 {
			p := s.touch(l.Location)
			p.Reserved += sign * res
			p.Picked += sign * pk
		}
	case l.Group != "":
		if res != 0 {
			s.group[l.Group] += sign * res
			mark(&s.d.groups, l.Group)
		}
	}
}

// lineKey is the order line ("order|line") the fold of en reads and
// writes, if it touches one: the types applyEntry gives to updateLine.
func lineKey(en *events.LedgerEntry) (string, bool) {
	switch en.EntryType {
	case events.EntryShipment, events.EntryPick, events.EntryOrderLine, events.EntryOrderCancel, events.EntryOrderAllocate:
		return deref(en.OrderID) + "|" + deref(en.LineID), true
	}
	return "", false
}

// poKey is the PO line ("po|line") the fold of en reads and writes, if it
// touches one: the types applyEntry gives to updatePO.
func poKey(en *events.LedgerEntry) (string, bool) {
	if en.POLine == nil {
		return "", false
	}
	switch en.EntryType {
	case events.EntryReceipt:
		if en.PONumber == nil {
			return "", false
		}
	case events.EntryPOLine, events.EntryPOAck, events.EntryASNLine, events.EntryPOClose:
	default:
		return "", false
	}
	return deref(en.PONumber) + "|" + strconv.Itoa(int(*en.POLine)), true
}

// shed lets go of the order and PO lines named in lines and pos that take
// no part in the fold any more, once they are stored: an idle order line,
// and a PO line with nothing open. Redis keeps them, and Store.Prime reads
// one back when an entry touches it again. A state folded in memory keeps
// every line.
func (s *State) shed(lines, pos map[string]bool) {
	for k := range lines {
		if l := s.lines[k]; l != nil && l.idle() {
			delete(s.lines, k)
		}
	}
	for k := range pos {
		if l := s.po[k]; l != nil && l.Open() == 0 {
			delete(s.po, k)
		}
	}
}

// shedAll is shed for every line the state holds, as loaded.
func (s *State) shedAll() {
	maps.DeleteFunc(s.lines, func(_ string, l *OrderLine) bool { return l.idle() })
	maps.DeleteFunc(s.po, func(_ string, l *POLine) bool { return l.Open() == 0 })
}

// idle says the line takes no part in the fold's totals or promises:
// nothing open, nothing picked and unshipped, no promise.
func (l *OrderLine) idle() bool {
	res, pk := lineContrib(l)
	return res == 0 && pk == 0 && l.Promise == ""
}

func (s *State) updateLine(en *events.LedgerEntry, fn func(*OrderLine)) {
	key, _ := lineKey(en)
	before := s.lines[key]
	after := &OrderLine{OrderID: deref(en.OrderID), LineID: deref(en.LineID)}
	if before != nil {
		*after = *before
	}
	fn(after)
	s.lineDelta(before, -1)
	s.lineDelta(after, 1)
	s.lines[key] = after
	mark(&s.d.lines, key)
}

// Open is the quantity still expected on the line, as the ledger counts it.
func (l *POLine) Open() int64 {
	if l.Closed == 1 || l.Status == "REJECTED" {
		return 0
	}
	eff := l.Ordered
	switch {
	case l.ASN != nil:
		eff = 0
		for _, q := range l.ASN {
			eff += q
		}
	case l.Status != "":
		eff = l.AckQuantity
	}
	return max(eff-l.Received, 0)
}

// bucket is the line's open supply by how firm it is and the day it is due:
// the lookups read these buckets instead of every PO line.
func (l *POLine) bucket() string {
	switch {
	case l.ASN != nil && l.ETAMillis > 0:
		return "asn|" + strconv.FormatInt(floorDiv(l.ETAMillis, 86_400_000), 10)
	case l.Status != "" && l.AckDay > 0:
		return "ack|" + strconv.FormatInt(l.AckDay, 10)
	case l.Status != "":
		return "ack|" + strconv.FormatInt(l.ExpectedDay, 10)
	}
	return "rel|" + strconv.FormatInt(l.ExpectedDay, 10)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (s *State) poDelta(l *POLine, sign int64) {
	if l == nil || l.Location == "" {
		return
	}
	q := l.Open()
	if q == 0 {
		return
	}
	p := s.touch(l.Location)
	p.Inbound += sign * q
	if p.supply == nil {
		p.supply = map[string]int64{}
	}
	if _, ok := s.d.supply[l.Location]; !ok {
		// The store deletes the buckets that are gone, so it needs the ones there were.
		was := make(map[string]bool, len(p.supply))
		for b := range p.supply {
			was[b] = true
		}
		if s.d.supply == nil {
			s.d.supply = map[string]map[string]bool{}
		}
		s.d.supply[l.Location] = was
	}
	b := l.bucket()
	if p.supply[b] += sign * q; p.supply[b] == 0 {
		delete(p.supply, b)
	}
}

func (s *State) updatePO(en *events.LedgerEntry, fn func(*POLine)) {
	key, _ := poKey(en)
	before := s.po[key]
	after := &POLine{PONumber: deref(en.PONumber), POLine: int(*en.POLine)}
	if before != nil {
		*after = *before
		if before.ASN != nil {
			after.ASN = make(map[string]int64, len(before.ASN))
			for k, v := range before.ASN {
				after.ASN[k] = v
			}
		}
	}
	fn(after)
	s.poDelta(before, -1)
	s.poDelta(after, 1)
	s.po[key] = after
	mark(&s.d.po, key)
}

// purgeHolds expires the holds due at t (entry time, so a replay expires
// the same ones).
func (s *State) purgeHolds(t int64) {
	if t < s.nextExp {
		return
	}
	s.nextExp = math.MaxInt64
	for k, h := range s.active {
		if atp.Lapsed(h.ExpMillis, t) {
			s.endHold(k, h, HoldExpired)
		} else if h.ExpMillis < s.nextExp {
			s.nextExp = h.ExpMillis
		}
	}
}

func (s *State) endHold(key string, h *Hold, status string) {
	p := s.touch(h.Location)
	p.Held -= h.Quantity
	h.Status = status
	delete(s.active, key)
	mark(&s.d.holds, key)
}

func (s *State) releaseHold(key, status string) {
	if h, ok := s.active[key]; ok {
		s.endHold(key, h, status)
	}
}

// hold decides a hold: accepted when what the location's ATP now lets the
// hold's channel promise covers it, under the channel rules the entry
// carries (none: the whole ATP). The same hold again gets the first decision.
func (e *Engine) hold(s *State, en *events.LedgerEntry, et int64) Outcome {
	loc := deref(en.Location)
	key := deref(en.HoldID) + "|" + loc
	h, ok := s.holds[key]
	if ok && en.Status != nil && en.DecidedEpoch != nil && *en.DecidedEpoch > h.Epoch {
		// A newer owner decided a request an older one had decided and
		// not answered (it was fenced): the newer decision stands.
		if _, active := s.active[key]; active {
			s.touch(loc).Held -= h.Quantity
			delete(s.active, key)
		}
		ok = false
	}
	if !ok {
		p := s.touch(loc)
		if en.Status != nil {
			// Journaled by the partition's owner: applied as decided.
			d := recorded(en, et)
			h = &d
		} else {
			channel := deref(en.Channel)
			raw := p.OnHand - p.Reserved - p.Picked - p.Held - p.SafetyStock
			d := e.judge(en, et, raw, func() int64 { return s.heldBy(loc, channel) })
			h = &d
		}
		if h.Status == HoldHeld {
			p.Held += h.Quantity
			s.active[key] = h
			s.nextExp = min(s.nextExp, h.ExpMillis)
		}
		s.holds[key] = h
		mark(&s.d.holds, key)
	}
	st := Held
	if h.Status == HoldRejected {
		st = Rejected
	}
	if en.ReplyTo != nil {
		s.d.publishes = append(s.d.publishes, publish{*en.ReplyTo, holdMessage(h.HoldID, s.SKU, h.Location, h, s.storedVersion(loc))})
	}
	c := *h
	return Outcome{Status: st, Hold: &c}
}

// channelRules parses rules as a hold entry carries them. The API wrote
// them from rules it had parsed, so they parse; were they not to, the hold
// is decided without rules rather than stopping the fold.
func (e *Engine) channelRules(text string) atp.ChannelRules {
	if r, ok := e.rules.Load(text); ok {
		return r.(atp.ChannelRules)
	}
	r, err := atp.ParseChannelRules(text)
	if err != nil {
		r = atp.ChannelRules{}
	}
	e.rules.Store(text, r)
	return r
}

// heldBy is what channel's active holds hold at loc.
func (s *State) heldBy(loc, channel string) int64 {
	var n int64
	for _, h := range s.active {
		if h.Location == loc && h.Channel == channel {
			n += h.Quantity
		}
	}
	return n
}

// storedVersion is the version the position at loc has once the state is
// stored: one more than now when this poll changed it.
func (s *State) storedVersion(loc string) int64 {
	p, ok := s.pos[loc]
	if !ok {
		return 0
	}
	if _, changed := s.d.before[loc]; changed {
		return p.version + 1
	}
	return p.version
}

// holdMessage is what the folder publishes to the API instance waiting on a
// hold: "hold_id|sku|location|status:atp:version", version being the
// position's once the hold is stored, so that the instance's next lookup
// can insist on seeing it.
func holdMessage(holdID, sku, loc string, h *Hold, version int64) string {
	return holdID + "|" + sku + "|" + loc + "|" + h.Status + ":" + strconv.FormatInt(h.ATP, 10) + ":" + strconv.FormatInt(version, 10)
}
