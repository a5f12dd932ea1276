package atp

// Alert is a threshold a position crossed.
type Alert int

// The alerts, in the order Crossings reports them.
const (
	// ReplenishmentNeeded: ATP fell below the reorder point.
	ReplenishmentNeeded Alert = iota
	// StockOut: ATP fell to zero or below.
	StockOut
	// BackInStock: ATP rose above zero.
	BackInStock
	// NegativeOnHand: on hand went below zero (a book error to reconcile).
	NegativeOnHand
)

// Level is what the alert rules read of a position.
type Level struct {
	Position
	ReorderPoint int64
	// InboundTotal is all open supply, whatever its date.
	InboundTotal int64
}

// Crossing is an alert with what it suggests.
type Crossing struct {
	Alert Alert
	// Suggested is, for ReplenishmentNeeded, the quantity to order: up to
	// twice the reorder point, counting what is already inbound.
	Suggested int64
}

// Crossings lists the thresholds a change from before to after crosses.
// Alerts fire on the crossing only, so a position that stays low alerts once.
func Crossings(before, after Level) []Crossing {
	b, a := before.Raw(), after.Raw()
	var out []Crossing
	if rop := after.ReorderPoint; rop > 0 && a < rop && b >= rop {
		out = append(out, Crossing{Alert: ReplenishmentNeeded, Suggested: max(2*rop-a-after.InboundTotal, 0)})
	}
	if b > 0 && a <= 0 {
		out = append(out, Crossing{Alert: StockOut})
	}
	if b <= 0 && a > 0 {
		out = append(out, Crossing{Alert: BackInStock})
	}
	if before.OnHand >= 0 && after.OnHand < 0 {
		out = append(out, Crossing{Alert: NegativeOnHand})
	}
	return out
}
