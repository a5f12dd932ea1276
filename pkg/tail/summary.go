package tail

import (
	"fmt"
	"strings"
	"time"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// summary is one short phrase of what a decoded value says, for the table.
// A test walks events.All, so a new record type without a case here fails.
func summary(rec avro.Record) string {
	switch e := rec.(type) {
	case *events.InventoryReceived:
		s := fmt.Sprintf("received %d %s of %s at %s", e.Quantity, e.UoM, e.SKU, e.Location)
		if e.PONumber != nil {
			s += " for PO " + *e.PONumber
		}
		return s
	case *events.InventoryPicked:
		return fmt.Sprintf("picked %d %s of %s at %s for order %s line %s", e.Quantity, e.UoM, e.SKU, e.Location, e.OrderID, e.LineID)
	case *events.InventoryCounted:
		return fmt.Sprintf("counted %d %s of %s at %s as of %s", e.CountedQuantity, e.UoM, e.SKU, e.Location, formatTime(e.AsOf))
	case *events.InventoryAdjusted:
		return fmt.Sprintf("adjusted %+d %s of %s at %s: %s", e.Quantity, e.UoM, e.SKU, e.Location, e.Reason)
	case *events.InventoryShipped:
		return fmt.Sprintf("shipped %d %s of %s at %s for order %s line %s", e.Quantity, e.UoM, e.SKU, e.Location, e.OrderID, e.LineID)
	case *events.OrderAccepted:
		lines := make([]string, len(e.Lines))
		for i, l := range e.Lines {
			lines[i] = fmt.Sprintf("%d %s of %s %s", l.Quantity, l.UoM, l.SKU, where(l.Location, l.Group))
		}
		return fmt.Sprintf("order %s accepted on %s: %s", e.OrderID, e.Channel, strings.Join(lines, "; "))
	case *events.OrderCancelled:
		if len(e.LineIDs) == 0 {
			return fmt.Sprintf("order %s cancelled", e.OrderID)
		}
		return fmt.Sprintf("order %s lines %s cancelled", e.OrderID, strings.Join(e.LineIDs, ","))
	case *events.OrderAllocated:
		return fmt.Sprintf("order %s line %s of %s allocated to %s", e.OrderID, e.LineID, e.SKU, e.Location)
	case *events.PurchaseOrderReleased:
		lines := make([]string, len(e.Lines))
		for i, l := range e.Lines {
			lines[i] = fmt.Sprintf("%d %s of %s to %s by %s", l.Quantity, l.UoM, l.SKU, l.Location, day(l.ExpectedDate))
		}
		return fmt.Sprintf("PO %s released to %s: %s", e.PONumber, e.SupplierID, strings.Join(lines, "; "))
	case *events.PurchaseOrderAcknowledged:
		lines := make([]string, len(e.Lines))
		for i, l := range e.Lines {
			lines[i] = fmt.Sprintf("line %d %s %d by %s", l.POLine, l.Status, l.Quantity, day(l.ExpectedDate))
		}
		return fmt.Sprintf("PO %s acknowledged by %s: %s", e.PONumber, e.SupplierID, strings.Join(lines, "; "))
	case *events.AdvanceShipNotice:
		lines := make([]string, len(e.Lines))
		for i, l := range e.Lines {
			lines[i] = fmt.Sprintf("%d %s of %s", l.Quantity, l.UoM, l.SKU)
		}
		return fmt.Sprintf("ASN %s for PO %s from %s, ETA %s: %s", e.ASNID, e.PONumber, e.SupplierID, formatTime(e.ETA), strings.Join(lines, "; "))
	case *events.PurchaseOrderClosed:
		return fmt.Sprintf("PO %s closed: %s", e.PONumber, e.Reason)
	case *events.ItemMaster:
		return fmt.Sprintf("item %s in %s, %d conversions, lead time %d days", e.SKU, e.BaseUoM, len(e.Conversions), e.LeadTimeDays)
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
	}
	return ""
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

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }
