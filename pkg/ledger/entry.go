package ledger

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/stockflow/stockflow/pkg/events"
)

// Entry is a ledger entry with its place in the ledger log.
type Entry struct {
	*events.LedgerEntry
	Partition int32
	Offset    int64
}

// DedupeID identifies the business fact behind an entry: the source event
// and, for events split into several entries, which part of it. Produced
// twice, the same fact has the same id.
func DedupeID(e *events.LedgerEntry) string {
	b := make([]byte, 0, len(e.EventID)+32)
	b = append(b, e.EventID...)
	b = append(b, '|')
	b = append(b, e.EntryType...)
	b = append(b, '|')
	if e.LineID != nil {
		b = append(b, *e.LineID...)
	}
	b = append(b, '|')
	if e.POLine != nil {
		b = strconv.AppendInt(b, int64(*e.POLine), 10)
	}
	b = append(b, '|')
	if e.Location != nil {
		b = append(b, *e.Location...)
	} else if e.Group != nil {
		b = append(b, *e.Group...)
	}
	return string(b)
}

// appendJSON writes the entry as the JSON object apply.lua reads.
func appendJSON(b []byte, en Entry) []byte {
	e := en.LedgerEntry
	b = append(b, `{"t":`...)
	b = appendString(b, e.EntryType)
	b = append(b, `,"p":`...)
	b = strconv.AppendInt(b, int64(en.Partition), 10)
	b = append(b, `,"o":`...)
	b = strconv.AppendInt(b, en.Offset, 10)
	b = append(b, `,"id":`...)
	b = appendString(b, DedupeID(e))
	b = append(b, `,"eid":`...)
	b = appendString(b, e.EventID)
	b = append(b, `,"et":`...)
	b = strconv.AppendInt(b, e.EventTime.UnixMilli(), 10)
	b = append(b, `,"q":`...)
	b = strconv.AppendInt(b, e.Quantity, 10)
	b = optString(b, "cid", e.CorrelationID)
	b = optString(b, "l", e.Location)
	b = optString(b, "g", e.Group)
	b = optString(b, "oid", e.OrderID)
	b = optString(b, "lid", e.LineID)
	b = optString(b, "ch", e.Channel)
	b = optString(b, "po", e.PONumber)
	if e.POLine != nil {
		b = append(b, `,"pl":`...)
		b = strconv.AppendInt(b, int64(*e.POLine), 10)
	}
	b = optString(b, "asn", e.ASNID)
	b = optString(b, "st", e.Status)
	b = optDay(b, "ed", e.ExpectedDate)
	b = optMillis(b, "eta", e.ETA)
	b = optMillis(b, "ao", e.AsOf)
	b = optInt(b, "ss", e.SafetyStock)
	b = optInt(b, "rop", e.ReorderPoint)
	b = optString(b, "hid", e.HoldID)
	b = optInt(b, "ttl", e.TTLMillis)
	b = optString(b, "rt", e.ReplyTo)
	return append(b, '}')
}

func optString(b []byte, key string, v *string) []byte {
	if v == nil {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, *v)
}

func optInt(b []byte, key string, v *int64) []byte {
	if v == nil {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, *v, 10)
}

func optMillis(b []byte, key string, v *time.Time) []byte {
	if v == nil {
		return b
	}
	ms := v.UnixMilli()
	return optInt(b, key, &ms)
}

// optDay writes a date as days since the Unix epoch.
func optDay(b []byte, key string, v *time.Time) []byte {
	if v == nil {
		return b
	}
	d := v.UTC().Truncate(24*time.Hour).Unix() / 86400
	return optInt(b, key, &d)
}

const hex = "0123456789abcdef"

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
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
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
