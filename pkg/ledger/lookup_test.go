package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/events"
)

func miniStore(t *testing.T, cfg Config) (*Store, *redis.Client) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return New(rdb, cfg), rdb
}

// A lookup is one plain read of one key: an operator with redis-cli sees in
// the position hash the holds and the supply the API counts.
func TestPositionHashHoldsEverythingALookupReads(t *testing.T) {
	ctx := context.Background()
	s, rdb := miniStore(t, Config{KeyPrefix: "shop1"})
	h := newHarness(t, s)
	h.apply(le(events.EntryReceipt, "DC1", 10, 0, "r1"))
	hold := le(events.EntryHold, "DC1", 4, 1, "h1")
	hold.HoldID, hold.TTLMillis = sp("H1"), i64(600_000)
	h.apply(hold)
	due := base.AddDate(0, 0, 3)
	po := le(events.EntryPOLine, "DC1", 25, 2, "po1")
	po.PONumber, po.POLine, po.ExpectedDate = sp("PO-1"), i32(1), &due

	h.apply(po)
	key := "shop1:{SKU-1}:p:DC1"
	got, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	exp := strconv.FormatInt(at(11).UnixMilli(), 10)
	day := strconv.FormatInt(due.Unix()/86400, 10)
	for f, v := range map[string]string{"oh": "10", "hd": "4", "ib": "25", "h:H1": "4:" + exp, "s:rel|" + day: "25"} {
		if got[f] != v {
			t.Errorf("%s %s = %q, want %q (hash %v)", key, f, got[f], v, got)
		}
	}
	if got["v"] == "" || got["at"] == "" {
		t.Errorf("no version or write time in %v", got)
	}

	// The hold released and the line received in full: both fields go.
	rel := le(events.EntryHoldRelease, "DC1", 0, 3, "rel1")
	rel.HoldID = sp("H1")
	rec := le(events.EntryReceipt, "DC1", 25, 4, "r2")
	rec.PONumber, rec.POLine = sp("PO-1"), i32(1)
	h.apply(rel, rec)
	got, err = rdb.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"h:H1", "s:rel|" + day} {
		if v, ok := got[f]; ok {
			t.Errorf("%s still has %s = %q after it ended: %v", key, f, v, got)
		}
	}
	if got["oh"] != "35" || got["hd"] != "0" || got["ib"] != "0" {
		t.Errorf("totals after release and receipt: %v", got)
	}
}

// staleCache is a lookup cache that holds nothing in memory and reads
// through another Redis, one still holding the ledger as it was.
type staleCache struct{ *redis.Client }

func (staleCache) Cached(context.Context, ...string) ([]byte, bool) { return nil, false }
func (staleCache) Warm(string, string)                              {}

// A lookup that asks for a version the cache does not have yet reads Redis.
func TestLookupInsistsOnMinVersion(t *testing.T) {
	ctx := context.Background()
	old, oldRDB := miniStore(t, Config{})
	s, _ := miniStore(t, Config{})
	first := le(events.EntryReceipt, "DC1", 10, 0, "r1")
	newHarness(t, old).apply(first)
	h := newHarness(t, s)
	h.apply(first)
	h.apply(le(events.EntryReceipt, "DC1", 5, 1, "r2"))
	s.UseCache(staleCache{oldRDB})

	lookup := func(min int64) LookupResult {
		t.Helper()
		res, err := s.Lookup(ctx, []LookupReq{{SKU: "SKU-1", Location: "DC1", MinVersion: min}}, at(2))
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	stale := lookup(0)
	if stale.OnHand != 10 {
		t.Fatalf("through the stale cache: on hand %d, want its 10", stale.OnHand)
	}
	if got := lookup(stale.Version + 1); got.OnHand != 15 || got.Version != stale.Version+1 {
		t.Errorf("with MinVersion %d: on hand %d version %d, want 15 at %d", stale.Version+1, got.OnHand, got.Version, stale.Version+1)
	}
	if got := lookup(0); got.OnHand != 10 {
		t.Errorf("without MinVersion the cached answer stands: on hand %d, want 10", got.OnHand)
	}
}

// A ledger written by a version with another key layout is refused, not
// read wrongly; an empty Redis gets the current layout.
func TestCheckLayout(t *testing.T) {
	ctx := context.Background()
	s, rdb := miniStore(t, Config{})
	if err := s.CheckLayout(ctx, "ledger"); err != nil {
		t.Fatalf("empty Redis: %v", err)
	}
	if err := s.CheckLayout(ctx, "ledger"); err != nil {
		t.Fatalf("again: %v", err)
	}
	if _, err := s.EnsureMarker(ctx, "ledger"); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLayout(ctx, "ledger"); err != nil {
		t.Fatalf("after the folder's marker: %v", err)
	}

	old, oldRDB := miniStore(t, Config{})
	if err := oldRDB.Set(ctx, "sf:marker:ledger", "2026-01-01T00:00:00Z", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := old.CheckLayout(ctx, "ledger"); !errors.Is(err, ErrKeyLayout) {
		t.Fatalf("a ledger with no layout recorded: %v, want ErrKeyLayout", err)
	}
	if err := rdb.Set(ctx, "sf:layout", "3", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLayout(ctx, "ledger"); !errors.Is(err, ErrKeyLayout) {
		t.Fatalf("layout 3: %v, want ErrKeyLayout", err)
	}
}

// The owner's memory answers a lookup as Redis does once the state is
// stored: the same totals, supply, holds and version.
func TestLocalLookupMatchesRedis(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	s := New(rdb, Config{})
	ctx := context.Background()
	st, err := s.Load(ctx, []string{"SKU-1"})
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(11, 12))
	es := randomEntries(rnd, 400)
	now := at(300)
	for i, e := range es {
		e.SKU = "SKU-1"
		s.Engine().Apply(st[0], e, 0, int64(i))
		if i%50 != 49 {
			continue
		}
		for _, loc := range []string{"L1", "L2"} {
			local, ok := st[0].Local(loc, now.UnixMilli(), nil)
			if _, err := s.Save(ctx, st); err != nil {
				t.Fatal(err)
			}
			stored, err := s.Lookup(ctx, []LookupReq{{SKU: "SKU-1", Location: loc}}, now)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				if stored[0].Version != 0 {
					t.Fatalf("entry %d %s: no local position, redis has version %d", i, loc, stored[0].Version)
				}
				continue
			}
			got, want := local, stored[0]
			want.Written = time.Time{}
			slices.SortFunc(got.Holds, func(a, b atp.Hold) int { return strings.Compare(a.ID, b.ID) })
			slices.SortFunc(want.Holds, func(a, b atp.Hold) int { return strings.Compare(a.ID, b.ID) })
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Fatalf("entry %d %s:\nlocal %+v\nredis %+v", i, loc, got, want)
			}
		}
	}
}
