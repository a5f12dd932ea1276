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
		if err != nil {
			var de *avro.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("non-decode error %T: %v", err, err)
			}
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
