package processors

import (
	"strings"

	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockflow/stockflow/pkg/events"
)

// Tracing is what the processors need to trace: kotel's tracer (whose hooks
// must be on the processors' clients, see pkg/kafka.Tracing) for process
// spans that continue the trace carried in record headers.
type Tracing struct {
	Kotel *kotel.Tracer
}

// entryAttrs are the attributes of a process span for ledger entries.
func entryAttrs(es []*events.LedgerEntry) []attribute.KeyValue {
	if len(es) == 0 {
		return nil
	}
	e := es[0]
	types := make([]string, 0, len(es))
	for _, x := range es {
		types = append(types, x.EntryType)
	}
	attrs := []attribute.KeyValue{
		attribute.String("stockflow.sku", e.SKU),
		attribute.String("stockflow.entry_type", strings.Join(types, ",")),
		attribute.String("stockflow.event_id", e.EventID),
	}
	if e.Location != nil {
		attrs = append(attrs, attribute.String("stockflow.location", *e.Location))
	}
	if e.CorrelationID != nil {
		attrs = append(attrs, attribute.String("stockflow.correlation_id", *e.CorrelationID))
	}
	return attrs
}

func setEntryAttrs(span trace.Span, es ...*events.LedgerEntry) {
	span.SetAttributes(entryAttrs(es)...)
}
