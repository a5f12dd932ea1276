// Package sim generates realistic, seeded source traffic — item masters,
// purchase orders with acknowledgements and ship notices, receipts, orders
// with picks, shipments and cancellations, counts and adjustments — and
// produces it as Avro to the source topics.
package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
)

// Message is one generated source event with its destination.
type Message struct {
	Topic string
	Key   string
	Event events.Source
}

// Catalogue describes the simulated network.
type Catalogue struct {
	SKUs      int      // number of items; default 200
	Locations []string // default DC-EAST, DC-WEST, DC-CENTRAL, STORE-NYC, STORE-SFO
	Groups    map[string][]string
	// OpenLines bounds the order lines open at once (accepted and not yet
	// shipped or cancelled), over the whole network; default 10,000. At the
	// bound the generator picks and ships instead of taking new orders, as
	// a business in its steady state does: a long run's open order book
	// stays the same size instead of growing with the run.
	OpenLines int
	// OpenPOs bounds the purchase orders open at once; default 1,000. At the
	// bound suppliers acknowledge, ship and deliver instead of new POs
	// being released.
	OpenPOs int
}

func (c *Catalogue) setDefaults() {
	if c.SKUs <= 0 {
		c.SKUs = 200
	}
	if c.OpenLines <= 0 {
		c.OpenLines = 10000
	}
	if c.OpenPOs <= 0 {
		c.OpenPOs = 1000
	}
	if len(c.Locations) == 0 {
		c.Locations = []string{"DC-EAST", "DC-WEST", "DC-CENTRAL", "STORE-NYC", "STORE-SFO"}
	}
	if c.Groups == nil {
		c.Groups = map[string][]string{}
		for _, l := range c.Locations {
			g := "STORES"
			if len(l) > 3 && l[:3] == "DC-" {
				g = "DCS"
			}
			c.Groups[g] = append(c.Groups[g], l)
		}
	}
}

type orderLine struct {
	orderID, lineID, sku, loc, group string
	qty                              int64
	picked                           bool
}

type poLine struct {
	line     int32
	sku, loc string
	// cases is the line's quantity in its unit of measure (CS), as the PO
	// and its acknowledgement carry it; qty is the same in eaches, as ship
	// notices and receipts carry it.
	cases, qty int64
}

type po struct {
	number, supplier string
	lines            []poLine
	acked            bool
	asn              string
}

// Generator produces a deterministic sequence of source events for a seed.
// It is not safe for concurrent use.
type Generator struct {
	rnd    *rand.Rand
	seed   uint64
	cat    Catalogue
	topics config.Topics
	now    func() time.Time
	groups []string

	n       uint64
	orders  uint64
	pos     uint64
	open    []*orderLine // accepted, not yet picked or cancelled
	picked  []*orderLine // picked, not yet shipped
	grouped []*orderLine // reserved against a group, awaiting allocation
	openPOs []*po
}

// NewGenerator returns a generator for seed. now stamps event times; nil
// means time.Now.
func NewGenerator(seed uint64, cat Catalogue, topics config.Topics, now func() time.Time) *Generator {
	cat.setDefaults()
	if now == nil {
		now = time.Now
	}
	g := &Generator{rnd: rand.New(rand.NewPCG(seed, seed^0x5eed)), seed: seed, cat: cat, topics: topics, now: now}
	for name := range cat.Groups {
		g.groups = append(g.groups, name)
	}
	slices.Sort(g.groups) // map order is random: sort for determinism
	return g
}

// SKU returns the id of item i.
func SKU(i int) string { return fmt.Sprintf("SKU-%06d", i) }

func (g *Generator) meta() events.Meta {
	g.n++
	var corr *string
	if g.n%4 == 0 {
		c := fmt.Sprintf("corr-%d-%d", g.seed, g.n)
		corr = &c
	}
	return events.Meta{
		EventID:       fmt.Sprintf("sim-%d-%d", g.seed, g.n),
		EventTime:     g.now().UTC().Truncate(time.Millisecond),
		Source:        "simulator",
		CorrelationID: corr,
	}
}

func (g *Generator) sku() string { return SKU(g.rnd.IntN(g.cat.SKUs)) }
func (g *Generator) loc() string { return g.cat.Locations[g.rnd.IntN(len(g.cat.Locations))] }

// caseSize is the fixed case size of item i: 6, 12 or 24 eaches.
func caseSize(sku string) int64 {
	var h int64
	for _, c := range sku {
		h = h*31 + int64(c)
	}
	return []int64{6, 12, 24}[(h%3+3)%3]
}

// Catalog returns one ItemMaster per SKU; publish these first so that unit
// conversions are known before movements in cases arrive.
func (g *Generator) Catalog() []Message {
	out := make([]Message, 0, g.cat.SKUs)
	for i := 0; i < g.cat.SKUs; i++ {
		sku := SKU(i)
		im := &events.ItemMaster{
			Meta: g.meta(), SKU: sku, BaseUoM: "EA",
			Conversions:  map[string]int64{"CS": caseSize(sku), "PL": caseSize(sku) * 40},
			SafetyStock:  map[string]int64{},
			ReorderPoint: map[string]int64{},
			LeadTimeDays: int32(3 + g.rnd.IntN(12)),
		}
		for _, l := range g.cat.Locations {
			im.SafetyStock[l] = int64(g.rnd.IntN(10))
			im.ReorderPoint[l] = int64(20 + g.rnd.IntN(40))
		}
		out = append(out, Message{Topic: g.topics.Catalog, Key: sku, Event: im})
	}
	return out
}

// Opening returns an opening cycle count for every SKU at every location,
// so the stream starts from stock on the shelves rather than from zero.
func (g *Generator) Opening() []Message {
	out := make([]Message, 0, g.cat.SKUs*len(g.cat.Locations))
	for i := 0; i < g.cat.SKUs; i++ {
		sku := SKU(i)
		for _, l := range g.cat.Locations {
			m := g.meta()
			out = append(out, Message{Topic: g.topics.Inventory, Key: sku, Event: &events.InventoryCounted{
				Meta: m, SKU: sku, Location: l, CountedQuantity: int64(100 + g.rnd.IntN(400)), UoM: "EA",
				AsOf: m.EventTime.Add(-time.Hour),
			}})
		}
	}
	return out
}

// Next returns the next event of the stream.
func (g *Generator) Next() Message {
	for {
		r := g.steady(g.rnd.IntN(100))
		var m Message
		var ok bool
		switch {
		case r < 24:
			m, ok = g.order(), true
		case r < 38:
			m, ok = g.pick()
		case r < 52:
			m, ok = g.ship()
		case r < 55:
			m, ok = g.cancel()
		case r < 57:
			m, ok = g.allocate()
		case r < 67:
			m, ok = g.receipt(), true
		case r < 73:
			m, ok = g.releasePO(), true
		case r < 78:
			m, ok = g.ack()
		case r < 83:
			m, ok = g.asn()
		case r < 84:
			m, ok = g.closePO()
		case r < 90:
			m, ok = g.count(), true
		default:
			m, ok = g.adjust(), true
		}
		if ok {
			return m
		}
	}
}

// steady turns the draw r for a new order into a pick or a shipment when
// the open order book is full, and the draw for a new PO into a step of an
// open one (acknowledge, ship notice, receipt, close) when enough are open
// (Catalogue.OpenLines, OpenPOs). Below the bounds r is left as drawn.
func (g *Generator) steady(r int) int {
	switch {
	case r < 24 && len(g.open)+len(g.picked)+len(g.grouped) >= g.cat.OpenLines:
		if r%2 == 0 {
			return 24 // pick
		}
		return 38 // ship
	case r >= 67 && r < 73 && len(g.openPOs) >= g.cat.OpenPOs:
		return [...]int{73, 78, 57, 57, 57, 83}[r-67] // ack, ASN, 3 × receipt, close
	}
	return r
}

func (g *Generator) order() Message {
	g.orders++
	id := fmt.Sprintf("SO-%d-%d", g.seed, g.orders)
	channels := []string{"web", "web", "app", "store", "b2b"}
	o := &events.OrderAccepted{Meta: g.meta(), OrderID: id, Channel: channels[g.rnd.IntN(len(channels))]}
	for i := 0; i < 1+g.rnd.IntN(3); i++ {
		ol := &orderLine{orderID: id, lineID: fmt.Sprint(i + 1), sku: g.sku(), qty: int64(1 + g.rnd.IntN(5))}
		line := events.OrderLine{LineID: ol.lineID, SKU: ol.sku, Quantity: ol.qty, UoM: "EA"}
		if g.rnd.IntN(10) == 0 && len(g.groups) > 0 {
			ol.group = g.groups[g.rnd.IntN(len(g.groups))]
			line.Group = &ol.group
			g.grouped = append(g.grouped, ol)
		} else {
			ol.loc = g.loc()
			line.Location = &ol.loc
			g.open = append(g.open, ol)
		}
		o.Lines = append(o.Lines, line)
	}
	return Message{Topic: g.topics.Orders, Key: id, Event: o}
}

func take[T any](rnd *rand.Rand, s *[]T) (T, bool) {
	var zero T
	if len(*s) == 0 {
		return zero, false
	}
	i := rnd.IntN(len(*s))
	v := (*s)[i]
	(*s)[i] = (*s)[len(*s)-1]
	*s = (*s)[:len(*s)-1]
	return v, true
}

func (g *Generator) pick() (Message, bool) {
	ol, ok := take(g.rnd, &g.open)
	if !ok {
		return Message{}, false
	}
	ol.picked = true
	g.picked = append(g.picked, ol)
	return Message{Topic: g.topics.Inventory, Key: ol.sku, Event: &events.InventoryPicked{
		Meta: g.meta(), SKU: ol.sku, Location: ol.loc, Quantity: ol.qty, UoM: "EA", OrderID: ol.orderID, LineID: ol.lineID,
	}}, true
}

func (g *Generator) ship() (Message, bool) {
	ol, ok := take(g.rnd, &g.picked)
	if !ok {
		return Message{}, false
	}
	return Message{Topic: g.topics.Inventory, Key: ol.sku, Event: &events.InventoryShipped{
		Meta: g.meta(), SKU: ol.sku, Location: ol.loc, Quantity: ol.qty, UoM: "EA", OrderID: ol.orderID, LineID: ol.lineID,
		ShipmentID: "SH-" + ol.orderID,
	}}, true
}

func (g *Generator) cancel() (Message, bool) {
	ol, ok := take(g.rnd, &g.open)
	if !ok {
		return Message{}, false
	}
	return Message{Topic: g.topics.Orders, Key: ol.orderID, Event: &events.OrderCancelled{
		Meta: g.meta(), OrderID: ol.orderID, LineIDs: []string{ol.lineID},
	}}, true
}

func (g *Generator) allocate() (Message, bool) {
	ol, ok := take(g.rnd, &g.grouped)
	if !ok {
		return Message{}, false
	}
	members := g.cat.Groups[ol.group]
	ol.loc = members[g.rnd.IntN(len(members))]
	g.open = append(g.open, ol)
	return Message{Topic: g.topics.Orders, Key: ol.orderID, Event: &events.OrderAllocated{
		Meta: g.meta(), OrderID: ol.orderID, LineID: ol.lineID, SKU: ol.sku, Location: ol.loc,
	}}, true
}

func (g *Generator) releasePO() Message {
	g.pos++
	p := &po{number: fmt.Sprintf("PO-%d-%d", g.seed, g.pos), supplier: fmt.Sprintf("SUP-%02d", g.rnd.IntN(20))}
	ev := &events.PurchaseOrderReleased{Meta: g.meta(), PONumber: p.number, SupplierID: p.supplier}
	day := g.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 2+g.rnd.IntN(14))
	for i := 0; i < 1+g.rnd.IntN(4); i++ {
		l := poLine{line: int32(i + 1), sku: g.sku(), loc: g.loc(), cases: int64(5 + g.rnd.IntN(20))}
		l.qty = l.cases * caseSize(l.sku)
		p.lines = append(p.lines, l)
		ev.Lines = append(ev.Lines, events.PurchaseOrderLine{POLine: l.line, SKU: l.sku, Location: l.loc, Quantity: l.cases, UoM: "CS", ExpectedDate: day})
	}
	g.openPOs = append(g.openPOs, p)
	return Message{Topic: g.topics.Supplier, Key: p.number, Event: ev}
}

func (g *Generator) findPO(want func(*po) bool) *po {
	for _, i := range g.rnd.Perm(len(g.openPOs)) {
		if want(g.openPOs[i]) {
			return g.openPOs[i]
		}
	}
	return nil
}

func (g *Generator) ack() (Message, bool) {
	p := g.findPO(func(p *po) bool { return !p.acked })
	if p == nil {
		return Message{}, false
	}
	p.acked = true
	ev := &events.PurchaseOrderAcknowledged{Meta: g.meta(), PONumber: p.number, SupplierID: p.supplier}
	day := g.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 3+g.rnd.IntN(14))
	for i := range p.lines {
		l := &p.lines[i]
		status := events.AckAccepted
		switch r := g.rnd.IntN(20); {
		case r == 0:
			status, l.cases = events.AckRejected, 0
		case r < 3:
			status, l.cases = events.AckChanged, l.cases/2
		case r < 4:
			status = events.AckBackordered
		}
		l.qty = l.cases * caseSize(l.sku)
		// The confirmed quantity is in the PO line's unit, cases.
		ev.Lines = append(ev.Lines, events.AcknowledgedLine{POLine: l.line, Status: status, Quantity: l.cases, ExpectedDate: day})
	}
	return Message{Topic: g.topics.Supplier, Key: p.number, Event: ev}, true
}

func (g *Generator) asn() (Message, bool) {
	p := g.findPO(func(p *po) bool { return p.acked && p.asn == "" })
	if p == nil {
		return Message{}, false
	}
	shipping := 0
	for _, l := range p.lines {
		if l.qty > 0 {
			shipping++
		}
	}
	if shipping == 0 { // every line rejected: nothing will ship
		g.dropPO(p)
		return Message{}, false
	}
	p.asn = "ASN-" + p.number
	ev := &events.AdvanceShipNotice{Meta: g.meta(), ASNID: p.asn, PONumber: p.number, SupplierID: p.supplier,
		ETA: g.now().UTC().Add(time.Duration(12+g.rnd.IntN(72)) * time.Hour).Truncate(time.Millisecond)}
	for _, l := range p.lines {
		if l.qty > 0 {
			ev.Lines = append(ev.Lines, events.AdvanceShipNoticeLine{POLine: l.line, SKU: l.sku, Quantity: l.qty, UoM: "EA"})
		}
	}
	return Message{Topic: g.topics.Supplier, Key: p.number, Event: ev}, true
}

func (g *Generator) receipt() Message {
	if p := g.findPO(func(p *po) bool { return p.asn != "" }); p != nil && g.rnd.IntN(10) < 7 {
		// Receive the PO's lines one at a time, then forget the PO.
		for i, l := range p.lines {
			if l.qty == 0 {
				continue
			}
			p.lines[i].qty = 0
			num, line, asn := p.number, l.line, p.asn
			return Message{Topic: g.topics.Inventory, Key: l.sku, Event: &events.InventoryReceived{
				Meta: g.meta(), SKU: l.sku, Location: l.loc, Quantity: l.qty, UoM: "EA", PONumber: &num, POLine: &line, ASNID: &asn,
			}}
		}
		g.dropPO(p)
	}
	// A receipt with no PO: customer returns, transfers in.
	sku := g.sku()
	return Message{Topic: g.topics.Inventory, Key: sku, Event: &events.InventoryReceived{
		Meta: g.meta(), SKU: sku, Location: g.loc(), Quantity: int64(1 + g.rnd.IntN(4)), UoM: "CS",
	}}
}

func (g *Generator) dropPO(p *po) {
	for i, q := range g.openPOs {
		if q == p {
			g.openPOs = append(g.openPOs[:i], g.openPOs[i+1:]...)
			return
		}
	}
}

func (g *Generator) closePO() (Message, bool) {
	p := g.findPO(func(p *po) bool { return p.acked })
	if p == nil {
		return Message{}, false
	}
	g.dropPO(p)
	return Message{Topic: g.topics.Supplier, Key: p.number, Event: &events.PurchaseOrderClosed{
		Meta: g.meta(), PONumber: p.number, Reason: "short-closed by buyer",
	}}, true
}

func (g *Generator) count() Message {
	sku := g.sku()
	m := g.meta()
	return Message{Topic: g.topics.Inventory, Key: sku, Event: &events.InventoryCounted{
		Meta: m, SKU: sku, Location: g.loc(), CountedQuantity: int64(50 + g.rnd.IntN(450)), UoM: "EA",
		AsOf: m.EventTime.Add(-time.Duration(g.rnd.IntN(30)) * time.Minute),
	}}
}

func (g *Generator) adjust() Message {
	sku := g.sku()
	q := int64(1 + g.rnd.IntN(6))
	reason := "found"
	if g.rnd.IntN(3) > 0 {
		q, reason = -q, []string{"damaged", "expired", "shrink"}[g.rnd.IntN(3)]
	}
	return Message{Topic: g.topics.Inventory, Key: sku, Event: &events.InventoryAdjusted{
		Meta: g.meta(), SKU: sku, Location: g.loc(), Quantity: q, UoM: "EA", Reason: reason,
	}}
}
