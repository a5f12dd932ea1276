package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
)

// A class-wide replay produces deadletter.ReplayBatch dead letters at a
// time (fewer when they pass replayBatchBytes), marking each batch
// replayed once it is written, and holds no more than a batch. A confirmed
// one works for Config.ReplayBudget (default 20 s), then stops between
// batches, so that its page is answered inside the HTTP server's 30 s
// write timeout; the batch being written then is written and marked
// whether or not the viewer waits, within actionTimeout.
const (
	replayBatchBytes    = 8 << 20
	defaultReplayBudget = 20 * time.Second
)

// replayClassSteps puts a confirmation before a class-wide replay: the
// exception queue's replay-class forms ask for step "confirm", which shows
// how many dead letters would go to which topic, and that page's form asks
// for step "replay", which replays exactly the dead letters that were in
// the topic when it was shown, still open then. A form without a step
// goes on to the next handler.
func (c *Console) replayClassSteps(next echo.HandlerFunc) echo.HandlerFunc {
	return func(ec echo.Context) error {
		if ec.FormValue("dlq") != "" || strings.TrimSpace(ec.FormValue("class")) == "" {
			return next(ec)
		}
		switch ec.FormValue("step") {
		case "confirm":
			return c.confirmReplayClass(ec)
		case "replay":
			return c.replayClassConfirmed(ec)
		}
		return next(ec)
	}
}

// replayPlan is what a class-wide replay would do, for its confirmation.
type replayPlan struct {
	Class, SourceTopic string
	// Targets are how many open dead letters go to each topic: each to
	// the source topic it came from, which deadletter.ReplayTargets allows.
	Targets []replayTarget
	Total   int
	// Refused are the open ones ReplayTargets refuses, which stay open;
	// Reasons says why for the first few.
	Refused int
	Reasons []string
	// Until is where the topic ended when the plan was made, per
	// partition ("p:o,p:o"): the replay goes no further.
	Until  string
	Batch  int
	Cut    bool
	Budget time.Duration
	Return string
	Back   template.URL
	// After a replay that stopped at its budget: Replayed were replayed
	// and marked, Total of those the confirmation counted remain open,
	// and From is where the next replay goes on reading ("p:o,p:o").
	Stopped  bool
	Replayed int
	From     string
}

type replayTarget struct {
	Topic string
	Count int
}

func (c *Console) confirmReplayClass(ec echo.Context) error {
	f := filterFrom(formQuery(ec.FormValue("return")))
	class, topic := strings.TrimSpace(ec.FormValue("class")), strings.TrimSpace(ec.FormValue("source_topic"))
	p, err := c.planClassReplay(ec.Request().Context(), class, topic)
	if err != nil {
		c.log.Warn("console: plan a class replay", "class", class, "err", err)
		return c.showExceptions(ec, http.StatusServiceUnavailable, f, "The dead letters could not be read: "+err.Error()+". Nothing was done; try again.")
	}
	p.Return, p.Back = f.Encode(), f.pageURL(f.Before)
	return c.render(ec, http.StatusOK, "replayclass", "Replay class "+clip(class, 100), p)
}

// planClassReplay counts the open dead letters of class (from topic, when
// set) by the topic each would be replayed to, within the scan timeout.
func (c *Console) planClassReplay(ctx context.Context, class, topic string) (*replayPlan, error) {
	sctx, done, err := c.startScan(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	p := &replayPlan{Class: class, SourceTopic: topic, Batch: deadletter.ReplayBatch, Budget: c.cfg.ScanTimeout}
	counts := map[string]int{}
	ends, err := c.readDLQ(sctx, nil, nil, func(recs []*kgo.Record) error {
		return c.eachOpen(sctx, recs, class, topic, func(d deadletter.DeadLetter) error {
			if err := c.cfg.Replay.Check(sctx, d); err != nil {
				if p.Refused++; len(p.Reasons) < 5 {
					p.Reasons = append(p.Reasons, fmt.Sprintf("%d:%d %s", d.Partition, d.Offset, clip(err.Error(), 300)))
				}
				return nil
			}
			counts[d.SourceTopic]++
			p.Total++
			return nil
		})
	})
	switch {
	case err != nil && ends != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		p.Cut = true
	case err != nil:
		return nil, err
	}
	for t, n := range counts {
		p.Targets = append(p.Targets, replayTarget{t, n})
	}
	slices.SortFunc(p.Targets, func(a, b replayTarget) int { return strings.Compare(a.Topic, b.Topic) })
	p.Until = formatOffsets(ends)
	return p, nil
}

// eachOpen calls fn for each of recs that is an open dead letter of class
// (from topic, when set).
func (c *Console) eachOpen(ctx context.Context, recs []*kgo.Record, class, topic string, fn func(deadletter.DeadLetter) error) error {
	var ds []deadletter.DeadLetter
	for _, r := range recs {
		if d := deadletter.Describe(r); d.Class == class && (topic == "" || d.SourceTopic == topic) {
			ds = append(ds, d)
		}
	}
	described, err := c.described(ctx, ds)
	if err != nil {
		return err
	}
	for i, d := range described {
		if d.State == stateOpen {
			if err := fn(ds[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// replayClassConfirmed replays what a confirmation showed, from where a
// replay that stopped at its budget left off (form field from), for at
// most the replay budget: one that stops says how many it replayed and
// how many remain, to confirm again.
func (c *Console) replayClassConfirmed(ec echo.Context) error {
	f := filterFrom(formQuery(ec.FormValue("return")))
	class, topic := strings.TrimSpace(ec.FormValue("class")), strings.TrimSpace(ec.FormValue("source_topic"))
	until, ok := parseOffsets(ec.FormValue("until"))
	var from map[int32]int64 // nil: each partition from its start
	if s := ec.FormValue("from"); s != "" && ok {
		from, ok = parseOffsets(s)
	}
	open, err := strconv.Atoi(ec.FormValue("open"))
	switch {
	case !ok || err != nil || open < 0:
		return c.showExceptions(ec, http.StatusBadRequest, f, "The replay's confirmation is not one the console made: start again from the class. Nothing was done.")
	case c.cfg.Producer == nil:
		return c.showExceptions(ec, http.StatusServiceUnavailable, f, "Replay is not available: the console has no Kafka producer.")
	}
	u := ec.Get(ctxUser).(*user)
	what := "class " + class
	if topic != "" {
		what += " from " + topic
	}
	// The slot is given back before any page is shown: the exception
	// queue reads the topic with one of its own.
	res, err := c.replayClassWithin(ec.Request().Context(), u, what, class, topic, from, until)
	switch {
	case errors.Is(err, errScansBusy):
		return c.showExceptions(ec, http.StatusServiceUnavailable, f, err.Error()+" Nothing was done.")
	case err != nil:
		c.log.Error("console: class replay", "class", class, "replayed", res.Replayed, "err", err)
		return c.showExceptions(ec, http.StatusBadGateway, f, fmt.Sprintf("The replay of %s stopped: %v. %d were replayed and marked before it stopped; "+
			"the others stay open. Replaying again is safe: an event is applied once.", what, err, res.Replayed))
	case res.Stopped:
		p := &replayPlan{Class: class, SourceTopic: topic, Batch: deadletter.ReplayBatch, Budget: c.cfg.ReplayBudget, Until: formatOffsets(until),
			Stopped: true, Replayed: res.Replayed, Total: max(0, open-res.Replayed), From: formatOffsets(res.next(from, until))}
		p.Return, p.Back = f.Encode(), f.pageURL(f.Before)
		return c.render(ec, http.StatusOK, "replayclass", "Replay class "+clip(class, 100), p)
	}
	q, _ := url.ParseQuery(f.Encode())
	if res.Replayed == 0 {
		return redirectDone(ec, "/console/exceptions", q, "dlq-none-open")
	}
	return redirectDone(ec, "/console/exceptions", q, "dlq-replayed-class")
}

// replayClassWithin runs replayClassInBatches with a scan slot, for at
// most the replay budget, and records what it replayed in the audit log.
// Once begun, the batch being written and its marks go on if the viewer
// leaves.
func (c *Console) replayClassWithin(rctx context.Context, u *user, what, class, topic string, from, until map[int32]int64) (classReplay, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(rctx), actionTimeout)
	defer cancel()
	budget, stop := context.WithTimeout(ctx, c.cfg.ReplayBudget)
	defer stop()
	release, err := c.scanSlot(budget)
	if err != nil {
		return classReplay{}, err
	}
	defer release()
	res, err := c.replayClassInBatches(ctx, budget, u, class, topic, from, until)
	if res.Replayed > 0 {
		c.audit(ctx, u, auditReplayClass, fmt.Sprintf("%s: %d replayed (%s)", what, res.Replayed, res.named()))
	}
	return res, err
}

// classReplay is what a class-wide replay did.
type classReplay struct {
	Replayed, Refused int
	first             []dlqID // the first few, for the audit log
	// Stopped says that the replay stopped at its budget; reached is
	// where it had read each partition to, every dead letter before
	// replayed or left alone.
	Stopped bool
	reached map[int32]int64
}

func (r classReplay) named() string {
	var b strings.Builder
	for i, id := range r.first {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(id.String())
	}
	if n := r.Replayed - len(r.first); n > 0 {
		fmt.Fprintf(&b, " and %d more", n)
	}
	return b.String()
}

// next is where a replay that began at from and stopped goes on: where it
// reached, else where it began, in each partition of until.
func (r classReplay) next(from, until map[int32]int64) map[int32]int64 {
	out := map[int32]int64{}
	for p := range until {
		out[p] = max(from[p], r.reached[p])
	}
	return out
}

// replayClassInBatches replays the open dead letters of class (from topic,
// when set) from from (nil: the start) below until, in batches: each is
// written to its source topics and then marked replayed before the next is
// read. Those ReplayTargets refuses stay open. It reads until budget ends,
// then writes the batch it holds and stops, saying so (Stopped); writing
// and marking go by ctx.
func (c *Console) replayClassInBatches(ctx, budget context.Context, u *user, class, topic string, from, until map[int32]int64) (classReplay, error) {
	res := classReplay{reached: map[int32]int64{}}
	var batch []deadletter.DeadLetter
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := c.replayAndMark(ctx, u, batch); err != nil {
			return err
		}
		for _, d := range batch {
			if len(res.first) < 20 {
				res.first = append(res.first, dlqID{d.Partition, d.Offset})
			}
		}
		res.Replayed += len(batch)
		clear(batch)
		batch, size = batch[:0], 0
		return nil
	}
	_, err := c.readDLQ(budget, from, until, func(recs []*kgo.Record) error {
		err := c.eachOpen(ctx, recs, class, topic, func(d deadletter.DeadLetter) error {
			if c.cfg.Replay.Check(ctx, d) != nil {
				res.Refused++
				return nil
			}
			batch = append(batch, detach(d))
			if size += len(d.Record.Value) + len(d.Record.Key); len(batch) >= deadletter.ReplayBatch || size >= replayBatchBytes {
				return flush()
			}
			return nil
		})
		for _, r := range recs {
			res.reached[r.Partition] = max(res.reached[r.Partition], r.Offset+1)
		}
		return err
	})
	if err != nil && budget.Err() != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		res.Stopped, err = true, nil
	}
	if err == nil {
		err = flush()
	}
	return res, err
}

// detach copies the dead letter's record, so that a batch does not keep
// the buffers of the fetches it came from.
func detach(d deadletter.DeadLetter) deadletter.DeadLetter {
	r := *d.Record
	r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	r.Headers = slices.Clone(r.Headers)
	for i := range r.Headers {
		r.Headers[i].Value = bytes.Clone(r.Headers[i].Value)
	}
	d.Record = &r
	return d
}

// replayAndMark writes ds to their source topics and then marks them
// replayed. The caller has checked them with ReplayTargets.
func (c *Console) replayAndMark(ctx context.Context, u *user, ds []deadletter.DeadLetter) error {
	if err := c.produceReplays(ctx, ds); err != nil {
		return err
	}
	ids := make([]dlqID, len(ds))
	stamps := map[dlqID]int64{}
	for i, d := range ds {
		ids[i] = dlqID{d.Partition, d.Offset}
		stamps[ids[i]] = d.Record.Timestamp.UnixMilli()
	}
	return c.setMarks(ctx, ids, stamps, dlqMark{State: stateReplayed, At: c.now().UTC(), By: u.Label})
}

// produceReplays writes ds, read whole (findDeadLetters with offsets), to
// their source topics, as deadletter.Replay does but without reading the
// topic again. The caller has checked them with ReplayTargets.
func (c *Console) produceReplays(ctx context.Context, ds []deadletter.DeadLetter) error {
	recs := make([]*kgo.Record, len(ds))
	for i, d := range ds {
		recs[i] = deadletter.ReplayRecord(c.cfg.DLQTopic, d)
	}
	if err := c.cfg.Producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// formatOffsets writes offsets per partition as "p:o,p:o", by partition.
func formatOffsets(m map[int32]int64) string {
	ps := slices.Sorted(func(yield func(int32) bool) {
		for p := range m {
			if !yield(p) {
				return
			}
		}
	})
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = dlqID{p, m[p]}.String()
	}
	return strings.Join(parts, ",")
}

// parseOffsets reads formatOffsets' form; "" is no partition at all.
func parseOffsets(s string) (map[int32]int64, bool) {
	m := map[int32]int64{}
	if s == "" {
		return m, true
	}
	for part := range strings.SplitSeq(s, ",") {
		id, ok := parseDLQID(part)
		if !ok || len(m) > 10000 {
			return nil, false
		}
		m[id.Partition] = id.Offset
	}
	return m, true
}

// formQuery reads a query string carried in a form field.
func formQuery(s string) url.Values {
	v, _ := url.ParseQuery(s)
	return v
}
