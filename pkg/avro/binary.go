package avro

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// BinaryRecord is implemented by a record type with a hand-written Avro
// binary codec for its canonical schema. The Codec uses it instead of goavro
// and reflection to encode the type, and to decode records whose writer
// schema is the canonical one; records written with any other version of the
// schema still go through goavro and schema resolution.
//
// The methods deal in the Avro body only: the Codec writes and checks the
// wire header, picks the schema id and enforces MaxRecordBytes. Appending and
// reading the Avro types is done with AppendLong and friends and a Reader,
// which produce exactly the bytes goavro produces and accept exactly what
// goavro accepts.
type BinaryRecord interface {
	Record
	// AvroFingerprint is the fingerprint (see Fingerprint) of the schema
	// AppendAvro and UnmarshalAvro implement. New refuses the type unless it
	// is the canonical schema's, so a schema change cannot leave a
	// hand-written codec behind.
	AvroFingerprint() string
	// AppendAvro appends the record's Avro binary body to dst.
	AppendAvro(dst []byte) ([]byte, error)
	// UnmarshalAvro decodes one whole Avro binary body into the record. It
	// must not panic on any input, and returns a *DecodeError for input it
	// cannot read: a Reader does both.
	UnmarshalAvro(body []byte) error
}

// Fingerprint identifies a schema text for BinaryRecord: the SHA-256, in
// hex, of the schema's JSON with insignificant whitespace removed. Unlike
// Avro's parsing canonical form it keeps logical types and defaults, which
// decide how a hand-written codec maps Go values.
func Fingerprint(schema string) (string, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(schema)); err != nil {
		return "", fmt.Errorf("fingerprint schema: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// AppendLong appends an Avro long: zig-zag, then a base-128 varint.
func AppendLong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v)<<1^uint64(v>>63))
}

// AppendInt appends an Avro int. Its zig-zag form is the long's.
func AppendInt(dst []byte, v int32) []byte {
	return AppendLong(dst, int64(v))
}

// AppendString appends an Avro string: its length in bytes as a long, then
// the bytes.
func AppendString(dst []byte, s string) []byte {
	return append(AppendLong(dst, int64(len(s))), s...)
}

// AppendEnum appends the index of sym in symbols, the enum's symbols in
// schema order.
func AppendEnum(dst []byte, symbols []string, sym string) ([]byte, error) {
	for i, s := range symbols {
		if s == sym {
			return AppendLong(dst, int64(i)), nil
		}
	}
	return nil, fmt.Errorf("%q is not a symbol of the enum", sym)
}

// AppendTimestampMillis appends t as a timestamp-millis long. Like goavro it
// truncates to the millisecond within t's second, and wraps silently outside
// the ±292-million-year range of an int64 of milliseconds.
func AppendTimestampMillis(dst []byte, t time.Time) []byte {
	return AppendLong(dst, t.Unix()*1e3+int64(t.Nanosecond()/1e6))
}

// AppendDate appends t as a date int: days since 1970-01-01. Like goavro it
// divides t's Unix seconds by 86400, truncating toward zero, so a time other
// than midnight UTC before 1970 lands on the following day.
func AppendDate(dst []byte, t time.Time) ([]byte, error) {
	days := t.Unix() / 86400
	if days < math.MinInt32 || days > math.MaxInt32 {
		return nil, fmt.Errorf("date %s is out of the range of an Avro date", t.Format(time.DateOnly))
	}
	return AppendInt(dst, int32(days)), nil
}

// AppendBoolean appends an Avro boolean: one byte, 0 or 1.
func AppendBoolean(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendOptional appends a union of null and T, null first: index 0 when p
// is nil, else index 1 and *p written by appendT.
func AppendOptional[T any](dst []byte, p *T, appendT func([]byte, T) []byte) []byte {
	if p == nil {
		return append(dst, 0)
	}
	return appendT(append(dst, 2), *p)
}

// AppendOptionalDate is AppendOptional for a date, which can fail.
func AppendOptionalDate(dst []byte, p *time.Time) ([]byte, error) {
	if p == nil {
		return append(dst, 0), nil
	}
	return AppendDate(append(dst, 2), *p)
}

// AppendArray appends an Avro array as goavro writes it: the items in
// blocks of at most maxBlockCount (the limit New gives goavro), each block a
// positive item count then the items, and a 0 count to end the array. An
// empty array is the 0 alone.
func AppendArray[T any](dst []byte, items []T, appendItem func([]byte, T) ([]byte, error)) ([]byte, error) {
	for done := 0; done < len(items); {
		n := min(len(items)-done, maxBlockCount)
		dst = AppendLong(dst, int64(n))
		for i := done; i < done+n; i++ {
			var err error
			if dst, err = appendItem(dst, items[i]); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		done += n
	}
	return append(dst, 0), nil
}

// AppendMap appends an Avro map as goavro writes it: like an array (see
// AppendArray), each entry its key as a string then its value written by
// appendValue. An empty or nil map is the 0 count alone.
//
// Like goavro it writes the entries in the order a range over m gives them,
// which Go leaves unspecified: the bytes equal goavro's for a map of at most
// one entry, and otherwise hold the same entries, in an order that may differ
// from one call to the next.
func AppendMap[V any](dst []byte, m map[string]V, appendValue func([]byte, V) []byte) []byte {
	left := len(m)
	inBlock := 0
	for k, v := range m {
		if inBlock == 0 {
			inBlock = min(left, maxBlockCount)
			dst = AppendLong(dst, int64(inBlock))
		}
		dst = appendValue(AppendString(dst, k), v)
		inBlock--
		left--
	}
	return append(dst, 0)
}

// Reader reads the Avro binary body of one record, field by field in schema
// order. The first failure sticks: later reads return zero values and End
// returns it, so a decoder reads every field and checks once.
//
// A Reader never reads past its input and allocates nothing sized by the
// input's contents; it copies the body once, and every string it returns
// shares that copy (or is a copy of its own, from NewOwningReader). It
// accepts exactly what goavro accepts and fails with the class the Codec
// gives goavro's error: ClassTruncated when a value runs past the end,
// ClassCorrupt for a negative length, an enum or union index out of range,
// or trailing bytes.
type Reader struct {
	s   string
	off int
	err *DecodeError
	// own: every string returned is a copy of its own (NewOwningReader).
	own bool
}

// NewReader returns a Reader of body.
func NewReader(body []byte) Reader {
	return Reader{s: string(body)}
}

// NewOwningReader returns a Reader of body whose strings are each a copy
// of their own, sharing nothing: for records whose strings are kept long
// after the record (a ledger entry's SKU, order and location in the
// folder's SKU states), where a shared copy would keep the whole record
// alive for as long as any one of its strings.
func NewOwningReader(body []byte) Reader {
	return Reader{s: string(body), own: true}
}

// End returns the first failure, or a ClassCorrupt error when bytes are left
// over after the last field.
func (r *Reader) End() error {
	if r.err != nil {
		return r.err
	}
	if n := len(r.s) - r.off; n != 0 {
		return &DecodeError{Class: ClassCorrupt, Detail: fmt.Sprintf("%d trailing bytes", n)}
	}
	return nil
}

func (r *Reader) fail(class Class, field, format string, args ...any) {
	if r.err == nil {
		r.err = &DecodeError{Class: class, Detail: field + ": " + fmt.Sprintf(format, args...)}
	}
}

// varint reads a base-128 varint as goavro does: bits beyond the 64th are
// dropped rather than rejected, so a varint is as long as its continuation
// bits say.
func (r *Reader) varint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	var shift uint
	for i := r.off; i < len(r.s); i++ {
		b := r.s[i]
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			r.off = i + 1
			return v
		}
		shift += 7
	}
	r.fail(ClassTruncated, field, "varint runs past the end of the record")
	return 0
}

// ReadLong reads an Avro long.
func (r *Reader) ReadLong(field string) int64 {
	u := r.varint(field)
	return int64(u>>1) ^ -int64(u&1)
}

// ReadInt reads an Avro int. Like goavro it keeps the low 32 bits of a
// varint that encodes a wider value.
func (r *Reader) ReadInt(field string) int32 {
	u := r.varint(field)
	return int32(u>>1) ^ -int32(u&1)
}

// ReadString reads an Avro string. Its bytes are not checked to be UTF-8,
// as goavro does not check them.
func (r *Reader) ReadString(field string) string {
	n := r.ReadLong(field)
	if r.err != nil {
		return ""
	}
	if n < 0 {
		r.fail(ClassCorrupt, field, "negative string length %d", n)
		return ""
	}
	if left := len(r.s) - r.off; n > int64(left) {
		r.fail(ClassTruncated, field, "string of %d bytes, %d left in the record", n, left)
		return ""
	}
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	if r.own {
		return strings.Clone(s)
	}
	return s
}

// ReadEnum reads an Avro enum and returns its symbol from symbols, the
// enum's symbols in schema order.
func (r *Reader) ReadEnum(field string, symbols []string) string {
	i := r.ReadLong(field)
	if r.err != nil {
		return ""
	}
	if i < 0 || i >= int64(len(symbols)) {
		r.fail(ClassCorrupt, field, "enum index %d out of range [0, %d)", i, len(symbols))
		return ""
	}
	return symbols[i]
}

// ReadTimestampMillis reads a timestamp-millis long as a time in UTC.
func (r *Reader) ReadTimestampMillis(field string) time.Time {
	ms := r.ReadLong(field)
	if r.err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// ReadDate reads a date int as midnight UTC of that day.
func (r *Reader) ReadDate(field string) time.Time {
	days := r.ReadInt(field)
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(int64(days)*86400, 0).UTC()
}

// ReadBoolean reads an Avro boolean: one byte, 0 or 1 (goavro refuses any
// other).
func (r *Reader) ReadBoolean(field string) bool {
	if r.err != nil {
		return false
	}
	if r.off >= len(r.s) {
		r.fail(ClassTruncated, field, "boolean runs past the end of the record")
		return false
	}
	b := r.s[r.off]
	if b > 1 {
		r.fail(ClassCorrupt, field, "boolean byte %d is neither 0 nor 1", b)
		return false
	}
	r.off++
	return b == 1
}

// ReadPresent reads the index of a union of null and one other type, null
// first, and says whether the value is there: it is read next (a record's
// fields, or by one of the ReadOptional methods below).
func (r *Reader) ReadPresent(field string) bool {
	i := r.ReadLong(field)
	if r.err != nil {
		return false
	}
	if i != 0 && i != 1 {
		r.fail(ClassCorrupt, field, "union index %d out of range [0, 2)", i)
		return false
	}
	return i == 1
}

// The ReadOptional methods read a union of null and a type, null first.
// They return nil for null; otherwise they store the value in *into and
// return into, so a decoder can keep all its optional values in one
// allocation.

// ReadOptionalString reads a union of null and string.
func (r *Reader) ReadOptionalString(field string, into *string) *string {
	if !r.ReadPresent(field) {
		return nil
	}
	*into = r.ReadString(field)
	return into
}

// ReadOptionalInt reads a union of null and int.
func (r *Reader) ReadOptionalInt(field string, into *int32) *int32 {
	if !r.ReadPresent(field) {
		return nil
	}
	*into = r.ReadInt(field)
	return into
}

// ReadOptionalLong reads a union of null and long.
func (r *Reader) ReadOptionalLong(field string, into *int64) *int64 {
	if !r.ReadPresent(field) {
		return nil
	}
	*into = r.ReadLong(field)
	return into
}

// ReadOptionalTimestampMillis reads a union of null and timestamp-millis.
func (r *Reader) ReadOptionalTimestampMillis(field string, into *time.Time) *time.Time {
	if !r.ReadPresent(field) {
		return nil
	}
	*into = r.ReadTimestampMillis(field)
	return into
}

// ReadOptionalDate reads a union of null and date.
func (r *Reader) ReadOptionalDate(field string, into *time.Time) *time.Time {
	if !r.ReadPresent(field) {
		return nil
	}
	*into = r.ReadDate(field)
	return into
}

// ReadBlockCount reads the item count that starts a block of an Avro array
// and returns how many items follow it before the next count. It returns 0
// at the end of the array, and once the Reader has failed. A decoder reads
// an array as:
//
//	for n := r.ReadBlockCount("items"); n > 0; n = r.ReadBlockCount("items") {
//		items = slices.Grow(items, r.Fit(n, minItemBytes))
//		for ; n > 0 && !r.Failed(); n-- {
//			items = append(items, readItem(&r))
//		}
//	}
//
// It reads what goavro reads: any number of blocks until a 0 count. A
// negative count is followed by the block's size in bytes, which goavro
// skips without checking, and so does ReadBlockCount. A count beyond
// maxBlockCount (the limit New gives goavro) is ClassCorrupt. A count within
// it may still be more items than the record holds; the items then run out
// and fail as ClassTruncated, like goavro's.
func (r *Reader) ReadBlockCount(field string) int {
	n := r.ReadLong(field)
	if r.err != nil {
		return 0
	}
	if n < 0 {
		if n == math.MinInt64 {
			r.fail(ClassCorrupt, field, "block count %d has no positive equivalent", n)
			return 0
		}
		n = -n
		if r.ReadLong(field); r.err != nil {
			return 0
		}
	}
	if n > maxBlockCount {
		r.fail(ClassCorrupt, field, "block count %d exceeds the limit of %d", n, maxBlockCount)
		return 0
	}
	return int(n)
}

// Fit returns how many of n items, each taking at least minItemBytes on the
// wire, the bytes left can hold: the capacity to allocate for a block, which
// a count read off the wire cannot inflate.
func (r *Reader) Fit(n, minItemBytes int) int {
	return min(n, (len(r.s)-r.off)/max(minItemBytes, 1))
}

// Failed says whether a read has failed, so that a decoder can stop reading
// the items of a block early.
func (r *Reader) Failed() bool {
	return r.err != nil
}

// ReadArray reads an Avro array, every block that ReadBlockCount reads, each
// item read by readItem, which is given field. minItemBytes is the fewest
// bytes an item takes on the wire (see Fit). An empty array is nil, as the
// goavro path decodes it.
func ReadArray[T any](r *Reader, field string, minItemBytes int, readItem func(*Reader, string) T) []T {
	var items []T
	for n := r.ReadBlockCount(field); n > 0; n = r.ReadBlockCount(field) {
		items = slices.Grow(items, r.Fit(n, minItemBytes))
		for ; n > 0 && !r.Failed(); n-- {
			items = append(items, readItem(r, field))
		}
	}
	if r.Failed() {
		return nil
	}
	return items
}

// ReadMap reads an Avro map: blocks as ReadArray reads them, each entry its
// key as a string then its value read by readValue, which is given field.
// minValueBytes is the fewest bytes a value takes on the wire. The map is
// never nil, as the goavro path decodes it, and a key that comes twice is
// ClassCorrupt, as goavro refuses it.
func ReadMap[V any](r *Reader, field string, minValueBytes int, readValue func(*Reader, string) V) map[string]V {
	var m map[string]V
	for n := r.ReadBlockCount(field); n > 0; n = r.ReadBlockCount(field) {
		if m == nil {
			m = make(map[string]V, r.Fit(n, 1+minValueBytes))
		}
		for ; n > 0 && !r.Failed(); n-- {
			k := r.ReadString(field)
			if _, dup := m[k]; dup && !r.Failed() {
				r.fail(ClassCorrupt, field, "duplicate key %q", k)
				break
			}
			v := readValue(r, field)
			if r.Failed() {
				break
			}
			m[k] = v
		}
	}
	if r.Failed() {
		return nil
	}
	if m == nil {
		m = map[string]V{}
	}
	return m
}
