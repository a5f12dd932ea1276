package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/ledger"
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
	// Unstored counts by class the exceptions past the run's cap on stored
	// exceptions: in Counts, but not listed, published or applied.
	Unstored map[string]int64 `json:"unstored,omitempty"`
	// Truncated says so, in words, when some exceptions were not stored.
	Truncated string `json:"truncated,omitempty"`
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

// Notes say what a reader of the run should know beside its counts: why
// it is not completed, and whether it stored only some exceptions.
func (r *Run) Notes() string {
	switch {
	case r.Truncated == "":
		return r.Reason
	case r.Reason == "":
		return r.Truncated
	}
	return r.Reason + "; " + r.Truncated
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

// Runs keeps runs and their exceptions in Redis, all of a run under its
// hash tag: the run as a JSON value; its exceptions in a hash by sequence
// number (their order of arrival, from 0); and an index of them, a sorted
// set of members compared bytewise: "c:<class>:<seq>" for each exception
// and "p:<class>:<location>:<seq>" for one at a valid location id, the
// sequence number 12 digits wide. A page of a class, or of a class at a
// location, is then a range of the index, and a page of everything a
// range of sequence numbers: filtering reads the page, not the run.
// A separate sorted set indexes runs by start time. Everything expires
// after the retention.
//
// Runs recorded before the index kept their exceptions in one list, in
// arrival order; they are still read, and filtered by reading the list.
// See docs/design.md §12.4 and, for the keys, §15.5.
type Runs struct {
	rdb       redis.UniversalClient
	keys      ledger.Keys
	retention time.Duration
}

// NewRuns returns the run store below prefix (the ledger's key prefix).
func NewRuns(rdb redis.UniversalClient, prefix string, retention time.Duration) *Runs {
	if retention <= 0 {
		retention = 30 * 24 * time.Hour
	}
	return &Runs{rdb: rdb, keys: ledger.NewKeys(prefix), retention: retention}
}

func (s *Runs) indexKey() string        { return s.keys.ReconcileRuns() }
func (s *Runs) runKey(id string) string { return s.keys.ReconcileRun(id) }

// listKey is the list of a run recorded before the index.
func (s *Runs) listKey(id string) string { return s.keys.ReconcileRunPart(id, "x") }

// storeKey is the hash of a run's exceptions by sequence number.
func (s *Runs) storeKey(id string) string { return s.keys.ReconcileRunPart(id, "xs") }

// xindexKey is the index of a run's exceptions.
func (s *Runs) xindexKey(id string) string { return s.keys.ReconcileRunPart(id, "xi") }

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
	for _, k := range []string{s.listKey(r.ID), s.storeKey(r.ID), s.xindexKey(r.ID)} {
		pipe.Expire(ctx, k, s.retention)
	}
	pipe.ZAdd(ctx, s.indexKey(), redis.Z{Score: float64(r.StartedAt.UnixMilli()), Member: r.ID})
	pipe.ZRemRangeByScore(ctx, s.indexKey(), "-inf", "("+strconv.FormatInt(time.Now().Add(-s.retention).UnixMilli(), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("save run %s: %w", r.ID, err)
	}
	return nil
}

// Reset forgets whatever a run had recorded, to start it again.
func (s *Runs) Reset(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.runKey(id), s.listKey(id), s.storeKey(id), s.xindexKey(id)).Err(); err != nil {
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
