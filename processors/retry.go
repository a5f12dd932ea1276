package processors

import (
	"context"
	"log/slog"
	"time"
)

// backoff retries an operation against infrastructure (Redis, Kafka) until
// it succeeds, ctx ends, or ShouldRetry says an error is final. The wait
// doubles from Initial up to Max.
type backoff struct {
	Initial, Max time.Duration
	// ShouldRetry reports whether err is worth another attempt. Default: all are.
	ShouldRetry func(error) bool
	Log         *slog.Logger
}

// retry is the folder's policy: 100 ms doubling to 2 s, every error retried.
func retry(log *slog.Logger) backoff {
	return backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Log: log}
}

// Do runs fn until it returns nil. what names the operation in the log.
// It returns ctx's error when ctx ends first, or fn's error when ShouldRetry
// refuses it.
func (b backoff) Do(ctx context.Context, what string, fn func(context.Context) error) error {
	wait := b.Initial
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if b.ShouldRetry != nil && !b.ShouldRetry(err) {
			return err
		}
		if b.Log != nil {
			b.Log.Warn(what+" failed; retrying", "err", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}
