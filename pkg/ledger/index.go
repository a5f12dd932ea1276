package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The normalizers keep an index of order lines and PO lines, because later
// events of a document (a cancellation, an acknowledgement, a close) name
// lines but not their SKU. Writes are idempotent: a normalizer that retries
// a batch writes the same fields again.
//
// Redis holds the index for lookups, one hash per document. The same lines
// also go to a compacted Kafka topic of the normalizers' own (IndexRecord),
// produced in the transaction that carries the document's ledger entries,
// so Redis can be brought back up to date from it after losing data
// (IndexCaughtUp). The ledger log itself is not enough for that: its PO_LINE
// entries carry quantities in base units but not the unit the PO line was
// in, and an acknowledgement's quantities are in that unit.

// Keys: "ord:<order id>" and "po:<po number>", one hash per document, and
// "idx:caughtup:<topic>", per partition of the index topic, the offset up to
// which the topic has been written back into this Redis.

// DocKind is the kind of an indexed document.
type DocKind uint8

// The kinds of indexed documents.
const (
	OrderDoc DocKind = iota + 1 // an order: lines by line id
	PODoc                       // a purchase order: lines by PO line number
)

// Doc names an indexed document.
type Doc struct {
	Kind DocKind
	ID   string // the order id or the PO number
}

func (s *Store) docKey(d Doc) string {
	if d.Kind == PODoc {
		return s.key("po:" + d.ID)
	}
	return s.key("ord:" + d.ID)
}

func (d Doc) String() string {
	if d.Kind == PODoc {
		return "purchase order " + strconv.Quote(d.ID)
	}
	return "order " + strconv.Quote(d.ID)
}

// IndexedLine is what the index remembers of a document line.
type IndexedLine struct {
	Line     string // order line id, or PO line number
	SKU      string
	Location string // empty when the order line is against a group
	Group    string
	UoM      string    // PO lines: the unit their quantities are in
	Released time.Time // PO lines: when the PO was released (event time)
}

func (l IndexedLine) encode() string {
	ms := ""
	if !l.Released.IsZero() {
		ms = strconv.FormatInt(l.Released.UnixMilli(), 10)
	}
	return l.SKU + "|" + l.Location + "|" + l.Group + "|" + l.UoM + "|" + ms
}

func decodeIndexed(line, v string) IndexedLine {
	parts := strings.SplitN(v, "|", 5)
	for len(parts) < 5 {
		parts = append(parts, "")
	}
	l := IndexedLine{Line: line, SKU: parts[0], Location: parts[1], Group: parts[2], UoM: parts[3]}
	if ms, err := strconv.ParseInt(parts[4], 10, 64); err == nil {
		l.Released = time.UnixMilli(ms).UTC()
	}
	return l
}

// IndexWrite is lines of one document to record.
type IndexWrite struct {
	Doc   Doc
	Lines []IndexedLine
}

// WriteIndex records every write in one pipelined round trip, in order: a
// later write of a line replaces an earlier one, other lines of the
// document stay.
func (s *Store) WriteIndex(ctx context.Context, writes []IndexWrite) error {
	pipe := s.rdb.Pipeline()
	for _, w := range writes {
		if len(w.Lines) == 0 {
			continue
		}
		args := make([]any, 0, 2*len(w.Lines))
		for _, l := range w.Lines {
			args = append(args, l.Line, l.encode())
		}
		pipe.HSet(ctx, s.docKey(w.Doc), args...)
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// IndexBatch is one batch's view of the index: the documents read for it,
// with the batch's own writes laid over them in order, and those writes
// until they are flushed. A line recorded earlier in the batch is seen by
// Lines, so an order accepted and cancelled in the same batch resolves.
// It is not safe for concurrent use.
type IndexBatch struct {
	s       *Store
	docs    map[Doc]map[string]IndexedLine // what Redis had, overlaid with the batch's writes
	pending []IndexWrite
}

// ReadIndex reads the lines of every document in docs in one pipelined
// round trip and returns the batch's view over them.
func (s *Store) ReadIndex(ctx context.Context, docs []Doc) (*IndexBatch, error) {
	b := &IndexBatch{s: s, docs: make(map[Doc]map[string]IndexedLine, len(docs))}
	if len(docs) == 0 {
		return b, nil
	}
	pipe := s.rdb.Pipeline()
	type read struct {
		doc Doc
		cmd *redis.MapStringStringCmd
	}
	reads := make([]read, 0, len(docs))
	seen := make(map[Doc]bool, len(docs))
	for _, d := range docs {
		if !seen[d] {
			seen[d] = true
			reads = append(reads, read{d, pipe.HGetAll(ctx, s.docKey(d))})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	for _, r := range reads {
		m := r.cmd.Val()
		lines := make(map[string]IndexedLine, len(m))
		for k, v := range m {
			lines[k] = decodeIndexed(k, v)
		}
		b.docs[r.doc] = lines
	}
	return b, nil
}

// ErrNotRead is returned by IndexBatch.Lines for a document that was not
// read for the batch: its lines are unknown, which is a caller's mistake,
// not a document the index lacks.
var ErrNotRead = errors.New("ledger: document not read for this batch")

// Lines returns the lines of d in line order (numeric when the line ids
// are numbers); none when the index does not know d.
func (b *IndexBatch) Lines(d Doc) ([]IndexedLine, error) {
	m, ok := b.docs[d]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotRead, d)
	}
	out := make([]IndexedLine, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	sortLines(out)
	return out, nil
}

// Record notes lines of d: later calls to Lines see them, and Flush writes
// them to Redis.
func (b *IndexBatch) Record(d Doc, lines []IndexedLine) {
	if len(lines) == 0 {
		return
	}
	if m, ok := b.docs[d]; ok {
		for _, l := range lines {
			m[l.Line] = l
		}
	}
	b.pending = append(b.pending, IndexWrite{Doc: d, Lines: slices.Clone(lines)})
}

// Pending returns the writes recorded and not yet flushed, in order.
func (b *IndexBatch) Pending() []IndexWrite { return b.pending }

// Flush writes the pending writes to Redis in one round trip. After an
// error it can be called again: the writes stay pending until one succeeds.
func (b *IndexBatch) Flush(ctx context.Context) error {
	if err := b.s.WriteIndex(ctx, b.pending); err != nil {
		return err
	}
	b.pending = nil
	return nil
}

func sortLines(ls []IndexedLine) {
	slices.SortFunc(ls, func(a, b IndexedLine) int {
		x, e1 := strconv.Atoi(a.Line)
		y, e2 := strconv.Atoi(b.Line)
		if e1 == nil && e2 == nil {
			return x - y
		}
		return strings.Compare(a.Line, b.Line)
	})
}

// IndexRecord returns the key and value of line l of d on the index topic.
// The key names the document and the line, so compaction keeps the latest
// record of each line as the Redis hash keeps the latest field; the value is
// the line as Redis holds it.
func IndexRecord(d Doc, l IndexedLine) (key, value []byte) {
	kind := "ord"
	if d.Kind == PODoc {
		kind = "po"
	}
	key = fmt.Appendf(nil, "%s:%d:%s:%s", kind, len(d.ID), d.ID, l.Line)
	return key, []byte(l.encode())
}

// ParseIndexRecord returns the document and line of an index topic record.
func ParseIndexRecord(key, value []byte) (Doc, IndexedLine, error) {
	bad := func(why string) (Doc, IndexedLine, error) {
		return Doc{}, IndexedLine{}, fmt.Errorf("index record key %q: %s", key, why)
	}
	k := string(key)
	kind, rest, ok := strings.Cut(k, ":")
	if !ok {
		return bad("no kind")
	}
	var d Doc
	switch kind {
	case "ord":
		d.Kind = OrderDoc
	case "po":
		d.Kind = PODoc
	default:
		return bad("unknown kind")
	}
	n, rest, ok := strings.Cut(rest, ":")
	size, err := strconv.Atoi(n)
	if !ok || err != nil || size < 1 || size >= len(rest) || rest[size] != ':' {
		return bad("bad document id")
	}
	d.ID, rest = rest[:size], rest[size+1:]
	if rest == "" {
		return bad("no line")
	}
	if value == nil {
		return bad("no value")
	}
	return d, decodeIndexed(rest, string(value)), nil
}

// IndexCaughtUp returns, per partition of the index topic, the offset below
// which every record of the topic has been written back into this Redis by
// a catch-up (none for a Redis that was never caught up, or that lost its
// data: then the whole topic is due; on a Redis Cluster, the lowest of the
// copies, so a shard that lost its lines has them caught up again). It says
// nothing of the index lines the normalizers wrote directly.
func (s *Store) IndexCaughtUp(ctx context.Context, topic string) (map[int32]int64, error) {
	m, err := s.readOffsets(ctx, "index catch-up offset", s.bookKeys("idx:caughtup:"+topic))
	if err != nil {
		return nil, fmt.Errorf("read index catch-up offsets: %w", err)
	}
	return m, nil
}

// RecordIndexCaughtUp records offsets as the index topic's caught-up
// offsets of their partitions. Call it only once every record below them
// has been written with WriteIndex. They are kept in the same Redis as the
// index, so a Redis that loses its data, or goes back in time (an older
// snapshot, a lost AOF tail), loses them with the lines they vouch for.
func (s *Store) RecordIndexCaughtUp(ctx context.Context, topic string, offsets map[int32]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(offsets))
	for p, o := range offsets {
		args = append(args, strconv.Itoa(int(p)), o)
	}
	pipe := s.rdb.Pipeline()
	for _, k := range s.bookKeys("idx:caughtup:" + topic) {
		pipe.HSet(ctx, k, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record index catch-up offsets: %w", err)
	}
	return nil
}
