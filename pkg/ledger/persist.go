package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// The keys of a SKU, below s.SKUKey(sku):
//
//	:w          hash partition -> watermark (last offset folded)
//	:locs       set of locations
//	:p:<loc>    hash of everything a lookup reads of the position: its totals
//	            oh rs pk hd ib ss rop, v (version), at (when written, ms),
//	            ct (last count as-of); "s:kind|day" -> open supply due that
//	            day; "h:<hold>" -> "quantity:expiry ms[:channel]" of each active hold
//	:j:<loc>    sorted set of movements newer than the last count, "partition:offset:delta" by event time
//	:g:<group>  hash rs -> demand not yet allocated to a location
//	:ol         hash "order|line" -> order line (JSON)
//	:po         hash "po|line" -> PO line (JSON)
//	:h          hash "hold|location" -> hold (JSON)
//	:hx         sorted set of active holds by expiry
//	:e          sorted set of applied dedupe ids by event time
//	:log        list of recent entries (JSON), newest first
//	:ob         hash output id -> output stored with a write, not yet published

// Load reads the states of skus, one gather call each, in one pipelined
// round trip. A SKU Redis does not know comes back empty.
func (s *Store) Load(ctx context.Context, skus []string) ([]*State, error) {
	out := make([]*State, len(skus))
	if len(skus) == 0 {
		return out, nil
	}
	keys := make([]string, len(skus))
	args := make([][]any, len(skus))
	for i, sku := range skus {
		keys[i] = s.SKUKey(sku)
	}
	cmds, err := evalAll(ctx, s.rdb, loadScript, keys, args)
	if err != nil {
		return nil, fmt.Errorf("load ledger: %w", err)
	}
	for i, c := range cmds {
		st, err := decodeState(skus[i], c.Val())
		if err != nil {
			return nil, fmt.Errorf("load ledger of %s: %w", skus[i], err)
		}
		out[i] = st
	}
	return out, nil
}

// Prime reads, for each state, what the entries about to be folded into
// it need and the state does not hold, in one pipelined round trip: which
// of them Redis has applied already (a state keeps no dedupe ids between
// folds), and the order and PO lines they touch that the state let go of
// when they closed. Call it before folding into a state a Store loaded or
// saved. A caller that shares states with other goroutines calls its three
// steps, Missing, Fetch and Add, itself, the first and last under its lock.
func (s *Store) Prime(ctx context.Context, states []*State, entries [][]Entry) error {
	skus := make([]string, len(states))
	miss := make([]Missing, len(states))
	for i, st := range states {
		skus[i], miss[i] = st.SKU, st.Missing(entries[i])
	}
	found, err := s.Fetch(ctx, skus, miss)
	if err != nil {
		return err
	}
	for i, st := range states {
		st.Add(found[i])
	}
	return nil
}

// Missing is what a fold needs of Redis beyond a state: dedupe ids to look
// up, and keys of order and PO lines ("order|line", "po|line") to read.
type Missing struct {
	IDs, Lines, POs []string
}

// Found is what Fetch read for a Missing: the applied ids among its IDs
// with their event times, and the lines Redis has.
type Found struct {
	IDs   map[string]int64
	Lines map[string]*OrderLine
	POs   map[string]*POLine
}

// Missing lists what the fold of entries needs and the state does not
// hold: the dedupe ids of the entries the fold would not skip by a
// watermark, and the lines they touch that are not in memory.
func (s *State) Missing(entries []Entry) Missing {
	var m Missing
	var asked map[string]bool // line keys, "po|line" apart from "order|line" by a prefix
	ask := func(k string) bool {
		if asked[k] {
			return false
		}
		if asked == nil {
			asked = map[string]bool{}
		}
		asked[k] = true
		return true
	}
	for _, e := range entries {
		if e.Offset <= s.Watermark(e.Partition) {
			continue
		}
		id := DedupeID(e.LedgerEntry)
		if _, ok := s.seen[id]; !ok {
			m.IDs = append(m.IDs, id)
		}
		if k, ok := lineKey(e.LedgerEntry); ok && s.lines[k] == nil && ask("o"+k) {
			m.Lines = append(m.Lines, k)
		}
		if k, ok := poKey(e.LedgerEntry); ok && s.po[k] == nil && ask("p"+k) {
			m.POs = append(m.POs, k)
		}
	}
	return m
}

// Add puts what Fetch found into the state. A line the state has meanwhile
// is newer than the one read, and stays.
func (s *State) Add(f Found) {
	if len(f.IDs) > 0 && s.seen == nil {
		s.seen = make(map[string]int64, len(f.IDs))
	}
	for id, et := range f.IDs {
		s.seen[id] = et
	}
	for k, l := range f.Lines {
		if s.lines[k] == nil {
			s.lines[k] = l
			mark(&s.d.readLines, k)
		}
	}
	for k, l := range f.POs {
		if s.po[k] == nil {
			s.po[k] = l
			mark(&s.d.readPOs, k)
		}
	}
}

// Fetch reads, for each SKU, what m lists: ZMSCORE for the dedupe ids,
// HMGET for the lines, all in one pipelined round trip.
func (s *Store) Fetch(ctx context.Context, skus []string, m []Missing) ([]Found, error) {
	type ask struct {
		i    int
		kind string // ":e", ":ol" or ":po"
		keys []string
		cmd  *redis.Cmd
	}
	var asks []ask
	pipe := s.rdb.Pipeline()
	for i, sku := range skus {
		for _, k := range [...]struct {
			suffix, cmd string
			keys        []string
		}{{":e", "ZMSCORE", m[i].IDs}, {":ol", "HMGET", m[i].Lines}, {":po", "HMGET", m[i].POs}} {
			for rest := k.keys; len(rest) > 0; {
				n := min(len(rest), maxArgs)
				args := make([]any, 0, n+2)
				args = append(args, k.cmd, s.SKUKey(sku)+k.suffix)
				for _, id := range rest[:n] {
					args = append(args, id)
				}
				asks = append(asks, ask{i, k.suffix, rest[:n], pipe.Do(ctx, args...)})
				rest = rest[n:]
			}
		}
	}
	out := make([]Found, len(skus))
	if len(asks) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read what the fold needs: %w", err)
	}
	for _, a := range asks {
		vals, _ := a.cmd.Val().([]any)
		if len(vals) != len(a.keys) {
			return nil, fmt.Errorf("read %s of %s: %d values for %d keys", a.kind, skus[a.i], len(vals), len(a.keys))
		}
		if err := out[a.i].add(a.kind, a.keys, vals); err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", a.kind, skus[a.i], err)
		}
	}
	return out, nil
}

// add keeps the values read for keys of kind; nil is a key Redis lacks.
func (f *Found) add(kind string, keys []string, vals []any) error {
	for j, v := range vals {
		if v == nil {
			continue
		}
		switch kind {
		case ":e":
			et, err := scoreOf(v)
			if err != nil {
				return fmt.Errorf("dedupe id %q: %w", keys[j], err)
			}
			if f.IDs == nil {
				f.IDs = map[string]int64{}
			}
			f.IDs[keys[j]] = et
		case ":ol":
			l, err := decodeOrderLine(keys[j], fmt.Sprint(v))
			if err != nil {
				return err
			}
			if f.Lines == nil {
				f.Lines = map[string]*OrderLine{}
			}
			f.Lines[keys[j]] = l
		case ":po":
			l, err := decodePOLine(keys[j], fmt.Sprint(v))
			if err != nil {
				return err
			}
			if f.POs == nil {
				f.POs = map[string]*POLine{}
			}
			f.POs[keys[j]] = &l
		}
	}
	return nil
}

func strs(v any) []string {
	a, _ := v.([]any)
	out := make([]string, len(a))
	for i, x := range a {
		out[i], _ = x.(string)
	}
	return out
}

// decodeState builds a SKU's state from the load script's reply: the
// locations, watermarks, order lines, PO lines, holds, dedupe ids and
// outbox, then each location's position hash and journal.
func decodeState(sku string, v any) (*State, error) {
	top, ok := v.([]any)
	const fixed = 7
	if !ok || len(top) < fixed {
		return nil, fmt.Errorf("unexpected reply %T", v)
	}
	s := NewState(sku)
	locs := strs(top[0])
	if err := s.decodeMarks(strs(top[1])); err != nil {
		return nil, err
	}
	if len(top) != fixed+2*len(locs) {
		return nil, fmt.Errorf("reply has %d parts for %d locations", len(top), len(locs))
	}
	for i, loc := range locs {
		p := &position{}
		if err := p.decodeTotals(loc, strs(top[fixed+2*i])); err != nil {
			return nil, err
		}
		if err := p.decodeJournal(loc, strs(top[fixed+1+2*i])); err != nil {
			return nil, err
		}
		s.pos[loc] = p
	}
	if err := s.decodeLines(strs(top[2])); err != nil {
		return nil, err
	}
	if err := s.decodePOLines(strs(top[3])); err != nil {
		return nil, err
	}
	if err := s.decodeHolds(strs(top[4])); err != nil {
		return nil, err
	}
	if err := s.decodeSeen(strs(top[5])); err != nil {
		return nil, err
	}
	if kv := strs(top[6]); len(kv) > 0 {
		s.outbox = make(map[string][]byte, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			s.outbox[kv[i]] = []byte(kv[i+1])
		}
	}
	s.shedAll()
	return s, nil
}

// decodeMarks reads the watermarks, partition and offset pairs; they are
// both what the state has folded and what Redis has stored.
func (s *State) decodeMarks(kv []string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		p, err1 := strconv.ParseInt(kv[i], 10, 32)
		o, err2 := strconv.ParseInt(kv[i+1], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("watermark %s=%s", kv[i], kv[i+1])
		}
		s.marks[int32(p)], s.stored[int32(p)] = o, o
	}
	return nil
}

// decodeTotals reads the numbers of loc's position hash, field and value
// pairs.
func (p *position) decodeTotals(loc string, h []string) error {
	for j := 0; j+1 < len(h); j += 2 {
		if !totalField(h[j]) {
			continue // supply and holds come from the PO lines and holds
		}
		n, err := strconv.ParseInt(h[j+1], 10, 64)
		if err != nil {
			return fmt.Errorf("position %s field %s=%q", loc, h[j], h[j+1])
		}
		switch h[j] {
		case "hd":
			p.Held = n // lookups count the hold fields instead, by their clock
		case "v":
			p.version = n
		case "ct":
			p.counted, p.countAt = true, n
		default:
			setComponent(&p.Components, h[j], n)
		}
	}
	return nil
}

// decodeJournal reads loc's movement journal, member and score pairs,
// oldest first.
func (p *position) decodeJournal(loc string, j []string) error {
	for k := 0; k+1 < len(j); k += 2 {
		et, err := parseScore(j[k+1])
		d, ok := movementDelta(j[k])
		if err != nil || !ok {
			return fmt.Errorf("journal %s member %q score %q", loc, j[k], j[k+1])
		}
		p.journal = append(p.journal, journalEntry{et: et, member: j[k], delta: d})
	}
	return nil
}

// decodeLines reads the order lines, and adds what the lines without a
// location reserve to their group's demand.
func (s *State) decodeLines(kv []string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		l, err := decodeOrderLine(kv[i], kv[i+1])
		if err != nil {
			return err
		}
		s.lines[kv[i]] = l
		if l.Location == "" && l.Group != "" {
			res, _ := lineContrib(l)
			s.group[l.Group] += res
		}
	}
	return nil
}

// decodeOrderLine reads the order line stored at key "order|line".
func decodeOrderLine(key, v string) (*OrderLine, error) {
	l := &OrderLine{}
	if err := json.Unmarshal([]byte(v), l); err != nil {
		return nil, fmt.Errorf("order line %s: %w", key, err)
	}
	l.OrderID, l.LineID, _ = strings.Cut(key, "|")
	return l, nil
}

// decodePOLines reads the PO lines, and rebuilds from them the open supply
// of their locations' positions, which the position hashes hold only for
// lookups.
func (s *State) decodePOLines(kv []string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		l, err := decodePOLine(kv[i], kv[i+1])
		if err != nil {
			return err
		}
		s.po[kv[i]] = &l
		if q := l.Open(); q > 0 && l.Location != "" {
			p := s.pos[l.Location]
			if p == nil {
				p = &position{}
				s.pos[l.Location] = p
			}
			if p.supply == nil {
				p.supply = map[string]int64{}
			}
			p.supply[l.bucket()] += q
		}
	}
	return nil
}

// decodeHolds reads the hold decisions, and keeps the active ones apart
// with the earliest expiry among them.
func (s *State) decodeHolds(kv []string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		h := &Hold{}
		if err := json.Unmarshal([]byte(kv[i+1]), h); err != nil {
			return fmt.Errorf("hold %s: %w", kv[i], err)
		}
		h.HoldID, _, _ = strings.Cut(kv[i], "|")
		s.holds[kv[i]] = h
		if h.Status == HoldHeld {
			s.active[kv[i]] = h
			s.nextExp = min(s.nextExp, h.ExpMillis)
		}
	}
	return nil
}

// decodeSeen reads the newest dedupe id and its event time, as the load
// script gives it: the window the other ids are judged by (Prime).
func (s *State) decodeSeen(kv []string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		et, err := parseScore(kv[i+1])
		if err != nil {
			return fmt.Errorf("dedupe id %q score %q", kv[i], kv[i+1])
		}
		s.newest = max(s.newest, et)
	}
	return nil
}

// The prefixes of the position hash's supply and hold fields.
const (
	supplyField = "s:"
	holdField   = "h:"
)

// setComponent sets the component a position hash field holds, and says
// whether the field is one: oh rs pk ib ss rop. The fold's load and lookups
// both read the totals through it.
func setComponent[S string | []byte](c *Components, field S, n int64) bool {
	switch string(field) {
	case "oh":
		c.OnHand = n
	case "rs":
		c.Reserved = n
	case "pk":
		c.Picked = n
	case "ib":
		c.Inbound = n
	case "ss":
		c.SafetyStock = n
	case "rop":
		c.ReorderPoint = n
	default:
		return false
	}
	return true
}

// totalField reports whether a position hash field is one of its numbers.
func totalField(f string) bool {
	switch f {
	case "oh", "rs", "pk", "hd", "ib", "ss", "rop", "v", "ct":
		return true
	}
	return false
}

// scoreOf reads a score as a reply carries it: a double in RESP3, a string
// in RESP2.
func scoreOf(v any) (int64, error) {
	switch x := v.(type) {
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("score %v", x)
		}
		return int64(x), nil
	case string:
		return parseScore(x)
	}
	return 0, fmt.Errorf("score of type %T", v)
}

// parseScore reads a sorted-set score holding a whole number of ms.
func parseScore(v string) (int64, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f != math.Trunc(f) {
		return 0, fmt.Errorf("score %q", v)
	}
	return int64(f), nil
}

func movementDelta(member string) (int64, bool) {
	i := strings.LastIndexByte(member, ':')
	if i < 0 {
		return 0, false
	}
	d, err := strconv.ParseInt(member[i+1:], 10, 64)
	return d, err == nil
}

// maxArgs bounds one command's arguments: the save script unpacks them on
// Lua's stack.
const maxArgs = 1000

// saveArgs are the save script's arguments for one state: the guard, then
// the commands that store what the fold changed as absolute values.
type saveArgs struct {
	args []any
	cmd  int    // index of the current command's argument count
	buf  []byte // one buffer for the written values of this state
}

// begin starts a command on the key below the SKU's prefix named by suffix.
func (a *saveArgs) begin(name, suffix string) {
	a.args = append(a.args, name, suffix, 0)
	a.cmd = len(a.args) - 1
}

func (a *saveArgs) add(vs ...any) {
	a.args = append(a.args, vs...)
	a.args[a.cmd] = a.args[a.cmd].(int) + len(vs)
}

// pairs adds a command with the arguments kv, split into several of the
// same command when they are more than maxArgs.
func (a *saveArgs) pairs(name, suffix string, kv []any) {
	for len(kv) > 0 {
		n := min(len(kv), maxArgs)
		a.begin(name, suffix)
		a.add(kv[:n]...)
		kv = kv[n:]
	}
}

// value writes one value at the end of the state's buffer with appendTo
// and returns it.
func (a *saveArgs) value(appendTo func([]byte) []byte) []byte {
	start := len(a.buf)
	a.buf = appendTo(a.buf)
	return a.buf[start:len(a.buf):len(a.buf)]
}

// saveArgs lists the save script's arguments for what st changed since it
// was loaded or last stored.
func (s *Store) saveArgs(st *State) []any {
	var a saveArgs
	a.guard(st)
	d := &st.d
	a.positions(st)
	a.supply(st)
	for _, g := range sortedKeys(d.groups) {
		a.begin("HSET", ":g:"+g)
		a.add("rs", st.group[g])
	}
	a.orderLines(st)
	if len(d.po) > 0 {
		kv := make([]any, 0, 2*len(d.po))
		for k := range d.po {
			b, _ := json.Marshal(st.po[k])
			kv = append(kv, k, b)
		}
		a.pairs("HSET", ":po", kv)
	}
	a.holds(st)
	a.dedupe(st, s.eng.cfg.DedupeWindow.Milliseconds())
	a.journals(d)
	a.lineage(d.lineage, s.eng.cfg.LineageLen)
	if len(d.outbox) > 0 {
		kv := make([]any, 0, 2*len(d.outbox))
		for id, v := range d.outbox {
			kv = append(kv, id, v)
		}
		a.pairs("HSET", ":ob", kv)
	}
	for _, p := range d.publishes {
		a.begin("PUBLISH", p.channel)
		a.add(p.message)
	}
	return a.args
}

// guard starts the arguments with the watermarks the write moves: for each
// partition, the one Redis should still have (-1: none) and the new one.
func (a *saveArgs) guard(st *State) {
	var guard []any
	for p, o := range st.marks {
		if prev, ok := st.stored[p]; !ok || prev != o {
			if !ok {
				prev = -1
			}
			guard = append(guard, p, prev, o)
		}
	}
	a.args = append(make([]any, 0, 64), len(guard)/3)
	a.args = append(a.args, guard...)
}

// positions adds the new locations to the SKU's set, and writes the totals,
// version and count time of every position the fold touched.
func (a *saveArgs) positions(st *State) {
	d := &st.d
	if len(d.newLocs) > 0 {
		locs := make([]any, len(d.newLocs))
		for i, l := range d.newLocs {
			locs[i] = l
		}
		a.pairs("SADD", ":locs", locs)
	}
	if len(d.touched) == 0 {
		return
	}
	at := time.Now().UnixMilli()
	for _, loc := range d.touched {
		p, was := st.pos[loc], d.before[loc]
		a.begin("HSET", ":p:"+loc)
		a.add("v", p.version+1, "at", at)
		// A total that is 0 and was 0 is left out: an absent field reads 0,
		// and a bare position stays small.
		for _, f := range [...]struct {
			name      string
			now, then int64
		}{{"oh", p.OnHand, was.OnHand}, {"rs", p.Reserved, was.Reserved}, {"pk", p.Picked, was.Picked},
			{"hd", p.Held, was.Held}, {"ib", p.Inbound, was.Inbound}, {"ss", p.SafetyStock, was.SafetyStock},
			{"rop", p.ReorderPoint, was.ReorderPoint}} {
			if f.now != 0 || f.then != 0 {
				a.add(f.name, f.now)
			}
		}
		if p.counted {
			a.add("ct", p.countAt)
		}
	}
}

// supply rewrites the open supply buckets of the positions whose supply
// moved. The position's open supply by bucket and its active holds live in
// the position hash too, so that a lookup is one plain read of one key.
func (a *saveArgs) supply(st *State) {
	for _, loc := range sortedKeys(st.d.supply) {
		now := st.pos[loc].supply
		var gone []any
		for b := range st.d.supply[loc] {
			if _, ok := now[b]; !ok {
				gone = append(gone, supplyField+b)
			}
		}
		a.pairs("HDEL", ":p:"+loc, gone)
		kv := make([]any, 0, 2*len(now))
		for b, q := range now {
			kv = append(kv, supplyField+b, q)
		}
		a.pairs("HSET", ":p:"+loc, kv)
	}
}

func (a *saveArgs) orderLines(st *State) {
	if len(st.d.lines) == 0 {
		return
	}
	kv := make([]any, 0, 2*len(st.d.lines))
	for k := range st.d.lines {
		l := st.lines[k]
		kv = append(kv, k, a.value(func(b []byte) []byte { return appendOrderLine(b, l) }))
	}
	a.pairs("HSET", ":ol", kv)
}

// holds writes the changed hold decisions, keeps the active ones in the
// expiry set and their positions' hashes, and takes the ended ones out of
// both.
func (a *saveArgs) holds(st *State) {
	if len(st.d.holds) == 0 {
		return
	}
	kv := make([]any, 0, 2*len(st.d.holds))
	var expiring, ended []any
	for k := range st.d.holds {
		h := st.holds[k]
		kv = append(kv, k, a.value(func(b []byte) []byte { return appendHold(b, h) }))
		if h.Status == HoldHeld {
			expiring = append(expiring, h.ExpMillis, k)
			a.begin("HSET", ":p:"+h.Location)
			a.add(holdField+h.HoldID, a.value(func(b []byte) []byte { return appendHoldField(b, h) }))
		} else {
			ended = append(ended, k)
			a.begin("HDEL", ":p:"+h.Location)
			a.add(holdField + h.HoldID)
		}
	}
	a.pairs("HSET", ":h", kv)
	a.pairs("ZADD", ":hx", expiring)
	a.pairs("ZREM", ":hx", ended)
}

// pruneStep is how far the dedupe window's start moves before the ids
// that left it are removed from Redis: the removal is one command, and an
// id out of the window counts as not applied whether it is still there or
// not.
const pruneStep = int64(time.Minute / time.Millisecond)

// dedupe adds the new dedupe ids, and removes those that left the window
// when its start has moved on by pruneStep since the last removal.
func (a *saveArgs) dedupe(st *State, window int64) {
	d := &st.d
	if len(d.seenAdd) == 0 {
		return
	}
	kv := make([]any, 0, 2*len(d.seenAdd))
	for id, et := range d.seenAdd {
		kv = append(kv, et, id)
	}
	a.pairs("ZADD", ":e", kv)
	if from := st.newest - window; from > 0 && from-st.prunedTo >= pruneStep {
		a.begin("ZREMRANGEBYSCORE", ":e")
		a.add("-inf", "("+strconv.FormatInt(from, 10))
		d.pruneTo = from
	}
}

// journals removes the movements the positions' journals dropped and adds
// the new ones.
func (a *saveArgs) journals(d *dirty) {
	for loc, del := range d.jDel {
		if len(del) > 0 {
			a.pairs("ZREM", ":j:"+loc, keysAny(del))
		}
	}
	for loc, add := range d.jAdd {
		if len(add) > 0 {
			kv := make([]any, 0, 2*len(add))
			for m, et := range add {
				kv = append(kv, et, m)
			}
			a.pairs("ZADD", ":j:"+loc, kv)
		}
	}
}

// lineage pushes the newest keep entries of the fold's lineage and trims
// the stored list to keep.
func (a *saveArgs) lineage(lineage []LineageEntry, keep int) {
	n := len(lineage)
	if n == 0 {
		return
	}
	from := max(0, n-keep)
	kv := make([]any, 0, n-from)
	for _, le := range lineage[from:] {
		kv = append(kv, a.value(func(b []byte) []byte { return appendLineage(b, le) }))
	}
	a.pairs("LPUSH", ":log", kv)
	a.begin("LTRIM", ":log")
	a.add(0, keep-1)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func keysAny(m map[string]bool) []any {
	out := make([]any, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// saveChunk bounds the states one round trip of Save stores: their
// arguments are built just before they are sent, so a poll of many SKUs
// never holds all of its writes' arguments at once.
const saveChunk = 256

// Save stores what each state changed since it was loaded or last stored,
// one guarded call per SKU, pipelined saveChunk SKUs to a round trip; hold
// decisions are published by the same call that stores them. stored[i] is
// false when the guard refused states[i]: another writer moved the SKU on (a
// zombie learns it lost its partition this way), and the state must be
// dropped and reloaded. A state without changes is not sent. An error may
// come after some states were stored: the caller drops them all and reloads
// them, as after any failed write. docs/design.md §6.3 explains the guard.
func (s *Store) Save(ctx context.Context, states []*State) (stored []bool, err error) {
	stored = make([]bool, len(states))
	keys := make([]string, 0, min(len(states), saveChunk))
	args := make([][]any, 0, min(len(states), saveChunk))
	idx := make([]int, 0, min(len(states), saveChunk))
	for from := 0; from < len(states); {
		keys, args, idx = keys[:0], args[:0], idx[:0]
		for ; from < len(states) && len(keys) < saveChunk; from++ {
			st := states[from]
			if !st.Dirty() {
				stored[from] = true
				continue
			}
			keys = append(keys, s.SKUKey(st.SKU))
			args = append(args, s.saveArgs(st))
			idx = append(idx, from)
		}
		if len(keys) == 0 {
			continue
		}
		cmds, err := evalAll(ctx, s.rdb, saveScript, keys, args)
		if err != nil {
			return nil, fmt.Errorf("save ledger: %w", err)
		}
		for j, c := range cmds {
			if n, _ := c.Int64(); n == 1 {
				stored[idx[j]] = true
				states[idx[j]].saved()
			}
		}
		clear(args) // the chunk's arguments go before the next chunk's are built
	}
	return stored, nil
}

// saved moves the state on after Redis stored its changes.
func (st *State) saved() {
	for _, loc := range st.d.touched {
		st.pos[loc].version++
	}
	for p, o := range st.marks {
		st.stored[p] = o
	}
	if st.d.pruneTo != 0 {
		st.prunedTo = st.d.pruneTo
	}
	// Redis has the applied ids and the closed lines now: the next fold
	// asks for the ones it needs (Prime).
	st.seen, st.swept = nil, 0
	st.shed(st.d.lines, st.d.po)
	st.shed(st.d.readLines, st.d.readPOs) // read back for an entry that left them closed
	st.d = dirty{}
}

// ClearOutbox removes published outputs (Outbox) by SKU and id, in one
// pipelined round trip.
func (s *Store) ClearOutbox(ctx context.Context, sent map[string][]string) error {
	if len(sent) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for sku, ids := range sent {
		pipe.HDel(ctx, s.SKUKey(sku)+":ob", ids...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("clear outbox: %w", err)
	}
	return nil
}

// The JSON of order lines, holds and lineage entries, written by hand: they
// are written for every SKU a poll changes. encoding/json reads them.

func appendOrderLine(b []byte, l *OrderLine) []byte {
	b = append(b, '{')
	if l.Location != "" {
		b = appendField(b, "loc", l.Location)
	}
	if l.Group != "" {
		b = appendField(b, "grp", l.Group)
	}
	b = appendInt(b, "o", l.Ordered)
	for _, f := range [...]struct {
		key string
		n   int64
	}{{"p", l.Picked}, {"s", l.Shipped}, {"c", int64(l.Cancelled)}} {
		if f.n != 0 {
			b = appendInt(b, f.key, f.n)
		}
	}
	if l.Channel != "" {
		b = appendField(b, "ch", l.Channel)
	}
	if l.At != 0 {
		b = appendInt(b, "t", l.At)
	}
	if l.Promise != "" {
		b = appendField(b, "pr", l.Promise)
	}
	if len(l.History) > 0 {
		b = append(b, `"ph":[`...)
		for _, h := range l.History {
			b = append(b, '{')
			b = appendField(b, "pr", h.Promise)
			b = appendField(b, "e", h.EventID)
			b = appendField(b, "ty", h.EntryType)
			b = appendInt(b, "t", h.At)
			b[len(b)-1] = '}'
			b = append(b, ',')
		}
		b[len(b)-1] = ']'
		b = append(b, ',')
	}
	b[len(b)-1] = '}'
	return b
}

// appendHoldField writes a hold as the position hash keeps it:
// "quantity:expiry", then ":channel" when it has one.
func appendHoldField(b []byte, h *Hold) []byte {
	b = strconv.AppendInt(b, h.Quantity, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, h.ExpMillis, 10)
	if h.Channel != "" {
		b = append(b, ':')
		b = append(b, h.Channel...)
	}
	return b
}

func appendHold(b []byte, h *Hold) []byte {
	b = append(b, '{')
	b = appendField(b, "loc", h.Location)
	b = appendInt(b, "q", h.Quantity)
	if h.ExpMillis != 0 {
		b = appendInt(b, "exp", h.ExpMillis)
	}
	b = appendField(b, "st", h.Status)
	b = appendInt(b, "atp", h.ATP)
	if h.Channel != "" {
		b = appendField(b, "ch", h.Channel)
	}
	if h.Epoch != 0 {
		b = appendInt(b, "ep", h.Epoch)
	}
	b[len(b)-1] = '}'
	return b
}

// appendLineage writes the entry as a JSON array, which keeps twenty of
// them per SKU small: [partition, offset, event_id, correlation_id, type, place].
func appendLineage(b []byte, le LineageEntry) []byte {
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(le.Partition), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, le.Offset, 10)
	for _, v := range [...]string{le.EventID, le.CorrelationID, le.EntryType, le.Place} {
		b = append(b, ',')
		b = appendString(b, v)
	}
	return append(b, ']')
}

// appendField writes "key":"value", with a trailing comma.
func appendField(b []byte, key, v string) []byte {
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	b = appendString(b, v)
	return append(b, ',')
}

// appendInt writes "key":n, with a trailing comma.
func appendInt(b []byte, key string, n int64) []byte {
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	b = strconv.AppendInt(b, n, 10)
	return append(b, ',')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
