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
// exports it, and keeps the folder's total for readiness.
type lagWatcher struct {
	adm      *kadm.Client
	groups   []string
	folder   string
	interval time.Duration
	log      *slog.Logger
	gauge    *prometheus.GaugeVec

	foldLag  atomic.Int64
	measured atomic.Bool
}

func newLagWatcher(adm *kadm.Client, normalizer, folder string, reg prometheus.Registerer, log *slog.Logger) *lagWatcher {
	w := &lagWatcher{adm: adm, groups: []string{normalizer, folder}, folder: folder, interval: 5 * time.Second, log: log,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stockflow_consumer_lag",
			Help: "Records behind the end of the partition, by consumer group, topic and partition."}, []string{"group", "topic", "partition"})}
	reg.MustRegister(w.gauge)
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
	w.foldLag.Store(fold)
	w.measured.Store(true)
}

// check fails readiness when the folder is more than max records behind.
func (w *lagWatcher) check(max int64) func(context.Context) error {
	return func(context.Context) error {
		if !w.measured.Load() {
			return nil // not measured yet: Kafka and topic checks speak for start-up
		}
		if l := w.foldLag.Load(); l > max {
			return fmt.Errorf("the folder is %d ledger records behind (bound %d)", l, max)
		}
		return nil
	}
}
