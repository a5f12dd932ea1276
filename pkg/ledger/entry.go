package ledger

import (
	"strconv"

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
