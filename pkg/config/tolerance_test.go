package config

import "testing"

func TestParseTolerances(t *testing.T) {
	tol, err := ParseTolerances("*=2; DC-EAST=5,1% ;STORE-NYC=0.5%")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		loc          string
		diff, ledger int64
		want         bool
	}{
		{"ANY", 2, 100, true}, {"ANY", -3, 1000, false},
		{"DC-EAST", 5, 0, true}, {"DC-EAST", 9, 1000, true}, {"DC-EAST", 11, 1000, false}, {"DC-EAST", -10, 1000, true},
		{"STORE-NYC", 1, 200, true}, {"STORE-NYC", 2, 200, false}, {"STORE-NYC", 1, 0, false},
	} {
		if got := tol.For(c.loc).Within(c.diff, c.ledger); got != c.want {
			t.Errorf("%s: %d against %d within %v: %v, want %v", c.loc, c.diff, c.ledger, tol.For(c.loc), got, c.want)
		}
	}
	none, err := ParseTolerances("")
	if err != nil || none.For("X").Within(1, 1000000) {
		t.Errorf("no tolerance: %v %v", none, err)
	}
	for _, bad := range []string{"DC-EAST", "=5", "X=-1", "X=abc", "X=101%", "X=1;X=2", "bad id!=1"} {
		if _, err := ParseTolerances(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
