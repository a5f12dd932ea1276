package atp

import (
	"testing"
	"time"
)

var today = time.Date(2026, 11, 26, 15, 30, 0, 0, time.UTC)

func day(n int) time.Time { return Day(today).AddDate(0, 0, n) }

func TestRawAndToday(t *testing.T) {
	cases := []struct {
		name       string
		p          Position
		atp, short int64
	}{
		{"plain stock", Position{OnHand: 100}, 100, 0},
		{"every deduction", Position{OnHand: 100, Reserved: 10, Picked: 5, Held: 3, SafetyStock: 7}, 75, 0},
		{"oversold shows a shortfall, never a negative ATP", Position{OnHand: 4, Reserved: 10}, 0, 6},
		{"safety stock alone can make it short", Position{OnHand: 2, SafetyStock: 5}, 0, 3},
		{"inbound does not count today", Position{OnHand: 1, Inbound: []Supply{{ASN, day(0), 50}}}, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, s := tc.p.Today()
			if a != tc.atp || s != tc.short {
				t.Fatalf("Today() = %d, %d; want %d, %d", a, s, tc.atp, tc.short)
			}
		})
	}
}

func TestTimePhased(t *testing.T) {
	p := Position{OnHand: 10, Reserved: 4, Inbound: []Supply{
		{Released, day(5), 100},
		{Acknowledged, day(3), 20},
		{ASN, day(1), 7},
		{ASN, day(-2), 5}, // overdue: counts from tomorrow
	}}
	cases := []struct {
		name   string
		at     time.Time
		policy SupplyPolicy
		want   int64
	}{
		{"today", day(0), AllSupply, 6},
		{"earlier than today is today", day(-3), AllSupply, 6},
		{"tomorrow: ASN and the overdue line", day(1), AllSupply, 18},
		{"day 3 adds the acknowledged line", day(3), AllSupply, 38},
		{"day 5 adds the released PO", day(5), AllSupply, 138},
		{"only ASNs count", day(5), SupplyPolicy{ASN: true}, 18},
		{"no released POs", day(9), SupplyPolicy{ASN: true, Acknowledged: true}, 38},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.RawAt(tc.at, today, tc.policy); got != tc.want {
				t.Fatalf("RawAt = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPromiseDate(t *testing.T) {
	p := Position{OnHand: 10, Inbound: []Supply{{ASN, day(2), 5}, {Released, day(6), 100}}}
	cases := []struct {
		q      int64
		policy SupplyPolicy
		want   time.Time
		ok     bool
	}{
		{10, AllSupply, day(0), true},
		{12, AllSupply, day(2), true},
		{15, AllSupply, day(2), true},
		{16, AllSupply, day(6), true},
		{116, AllSupply, time.Time{}, false},
		{16, SupplyPolicy{ASN: true}, time.Time{}, false},
	}
	for _, tc := range cases {
		got, ok := p.PromiseDate(tc.q, today, tc.policy)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("PromiseDate(%d) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBucketsMergeByDueDay(t *testing.T) {
	p := Position{Inbound: []Supply{{ASN, day(-1), 3}, {Acknowledged, day(1), 4}, {Released, day(4), 0}, {Released, day(4), 6}}}
	got := p.Buckets(today, AllSupply)
	want := []Bucket{{day(1), 7}, {day(4), 6}}
	if len(got) != len(want) {
		t.Fatalf("buckets %v", got)
	}
	for i := range want {
		if !got[i].Date.Equal(want[i].Date) || got[i].Quantity != want[i].Quantity {
			t.Fatalf("buckets %v, want %v", got, want)
		}
	}
}

func TestGroup(t *testing.T) {
	cases := []struct {
		name    string
		members []int64
		demand  int64
		want    int64
	}{
		{"sum of members", []int64{10, 5}, 0, 15},
		{"a short location takes nothing from the others", []int64{10, -8, 5}, 0, 15},
		{"unallocated demand comes off", []int64{10, 5}, 4, 11},
		{"demand beyond stock goes negative (callers clamp)", []int64{3}, 5, -2},
	}
	for _, tc := range cases {
		if got := Group(tc.members, tc.demand); got != tc.want {
			t.Errorf("%s: Group = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestChannelRules(t *testing.T) {
	rules, err := ParseChannelRules("web=cap:50%;marketplace=cap:30;stores=protect:20")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		channel string
		atp     int64
		want    int64
	}{
		{"web", 100, 50},         // 100 - 20 protected for stores = 80, capped at 50% of 100
		{"web", 30, 10},          // 30 - 20 = 10, under the 15 cap
		{"marketplace", 100, 30}, // capped at 30 units
		{"stores", 100, 100},     // its own protection does not apply to it
		{"", 100, 80},            // no channel: every protection applies
		{"web", 0, 0},
		{"web", 10, 0}, // protection larger than ATP: nothing, never negative
	}
	for _, tc := range cases {
		if got := rules.ForChannel(tc.atp, tc.channel); got != tc.want {
			t.Errorf("ForChannel(%d, %q) = %d, want %d", tc.atp, tc.channel, got, tc.want)
		}
	}
	if got := rules.String(); got != "marketplace=cap:30;stores=protect:20;web=cap:50%" {
		t.Errorf("String() = %q", got)
	}
}

func TestParseChannelRulesReportsEveryProblem(t *testing.T) {
	_, err := ParseChannelRules("web=cap:150%;b2b=limit:3;x;app=protect:-1")
	if err == nil {
		t.Fatal("accepted bad rules")
	}
	for _, want := range []string{"web: cap", "unknown rule", `"x"`, "app: protect"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestHoldLapsesAtItsExpiry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		exp, now int64
		lapsed   bool
	}{
		{"before expiry", 1000, 999, false},
		{"at expiry", 1000, 1000, true},
		{"after expiry", 1000, 1001, true},
		{"no clock (verify, rebuild)", 1000, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Lapsed(tc.exp, tc.now); got != tc.lapsed {
				t.Fatalf("Lapsed(%d, %d) = %v, want %v", tc.exp, tc.now, got, tc.lapsed)
			}
		})
	}
}

func TestForChannelHoldingCountsTheChannelsOwnHolds(t *testing.T) {
	rules, err := ParseChannelRules("web=cap:50%;marketplace=cap:20;stores=protect:10")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		atp, held int64
		channel   string
		want      int64
	}{
		{"web holds nothing yet", 100, 0, "web", 50},
		{"web holds 30 of the 100 there were", 70, 30, "web", 20},
		{"web holds its 50", 50, 50, "web", 0},
		{"marketplace holds 15 of its 20 units", 85, 15, "marketplace", 5},
		{"stores: every other protection, no cap", 40, 0, "stores", 40},
		{"no channel: the protections", 40, 0, "", 30},
		{"nothing left", 0, 10, "web", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rules.ForChannelHolding(tc.atp, tc.channel, tc.held); got != tc.want {
				t.Fatalf("ForChannelHolding(%d, %s, %d) = %d, want %d", tc.atp, tc.channel, tc.held, got, tc.want)
			}
		})
	}
}
