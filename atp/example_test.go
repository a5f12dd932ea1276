package atp_test

import (
	"fmt"
	"time"

	"github.com/stockflow/stockflow/atp"
)

func ExamplePosition_Today() {
	p := atp.Position{OnHand: 120, Reserved: 30, Picked: 10, Held: 5, SafetyStock: 20}
	a, short := p.Today()
	fmt.Println(a, short)
	// Output: 55 0
}

func ExamplePosition_PromiseDate() {
	today := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	p := atp.Position{OnHand: 10, Inbound: []atp.Supply{
		{Kind: atp.ASN, Date: today.AddDate(0, 0, 3), Quantity: 40},
	}}
	d, ok := p.PromiseDate(25, today, atp.AllSupply)
	fmt.Println(d.Format("2006-01-02"), ok)
	_, ok = p.PromiseDate(100, today, atp.AllSupply)
	fmt.Println(ok)
	// Output:
	// 2026-11-29 true
	// false
}

func ExampleGroup() {
	// DC1 has 40 promisable, DC2 is oversold by 5, 12 units are reserved
	// against the group but not yet allocated to a location.
	fmt.Println(atp.Group([]int64{40, -5}, 12))
	// Output: 28
}

func ExampleChannelRules_ForChannel() {
	rules, _ := atp.ParseChannelRules("marketplace=cap:25%;stores=protect:10")
	fmt.Println(rules.ForChannel(100, "marketplace"), rules.ForChannel(100, "web"), rules.ForChannel(100, "stores"))
	// Output: 25 90 100
}

func ExampleHeld() {
	noon := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixMilli()
	holds := []atp.Hold{
		{Quantity: 2, Expires: noon + 60_000}, // a minute to go
		{Quantity: 5, Expires: noon},          // lapses at noon exactly
		{Quantity: 1, Expires: noon - 1},
	}
	fmt.Println(atp.Held(holds, noon), atp.Held(holds, noon-1))
	// Output: 2 7
}
