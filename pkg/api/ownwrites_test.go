package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// A position this instance keeps holding and releasing on, and never looks
// up, keeps only what is younger than the deadline; a lookup counts an
// answered hold until it shows it stored, and leaves out a released one.
func TestOwnWritesStayBoundedAndOverlay(t *testing.T) {
	o := newOwnWrites(time.Second)
	keep := 10 * time.Second
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 10_000 {
		now := t0.Add(time.Duration(i) * 10 * time.Millisecond) // 100 s in all
		id := fmt.Sprint("h", i)
		o.held("S", "L", atp.Hold{ID: id, Quantity: 1, Expires: now.Add(time.Hour).UnixMilli()}, now, keep)
		if i%2 == 0 {
			o.release("S", "L", id, now, keep)
		}
	}
	w := o.m["S|L"]
	if len(w.holds) > 600 || len(w.released) > 600 {
		t.Fatalf("%d holds and %d releases kept for one position: want only the last %v's", len(w.holds), len(w.released), keep)
	}
	now := t0.Add(100 * time.Second)
	last := fmt.Sprint("h", 9_999)
	stored := ledger.LookupResult{Holds: []atp.Hold{{ID: "h9998", Quantity: 1, Expires: now.Add(time.Hour).UnixMilli()}}}
	o.overlay("S", "L", &stored, now)
	var ids []string
	for _, h := range stored.Holds {
		ids = append(ids, h.ID)
	}
	// Answered in the last 10 s and not released: the 500 odd ones of
	// h9000..h9999.
	if stored.Held != 500 {
		t.Fatalf("held %d over %d holds: want the 500 unreleased answered holds of the last 10 s, without the released h9998", stored.Held, len(ids))
	}
	found := false
	for _, id := range ids {
		found = found || id == last
		if id == "h9998" {
			t.Fatal("a released hold still counted")
		}
	}
	if !found {
		t.Fatalf("the last answered hold %s is not counted: %v", last, ids)
	}
}
