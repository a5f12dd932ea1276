package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
)

// send reads the file, and sends it unless its run exists. It returns the
// snapshot id; done says the command is over, and ok how it went.
func (c *CLI) send(ctx context.Context) (id string, ok, done bool) {
	info, err := scanSnapshotFile(c.job.File, c.limits())
	if err != nil {
		c.fail(err)
		return "", false, true
	}
	locs := c.job.locs
	if len(locs) == 0 {
		locs = info.Locations
	}
	fmt.Fprintf(c.stderr, "%s: %d lines, %s, sha256 %s\n", c.job.File, info.Lines, countedList("location", info.Locations), info.SHA256)
	if len(locs) == 0 {
		c.fail(fmt.Errorf("%s has no line with a valid location: nothing to compare (give -locations to say which locations it covers)", c.job.File))
		return "", false, true
	}
	id = c.job.SnapshotID
	if id == "" {
		id = SnapshotID(c.job.Source, c.job.asOfTime, info.SHA256)
	}
	prev, err := c.api.get(ctx, id, url.Values{"limit": {"1"}})
	var ae *apiError
	switch {
	case err == nil:
		fmt.Fprintf(c.stderr, "snapshot %s was reconciled before (%s); the same snapshot is one run — showing that run\n", id, prev.Run.Status)
		return id, true, false
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
	case errors.As(err, &ae):
		c.fail(err)
		return id, false, true
	case c.job.NoWait:
		fmt.Fprintf(c.stderr, "the API is not reachable (%v): sending without checking whether snapshot %s was reconciled before\n", err, id)
	default:
		c.fail(fmt.Errorf("%v: the API is needed to follow the run (start the service, give -api, or send with -no-wait)", err))
		return id, false, true
	}
	sent, err := c.produce(ctx, id, locs, info.Lines)
	if err != nil {
		c.fail(err)
		return id, false, true
	}
	fmt.Fprintf(c.stderr, "sent snapshot %s: %d lines to %s\n", id, sent, c.cfg.Topics.Snapshots)
	if sent != info.Lines {
		c.fail(fmt.Errorf("%s changed while it was read: %d lines at first, %d the second time; the run will be incomplete", c.job.File, info.Lines, sent))
		return id, false, true
	}
	if c.job.NoWait {
		fmt.Fprintf(c.stdout, "snapshot %s sent; follow its run with: stockflow reconcile -run %s\n", id, id)
		return id, true, true
	}
	return id, true, false
}

// countedList says how many things there are and names the first few.
func countedList(what string, xs []string) string {
	s := fmt.Sprintf("%d %ss", len(xs), what)
	if len(xs) == 1 {
		s = "1 " + what
	}
	switch {
	case len(xs) == 0:
		return s
	case len(xs) > 10:
		return s + " (" + strings.Join(xs[:10], ", ") + ", …)"
	}
	return s + " (" + strings.Join(xs, ", ") + ")"
}

// limits are the bounds of reading the file.
func (c *CLI) limits() FileLimits {
	return FileLimits{RecordBytes: c.job.MaxLineBytes}
}

func scanSnapshotFile(path string, lim FileLimits) (FileInfo, error) {
	fh, err := os.Open(path)
	if err != nil {
		return FileInfo{}, err
	}
	defer func() { _ = fh.Close() }() // only read: its Scan says how the reading went
	info, err := lim.Scan(fh)
	if err != nil {
		return info, fmt.Errorf("%s: %w%s", path, err, limitHint(err))
	}
	return info, nil
}

// limitHint says how to read a file whose records are longer than the
// limit, when that is what err is.
func limitHint(err error) string {
	var long *RecordTooLongError
	if !errors.As(err, &long) {
		return ""
	}
	return fmt.Sprintf(" (if its records are that long, raise -max-line-bytes from %d)", long.Limit)
}

// produce sends the file as snapshot id.
func (c *CLI) produce(ctx context.Context, id string, locs []string, lines int64) (int64, error) {
	codec, err := events.OpenCodec(c.cfg.SchemaRegistry, c.cfg.MaxRecordBytes)
	if err != nil {
		return 0, fmt.Errorf("codec: %w", err)
	}
	// A snapshot sent halfway is no use: give up on a broker that does not
	// take records for a minute rather than wait for ever.
	cl, err := kgo.NewClient(kafka.ClientOpts(c.cfg.Kafka, kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(50_000), kgo.RecordDeliveryTimeout(time.Minute))...)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	fh, err := os.Open(c.job.File)
	if err != nil {
		return 0, err
	}
	defer func() { _ = fh.Close() }() // only read: Send reports any read error
	start := &events.SnapshotStarted{
		Meta:       events.Meta{EventID: "snapshot:" + id, EventTime: time.Now().UTC(), Source: c.job.Source},
		SnapshotID: id, Locations: locs, AsOf: c.job.asOfTime.UTC(), ExpectedLines: lines,
	}
	m := newMeter(c.stderr, !c.job.NoProgress, lines, "sending", "lines sent")
	sent, err := Send(ctx, cl, codec, c.cfg.Topics.Snapshots, start, func(emit func(*events.SnapshotLine) error) error {
		return c.limits().Read(fh, id, emit)
	}, m.set)
	m.done()
	if err != nil {
		return sent, fmt.Errorf("send %s: %w%s", c.job.File, err, limitHint(err))
	}
	return sent, nil
}

// follow polls run id until it is not running, showing the lines compared.
func (c *CLI) follow(ctx context.Context, id string) (Run, error) {
	ctx, cancel := context.WithTimeout(ctx, c.job.Wait)
	defer cancel()
	var m *meter
	defer func() {
		if m != nil {
			m.done()
		}
	}()
	var lastErr error
	// Once the API has answered (for a file, before it was sent), a failure
	// to reach it is a restart to wait out, not the end.
	reached := c.job.File != ""
	for {
		p, err := c.api.get(ctx, id, url.Values{"limit": {"1"}})
		var ae *apiError
		switch {
		case err == nil:
			lastErr, reached = nil, true
			run := p.Run
			if run.Status != StatusRunning || c.job.NoWait {
				if m != nil {
					m.set(run.Lines)
				}
				return run, nil
			}
			if m == nil {
				m = newMeter(c.stderr, !c.job.NoProgress, run.ExpectedLines, "comparing", "lines compared")
			}
			m.set(run.Lines)
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound && c.job.File != "":
			lastErr = err // the reconciler has not read the start yet
		case errors.As(err, &ae), !reached:
			return Run{}, err
		case ctx.Err() == nil:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				if lastErr != nil {
					return Run{}, fmt.Errorf("run %s: not finished after %v (last answer: %v); follow it with stockflow reconcile -run %s", id, c.job.Wait, lastErr, id)
				}
				return Run{}, fmt.Errorf("run %s is still running after %v; follow it with stockflow reconcile -run %s", id, c.job.Wait, id)
			}
			return Run{}, ctx.Err()
		case <-time.After(400 * time.Millisecond):
		}
	}
}
