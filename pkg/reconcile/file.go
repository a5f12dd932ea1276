package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
)

// A snapshot file is a CSV export with a header naming the columns sku,
// location, quantity and optionally uom, in any order (case and surrounding
// spaces do not matter; other columns are ignored). It is read twice,
// streaming, never whole: ScanFile counts its lines and finds its locations
// and digest, for the start record; ReadFile turns each record into a
// SnapshotLine.
//
// A record the sender cannot read (wrong number of fields, a quantity that
// is not an integer, broken quoting) is still a line: it is sent with its
// Error set, so the run reports it as invalid_line with its line number.
// What the sender can read is not judged here (negative quantities, ids,
// units): the reconciler classes those, the same for every sender.

// FileInfo is what the first pass over a snapshot file finds.
type FileInfo struct {
	// Lines counts data records: the header and blank lines are not lines.
	Lines int64
	// Locations are the distinct valid location ids of the well-formed
	// lines, sorted.
	Locations []string
	// SHA256 is the hex digest of the file's bytes.
	SHA256 string
}

// Limits of reading a snapshot file: what a reader holds is bounded by
// them, whatever the file.
const (
	// DefaultMaxRecordBytes bounds one record: a line, or the lines a
	// quoted field spans. A snapshot line is some 50 bytes; a wide export
	// a few KiB.
	DefaultMaxRecordBytes = 64 << 10
	// DefaultMaxFileLocations bounds the distinct locations ScanFile
	// collects for the start record.
	DefaultMaxFileLocations = 10_000
)

// FileLimits bound what reading a snapshot file may hold in memory; zero
// fields take the defaults.
type FileLimits struct {
	// RecordBytes bounds one record (DefaultMaxRecordBytes). A longer
	// record fails the file, naming its line: encoding/csv would hold it
	// whole, and a quote left open makes the rest of the file one record.
	RecordBytes int
	// Locations bounds the distinct locations ScanFile collects
	// (DefaultMaxFileLocations).
	Locations int
}

func (lim FileLimits) withDefaults() FileLimits {
	if lim.RecordBytes <= 0 {
		lim.RecordBytes = DefaultMaxRecordBytes
	}
	if lim.Locations <= 0 {
		lim.Locations = DefaultMaxFileLocations
	}
	return lim
}

// ScanFile is FileLimits{}.Scan: the first pass, with the default limits.
func ScanFile(r io.Reader) (FileInfo, error) { return FileLimits{}.Scan(r) }

// ReadFile is FileLimits{}.Read: the second pass, with the default limits.
func ReadFile(r io.Reader, snapshotID string, fn func(*events.SnapshotLine) error) error {
	return FileLimits{}.Read(r, snapshotID, fn)
}

// Scan is the first pass over a snapshot file. It fails on a file it
// cannot read as a whole (no header, a required column missing, a quote
// left open to the end of the file, a record or a set of locations over
// the limits, an I/O error); malformed records only count as lines.
func (lim FileLimits) Scan(r io.Reader) (FileInfo, error) {
	lim = lim.withDefaults()
	h := sha256.New()
	tee := io.TeeReader(r, h)
	f, err := newFileReader(tee, lim.RecordBytes)
	if err != nil {
		return FileInfo{}, err
	}
	var info FileInfo
	locs := map[string]struct{}{}
	var l events.SnapshotLine
	for {
		err := f.next(&l)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return FileInfo{}, err
		}
		info.Lines++
		if l.Error != nil || !validID(l.Location) {
			continue
		}
		if _, ok := locs[l.Location]; !ok {
			if len(locs) == lim.Locations {
				return FileInfo{}, fmt.Errorf("snapshot file: line %d: more than %d distinct locations (the limit); "+
					"a snapshot covers fewer: split the file by location", l.Line, lim.Locations)
			}
			locs[strings.Clone(l.Location)] = struct{}{}
		}
	}
	// The digest covers every byte, whatever the CSV reader left unread.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return FileInfo{}, fmt.Errorf("read snapshot file: %w", err)
	}
	info.Locations = make([]string, 0, len(locs))
	for l := range locs {
		info.Locations = append(info.Locations, l)
	}
	slices.Sort(info.Locations)
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	return info, nil
}

// Read is the second pass: it calls fn with one SnapshotLine per data
// record, in file order, with snapshotID set. The line passed to fn is
// reused for the next record: fn must not keep it. Read fails where Scan
// does (after passing fn the record that ran to the end of the file, for
// an unclosed quote; before passing a record over the limit) and with
// fn's error.
func (lim FileLimits) Read(r io.Reader, snapshotID string, fn func(*events.SnapshotLine) error) error {
	f, err := newFileReader(r, lim.withDefaults().RecordBytes)
	if err != nil {
		return err
	}
	var l events.SnapshotLine
	for {
		err := f.next(&l)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		l.SnapshotID = snapshotID
		if err := fn(&l); err != nil {
			return err
		}
	}
}

// maxField bounds the text of a field carried in a line: a field broken by
// its quoting may hold much of the file, and a record must stay small. Ids
// are at most 64 bytes, so a clipped field is as invalid as the whole one.
const maxField = 256

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// fileReader reads a snapshot file's records as lines.
type fileReader struct {
	cr    *csv.Reader
	lim   *recordLimiter
	width int // fields in the header
	sku   int
	loc   int
	qty   int
	uom   int // -1: no uom column
	// openQuote is the last record's parse error when it was a quoted field
	// running over several lines: if the file ends right after it, the
	// quote was never closed and swallowed every line after its start.
	openQuote *csv.ParseError
}

func newFileReader(r io.Reader, maxRecord int) (*fileReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	lim := newRecordLimiter(br, maxRecord)
	cr := csv.NewReader(lim)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	f := &fileReader{cr: cr, lim: lim}
	if err := f.header(); err != nil {
		return nil, err
	}
	return f, nil
}

// header reads the first non-blank record and finds the columns.
func (f *fileReader) header() error {
	var hdr []string
	for {
		rec, err := f.read()
		if errors.Is(err, io.EOF) {
			return errors.New("snapshot file is empty: it needs a header line naming sku, location, quantity and optionally uom")
		}
		var long *RecordTooLongError
		if errors.As(err, &long) {
			return fmt.Errorf("snapshot file: header: %w", err)
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("snapshot file: header (line %d) is not valid CSV: %s", pe.StartLine, parseFault(pe))
		}
		if err != nil {
			return fmt.Errorf("read snapshot file: %w", err)
		}
		if !blank(rec) {
			hdr = rec
			break
		}
	}
	line, _ := f.cr.FieldPos(0)
	f.width = len(hdr)
	f.sku, f.loc, f.qty, f.uom = -1, -1, -1, -1
	for i, name := range hdr {
		var col *int
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "sku":
			col = &f.sku
		case "location":
			col = &f.loc
		case "quantity":
			col = &f.qty
		case "uom":
			col = &f.uom
		default:
			continue // other columns of the export are not ours
		}
		if *col >= 0 {
			return fmt.Errorf("snapshot file: header (line %d) names column %q twice (fields %d and %d)",
				line, strings.TrimSpace(name), *col+1, i+1)
		}
		*col = i
	}
	var missing []string
	for _, c := range []struct {
		name string
		idx  int
	}{{"sku", f.sku}, {"location", f.loc}, {"quantity", f.qty}} {
		if c.idx < 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("snapshot file: header (line %d) has no %s column (it needs sku, location and quantity, uom optional; it has %s)",
			line, strings.Join(missing, ", "), clip(strings.Join(hdr, ","), maxField))
	}
	return nil
}

// next reads the next data record into l; io.EOF at the end.
func (f *fileReader) next(l *events.SnapshotLine) error {
	for {
		rec, err := f.read()
		var long *RecordTooLongError
		if errors.As(err, &long) {
			return fmt.Errorf("snapshot file: %w", err)
		}
		if errors.Is(err, io.EOF) {
			if pe := f.openQuote; pe != nil {
				return fmt.Errorf("snapshot file: line %d: a quoted field opened on this line is never closed; "+
					"lines %d to %d were read as one field (check the quoting of line %d)", pe.StartLine, pe.StartLine, pe.Line, pe.StartLine)
			}
			return io.EOF
		}
		var pe *csv.ParseError
		if err != nil && !errors.As(err, &pe) {
			return fmt.Errorf("read snapshot file: %w", err)
		}
		if pe == nil && blank(rec) {
			continue
		}
		f.openQuote = nil
		if pe != nil && errors.Is(pe.Err, csv.ErrQuote) && pe.Line > pe.StartLine {
			f.openQuote = pe
		}
		f.fill(l, rec, pe)
		return nil
	}
}

// read reads the next record, of at most the limit's bytes. Once over the
// limit, the reader stays failed: what encoding/csv made of the part it
// read is not a record.
func (f *fileReader) read() ([]string, error) {
	f.lim.reset()
	rec, err := f.cr.Read()
	if f.lim.err != nil {
		return nil, f.lim.err
	}
	return rec, err
}

// fill makes rec, read with parse error pe (or nil), a line.
func (f *fileReader) fill(l *events.SnapshotLine, rec []string, pe *csv.ParseError) {
	get := func(i int) string {
		if i >= 0 && i < len(rec) {
			return clip(strings.TrimSpace(rec[i]), maxField)
		}
		return ""
	}
	*l = events.SnapshotLine{SKU: get(f.sku), Location: get(f.loc), UoM: get(f.uom)}
	if l.UoM == "" {
		l.UoM = "EA"
	}
	var fault string
	switch {
	case pe != nil:
		l.Line = int64(pe.StartLine)
		fault = "the line is not valid CSV: " + parseFault(pe)
	default:
		line, _ := f.cr.FieldPos(0)
		l.Line = int64(line)
		if len(rec) != f.width {
			fault = fmt.Sprintf("the line has %d fields, the header %d", len(rec), f.width)
			break
		}
		raw := get(f.qty)
		q, err := strconv.ParseInt(raw, 10, 64)
		switch {
		case err == nil:
		case raw == "":
			fault = "quantity is empty"
		case errors.Is(err, strconv.ErrRange):
			fault = fmt.Sprintf("quantity %q is out of range", clip(raw, 40))
		default:
			fault = fmt.Sprintf("quantity %q is not an integer", clip(raw, 40))
		}
		l.Quantity = q
	}
	if fault != "" {
		l.Quantity = 0
		l.Error = &fault
	}
}

// parseFault says what is wrong with a record encoding/csv refused.
func parseFault(pe *csv.ParseError) string {
	where := fmt.Sprintf("column %d", pe.Column)
	if pe.Line != pe.StartLine {
		where = fmt.Sprintf("line %d, column %d", pe.Line, pe.Column)
	}
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		return `a " in an unquoted field (` + where + `); quote the field and double the quote`
	case errors.Is(pe.Err, csv.ErrQuote):
		return `a quoted field is not closed properly (` + where + `): a closing " must be followed by a comma or the end of the line`
	}
	return pe.Err.Error() + " (" + where + ")"
}

// blank says a record holds nothing: an empty row of a spreadsheet export
// (",,,") is as blank as an empty line.
func blank(rec []string) bool {
	for _, s := range rec {
		if strings.TrimSpace(s) != "" {
			return false
		}
	}
	return true
}

// clip cuts s to at most n bytes, on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// SnapshotID is the default id of a snapshot file: its source, its as-of
// time and the start of its digest. The same file sent again for the same
// source and time gets the same id, so it is one run, not two; any other
// file, source or time gets another. The id is at most 64 of
// [A-Za-z0-9._-] (the source part is cleaned and shortened to fit).
func SnapshotID(source string, asOf time.Time, sha256hex string) string {
	digest := cleanID(sha256hex)
	if len(digest) > 12 {
		digest = digest[:12]
	}
	tail := "-" + asOf.UTC().Format("20060102T150405Z")
	if digest != "" {
		tail += "-" + digest
	}
	src := cleanID(source)
	if src == "" {
		src = "snapshot"
	}
	if len(src) > 64-len(tail) {
		src = src[:64-len(tail)]
	}
	return src + tail
}

func idChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// cleanID replaces every character ids do not allow with '_'.
func cleanID(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf && idChar(byte(r)) {
			b.WriteByte(byte(r))
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Send produces a snapshot to topic: start, then every line lines emits
// (with the start's snapshot id set on it), then an end record with the
// number of lines produced, all keyed by the snapshot id so they stay in
// order on one partition. Records are produced asynchronously, as many in
// flight as the client buffers (kgo.MaxBufferedRecords bounds the memory);
// the end is produced only once every line is acknowledged, so a snapshot
// that failed halfway has no end and its run comes out incomplete.
// progress, if not nil, is called now and then with the lines acknowledged
// so far, and once at the end. Send returns the lines acknowledged.
func Send(ctx context.Context, cl *kgo.Client, codec *avro.Codec, topic string, start *events.SnapshotStarted,
	lines func(emit func(*events.SnapshotLine) error) error, progress func(lines int64)) (int64, error) {
	if !validID(start.SnapshotID) {
		return 0, fmt.Errorf("snapshot id %q is not an id (1 to 64 of A-Z a-z 0-9 . _ -)", start.SnapshotID)
	}
	if progress == nil {
		progress = func(int64) {}
	}
	key := []byte(start.SnapshotID)
	var (
		failed atomic.Pointer[error]
		acked  atomic.Int64
	)
	fail := func(err error) { failed.CompareAndSwap(nil, &err) }
	firstErr := func() error {
		if p := failed.Load(); p != nil {
			return *p
		}
		return nil
	}
	startDone := func(_ *kgo.Record, err error) {
		if err != nil {
			fail(fmt.Errorf("produce the start of snapshot %s: %w", start.SnapshotID, err))
		}
	}
	lineDone := func(_ *kgo.Record, err error) {
		if err != nil {
			fail(fmt.Errorf("produce a line of snapshot %s: %w", start.SnapshotID, err))
			return
		}
		acked.Add(1)
	}

	b, err := codec.Encode(ctx, topic, start)
	if err != nil {
		return 0, fmt.Errorf("encode the start of snapshot %s: %w", start.SnapshotID, err)
	}
	cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: b}, startDone)

	var sent int64
	const every = 4096 // lines between progress calls
	emit := func(l *events.SnapshotLine) error {
		if err := firstErr(); err != nil {
			return err
		}
		l.SnapshotID = start.SnapshotID
		v, err := codec.AppendEncode(ctx, make([]byte, 0, 64+len(l.SKU)+len(l.Location)), topic, l)
		if err != nil {
			return fmt.Errorf("encode line %d: %w", l.Line, err)
		}
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: v}, lineDone)
		sent++
		if sent%every == 0 {
			progress(acked.Load())
		}
		return nil
	}
	lerr := lines(emit)
	// Deliver what was handed over, even after a failure: it is part of
	// the snapshot, and the client must not be left with it buffered.
	ferr := cl.Flush(ctx)
	progress(acked.Load())
	switch {
	case firstErr() != nil:
		return acked.Load(), firstErr()
	case lerr != nil:
		return acked.Load(), lerr
	case ferr != nil:
		return acked.Load(), fmt.Errorf("send snapshot %s: %w", start.SnapshotID, ferr)
	}
	end := &events.SnapshotEnded{SnapshotID: start.SnapshotID, LineCount: sent}
	if b, err = codec.Encode(ctx, topic, end); err != nil {
		return sent, fmt.Errorf("encode the end of snapshot %s: %w", start.SnapshotID, err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key, Value: b}).FirstErr(); err != nil {
		return sent, fmt.Errorf("produce the end of snapshot %s: %w", start.SnapshotID, err)
	}
	return sent, nil
}
