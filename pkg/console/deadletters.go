package console

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stockflow/stockflow/pkg/tail"
	"github.com/stockflow/stockflow/processors"
)

// A dead letter's state. The dead-letter topic is the record of what
// failed; what was done about each one is kept in Redis, and a dead letter
// nobody acted on has no entry there: it is open.
const (
	stateOpen      = "open"
	stateReplayed  = "replayed"
	stateDiscarded = "discarded"
	stateAll       = "all"
)

// dlqStates are the state filter's choices, the default first.
var dlqStates = []string{stateOpen, stateReplayed, stateDiscarded, stateAll}

// maxListed bounds the dead letters one page lists, the newest, so that a
// flood of them neither exhausts memory nor makes a page nobody can read;
// the counts still cover them all.
const maxListed = 500

// Bounds on what a dead letter's details show of raw bytes and headers.
const (
	maxRawBytes    = 512
	maxHeaderChars = 1024
)

// dlqID names a dead letter by its place in the dead-letter topic.
type dlqID struct {
	Partition int32
	Offset    int64
}

func (id dlqID) String() string { return fmt.Sprintf("%d:%d", id.Partition, id.Offset) }

// Anchor is the id as an HTML id, which a colon would make awkward to
// select in CSS.
func (id dlqID) Anchor() string { return fmt.Sprintf("dlq-%d-%d", id.Partition, id.Offset) }

// parseDLQID reads "partition:offset".
func parseDLQID(s string) (dlqID, bool) {
	p, o, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return dlqID{}, false
	}
	pi, err1 := strconv.ParseInt(p, 10, 32)
	oi, err2 := strconv.ParseInt(o, 10, 64)
	if err1 != nil || err2 != nil || pi < 0 || oi < 0 {
		return dlqID{}, false
	}
	return dlqID{Partition: int32(pi), Offset: oi}, true
}

// dlqMark is what was done about a dead letter, by whom and when.
type dlqMark struct {
	State  string    `json:"state"`
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	// RecordMillis is the dead-letter record's timestamp. Offsets start
	// again at 0 when the topic is re-created; a mark whose record time is
	// not the record's belongs to a record that no longer exists.
	RecordMillis int64 `json:"record_ms,omitempty"`
}

// errNoStateStore refuses actions whose outcome could not be kept.
var errNoStateStore = errors.New("no Redis is configured to keep the dead letters' states")

func (c *Console) dlqStateKey() string { return c.cfg.Prefix + ":dlq:state" }

// loadMarks reads every recorded state in one HGETALL: the hash holds only
// the dead letters someone acted on, far fewer than the topic holds.
func (c *Console) loadMarks(ctx context.Context) (map[dlqID]dlqMark, error) {
	if c.cfg.Redis == nil {
		return nil, errNoStateStore
	}
	raw, err := c.cfg.Redis.HGetAll(ctx, c.dlqStateKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("read dead-letter states: %w", err)
	}
	out := make(map[dlqID]dlqMark, len(raw))
	for f, v := range raw {
		if id, ok := parseDLQID(f); ok {
			if m, ok := parseMark(v); ok {
				out[id] = m
			}
		}
	}
	return out, nil
}

// marksOf reads the states of ids in one HMGET; ids without one are open
// and absent from the map.
func (c *Console) marksOf(ctx context.Context, ids []dlqID) (map[dlqID]dlqMark, error) {
	if c.cfg.Redis == nil {
		return nil, errNoStateStore
	}
	out := map[dlqID]dlqMark{}
	if len(ids) == 0 {
		return out, nil
	}
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = id.String()
	}
	vals, err := c.cfg.Redis.HMGet(ctx, c.dlqStateKey(), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read dead-letter states: %w", err)
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			if m, ok := parseMark(s); ok {
				out[ids[i]] = m
			}
		}
	}
	return out, nil
}

func parseMark(s string) (dlqMark, bool) {
	var m dlqMark
	if json.Unmarshal([]byte(s), &m) != nil || (m.State != stateReplayed && m.State != stateDiscarded) {
		return dlqMark{}, false
	}
	return m, true
}

// setMarks records m for each dead letter, overwriting what was there: a
// replay is a fact whatever state the dead letter had. stamps gives each
// one's record time (see dlqMark.RecordMillis).
func (c *Console) setMarks(ctx context.Context, ids []dlqID, stamps map[dlqID]int64, m dlqMark) error {
	if c.cfg.Redis == nil {
		return errNoStateStore
	}
	const chunk = 500
	pipe := c.cfg.Redis.Pipeline()
	for start := 0; start < len(ids); start += chunk {
		var args []any
		for _, id := range ids[start:min(start+chunk, len(ids))] {
			mm := m
			mm.RecordMillis = stamps[id]
			b, _ := json.Marshal(mm)
			args = append(args, id.String(), string(b))
		}
		pipe.HSet(ctx, c.dlqStateKey(), args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record dead-letter states: %w", err)
	}
	return nil
}

// markIfOpen records m for id only if the dead letter has no state yet, so
// that of two admins acting at once the second learns what the first did
// instead of overwriting it.
func (c *Console) markIfOpen(ctx context.Context, id dlqID, stamp int64, m dlqMark) (bool, error) {
	if c.cfg.Redis == nil {
		return false, errNoStateStore
	}
	m.RecordMillis = stamp
	b, _ := json.Marshal(m)
	ok, err := c.cfg.Redis.HSetNX(ctx, c.dlqStateKey(), id.String(), string(b)).Result()
	if err != nil {
		return false, fmt.Errorf("record dead-letter state: %w", err)
	}
	return ok, nil
}

// dlqFilter is the exception queue page's filter. Zero fields match all;
// the state filter defaults to open.
type dlqFilter struct {
	Class       string
	SourceTopic string
	State       string
	Q           string
}

// filterFrom reads a filter from query or form values, normalizing what a
// hand-edited address might carry.
func filterFrom(v url.Values) dlqFilter {
	f := dlqFilter{
		Class:       clip(strings.TrimSpace(v.Get("class")), 200),
		SourceTopic: clip(strings.TrimSpace(v.Get("source_topic")), 249),
		State:       v.Get("state"),
		Q:           clip(strings.TrimSpace(v.Get("q")), 200),
	}
	switch f.State {
	case stateOpen, stateReplayed, stateDiscarded, stateAll:
	default:
		f.State = stateOpen
	}
	return f
}

// Encode is the filter as a query string, for links and redirects that
// keep it.
func (f dlqFilter) Encode() string {
	v := url.Values{}
	if f.Class != "" {
		v.Set("class", f.Class)
	}
	if f.SourceTopic != "" {
		v.Set("source_topic", f.SourceTopic)
	}
	if f.State != "" && f.State != stateOpen {
		v.Set("state", f.State)
	}
	if f.Q != "" {
		v.Set("q", f.Q)
	}
	return v.Encode()
}

// Narrowed says whether anything but the default state filter is set.
func (f dlqFilter) Narrowed() bool {
	return f.Class != "" || f.SourceTopic != "" || f.Q != "" || f.State != stateOpen
}

// matches is the filter but for its text search, which may need the
// record decoded.
func (f dlqFilter) matches(d *deadLetter) bool {
	return (f.Class == "" || d.Class == f.Class) &&
		(f.SourceTopic == "" || d.SourceTopic == f.SourceTopic) &&
		(f.State == stateAll || d.State == f.State)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// deadLetter is one dead letter as the page shows it.
type deadLetter struct {
	processors.DeadLetter
	ID    dlqID
	State string
	Mark  *dlqMark
	Key   string
	// ReplayOf is set when this record was itself a replay, of the dead
	// letter it names, and failed again.
	ReplayOf string
	Headers  []dlqHeader
	// Type and JSON are the decoded record; DecodeError says why there is
	// none, and RawHex (and RawText, when the bytes are text) show the
	// first maxRawBytes of the value instead.
	Type, JSON   string
	DecodeError  string
	RawHex       string
	RawText      string
	RawLen       int
	RawTruncated bool

	decoded bool
}

type dlqHeader struct{ Key, Value string }

// describe makes the page's view of a dead letter, in the state marks say.
func describe(d processors.DeadLetter, marks map[dlqID]dlqMark) *deadLetter {
	dl := &deadLetter{DeadLetter: d, ID: dlqID{d.Partition, d.Offset}, State: stateOpen, Key: printable(d.Record.Key, 200)}
	if dl.Time.IsZero() {
		dl.Time = d.Record.Timestamp
	}
	if m, ok := marks[dl.ID]; ok && (m.RecordMillis == 0 || m.RecordMillis == d.Record.Timestamp.UnixMilli()) {
		dl.State, dl.Mark = m.State, &m
	}
	dl.ReplayOf, _ = processors.Header(d.Record, processors.HeaderReplay)
	return dl
}

// printable shows bytes as text when they are printable UTF-8, else as
// hex, in at most n characters.
func printable(b []byte, n int) string {
	s := string(b)
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != '\t' }) >= 0 {
		s = "0x" + hex.EncodeToString(b)
	}
	if len(s) > n {
		return clip(s, n) + "…"
	}
	return s
}

// decode fills in the dead letter's headers and its record, decoded to
// JSON where the codec can, else its raw bytes and why. It decodes once.
func (c *Console) decode(ctx context.Context, d *deadLetter) {
	if d.decoded {
		return
	}
	d.decoded = true
	for _, h := range d.Record.Headers {
		d.Headers = append(d.Headers, dlqHeader{h.Key, printable(h.Value, maxHeaderChars)})
	}
	v := d.Record.Value
	switch {
	case v == nil:
		d.DecodeError = "the record has no value"
		return
	case c.cfg.Codec == nil:
		d.DecodeError = "the console has no codec to decode records with"
	default:
		rec, err := c.cfg.Codec.Decode(ctx, v)
		if err != nil {
			d.DecodeError = err.Error()
			break
		}
		b, err := recordJSON(rec)
		if err != nil {
			d.DecodeError = "decoded as " + rec.AvroName() + " but not shown as JSON: " + err.Error()
			break
		}
		d.Type, d.JSON = rec.AvroName(), string(b)
		return
	}
	d.RawLen = len(v)
	raw := v
	if len(raw) > maxRawBytes {
		raw, d.RawTruncated = raw[:maxRawBytes], true
	}
	d.RawHex = hex.EncodeToString(raw)
	if utf8.Valid(raw) && bytes.IndexFunc(raw, func(r rune) bool { return !unicode.IsPrint(r) && !unicode.IsSpace(r) }) < 0 {
		d.RawText = string(raw)
	}
}

// search reports whether the dead letter's key, error or decoded record
// contains q, which is lower case. It decodes only when the cheaper
// fields do not match.
func (c *Console) search(ctx context.Context, d *deadLetter, q string) bool {
	for _, s := range []string{d.Key, d.Message, d.Class, d.SourceTopic} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	c.decode(ctx, d)
	return strings.Contains(strings.ToLower(d.JSON), q) || strings.Contains(strings.ToLower(d.RawText), q)
}

// dlqGroup is the dead letters of one class from one source topic.
type dlqGroup struct {
	Class, SourceTopic        string
	Open, Replayed, Discarded int
	Newest                    time.Time
	// Listed are the group's dead letters the page lists, newest first.
	Listed []*deadLetter
}

func (g *dlqGroup) count(d *deadLetter) {
	switch d.State {
	case stateReplayed:
		g.Replayed++
	case stateDiscarded:
		g.Discarded++
	default:
		g.Open++
	}
	if d.Time.After(g.Newest) {
		g.Newest = d.Time
	}
}

// dlqListing is what the exception queue page shows.
type dlqListing struct {
	// Groups are every class and source topic in the topic, newest first,
	// with their counts per state whatever the filter.
	Groups []*dlqGroup
	// Sections are the groups of the listed dead letters, in the order of
	// their newest.
	Sections []*dlqGroup
	Total    int // dead letters in the topic
	Matched  int // of which match the filter
	Listed   int // of which are listed: the newest maxListed
	Classes  []string
	Topics   []string
}

// listDeadLetters reads the dead-letter topic as it stands and lists the
// newest dead letters that match f, grouped by class and source topic.
// The topic is read whole, as the counts per group must cover it; only the
// listed dead letters are decoded, unless the search needs every record's.
func (c *Console) listDeadLetters(ctx context.Context, f dlqFilter) (*dlqListing, error) {
	if err := c.dlqConfigured(); err != nil {
		return nil, err
	}
	// A listing reads the whole dead-letter topic: two at a time, the
	// others wait their turn (or for their viewer to give up).
	select {
	case c.scans <- struct{}{}:
		defer func() { <-c.scans }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	marks, err := c.loadMarks(ctx)
	if err != nil {
		return nil, err
	}
	l := &dlqListing{}
	groups := map[[2]string]*dlqGroup{}
	q := strings.ToLower(f.Q)
	var kept []*deadLetter
	err = processors.ScanDeadLetters(ctx, c.cfg.Kafka, c.cfg.DLQTopic, processors.ReplayFilter{}, func(d processors.DeadLetter) error {
		dl := describe(d, marks)
		l.Total++
		k := [2]string{dl.Class, dl.SourceTopic}
		if groups[k] == nil {
			groups[k] = &dlqGroup{Class: dl.Class, SourceTopic: dl.SourceTopic}
		}
		groups[k].count(dl)
		if !f.matches(dl) || (q != "" && !c.search(ctx, dl, q)) {
			return nil
		}
		l.Matched++
		if kept = append(kept, dl); len(kept) >= 2*maxListed {
			kept = newest(kept, maxListed)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the dead-letter topic %s: %w", c.cfg.DLQTopic, err)
	}
	kept = newest(kept, maxListed)
	l.Listed = len(kept)
	l.Groups, l.Classes, l.Topics = sortGroups(groups)
	sections := map[[2]string]*dlqGroup{}
	for _, d := range kept {
		c.decode(ctx, d)
		k := [2]string{d.Class, d.SourceTopic}
		s := sections[k]
		if s == nil {
			g := groups[k]
			s = &dlqGroup{Class: g.Class, SourceTopic: g.SourceTopic, Open: g.Open, Replayed: g.Replayed, Discarded: g.Discarded, Newest: g.Newest}
			sections[k] = s
			l.Sections = append(l.Sections, s)
		}
		s.Listed = append(s.Listed, d)
	}
	return l, nil
}

func (c *Console) dlqConfigured() error {
	if c.cfg.DLQTopic == "" || len(c.cfg.Kafka) == 0 {
		return errors.New("the console is not configured with the brokers and dead-letter topic to read")
	}
	return nil
}

// newest sorts dead letters newest first and keeps the first n. Dead
// letters of the same time keep the topic's order, latest first.
func newest(ds []*deadLetter, n int) []*deadLetter {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.After(b.Time)
		}
		if a.Offset != b.Offset {
			return a.Offset > b.Offset
		}
		return a.Partition < b.Partition
	})
	if len(ds) > n {
		clear(ds[n:]) // let the records go
		ds = ds[:n]
	}
	return ds
}

// sortGroups orders the groups newest first and lists the classes and
// source topics present, sorted.
func sortGroups(m map[[2]string]*dlqGroup) (groups []*dlqGroup, classes, topics []string) {
	seenC, seenT := map[string]bool{}, map[string]bool{}
	for _, g := range m {
		groups = append(groups, g)
		if !seenC[g.Class] {
			seenC[g.Class] = true
			classes = append(classes, g.Class)
		}
		if !seenT[g.SourceTopic] {
			seenT[g.SourceTopic] = true
			topics = append(topics, g.SourceTopic)
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		if !groups[i].Newest.Equal(groups[j].Newest) {
			return groups[i].Newest.After(groups[j].Newest)
		}
		if groups[i].Class != groups[j].Class {
			return groups[i].Class < groups[j].Class
		}
		return groups[i].SourceTopic < groups[j].SourceTopic
	})
	sort.Strings(classes)
	sort.Strings(topics)
	return groups, classes, topics
}

// findDeadLetters reads the dead letters that f selects, in the states
// marks give them.
func (c *Console) findDeadLetters(ctx context.Context, f processors.ReplayFilter) ([]*deadLetter, error) {
	if err := c.dlqConfigured(); err != nil {
		return nil, err
	}
	var ds []processors.DeadLetter
	err := processors.ScanDeadLetters(ctx, c.cfg.Kafka, c.cfg.DLQTopic, f, func(d processors.DeadLetter) error {
		ds = append(ds, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the dead-letter topic %s: %w", c.cfg.DLQTopic, err)
	}
	ids := make([]dlqID, len(ds))
	for i, d := range ds {
		ids[i] = dlqID{d.Partition, d.Offset}
	}
	marks, err := c.marksOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*deadLetter, len(ds))
	for i, d := range ds {
		out[i] = describe(d, marks)
	}
	return out, nil
}

// recordJSON is a decoded record as indented JSON, as stockflow tail shows
// it: an object of its Avro fields in schema order, times in RFC 3339 UTC,
// absent optional fields null, bytes in base64.
func recordJSON(rec any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tail.Fields(rec)); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
