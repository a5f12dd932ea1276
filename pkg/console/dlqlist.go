package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
)

// dlqCursor is a dead letter's place in the pages' order, newest first:
// by time, then latest offset, then lowest partition. As text (a page's
// "before"): nanoseconds.partition.offset.
type dlqCursor struct {
	nanos     int64
	partition int32
	offset    int64
}

func cursorOf(d *deadLetter) dlqCursor { return dlqCursor{d.Time.UnixNano(), d.Partition, d.Offset} }

func (k dlqCursor) String() string { return fmt.Sprintf("%d.%d.%d", k.nanos, k.partition, k.offset) }

func parseCursor(s string) (dlqCursor, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return dlqCursor{}, false
	}
	n, err1 := strconv.ParseInt(parts[0], 10, 64)
	p, err2 := strconv.ParseInt(parts[1], 10, 32)
	o, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || p < 0 || o < 0 {
		return dlqCursor{}, false
	}
	return dlqCursor{n, int32(p), o}, true
}

// ahead says whether a comes before b, newest first.
func ahead(a, b dlqCursor) bool {
	if a.nanos != b.nanos {
		return a.nanos > b.nanos
	}
	if a.offset != b.offset {
		return a.offset > b.offset
	}
	return a.partition < b.partition
}

// dlqListing is what the exception queue page shows.
type dlqListing struct {
	// Groups are every class and source topic read, newest first, with
	// their counts per state whatever the filter.
	Groups []*dlqGroup
	// Sections are the groups of the listed dead letters, in the order of
	// their newest.
	Sections []*dlqGroup
	Total    int // dead letters read
	Matched  int // of which match the filter
	Listed   int // of which this page lists
	// Earlier match but come before this page: it lists the matches
	// Earlier+1 to Earlier+Listed.
	Earlier int
	// Newest links to the first page, when this is not it; Older to the
	// next page, when there is one.
	Newest, Older template.URL
	// Uncounted are the dead letters of pairs of class and source topic
	// past the first maxGroups, which Groups leaves out.
	Uncounted int
	// Cut says that the read ran out of time (Budget): the counts and the
	// page cover only the dead letters read, the oldest of each partition.
	Cut     bool
	Budget  time.Duration
	Classes []string
	Topics  []string
}

// First and Last are the page's place among the matches, from 1.
func (l *dlqListing) First() int { return l.Earlier + 1 }
func (l *dlqListing) Last() int  { return l.Earlier + l.Listed }

// dlqPage gathers a listing while the topic is read: the counts of every
// dead letter, and a summary of those that are, so far, among the page's.
type dlqPage struct {
	c      *Console
	f      dlqFilter
	q      string
	before dlqCursor
	paged  bool
	size   int
	l      *dlqListing
	groups map[[2]string]*dlqGroup
	kept   []*deadLetter // newest first, at most size
	after  int           // matches after before
}

// listDeadLetters reads the dead-letter topic as it stands and lists a page
// of the dead letters that match f, newest first, grouped by class and
// source topic. The read is bounded by the scan timeout: one that runs out
// lists what it read, saying so.
func (c *Console) listDeadLetters(ctx context.Context, f dlqFilter) (*dlqListing, error) {
	sctx, done, err := c.startScan(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	pg := &dlqPage{c: c, f: f, q: strings.ToLower(f.Q), size: c.cfg.PageSize, l: &dlqListing{Budget: c.cfg.ScanTimeout},
		groups: map[[2]string]*dlqGroup{}}
	pg.before, pg.paged = parseCursor(f.Before)
	_, err = c.readDLQ(sctx, nil, nil, func(recs []*kgo.Record) error { return pg.take(sctx, recs) })
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		pg.l.Cut = true
		c.log.Warn("console: the dead-letter listing ran out of time", "timeout", c.cfg.ScanTimeout, "read", pg.l.Total)
	case err != nil:
		return nil, fmt.Errorf("read the dead-letter topic %s: %w", c.cfg.DLQTopic, err)
	}
	return pg.finish(ctx), nil
}

// errScansBusy is scanSlot's answer when no slot came free in time.
var errScansBusy = errors.New("two other views are reading the dead-letter topic: reload in a moment")

// startScan begins a read of the whole dead-letter topic: under the scan
// timeout, holding a scan slot until done is called.
func (c *Console) startScan(ctx context.Context) (context.Context, func(), error) {
	if err := c.dlqConfigured(); err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.ScanTimeout)
	release, err := c.scanSlot(sctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return sctx, func() { release(); cancel() }, nil
}

// scanSlot waits for one of the two reads of the whole topic that may run
// at once, and returns its release.
func (c *Console) scanSlot(ctx context.Context) (func(), error) {
	select {
	case c.scans <- struct{}{}:
		return func() { <-c.scans }, nil
	case <-ctx.Done():
		return nil, errScansBusy
	}
}

// take counts one poll's dead letters and keeps those of the page.
func (pg *dlqPage) take(ctx context.Context, recs []*kgo.Record) error {
	ds := make([]deadletter.DeadLetter, len(recs))
	ids := make([]dlqID, len(recs))
	for i, r := range recs {
		ds[i] = deadletter.Describe(r)
		ids[i] = dlqID{r.Partition, r.Offset}
	}
	marks, err := pg.c.marksOf(ctx, ids)
	if err != nil {
		return err
	}
	for _, d := range ds {
		pg.offer(ctx, describe(d, marks))
	}
	return nil
}

func (pg *dlqPage) offer(ctx context.Context, dl *deadLetter) {
	pg.l.Total++
	// Groups go by the names as the page shows them, clipped, and keep
	// copies: not the headers, which may be large, nor their record.
	g := pg.groups[groupKey(dl)]
	if g == nil && len(pg.groups) < maxGroups {
		g = &dlqGroup{Class: strings.Clone(clip(dl.Class, 200)), SourceTopic: strings.Clone(clip(dl.SourceTopic, 249))}
		pg.groups[[2]string{g.Class, g.SourceTopic}] = g
	}
	if g != nil {
		g.count(dl)
	} else {
		pg.l.Uncounted++
	}
	if !pg.f.matches(dl) || (pg.q != "" && !pg.c.search(ctx, dl, pg.q)) {
		return
	}
	pg.l.Matched++
	at := cursorOf(dl)
	if pg.paged && !ahead(pg.before, at) {
		pg.l.Earlier++
		return
	}
	pg.after++
	i := sort.Search(len(pg.kept), func(i int) bool { return ahead(at, cursorOf(pg.kept[i])) })
	if i >= pg.size {
		return
	}
	summarize(dl)
	pg.kept = slices.Insert(pg.kept, i, dl)
	if len(pg.kept) > pg.size {
		pg.kept[pg.size] = nil
		pg.kept = pg.kept[:pg.size]
	}
}

// groupKey is d's class and source topic as its group has them, clipped
// as a summary's are.
func groupKey(d *deadLetter) [2]string {
	return [2]string{clip(d.Class, 200), clip(d.SourceTopic, 249)}
}

// finish decodes the page's dead letters and groups them.
func (pg *dlqPage) finish(ctx context.Context) *dlqListing {
	l := pg.l
	l.Listed = len(pg.kept)
	l.Groups, l.Classes, l.Topics = sortGroups(pg.groups)
	if pg.paged {
		l.Newest = pg.f.pageURL("")
	}
	if pg.after > len(pg.kept) && len(pg.kept) > 0 {
		l.Older = pg.f.pageURL(cursorOf(pg.kept[len(pg.kept)-1]).String())
	}
	sections := map[[2]string]*dlqGroup{}
	for _, d := range pg.kept {
		pg.c.decode(ctx, d)
		k := groupKey(d)
		s := sections[k]
		if s == nil {
			s = &dlqGroup{Class: d.Class, SourceTopic: d.SourceTopic}
			if g := pg.groups[k]; g != nil {
				s.Open, s.Replayed, s.Discarded, s.Newest = g.Open, g.Replayed, g.Discarded, g.Newest
			}
			sections[k] = s
			l.Sections = append(l.Sections, s)
		}
		s.Listed = append(s.Listed, d)
	}
	return l
}

func (c *Console) dlqConfigured() error {
	if c.cfg.DLQTopic == "" || len(c.cfg.Kafka) == 0 {
		return errors.New("the console is not configured with the brokers and dead-letter topic to read")
	}
	return nil
}

// sortGroups orders the groups newest first and lists the classes and
// source topics present, sorted.
func sortGroups(m map[[2]string]*dlqGroup) (groups []*dlqGroup, classes, topics []string) {
	seenC, seenT := map[string]bool{}, map[string]bool{}
	for _, g := range m {
		groups = append(groups, g)
		if !seenC[g.Class] {
			seenC[g.Class] = true
			classes = append(classes, g.Class)
		}
		if !seenT[g.SourceTopic] {
			seenT[g.SourceTopic] = true
			topics = append(topics, g.SourceTopic)
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		if !groups[i].Newest.Equal(groups[j].Newest) {
			return groups[i].Newest.After(groups[j].Newest)
		}
		if groups[i].Class != groups[j].Class {
			return groups[i].Class < groups[j].Class
		}
		return groups[i].SourceTopic < groups[j].SourceTopic
	})
	sort.Strings(classes)
	sort.Strings(topics)
	return groups, classes, topics
}

// findDeadLetters reads the dead letters ids, whole, in the states Redis
// gives them: only those (see readOffsets), so an action on a few dead
// letters costs what they do. Those no longer in the topic are left out.
func (c *Console) findDeadLetters(ctx context.Context, ids []dlqID) ([]*deadLetter, error) {
	if err := c.dlqConfigured(); err != nil {
		return nil, err
	}
	var ds []deadletter.DeadLetter
	err := c.readOffsets(ctx, ids, func(r *kgo.Record) error {
		ds = append(ds, deadletter.Describe(r))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the dead-letter topic %s: %w", c.cfg.DLQTopic, err)
	}
	return c.described(ctx, ds)
}

// described are ds in the states Redis gives them.
func (c *Console) described(ctx context.Context, ds []deadletter.DeadLetter) ([]*deadLetter, error) {
	ids := make([]dlqID, len(ds))
	for i, d := range ds {
		ids[i] = dlqID{d.Partition, d.Offset}
	}
	marks, err := c.marksOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*deadLetter, len(ds))
	for i, d := range ds {
		out[i] = describe(d, marks)
	}
	return out, nil
}
