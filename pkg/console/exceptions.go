package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/stockflow/stockflow/pkg/deadletter"
)

// How long a page may take (its listing stops reading the dead-letter
// topic at Config.ScanTimeout, 10 s by default), and an action to read what
// it acts on, replay and record the outcome.
const (
	scanTimeout   = 20 * time.Second
	actionTimeout = 2 * time.Minute
)

// maxReason bounds a discard's reason, which the audit log and every
// viewer of the dead letter carry.
const maxReason = 200

// The audit log's actions on dead letters.
const (
	auditReplay      = "replay"
	auditReplayClass = "replay-class"
	auditDiscard     = "discard"
)

type exceptionsView struct {
	Filter  dlqFilter
	States  []string
	Topic   string
	Listing *dlqListing
	// ClassOpen counts the open dead letters of the filtered class (and
	// source topic), which the replay-class form above the list replays.
	ClassOpen int
	RawLimit  int
	Error     string
	Audit     []auditEntry
}

// exceptionsPage is the exception queue: the dead letters grouped by class
// and source topic, newest first, with what was done about each.
func (c *Console) exceptionsPage(ec echo.Context) error {
	return c.showExceptions(ec, http.StatusOK, filterFrom(ec.QueryParams()), "")
}

// showExceptions renders the page for f, with problem, when set, as an
// error above it: a refused action keeps the viewer where they were.
func (c *Console) showExceptions(ec echo.Context, status int, f dlqFilter, problem string) error {
	ctx, cancel := context.WithTimeout(ec.Request().Context(), scanTimeout)
	defer cancel()
	v := exceptionsView{Filter: f, States: dlqStates, Topic: c.cfg.DLQTopic, RawLimit: maxRawBytes, Error: problem}
	l, err := c.listDeadLetters(ctx, f)
	if err != nil {
		c.log.Warn("console: list dead letters", "err", err)
		msg := "The dead letters could not be read: " + err.Error() + ". Check that Kafka and Redis are reachable, then reload the page."
		v.Error = strings.TrimSpace(problem + " " + msg)
		if status == http.StatusOK {
			status = http.StatusServiceUnavailable
		}
	} else {
		v.Listing = l
		v.ClassOpen = classOpen(l, f)
	}
	v.Audit = c.dlqAudit(ctx, 10)
	return c.render(ec, status, "exceptions", "Exception queue", v)
}

// classOpen counts the open dead letters a replay of the filtered class
// would replay; 0 without a class filter.
func classOpen(l *dlqListing, f dlqFilter) int {
	if f.Class == "" {
		return 0
	}
	n := 0
	for _, g := range l.Groups {
		if g.Class == f.Class && (f.SourceTopic == "" || g.SourceTopic == f.SourceTopic) {
			n += g.Open
		}
	}
	return n
}

// dlqAudit is the newest n audit entries about dead letters.
func (c *Console) dlqAudit(ctx context.Context, n int) []auditEntry {
	var out []auditEntry
	for _, e := range c.recentAudit(ctx, 1000) {
		if e.Action == auditReplay || e.Action == auditReplayClass || e.Action == auditDiscard {
			if out = append(out, e); len(out) == n {
				break
			}
		}
	}
	return out
}

// returnFilter is the page filter a form was sent from, so that the
// answer shows the page as it was. Only the filter's own fields are read.
func returnFilter(ec echo.Context) dlqFilter {
	v, _ := url.ParseQuery(ec.FormValue("return"))
	return filterFrom(v)
}

// done redirects to the page, as filtered before, with the banner code
// of what was done (flashes).
func done(ec echo.Context, f dlqFilter, code string) error {
	q, _ := url.ParseQuery(f.Encode())
	return redirectDone(ec, "/console/exceptions", q, code)
}

// actionContext outlives the request: once a replay has begun, the viewer
// closing the tab must not stop its outcome from being recorded.
func actionContext(ec echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ec.Request().Context()), actionTimeout)
}

// replay replays one open dead letter (form field dlq) or every open dead
// letter of a class (class, optionally source_topic) to their source
// topics, and marks them replayed. Replaying is safe to repeat, as the
// pipeline applies an event once by its event_id, so the replay comes
// first and the mark after: a failure in between leaves a dead letter open,
// never marked replayed without having been.
func (c *Console) replay(ec echo.Context) error {
	f := returnFilter(ec)
	if c.cfg.Producer == nil {
		return c.showExceptions(ec, http.StatusServiceUnavailable, f, "Replay is not available: the console has no Kafka producer.")
	}
	if s := ec.FormValue("dlq"); s != "" {
		id, ok := parseDLQID(s)
		if !ok {
			return c.showExceptions(ec, http.StatusBadRequest, f, "“"+clip(s, 40)+"” is not a dead letter: expected partition:offset.")
		}
		return c.replayOne(ec, f, id)
	}
	if strings.TrimSpace(ec.FormValue("class")) == "" {
		return c.showExceptions(ec, http.StatusBadRequest, f, "Choose a dead letter or a class to replay.")
	}
	// A class goes through its confirmation first (replayClassSteps).
	return c.confirmReplayClass(ec)
}

func (c *Console) replayOne(ec echo.Context, f dlqFilter, id dlqID) error {
	ctx, cancel := actionContext(ec)
	defer cancel()
	d, status, problem := c.openDeadLetter(ctx, id)
	if problem != "" {
		return c.showExceptions(ec, status, f, problem)
	}
	if err := c.cfg.Replay.Check(ctx, d.DeadLetter); err != nil {
		return c.showExceptions(ec, http.StatusConflict, f, "Dead letter "+id.String()+" cannot be replayed: "+err.Error()+". Discard it with a reason instead.")
	}
	if err := c.produceReplays(ctx, []deadletter.DeadLetter{d.DeadLetter}); err != nil {
		return c.replayFailed(ec, f, err)
	}
	u := ec.Get(ctxUser).(*user)
	c.audit(ctx, u, auditReplay, fmt.Sprintf("dead letter %s (%s from %s %d:%d)",
		id, d.Class, d.SourceTopic, d.SourcePartition, d.SourceOffset))
	mark := dlqMark{State: stateReplayed, At: c.now().UTC(), By: u.Label}
	if err := c.setMarks(ctx, []dlqID{id}, map[dlqID]int64{id: d.Record.Timestamp.UnixMilli()}, mark); err != nil {
		return c.markFailed(ec, f, 1, err)
	}
	return done(ec, f, "dlq-replayed")
}

// openDeadLetter reads dead letter id and checks that it is open; else it
// says why not, and with which status.
func (c *Console) openDeadLetter(ctx context.Context, id dlqID) (*deadLetter, int, string) {
	ds, err := c.findDeadLetters(ctx, []dlqID{id})
	if err != nil {
		c.log.Warn("console: read dead letter", "dlq", id.String(), "err", err)
		return nil, http.StatusServiceUnavailable, "Dead letter " + id.String() + " could not be read: " + err.Error() + ". Nothing was done; try again."
	}
	if len(ds) == 0 {
		return nil, http.StatusNotFound, "There is no dead letter " + id.String() + " in the dead-letter topic. Nothing was done."
	}
	d := ds[0]
	if d.State != stateOpen {
		return nil, http.StatusConflict, fmt.Sprintf("Dead letter %s is already %s (%s by %s). Nothing was done.",
			id, d.State, d.Mark.At.UTC().Format("2006-01-02 15:04:05 UTC"), d.Mark.By)
	}
	return d, 0, ""
}

func (c *Console) replayFailed(ec echo.Context, f dlqFilter, err error) error {
	c.log.Error("console: replay", "err", err)
	return c.showExceptions(ec, http.StatusBadGateway, f, "The replay failed: "+err.Error()+
		". Some records may have reached their topics; nothing was marked replayed. Replaying again is safe: an event is applied once.")
}

func (c *Console) markFailed(ec echo.Context, f dlqFilter, n int, err error) error {
	c.log.Error("console: record replayed dead letters", "count", n, "err", err)
	return c.showExceptions(ec, http.StatusInternalServerError, f, fmt.Sprintf(
		"%s replayed, but not recorded as replayed (%v): they still show as open. Replaying them again is safe.",
		count(n, "dead letter"), err))
}

// count is n things, in words: "1 dead letter", "2 dead letters".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return formatNumber(n) + " " + thing + "s"
}

// discard closes an open dead letter without replaying it, for a reason
// that stays with it.
func (c *Console) discard(ec echo.Context) error {
	f := returnFilter(ec)
	id, ok := parseDLQID(ec.FormValue("dlq"))
	if !ok {
		return c.showExceptions(ec, http.StatusBadRequest, f, "Choose a dead letter to discard.")
	}
	reason := strings.Join(strings.Fields(ec.FormValue("reason")), " ")
	switch {
	case reason == "":
		return c.showExceptions(ec, http.StatusBadRequest, f, "Say why dead letter "+id.String()+" is discarded: the reason is required. Nothing was done.")
	case utf8.RuneCountInString(reason) > maxReason:
		return c.showExceptions(ec, http.StatusBadRequest, f, fmt.Sprintf("The reason to discard dead letter %s is longer than %d characters. Nothing was done.", id, maxReason))
	}
	ctx, cancel := actionContext(ec)
	defer cancel()
	d, status, problem := c.openDeadLetter(ctx, id)
	if problem != "" {
		return c.showExceptions(ec, status, f, problem)
	}
	u := ec.Get(ctxUser).(*user)
	marked, err := c.markIfOpen(ctx, id, d.Record.Timestamp.UnixMilli(), dlqMark{State: stateDiscarded, At: c.now().UTC(), By: u.Label, Reason: reason})
	if err != nil {
		c.log.Error("console: discard dead letter", "dlq", id.String(), "err", err)
		return c.showExceptions(ec, http.StatusServiceUnavailable, f, "Dead letter "+id.String()+" was not discarded: "+err.Error()+".")
	}
	if !marked {
		return c.showExceptions(ec, http.StatusConflict, f, "Dead letter "+id.String()+" was acted on by someone else a moment ago. Nothing was done.")
	}
	c.audit(ctx, u, auditDiscard, fmt.Sprintf("dead letter %s (%s from %s %d:%d): %s", id, d.Class, d.SourceTopic, d.SourcePartition, d.SourceOffset, reason))
	return done(ec, f, "dlq-discarded")
}
