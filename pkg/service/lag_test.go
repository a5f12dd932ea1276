package service

import (
	"context"
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
