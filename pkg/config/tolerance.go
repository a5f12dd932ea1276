package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Tolerance is how far a snapshot may be from the ledger and still count
// as agreeing: at most Units units, or at most Percent percent of the
// ledger's quantity. A difference within either limit is within tolerance;
// a zero limit is no limit.
type Tolerance struct {
	Units   int64
	Percent float64
}

// Within says whether diff, against a ledger quantity of ledger, is
// within t.
func (t Tolerance) Within(diff, ledger int64) bool {
	if diff == 0 {
		return true
	}
	d := diff
	if d < 0 {
		d = -d
	}
	if t.Units > 0 && d <= t.Units {
		return true
	}
	return t.Percent > 0 && float64(d)*100 <= t.Percent*math.Abs(float64(ledger))
}

func (t Tolerance) String() string {
	var parts []string
	if t.Units > 0 {
		parts = append(parts, strconv.FormatInt(t.Units, 10))
	}
	if t.Percent > 0 {
		parts = append(parts, strconv.FormatFloat(t.Percent, 'f', -1, 64)+"%")
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ",")
}

// Tolerances are the tolerance per location, with a default for the rest.
type Tolerances struct {
	Default    Tolerance
	ByLocation map[string]Tolerance
}

// For returns the tolerance at loc.
func (t Tolerances) For(loc string) Tolerance {
	if tl, ok := t.ByLocation[loc]; ok {
		return tl
	}
	return t.Default
}

// ParseTolerances reads "*=2;DC-EAST=5,1%;STORE-NYC=0.5%": per location
// (or * for every other location) a unit limit, a percent limit or both,
// comma-separated. Empty: no tolerance anywhere.
func ParseTolerances(s string) (Tolerances, error) {
	out := Tolerances{ByLocation: map[string]Tolerance{}}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		loc, spec, ok := strings.Cut(part, "=")
		loc = strings.TrimSpace(loc)
		if !ok || loc == "" {
			return Tolerances{}, fmt.Errorf("%q is not LOCATION=limits (use * for every other location)", part)
		}
		var t Tolerance
		for lim := range strings.SplitSeq(spec, ",") {
			lim = strings.TrimSpace(lim)
			if p, isPct := strings.CutSuffix(lim, "%"); isPct {
				f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
				if err != nil || f < 0 || f > 100 || math.IsNaN(f) {
					return Tolerances{}, fmt.Errorf("%s: %q is not a percentage 0..100", loc, lim)
				}
				t.Percent = f
				continue
			}
			n, err := strconv.ParseInt(lim, 10, 64)
			if err != nil || n < 0 {
				return Tolerances{}, fmt.Errorf("%s: %q is neither a unit count >= 0 nor a percentage such as 0.5%%", loc, lim)
			}
			t.Units = n
		}
		if loc == "*" {
			out.Default = t
			continue
		}
		if !idPattern.MatchString(loc) {
			return Tolerances{}, fmt.Errorf("%q is not a location id", loc)
		}
		if _, dup := out.ByLocation[loc]; dup {
			return Tolerances{}, fmt.Errorf("%s is given twice", loc)
		}
		out.ByLocation[loc] = t
	}
	return out, nil
}
