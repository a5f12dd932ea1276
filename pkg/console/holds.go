package console

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/stockflow/stockflow/pkg/events"
)

type holdsView struct {
	SKU       string
	Error     string
	Positions []holdsAt
}

type holdsAt struct {
	Location string
	Holds    []struct {
		HoldID    string `json:"hold_id"`
		Quantity  int64  `json:"quantity"`
		ExpiresAt string `json:"expires_at"`
	}
}

// holdsPage lists a SKU's open holds per position, each with its expiry;
// an admin can release one.
func (c *Console) holdsPage(ec echo.Context) error {
	v := holdsView{SKU: ec.QueryParam("sku")}
	if v.SKU == "" {
		return c.render(ec, http.StatusOK, "holds", "Holds", v)
	}
	locs, err := c.locations(ec.Request().Context(), v.SKU)
	if err != nil {
		return err
	}
	for _, loc := range locs {
		var p Position
		if err := c.api(ec, http.MethodGet, "/v1/positions/"+url.PathEscape(v.SKU)+"?location="+url.QueryEscape(loc), nil, &p); err != nil {
			return c.apiFailed(ec, v.SKU, err)
		}
		h := holdsAt{Location: loc}
		h.Holds = append(h.Holds, p.Holds...)
		v.Positions = append(v.Positions, h)
	}
	if len(locs) == 0 {
		v.Error = "The ledger has no position of " + v.SKU + "."
	}
	return c.render(ec, http.StatusOK, "holds", "Holds of "+v.SKU, v)
}

func (c *Console) releaseHold(ec echo.Context) error {
	id, sku := ec.FormValue("hold_id"), ec.FormValue("sku")
	if !validID(id) || c.cfg.ReleaseHold == nil {
		return c.forbidden(ec, "no such hold")
	}
	ok, err := c.cfg.ReleaseHold(ec.Request().Context(), id)
	if err != nil {
		return err
	}
	u := ec.Get(ctxUser).(*user)
	code := "hold-released"
	if !ok {
		code = "hold-not-found"
	}
	c.audit(ec.Request().Context(), u, "release-hold", id)
	return redirectDone(ec, "/console/holds", url.Values{"sku": {sku}}, code)
}

func validID(s string) bool { return events.ValidID(s) }
