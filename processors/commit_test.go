package processors

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stockflow/stockflow/pkg/events"
)

// A commit to Kafka that fails (a rebalance or a broker restart in
// between) is made good while the folder idles: lag tools and readiness
// read Kafka's committed offsets, and an idle partition would otherwise
// show lag for ever although Redis has applied everything.
func TestFolderMakesGoodAFailedCommit(t *testing.T) {
	e, c := embeddedCluster(t)
	cfg := e.cfg

	var failing atomic.Bool
	failing.Store(true)
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.OffsetCommitRequest)
		if r.Group != cfg.Kafka.FolderGroup || !failing.Load() {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.RebalanceInProgress.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	e.start(t, pipelineOpts{})
	var evs []events.Source
	var exp []expectedPos
	for i := 0; i < 12; i++ {
		sku := fmt.Sprintf("SKU-C%02d", i)
		evs = append(evs, receipt("c-"+sku, sku, "DC1", 5, "EA"))
		exp = append(exp, expectedPos{SKU: sku, Location: "DC1", OnHand: 5})
	}
	e.send(t, cfg.Topics.Inventory, evs...)
	eventually(t, settle, func() error { return e.checkPositions(exp) })

	adm := kadm.NewClient(e.prod)
	lag := func() (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lags, err := adm.Lag(ctx, cfg.Kafka.FolderGroup)
		if err != nil {
			return 0, err
		}
		l := lags[cfg.Kafka.FolderGroup]
		if l.Error() != nil {
			return 0, l.Error()
		}
		return l.Lag.Total(), nil
	}
	if n, err := lag(); err != nil || n == 0 {
		t.Fatalf("with every commit failing the folder group shows lag %d (err %v); want it behind", n, err)
	}
	failing.Store(false) // the broker is back; nothing more is produced
	eventually(t, 30*time.Second, func() error {
		if n, err := lag(); err != nil || n != 0 {
			return fmt.Errorf("folder group lag %d (err %v) with everything applied", n, err)
		}
		return nil
	})
}
