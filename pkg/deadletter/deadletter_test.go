package deadletter

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A dead letter keeps its record whole, with headers saying where it came
// from and why it failed, which Describe reads back.
func TestNewDescribesWhereAndWhy(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 30, 0, 123, time.FixedZone("x", 3600))
	r := &kgo.Record{Topic: "wms.inventory.v1", Partition: 3, Offset: 42, Key: []byte("SKU-1"), Value: []byte("value"),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-1")}}}
	dead := New("dlq", r, ClassUnknownUoM, errors.New(strings.Repeat("x", 2000)), at)
	if dead.Topic != "dlq" || string(dead.Key) != "SKU-1" || string(dead.Value) != "value" {
		t.Fatalf("dead letter %+v: want the record's key and value on dlq", dead)
	}
	if v, ok := Header(dead, "trace"); !ok || v != "t-1" {
		t.Errorf("the record's own header: %q, %v", v, ok)
	}
	if _, cut := Header(dead, HeaderTruncated); cut {
		t.Error("a small record marked truncated")
	}
	dead.Partition, dead.Offset = 1, 7 // as read back from the topic
	d := Describe(dead)
	want := DeadLetter{Partition: 1, Offset: 7, Class: ClassUnknownUoM, Message: strings.Repeat("x", 1024),
		SourceTopic: "wms.inventory.v1", SourcePartition: 3, SourceOffset: 42, Record: dead}
	if !d.Time.Equal(at) {
		t.Errorf("time %v, want %v", d.Time, at)
	}
	d.Time = time.Time{}
	if d != want {
		t.Errorf("described %+v\nwant %+v", d, want)
	}
}

// A record too large to keep whole loses its own headers and the end of
// its key and value, so that the dead letter can always be written; the
// truncation header gives the size it had.
func TestNewCutsARecordTooLargeToKeep(t *testing.T) {
	key := bytes.Repeat([]byte{'k'}, 5000)
	value := bytes.Repeat([]byte{7}, 1_040_000)
	r := &kgo.Record{Topic: "wms.inventory.v1", Key: key, Value: value,
		Headers: []kgo.RecordHeader{{Key: "trace", Value: bytes.Repeat([]byte{'h'}, 4000)}}}
	dead := New("dlq", r, ClassInvalid, errors.New("too big"), time.Now())
	if n := recordSize(dead.Key, dead.Value, dead.Headers); n > maxDeadLetterBytes {
		t.Errorf("dead letter of %d bytes, more than %d", n, maxDeadLetterBytes)
	}
	whole := recordSize(key, value, r.Headers)
	for _, h := range dead.Headers {
		if h.Key != HeaderTruncated {
			whole += len(h.Key) + len(h.Value)
		}
	}
	if size, cut := Header(dead, HeaderTruncated); !cut || size != strconv.Itoa(whole) {
		t.Errorf("truncated header %q (%v), want %d", size, cut, whole)
	}
	if _, ok := Header(dead, "trace"); ok {
		t.Error("the record's own headers were kept")
	}
	if !bytes.Equal(dead.Key, key[:maxTruncatedKey]) || len(dead.Value) == 0 || !bytes.Equal(dead.Value, value[:len(dead.Value)]) {
		t.Errorf("kept a key of %d and a value of %d bytes: want the start of each", len(dead.Key), len(dead.Value))
	}
	if d := Describe(dead); d.Class != ClassInvalid || d.SourceTopic != "wms.inventory.v1" {
		t.Errorf("described %+v", d)
	}
}
