package bench

import (
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	for body, want := range map[string]int64{
		`{"sku":"HOT-0001","version":42,"at":"x"}`: 42,
		`{"version":7}`: 7,
	} {
		if v, ok := parseVersion([]byte(body)); !ok || v != want {
			t.Errorf("%s: %d %v, want %d", body, v, ok, want)
		}
	}
	for _, body := range []string{`{"sku":"x"}`, `{"version":}`, `{"version":"7"}`} {
		if v, ok := parseVersion([]byte(body)); ok {
			t.Errorf("%s: %d, want no version", body, v)
		}
	}
}

func TestStaleness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	acks := []ack{{1, ms(0)}, {2, ms(10)}, {3, ms(20)}}
	for _, c := range []struct {
		version int64
		sent    time.Time
		want    time.Duration
	}{
		{3, ms(50), 0},                     // the newest
		{2, ms(15), 0},                     // version 3 not yet acknowledged
		{2, ms(25), 5 * time.Millisecond},  // version 3 acknowledged 5 ms before
		{1, ms(25), 15 * time.Millisecond}, // from the first newer version, 2
		{4, ms(25), 0},                     // written, not yet acknowledged
		{0, ms(5), 5 * time.Millisecond},   // older than the seed
	} {
		if got := staleness(acks, hotAnswer{version: c.version, sent: c.sent}); got != c.want {
			t.Errorf("version %d sent at %v: %v, want %v", c.version, c.sent.Sub(t0), got, c.want)
		}
	}
}

func TestHotPickCoversTheSet(t *testing.T) {
	seen := make([]bool, hotSKUs)
	for i := 0; i < 50*hotSKUs; i++ {
		p := hotPick(i)
		if p < 0 || p >= hotSKUs {
			t.Fatalf("hotPick(%d) = %d", i, p)
		}
		seen[p] = true
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("%s never asked for", hotSKU(i))
		}
	}
}
