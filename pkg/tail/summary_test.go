package tail

import (
	"testing"

	"github.com/stockflow/stockflow/pkg/events"
)

// Every record type has a table summary and a JSON form of its fields.
func TestEveryRecordTypeIsShown(t *testing.T) {
	for _, rec := range events.All() {
		t.Run(shortName(rec.AvroName()), func(t *testing.T) {
			if summary(rec) == "" {
				t.Errorf("no table summary for %s: add a case to summary", rec.AvroName())
			}
			o, ok := Fields(rec).(object)
			if !ok || len(o) == 0 {
				t.Errorf("Fields(%s) = %#v, want an object of its Avro fields", rec.AvroName(), Fields(rec))
			}
		})
	}
}
