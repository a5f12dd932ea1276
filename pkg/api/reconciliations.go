package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockflow/stockflow/pkg/reconcile"
)

// Reconciliation runs over HTTP: list them, read one with its exceptions
// (filtered, paged), and apply a completed one's corrections (admin).

func (ch *Checkout) registerReconciliations(s *Server, guard func(string) []echo.MiddlewareFunc) {
	if ch.cfg.Reconciler == nil {
		return
	}
	s.get("/v1/reconciliations", ch.listRuns, guard("read")...)
	s.get("/v1/reconciliations/:id", ch.getRun, guard("read")...)
	s.e.POST("/v1/reconciliations/:id/apply", ch.applyRun, guard("admin")...)
}

func (ch *Checkout) listRuns(c echo.Context) error {
	limit, err := intParam(c, "limit", 50, 1, 200)
	if err != nil {
		return err
	}
	var before time.Time
	if v := c.QueryParam("before"); v != "" {
		if before, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return badRequest("before", fmt.Sprintf("%s is not an RFC 3339 time", excerpt(v)))
		}
	}
	runs, err := ch.cfg.Reconciler.Runs().List(c.Request().Context(), limit, before)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"runs": runs})
}

func (ch *Checkout) getRun(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var f reconcile.Filter
	if f.Classes, err = listParam(c, "class", func(v string) error {
		if v == reconcile.Match || !slices.Contains(reconcile.AllClasses, v) {
			return fmt.Errorf("%s is not an exception class (%s)", excerpt(v), strings.Join(reconcile.AllClasses[1:], ", "))
		}
		return nil
	}); err != nil {
		return err
	}
	if f.Locations, err = listParam(c, "location", func(v string) error { return checkID("location", v) }); err != nil {
		return err
	}
	limit, err := intParam(c, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	var cursor int64
	if v := c.QueryParam("cursor"); v != "" {
		if cursor, err = strconv.ParseInt(v, 10, 64); err != nil || cursor < 0 {
			return badRequest("cursor", fmt.Sprintf("%s is not a cursor from next_cursor", excerpt(v)))
		}
	}
	ctx := c.Request().Context()
	run, err := ch.cfg.Reconciler.Runs().Get(ctx, id)
	if errors.Is(err, reconcile.ErrNotFound) {
		return notFound("no reconciliation run " + id)
	}
	if err != nil {
		return err
	}
	xs, next, err := ch.cfg.Reconciler.Runs().Exceptions(ctx, id, f, cursor, limit)
	if errors.Is(err, reconcile.ErrFilterTooWide) {
		classes := len(f.Classes)
		if classes == 0 {
			classes = len(reconcile.AllClasses) - 1
		}
		return badRequest("location", fmt.Sprintf("%d classes times %d locations: %v; ask for fewer locations at once",
			classes, len(f.Locations), err))
	}
	if err != nil {
		return err
	}
	nc := ""
	if next > 0 {
		nc = strconv.FormatInt(next, 10)
	}
	return c.JSON(http.StatusOK, map[string]any{"run": run, "exceptions": xs, "next_cursor": nc})
}

type applyRequest struct {
	Classes   []string `json:"classes"`
	Locations []string `json:"locations"`
}

func (ch *Checkout) applyRun(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var req applyRequest
	if c.Request().ContentLength != 0 {
		if err := decodeBody(c, &req); err != nil {
			return err
		}
	}
	for i, cl := range req.Classes {
		if !slices.Contains(reconcile.Correctable, cl) {
			return badRequest(fmt.Sprintf("classes[%d]", i), fmt.Sprintf("%s cannot be applied (correctable: %s)", excerpt(cl), strings.Join(reconcile.Correctable, ", ")))
		}
	}
	for i, l := range req.Locations {
		if err := checkID(fmt.Sprintf("locations[%d]", i), l); err != nil {
			return err
		}
	}
	by := "anonymous (no API keys configured) from " + clientOf(c).String()
	if k, ok := c.Get(ctxKey).(string); ok {
		by = "api key " + k
	}
	// Once begun, an application runs to its end and is recorded, whether
	// or not the client waits for it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 5*time.Minute)
	defer cancel()
	a, err := ch.cfg.Reconciler.Apply(ctx, id, reconcile.ApplyRequest{Classes: req.Classes, Locations: req.Locations, By: by})
	switch {
	case errors.Is(err, reconcile.ErrNotFound):
		return notFound("no reconciliation run " + id)
	case errors.Is(err, reconcile.ErrNotApplicable):
		return &problemError{Problem{Type: "about:blank", Title: "run cannot be applied", Status: http.StatusConflict, Detail: err.Error()}}
	case err != nil:
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"run_id": id, "applied": a})
}

func notFound(detail string) error {
	return &problemError{Problem{Type: "about:blank", Title: "not found", Status: http.StatusNotFound, Detail: detail}}
}

// intParam reads an optional integer query parameter within lo..hi.
func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest(name, fmt.Sprintf("%s is not an integer in %d..%d", excerpt(v), lo, hi))
	}
	return n, nil
}

// listParam reads a query parameter given as a comma-separated list, or
// repeated, checking each value.
func listParam(c echo.Context, name string, check func(string) error) (map[string]bool, error) {
	vals := c.QueryParams()[name]
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]bool{}
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ",") {
			if err := check(part); err != nil {
				var pe *problemError
				if errors.As(err, &pe) {
					pe.p.Field = name
					return nil, pe
				}
				return nil, badRequest(name, err.Error())
			}
			out[part] = true
		}
	}
	return out, nil
}
