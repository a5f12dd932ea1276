// Package atp is the available-to-promise engine: pure functions over ledger
// positions and policies. It does no I/O.
package atp

// Position is one SKU's ledger totals at one location.
type Position struct {
	OnHand, Reserved, Picked, Held, SafetyStock int64
}

// Raw is today's location ATP before clamping: on hand less everything
// promised or protected. Today's ATP counts no inbound.
func (p Position) Raw() int64 {
	return p.OnHand - p.Reserved - p.Picked - p.Held - p.SafetyStock
}

// Today is what a caller sees for today: ATP never below zero, and the
// shortfall (how far below zero the raw figure is) reported separately.
func (p Position) Today() (atp, shortfall int64) {
	return Clamp(p.Raw())
}

// Clamp splits a raw ATP into the non-negative figure callers see and the shortfall.
func Clamp(raw int64) (atp, shortfall int64) {
	if raw < 0 {
		return 0, -raw
	}
	return raw, 0
}
