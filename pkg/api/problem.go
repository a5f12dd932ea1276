package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Field names the request field at fault, when there is one.
	Field string `json:"field,omitempty"`
}

// problemError carries a Problem through echo's error path.
type problemError struct{ p Problem }

func (e *problemError) Error() string { return e.p.Title + ": " + e.p.Detail }

// badRequest is a 400 naming the field at fault.
func badRequest(field, detail string) error {
	return &problemError{Problem{Type: "about:blank", Title: "invalid request", Status: http.StatusBadRequest, Detail: detail, Field: field}}
}

// errorHandler writes every error as application/problem+json and never
// exposes internals: an unexpected error is logged and answered with a bare 500.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var p Problem
	var pe *problemError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &pe):
		p = pe.p
	case errors.As(err, &he):
		p = Problem{Type: "about:blank", Title: http.StatusText(he.Code), Status: he.Code}
		if msg, ok := he.Message.(string); ok && he.Code < 500 {
			p.Detail = msg
		}
		if allow := c.Response().Header().Get(echo.HeaderAllow); he.Code == http.StatusMethodNotAllowed && allow != "" {
			p.Detail = "this route answers " + allow
		}
	default:
		s.log.Error("request failed", "method", c.Request().Method, "route", c.Path(), "err", err)
		p = Problem{Type: "about:blank", Title: http.StatusText(http.StatusInternalServerError), Status: http.StatusInternalServerError}
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Status == http.StatusRequestTimeout {
		// The rest of the body may still come: this connection is done.
		c.Response().Header().Set(echo.HeaderConnection, "close")
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	if c.Request().Method == http.MethodHead {
		return
	}
	if err := echo.New().JSONSerializer.Serialize(c, p, ""); err != nil {
		s.log.Warn("write problem", "err", err)
	}
}
