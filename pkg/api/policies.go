package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

type policyRequest struct {
	SafetyStock  *int64 `json:"safety_stock"`
	ReorderPoint *int64 `json:"reorder_point"`
}

func (ch *Checkout) putPolicy(c echo.Context) error {
	sku, err := pathID(c, "sku")
	if err != nil {
		return err
	}
	loc, err := pathID(c, "location")
	if err != nil {
		return err
	}
	var req policyRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.SafetyStock == nil {
		return badRequest("safety_stock", "required")
	}
	if req.ReorderPoint == nil {
		return badRequest("reorder_point", "required")
	}
	if *req.SafetyStock < 0 || *req.SafetyStock > maxQuantity {
		return badRequest("safety_stock", fmt.Sprintf("%d is outside 0..%d", *req.SafetyStock, maxQuantity))
	}
	if *req.ReorderPoint < 0 || *req.ReorderPoint > maxQuantity {
		return badRequest("reorder_point", fmt.Sprintf("%d is outside 0..%d", *req.ReorderPoint, maxQuantity))
	}
	now := ch.now().UTC()
	e := &events.LedgerEntry{
		EntryType: events.EntryPolicy, SKU: sku, Location: &loc, SafetyStock: req.SafetyStock, ReorderPoint: req.ReorderPoint,
		EventID: "policy:" + sku + ":" + loc + ":" + strconv.FormatInt(now.UnixNano(), 36), EventTime: now, Source: "api",
		CorrelationID: correlationID(c),
	}
	if err := ch.produce(c.Request().Context(), e); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{
		"sku": sku, "location": loc, "safety_stock": *req.SafetyStock, "reorder_point": *req.ReorderPoint,
		"status": "accepted", "event_id": e.EventID,
	})
}

type orderLineJSON struct {
	OrderID   string `json:"order_id"`
	LineID    string `json:"line_id"`
	Group     string `json:"group,omitempty"`
	Ordered   int64  `json:"ordered"`
	Picked    int64  `json:"picked"`
	Shipped   int64  `json:"shipped"`
	Cancelled bool   `json:"cancelled"`
	Reserved  int64  `json:"reserved"`
	Channel   string `json:"channel,omitempty"`
	// Promise is the line's current promise (null: none).
	Promise *promiseJSON `json:"promise"`
}

type poLineJSON struct {
	PONumber string `json:"po_number"`
	POLine   int    `json:"po_line"`
	Kind     string `json:"kind"`
	Status   string `json:"status,omitempty"`
	ETA      string `json:"eta"`
	Open     int64  `json:"open"`
	Ordered  int64  `json:"ordered"`
	Received int64  `json:"received"`
	Closed   bool   `json:"closed"`
}

type holdJSON struct {
	HoldID    string `json:"hold_id,omitempty"` // to a key without admin, only on its own holds
	Quantity  int64  `json:"quantity"`
	ExpiresAt string `json:"expires_at"`
}

type entryJSON struct {
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
	EventID       string `json:"event_id"`
	CorrelationID string `json:"correlation_id,omitempty"`
	Type          string `json:"type"`
}

func (ch *Checkout) positions(c echo.Context) error {
	sku, err := pathID(c, "sku")
	if err != nil {
		return err
	}
	loc := c.QueryParam("location")
	if err := checkID("location", loc); err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := ch.now()
	res, err := ch.lookup(ctx, []ledger.LookupReq{{SKU: sku, Location: loc}}, now)
	if err != nil {
		return err
	}
	orders, pos, holds, err := ch.cfg.Store.Lines(ctx, sku)
	if err != nil {
		return err
	}
	lineage, err := ch.cfg.Store.Lineage(ctx, sku)
	if err != nil {
		return err
	}
	r := res[0]
	a, short := atp.Clamp(r.ATPPosition().Raw())
	out := map[string]any{
		"sku": sku, "location": loc, "on_hand": r.OnHand, "reserved": r.Reserved, "picked": r.Picked, "held": r.Held,
		"safety_stock": r.SafetyStock, "reorder_point": r.ReorderPoint, "inbound_total": r.Inbound,
		"atp": a, "shortfall": short, "version": r.Version, "as_of": now.UTC().Format(time.RFC3339Nano),
	}
	ol := []orderLineJSON{}
	for _, o := range orders {
		if o.Location != loc {
			continue
		}
		reserved := o.Open()
		if reserved == 0 && o.Picked <= o.Shipped {
			continue // closed: nothing reserved, nothing waiting to ship
		}
		ol = append(ol, orderLineJSON{OrderID: o.OrderID, LineID: o.LineID, Group: o.Group, Ordered: o.Ordered, Picked: o.Picked,
			Shipped: o.Shipped, Cancelled: o.Cancelled == 1, Reserved: reserved, Channel: o.Channel, Promise: promiseOf(o.Promise)})
	}
	pl := []poLineJSON{}
	for _, p := range pos {
		if p.Location != loc {
			continue
		}
		s, ok := p.Supply()
		if !ok {
			continue
		}
		pl = append(pl, poLineJSON{PONumber: p.PONumber, POLine: p.POLine, Kind: s.Kind.String(), Status: p.Status,
			ETA: s.Date.Format(dateLayout), Open: s.Quantity, Ordered: p.Ordered, Received: p.Received, Closed: p.Closed == 1})
	}
	hl, err := ch.activeHolds(c, ch.own.ledgerHolds(sku, loc, holds, now), loc, now)
	if err != nil {
		return err
	}
	el := []entryJSON{}
	for _, l := range lineage {
		if l.Place != loc && l.Place != "" {
			continue
		}
		el = append(el, entryJSON{Partition: l.Partition, Offset: l.Offset, EventID: l.EventID, CorrelationID: l.CorrelationID, Type: l.EntryType})
	}
	out["order_lines"], out["po_lines"], out["holds"], out["last_entries"] = ol, pl, hl, el
	return c.JSON(http.StatusOK, out)
}
