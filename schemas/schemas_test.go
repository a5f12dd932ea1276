package schemas

import (
	"encoding/json"
	"testing"

	"github.com/linkedin/goavro/v2"
)

func TestManifestSchemasParseAndNameMatches(t *testing.T) {
	entries, err := Manifest()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"InventoryReceived", "InventoryPicked", "InventoryCounted", "InventoryAdjusted", "InventoryShipped",
		"OrderAccepted", "OrderCancelled", "OrderAllocated",
		"PurchaseOrderReleased", "PurchaseOrderAcknowledged", "AdvanceShipNotice", "PurchaseOrderClosed",
		"ItemMaster", "LedgerEntry", "AvailabilityChanged", "StockAlert",
		"SnapshotStarted", "SnapshotLine", "SnapshotEnded", "ReconciliationException", "ReconciliationSummary",
	}
	byName := map[string]Entry{}
	ids := map[int]string{}
	for _, e := range entries {
		if prev, dup := ids[e.ID]; dup {
			t.Errorf("schema id %d used by %s and %s", e.ID, prev, e.Name)
		}
		ids[e.ID] = e.Name
		byName[e.Name] = e
		var doc struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		}
		if err := json.Unmarshal([]byte(e.Schema), &doc); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		if got := doc.Namespace + "." + doc.Name; got != e.Name {
			t.Errorf("manifest says %s, schema file declares %s", e.Name, got)
		}
		if _, err := goavro.NewCodec(e.Schema); err != nil {
			t.Errorf("%s does not compile: %v", e.Name, err)
		}
	}
	for _, n := range want {
		if _, ok := byName["stockflow.v1."+n]; !ok {
			t.Errorf("manifest lacks stockflow.v1.%s", n)
		}
	}
}

func TestSourceEventsCarryCommonFields(t *testing.T) {
	entries, err := Manifest()
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{"stockflow.v1.LedgerEntry": true, "stockflow.v1.AvailabilityChanged": true, "stockflow.v1.StockAlert": true,
		"stockflow.v1.ReconciliationException": true, "stockflow.v1.ReconciliationSummary": true,
		"stockflow.v1.CommitmentChanged": true, "stockflow.v1.PlanningException": true,
		// A snapshot's lines and end belong to its SnapshotStarted, which
		// carries the common fields once for the whole snapshot.
		"stockflow.v1.SnapshotLine": true, "stockflow.v1.SnapshotEnded": true}
	for _, e := range entries {
		if own[e.Name] {
			continue
		}
		var doc struct {
			Fields []struct {
				Name string `json:"name"`
			} `json:"fields"`
		}
		if err := json.Unmarshal([]byte(e.Schema), &doc); err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, f := range doc.Fields {
			have[f.Name] = true
		}
		for _, f := range []string{"event_id", "event_time", "source", "correlation_id"} {
			if !have[f] {
				t.Errorf("%s lacks common field %s", e.Name, f)
			}
		}
	}
}
