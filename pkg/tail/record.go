package tail

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// Types shown for values that are not Avro records.
const (
	typeIndexLine   = "IndexLine"
	typeTombstone   = "tombstone"
	typeUndecodable = "undecodable"
)

// record is one Kafka record as tail shows it, decoded once for the filters
// and the printer.
type record struct {
	r *kgo.Record
	// dead describes a dead letter: a record with an error class header.
	dead *deadletter.DeadLetter
	// typ is the value's record name without its namespace, or one of the
	// type constants above.
	typ      string
	schemaID int
	value    any // the value's JSON form
	skus     []string
	summary  string
	failure  *failure // why the value could not be decoded
}

// failure is why a record's value could not be decoded.
type failure struct {
	Class  string `json:"class,omitempty"`
	Reason string `json:"reason"`
}

// decoder decodes the values of one topic: the document index has a layout
// of its own (pkg/ledger's), every other Stockflow topic holds Avro.
type decoder struct {
	codec *avro.Codec
	index bool
}

func (d decoder) decode(ctx context.Context, r *kgo.Record) record {
	rec := record{r: r}
	if _, ok := deadletter.Header(r, deadletter.HeaderErrorClass); ok {
		dl := deadletter.Describe(r)
		rec.dead = &dl
	}
	switch {
	case r.Value == nil:
		rec.typ = typeTombstone
		rec.summary = "the key is deleted"
	case d.index:
		doc, line, err := ledger.ParseIndexRecord(r.Key, r.Value)
		if err != nil {
			rec.typ, rec.failure = typeUndecodable, &failure{Reason: err.Error()}
			return rec
		}
		rec.typ = typeIndexLine
		rec.value = indexValue(doc, line)
		rec.skus = []string{line.SKU}
		rec.summary = indexSummary(doc, line)
	default:
		v, err := d.codec.Decode(ctx, r.Value)
		if err != nil {
			// A registry outage lands here too, without a class: tail
			// shows the record as it is rather than waiting.
			rec.typ, rec.failure = typeUndecodable, &failure{Class: string(avro.ClassOf(err)), Reason: err.Error()}
			return rec
		}
		rec.schemaID, _ = avro.SchemaID(r.Value)
		rec.typ = shortName(v.AvroName())
		rec.value = Fields(v)
		rec.skus = skus(v)
		rec.summary = summary(v)
	}
	return rec
}

// hasSKU reports whether the record is about sku. Without a decoded value
// the key tells: source and output records are keyed by SKU, availability
// by SKU|LOCATION.
func (r record) hasSKU(sku string) bool {
	if r.value == nil {
		k := string(r.r.Key)
		return k == sku || strings.HasPrefix(k, sku+"|")
	}
	return slices.Contains(r.skus, sku)
}

func shortName(full string) string {
	return full[strings.LastIndexByte(full, '.')+1:]
}

func indexValue(d ledger.Doc, l ledger.IndexedLine) object {
	kind := "order"
	if d.Kind == ledger.PODoc {
		kind = "purchase_order"
	}
	var released any
	if !l.Released.IsZero() {
		released = formatTime(l.Released)
	}
	return object{
		{"document", kind}, {"id", d.ID}, {"line", l.Line}, {"sku", l.SKU},
		{"location", l.Location}, {"group", l.Group}, {"uom", l.UoM}, {"released", released},
	}
}
