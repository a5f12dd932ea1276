// Package deadletter is the format of Stockflow's dead-letter topic and
// what reads it: the headers a dead letter carries (where its record came
// from, why it failed, when), the error classes it names, building one,
// describing one read back, reading the topic up to its last stable
// offsets, and replaying dead letters to their source topics.
//
// The processors write dead letters; the console, stockflow tail and
// stockflow dlq read them. All of them go through this package. The loop
// under its reads also reads other topics up to given offsets, for whoever
// needs that (ReadTopic, ReadRange).
//
// See docs/design.md §11.
package deadletter

import (
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/processors/sources"
)

// Dead-letter error classes beyond the decoder's (see pkg/avro).
const (
	ClassInvalid          = sources.ClassInvalid          // a field fails validation
	ClassWrongTopic       = sources.ClassWrongTopic       // an event type that does not belong on the topic
	ClassUnknownUoM       = sources.ClassUnknownUoM       // no conversion to the base unit, even after waiting
	ClassUnknownReference = sources.ClassUnknownReference // names an order or PO line never seen
	// ClassOrphanSnapshotRecord is a snapshot line or end whose snapshot
	// never started.
	ClassOrphanSnapshotRecord = "orphan_snapshot_record"
)

// Dead-letter record headers.
const (
	HeaderSourceTopic     = "stockflow.source.topic"
	HeaderSourcePartition = "stockflow.source.partition"
	HeaderSourceOffset    = "stockflow.source.offset"
	HeaderErrorClass      = "stockflow.error.class"
	HeaderErrorMessage    = "stockflow.error.message"
	HeaderErrorTime       = "stockflow.error.time"
	// HeaderReplay marks a record re-produced from the dead-letter topic.
	HeaderReplay = "stockflow.replay"
	// HeaderTruncated is set, to the original record's size in bytes, on a
	// dead letter whose record was too large to keep whole: its original
	// headers are dropped and its key and value cut. It cannot be replayed;
	// the original stays at its source topic, partition and offset.
	HeaderTruncated = "stockflow.error.truncated"
)

// maxDeadLetterBytes bounds a dead letter's key, value and headers together,
// whatever the bad record was: a dead letter must fit one produce request
// (franz-go's default batch limit is 1,000,012 bytes) and the broker's
// default message size, or it could never be written and its partition
// would never move on.
const maxDeadLetterBytes = 900 << 10

// maxTruncatedKey is what a truncated dead letter keeps of the key.
const maxTruncatedKey = 1 << 10

// New builds the dead-letter record for r, to go to topic: the original
// key, value and headers, plus headers that say where it came from and why
// it failed (class, err, at now).
func New(topic string, r *kgo.Record, class string, err error, now time.Time) *kgo.Record {
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	h := make([]kgo.RecordHeader, 0, len(r.Headers)+6)
	h = append(h, r.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(class)},
		kgo.RecordHeader{Key: HeaderErrorMessage, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderErrorTime, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
	)
	key, value := r.Key, r.Value
	if size := recordSize(key, value, h); size > maxDeadLetterBytes {
		h = slices.Clone(h[len(r.Headers):]) // only the dead letter's own
		h = append(h, kgo.RecordHeader{Key: HeaderTruncated, Value: []byte(strconv.Itoa(size))})
		if len(key) > maxTruncatedKey {
			key = key[:maxTruncatedKey]
		}
		if room := maxDeadLetterBytes - recordSize(key, nil, h); len(value) > room {
			value = value[:max(room, 0)]
		}
	}
	return &kgo.Record{Topic: topic, Key: key, Value: value, Headers: h}
}

// recordSize is the bytes of a record's key, value and headers.
func recordSize(key, value []byte, h []kgo.RecordHeader) int {
	n := len(key) + len(value)
	for _, x := range h {
		n += len(x.Key) + len(x.Value)
	}
	return n
}

// DeadLetter is one record of the dead-letter topic, described.
type DeadLetter struct {
	Partition       int32
	Offset          int64
	Class, Message  string
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	Time            time.Time
	Replayed        bool
	Record          *kgo.Record
}

// Describe reads a dead-letter record's headers: why it failed and where
// it came from. Headers a record lacks leave their fields zero.
func Describe(r *kgo.Record) DeadLetter {
	d := DeadLetter{Partition: r.Partition, Offset: r.Offset, Record: r}
	d.Class, _ = Header(r, HeaderErrorClass)
	d.Message, _ = Header(r, HeaderErrorMessage)
	d.SourceTopic, _ = Header(r, HeaderSourceTopic)
	if v, ok := Header(r, HeaderSourcePartition); ok {
		p, _ := strconv.Atoi(v)
		d.SourcePartition = int32(p)
	}
	if v, ok := Header(r, HeaderSourceOffset); ok {
		d.SourceOffset, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := Header(r, HeaderErrorTime); ok {
		d.Time, _ = time.Parse(time.RFC3339Nano, v)
	}
	_, d.Replayed = Header(r, HeaderReplay)
	return d
}

// Header returns the value of the last header named key.
func Header(r *kgo.Record, key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}
