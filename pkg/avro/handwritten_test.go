package avro_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
)

// Harness shared by the tests of every hand-written codec (BinaryRecord):
// each holds the codec to the goavro path (avro.Reflective) on its record.

// checkMatchesGoavro encodes random records both ways and wants the same
// bytes, then decodes each path's bytes with the other path and wants the
// same record; an exact record must also survive the round trip unchanged.
func checkMatchesGoavro(t *testing.T, seed uint64, newRecord func(gen) avro.Record) {
	t.Helper()
	checkAgainstGoavro(t, seed, newRecord, true)
}

// checkMatchesGoavroUnordered is checkMatchesGoavro for records with maps of
// more than one entry, whose bytes depend on Go's map order in goavro and in
// the hand-written codec alike (see avro.AppendMap). Instead of the bytes it
// compares their length, and what each decoder reads from each path's bytes.
func checkMatchesGoavroUnordered(t *testing.T, seed uint64, newRecord func(gen) avro.Record) {
	t.Helper()
	checkAgainstGoavro(t, seed, newRecord, false)
}

func checkAgainstGoavro(t *testing.T, seed uint64, newRecord func(gen) avro.Record, sameBytes bool) {
	t.Helper()
	ctx := context.Background()
	fast := newCodec(t)
	slow := avro.Reflective(fast)
	rng := rand.New(rand.NewPCG(seed, seed))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		exact := i%2 == 0
		rec := newRecord(gen{rng: rng, exact: exact})

		want, err := slow.Encode(ctx, "t", rec)
		if err != nil {
			t.Fatalf("record %d: goavro encode: %v\n%s", i, err, dump(rec))
		}
		got, err := fast.Encode(ctx, "t", rec)
		if err != nil {
			t.Fatalf("record %d: encode: %v\n%s", i, err, dump(rec))
		}
		if sameBytes && !bytes.Equal(got, want) {
			t.Fatalf("record %d: bytes differ from goavro's\n got %x\nwant %x\n%s", i, got, want, dump(rec))
		}
		if len(got) != len(want) {
			t.Fatalf("record %d: %d bytes, goavro's %d\n%s", i, len(got), len(want), dump(rec))
		}
		if !sameBytes {
			own, err := fast.Decode(ctx, got)
			if err != nil {
				t.Fatalf("record %d: decode our bytes: %v\n%s", i, err, dump(rec))
			}
			theirs, err := slow.Decode(ctx, want)
			if err != nil {
				t.Fatalf("record %d: goavro decode of its bytes: %v\n%s", i, err, dump(rec))
			}
			if !reflect.DeepEqual(own, theirs) {
				t.Fatalf("record %d: our bytes and goavro's hold different records\n ours %s\n goavro's %s", i, dump(own), dump(theirs))
			}
		}

		// Both decoders read what goavro wrote, and both read the same record.
		fromFast, err := fast.Decode(ctx, want)
		if err != nil {
			t.Fatalf("record %d: decode goavro's bytes: %v\n%s", i, err, dump(rec))
		}
		fromSlow, err := slow.Decode(ctx, got)
		if err != nil {
			t.Fatalf("record %d: goavro decode of our bytes: %v\n%s", i, err, dump(rec))
		}
		if !reflect.DeepEqual(fromFast, fromSlow) {
			t.Fatalf("record %d: decoders disagree\n fast %s\n goavro %s", i, dump(fromFast), dump(fromSlow))
		}
		if exact && !reflect.DeepEqual(fromFast, rec) {
			t.Fatalf("record %d: round trip changed the record\n got %s\nwant %s", i, dump(fromFast), dump(rec))
		}
	}
}

// checkEncodeFails wants rec refused by both paths, with an error from the
// hand-written one that names the record and field, and nothing appended.
func checkEncodeFails(t *testing.T, rec avro.Record, field string) {
	t.Helper()
	ctx := context.Background()
	fast := newCodec(t)
	if _, err := avro.Reflective(fast).Encode(ctx, "t", rec); err == nil {
		t.Fatal("goavro encoded it: the case tests nothing")
	}
	b, err := fast.AppendEncode(ctx, []byte("keep"), "t", rec)
	if err == nil {
		t.Fatalf("encoded: %x", b)
	}
	if b != nil {
		t.Fatalf("returned %q beside the error", b)
	}
	if !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), rec.AvroName()) {
		t.Fatalf("error %q does not name the record and %s", err, field)
	}
}

// decodeCase is a body to decode under a schema id, and the class both
// paths must fail it with, or "" when both must accept it and agree.
type decodeCase struct {
	name  string
	codec [2]*avro.Codec // hand-written, goavro
	in    []byte
	class avro.Class
}

func checkDecodeLikeGoavro(t *testing.T, id int, record string, cases []decodeCase) {
	t.Helper()
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := withHeader(id, tc.in)
			got, err := tc.codec[0].Decode(ctx, in)
			want, wantErr := tc.codec[1].Decode(ctx, in)
			if avro.ClassOf(err) != tc.class || avro.ClassOf(wantErr) != tc.class {
				t.Fatalf("class %q, goavro path %q, want %q (%v; %v)", avro.ClassOf(err), avro.ClassOf(wantErr), tc.class, err, wantErr)
			}
			if tc.class == "" {
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("decoded\n%s\ngoavro path\n%s", dump(got), dump(want))
				}
				return
			}
			de := err.(*avro.DecodeError)
			if tc.class != avro.ClassOversized && (de.SchemaID != id || de.Record != record) {
				t.Fatalf("error does not name the schema id and record: %+v", de)
			}
		})
	}
}

// codecPairs returns the hand-written and goavro codecs, and a pair of the
// same that refuses records over maxRecordBytes.
func codecPairs(t *testing.T, maxRecordBytes int) (normal, small [2]*avro.Codec) {
	t.Helper()
	fast := newCodec(t)
	s, err := avro.New(avro.Config{Registry: mustBuiltin(t), Canonical: mustCanon(t), Types: events.All(), MaxRecordBytes: maxRecordBytes})
	if err != nil {
		t.Fatal(err)
	}
	return [2]*avro.Codec{fast, avro.Reflective(fast)}, [2]*avro.Codec{s, avro.Reflective(s)}
}

// cat joins parts into one new body.
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// splice returns body with the byte at i replaced by bs.
func splice(body []byte, i int, bs ...byte) []byte {
	out := append([]byte(nil), body[:i]...)
	out = append(out, bs...)
	return append(out, body[i+1:]...)
}

// fuzzLikeGoavro decodes arbitrary bodies under schema id, which the
// hand-written codec reads. It must reject what it cannot read and never
// panic, and it must agree with the goavro path on every input: the same
// failure class, or the same record, which both encoders then write as the
// same bytes.
func fuzzLikeGoavro(f *testing.F, id int, seeds ...[]byte) {
	fast := newCodec(f)
	slow := avro.Reflective(fast)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkLikeGoavro(t, fast, slow, withHeader(id, body))
	})
}

// checkLikeGoavro decodes in with the hand-written codec and the goavro path
// and wants the same failure class, or the same record, which both encoders
// then write as the same bytes.
func checkLikeGoavro(t *testing.T, fast, slow *avro.Codec, in []byte) {
	t.Helper()
	ctx := context.Background()
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
	out, err := fast.Encode(ctx, "t", rec)
	if err != nil {
		t.Fatalf("re-encode of an accepted record: %v", err)
	}
	wantOut, err := slow.Encode(ctx, "t", rec)
	if err != nil {
		t.Fatalf("goavro re-encode of an accepted record: %v", err)
	}
	if !bytes.Equal(out, wantOut) && (!hasMaps(rec) || len(out) != len(wantOut)) {
		t.Fatalf("re-encoded\n%x\ngoavro path\n%x", out, wantOut)
	}
}

// hasMaps says whether rec holds a map of more than one entry, which two
// encodes may write in different orders (see avro.AppendMap).
func hasMaps(rec avro.Record) bool {
	v := reflect.ValueOf(rec).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Map && f.Len() > 1 {
			return true
		}
	}
	return false
}

// benchEncode and benchDecode time rec through the goavro path and the
// hand-written codec. Encoding appends to a reused buffer.
func benchEncode(b *testing.B, topic string, rec avro.Record) {
	fast := newCodec(b)
	ctx := context.Background()
	for _, p := range []struct {
		name  string
		codec *avro.Codec
	}{{"goavro", avro.Reflective(fast)}, {"fast", fast}} {
		b.Run(p.name, func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				buf, err = p.codec.AppendEncode(ctx, buf[:0], topic, rec)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchDecode(b *testing.B, topic string, rec avro.Record) {
	fast := newCodec(b)
	ctx := context.Background()
	buf, err := fast.Encode(ctx, topic, rec)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []struct {
		name  string
		codec *avro.Codec
	}{{"goavro", avro.Reflective(fast)}, {"fast", fast}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.codec.Decode(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
