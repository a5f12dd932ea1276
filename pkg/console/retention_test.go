package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
)

// deleteBefore moves partition 0's log start to offset, as retention does.
func (f *dlqFixture) deleteBefore(offset int64) {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	var os kadm.Offsets
	os.AddOffset(fxDLQ, 0, offset, -1)
	rs, err := kadm.NewClient(cl).DeleteRecords(context.Background(), os)
	if err == nil {
		err = rs.Error()
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

// An action on a dead letter that retention has removed answers at once
// that it is not there, also when retention has emptied its partition:
// the read starts at the log's start, never before it, and a partition
// with nothing left between is not read.
func TestActionOnADeadLetterRetentionRemoved(t *testing.T) {
	f := newDLQFixture(t, 1, nil)
	var recs []*kgo.Record
	for i := range 6 {
		recs = append(recs, f.deadLetterRecord(0, deadletter.ClassUnknownUoM, fmt.Sprintf("SKU-%d", i), f.receipt(fmt.Sprintf("SKU-%d", i))))
	}
	f.write(recs...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	f.deleteBefore(3) // some left after the one asked for
	ds, err := f.con.findDeadLetters(ctx, []dlqID{{0, 1}, {0, 4}})
	if err != nil || len(ds) != 1 || ds[0].Offset != 4 {
		t.Fatalf("0:1 removed, 0:4 kept: found %d (%v)", len(ds), err)
	}

	f.deleteBefore(6) // the partition emptied
	start := time.Now()
	ds, err = f.con.findDeadLetters(ctx, []dlqID{{0, 4}})
	if err != nil || len(ds) != 0 {
		t.Fatalf("in an emptied partition: found %d (%v) in %s, want none at once", len(ds), err, time.Since(start))
	}
	start = time.Now()
	rec := f.post("/console/exceptions/discard", url.Values{"dlq": {"0:5"}, "reason": {"gone"}})
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "There is no dead letter 0:5") || time.Since(start) > 5*time.Second {
		t.Fatalf("discarding a removed dead letter: %d after %s, want 404 at once", rec.Code, time.Since(start))
	}
	if _, body := f.get(ctx, "/console/exceptions?state=all"); len(listed(body)) != 0 {
		t.Errorf("an emptied topic lists %v", listed(body))
	}
	if l, err := f.con.listDeadLetters(ctx, dlqFilter{State: stateAll}); err != nil || l.Total != 0 || !slices.Equal(l.Classes, nil) {
		t.Errorf("listing an emptied topic: %v, %+v", err, l)
	}
}
