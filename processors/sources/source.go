// Package sources is the registration table of Stockflow's source events:
// one file per event type saying everything the normalizers do with it
// (the topic it belongs on, the document index lines it reads and records,
// how it is checked and turned into ledger entries) and a line of
// documentation, and one list (registry.go) naming them all. A test fails
// when a source schema in schemas/ has no registration, or a registration
// misses a step.
//
// The event types and their Avro codecs are in pkg/events, their schemas
// in schemas/. See docs/design.md for what each entry does to the ledger.
package sources

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// Env is what a source event's normalization may use of the normalizer
// running it: the catalog's unit conversions, the transaction's view of
// the document index, and its hooks.
type Env interface {
	// ToBase converts q in uom to sku's base unit; field names the
	// quantity in the error (a Reject) when the unit is unknown.
	ToBase(ctx context.Context, field, sku string, q int64, uom string) (int64, error)
	// Lines are the index lines of a document, as the transaction sees
	// them (nil: none).
	Lines(ledger.Doc) ([]ledger.IndexedLine, error)
	// Record records a document's lines in the index, with the
	// transaction's ledger entries.
	Record(ledger.Doc, []ledger.IndexedLine)
	// POAcknowledged tells the normalizer's hooks of an acknowledged PO
	// line, with the time since its release (0: unknown).
	POAcknowledged(supplier, status string, turnaround time.Duration)
}

// Def registers one source event type E (a pointer to its pkg/events
// struct). Every field is required but Reads and Example.
type Def[E events.Source] struct {
	// Doc says in a sentence what the event does to the ledger.
	Doc string
	// Topic is the source topic the event belongs on; a record of it
	// found on another topic is dead-lettered (wrong_topic).
	Topic func(config.Topics) string
	// Summary says in a line what one event says (stockflow tail's table).
	Summary func(e E) string
	// Example is a valid event of the type that needs nothing in the
	// document index, for the registration's tests when the simulator
	// sends none. Nil: the simulator sends the type.
	Example func() E
	// Reads names the document whose index lines Normalize looks up, so a
	// transaction reads them all in one round trip before it normalizes;
	// ok false when e reads none. Nil: the event type reads none.
	Reads func(e E) (d ledger.Doc, ok bool)
	// Normalize checks e (a Reject names the field and the rule it
	// breaks) and turns it into ledger entries. r is the record it came
	// in, whose place the entries carry.
	Normalize func(ctx context.Context, env Env, r *kgo.Record, e E) ([]*events.LedgerEntry, error)
}

// Source is a registered source event type.
type Source struct {
	// Name is the event's Avro full name.
	Name string
	// Doc says in a sentence what the event does to the ledger.
	Doc string

	newEvent  func() events.Source
	example   func() events.Source
	topic     func(config.Topics) string
	summary   func(events.Source) string
	reads     func(events.Source) (ledger.Doc, bool)
	normalize func(context.Context, Env, *kgo.Record, events.Source) ([]*events.LedgerEntry, error)
}

// Register makes a Source of its definition. It panics on a missing step:
// a registration is code, and the package's tests build them all.
func Register[E events.Source](d Def[E]) *Source {
	t := reflect.TypeFor[E]()
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("sources: %v is not a pointer to an event struct", t))
	}
	newEvent := func() events.Source { return reflect.New(t.Elem()).Interface().(E) }
	name := newEvent().AvroName()
	if d.Doc == "" || d.Topic == nil || d.Summary == nil || d.Normalize == nil {
		panic(fmt.Sprintf("sources: %s needs its Doc, Topic, Summary and Normalize", name))
	}
	s := &Source{Name: name, Doc: d.Doc, newEvent: newEvent, topic: d.Topic,
		summary: func(ev events.Source) string { return d.Summary(ev.(E)) },
		normalize: func(ctx context.Context, env Env, r *kgo.Record, ev events.Source) ([]*events.LedgerEntry, error) {
			return d.Normalize(ctx, env, r, ev.(E))
		},
	}
	if d.Example != nil {
		s.example = func() events.Source { return d.Example() }
	}
	if d.Reads != nil {
		s.reads = func(ev events.Source) (ledger.Doc, bool) { return d.Reads(ev.(E)) }
	}
	return s
}

// New returns a zero event of the type.
func (s *Source) New() events.Source { return s.newEvent() }

// Example is the registration's example event, nil when it has none.
func (s *Source) Example() events.Source {
	if s.example == nil {
		return nil
	}
	return s.example()
}

// Summary says in a line what ev says.
func (s *Source) Summary(ev events.Source) string { return s.summary(ev) }

// Topic is the source topic the event belongs on.
func (s *Source) Topic(t config.Topics) string { return s.topic(t) }

// Reads names the document whose index lines normalizing ev looks up.
func (s *Source) Reads(ev events.Source) (ledger.Doc, bool) {
	if s.reads == nil {
		return ledger.Doc{}, false
	}
	d, ok := s.reads(ev)
	// A bad reference is rejected before any look-up.
	return d, ok && checkRef("id", d.ID) == nil
}

// Normalize checks ev, its metadata included, and turns it into ledger
// entries. A Reject means the record is bad; any other error is
// infrastructure.
func (s *Source) Normalize(ctx context.Context, env Env, r *kgo.Record, ev events.Source) ([]*events.LedgerEntry, error) {
	m := ev.Metadata()
	if m.EventID == "" || len(m.EventID) > 128 {
		return nil, Reject(ClassInvalid, "event_id: must be 1-128 characters")
	}
	if m.EventTime.IsZero() || m.EventTime.Unix() <= 0 {
		return nil, Reject(ClassInvalid, "event_time: must be set")
	}
	return s.normalize(ctx, env, r, ev)
}

// The classes under which the normalizers dead-letter a source record
// (pkg/deadletter keeps them with the rest of the dead-letter format).
const (
	ClassInvalid          = "invalid"           // a field fails validation
	ClassWrongTopic       = "wrong_topic"       // an event type that does not belong on the topic
	ClassUnknownUoM       = "unknown_uom"       // no conversion to the base unit, even after waiting
	ClassUnknownReference = "unknown_reference" // names an order or PO line never seen
)

// RejectError says a record can never be processed as it is: it goes to
// the dead-letter topic under Class.
type RejectError struct {
	Class string
	Msg   string
}

func (e *RejectError) Error() string { return e.Class + ": " + e.Msg }

// Reject is a RejectError of class with a message.
func Reject(class, format string, a ...any) error {
	return &RejectError{Class: class, Msg: fmt.Sprintf(format, a...)}
}
