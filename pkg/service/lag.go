package service

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
)

// lagWatcher measures consumer lag of Stockflow's groups every interval,
// exports it, and keeps for readiness how far Redis is behind the ledger
// log: by the folder group's committed offsets, and by the offsets Redis
// says it applied. The second is what counts after Redis lost its data:
// the group's offsets stay at the end while the folder rebuilds the ledger
// from offset 0, and lookups meanwhile answer from a half-built ledger.
type lagWatcher struct {
	adm      *kadm.Client
	groups   []string
	folder   string
	interval time.Duration
	log      *slog.Logger
	gauge    *prometheus.GaugeVec
	// ledgerTopic and applied read Redis's applied offsets; nil: not read.
	ledgerTopic string
	applied     func(context.Context, string) (map[int32]int64, error)
	rebuild     prometheus.Gauge

	foldLag  atomic.Int64
	measured atomic.Bool
}

func newLagWatcher(adm *kadm.Client, normalizer, folder, ledgerTopic string, applied func(context.Context, string) (map[int32]int64, error),
	reg prometheus.Registerer, log *slog.Logger) *lagWatcher {
	w := &lagWatcher{adm: adm, groups: []string{normalizer, folder}, folder: folder, interval: 5 * time.Second, log: log,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stockflow_consumer_lag",
			Help: "Records behind the end of the partition, by consumer group, topic and partition."}, []string{"group", "topic", "partition"}),
		ledgerTopic: ledgerTopic, applied: applied,
		rebuild: prometheus.NewGauge(prometheus.GaugeOpts{Name: "stockflow_ledger_unapplied_records",
			Help: "Ledger log records past the offsets Redis says it applied, all partitions: what a rebuild still has to fold."})}
	reg.MustRegister(w.gauge, w.rebuild)
	return w
}

func (w *lagWatcher) run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.measure(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (w *lagWatcher) measure(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.interval)
	defer cancel()
	lags, err := w.adm.Lag(ctx, w.groups...)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Debug("measure lag", "err", err)
		}
		return
	}
	var fold int64
	lags.Each(func(l kadm.DescribedGroupLag) {
		for topic, ps := range l.Lag {
			for p, m := range ps {
				if m.Err != nil {
					continue
				}
				w.gauge.WithLabelValues(l.Group, topic, strconv.Itoa(int(p))).Set(float64(m.Lag))
				if l.Group == w.folder {
					fold += m.Lag
				}
			}
		}
	})
	if behind, ok := w.unapplied(ctx); ok {
		w.rebuild.Set(float64(behind))
		fold = max(fold, behind)
	}
	w.foldLag.Store(fold)
	w.measured.Store(true)
}

// unapplied is how many ledger records lie past the offsets Redis applied
// (transaction markers count too: a few per partition at most).
func (w *lagWatcher) unapplied(ctx context.Context) (int64, bool) {
	if w.applied == nil {
		return 0, false
	}
	ends, err := w.adm.ListEndOffsets(ctx, w.ledgerTopic)
	if err != nil {
		w.log.Debug("ledger end offsets", "err", err)
		return 0, false
	}
	done, err := w.applied(ctx, w.ledgerTopic)
	if err != nil {
		w.log.Debug("applied offsets", "err", err)
		return 0, false
	}
	return unappliedRecords(ends, w.ledgerTopic, done), true
}

// unappliedRecords sums, per partition, the records from the one after the
// last applied up to the end.
func unappliedRecords(ends kadm.ListedOffsets, topic string, applied map[int32]int64) int64 {
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic != topic || o.Err != nil {
			return
		}
		next := int64(0)
		if a, ok := applied[o.Partition]; ok {
			next = a + 1
		}
		n += max(o.Offset-next, 0)
	})
	return n
}

// check fails readiness when the folder is more than max records behind.
func (w *lagWatcher) check(max int64) func(context.Context) error {
	return func(context.Context) error {
		if !w.measured.Load() {
			return nil // not measured yet: Kafka and topic checks speak for start-up
		}
		if l := w.foldLag.Load(); l > max {
			return fmt.Errorf("the folder is %d ledger records behind (bound %d): catching up, or rebuilding Redis from the log", l, max)
		}
		return nil
	}
}
