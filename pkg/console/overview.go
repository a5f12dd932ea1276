package console

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

func (c *Console) overview(ec echo.Context) error {
	return c.render(ec, http.StatusOK, "overview", "Overview", nil)
}

// Run keeps the overview's history until ctx ends.
func (c *Console) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
