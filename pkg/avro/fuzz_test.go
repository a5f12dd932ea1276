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
// schema id, which the folder decodes with LedgerEntry's hand-written codec,
// and holds the result to the goavro path's (see fuzzLikeGoavro).
func FuzzLedgerEntry(f *testing.F) {
	fuzzLikeGoavro(f, ledgerID,
		body(f, samples()[13]),
		[]byte{},
		ledgerBody(f),
		[]byte{0x02, 0x03},             // negative string length
		[]byte{0x02, 0x02, 'S', 0x04},  // union index 2
		[]byte{0x20},                   // enum index 16
		[]byte{0x82, 0x80, 0x80, 0x80}, // varint runs past the end
	)
}

// FuzzAvailabilityChanged is FuzzLedgerEntry for AvailabilityChanged, the
// record the folder writes for every changed position; its inbound array
// takes blocks in every form goavro reads.
func FuzzAvailabilityChanged(f *testing.F) {
	fuzzLikeGoavro(f, availabilityID,
		body(f, samples()[14]),
		[]byte{},
		availabilityBody(f),
		availabilityWith(f, 0x04, 0x02, 0x02, 0x04, 0x04, 0x00),       // two buckets in one block
		availabilityWith(f, 0x02, 0x02, 0x02, 0x02, 0x04, 0x04, 0x00), // two blocks of one
		availabilityWith(f, 0x01, 0x04, 0x02, 0x02, 0x00),             // negative count, block size
		availabilityWith(f, 0x80, 0x80, 0x10, 0x02, 0x02),             // 131072 buckets promised
		availabilityWith(f, 0x82, 0x80, 0x10, 0x00),                   // past the block limit
		availabilityWith(f, minVarint...),                             // MinInt64 count
	)
}

// FuzzStockAlert is FuzzLedgerEntry for StockAlert.
func FuzzStockAlert(f *testing.F) {
	fuzzLikeGoavro(f, alertID,
		body(f, samples()[15]),
		[]byte{},
		[]byte{0x02, 'A', 0x08}, // enum index 4
		[]byte{0x02, 'A', 0x02, 0x03},
	)
}

// FuzzCommitmentChanged is FuzzLedgerEntry for CommitmentChanged: two
// promises with their arrays, a boolean and a record union.
func FuzzCommitmentChanged(f *testing.F) {
	c := commitmentBody(f)
	fuzzLikeGoavro(f, commitmentID,
		c,
		[]byte{},
		splice(c, 16, 2),                      // late neither 0 nor 1
		splice(c, 13, 0x02, 0x02, 0x04, 0x00), // one promised day
		splice(c, 15, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00), // previous present
	)
}

// body is the Avro body of rec.
func body(t testing.TB, rec avro.Record) []byte {
	t.Helper()
	b, err := newCodec(t).Encode(context.Background(), "t", rec)
	if err != nil {
		t.Fatal(err)
	}
	return b[5:]
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
