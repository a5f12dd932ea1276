package console

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
)

// flashes are the status banner's messages, by the code an action's
// redirect puts in ?done=. The banner shows only these: a link anyone can
// make must not put words in the console's mouth. Details (which record,
// how many) are in the audit log the pages show.
var flashes = map[string]string{
	"signed-out":         "You are signed out.",
	"hold-released":      "Hold released: its stock is available to others again.",
	"hold-not-found":     "The hold was not found: it was already released or had expired.",
	"dlq-replayed":       "Dead letter replayed to its source topic. If it fails again, it comes back as a new dead letter.",
	"dlq-replayed-class": "The open dead letters were replayed to their source topics (how many: see the recent actions). Those that fail again come back as new dead letters.",
	"dlq-none-open":      "There were no open dead letters to replay.",
	"dlq-discarded":      "Dead letter discarded.",
	"run-applied":        "Applied: the run's correction entries were written to the ledger.",
}

// flash is the banner for this request: the message of its ?done= code,
// or nothing.
func (c *Console) flash(ec echo.Context) string {
	return flashes[ec.QueryParam("done")]
}

// redirectDone redirects to path with query q and the banner code.
func redirectDone(ec echo.Context, path string, q url.Values, code string) error {
	if q == nil {
		q = url.Values{}
	}
	q.Set("done", code)
	return ec.Redirect(http.StatusSeeOther, path+"?"+q.Encode())
}
