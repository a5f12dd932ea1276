package events

import "time"

// A stock snapshot on wms.snapshots.v1 is a SnapshotStarted, its
// SnapshotLines and a SnapshotEnded, all keyed by the snapshot id.

// SnapshotStarted opens a snapshot: whose balances, where, as of when.
type SnapshotStarted struct {
	Meta
	SnapshotID    string    `avro:"snapshot_id"`
	Locations     []string  `avro:"locations"`
	AsOf          time.Time `avro:"as_of"`
	ExpectedLines int64     `avro:"expected_lines"`
}

// SnapshotLine is one balance of a snapshot. Error is set when the sender
// could not read the line.
type SnapshotLine struct {
	SnapshotID string  `avro:"snapshot_id"`
	Line       int64   `avro:"line"`
	SKU        string  `avro:"sku"`
	Location   string  `avro:"location"`
	Quantity   int64   `avro:"quantity"`
	UoM        string  `avro:"uom"`
	Error      *string `avro:"error"`
}

// SnapshotEnded closes a snapshot with the number of lines sent.
type SnapshotEnded struct {
	SnapshotID string `avro:"snapshot_id"`
	LineCount  int64  `avro:"line_count"`
}

// ReconciliationException is a position of a completed run that is not a
// match. Quantities are in base units.
type ReconciliationException struct {
	RunID            string    `avro:"run_id"`
	Source           string    `avro:"source"`
	SKU              string    `avro:"sku"`
	Location         string    `avro:"location"`
	Class            string    `avro:"class"`
	SnapshotQuantity *int64    `avro:"snapshot_quantity"`
	LedgerQuantity   *int64    `avro:"ledger_quantity"`
	Difference       int64     `avro:"difference"`
	AsOf             time.Time `avro:"as_of"`
	Line             *int64    `avro:"line"`
	Detail           *string   `avro:"detail"`
}

// ReconciliationSummary ends a run on stockflow.reconciliation.v1.
type ReconciliationSummary struct {
	RunID         string           `avro:"run_id"`
	Source        string           `avro:"source"`
	Locations     []string         `avro:"locations"`
	AsOf          time.Time        `avro:"as_of"`
	Status        string           `avro:"status"`
	Reason        *string          `avro:"reason"`
	ExpectedLines int64            `avro:"expected_lines"`
	Lines         int64            `avro:"lines"`
	Counts        map[string]int64 `avro:"counts"`
	StartedAt     time.Time        `avro:"started_at"`
	FinishedAt    time.Time        `avro:"finished_at"`
}

func (*SnapshotStarted) AvroName() string         { return Namespace + ".SnapshotStarted" }
func (*SnapshotLine) AvroName() string            { return Namespace + ".SnapshotLine" }
func (*SnapshotEnded) AvroName() string           { return Namespace + ".SnapshotEnded" }
func (*ReconciliationException) AvroName() string { return Namespace + ".ReconciliationException" }
func (*ReconciliationSummary) AvroName() string   { return Namespace + ".ReconciliationSummary" }
