package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// A run's exceptions in Redis: see Runs.

// seqWidth is the width of a sequence number in the index: members of a
// range then sort by it.
const seqWidth = 12

// maxSeq is the largest sequence number seqWidth digits hold.
const maxSeq = 999_999_999_999

// MaxFilterRanges bounds the index ranges one filtered page reads (classes
// times locations): each is a read of up to a page.
const MaxFilterRanges = 300

func seqText(n int64) string {
	s := strconv.FormatInt(n, 10)
	if len(s) >= seqWidth {
		return s
	}
	return "000000000000"[:seqWidth-len(s)] + s
}

func classPrefix(class string) string     { return "c:" + class + ":" }
func pairPrefix(class, loc string) string { return "p:" + class + ":" + loc + ":" }

// rangeOf is the index range of the members that start with prefix (which
// ends in ':') and have a sequence number of at least from: the next
// character after ':' is ';'.
func rangeOf(prefix string, from int64, count int) *redis.ZRangeBy {
	return &redis.ZRangeBy{Min: "[" + prefix + seqText(from), Max: "(" + prefix[:len(prefix)-1] + ";", Count: int64(count)}
}

func seqOf(member string) (int64, error) {
	if len(member) < seqWidth {
		return 0, fmt.Errorf("index member %q has no sequence number", member)
	}
	return strconv.ParseInt(member[len(member)-seqWidth:], 10, 64)
}

// appendExceptions stores xs, numbered from first on, and indexes them, in
// one round trip and one transaction (the keys share the run's slot).
func (s *Runs) appendExceptions(ctx context.Context, id string, first int64, xs []Exception) error {
	if len(xs) == 0 {
		return nil
	}
	if first+int64(len(xs))-1 > maxSeq {
		return fmt.Errorf("record exceptions of run %s: more than %d", id, int64(maxSeq))
	}
	fields := make([]any, 0, 2*len(xs))
	members := make([]redis.Z, 0, 2*len(xs))
	for i := range xs {
		x := &xs[i]
		b, err := json.Marshal(x)
		if err != nil {
			return err
		}
		seq := first + int64(i)
		fields = append(fields, strconv.FormatInt(seq, 10), b)
		members = append(members, redis.Z{Member: classPrefix(x.Class) + seqText(seq)})
		if validID(x.Location) {
			members = append(members, redis.Z{Member: pairPrefix(x.Class, x.Location) + seqText(seq)})
		}
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.storeKey(id), fields...)
	pipe.ZAdd(ctx, s.xindexKey(id), members...)
	pipe.Expire(ctx, s.storeKey(id), s.retention)
	pipe.Expire(ctx, s.xindexKey(id), s.retention)
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

// ranges are the prefixes of the index ranges whose union f selects; nil
// when f selects everything. A location that is not an id has no range:
// no exception is indexed there (an invalid line's location may be
// anything).
func (f Filter) ranges() []string {
	if len(f.Classes) == 0 && len(f.Locations) == 0 {
		return nil
	}
	classes := AllClasses[1:] // all but match, which is never stored
	if len(f.Classes) > 0 {
		classes = slices.Sorted(maps.Keys(f.Classes))
	}
	out := []string{}
	for _, c := range classes {
		if len(f.Locations) == 0 {
			out = append(out, classPrefix(c))
			continue
		}
		for _, l := range slices.Sorted(maps.Keys(f.Locations)) {
			if validID(l) {
				out = append(out, pairPrefix(c, l))
			}
		}
	}
	return out
}

// ErrFilterTooWide says a filter names more classes times locations than
// a page reads ranges of the index for.
var ErrFilterTooWide = fmt.Errorf("the filter names more than %d classes times locations", MaxFilterRanges)

// errLegacy says a run keeps its exceptions in the list of old.
var errLegacy = errors.New("run recorded before the index")

// Exceptions returns up to limit exceptions of run id that pass f, in
// their order of arrival from position cursor on, and the cursor to
// continue from (0 when there are no more).
func (s *Runs) Exceptions(ctx context.Context, id string, f Filter, cursor int64, limit int) ([]Exception, int64, error) {
	if limit <= 0 || cursor < 0 || cursor > maxSeq {
		return []Exception{}, 0, nil
	}
	ranges := f.ranges()
	if len(ranges) > MaxFilterRanges {
		return nil, 0, ErrFilterTooWide
	}
	xs, next, err := s.page(ctx, id, ranges, cursor, limit, true)
	if errors.Is(err, errLegacy) {
		return s.scanList(ctx, id, f, cursor, limit)
	}
	return xs, next, err
}

// page reads up to limit exceptions of the union of the index ranges (nil:
// all of them) from sequence number cursor on: the sequence numbers
// first, then those exceptions. With checkLegacy, it fails with errLegacy
// for a run recorded before the index.
func (s *Runs) page(ctx context.Context, id string, ranges []string, cursor int64, limit int, checkLegacy bool) ([]Exception, int64, error) {
	pipe := s.rdb.Pipeline()
	var legacy *redis.IntCmd
	if checkLegacy {
		legacy = pipe.Exists(ctx, s.listKey(id))
	}
	var whole *redis.SliceCmd
	cmds := make([]*redis.StringSliceCmd, len(ranges))
	if ranges == nil {
		fields := make([]string, limit+1)
		for i := range fields {
			fields[i] = strconv.FormatInt(cursor+int64(i), 10)
		}
		whole = pipe.HMGet(ctx, s.storeKey(id), fields...)
	}
	for i, p := range ranges {
		cmds[i] = pipe.ZRangeByLex(ctx, s.xindexKey(id), rangeOf(p, cursor, limit+1))
	}
	if ranges == nil || len(ranges) > 0 || checkLegacy {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, 0, fmt.Errorf("read exceptions of run %s: %w", id, err)
		}
	}
	if legacy != nil && legacy.Val() > 0 {
		return nil, 0, errLegacy
	}
	if whole != nil {
		return decodePage(id, whole.Val(), cursor, limit, true)
	}
	seqs, err := mergeSeqs(cmds, limit+1)
	if err != nil {
		return nil, 0, fmt.Errorf("exceptions of run %s: %w", id, err)
	}
	var next int64
	if len(seqs) > limit {
		next, seqs = seqs[limit], seqs[:limit]
	}
	if len(seqs) == 0 {
		return []Exception{}, 0, nil
	}
	fields := make([]string, len(seqs))
	for i, n := range seqs {
		fields[i] = strconv.FormatInt(n, 10)
	}
	vals, err := s.rdb.HMGet(ctx, s.storeKey(id), fields...).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read exceptions of run %s: %w", id, err)
	}
	xs, _, err := decodePage(id, vals, seqs[0], len(vals), false)
	return xs, next, err
}

// mergeSeqs merges the sequence numbers of the ranges read (each in
// order, and no two sharing one), keeping the first n.
func mergeSeqs(cmds []*redis.StringSliceCmd, n int) ([]int64, error) {
	var seqs []int64
	for _, c := range cmds {
		for _, m := range c.Val() {
			seq, err := seqOf(m)
			if err != nil {
				return nil, err
			}
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs[:min(n, len(seqs))], nil
}

// decodePage decodes up to limit values read from the store. Of
// contiguous sequence numbers from cursor on, a missing value is the end,
// and one value past limit says there are more, from cursor+limit; of
// others (those an index range named), a missing value was never written
// whole or has expired, and is skipped.
func decodePage(id string, vals []any, cursor int64, limit int, contiguous bool) ([]Exception, int64, error) {
	out := make([]Exception, 0, min(limit, len(vals)))
	for i, v := range vals {
		b, ok := v.(string)
		if !ok && contiguous {
			break
		}
		if !ok {
			continue
		}
		if i == limit {
			return out, cursor + int64(limit), nil
		}
		var x Exception
		if err := json.Unmarshal([]byte(b), &x); err != nil {
			return nil, 0, fmt.Errorf("exception %d of run %s: %w", cursor+int64(i), id, err)
		}
		out = append(out, x)
	}
	return out, 0, nil
}

// scanList reads the list of a run recorded before the index: the
// exceptions that pass f are found by reading every one from cursor on.
func (s *Runs) scanList(ctx context.Context, id string, f Filter, cursor int64, limit int) ([]Exception, int64, error) {
	out := []Exception{}
	const chunk = 1000
	for {
		raw, err := s.rdb.LRange(ctx, s.listKey(id), cursor, cursor+chunk-1).Result()
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
// a time: all of them in arrival order, the filtered ones a range of the
// index after the other (by class, then location), each in arrival order.
func (s *Runs) each(ctx context.Context, id string, f Filter, fn func([]Exception) error) error {
	n, err := s.rdb.Exists(ctx, s.listKey(id)).Result()
	if err != nil {
		return fmt.Errorf("read exceptions of run %s: %w", id, err)
	}
	if n > 0 {
		return eachPage(func(cursor int64) ([]Exception, int64, error) { return s.scanList(ctx, id, f, cursor, 1000) }, fn)
	}
	ranges := f.ranges()
	if ranges == nil {
		return eachPage(func(cursor int64) ([]Exception, int64, error) { return s.page(ctx, id, nil, cursor, 1000, false) }, fn)
	}
	for _, r := range ranges {
		err := eachPage(func(cursor int64) ([]Exception, int64, error) {
			return s.page(ctx, id, []string{r}, cursor, 1000, false)
		}, fn)
		if err != nil {
			return err
		}
	}
	return nil
}

// eachPage calls fn with each non-empty page read goes through.
func eachPage(read func(cursor int64) ([]Exception, int64, error), fn func([]Exception) error) error {
	var cursor int64
	for {
		xs, next, err := read(cursor)
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
