package sources

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
)

var itemMaster = Register(Def[*events.ItemMaster]{
	Doc: "One ITEM_POLICY per location named in the item's safety stock or reorder point maps. Its unit conversions " +
		"are read by the catalog, not the ledger.",
	Topic: catalogTopic,
	Summary: func(e *events.ItemMaster) string {
		return fmt.Sprintf("item %s in %s, %d conversions, lead time %d days", e.SKU, e.BaseUoM, len(e.Conversions), e.LeadTimeDays)
	},
	Normalize: func(_ context.Context, _ Env, r *kgo.Record, e *events.ItemMaster) ([]*events.LedgerEntry, error) {
		if err := checkID("sku", e.SKU); err != nil {
			return nil, err
		}
		for u, f := range e.Conversions {
			if f <= 0 {
				return nil, Reject(ClassInvalid, "conversions[%s]: %d must be > 0", u, f)
			}
		}
		locs, err := policyLocations(e)
		if err != nil {
			return nil, err
		}
		out := make([]*events.LedgerEntry, 0, len(locs))
		for _, l := range locs {
			le := newEntry(events.EntryItemPolicy, e.SKU, &e.Meta, r)
			le.Location = str(l)
			if v, ok := e.SafetyStock[l]; ok {
				if v < 0 {
					return nil, Reject(ClassInvalid, "safety_stock[%s]: %d must be >= 0", l, v)
				}
				le.SafetyStock = &v
			}
			if v, ok := e.ReorderPoint[l]; ok {
				if v < 0 {
					return nil, Reject(ClassInvalid, "reorder_point[%s]: %d must be >= 0", l, v)
				}
				le.ReorderPoint = &v
			}
			out = append(out, le)
		}
		return out, nil
	},
})

// policyLocations are the locations an item master sets a policy for,
// sorted.
func policyLocations(e *events.ItemMaster) ([]string, error) {
	set := map[string]bool{}
	for l := range e.SafetyStock {
		set[l] = true
	}
	for l := range e.ReorderPoint {
		set[l] = true
	}
	locs := make([]string, 0, len(set))
	for l := range set {
		if err := checkID("safety_stock/reorder_point location", l); err != nil {
			return nil, err
		}
		locs = append(locs, l)
	}
	slices.Sort(locs)
	return locs, nil
}
