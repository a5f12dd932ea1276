package ledger

import "testing"

// Key names are data: a deployment's Redis holds them. A change here
// strands what is stored under the old names.
func TestKeysKeepTheirNames(t *testing.T) {
	k := NewKeys("sf")
	for _, c := range []struct{ got, want string }{
		{k.All(), "sf:*"},
		{k.SKU("SKU-1"), "sf:{SKU-1}"},
		{k.Hold("h1"), "sf:{hold:h1}"},
		{k.HoldPart("h1", "claim"), "sf:{hold:h1}:claim"},
		{k.HoldAnswers("api-1"), "sf:holds:api-1"},
		{k.HoldFence("stockflow.ledger.v1", 3), "sf:{holdfence:stockflow.ledger.v1:3}"},
		{k.HoldDecision("stockflow.ledger.v1", 3, HoldKey("h1", "DC-1")), "sf:{holdfence:stockflow.ledger.v1:3}:a:h1|DC-1"},
		{k.ReconcileRuns(), "sf:recon:runs"},
		{k.ReconcileRun("R1"), "sf:{recon:R1}"},
		{k.ReconcileRunPart("R1", "xs"), "sf:{recon:R1}:xs"},
		{k.DeadLetterState(), "sf:dlq:state"},
		{k.ConsoleAudit(), "sf:console:audit"},
		{k.name("layout"), "sf:layout"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}
