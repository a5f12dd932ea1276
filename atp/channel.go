package atp

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ChannelRule limits what one sales channel may promise.
type ChannelRule struct {
	// Cap is the most this channel may promise: CapUnits when > 0, else
	// CapPercent of ATP when > 0. No cap when both are 0.
	CapUnits   int64
	CapPercent float64
	// Protected is quantity kept for this channel: every other channel sees
	// ATP minus it.
	Protected int64
}

// ChannelRules are the rules by channel name.
type ChannelRules map[string]ChannelRule

// ForChannel returns what channel may promise of a (clamped) ATP: less what
// other channels protect, then capped by the channel's own cap. An empty
// channel is subject to every protection and no cap. It is
// ForChannelHolding for a channel that holds nothing at the position.
func (r ChannelRules) ForChannel(atp int64, channel string) int64 {
	return r.ForChannelHolding(atp, channel, 0)
}

// ForChannelHolding is what channel may still promise of a (clamped) ATP
// while it holds held units of the same position: less what other channels
// protect, and its cap bounds what it holds and promises together. So a
// storm of one-unit holds under cap:50% on 100 units stops at 50, rather
// than taking half of what each hold before it left. Lookups and hold
// decisions both use it.
func (r ChannelRules) ForChannelHolding(atp int64, channel string, held int64) int64 {
	if atp <= 0 {
		return 0
	}
	out := atp
	for name, rule := range r {
		if name != channel && rule.Protected > 0 {
			out -= rule.Protected
		}
	}
	if rule, ok := r[channel]; ok {
		switch {
		case rule.CapUnits > 0:
			out = min(out, rule.CapUnits-held)
		case rule.CapPercent > 0:
			out = min(out, int64(math.Floor(float64(atp+held)*rule.CapPercent/100))-held)
		}
	}
	return max(out, 0)
}

// ParseChannelRules reads rules written as
//
//	web=cap:50%;marketplace=cap:200;stores=protect:20,cap:80%
//
// Every problem is reported at once.
func ParseChannelRules(s string) (ChannelRules, error) {
	out := ChannelRules{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var errs []error
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, rules, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("%q: want channel=rule[,rule]", part))
			continue
		}
		var r ChannelRule
		if strings.TrimSpace(rules) == "" { // a channel with no restrictions
			out[name] = r
			continue
		}
		for _, rule := range strings.Split(rules, ",") {
			kind, val, ok := strings.Cut(strings.TrimSpace(rule), ":")
			if !ok {
				errs = append(errs, fmt.Errorf("%s: %q: want cap:N, cap:P%% or protect:N", name, rule))
				continue
			}
			switch kind {
			case "cap":
				if p, isPct := strings.CutSuffix(val, "%"); isPct {
					f, err := strconv.ParseFloat(p, 64)
					if err != nil || f <= 0 || f > 100 {
						errs = append(errs, fmt.Errorf("%s: cap %q: a percentage in (0, 100]", name, val))
						continue
					}
					r.CapPercent = f
				} else {
					n, err := strconv.ParseInt(val, 10, 64)
					if err != nil || n <= 0 {
						errs = append(errs, fmt.Errorf("%s: cap %q: a positive whole number", name, val))
						continue
					}
					r.CapUnits = n
				}
			case "protect":
				n, err := strconv.ParseInt(val, 10, 64)
				if err != nil || n < 0 {
					errs = append(errs, fmt.Errorf("%s: protect %q: a whole number >= 0", name, val))
					continue
				}
				r.Protected = n
			default:
				errs = append(errs, fmt.Errorf("%s: unknown rule %q", name, kind))
			}
		}
		out[name] = r
	}
	return out, errors.Join(errs...)
}

// String writes the rules back in the form ParseChannelRules reads.
func (r ChannelRules) String() string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		rule := r[n]
		var rs []string
		if rule.CapUnits > 0 {
			rs = append(rs, "cap:"+strconv.FormatInt(rule.CapUnits, 10))
		} else if rule.CapPercent > 0 {
			rs = append(rs, "cap:"+strconv.FormatFloat(rule.CapPercent, 'f', -1, 64)+"%")
		}
		if rule.Protected > 0 {
			rs = append(rs, "protect:"+strconv.FormatInt(rule.Protected, 10))
		}
		parts = append(parts, n+"="+strings.Join(rs, ","))
	}
	return strings.Join(parts, ";")
}
