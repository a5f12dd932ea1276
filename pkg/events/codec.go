package events

import (
	"fmt"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/schemas"
)

// All returns a zero value of every record type, source events first.
func All() []avro.Record {
	return []avro.Record{
		&InventoryReceived{}, &InventoryPicked{}, &InventoryCounted{}, &InventoryAdjusted{}, &InventoryShipped{},
		&OrderAccepted{}, &OrderCancelled{}, &OrderAllocated{},
		&PurchaseOrderReleased{}, &PurchaseOrderAcknowledged{}, &AdvanceShipNotice{}, &PurchaseOrderClosed{},
		&ItemMaster{}, &LedgerEntry{}, &AvailabilityChanged{}, &StockAlert{},
		&SnapshotStarted{}, &SnapshotLine{}, &SnapshotEnded{}, &ReconciliationException{}, &ReconciliationSummary{},
		&CommitmentChanged{}, &PlanningException{},
	}
}

// Canonical returns the embedded schemas as the codec's canonical set (the
// newest id per record name) and as a built-in registry of every id.
func Canonical() (map[string]string, *avro.Builtin, error) {
	entries, err := schemas.Manifest()
	if err != nil {
		return nil, nil, err
	}
	newest := map[string]int{}
	canon := map[string]string{}
	byID := map[int]string{}
	for _, e := range entries {
		byID[e.ID] = e.Schema
		if e.ID > newest[e.Name] {
			newest[e.Name] = e.ID
			canon[e.Name] = e.Schema
		}
	}
	reg, err := avro.NewBuiltin(byID)
	if err != nil {
		return nil, nil, err
	}
	return canon, reg, nil
}

// OpenCodec builds the codec a process reads and writes with. With no
// registry URL, ids are the built-in ones of schemas/manifest.json; with one,
// every id written is the one the registry gives the record's subject
// (topic-recordname) and every id read is resolved through the registry.
func OpenCodec(registryURL string, maxRecordBytes int) (*avro.Codec, error) {
	if registryURL == "" {
		return NewCodec(nil, maxRecordBytes)
	}
	reg, err := avro.NewSchemaRegistry(registryURL)
	if err != nil {
		return nil, err
	}
	return NewCodec(reg, maxRecordBytes)
}

// NewCodec builds the codec for every Stockflow record. A nil registry means
// the built-in one from schemas/manifest.json.
func NewCodec(reg avro.Registry, maxRecordBytes int) (*avro.Codec, error) {
	canon, builtin, err := Canonical()
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	if reg == nil {
		reg = builtin
	}
	return avro.New(avro.Config{Registry: reg, Canonical: canon, Types: All(), MaxRecordBytes: maxRecordBytes})
}
