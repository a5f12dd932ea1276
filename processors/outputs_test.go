package processors

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

// The inbound schedule on the availability topic is the one the API serves
// on the record's day: per day, under the supply policy, a line past its
// date counting from tomorrow; and a change that only moved supply is
// published.
func TestAvailabilityCarriesTheDatedSchedule(t *testing.T) {
	now := time.Date(2026, 11, 26, 15, 4, 5, 0, time.UTC)
	day := func(d int) time.Time { return atp.Day(now).AddDate(0, 0, d) }
	tomorrow := day(1)
	supply := []atp.Supply{
		{Kind: atp.Released, Date: day(-2), Quantity: 5}, // overdue
		{Kind: atp.Acknowledged, Date: day(3), Quantity: 20},
		{Kind: atp.Released, Date: day(3), Quantity: 7},
		{Kind: atp.ASN, Date: day(1), Quantity: 12},
	}
	total := int64(5 + 20 + 7 + 12)
	comps := ledger.Components{OnHand: 30, Reserved: 4, Inbound: total}
	cases := []struct {
		name   string
		policy atp.SupplyPolicy
		c      ledger.Changed
		want   []events.InboundBucket // nil: no record
	}{
		{"every kind", atp.AllSupply,
			ledger.Changed{Before: ledger.Components{OnHand: 30}, After: comps, Supply: supply},
			[]events.InboundBucket{{Date: tomorrow, Quantity: 5 + 12}, {Date: day(3), Quantity: 27}}},
		{"firm supply only", atp.SupplyPolicy{ASN: true, Acknowledged: true},
			ledger.Changed{Before: ledger.Components{OnHand: 30}, After: comps, Supply: supply},
			[]events.InboundBucket{{Date: tomorrow, Quantity: 12}, {Date: day(3), Quantity: 20}}},
		{"a date moved, the totals did not", atp.AllSupply,
			ledger.Changed{Before: comps, After: comps, Supply: supply, SupplyChanged: true},
			[]events.InboundBucket{{Date: tomorrow, Quantity: 5 + 12}, {Date: day(3), Quantity: 27}}},
		{"nothing changed", atp.AllSupply,
			ledger.Changed{Before: comps, After: comps, Supply: supply},
			nil},
		{"no supply", atp.AllSupply,
			ledger.Changed{After: ledger.Components{OnHand: 3}},
			[]events.InboundBucket{}},
	}
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	topics := config.Default().Topics
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &emitter{codec: codec, topics: topics, supply: tc.policy}
			tc.c.Location, tc.c.Version = "DC1", 3
			rec, err := e.availability(ctx, &change{sku: "SKU-1", Changed: tc.c}, now)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if rec != nil {
					t.Fatalf("published %q for a change that changed nothing", rec.Value)
				}
				return
			}
			if rec == nil {
				t.Fatal("nothing published")
			}
			v, err := codec.Decode(ctx, rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			got := v.(*events.AvailabilityChanged)
			if !slices.Equal(got.Inbound, tc.want) {
				t.Fatalf("inbound %+v, want %+v", got.Inbound, tc.want)
			}
			if got.ATP != tc.c.After.OnHand-tc.c.After.Reserved || got.Version != 3 || !got.AsOf.Equal(now) {
				t.Fatalf("record %+v", got)
			}
		})
	}
}
