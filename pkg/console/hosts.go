package console

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stockflow/stockflow/pkg/api"
)

// ExposedWithoutKeys says whether a server listening at addr (host:port)
// with these API keys lets anyone beyond this machine in: no keys, and an
// address other than a loopback one (":8080" and "0.0.0.0:8080" listen
// everywhere).
func ExposedWithoutKeys(addr string, keys map[string][]string) bool {
	if len(keys) > 0 {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.IsLoopback()
}

// WarnIfExposed logs a warning when ExposedWithoutKeys: call it where the
// server starts.
func WarnIfExposed(log *slog.Logger, addr string, keys map[string][]string) {
	if ExposedWithoutKeys(addr, keys) {
		log.Warn("authentication is off (no -api-keys) and the HTTP server listens beyond loopback: "+
			"the API and the console answer only requests addressed to localhost, 127.0.0.1 or [::1] (421 for any other name); "+
			"set -api-keys to serve other names, or listen on 127.0.0.1", "addr", addr)
	}
}

// onlyLoopback refuses, when authentication is off, every request not
// addressed to a loopback name. Without keys the console trusts whoever
// reaches it, which must then be this machine: a page of another site whose
// name is made to resolve to 127.0.0.1 (DNS rebinding) reaches the console
// with its own name as the Host and would otherwise read and act.
func (c *Console) onlyLoopback(next echo.HandlerFunc) echo.HandlerFunc {
	return func(ec echo.Context) error {
		if len(c.keys) > 0 || api.LoopbackHost(ec.Request().Host) {
			return next(ec)
		}
		c.log.Warn("console request to a name other than loopback refused: authentication is off", "host", clip(ec.Request().Host, 100), "client", ec.RealIP())
		b, _ := json.Marshal(map[string]any{
			"type": "about:blank", "title": "misdirected request", "status": http.StatusMisdirectedRequest,
			"detail": "authentication is off, so the console answers only at localhost, 127.0.0.1 or [::1]; set API keys to reach it by another name",
		})
		return ec.Blob(http.StatusMisdirectedRequest, "application/problem+json", b)
	}
}
