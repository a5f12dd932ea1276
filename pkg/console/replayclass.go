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
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/processors"
)

// A class-wide replay produces replayBatch dead letters at a time (fewer
// when they pass replayBatchBytes), marking each batch replayed once it is
// written, and holds no more than a batch.
const (
	replayBatch      = 100
	replayBatchBytes = 8 << 20
	replayTimeout    = 2 * time.Minute
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
	// the source topic it came from, which processors.ReplayTargets allows.
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
	if err := c.dlqConfigured(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.ScanTimeout)
	defer cancel()
	release, err := c.scanSlot(sctx)
	if err != nil {
		return nil, err
	}
	defer release()
	p := &replayPlan{Class: class, SourceTopic: topic, Batch: replayBatch, Budget: c.cfg.ScanTimeout}
	counts := map[string]int{}
	ends, err := c.readDLQ(sctx, nil, nil, func(recs []*kgo.Record) error {
		return c.eachOpen(sctx, recs, class, topic, func(d processors.DeadLetter) error {
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
func (c *Console) eachOpen(ctx context.Context, recs []*kgo.Record, class, topic string, fn func(processors.DeadLetter) error) error {
	var ds []processors.DeadLetter
	for _, r := range recs {
		if d := processors.DescribeDeadLetter(r); d.Class == class && (topic == "" || d.SourceTopic == topic) {
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

// replayClassConfirmed replays what a confirmation showed.
func (c *Console) replayClassConfirmed(ec echo.Context) error {
	f := filterFrom(formQuery(ec.FormValue("return")))
	class, topic := strings.TrimSpace(ec.FormValue("class")), strings.TrimSpace(ec.FormValue("source_topic"))
	until, ok := parseOffsets(ec.FormValue("until"))
	switch {
	case !ok:
		return c.showExceptions(ec, http.StatusBadRequest, f, "The replay's confirmation is not one the console made: start again from the class. Nothing was done.")
	case c.cfg.Producer == nil:
		return c.showExceptions(ec, http.StatusServiceUnavailable, f, "Replay is not available: the console has no Kafka producer.")
	}
	// Once begun, the replay and its marks go on if the viewer leaves.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ec.Request().Context()), replayTimeout)
	defer cancel()
	release, err := c.scanSlot(ctx)
	if err != nil {
		return c.showExceptions(ec, http.StatusServiceUnavailable, f, err.Error()+" Nothing was done.")
	}
	defer release()
	u := ec.Get(ctxUser).(*user)
	res, err := c.replayClassInBatches(ctx, u, class, topic, until)
	what := "class " + class
	if topic != "" {
		what += " from " + topic
	}
	if res.Replayed > 0 {
		c.audit(ctx, u, auditReplayClass, fmt.Sprintf("%s: %d replayed (%s)", what, res.Replayed, res.named()))
	}
	if err != nil {
		c.log.Error("console: class replay", "class", class, "replayed", res.Replayed, "err", err)
		return c.showExceptions(ec, http.StatusBadGateway, f, fmt.Sprintf("The replay of %s stopped: %v. %d were replayed and marked before it stopped; "+
			"the others stay open. Replaying again is safe: an event is applied once.", what, err, res.Replayed))
	}
	q, _ := url.ParseQuery(f.Encode())
	if res.Replayed == 0 {
		return redirectDone(ec, "/console/exceptions", q, "dlq-none-open")
	}
	return redirectDone(ec, "/console/exceptions", q, "dlq-replayed-class")
}

// classReplay is what a class-wide replay did.
type classReplay struct {
	Replayed, Refused int
	first             []dlqID // the first few, for the audit log
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

// replayClassInBatches replays the open dead letters of class (from topic,
// when set) below until, in batches: each is written to its source topics
// and then marked replayed before the next is read. Those ReplayTargets
// refuses stay open.
func (c *Console) replayClassInBatches(ctx context.Context, u *user, class, topic string, until map[int32]int64) (classReplay, error) {
	var res classReplay
	var batch []processors.DeadLetter
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
	_, err := c.readDLQ(ctx, nil, until, func(recs []*kgo.Record) error {
		return c.eachOpen(ctx, recs, class, topic, func(d processors.DeadLetter) error {
			if c.cfg.Replay.Check(ctx, d) != nil {
				res.Refused++
				return nil
			}
			batch = append(batch, detach(d))
			if size += len(d.Record.Value) + len(d.Record.Key); len(batch) >= replayBatch || size >= replayBatchBytes {
				return flush()
			}
			return nil
		})
	})
	if err == nil {
		err = flush()
	}
	return res, err
}

// detach copies the dead letter's record, so that a batch does not keep
// the buffers of the fetches it came from.
func detach(d processors.DeadLetter) processors.DeadLetter {
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
func (c *Console) replayAndMark(ctx context.Context, u *user, ds []processors.DeadLetter) error {
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
// their source topics, as processors.Replay does but without reading the
// topic again. The caller has checked them with ReplayTargets.
func (c *Console) produceReplays(ctx context.Context, ds []processors.DeadLetter) error {
	recs := make([]*kgo.Record, len(ds))
	for i, d := range ds {
		recs[i] = replayRecord(c.cfg.DLQTopic, d)
	}
	if err := c.cfg.Producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// replayRecord is d as it goes back to its source topic: its key, value
// and headers but the dead-letter ones, and a replay header naming it.
func replayRecord(dlqTopic string, d processors.DeadLetter) *kgo.Record {
	var h []kgo.RecordHeader
	for _, x := range d.Record.Headers {
		switch x.Key {
		case processors.HeaderSourceTopic, processors.HeaderSourcePartition, processors.HeaderSourceOffset, processors.HeaderErrorClass,
			processors.HeaderErrorMessage, processors.HeaderErrorTime, processors.HeaderReplay:
			continue
		}
		h = append(h, x)
	}
	h = append(h, kgo.RecordHeader{Key: processors.HeaderReplay, Value: fmt.Appendf(nil, "%s/%d@%d", dlqTopic, d.Partition, d.Offset)})
	return &kgo.Record{Topic: d.SourceTopic, Key: d.Record.Key, Value: d.Record.Value, Headers: h}
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
