package processors

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/kafka"
)

// aligner keeps the normalizer's source partitions in step by record time
// while it reads a backlog. A Kafka consumer reads partitions in whatever
// order its fetches bring them: on a long backlog it can read one topic to
// its end before it starts the next, so that every order of the backlog
// reaches the ledger before the first pick of them. The ledger then holds a
// book of open orders that no business ever had, and the folder holds it in
// memory, growing with the backlog's length.
//
// After every poll the aligner pauses the partitions whose last record is
// more than window past the earliest partition still being read, and
// resumes them once that one has caught up to within window (this is what
// Kafka Streams does within a task). It only ever delays a partition with
// unread records (a backlog), and no partition waits for long on another
// that gives nothing:
//
//   - while partitions assigned have given no record yet, the others wait
//     for them, but only until polls bring nothing from them (they may be
//     empty), and for probe at most;
//   - a partition read to its end never waits: what comes to it next is
//     new, a trickle, whatever its producer's clock says. Nor does it
//     hold anyone back, nor does one that gave nothing for idle since it
//     was last read or resumed.
//
// It works at the grain of a fetch: one fetch can carry a partition past
// the window. A fetch fills partitions one after another up to its size, so
// with 1 MiB from each it would bring a few partitions far and leave the
// rest; an aligned normalizer takes less from each partition
// (alignedPartitionBytes), so that one fetch brings a little of every
// source partition and a poll moves them all a little.
type aligner struct {
	window, probe, idle time.Duration
	// tick bounds a poll while partitions are paused, so that the plan is
	// made again even when the partitions read bring nothing.
	tick time.Duration

	mu    sync.Mutex
	heads map[topicPartition]*head
	// probing: partitions were assigned that have given no record yet,
	// and fewer than probeEmptyPolls polls in a row have come back empty
	// since; since is when it began (the first poll after the assignment).
	probing bool
	since   time.Time
	empty   int // polls in a row that brought nothing while probing
}

// alignedPartitionBytes is the most one fetch of an aligned normalizer
// brings from one partition: the fetch's size shared among the partitions
// of its topics (as many as topics) when they have the configured partition
// count, between 16 KiB and what other consumers take
// (kafka.MaxPartitionBytes). A batch larger than that still comes, alone,
// so nothing is ever stuck.
func alignedPartitionBytes(k config.Kafka, topics int) int32 {
	if k.FetchMaxBytes <= 0 {
		return kafka.MaxPartitionBytes // the client's own fetch size, unbounded by us
	}
	parts := max(k.Partitions, 1) * max(topics, 1)
	return int32(min(max(k.FetchMaxBytes/parts, 16<<10), kafka.MaxPartitionBytes))
}

// probeEmptyPolls is how many polls in a row must bring nothing, while
// every partition read is paused, to end probing.
const probeEmptyPolls = 4

// head is where the normalizer is in one partition.
type head struct {
	seen   bool      // a record was read
	ts     int64     // the last record's timestamp (ms), when seen
	at     time.Time // when the last record was read, or the partition resumed
	behind bool      // the partition had records past the last one read
}

func newAligner(window time.Duration) *aligner {
	return &aligner{window: window, probe: 10 * time.Second, idle: 10 * time.Second, tick: 500 * time.Millisecond, heads: map[topicPartition]*head{}}
}

// assigned starts partitions the aligner did not know as not yet seen.
func (a *aligner) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			if _, ok := a.heads[topicPartition{t, p}]; !ok {
				a.heads[topicPartition{t, p}] = &head{}
				a.probing, a.since, a.empty = true, time.Time{}, 0
			}
		}
	}
}

// revoked forgets partitions this member no longer reads.
func (a *aligner) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			delete(a.heads, topicPartition{t, p})
		}
	}
}

// observe records where a poll left each partition it read.
func (a *aligner) observe(fs kgo.Fetches, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.probing {
		// The probe runs from the first poll, not from the assignment:
		// what runs between them is not fetching.
		if a.since.IsZero() {
			a.since = now
		}
		// Every partition read is paused while probing: polls that bring
		// nothing mean those unread bring nothing either (one may only
		// have come back before its fetch did).
		if fs.NumRecords() > 0 {
			a.empty = 0
		} else {
			a.empty++
		}
		a.probing = a.empty < probeEmptyPolls && now.Sub(a.since) < a.probe
	}
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		last := p.Records[len(p.Records)-1]
		end := p.LastStableOffset
		if end < 0 {
			end = p.HighWatermark
		}
		a.heads[topicPartition{p.Topic, p.Partition}] = &head{seen: true, ts: last.Timestamp.UnixMilli(), at: now, behind: last.Offset+1 < end}
	})
}

// plan lists the partitions to pause now: those with a backlog read more
// than window past the earliest partition that holds others back.
func (a *aligner) plan(now time.Time) map[string][]int32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	low, holding := int64(math.MaxInt64), false
	for _, h := range a.heads {
		switch {
		case !h.seen && a.probing:
			low, holding = math.MinInt64, true
		case h.seen && h.behind && now.Sub(h.at) < a.idle:
			low, holding = min(low, h.ts), true
		}
	}
	if !holding {
		return nil
	}
	var out map[string][]int32
	for tp, h := range a.heads {
		if h.seen && h.behind && (low == math.MinInt64 || h.ts-low > a.window.Milliseconds()) {
			if out == nil {
				out = map[string][]int32{}
			}
			out[tp.topic] = append(out[tp.topic], tp.partition)
		}
	}
	return out
}

// apply pauses what plan says and resumes every other paused partition. It
// reports whether any partition is paused, so that the caller polls with a
// deadline and plans again even when nothing comes.
func (a *aligner) apply(cl *kgo.Client, now time.Time) bool {
	want := a.plan(now)
	paused := cl.PauseFetchPartitions(want)
	resume := map[string][]int32{}
	for t, ps := range paused {
		for _, p := range ps {
			if !slices.Contains(want[t], p) {
				resume[t] = append(resume[t], p)
			}
		}
	}
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
		// A resumed partition waits for a fetch: its idle time runs from now.
		a.mu.Lock()
		for t, ps := range resume {
			for _, p := range ps {
				if h := a.heads[topicPartition{t, p}]; h != nil {
					h.at = now
				}
			}
		}
		a.mu.Unlock()
	}
	return len(want) > 0
}
