package sources

import (
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
)

// all is every source event type Stockflow reads, one line each; the
// definitions are in the files named after them.
var all = []*Source{
	inventoryReceived,
	inventoryPicked,
	inventoryShipped,
	inventoryAdjusted,
	inventoryCounted,
	orderAccepted,
	orderCancelled,
	orderAllocated,
	purchaseOrderReleased,
	purchaseOrderAcknowledged,
	advanceShipNotice,
	purchaseOrderClosed,
	itemMaster,
}

var byName = func() map[string]*Source {
	m := make(map[string]*Source, len(all))
	for _, s := range all {
		if m[s.Name] != nil {
			panic("sources: " + s.Name + " is registered twice")
		}
		m[s.Name] = s
	}
	return m
}()

// All returns the registered source event types.
func All() []*Source { return append([]*Source(nil), all...) }

// Of returns the registration of ev's type, or nil when it is not a
// registered source event.
func Of(ev events.Source) *Source { return byName[ev.AvroName()] }

// Topic is the source topic ev's type belongs on, among t ("" for a type
// of none). The normalizers dead-letter a record found on another topic,
// and a dead letter is replayed nowhere else.
func Topic(t config.Topics, ev events.Source) string {
	if s := Of(ev); s != nil {
		return s.Topic(t)
	}
	return ""
}

func inventoryTopic(t config.Topics) string { return t.Inventory }
func ordersTopic(t config.Topics) string    { return t.Orders }
func supplierTopic(t config.Topics) string  { return t.Supplier }
func catalogTopic(t config.Topics) string   { return t.Catalog }
