package ledger

import (
	"sort"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
)

// Fold is a whole ledger log folded in memory by the engine, SKU by SKU:
// stockflow verify folds the log with it and compares the result with
// Redis, and tests use it as the reference a stored ledger must equal.
type Fold struct {
	eng  *Engine
	skus map[string]*State
	// Decisions records every hold decision: "hold|location|sku" -> status.
	Decisions map[string]string
	// Oversold lists holds accepted beyond ATP; by construction it stays
	// empty, and verify reports it if not.
	Oversold []string
}

// NewFold returns an empty fold.
func NewFold(cfg Config) *Fold {
	return &Fold{eng: NewEngine(cfg), skus: map[string]*State{}, Decisions: map[string]string{}}
}

// Apply folds one entry read at partition/offset of the log.
func (f *Fold) Apply(e *events.LedgerEntry, partition int32, offset int64) Outcome {
	s, ok := f.skus[e.SKU]
	if !ok {
		s = NewState(e.SKU)
		f.skus[e.SKU] = s
	}
	out := f.eng.Apply(s, e, partition, offset)
	// Nothing is stored: keep the change log from growing.
	s.d = dirty{}
	if out.Hold != nil {
		key := out.Hold.HoldID + "|" + out.Hold.Location
		_, repeat := f.Decisions[key+"|"+e.SKU]
		f.Decisions[key+"|"+e.SKU] = out.Hold.Status
		// A new acceptance must leave the location's ATP at zero or above:
		// here, or, for a decision its partition's owner journaled, where
		// it was decided (entries folded since may have taken stock).
		if p := s.pos[out.Hold.Location]; !repeat && out.Status == Held {
			if e.Status != nil && out.Hold.ATP < 0 || e.Status == nil && p.OnHand-p.Reserved-p.Picked-p.Held-p.SafetyStock < 0 {
				f.Oversold = append(f.Oversold, key)
			}
		}
	}
	return out
}

// SKUs lists the folded SKUs, sorted.
func (f *Fold) SKUs() []string {
	out := make([]string, 0, len(f.skus))
	for s := range f.skus {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// State returns the folded state of sku, or nil.
func (f *Fold) State(sku string) *State { return f.skus[sku] }

// Positions returns the components of every location of sku.
func (f *Fold) Positions(sku string) map[string]Components {
	if s, ok := f.skus[sku]; ok {
		return s.Positions()
	}
	return map[string]Components{}
}

// Watermarks returns, per partition, the last offset folded for sku.
func (f *Fold) Watermarks(sku string) map[int32]int64 {
	if s, ok := f.skus[sku]; ok {
		return s.Watermarks()
	}
	return nil
}

// Holds returns the hold decisions of sku by hold|location.
func (f *Fold) Holds(sku string) map[string]Hold {
	if s, ok := f.skus[sku]; ok {
		return s.Holds()
	}
	return map[string]Hold{}
}

// GroupDemand returns the fold's unallocated demand of sku in group.
func (f *Fold) GroupDemand(sku, group string) int64 {
	if s, ok := f.skus[sku]; ok {
		return s.GroupDemand(group)
	}
	return 0
}

// Promises returns the promise of every open order line of sku
// ("order|line" -> the promise as its line stores it), as Recommit makes
// them from the fold's final state under policy.
func (f *Fold) Promises(sku string, policy atp.SupplyPolicy) map[string]string {
	s, ok := f.skus[sku]
	if !ok {
		return map[string]string{}
	}
	for loc := range s.pos {
		s.Recommit(loc, policy)
	}
	s.d = dirty{}
	out := map[string]string{}
	for k, l := range s.lines {
		if l.Promise != "" {
			out[k] = l.Promise
		}
	}
	return out
}
