package tail

import (
	"fmt"
	"strings"
	"time"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/processors/sources"
)

// summary is one short phrase of what a decoded value says, for the table.
// A test walks events.All, so a new record type without a case here (or,
// for a source event, a registration) fails.
func summary(rec avro.Record) string {
	// A source event says it in its registration.
	if ev, ok := rec.(events.Source); ok {
		if src := sources.Of(ev); src != nil {
			return src.Summary(ev)
		}
	}
	switch e := rec.(type) {
	case *events.LedgerEntry:
		return fmt.Sprintf("%s %d of %s %s (event %s)", e.EntryType, e.Quantity, e.SKU, where(e.Location, e.Group), e.EventID)
	case *events.AvailabilityChanged:
		return fmt.Sprintf("%s at %s v%d: atp %d, on hand %d, reserved %d, picked %d, held %d, shortfall %d",
			e.SKU, e.Location, e.Version, e.ATP, e.OnHand, e.Reserved, e.Picked, e.Held, e.Shortfall)
	case *events.StockAlert:
		return fmt.Sprintf("%s: %s at %s, atp %d, on hand %d, reorder point %d, suggested %d",
			e.AlertType, e.SKU, e.Location, e.ATP, e.OnHand, e.ReorderPoint, e.SuggestedQuantity)
	case *events.SnapshotStarted:
		return fmt.Sprintf("snapshot %s from %s of %s as of %s, %d lines", e.SnapshotID, e.Source, strings.Join(e.Locations, ","), formatTime(e.AsOf), e.ExpectedLines)
	case *events.SnapshotLine:
		if e.Error != nil {
			return fmt.Sprintf("snapshot %s line %d unreadable: %s", e.SnapshotID, e.Line, *e.Error)
		}
		return fmt.Sprintf("snapshot %s line %d: %d %s of %s at %s", e.SnapshotID, e.Line, e.Quantity, e.UoM, e.SKU, e.Location)
	case *events.SnapshotEnded:
		return fmt.Sprintf("snapshot %s ended after %d lines", e.SnapshotID, e.LineCount)
	case *events.ReconciliationException:
		s := fmt.Sprintf("run %s: %s %s at %s", e.RunID, e.Class, e.SKU, e.Location)
		if e.SnapshotQuantity != nil && e.LedgerQuantity != nil {
			s += fmt.Sprintf(", snapshot %d ledger %d (%+d)", *e.SnapshotQuantity, *e.LedgerQuantity, e.Difference)
		}
		if e.Detail != nil {
			s += ": " + *e.Detail
		}
		return s
	case *events.ReconciliationSummary:
		return fmt.Sprintf("run %s %s: %d of %d lines from %s as of %s", e.RunID, e.Status, e.Lines, e.ExpectedLines, e.Source, formatTime(e.AsOf))
	case *events.CommitmentChanged:
		s := fmt.Sprintf("order %s line %s (%s at %s): %s", e.OrderID, e.LineID, e.SKU, e.Location, promiseText(e.Promise))
		if e.Late {
			s += ", later than before"
		}
		return s + fmt.Sprintf("; after %s %s", e.CauseEntryType, e.CauseEventID)
	case *events.PlanningException:
		return fmt.Sprintf("%s %s of PO %s made %d order lines of %s at %s later: %d units late, %d unpromised",
			e.CauseEntryType, e.CauseEventID, deref(e.PONumber), len(e.Lines), e.SKU, e.Location, e.LateUnits, e.UnpromisedUnits)
	}
	return ""
}

// promiseText is a line's promise in a few words: "10 now, 5 on 2026-03-05".
func promiseText(p events.LinePromise) string {
	if p.OpenQuantity == 0 {
		return "nothing open"
	}
	var parts []string
	if p.ConfirmedNow > 0 {
		parts = append(parts, fmt.Sprintf("%d now", p.ConfirmedNow))
	}
	for _, q := range p.Promised {
		parts = append(parts, fmt.Sprintf("%d on %s", q.Quantity, q.Date.UTC().Format(time.DateOnly)))
	}
	if p.Unpromised > 0 {
		parts = append(parts, fmt.Sprintf("%d unpromised", p.Unpromised))
	}
	return strings.Join(parts, ", ")
}

func indexSummary(d ledger.Doc, l ledger.IndexedLine) string {
	loc := l.Location
	if loc == "" {
		loc = l.Group
	}
	return fmt.Sprintf("%s line %s: %s at %s", d, l.Line, l.SKU, loc)
}

// where names a location, or a group when a line is against a group.
func where(location, group *string) string {
	switch {
	case location != nil:
		return "at " + *location
	case group != nil:
		return "in group " + *group
	}
	return "at no location"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
