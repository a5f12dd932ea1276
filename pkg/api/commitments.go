package api

import (
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockflow/stockflow/pkg/ledger"
)

// promiseJSON is an order line's promise: confirmed from stock now, the
// rest by day, what nothing covers (docs/design.md §5.11).
type promiseJSON struct {
	ConfirmedNow int64             `json:"confirmed_now"`
	Promised     []promisedDayJSON `json:"promised"`
	Unpromised   int64             `json:"unpromised"`
	// Status is confirmed (all from stock now), promised (some waits for
	// supply, all of it covered) or backordered (some covered by nothing).
	Status string `json:"status"`
}

type promisedDayJSON struct {
	Date     string `json:"date"`
	Quantity int64  `json:"quantity"`
}

type commitmentLineJSON struct {
	LineID    string `json:"line_id"`
	SKU       string `json:"sku"`
	Location  string `json:"location,omitempty"`
	Group     string `json:"group,omitempty"`
	Ordered   int64  `json:"ordered"`
	Shipped   int64  `json:"shipped"`
	Cancelled bool   `json:"cancelled"`
	Open      int64  `json:"open"`
	// Promise is null while the line has none: it needs nothing more, or
	// it is reserved across a group and not yet allocated.
	Promise *promiseJSON `json:"promise"`
	// History is the line's last promises with their causes, newest first.
	History []promiseChangeJSON `json:"history"`
}

type promiseChangeJSON struct {
	Promise        *promiseJSON `json:"promise"` // null: nothing open
	CauseEventID   string       `json:"cause_event_id"`
	CauseEntryType string       `json:"cause_entry_type"`
	CauseTime      string       `json:"cause_time"`
}

// historyOf is a line's kept promises, newest first.
func historyOf(h []ledger.PromiseChange) []promiseChangeJSON {
	out := make([]promiseChangeJSON, 0, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out = append(out, promiseChangeJSON{Promise: promiseOf(h[i].Promise), CauseEventID: h[i].EventID, CauseEntryType: h[i].EntryType,
			CauseTime: time.UnixMilli(h[i].At).UTC().Format(time.RFC3339Nano)})
	}
	return out
}

// promiseOf is the JSON of a line's stored promise, nil when it has none.
func promiseOf(stored string) *promiseJSON {
	p, ok := ledger.ParsePromise(stored)
	if !ok || p.Open == 0 {
		return nil
	}
	out := &promiseJSON{ConfirmedNow: p.Confirmed, Unpromised: p.Unpromised, Promised: make([]promisedDayJSON, len(p.ByDay)), Status: "confirmed"}
	for i, d := range p.ByDay {
		out.Promised[i] = promisedDayJSON{Date: time.Unix(d.Day*86400, 0).UTC().Format(dateLayout), Quantity: d.Quantity}
	}
	switch {
	case p.Unpromised > 0:
		out.Status = "backordered"
	case len(p.ByDay) > 0:
		out.Status = "promised"
	}
	return out
}

// orderCommitments answers GET /v1/orders/{order_id}/commitments: every
// line of the order with its current promise. The order's lines and their
// SKUs come from the document index; each line's promise from its SKU's
// ledger. Every change of a promise, with its cause, is on the
// commitments topic.
func (ch *Checkout) orderCommitments(c echo.Context) error {
	id, err := url.PathUnescape(c.Param("order_id"))
	if err != nil {
		return badRequest("order_id", "is not a valid percent-encoded path segment")
	}
	if id == "" || len(id) > 128 {
		return badRequest("order_id", "must be 1-128 characters")
	}
	ctx := c.Request().Context()
	doc := ledger.Doc{Kind: ledger.OrderDoc, ID: id}
	idx, err := ch.cfg.Store.ReadIndex(ctx, []ledger.Doc{doc})
	if err != nil {
		return err
	}
	indexed, err := idx.Lines(doc)
	if err != nil {
		return err
	}
	if len(indexed) == 0 {
		return notFound("no order " + excerpt(id) + " has been accepted")
	}
	bySKU := map[string]map[string]ledger.OrderLine{}
	out := make([]commitmentLineJSON, 0, len(indexed))
	for _, il := range indexed {
		lines, ok := bySKU[il.SKU]
		if !ok {
			orders, _, _, err := ch.cfg.Store.Lines(ctx, il.SKU)
			if err != nil {
				return err
			}
			lines = map[string]ledger.OrderLine{}
			for _, o := range orders {
				if o.OrderID == id {
					lines[o.LineID] = o
				}
			}
			bySKU[il.SKU] = lines
		}
		o, ok := lines[il.Line]
		if !ok {
			continue // indexed, not folded yet
		}
		out = append(out, commitmentLineJSON{LineID: o.LineID, SKU: il.SKU, Location: o.Location, Group: o.Group, Ordered: o.Ordered,
			Shipped: o.Shipped, Cancelled: o.Cancelled == 1, Open: o.Open(), Promise: promiseOf(o.Promise), History: historyOf(o.History)})
	}
	return c.JSON(200, map[string]any{"order_id": id, "lines": out, "as_of": ch.now().UTC().Format(time.RFC3339Nano)})
}
