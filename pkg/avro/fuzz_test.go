package avro_test

import (
	"bytes"
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
// schema id, which the folder decodes with LedgerEntry's hand-written codec.
// It must reject what it cannot read and never panic, and it must agree with
// the goavro path on every input: the same failure class, or the same
// entry, which both encoders then write as the same bytes.
func FuzzLedgerEntry(f *testing.F) {
	ctx := context.Background()
	fast := newCodec(f)
	slow := avro.Reflective(fast)
	b, err := fast.Encode(ctx, "ledger", samples()[13])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[5:])
	f.Add([]byte{})
	f.Add(ledgerBody(f))
	f.Add([]byte{0x02, 0x03})             // negative string length
	f.Add([]byte{0x02, 0x02, 'S', 0x04})  // union index 2
	f.Add([]byte{0x20})                   // enum index 16
	f.Add([]byte{0x82, 0x80, 0x80, 0x80}) // varint runs past the end
	f.Fuzz(func(t *testing.T, body []byte) {
		in := withHeader(ledgerID, body)
		rec, err := fast.Decode(ctx, in)
		want, wantErr := slow.Decode(ctx, in)
		if avro.ClassOf(err) != avro.ClassOf(wantErr) {
			t.Fatalf("class %q, goavro path %q (%v; %v)", avro.ClassOf(err), avro.ClassOf(wantErr), err, wantErr)
		}
		if rejected(t, err) {
			return
		}
		if !reflect.DeepEqual(rec, want) {
			t.Fatalf("decoded\n%+v\ngoavro path\n%+v", rec, want)
		}
		out, err := fast.Encode(ctx, "ledger", rec)
		if err != nil {
			t.Fatalf("re-encode of an accepted entry: %v", err)
		}
		wantOut, err := slow.Encode(ctx, "ledger", rec)
		if err != nil {
			t.Fatalf("goavro re-encode of an accepted entry: %v", err)
		}
		if !bytes.Equal(out, wantOut) {
			t.Fatalf("re-encoded\n%x\ngoavro path\n%x", out, wantOut)
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
