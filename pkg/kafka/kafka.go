// Package kafka sets up Stockflow's Kafka clients, creates its topics and, for
// the embedded first-run mode, starts an in-process cluster (kfake).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/telemetry"
)

// ClientOpts are the options of a client that keeps trying: the
// connection (Conn) and retries without end, then extra.
func ClientOpts(cfg config.Kafka, extra ...kgo.Opt) []kgo.Opt {
	opts := append(Conn(cfg),
		// The broker may be restarting: keep retrying requests instead of failing them.
		kgo.RetryTimeout(0),
		kgo.RequestRetries(1<<30),
	)
	return append(opts, extra...)
}

// TopicSpec is a topic Stockflow expects to exist, with its settings.
type TopicSpec struct {
	Name    string
	Configs map[string]*string
}

func str(s string) *string { return &s }

// Topics lists Stockflow's topics with their settings (docs/production.md,
// "Kafka topics", explains each).
func Topics(t config.Topics) []TopicSpec {
	compacted := map[string]*string{"cleanup.policy": str("compact")}
	forever := map[string]*string{"retention.ms": str("-1"), "retention.bytes": str("-1")}
	return []TopicSpec{
		{Name: t.Inventory},
		{Name: t.Orders},
		{Name: t.Supplier},
		{Name: t.Catalog, Configs: compacted},
		{Name: t.Ledger, Configs: forever},
		// Requests only matter for as long as a caller waits on them.
		{Name: t.Holds, Configs: map[string]*string{"retention.ms": str("86400000")}},
		{Name: t.Availability, Configs: compacted},
		{Name: t.Alerts},
		{Name: t.DLQ, Configs: forever},
		{Name: t.Index, Configs: compacted},
		{Name: t.Snapshots},
		{Name: t.Reconciliation},
		{Name: t.Commitments},
	}
}

// WithMinInsync sets min.insync.replicas on every spec (n 0: leaves the
// broker's default).
func WithMinInsync(specs []TopicSpec, n int) []TopicSpec {
	if n <= 0 {
		return specs
	}
	out := make([]TopicSpec, len(specs))
	for i, s := range specs {
		c := map[string]*string{"min.insync.replicas": str(strconv.Itoa(n))}
		for k, v := range s.Configs {
			c[k] = v
		}
		out[i] = TopicSpec{Name: s.Name, Configs: c}
	}
	return out
}

// EnsureTopics creates each missing topic and waits until the broker's
// metadata shows every topic with its partitions, so consumers and producers
// started next find them. Existing topics are left as they are, whatever
// their partition count.
func EnsureTopics(ctx context.Context, adm *kadm.Client, partitions int32, replication int16, specs []TopicSpec) error {
	var errs []error
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		names = append(names, s.Name)
		resp, err := adm.CreateTopic(ctx, partitions, replication, s.Configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", s.Name, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for {
		details, err := adm.ListTopics(ctx, names...)
		missing := ""
		if err != nil {
			missing = err.Error()
		} else {
			for _, n := range names {
				if d, ok := details[n]; !ok || d.Err != nil || len(d.Partitions) == 0 {
					missing = n
					break
				}
				for _, p := range details[n].Partitions {
					if p.Err != nil || p.Leader < 0 {
						missing = fmt.Sprintf("%s/%d", n, p.Partition)
					}
				}
			}
		}
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics not visible in metadata (%s): %w", missing, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitReady blocks until a broker of cfg answers a metadata request, or
// ctx ends. A failure that retrying cannot cure (see Misconfigured) ends
// the wait at once, explained; any other is logged, explained, and tried
// again.
func WaitReady(ctx context.Context, adm *kadm.Client, cfg config.Kafka, log *slog.Logger) error {
	backoff := 200 * time.Millisecond
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := adm.ListBrokers(reqCtx)
		cancel()
		if err == nil {
			return nil
		}
		err = Explain(cfg, err)
		if Misconfigured(err) {
			return err
		}
		log.Warn("kafka not reachable yet", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for kafka: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Ping reports whether a broker of cl (made from cfg) answers within ctx,
// and if not why, in words an operator can act on (see Explain).
func Ping(ctx context.Context, cl *kgo.Client, cfg config.Kafka) error {
	return Explain(cfg, cl.Ping(ctx))
}

// StartEmbedded starts an in-process single-broker cluster listening on
// 127.0.0.1:port (0: any free port).
func StartEmbedded(port int, partitions int32) (*kfake.Cluster, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(int(partitions))}
	if port > 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	return c, nil
}

// Tracing returns the client option that traces produce and consume through
// record headers (W3C TraceContext), and the tracer processors use for
// their process spans.
func Tracing(tp trace.TracerProvider, clientID, group string) (kgo.Opt, *kotel.Tracer) {
	opts := []kotel.TracerOpt{kotel.TracerProvider(tp), kotel.TracerPropagator(telemetry.Propagator), kotel.ClientID(clientID)}
	if group != "" {
		opts = append(opts, kotel.ConsumerGroup(group))
	}
	t := kotel.NewTracer(opts...)
	return kgo.WithHooks(kotel.NewKotel(kotel.WithTracer(t)).Hooks()...), t
}

// Logger has a client log through log: the client's warnings and errors at
// those levels, and, when log is at debug, its info lines (group joins,
// assignments, producer ids, reconnects) at debug.
func Logger(log *slog.Logger) kgo.Opt {
	return kgo.WithLogger(&clientLogger{log: log.With("component", "kgo")})
}

type clientLogger struct{ log *slog.Logger }

func (l *clientLogger) Level() kgo.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (l *clientLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	case kgo.LogLevelInfo, kgo.LogLevelDebug:
		// The client's routine chatter: connections, metadata, rebalances.
		lvl = slog.LevelDebug
	case kgo.LogLevelNone:
		// Not a level the client logs at; debug should it ever.
		lvl = slog.LevelDebug
	}
	l.log.Log(context.Background(), lvl, msg, keyvals...)
}

// CheckCoPartitioned says whether topics a and b have the same number of
// partitions, as topics whose partition p must carry the same keys do.
func CheckCoPartitioned(ctx context.Context, adm *kadm.Client, a, b string) error {
	details, err := adm.ListTopics(ctx, a, b)
	if err != nil {
		return fmt.Errorf("list topics %s and %s: %w", a, b, err)
	}
	na, nb := len(details[a].Partitions), len(details[b].Partitions)
	if na != nb {
		return fmt.Errorf("topic %s has %d partitions and %s has %d: they must have as many, since a SKU's hold requests and its ledger entries share a partition number; recreate %s with %d partitions", a, na, b, nb, b, na)
	}
	return nil
}
