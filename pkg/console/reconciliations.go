package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stockflow/stockflow/pkg/reconcile"
)

type runsView struct {
	Runs    []reconcile.Run
	Classes []string
}

func (c *Console) runsPage(ec echo.Context) error {
	var out struct {
		Runs []reconcile.Run `json:"runs"`
	}
	if err := c.api(ec, http.MethodGet, "/v1/reconciliations?limit=100", nil, &out); err != nil {
		return c.apiFailed(ec, "Reconciliation", err)
	}
	// Under each status the page shows its reason: with it, whether the
	// run stored only some of its exceptions.
	for i := range out.Runs {
		out.Runs[i].Reason = out.Runs[i].Notes()
	}
	return c.render(ec, http.StatusOK, "runs", "Reconciliation runs", runsView{Runs: out.Runs, Classes: reconcile.AllClasses})
}

type runView struct {
	Run         reconcile.Run
	Exceptions  []reconcile.Exception
	Next        string
	Class       string
	Location    string
	Classes     []string
	Correctable []string
	Applicable  bool
	Error       string
}

func (c *Console) runPage(ec echo.Context) error {
	id := ec.Param("id")
	if !validID(id) {
		return c.render(ec, http.StatusNotFound, "error", "Reconciliation", map[string]any{"Message": "No such run."})
	}
	v := runView{Class: ec.QueryParam("class"), Location: ec.QueryParam("location"), Classes: reconcile.AllClasses[1:], Correctable: reconcile.Correctable}
	q := url.Values{"limit": {"200"}}
	for k, val := range map[string]string{"class": v.Class, "location": v.Location, "cursor": ec.QueryParam("cursor")} {
		if val != "" {
			q.Set(k, val)
		}
	}
	var out struct {
		Run        reconcile.Run         `json:"run"`
		Exceptions []reconcile.Exception `json:"exceptions"`
		Next       string                `json:"next_cursor"`
	}
	if err := c.api(ec, http.MethodGet, "/v1/reconciliations/"+url.PathEscape(id)+"?"+q.Encode(), nil, &out); err != nil {
		return c.apiFailed(ec, "Run "+id, err)
	}
	v.Run, v.Exceptions, v.Next = out.Run, out.Exceptions, out.Next
	v.Applicable = out.Run.Status == reconcile.StatusCompleted && (c.cfg.RunFresh == nil || c.cfg.RunFresh(out.Run))
	v.Run.Reason = out.Run.Notes()
	return c.render(ec, http.StatusOK, "run", "Run "+id, v)
}

func (c *Console) applyRun(ec echo.Context) error {
	id := ec.Param("id")
	if !validID(id) {
		return c.forbidden(ec, "no such run")
	}
	form, _ := ec.FormParams()
	body := map[string]any{}
	if cl := form["class"]; len(cl) > 0 {
		body["classes"] = cl
	}
	if loc := strings.TrimSpace(ec.FormValue("location")); loc != "" {
		body["locations"] = []string{loc}
	}
	var out struct {
		Applied reconcile.Applied `json:"applied"`
	}
	err := c.api(ec, http.MethodPost, "/v1/reconciliations/"+url.PathEscape(id)+"/apply", body, &out)
	var ae *apiErr
	if errors.As(err, &ae) {
		return c.render(ec, ae.Status, "error", "Run "+id, map[string]any{"Message": "The run was not applied: " + ae.Detail})
	}
	if err != nil {
		return err
	}
	u := ec.Get(ctxUser).(*user)
	c.audit(ec.Request().Context(), u, "apply-reconciliation", fmt.Sprintf("%s classes=%s locations=%s entries=%d", id,
		strings.Join(out.Applied.Classes, ","), strings.Join(out.Applied.Locations, ","), out.Applied.Entries))
	return redirectDone(ec, "/console/reconciliations/"+url.PathEscape(id), nil, "run-applied")
}
