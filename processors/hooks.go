package processors

import (
	"time"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// Hook observes the processors from outside, as a franz-go kgo.Hook
// observes a client: a value implementing any of the interfaces below is
// called at that point of the processing. Metrics are attached this way
// (pkg/metrics' Prometheus hook), so the processors themselves carry no
// metrics library. Hooks run on the processing goroutines: they must be
// quick and must not block.
type Hook any

// Outcomes of a source record in the normalizer.
const (
	OutcomeEntries    = "entries"     // it gave its ledger entries (maybe none)
	OutcomeDeadLetter = "dead_letter" // it went to the dead-letter topic
)

// Stages that dead-letter a record.
const (
	StageNormalizer = "normalizer"
	StageFolder     = "folder"
	StageHolds      = "holds"
	StageReconciler = "reconciler"
)

// HookSourceRecord is called once per source record the normalizer has
// dealt with, with its topic and one of the Outcome* values.
type HookSourceRecord interface {
	OnSourceRecord(topic, outcome string)
}

// HookSourceLag is called when a source event is decoded, with how long
// ago its event time was.
type HookSourceLag interface {
	OnSourceLag(topic string, lag time.Duration)
}

// HookDeadLetter is called for each record a stage (Stage*) sends to the
// dead-letter topic, with its error class.
type HookDeadLetter interface {
	OnDeadLetter(stage, class string)
}

// HookPOAcknowledged is called for each acknowledged purchase-order line,
// with the time since the line was released (0 when unknown).
type HookPOAcknowledged interface {
	OnPOAcknowledged(supplier, status string, turnaround time.Duration)
}

// HookIndexCatchUp is called when a normalizer has written the document
// index topic back into Redis, with the number of lines restored.
type HookIndexCatchUp interface {
	OnIndexCatchUp(lines int)
}

// HookFolded is called for each ledger entry the folder has stored, with
// the fold's outcome, at now. The entry must not be kept or changed.
type HookFolded interface {
	OnFolded(e *events.LedgerEntry, out ledger.Outcome, now time.Time)
}

// HookFoldBatch is called for each poll a partition's applier folds, with
// the number of ledger entries in it.
type HookFoldBatch interface {
	OnFoldBatch(entries int)
}

// HookStored is called after each pipelined write of folded state to
// Redis, with how long it took.
type HookStored interface {
	OnStored(took time.Duration)
}

// HookCommitment is called for each change of an order line's promise the
// folder publishes, with the supplier of the entry that caused it ("" when
// none: a receipt, a count, an order) and the units it made late (promised
// after the line's last promised day before, or newly unpromised).
type HookCommitment interface {
	OnCommitment(c *events.CommitmentChanged, supplier string, lateUnits int64)
}

// hooks are a processor's hooks sorted by what they observe, once, so a
// call costs a loop over those that want it.
type hooks struct {
	sourceRecord []HookSourceRecord
	sourceLag    []HookSourceLag
	deadLetter   []HookDeadLetter
	poAck        []HookPOAcknowledged
	indexCatchUp []HookIndexCatchUp
	folded       []HookFolded
	foldBatch    []HookFoldBatch
	stored       []HookStored
	commitment   []HookCommitment
}

func newHooks(hs []Hook) *hooks {
	return &hooks{
		sourceRecord: implementing[HookSourceRecord](hs),
		sourceLag:    implementing[HookSourceLag](hs),
		deadLetter:   implementing[HookDeadLetter](hs),
		poAck:        implementing[HookPOAcknowledged](hs),
		indexCatchUp: implementing[HookIndexCatchUp](hs),
		folded:       implementing[HookFolded](hs),
		foldBatch:    implementing[HookFoldBatch](hs),
		stored:       implementing[HookStored](hs),
		commitment:   implementing[HookCommitment](hs),
	}
}

// implementing are the hooks of hs that implement T.
func implementing[T any](hs []Hook) []T {
	var out []T
	for _, x := range hs {
		if v, ok := x.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func (h *hooks) onSourceRecord(topic, outcome string) {
	for _, x := range h.sourceRecord {
		x.OnSourceRecord(topic, outcome)
	}
}

func (h *hooks) onSourceLag(topic string, lag time.Duration) {
	for _, x := range h.sourceLag {
		x.OnSourceLag(topic, lag)
	}
}

func (h *hooks) onDeadLetter(stage, class string) {
	for _, x := range h.deadLetter {
		x.OnDeadLetter(stage, class)
	}
}

func (h *hooks) onPOAcknowledged(supplier, status string, turnaround time.Duration) {
	for _, x := range h.poAck {
		x.OnPOAcknowledged(supplier, status, turnaround)
	}
}

func (h *hooks) onIndexCatchUp(lines int) {
	for _, x := range h.indexCatchUp {
		x.OnIndexCatchUp(lines)
	}
}

func (h *hooks) onFolded(e *events.LedgerEntry, out ledger.Outcome, now time.Time) {
	for _, x := range h.folded {
		x.OnFolded(e, out, now)
	}
}

func (h *hooks) onFoldBatch(entries int) {
	for _, x := range h.foldBatch {
		x.OnFoldBatch(entries)
	}
}

func (h *hooks) onStored(took time.Duration) {
	for _, x := range h.stored {
		x.OnStored(took)
	}
}

func (h *hooks) onCommitment(c *events.CommitmentChanged, supplier string, lateUnits int64) {
	for _, x := range h.commitment {
		x.OnCommitment(c, supplier, lateUnits)
	}
}
