package tail

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printer writes records, one line each.
type printer interface {
	begin() error
	print(record) error
}

// jsonPrinter writes one JSON object per line.
type jsonPrinter struct{ enc *json.Encoder }

func newJSONPrinter(w io.Writer) *jsonPrinter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &jsonPrinter{enc: enc}
}

// jsonRecord is a record's JSON line.
type jsonRecord struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp string `json:"timestamp"`
	// Key is null for a record without a key; a key that is not UTF-8
	// is in KeyBase64 instead.
	Key        *string           `json:"key"`
	KeyBase64  []byte            `json:"key_base64,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	DeadLetter *jsonDeadLetter   `json:"dead_letter,omitempty"`
	Type       string            `json:"type"`
	SchemaID   int               `json:"schema_id,omitempty"`
	Value      any               `json:"value"`
	// Error and the raw value are set when the value cannot be decoded.
	Error       *failure `json:"error,omitempty"`
	ValueBase64 []byte   `json:"value_base64,omitempty"`
}

// jsonDeadLetter is what a dead letter's headers say.
type jsonDeadLetter struct {
	Class           string `json:"class"`
	Message         string `json:"message"`
	SourceTopic     string `json:"source_topic"`
	SourcePartition int32  `json:"source_partition"`
	SourceOffset    int64  `json:"source_offset"`
	Time            string `json:"time,omitempty"`
	Replayed        bool   `json:"replayed,omitempty"`
}

func (p *jsonPrinter) begin() error { return nil }

func (p *jsonPrinter) print(rec record) error {
	r := rec.r
	out := jsonRecord{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: formatTime(r.Timestamp),
		Type:      rec.typ,
		SchemaID:  rec.schemaID,
		Value:     rec.value,
		Error:     rec.failure,
	}
	switch {
	case r.Key == nil:
	case utf8.Valid(r.Key):
		k := string(r.Key)
		out.Key = &k
	default:
		out.KeyBase64 = r.Key
	}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			out.Headers[h.Key] = string(h.Value) // the last of a repeated key wins, as deadletter.Header reads it
		}
	}
	if d := rec.dead; d != nil {
		out.DeadLetter = &jsonDeadLetter{Class: d.Class, Message: d.Message, SourceTopic: d.SourceTopic,
			SourcePartition: d.SourcePartition, SourceOffset: d.SourceOffset, Replayed: d.Replayed}
		if !d.Time.IsZero() {
			out.DeadLetter.Time = formatTime(d.Time)
		}
	}
	if rec.failure != nil {
		out.ValueBase64 = r.Value
	}
	return p.enc.Encode(out)
}

// tablePrinter writes one aligned line per record under a header line.
// The columns have fixed widths, as lines are written as records come.
type tablePrinter struct{ w io.Writer }

func newTablePrinter(w io.Writer) *tablePrinter { return &tablePrinter{w: w} }

const tableLine = "%-9s %-24s %-22s %-25s %s\n"

func (p *tablePrinter) begin() error {
	_, err := fmt.Fprintf(p.w, tableLine, "OFFSET", "TIME", "KEY", "TYPE", "SUMMARY")
	return err
}

func (p *tablePrinter) print(rec record) error {
	r := rec.r
	var s strings.Builder
	if d := rec.dead; d != nil {
		fmt.Fprintf(&s, "dead letter %s from %s %d:%d: %s | ", d.Class, d.SourceTopic, d.SourcePartition, d.SourceOffset, d.Message)
	}
	if f := rec.failure; f != nil {
		if f.Class != "" {
			s.WriteString(f.Class + ": ")
		}
		fmt.Fprintf(&s, "%s; %d bytes: %s", f.Reason, len(r.Value), shortHex(r.Value))
	} else {
		s.WriteString(rec.summary)
	}
	_, err := fmt.Fprintf(p.w, tableLine, fmt.Sprintf("%d:%d", r.Partition, r.Offset),
		r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"), tableKey(r.Key), rec.typ, s.String())
	return err
}

// maxHex bounds the raw bytes a table line shows.
const maxHex = 64

func shortHex(b []byte) string {
	if len(b) <= maxHex {
		return hex.EncodeToString(b)
	}
	return hex.EncodeToString(b[:maxHex]) + "…"
}

// tableKey shows a key as text when it is printable, else in hex.
func tableKey(k []byte) string {
	if k == nil {
		return "-"
	}
	if s := string(k); utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return "0x" + hex.EncodeToString(k)
}
