package console

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/tail"
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

// Bounds on what a listed dead letter keeps and shows: the raw bytes of a
// value that is not shown decoded, each header, how many headers, the
// value it decodes (a larger one shows only its first bytes), the decoded
// JSON, and how many class and source topic pairs are counted apart.
const (
	maxRawBytes    = 512
	maxHeaderChars = 1024
	maxHeaders     = 32
	maxDecodeBytes = 32 << 10
	maxJSONChars   = 32 << 10
	maxGroups      = 500
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

func (c *Console) dlqStateKey() string { return ledger.NewKeys(c.cfg.Prefix).DeadLetterState() }

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
	// Before is the page's place: it lists the dead letters after this
	// one, newest first (see dlqCursor); "" lists from the newest.
	Before string
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
	if _, ok := parseCursor(v.Get("before")); ok {
		f.Before = v.Get("before")
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
	if f.Before != "" {
		v.Set("before", f.Before)
	}
	return v.Encode()
}

// pageURL is the page of the filter's dead letters after before ("": the
// first page).
func (f dlqFilter) pageURL(before string) template.URL {
	f.Before = before
	q := f.Encode()
	if q == "" {
		return "/console/exceptions"
	}
	return template.URL("/console/exceptions?" + q)
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

// deadLetter is one dead letter as the page shows it. A listed one is a
// summary (summarize): it keeps no reference to the record, only its
// fields clipped to their bounds.
type deadLetter struct {
	deadletter.DeadLetter
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

	summarized, decoded bool
	hasValue            bool
	// value is a copy of a value of up to maxDecodeBytes, to decode;
	// preview the first maxRawBytes of a larger one. Both go once decoded.
	value, preview []byte
}

type dlqHeader struct{ Key, Value string }

// describe makes the page's view of a dead letter, in the state marks say.
func describe(d deadletter.DeadLetter, marks map[dlqID]dlqMark) *deadLetter {
	dl := &deadLetter{DeadLetter: d, ID: dlqID{d.Partition, d.Offset}, State: stateOpen, Key: printable(d.Record.Key, 200)}
	if dl.Time.IsZero() {
		dl.Time = d.Record.Timestamp
	}
	if m, ok := marks[dl.ID]; ok && (m.RecordMillis == 0 || m.RecordMillis == d.Record.Timestamp.UnixMilli()) {
		dl.State, dl.Mark = m.State, &m
	}
	dl.ReplayOf, _ = deadletter.Header(d.Record, deadletter.HeaderReplay)
	return dl
}

// printable shows bytes as text when they are printable UTF-8, else as
// hex, in at most n characters; it looks at no more bytes than it shows.
func printable(b []byte, n int) string {
	more := len(b) > n
	if more {
		b = b[:n]
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1] // a character cut in two
		}
	}
	s := string(b)
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != '\t' }) >= 0 {
		k := min(len(b), max(n-2, 0)/2)
		more = more || k < len(b)
		s = "0x" + hex.EncodeToString(b[:k])
	}
	if more {
		return s + "…"
	}
	return s
}

// summarize makes d a summary that keeps nothing of its record but its
// fields, clipped, each a copy: a string cut from a longer one would keep
// the longer one in memory.
func summarize(d *deadLetter) {
	if d.summarized {
		return
	}
	d.summarized = true
	r := d.Record
	d.Class, d.SourceTopic = strings.Clone(clip(d.Class, 200)), strings.Clone(clip(d.SourceTopic, 249))
	d.Message, d.ReplayOf = strings.Clone(clip(d.Message, maxHeaderChars)), strings.Clone(clip(d.ReplayOf, 200))
	for i, h := range r.Headers {
		if i == maxHeaders {
			d.Headers = append(d.Headers, dlqHeader{"…", fmt.Sprintf("%d more headers", len(r.Headers)-maxHeaders)})
			break
		}
		d.Headers = append(d.Headers, dlqHeader{printable([]byte(h.Key), 200), printable(h.Value, maxHeaderChars)})
	}
	d.hasValue, d.RawLen = r.Value != nil, len(r.Value)
	if len(r.Value) <= maxDecodeBytes {
		d.value = bytes.Clone(r.Value)
	} else {
		d.preview = bytes.Clone(r.Value[:maxRawBytes])
	}
	d.Record = nil
}

// decode fills in a summary's record, decoded to JSON where the codec
// can, else its first raw bytes and why. It decodes once.
func (c *Console) decode(ctx context.Context, d *deadLetter) {
	if d.decoded {
		return
	}
	summarize(d)
	d.decoded = true
	raw := d.preview
	switch {
	case !d.hasValue:
		d.DecodeError = "the record has no value"
		return
	case d.value == nil:
		d.DecodeError = fmt.Sprintf("its %s bytes are more than the %s this page decodes", formatNumber(d.RawLen), formatNumber(maxDecodeBytes))
	case c.cfg.Codec == nil:
		d.DecodeError = "the console has no codec to decode records with"
	default:
		if c.decodeJSON(ctx, d) {
			d.value = nil
			return
		}
	}
	if raw == nil {
		raw = d.value[:min(len(d.value), maxRawBytes)]
	}
	d.RawTruncated = d.RawLen > len(raw)
	d.RawHex = hex.EncodeToString(raw)
	if utf8.Valid(raw) && bytes.IndexFunc(raw, func(r rune) bool { return !unicode.IsPrint(r) && !unicode.IsSpace(r) }) < 0 {
		d.RawText = string(raw)
	}
	d.value, d.preview = nil, nil
}

// decodeJSON decodes d's value to JSON, clipped to maxJSONChars, or says
// why not.
func (c *Console) decodeJSON(ctx context.Context, d *deadLetter) bool {
	rec, err := c.cfg.Codec.Decode(ctx, d.value)
	if err != nil {
		d.DecodeError = err.Error()
		return false
	}
	b, err := recordJSON(rec)
	if err != nil {
		d.DecodeError = "decoded as " + rec.AvroName() + " but not shown as JSON: " + err.Error()
		return false
	}
	d.Type, d.JSON = rec.AvroName(), string(b)
	if len(d.JSON) > maxJSONChars {
		d.JSON = strings.Clone(clip(d.JSON, maxJSONChars)) + "\n…"
	}
	return true
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
