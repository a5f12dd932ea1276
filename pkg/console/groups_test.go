package console

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
)

// A listing counts dead letters by class and source topic as the page
// shows them, clipped: what it keeps follows the page, not the length of
// the headers the dead letters carry, and a listed dead letter's section
// has its group's counts.
func TestListingGroupsByClippedNames(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 64, 1 << 20
	pg := &dlqPage{c: c, f: dlqFilter{State: stateAll}, size: 1, l: &dlqListing{}, groups: map[[2]string]*dlqGroup{}}
	ctx := context.Background()
	before := liveHeap()
	for i := range n {
		r := &kgo.Record{Offset: int64(i), Timestamp: fxBase, Headers: []kgo.RecordHeader{
			{Key: deadletter.HeaderErrorClass, Value: fmt.Appendf(nil, "class-%02d-%s", i, strings.Repeat("c", size))},
			{Key: deadletter.HeaderSourceTopic, Value: fmt.Appendf(nil, "topic-%02d-%s", i, strings.Repeat("t", size))},
		}}
		pg.offer(ctx, describe(deadletter.Describe(r), nil))
	}
	grew := liveHeap() - before
	runtime.KeepAlive(pg)
	if len(pg.groups) != n {
		t.Fatalf("%d groups, want %d", len(pg.groups), n)
	}
	if grew > 8<<20 {
		t.Errorf("counting %d groups keeps %d MiB: the headers' %d MiB, not the page's", n, grew>>20, 2*n*size>>20)
	}
	l := pg.finish(ctx)
	if len(l.Sections) != 1 || l.Sections[0].Open != 1 || len(l.Sections[0].Class) > 200 {
		t.Errorf("the listed dead letter's section: %+v, want its group's count of 1 open", l.Sections)
	}
}
