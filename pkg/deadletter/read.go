package deadletter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Filter selects dead letters. Zero fields match everything.
type Filter struct {
	Class       string
	SourceTopic string
	Since       time.Time // by the error time header
	Until       time.Time
	// Offsets, when set, selects dead letters by their own partition/offset.
	Offsets map[int32][]int64
}

func (f Filter) match(d DeadLetter) bool {
	if f.Class != "" && d.Class != f.Class {
		return false
	}
	if f.SourceTopic != "" && d.SourceTopic != f.SourceTopic {
		return false
	}
	if !f.Since.IsZero() && d.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && d.Time.After(f.Until) {
		return false
	}
	if f.Offsets != nil {
		for _, o := range f.Offsets[d.Partition] {
			if o == d.Offset {
				return true
			}
		}
		return false
	}
	return true
}

// Scan reads the whole dead-letter topic as it stands now (see Read) and
// calls fn for each record that matches. A read that stops short of the
// topic's ends, waiting in vain (scanQuiet), ends with a *ShortRead, once
// what it read has gone to fn.
func Scan(ctx context.Context, conn []kgo.Opt, topic string, f Filter, fn func(DeadLetter) error) error {
	_, err := read(ctx, conn, topic, nil, nil, scanQuiet, func(recs []*kgo.Record) error {
		for _, r := range recs {
			if d := Describe(r); f.match(d) {
				if err := fn(d); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return err
}

// scanQuiet is how long a Scan waits for a record short of the last
// stable offset before it stops with a ShortRead. Records of a transaction
// aborted just before one still open are dropped by the reader, and their
// abort marker lies past that offset, so a partition can end there without
// the reader ever seeing its end.
const scanQuiet = 5 * time.Second

// readPoll bounds the records one poll of the dead-letter topic gives to
// the caller: what a read holds at once is that and the client's fetches.
const readPoll = 200

// Read reads the dead-letter topic's committed records, with a client of
// its own made from conn (kafka.Conn), and gives each poll's data records
// (at most readPoll) to fn. It reads each partition from from (its offset
// there; nil: the partition's start) up to the last stable offset as the
// call begins, or until, when set and lower (exclusive; a partition
// missing from a non-nil from or until is not read).
//
// It stops at the last stable offsets because anyone who may write the
// dead-letter topic can leave a transaction open on it: a read_committed
// reader cannot read past its first record, and reading up to the high
// watermark would wait for it. A read that gets nowhere for a minute is an
// error; ctx bounds it otherwise.
//
// It returns where it set out to stop reading each partition, also when
// the read itself fails.
func Read(ctx context.Context, conn []kgo.Opt, topic string, from, until map[int32]int64, fn func([]*kgo.Record) error) (map[int32]int64, error) {
	return read(ctx, conn, topic, from, until, 0, fn)
}

// read is Read; with quiet > 0, that long without a record short of the
// ends stops the read with a *ShortRead.
func read(ctx context.Context, conn []kgo.Opt, topic string, from, until map[int32]int64, quiet time.Duration,
	fn func([]*kgo.Record) error) (map[int32]int64, error) {
	start, end, err := bounds(ctx, conn, topic, from, until)
	if err != nil {
		return nil, err
	}
	offs := map[int32]kgo.Offset{}
	for p, e := range end {
		if start[p] < e {
			offs[p] = kgo.NewOffset().At(start[p])
		}
	}
	if len(offs) == 0 {
		return end, nil
	}
	cl, err := kgo.NewClient(append(slices.Clip(conn),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // an offset retention removed: the oldest left
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())...) // markers take offsets too: the ends are reached exactly
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	batch := make([]*kgo.Record, 0, readPoll)
	err = readRange(ctx, cl, topic, end, maps.Clone(start), readPoll, quiet, func(r *kgo.Record) error {
		batch = append(batch, r)
		return nil
	}, func() error {
		if len(batch) == 0 {
			return nil
		}
		err := fn(batch)
		clear(batch)
		batch = batch[:0]
		return err
	})
	return end, err
}

// bounds are where a read of the dead-letter topic begins and ends in
// each partition: from, or the log's start when later (retention removed
// what came before it), to the last stable offset, or until when lower. A
// partition whose log starts at or past its end has nothing to read: its
// start is its end. Beginning before the log's start would have the
// consumer reset to it and wait, for records that do not come, when
// retention emptied it.
func bounds(ctx context.Context, conn []kgo.Opt, topic string, from, until map[int32]int64) (start, end map[int32]int64, err error) {
	cl, err := kgo.NewClient(slices.Clip(conn)...)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// The last stable offset, as ListOffsets answers with read_committed
	// isolation; the high watermark lies beyond an open transaction.
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = lso.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("last stable offsets of %s: %w", topic, err)
	}
	los, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = los.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	start, end = map[int32]int64{}, map[int32]int64{}
	lso.Each(func(o kadm.ListedOffset) {
		f, asked := from[o.Partition]
		u, bounded := until[o.Partition]
		if (from != nil && !asked) || (until != nil && !bounded) {
			return // a partition not asked for
		}
		e := o.Offset
		if bounded && u < e {
			e = u
		}
		logStart, ok := los.Lookup(topic, o.Partition)
		if !ok {
			return
		}
		start[o.Partition], end[o.Partition] = min(max(f, logStart.Offset), e), e
	})
	return start, end, nil
}

// ShortRead is a read that stopped short of where it meant to: no record
// came for a while (scanQuiet). What it read was delivered.
type ShortRead struct {
	Topic      string
	Pos, Until map[int32]int64
}

func (e *ShortRead) Error() string {
	return fmt.Sprintf("read %s: stopped at %v short of %v: nothing more came (records of aborted transactions, or a partition not answering)",
		e.Topic, e.Pos, e.Until)
}

// ReadTopic reads topic from the start (read_committed), with a client of
// its own made from conn (kafka.Conn), and calls fn for each data record
// below until[partition] (exclusive), or, with until nil, below the end
// offsets the topic has when the call starts.
func ReadTopic(ctx context.Context, conn []kgo.Opt, topic string, until map[int32]int64, fn func(*kgo.Record) error) error {
	cl, err := kgo.NewClient(append(slices.Clip(conn), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())...) // markers take offsets too: the ends are reached exactly
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	if until == nil {
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		until = map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Offset > 0 {
				until[o.Partition] = o.Offset
			}
		})
	}
	return readRange(ctx, cl, topic, until, map[int32]int64{}, 0, 0, fn, nil)
}

// ReadRange polls cl, which consumes topic, until every partition in until
// has been read up to its offset there (exclusive), calling each for every
// data record below it and afterPoll, when set, after every poll. pos says
// where each partition's reading stands and is kept up to date. A minute
// without a record short of until is an error: the reader is stuck; with
// quiet > 0, that long without a record ends the read with a *ShortRead.
func ReadRange(ctx context.Context, cl *kgo.Client, topic string, until, pos map[int32]int64,
	quiet time.Duration, each func(*kgo.Record) error, afterPoll func() error) error {
	return readRange(ctx, cl, topic, until, pos, 0, quiet, each, afterPoll)
}

// readRange is ReadRange, taking at most maxPoll records a poll (0: all
// the client holds). Every reader of a topic up to given offsets reads
// with it. A partition read to its end is paused, so that the client
// stops fetching what would be skipped.
func readRange(ctx context.Context, cl *kgo.Client, topic string, until, pos map[int32]int64,
	maxPoll int, quiet time.Duration, each func(*kgo.Record) error, afterPoll func() error) error {
	left := 0
	for p, end := range until {
		if pos[p] < end {
			left++
		}
	}
	wait := time.Minute
	if quiet > 0 {
		wait = quiet
	}
	for left > 0 {
		pctx, cancel := context.WithTimeout(ctx, wait)
		fs := cl.PollRecords(pctx, maxPoll)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetchError(fs); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		if fs.NumRecords() == 0 && quiet > 0 {
			return &ShortRead{Topic: topic, Pos: maps.Clone(pos), Until: until}
		}
		if fs.NumRecords() == 0 {
			return fmt.Errorf("read %s: no progress for a minute at %v, reading up to %v", topic, pos, until)
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			p := r.Partition
			if r.Offset < pos[p] || pos[p] >= until[p] {
				continue // read before, or the partition's end reached
			}
			// Never past until: the records below it that this fetch skipped
			// (a compaction gap) were not read.
			if pos[p] = min(r.Offset+1, until[p]); pos[p] >= until[p] {
				left--
				cl.PauseFetchPartitions(map[string][]int32{topic: {p}})
			}
			if r.Offset >= until[p] || r.Attrs.IsControl() {
				continue
			}
			if err := each(r); err != nil {
				return err
			}
		}
		if afterPoll != nil {
			if err := afterPoll(); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetchError is an error of a poll but its context's ending, which the
// caller tells from its own context.
func fetchError(fs kgo.Fetches) error {
	var ferr error
	fs.EachError(func(_ string, _ int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			ferr = err
		}
	})
	return ferr
}
