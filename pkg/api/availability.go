package api

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/ledger"
)

const dateLayout = "2006-01-02"

type inboundJSON struct {
	Date     string `json:"date"`
	Quantity int64  `json:"quantity"`
}

type locationAvailability struct {
	SKU          string        `json:"sku"`
	Location     string        `json:"location"`
	OnHand       int64         `json:"on_hand"`
	Reserved     int64         `json:"reserved"`
	Picked       int64         `json:"picked"`
	Held         int64         `json:"held"`
	SafetyStock  int64         `json:"safety_stock"`
	Inbound      []inboundJSON `json:"inbound"`
	ATP          int64         `json:"atp"`
	Shortfall    int64         `json:"shortfall"`
	AsOf         string        `json:"as_of"`
	Version      int64         `json:"version"`
	At           string        `json:"at,omitempty"`
	Channel      string        `json:"channel,omitempty"`
	ReorderPoint int64         `json:"reorder_point"`
}

type groupMember struct {
	Location string `json:"location"`
	ATP      int64  `json:"atp"`
}

type groupAvailability struct {
	SKU       string        `json:"sku"`
	Group     string        `json:"group"`
	ATP       int64         `json:"atp"`
	Shortfall int64         `json:"shortfall"`
	Locations []groupMember `json:"locations"`
	AsOf      string        `json:"as_of"`
	At        string        `json:"at,omitempty"`
	Channel   string        `json:"channel,omitempty"`
}

// target is where a lookup or query line points: a location or a group.
type target struct {
	location, group string
}

func (ch *Checkout) parseTarget(location, group, prefix string) (target, error) {
	switch {
	case location != "" && group != "":
		return target{}, badRequest(prefix+"location", "give a location or a group, not both")
	case location != "":
		return target{location: location}, checkID(prefix+"location", location)
	case group != "":
		if err := checkID(prefix+"group", group); err != nil {
			return target{}, err
		}
		if _, ok := ch.cfg.Groups[group]; !ok {
			return target{}, badRequest(prefix+"group", fmt.Sprintf("unknown group %s", excerpt(group)))
		}
		return target{group: group}, nil
	}
	return target{}, badRequest(prefix+"location", "a location or a group is required")
}

func parseAt(v string, today time.Time) (time.Time, error) {
	if v == "" {
		return today, nil
	}
	d, err := time.Parse(dateLayout, v)
	if err != nil {
		return time.Time{}, badRequest("at", fmt.Sprintf("%s is not a date as YYYY-MM-DD", excerpt(v)))
	}
	if d.Before(today) {
		return today, nil
	}
	return d, nil
}

func checkChannel(field, v string) error {
	if v == "" {
		return nil
	}
	return checkID(field, v)
}

func (ch *Checkout) availability(c echo.Context) error {
	sku, err := pathID(c, "sku")
	if err != nil {
		return err
	}
	tg, err := ch.parseTarget(c.QueryParam("location"), c.QueryParam("group"), "")
	if err != nil {
		return err
	}
	now := ch.now()
	today := atp.Day(now)
	at, err := parseAt(c.QueryParam("at"), today)
	if err != nil {
		return err
	}
	channel := c.QueryParam("channel")
	if err := checkChannel("channel", channel); err != nil {
		return err
	}
	atStr := ""
	if c.QueryParam("at") != "" {
		atStr = at.Format(dateLayout)
	}
	ctx := c.Request().Context()
	if tg.location != "" {
		res, err := ch.lookup(ctx, []ledger.LookupReq{{SKU: sku, Location: tg.location}}, now)
		if err != nil {
			return err
		}
		r := res[0]
		p := r.ATPPosition()
		a, short := atp.Clamp(p.RawAt(at, now, ch.cfg.Supply))
		out := locationAvailability{
			SKU: sku, Location: tg.location, OnHand: r.OnHand, Reserved: r.Reserved, Picked: r.Picked, Held: r.Held,
			SafetyStock: r.SafetyStock, ReorderPoint: r.ReorderPoint, Inbound: []inboundJSON{},
			ATP: ch.cfg.Rules.ForChannelHolding(a, channel, atp.HeldBy(r.Holds, channel, now.UnixMilli())), Shortfall: short,
			AsOf: now.UTC().Format(time.RFC3339Nano), Version: r.Version, At: atStr, Channel: channel,
		}
		for _, b := range p.Buckets(now, ch.cfg.Supply) {
			out.Inbound = append(out.Inbound, inboundJSON{Date: b.Date.Format(dateLayout), Quantity: b.Quantity})
		}
		return c.JSON(http.StatusOK, out)
	}
	members := ch.cfg.Groups[tg.group]
	reqs := make([]ledger.LookupReq, 0, len(members)+1)
	for _, m := range members {
		reqs = append(reqs, ledger.LookupReq{SKU: sku, Location: m})
	}
	reqs = append(reqs, ledger.LookupReq{SKU: sku, Group: tg.group})
	res, err := ch.lookup(ctx, reqs, now)
	if err != nil {
		return err
	}
	out := groupAvailability{SKU: sku, Group: tg.group, AsOf: now.UTC().Format(time.RFC3339Nano), At: atStr, Channel: channel,
		Locations: make([]groupMember, 0, len(members))}
	raws := make([]int64, len(members))
	for i, m := range members {
		raws[i] = res[i].ATPPosition().RawAt(at, now, ch.cfg.Supply)
		a, _ := atp.Clamp(raws[i])
		out.Locations = append(out.Locations, groupMember{Location: m, ATP: ch.cfg.Rules.ForChannel(a, channel)})
	}
	a, short := atp.Clamp(atp.Group(raws, res[len(members)].GroupDemand))
	out.ATP, out.Shortfall = ch.cfg.Rules.ForChannel(a, channel), short
	return c.JSON(http.StatusOK, out)
}

type queryLine struct {
	SKU      string `json:"sku"`
	Location string `json:"location,omitempty"`
	Group    string `json:"group,omitempty"`
	Quantity int64  `json:"quantity"`
	Channel  string `json:"channel,omitempty"`
}

type queryRequest struct {
	Lines []queryLine `json:"lines"`
}

type queryAnswer struct {
	SKU         string  `json:"sku"`
	Location    string  `json:"location,omitempty"`
	Group       string  `json:"group,omitempty"`
	Quantity    int64   `json:"quantity"`
	ATP         int64   `json:"atp"`
	CanFulfill  bool    `json:"can_fulfill"`
	PromiseDate *string `json:"promise_date"`
}

// checkQueryLine validates one line of a batch query, its problems naming
// fields below prefix.
func (ch *Checkout) checkQueryLine(l queryLine, tg *target, prefix string) error {
	if err := checkID(prefix+"sku", l.SKU); err != nil {
		return err
	}
	t, err := ch.parseTarget(l.Location, l.Group, prefix)
	if err != nil {
		return err
	}
	if l.Quantity < 1 || l.Quantity > maxQuantity {
		return badRequest(prefix+"quantity", fmt.Sprintf("%d is outside 1..%d", l.Quantity, maxQuantity))
	}
	if err := checkChannel(prefix+"channel", l.Channel); err != nil {
		return err
	}
	*tg = t
	return nil
}

// ParseQuery decodes and validates a batch query body.
func (ch *Checkout) parseQuery(c echo.Context) (queryRequest, []target, error) {
	var req queryRequest
	if err := decodeBody(c, &req); err != nil {
		return req, nil, err
	}
	if len(req.Lines) == 0 || len(req.Lines) > maxQueryLines {
		return req, nil, badRequest("lines", fmt.Sprintf("give 1 to %d lines, not %d", maxQueryLines, len(req.Lines)))
	}
	tgs := make([]target, len(req.Lines))
	for i, l := range req.Lines {
		if err := ch.checkQueryLine(l, &tgs[i], ""); err != nil {
			// Again with the field names spelled out: only for the answer.
			return req, nil, ch.checkQueryLine(l, &tgs[i], fmt.Sprintf("lines[%d].", i))
		}
	}
	return req, tgs, nil
}

func (ch *Checkout) query(c echo.Context) error {
	req, tgs, err := ch.parseQuery(c)
	if err != nil {
		return err
	}
	now := ch.now()
	// One pipelined round trip for every line: a location line reads one
	// position, a group line every member's and the group's demand.
	var reqs []ledger.LookupReq
	first := make([]int, len(req.Lines))
	for i, l := range req.Lines {
		first[i] = len(reqs)
		if tgs[i].location != "" {
			reqs = append(reqs, ledger.LookupReq{SKU: l.SKU, Location: tgs[i].location})
			continue
		}
		for _, m := range ch.cfg.Groups[tgs[i].group] {
			reqs = append(reqs, ledger.LookupReq{SKU: l.SKU, Location: m})
		}
		reqs = append(reqs, ledger.LookupReq{SKU: l.SKU, Group: tgs[i].group})
	}
	res, err := ch.lookup(c.Request().Context(), reqs, now)
	if err != nil {
		return err
	}
	out := struct {
		Lines []queryAnswer `json:"lines"`
	}{Lines: make([]queryAnswer, len(req.Lines))}
	for i, l := range req.Lines {
		ans := queryAnswer{SKU: l.SKU, Location: tgs[i].location, Group: tgs[i].group, Quantity: l.Quantity}
		var raw, held int64
		var date time.Time
		var ok bool
		if tgs[i].location != "" {
			r := res[first[i]]
			p := r.ATPPosition()
			raw = p.Raw()
			held = atp.HeldBy(r.Holds, l.Channel, now.UnixMilli())
			date, ok = ch.promise(p, l.Quantity, l.Channel, held, now)
		} else {
			n := len(ch.cfg.Groups[tgs[i].group])
			members := make([]atp.Position, n)
			for j := range members {
				members[j] = res[first[i]+j].ATPPosition()
			}
			demand := res[first[i]+n].GroupDemand
			raw = groupRawAt(members, demand, now, now, ch.cfg.Supply)
			date, ok = ch.groupPromise(members, demand, l.Quantity, l.Channel, now)
		}
		a, _ := atp.Clamp(raw)
		ans.ATP = ch.cfg.Rules.ForChannelHolding(a, l.Channel, held)
		ans.CanFulfill = ans.ATP >= l.Quantity
		if ok {
			ans.PromiseDate = str(date.Format(dateLayout))
		}
		out.Lines[i] = ans
	}
	return c.JSON(http.StatusOK, out)
}

// promise is the earliest day the channel, holding held at the location,
// may promise q there.
func (ch *Checkout) promise(p atp.Position, q int64, channel string, held int64, now time.Time) (time.Time, bool) {
	check := func(d time.Time) bool {
		a, _ := atp.Clamp(p.RawAt(d, now, ch.cfg.Supply))
		return ch.cfg.Rules.ForChannelHolding(a, channel, held) >= q
	}
	return earliest(check, p.Buckets(now, ch.cfg.Supply), now)
}

func groupRawAt(members []atp.Position, demand int64, at, now time.Time, policy atp.SupplyPolicy) int64 {
	raws := make([]int64, len(members))
	for i, m := range members {
		raws[i] = m.RawAt(at, now, policy)
	}
	return atp.Group(raws, demand)
}

// groupPromise is the earliest day the channel may promise q from a group.
func (ch *Checkout) groupPromise(members []atp.Position, demand, q int64, channel string, now time.Time) (time.Time, bool) {
	var buckets []atp.Bucket
	for _, m := range members {
		buckets = append(buckets, m.Buckets(now, ch.cfg.Supply)...)
	}
	check := func(d time.Time) bool {
		a, _ := atp.Clamp(groupRawAt(members, demand, d, now, ch.cfg.Supply))
		return ch.cfg.Rules.ForChannel(a, channel) >= q
	}
	return earliest(check, buckets, now)
}

// earliest tries today, then each day supply arrives, in order.
func earliest(ok func(time.Time) bool, buckets []atp.Bucket, now time.Time) (time.Time, bool) {
	today := atp.Day(now)
	if ok(today) {
		return today, true
	}
	days := make([]time.Time, 0, len(buckets))
	for _, b := range buckets {
		days = append(days, b.Date)
	}
	slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
	for _, d := range days {
		if ok(d) {
			return d, true
		}
	}
	return time.Time{}, false
}
