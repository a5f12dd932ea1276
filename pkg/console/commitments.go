package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
)

// Bounds on the re-promises page. It reads the commitments topic from
// midnight UTC, at most the newest CommitmentsScan records of each
// partition, under the scan timeout, fetching little at a time as the
// dead-letter views do (fetchBytes). Anyone who may write the topic can
// put anything on it, so of each record it decodes only one of up to
// maxCommitmentBytes, keeps only its fields clipped to maxFieldChars (each
// a copy), and of all it reads keeps only the newest maxRepromiseRows that
// match: what it holds follows the page, not the topic.
const (
	defaultCommitmentsScan = 2000
	maxRepromiseRows       = 200
	maxCommitmentBytes     = 16 << 10
	maxFieldChars          = 128
	// maxPromiseDays is how many days of a promise a row shows; the rest
	// it counts.
	maxPromiseDays = 8
	// maxProblems is how many records that could not be read the page
	// names; it counts the others.
	maxProblems = 5
)

// The directions a promise moved in.
const (
	moveLater   = "later"
	moveEarlier = "earlier"
	moveFirst   = "first"
	moveClosed  = "closed"
	moveChanged = "changed"
)

// repromise is one change of an order line's promise, as the page shows
// it: a summary that keeps nothing of its record.
type repromise struct {
	Partition int32
	Offset    int64
	// Time is when the change was published: the record's timestamp.
	Time                           time.Time
	ID                             string
	OrderID, LineID, SKU, Location string
	Channel                        string
	Promise                        Promise
	Previous                       *Promise
	Late                           bool
	Move                           string
	CauseEntryType, CauseEventID   string
	PONumber, ASNID, CorrelationID string
	CauseTime                      time.Time
}

// newer says whether a was published after b: by time, then latest
// offset, then lowest partition.
func newer(a, b *repromise) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	if a.Offset != b.Offset {
		return a.Offset > b.Offset
	}
	return a.Partition < b.Partition
}

// repromiseFilter narrows the page: to changes caused by a purchase order
// or ship notice (PO holds part of its number, any case), to a SKU, to
// those that moved a promise later.
type repromiseFilter struct {
	PO, SKU string
	Late    bool
}

func repromiseFilterFrom(q url.Values) repromiseFilter {
	return repromiseFilter{PO: clip(strings.TrimSpace(q.Get("po")), 64), SKU: clip(strings.TrimSpace(q.Get("sku")), 64), Late: q.Get("late") == "1"}
}

// Narrowed says whether the filter leaves anything out.
func (f repromiseFilter) Narrowed() bool { return f.PO != "" || f.SKU != "" || f.Late }

func (f repromiseFilter) matches(r *repromise) bool {
	if f.Late && !r.Late {
		return false
	}
	if f.SKU != "" && !strings.EqualFold(f.SKU, r.SKU) {
		return false
	}
	if f.PO != "" {
		q := strings.ToLower(f.PO)
		return strings.Contains(strings.ToLower(r.PONumber), q) || strings.Contains(strings.ToLower(r.ASNID), q)
	}
	return true
}

// repromiseListing is what the re-promises page shows.
type repromiseListing struct {
	Day   string // today, UTC
	Topic string
	// Rows are the newest changes that match, newest first, at most
	// maxRepromiseRows.
	Rows []*repromise
	// Read counts today's records read; Matched and Late those that
	// match the filter, and of them those that moved a promise later.
	Read, Matched, Late int
	// Unreadable counts the records that are not a change of a promise;
	// Problems names the first few. Repeats counts the changes read
	// again, published twice.
	Unreadable, Repeats int
	Problems            []string
	// Capped says that some partition had more records today than the
	// page reads (Scan, the newest of each): the older were not read.
	Capped bool
	Scan   int
	// Cut says that the read ran out of time (Budget): the page covers
	// only the records read, the oldest of each partition's range.
	Cut    bool
	Budget time.Duration
	filter repromiseFilter
}

// Changes counts the changes of a promise read, each once.
func (l *repromiseListing) Changes() int { return l.Read - l.Unreadable - l.Repeats }

type commitmentsView struct {
	Filter  repromiseFilter
	Listing *repromiseListing
	Error   string
}

// commitmentsPage lists today's changes of order lines' promises from the
// commitments topic, newest first, with what caused each.
func (c *Console) commitmentsPage(ec echo.Context) error {
	v := commitmentsView{Filter: repromiseFilterFrom(ec.QueryParams())}
	l, err := c.listRepromises(ec.Request().Context(), v.Filter)
	if err != nil {
		c.log.Warn("console: list re-promises", "err", err)
		v.Error = "The promise changes could not be read: " + err.Error() + ". Check that Kafka is reachable, then reload the page."
		return c.render(ec, http.StatusServiceUnavailable, "commitments", "Re-promises", v)
	}
	v.Listing = l
	return c.render(ec, http.StatusOK, "commitments", "Re-promises", v)
}

// listRepromises reads today's part of the commitments topic, within its
// bounds, and lists the changes that match f. A read that runs out of time
// lists what it read, saying so.
func (c *Console) listRepromises(ctx context.Context, f repromiseFilter) (*repromiseListing, error) {
	topic := c.cfg.CommitmentsTopic
	switch {
	case topic == "" || len(c.cfg.Kafka) == 0:
		return nil, errors.New("the console is not configured with the brokers and commitments topic to read")
	case c.cfg.Codec == nil:
		return nil, errors.New("the console has no codec to decode records with")
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.ScanTimeout)
	defer cancel()
	release, err := c.scanSlot(sctx)
	if err != nil {
		return nil, errors.New("two other views are reading Kafka: reload in a moment")
	}
	defer release()
	since := c.now().UTC().Truncate(24 * time.Hour)
	l := &repromiseListing{Day: since.Format(time.DateOnly), Topic: topic, Scan: c.cfg.CommitmentsScan, Budget: c.cfg.ScanTimeout, filter: f}
	from, until, capped, err := c.commitmentRange(sctx, since)
	if err == nil && len(from) > 0 {
		l.Capped = capped
		conn := append(slices.Clip(c.cfg.Kafka), kgo.FetchMaxBytes(fetchBytes), kgo.FetchMaxPartitionBytes(fetchBytes))
		_, err = deadletter.Read(sctx, conn, topic, from, until, func(recs []*kgo.Record) error {
			for _, r := range recs {
				if !r.Timestamp.Before(since) {
					l.take(c.repromiseOf(sctx, r))
				}
			}
			return nil
		})
	}
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		l.Cut = true
		c.log.Warn("console: the re-promises listing ran out of time", "timeout", c.cfg.ScanTimeout, "read", l.Read)
	case err != nil:
		return nil, fmt.Errorf("read the commitments topic %s: %w", topic, err)
	}
	return l, nil
}

// commitmentRange is where today's reading of each partition begins and
// ends: from the first record at or after since, or the newest
// CommitmentsScan records when there are more (capped), to the last
// stable offset. A partition with nothing today is left out.
func (c *Console) commitmentRange(ctx context.Context, since time.Time) (from, until map[int32]int64, capped bool, err error) {
	topic := c.cfg.CommitmentsTopic
	cl, err := kgo.NewClient(slices.Clip(c.cfg.Kafka)...)
	if err != nil {
		return nil, nil, false, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("last stable offsets: %w", err)
	}
	starts, err := adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("offsets since %s: %w", since.Format(time.DateOnly), err)
	}
	from, until = map[int32]int64{}, map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		s, ok := starts.Lookup(topic, e.Partition)
		if !ok || s.Offset < 0 || s.Offset >= e.Offset {
			return
		}
		f := s.Offset
		if e.Offset-f > int64(c.cfg.CommitmentsScan) {
			f, capped = e.Offset-int64(c.cfg.CommitmentsScan), true
		}
		from[e.Partition], until[e.Partition] = f, e.Offset
	})
	return from, until, capped, nil
}

// take counts a record read and keeps it if it is among the newest that
// match; why says why a record is not a change of a promise.
func (l *repromiseListing) take(r *repromise, why string) {
	l.Read++
	if why != "" {
		l.Unreadable++
		if len(l.Problems) < maxProblems {
			l.Problems = append(l.Problems, why)
		}
		return
	}
	if !l.filter.matches(r) {
		return
	}
	// A change published again (after a crash) carries the same id:
	// the page counts and shows it once, when both are among its rows.
	if i := slices.IndexFunc(l.Rows, func(k *repromise) bool { return k.ID == r.ID }); i >= 0 {
		l.Repeats++
		if newer(l.Rows[i], r) {
			return
		}
		l.Rows = slices.Delete(l.Rows, i, i+1)
	} else {
		l.Matched++
		if r.Late {
			l.Late++
		}
	}
	i := sort.Search(len(l.Rows), func(i int) bool { return newer(r, l.Rows[i]) })
	if i >= maxRepromiseRows {
		return
	}
	l.Rows = slices.Insert(l.Rows, i, r)
	if len(l.Rows) > maxRepromiseRows {
		l.Rows[maxRepromiseRows] = nil
		l.Rows = l.Rows[:maxRepromiseRows]
	}
}

// repromiseOf decodes a record of the commitments topic into a summary,
// or says why it is not a change of a promise.
func (c *Console) repromiseOf(ctx context.Context, r *kgo.Record) (*repromise, string) {
	at := fmt.Sprintf("%d:%d", r.Partition, r.Offset)
	if len(r.Value) > maxCommitmentBytes {
		return nil, fmt.Sprintf("%s: %s bytes, more than the %s this page decodes", at, formatNumber(len(r.Value)), formatNumber(maxCommitmentBytes))
	}
	rec, err := c.cfg.Codec.Decode(ctx, r.Value)
	if err != nil {
		return nil, at + ": " + strings.Clone(clip(err.Error(), 200))
	}
	cc, ok := rec.(*events.CommitmentChanged)
	if !ok {
		return nil, at + ": a " + strings.Clone(clip(rec.AvroName(), 100)) + ", not a change of a promise"
	}
	field := func(s string) string { return strings.Clone(clip(s, maxFieldChars)) }
	opt := func(s *string) string {
		if s == nil {
			return ""
		}
		return field(*s)
	}
	out := &repromise{Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp, ID: field(cc.CommitmentID),
		OrderID: field(cc.OrderID), LineID: field(cc.LineID), SKU: field(cc.SKU), Location: field(cc.Location), Channel: opt(cc.Channel),
		Promise: promiseFrom(cc.Promise), Late: cc.Late, Move: move(cc),
		CauseEntryType: field(cc.CauseEntryType), CauseEventID: field(cc.CauseEventID),
		PONumber: opt(cc.CausePONumber), ASNID: opt(cc.CauseASNID), CorrelationID: opt(cc.CorrelationID), CauseTime: cc.CauseTime}
	if cc.Previous != nil {
		p := promiseFrom(*cc.Previous)
		out.Previous = &p
	}
	return out, ""
}

// promiseFrom is a promise as a record carries it, with its status as the
// API would give it, and at most maxPromiseDays of its days.
func promiseFrom(p events.LinePromise) Promise {
	out := Promise{ConfirmedNow: p.ConfirmedNow, Unpromised: p.Unpromised, Status: statusConfirmed}
	for i, d := range p.Promised {
		if i == maxPromiseDays {
			out.MoreDays = len(p.Promised) - i
			break
		}
		out.Promised = append(out.Promised, Inbound{Date: d.Date.UTC().Format(time.DateOnly), Quantity: d.Quantity})
	}
	switch {
	case p.OpenQuantity == 0:
		out.Status = statusClosed
	case p.Unpromised > 0:
		out.Status = statusBackordered
	case len(p.Promised) > 0:
		out.Status = statusPromised
	}
	return out
}

// move is the way a change moved a line's promise. Later is the record's
// own flag (the rule is ledger.Promise.Late); earlier is its converse: less
// unpromised, an earlier last day, or more confirmed now.
func move(cc *events.CommitmentChanged) string {
	now, before := cc.Promise, cc.Previous
	switch {
	case cc.Late:
		return moveLater
	case before == nil:
		return moveFirst
	case now.OpenQuantity == 0:
		return moveClosed
	case now.Unpromised < before.Unpromised || lastDate(now).Before(lastDate(*before)) || now.ConfirmedNow > before.ConfirmedNow:
		return moveEarlier
	}
	return moveChanged
}

func lastDate(p events.LinePromise) time.Time {
	if len(p.Promised) == 0 {
		return time.Time{}
	}
	return p.Promised[len(p.Promised)-1].Date
}
