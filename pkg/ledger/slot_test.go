package ledger

import "testing"

// Slots as Redis Cluster computes them (CLUSTER KEYSLOT on Redis 7).
func TestSlot(t *testing.T) {
	for key, want := range map[string]uint16{"~cp0": 7198, "sf:{~cp7}:x": 11513, "abc{": 3048, "SKU-1": 10389, "a{}b": 13694, "{user1000}.following": 3443} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	for i, tag := range checkpointTags {
		if s := int(Slot(tag)); s/1024 != i {
			t.Errorf("copy %d's tag %q is in slot %d", i, tag, s)
		}
	}
}
