package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Run statuses.
const (
	// StatusRunning: lines are arriving.
	StatusRunning = "running"
	// StatusCompleted: every line arrived and every position is classed.
	StatusCompleted = "completed"
	// StatusIncomplete: the end never came, or came with another line
	// count. What was compared is kept for reading; nothing is applied.
	StatusIncomplete = "incomplete"
	// StatusRefused: the snapshot could not be compared at all (older than
	// the journal window, in the future, no locations).
	StatusRefused = "refused"
)

// Run is one reconciliation: one snapshot compared with the ledger.
type Run struct {
	ID            string           `json:"id"`
	Source        string           `json:"source"`
	Locations     []string         `json:"locations"`
	AsOf          time.Time        `json:"as_of"`
	Status        string           `json:"status"`
	Reason        string           `json:"reason,omitempty"`
	ExpectedLines int64            `json:"expected_lines"`
	Lines         int64            `json:"lines"`
	Counts        map[string]int64 `json:"counts"`
	StartedAt     time.Time        `json:"started_at"`
	FinishedAt    *time.Time       `json:"finished_at,omitempty"`
	CorrelationID string           `json:"correlation_id,omitempty"`
	Applies       []Applied        `json:"applies,omitempty"`
}

// Exceptions is how many positions of the run are not a match.
func (r *Run) Exceptions() int64 {
	var n int64
	for c, k := range r.Counts {
		if c != Match {
			n += k
		}
	}
	return n
}

// Applied records one application of a run's corrections.
type Applied struct {
	At        time.Time `json:"at"`
	By        string    `json:"by"`
	Classes   []string  `json:"classes"`
	Locations []string  `json:"locations,omitempty"`
	MaxUnits  int64     `json:"max_units,omitempty"`
	Entries   int64     `json:"entries"`
}

// Exception is one position of a run that is not a match. Quantities are
// in the item's base unit.
type Exception struct {
	SKU              string `json:"sku"`
	Location         string `json:"location"`
	Class            string `json:"class"`
	SnapshotQuantity *int64 `json:"snapshot_quantity"`
	LedgerQuantity   *int64 `json:"ledger_quantity"`
	Difference       int64  `json:"difference"`
	Line             int64  `json:"line,omitempty"`
	Detail           string `json:"detail,omitempty"`
}

// ErrNotFound says no run has the id.
var ErrNotFound = errors.New("no such reconciliation run")

// Runs keeps runs and their exceptions in Redis: a run as a JSON value, its
// exceptions as a list in arrival order, both under the run's hash tag,
// and an index of runs by start time. Everything expires after the
// retention.
type Runs struct {
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
}

// NewRuns returns the run store below prefix (the ledger's key prefix).
func NewRuns(rdb redis.UniversalClient, prefix string, retention time.Duration) *Runs {
	if retention <= 0 {
		retention = 30 * 24 * time.Hour
	}
	return &Runs{rdb: rdb, prefix: prefix, retention: retention}
}

func (s *Runs) indexKey() string               { return s.prefix + ":recon:runs" }
func (s *Runs) runKey(id string) string        { return s.prefix + ":{recon:" + id + "}" }
func (s *Runs) exceptionsKey(id string) string { return s.runKey(id) + ":x" }

// Get returns the run id.
func (s *Runs) Get(ctx context.Context, id string) (Run, error) {
	b, err := s.rdb.Get(ctx, s.runKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Run{}, ErrNotFound
	}
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", id, err)
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	return r, nil
}

// Save writes r, indexes it and renews its expiry.
func (s *Runs) Save(ctx context.Context, r *Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	// The run's keys and the index are in different slots of a Redis
	// Cluster: one pipeline, not one transaction. List skips an indexed
	// run whose key is gone.
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, s.runKey(r.ID), b, s.retention)
	pipe.Expire(ctx, s.exceptionsKey(r.ID), s.retention)
	pipe.ZAdd(ctx, s.indexKey(), redis.Z{Score: float64(r.StartedAt.UnixMilli()), Member: r.ID})
	pipe.ZRemRangeByScore(ctx, s.indexKey(), "-inf", "("+strconv.FormatInt(time.Now().Add(-s.retention).UnixMilli(), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("save run %s: %w", r.ID, err)
	}
	return nil
}

// Reset forgets whatever a run had recorded, to start it again.
func (s *Runs) Reset(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.runKey(id), s.exceptionsKey(id)).Err(); err != nil {
		return fmt.Errorf("reset run %s: %w", id, err)
	}
	return nil
}

// List returns up to limit runs, newest first, started before before (zero:
// any time).
func (s *Runs) List(ctx context.Context, limit int, before time.Time) ([]Run, error) {
	max := "+inf"
	if !before.IsZero() {
		max = "(" + strconv.FormatInt(before.UnixMilli(), 10)
	}
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.indexKey(), &redis.ZRangeBy{Max: max, Min: "-inf", Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	out := make([]Run, 0, len(ids))
	for _, id := range ids {
		r, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // expired between the two reads
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// appendExceptions adds xs to the run's list, in one round trip.
func (s *Runs) appendExceptions(ctx context.Context, id string, xs []Exception) error {
	if len(xs) == 0 {
		return nil
	}
	vals := make([]any, len(xs))
	for i := range xs {
		b, err := json.Marshal(&xs[i])
		if err != nil {
			return err
		}
		vals[i] = b
	}
	pipe := s.rdb.Pipeline()
	pipe.RPush(ctx, s.exceptionsKey(id), vals...)
	pipe.Expire(ctx, s.exceptionsKey(id), s.retention)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record exceptions of run %s: %w", id, err)
	}
	return nil
}

// Filter selects exceptions; empty fields select all.
type Filter struct {
	Classes   map[string]bool
	Locations map[string]bool
}

func (f Filter) match(x *Exception) bool {
	return (len(f.Classes) == 0 || f.Classes[x.Class]) && (len(f.Locations) == 0 || f.Locations[x.Location])
}

// Exceptions returns up to limit exceptions of run id that pass f, from
// position cursor of the run's list on, and the cursor to continue from
// (0 when there are no more).
func (s *Runs) Exceptions(ctx context.Context, id string, f Filter, cursor int64, limit int) ([]Exception, int64, error) {
	out := []Exception{}
	const chunk = 1000
	for {
		raw, err := s.rdb.LRange(ctx, s.exceptionsKey(id), cursor, cursor+chunk-1).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("read exceptions of run %s: %w", id, err)
		}
		for i, b := range raw {
			var x Exception
			if err := json.Unmarshal([]byte(b), &x); err != nil {
				return nil, 0, fmt.Errorf("exception %d of run %s: %w", cursor+int64(i), id, err)
			}
			if !f.match(&x) {
				continue
			}
			out = append(out, x)
			if len(out) == limit {
				next := cursor + int64(i) + 1
				if i == len(raw)-1 && len(raw) < chunk {
					next = 0 // that was the last one
				}
				return out, next, nil
			}
		}
		if len(raw) < chunk {
			return out, 0, nil
		}
		cursor += chunk
	}
}

// each calls fn with every exception of run id that passes f, a chunk at
// a time, in list order.
func (s *Runs) each(ctx context.Context, id string, f Filter, fn func([]Exception) error) error {
	var cursor int64
	for {
		xs, next, err := s.Exceptions(ctx, id, f, cursor, 1000)
		if err != nil {
			return err
		}
		if len(xs) > 0 {
			if err := fn(xs); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
