package console

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (c *Console) exceptionsPage(ec echo.Context) error {
	return c.render(ec, http.StatusOK, "exceptions", "Exceptions", nil)
}

func (c *Console) replay(ec echo.Context) error  { return echo.ErrNotImplemented }
func (c *Console) discard(ec echo.Context) error { return echo.ErrNotImplemented }
