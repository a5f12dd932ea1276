package service

import (
	"context"
	"github.com/twmb/franz-go/pkg/kadm"
	"strings"
	"testing"
)

func TestFoldLagReadiness(t *testing.T) {
	w := &lagWatcher{}
	check := w.check(100)
	if err := check(context.Background()); err != nil {
		t.Fatalf("unmeasured lag failed readiness: %v", err)
	}
	w.measured.Store(true)
	w.foldLag.Store(100)
	if err := check(context.Background()); err != nil {
		t.Fatalf("lag at the bound failed readiness: %v", err)
	}
	w.foldLag.Store(101)
	if err := check(context.Background()); err == nil || !strings.Contains(err.Error(), "101 ledger records behind") {
		t.Fatalf("lag over the bound: %v", err)
	}
}

// After Redis lost its data the folder group's offsets stay at the end
// while the ledger is rebuilt: what Redis applied is what counts.
func TestUnappliedRecordsCountFromRedis(t *testing.T) {
	ends := kadm.ListedOffsets{"L": {
		0: {Topic: "L", Partition: 0, Offset: 1000},
		1: {Topic: "L", Partition: 1, Offset: 500},
		2: {Topic: "L", Partition: 2, Offset: 0},
	}}
	if n := unappliedRecords(ends, "L", map[int32]int64{0: 999, 1: 499}); n != 0 {
		t.Errorf("caught up: %d unapplied", n)
	}
	if n := unappliedRecords(ends, "L", map[int32]int64{0: 99}); n != 900+500 {
		t.Errorf("rebuilding (partition 1 has nothing applied): %d unapplied, want 1400", n)
	}
	if n := unappliedRecords(ends, "L", nil); n != 1500 {
		t.Errorf("Redis empty: %d unapplied, want 1500", n)
	}
}
