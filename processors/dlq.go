package processors

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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
)

// deadLetter builds the dead-letter record for r: the original key, value
// and headers, plus headers that say where it came from and why it failed.
func deadLetter(topic string, r *kgo.Record, class string, err error, now time.Time) *kgo.Record {
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
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: h}
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
