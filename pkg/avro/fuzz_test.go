package avro_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/stockflow/stockflow/pkg/avro"
)

// FuzzDecode feeds arbitrary bytes to the decoder. Whatever the input, it
// must not panic or allocate without bound, must fail only with a
// *DecodeError (the built-in registry cannot have an outage), and anything
// it accepts must survive a re-encode unchanged.
func FuzzDecode(f *testing.F) {
	ctx := context.Background()
	c := newCodec(f)
	for _, rec := range samples() {
		b, err := c.Encode(ctx, "t", rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 3, 0xe9})
	f.Add([]byte{0, 0, 0, 3, 0xee, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in []byte) {
		rec, err := c.Decode(ctx, in)
		if rejected(t, err) {
			return
		}
		b, err := c.Encode(ctx, "t", rec)
		if err != nil {
			t.Fatalf("re-encode of an accepted record: %v", err)
		}
		again, err := c.Decode(ctx, b)
		if err != nil {
			t.Fatalf("decode of re-encoded record: %v", err)
		}
		if !reflect.DeepEqual(again, rec) {
			t.Fatalf("re-encode changed the record:\n%+v\n%+v", rec, again)
		}
	})
}

// FuzzLedgerEntry decodes arbitrary bodies written under the LedgerEntry
// schema id: the folder's decoder must reject what it cannot read, never panic.
func FuzzLedgerEntry(f *testing.F) {
	ctx := context.Background()
	c := newCodec(f)
	b, err := c.Encode(ctx, "ledger", samples()[13])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[5:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		in := append([]byte{0, 0, 0, 0x03, 0xf6}, body...) // schema id 1014: LedgerEntry
		rec, err := c.Decode(ctx, in)
		if rejected(t, err) {
			return
		}
		if rec.AvroName() != "stockflow.v1.LedgerEntry" {
			t.Fatalf("decoded a %s under the LedgerEntry id", rec.AvroName())
		}
	})
}

// rejected says whether the decoder refused its input, and fails the test
// when it refused with anything but a typed decode error.
func rejected(t *testing.T, err error) bool {
	t.Helper()
	if err == nil {
		return false
	}
	var de *avro.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("non-decode error %T: %v", err, err)
	}
	return true
}
