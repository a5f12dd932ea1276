package console

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/labstack/echo/v4"
)

// Availability is GET /v1/availability at a location, as the API answers.
type Availability struct {
	SKU         string    `json:"sku"`
	Location    string    `json:"location"`
	OnHand      int64     `json:"on_hand"`
	Reserved    int64     `json:"reserved"`
	Picked      int64     `json:"picked"`
	Held        int64     `json:"held"`
	SafetyStock int64     `json:"safety_stock"`
	Inbound     []Inbound `json:"inbound"`
	ATP         int64     `json:"atp"`
	Shortfall   int64     `json:"shortfall"`
	AsOf        string    `json:"as_of"`
	Version     int64     `json:"version"`
}

// Inbound is one day of a position's inbound schedule.
type Inbound struct {
	Date     string `json:"date"`
	Quantity int64  `json:"quantity"`
}

// Position is GET /v1/positions, as the API answers.
type Position struct {
	OrderLines []OrderLine `json:"order_lines"`
	POLines    []struct {
		PONumber string `json:"po_number"`
		POLine   int    `json:"po_line"`
		Kind     string `json:"kind"`
		Status   string `json:"status"`
		ETA      string `json:"eta"`
		Open     int64  `json:"open"`
		Ordered  int64  `json:"ordered"`
		Received int64  `json:"received"`
	} `json:"po_lines"`
	Holds []struct {
		HoldID    string `json:"hold_id"`
		Quantity  int64  `json:"quantity"`
		ExpiresAt string `json:"expires_at"`
	} `json:"holds"`
	LastEntries []struct {
		Partition     int32  `json:"partition"`
		Offset        int64  `json:"offset"`
		EventID       string `json:"event_id"`
		CorrelationID string `json:"correlation_id"`
		Type          string `json:"type"`
	} `json:"last_entries"`
}

// OrderLine is an open order line of a position, with its promise.
type OrderLine struct {
	OrderID   string   `json:"order_id"`
	LineID    string   `json:"line_id"`
	Group     string   `json:"group"`
	Ordered   int64    `json:"ordered"`
	Picked    int64    `json:"picked"`
	Shipped   int64    `json:"shipped"`
	Reserved  int64    `json:"reserved"`
	Cancelled bool     `json:"cancelled"`
	Channel   string   `json:"channel"`
	Promise   *Promise `json:"promise"`
}

// Promise is an order line's promise as the API answers it: what stock on
// hand confirms now, the rest by the day dated supply covers it, what
// nothing covers, and a status (confirmed, promised or backordered).
type Promise struct {
	ConfirmedNow int64     `json:"confirmed_now"`
	Promised     []Inbound `json:"promised"`
	Unpromised   int64     `json:"unpromised"`
	Status       string    `json:"status"`
	// MoreDays are days past those in Promised that the page leaves out.
	MoreDays int `json:"-"`
}

// Promise statuses, as the API names them; closed is the console's own,
// for a change that leaves a line needing nothing more.
const (
	statusConfirmed   = "confirmed"
	statusPromised    = "promised"
	statusBackordered = "backordered"
	statusClosed      = "closed"
)

// urgency ranks a promise for the SKU page, most urgent first: lines that
// nothing covers, then those waiting for supply, then those stock covers,
// then lines without a promise (reserved across a group, or picked and
// waiting to ship).
func (p *Promise) urgency() int {
	if p == nil {
		return 3
	}
	switch p.Status {
	case statusBackordered:
		return 0
	case statusPromised:
		return 1
	default:
		return 2
	}
}

// lastDay is the latest day the promise waits for, "" when none.
func (p *Promise) lastDay() string {
	if p == nil || len(p.Promised) == 0 {
		return ""
	}
	return p.Promised[len(p.Promised)-1].Date
}

// byUrgency orders a position's open order lines most urgent first: the
// backordered by what nothing covers, largest first; the promised by the
// last day they wait for, latest first; then by order and line.
func byUrgency(lines []OrderLine) {
	slices.SortStableFunc(lines, func(a, b OrderLine) int {
		if c := cmp.Compare(a.Promise.urgency(), b.Promise.urgency()); c != 0 {
			return c
		}
		if a.Promise != nil && b.Promise != nil {
			if c := cmp.Compare(b.Promise.Unpromised, a.Promise.Unpromised); c != 0 {
				return c
			}
			if c := cmp.Compare(b.Promise.lastDay(), a.Promise.lastDay()); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(a.OrderID, b.OrderID), cmp.Compare(a.LineID, b.LineID))
	})
}

// promiseCounts are a position's open order lines by promise status.
type promiseCounts struct {
	Backordered, Promised, Confirmed int
	Unpromised                       int64
}

func countPromises(lines []OrderLine) promiseCounts {
	var n promiseCounts
	for _, l := range lines {
		if l.Promise == nil {
			continue
		}
		switch l.Promise.Status {
		case statusBackordered:
			n.Backordered++
			n.Unpromised += l.Promise.Unpromised
		case statusPromised:
			n.Promised++
		case statusConfirmed:
			n.Confirmed++
		}
	}
	return n
}

// GroupAvailability is GET /v1/availability?group=.
type GroupAvailability struct {
	Group     string `json:"group"`
	ATP       int64  `json:"atp"`
	Locations []struct {
		Location string `json:"location"`
		ATP      int64  `json:"atp"`
	} `json:"locations"`
}

type skuLocation struct {
	Now      Availability
	At       *Availability
	Position Position
	Promises promiseCounts
	Chart    chart
}

type skuView struct {
	SKU       string
	At        string
	Error     string
	Locations []skuLocation
	Groups    []GroupAvailability
}

func (c *Console) skuPage(ec echo.Context) error {
	v := skuView{SKU: ec.QueryParam("sku"), At: ec.QueryParam("at")}
	if v.SKU == "" {
		return c.render(ec, http.StatusOK, "sku", "A SKU's story", v)
	}
	if v.At != "" {
		if _, err := time.Parse(time.DateOnly, v.At); err != nil {
			v.Error = "The date must be YYYY-MM-DD."
			return c.render(ec, http.StatusBadRequest, "sku", "A SKU's story", v)
		}
	}
	ctx := ec.Request().Context()
	locs, err := c.locations(ctx, v.SKU)
	if err != nil {
		return err
	}
	if len(locs) == 0 {
		v.Error = "The ledger has no position of " + v.SKU + " at any location. Check the SKU, or wait for its first event."
		return c.render(ec, http.StatusNotFound, "sku", v.SKU, v)
	}
	for _, loc := range locs {
		var l skuLocation
		q := "/v1/availability/" + url.PathEscape(v.SKU) + "?location=" + url.QueryEscape(loc)
		if err := c.api(ec, http.MethodGet, q, nil, &l.Now); err != nil {
			return c.apiFailed(ec, v.SKU, err)
		}
		if v.At != "" {
			var at Availability
			if err := c.api(ec, http.MethodGet, q+"&at="+v.At, nil, &at); err != nil {
				return c.apiFailed(ec, v.SKU, err)
			}
			l.At = &at
		}
		if err := c.api(ec, http.MethodGet, "/v1/positions/"+url.PathEscape(v.SKU)+"?location="+url.QueryEscape(loc), nil, &l.Position); err != nil {
			return c.apiFailed(ec, v.SKU, err)
		}
		byUrgency(l.Position.OrderLines)
		l.Promises = countPromises(l.Position.OrderLines)
		l.Chart = inboundChart(l.Now.Inbound)
		v.Locations = append(v.Locations, l)
	}
	for _, g := range c.groupNames() {
		var ga GroupAvailability
		if err := c.api(ec, http.MethodGet, "/v1/availability/"+url.PathEscape(v.SKU)+"?group="+url.QueryEscape(g), nil, &ga); err != nil {
			return c.apiFailed(ec, v.SKU, err)
		}
		v.Groups = append(v.Groups, ga)
	}
	return c.render(ec, http.StatusOK, "sku", v.SKU, v)
}

func (c *Console) apiFailed(ec echo.Context, what string, err error) error {
	var ae *apiErr
	if errors.As(err, &ae) {
		return c.render(ec, ae.Status, "error", what, map[string]any{"Message": fmt.Sprintf("The API answered %d %s: %s", ae.Status, ae.Title, ae.Detail)})
	}
	return err
}

func (c *Console) locations(ctx context.Context, sku string) ([]string, error) {
	if c.cfg.Locations == nil {
		return nil, nil
	}
	locs, err := c.cfg.Locations(ctx, sku)
	sort.Strings(locs)
	return locs, err
}

func (c *Console) groupNames() []string {
	out := make([]string, 0, len(c.cfg.Groups))
	for g := range c.cfg.Groups {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// traceLink is the Jaeger search for an entry's spans.
func (c *Console) traceLink(eventID string) string {
	if c.cfg.JaegerURL == "" || eventID == "" {
		return ""
	}
	tags, _ := json.Marshal(map[string]string{"stockflow.event_id": eventID})
	return c.cfg.JaegerURL + "/search?service=stockflow&tags=" + url.QueryEscape(string(tags))
}
