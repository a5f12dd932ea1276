package avro

import (
	"testing"
	"unsafe"
)

// TestOwningReaderSharesNothing: a plain Reader's strings are slices of one
// copy of the body (the second starts right after the first and its length
// byte); an owning Reader's are copies of their own, so keeping one does not
// keep the record.
func TestOwningReaderSharesNothing(t *testing.T) {
	body := AppendString(AppendString(nil, "SKU-000123"), "DC-EAST")
	adjacent := func(r Reader) bool {
		a, b := r.ReadString("a"), r.ReadString("b")
		if err := r.End(); err != nil || a != "SKU-000123" || b != "DC-EAST" {
			t.Fatalf("read %q %q, %v", a, b, err)
		}
		return uintptr(unsafe.Pointer(unsafe.StringData(b))) == uintptr(unsafe.Pointer(unsafe.StringData(a)))+uintptr(len(a))+1
	}
	if !adjacent(NewReader(body)) {
		t.Fatal("a plain Reader's strings do not share the body's copy: this test no longer tells the readers apart")
	}
	if adjacent(NewOwningReader(body)) {
		t.Error("an owning Reader's strings share one copy of the body")
	}
}
