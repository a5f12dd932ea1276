package deadletter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A scan starts each partition at its log's start: one that retention
// emptied is not read at all, rather than waited on for records that will
// not come.
func TestDeadLetterScanAfterRetentionEmptiedAPartition(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	conn := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(append(conn, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 6 {
		r := &kgo.Record{Topic: "dlq", Partition: int32(i % 2), Value: fmt.Appendf(nil, "%d", i),
			Headers: []kgo.RecordHeader{{Key: HeaderErrorClass, Value: []byte(ClassInvalid)}}}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var del kadm.Offsets
	del.AddOffset("dlq", 0, 3, -1) // all of partition 0
	del.AddOffset("dlq", 1, 1, -1) // the first of partition 1
	if rs, err := kadm.NewClient(prod).DeleteRecords(ctx, del); err != nil || rs.Error() != nil {
		t.Fatalf("delete records: %v, %v", err, rs.Error())
	}

	start := time.Now()
	var got []string
	err = Scan(ctx, conn, "dlq", Filter{}, func(d DeadLetter) error {
		got = append(got, fmt.Sprintf("%d:%d", d.Partition, d.Offset))
		return nil
	})
	if err != nil || fmt.Sprint(got) != "[1:1 1:2]" {
		t.Fatalf("scan: %v, %v; want 1:1 and 1:2, what retention left", got, err)
	}
	if took := time.Since(start); took >= scanQuiet {
		t.Errorf("the scan took %v: it waited on the emptied partition", took)
	}
}
