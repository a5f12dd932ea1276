package atp

import (
	"testing"
	"time"
)

func fuzzPosition(onHand, reserved, picked, held, ss, in1, in2 int64, d1, d2 int8, k1, k2 uint8) Position {
	abs := func(v int64) int64 {
		if v < 0 {
			v = -v
		}
		return v % (1 << 40)
	}
	return Position{
		OnHand: onHand % (1 << 40), Reserved: abs(reserved), Picked: abs(picked), Held: abs(held), SafetyStock: abs(ss),
		Inbound: []Supply{
			{Kind(k1 % 3), day(int(d1) % 30), abs(in1)},
			{Kind(k2 % 3), day(int(d2) % 30), abs(in2)},
		},
	}
}

// FuzzInvariants checks, for arbitrary positions, that
//   - ATP never exceeds on hand plus the inbound counted by then;
//   - adding a hold never raises ATP, today or later;
//   - a group's ATP is at least each member's clamped contribution;
//   - a channel never sees more than the ATP, nor less than zero;
//   - a larger quantity is never promised earlier.
func FuzzInvariants(f *testing.F) {
	f.Add(int64(100), int64(10), int64(5), int64(2), int64(3), int64(50), int64(7), int8(2), int8(-1), uint8(0), uint8(2), int64(4), int8(3))
	f.Add(int64(-5), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int8(0), int8(0), uint8(1), uint8(1), int64(1), int8(0))
	f.Fuzz(func(t *testing.T, onHand, reserved, picked, held, ss, in1, in2 int64, d1, d2 int8, k1, k2 uint8, hold int64, at int8) {
		p := fuzzPosition(onHand, reserved, picked, held, ss, in1, in2, d1, d2, k1, k2)
		when := day(int(at) % 40)
		for _, policy := range []SupplyPolicy{AllSupply, {ASN: true}, {}} {
			var counted int64
			for _, s := range p.Inbound {
				if policy.Counts(s.Kind) && !due(s, Day(today)).After(Day(when)) && Day(when).After(Day(today)) {
					counted += s.Quantity
				}
			}
			a, _ := Clamp(p.RawAt(when, today, policy))
			if a > max(p.OnHand+counted, 0) {
				t.Fatalf("ATP %d exceeds on hand %d + counted inbound %d", a, p.OnHand, counted)
			}
			q := hold % (1 << 30)
			if q < 0 {
				q = -q
			}
			withHold := p
			withHold.Held += q
			if withHold.RawAt(when, today, policy) > p.RawAt(when, today, policy) {
				t.Fatal("a hold raised ATP")
			}
			d1, ok1 := p.PromiseDate(q, today, policy)
			d2, ok2 := p.PromiseDate(q+1, today, policy)
			if ok2 && (!ok1 || d2.Before(d1)) {
				t.Fatalf("%d promised on %v but %d on %v (%v)", q+1, d2, q, d1, ok1)
			}
		}
		members := []int64{p.Raw(), -p.Raw(), p.RawAt(when, today, AllSupply)}
		g := Group(members, 0)
		for _, m := range members {
			if c, _ := Clamp(m); g < c {
				t.Fatalf("group %d below member contribution %d", g, c)
			}
		}
		rules := ChannelRules{"a": {CapPercent: 30}, "b": {Protected: ss % 100}, "c": {CapUnits: 7}}
		a, _ := p.Today()
		for _, ch := range []string{"a", "b", "c", "", "zzz"} {
			if v := rules.ForChannel(a, ch); v < 0 || v > a {
				t.Fatalf("channel %q sees %d of %d", ch, v, a)
			}
		}
	})
}

func FuzzParseChannelRules(f *testing.F) {
	f.Add("web=cap:50%;marketplace=cap:30;stores=protect:20")
	f.Add("x=cap:1,protect:2")
	f.Add(";;=;a=")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseChannelRules(s)
		if err != nil {
			return
		}
		again, err := ParseChannelRules(r.String())
		if err != nil {
			t.Fatalf("round trip of %q: %v", r.String(), err)
		}
		if again.String() != r.String() {
			t.Fatalf("round trip changed %q to %q", r.String(), again.String())
		}
	})
}

var sink int64

func BenchmarkToday(b *testing.B) {
	p := Position{OnHand: 120, Reserved: 30, Picked: 10, Held: 5, SafetyStock: 20}
	for b.Loop() {
		a, _ := p.Today()
		sink += a
	}
}

func BenchmarkRawAt(b *testing.B) {
	p := Position{OnHand: 120, Reserved: 30, Inbound: []Supply{{ASN, day(2), 40}, {Acknowledged, day(5), 100}, {Released, day(9), 60}, {Released, day(12), 30}}}
	at := day(7)
	b.ReportAllocs()
	for b.Loop() {
		sink += p.RawAt(at, today, AllSupply)
	}
}

func BenchmarkPromiseDate(b *testing.B) {
	p := Position{OnHand: 10, Inbound: []Supply{{ASN, day(2), 40}, {Acknowledged, day(5), 100}, {Released, day(9), 60}, {Released, day(12), 30}}}
	b.ReportAllocs()
	for b.Loop() {
		d, _ := p.PromiseDate(150, today, AllSupply)
		sink += int64(d.Day())
	}
}

var _ = time.Time{}
