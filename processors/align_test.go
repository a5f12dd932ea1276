package processors

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
)

// polled is a poll that read partition p of topic up to offset last, whose
// record has time ts, of a partition that ends at end.
func polledAt(topic string, p int32, last, end int64, ts time.Time) kgo.Fetches {
	r := &kgo.Record{Topic: topic, Partition: p, Offset: last, Timestamp: ts}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: topic, Partitions: []kgo.FetchPartition{
		{Partition: p, HighWatermark: end, LastStableOffset: end, Records: []*kgo.Record{r}}}}}}}
}

func pausedOf(plan map[string][]int32) []string {
	var out []string
	for t, ps := range plan {
		for _, p := range ps {
			out = append(out, t+"/"+strconv.Itoa(int(p)))
		}
	}
	slices.Sort(out)
	return out
}

// A partition read ahead of the earliest one still being read waits for it;
// one read to its end, or that gives nothing for a while, holds no one
// back; an assigned partition not read yet holds the others back until a
// poll brings nothing from it.
func TestAlignerPausesWhatRunsAhead(t *testing.T) {
	a := newAligner(time.Second)
	t0 := time.Now()
	base := time.UnixMilli(1_700_000_000_000)
	a.assigned(context.Background(), nil, map[string][]int32{"orders": {0}, "wms": {0, 1}})

	// Orders came first; the WMS partitions have given nothing yet.
	a.observe(polledAt("orders", 0, 99, 1000, base.Add(time.Minute)), t0)
	if got := pausedOf(a.plan(t0)); !slices.Equal(got, []string{"orders/0"}) {
		t.Fatalf("while the wms partitions are unread: paused %v, want orders/0", got)
	}
	// While wms/1 is unread, wms/0 waits too.
	a.observe(polledAt("wms", 0, 9, 5000, base), t0.Add(100*time.Millisecond))
	if got := pausedOf(a.plan(t0)); !slices.Equal(got, []string{"orders/0", "wms/0"}) {
		t.Fatalf("while wms/1 is unread: paused %v, want orders/0 and wms/0", got)
	}
	// Polls bring nothing from wms/1 (it is empty): it holds no one back
	// from then on, and wms/0, read a minute behind the orders, does.
	now := t0.Add(time.Second)
	for range probeEmptyPolls - 1 {
		a.observe(kgo.Fetches{}, now)
	}
	if got := pausedOf(a.plan(now)); !slices.Equal(got, []string{"orders/0", "wms/0"}) {
		t.Fatalf("after %d empty polls: paused %v, want orders/0 and wms/0", probeEmptyPolls-1, got)
	}
	a.observe(kgo.Fetches{}, now)
	if got := pausedOf(a.plan(now)); !slices.Equal(got, []string{"orders/0"}) {
		t.Fatalf("with wms/0 a minute behind: paused %v, want orders/0", got)
	}
	// wms/0 within the window of the orders: nobody waits.
	a.observe(polledAt("wms", 0, 4000, 5000, base.Add(time.Minute-500*time.Millisecond)), now)
	if got := a.plan(now); got != nil {
		t.Fatalf("in step: paused %v", pausedOf(got))
	}
	// The orders run ahead again, then wms/0 is read to its end: it holds
	// no one back.
	a.observe(polledAt("orders", 0, 500, 1000, base.Add(5*time.Minute)), now)
	if got := pausedOf(a.plan(now)); !slices.Equal(got, []string{"orders/0"}) {
		t.Fatalf("orders four minutes ahead: paused %v", got)
	}
	a.observe(polledAt("wms", 0, 4999, 5000, base.Add(2*time.Minute)), now)
	if got := a.plan(now); got != nil {
		t.Fatalf("wms/0 read to its end still holds back %v", pausedOf(got))
	}
	// A partition behind that gives nothing for a while holds no one back;
	// wms/0, read to its end, does not wait for it.
	a.observe(polledAt("wms", 1, 10, 5000, base), now)
	if got := pausedOf(a.plan(now)); !slices.Equal(got, []string{"orders/0"}) {
		t.Fatalf("wms/1 just read far behind: paused %v, want orders/0", got)
	}
	if got := a.plan(now.Add(10 * time.Second)); got != nil {
		t.Fatalf("wms/1 silent for 10s still holds back %v", pausedOf(got))
	}
	// A revoked partition is forgotten.
	a.observe(polledAt("wms", 1, 11, 5000, base), now)
	a.revoked(context.Background(), nil, map[string][]int32{"wms": {1}})
	if got := a.plan(now); got != nil {
		t.Fatalf("after wms/1 was revoked: paused %v", pausedOf(got))
	}
}

// Only a partition with a backlog waits: one read to its end (whose next
// records are new, however far ahead its producer's clock runs) is never
// paused, not even while partitions just assigned have given nothing yet.
func TestAlignerNeverPausesAPartitionReadToItsEnd(t *testing.T) {
	a := newAligner(time.Second)
	t0 := time.Now()
	base := time.UnixMilli(1_700_000_000_000)
	a.assigned(context.Background(), nil, map[string][]int32{"orders": {0}, "wms": {0, 1}})

	// Probing: orders/0 was read to its end, wms/0 has a backlog.
	a.observe(polledAt("orders", 0, 99, 100, base), t0)
	a.observe(polledAt("wms", 0, 9, 5000, base), t0)
	if got := pausedOf(a.plan(t0)); !slices.Equal(got, []string{"wms/0"}) {
		t.Fatalf("while wms/1 is unread: paused %v, want wms/0", got)
	}
	// A source stamped a minute ahead, read to its end, while wms/0 still
	// has a backlog: it goes on.
	a.observe(polledAt("wms", 1, 10, 11, base), t0) // probing ends with every partition seen
	a.observe(polledAt("orders", 0, 150, 151, base.Add(time.Minute)), t0)
	if got := a.plan(t0); got != nil {
		t.Fatalf("orders/0 a minute ahead but at its end: paused %v", pausedOf(got))
	}
	// The same source with a backlog of its own waits.
	a.observe(polledAt("orders", 0, 160, 900, base.Add(time.Minute)), t0)
	if got := pausedOf(a.plan(t0)); !slices.Equal(got, []string{"orders/0"}) {
		t.Fatalf("orders/0 a minute ahead with a backlog: paused %v, want orders/0", got)
	}
}

// An aligned normalizer's fetch brings a little of every source partition
// (a fetch fills partitions in turn until it is full), within bounds.
func TestAlignedFetchCoversEverySourcePartition(t *testing.T) {
	for _, tc := range []struct {
		fetch, partitions int
		want              int32
	}{
		{2 << 20, 12, 2 << 20 / 48}, // the defaults: 4 topics' 48 partitions share 2 MiB
		{8 << 20, 1, 1 << 20},       // never more than other consumers take
		{64 << 10, 12, 16 << 10},    // never less than 16 KiB
		{0, 12, 1 << 20},            // fetch size left to the client
	} {
		k := config.Default().Kafka
		k.FetchMaxBytes, k.Partitions = tc.fetch, tc.partitions
		got := alignedPartitionBytes(k, 4)
		if got != tc.want {
			t.Errorf("fetch %d, %d partitions a topic: %d bytes a partition, want %d", tc.fetch, tc.partitions, got, tc.want)
		}
	}
}
