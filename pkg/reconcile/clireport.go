package reconcile

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// printSummary writes the run and its counts by class.
func (c *CLI) printSummary(run *Run) {
	tw := tabwriter.NewWriter(c.summary, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", run.ID)
	fmt.Fprintf(tw, "status\t%s\n", run.Status)
	if run.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", run.Reason)
	}
	if run.Truncated != "" {
		fmt.Fprintf(tw, "stored\t%s\n", run.Truncated)
	}
	fmt.Fprintf(tw, "source\t%s\n", run.Source)
	fmt.Fprintf(tw, "as of\t%s\n", run.AsOf.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "locations\t%s\n", strings.Join(run.Locations, ", "))
	fmt.Fprintf(tw, "lines\t%d of %d expected\n", run.Lines, run.ExpectedLines)
	tw.Flush()
	fmt.Fprintf(c.summary, "\n%-20s %12s\n", "class", "positions")
	for _, cl := range AllClasses {
		fmt.Fprintf(c.summary, "%-20s %12d\n", cl, run.Counts[cl])
	}
	fmt.Fprintf(c.summary, "%-20s %12d\n", "exceptions", run.Exceptions())
	for _, a := range run.Applies {
		fmt.Fprintf(c.summary, "\napplied %s by %s: %d entries (%s%s)\n", a.At.UTC().Format(time.RFC3339), a.By, a.Entries,
			strings.Join(a.Classes, ","), locationsNote(a.Locations))
	}
}

func locationsNote(locs []string) string {
	if len(locs) == 0 {
		return ""
	}
	return " at " + strings.Join(locs, ",")
}

// applyRun applies the run's corrections and says how many entries it made.
func (c *CLI) applyRun(ctx context.Context, id string) error {
	classes := c.job.classes
	if len(classes) == 0 {
		classes = []string{Drift}
	}
	res, err := c.api.apply(ctx, id, classes, c.job.applyLocs)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.summary, "\napplied run %s: %d correction entries produced to the ledger (%s%s)\n",
		res.RunID, res.Applied.Entries, strings.Join(res.Applied.Classes, ","), locationsNote(res.Applied.Locations))
	return nil
}

// writeReport pages through the run's exceptions into the report file.
func (c *CLI) writeReport(ctx context.Context, id string) (err error) {
	w := c.stdout
	path := c.job.Report
	if path != "-" {
		fh, cerr := os.Create(path)
		if cerr != nil {
			return cerr
		}
		defer func() {
			if cerr := fh.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("report %s: %w", path, cerr)
			}
			if err != nil {
				// a partial report would pass for a whole one
				if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
					err = errors.Join(err, fmt.Errorf("removing the partial report: %w", rerr))
				}
			}
		}()
		w = fh
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	rep := newReportWriter(bw, strings.EqualFold(filepath.Ext(path), ".json"))
	n, run, err := c.pageExceptions(ctx, id, rep)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if path != "-" {
		fmt.Fprintf(c.summary, "\nwrote %d exceptions to %s\n", n, path)
	}
	var left int64
	for _, k := range run.Unstored {
		left += k
	}
	if left > 0 {
		fmt.Fprintf(c.summary, "the report lacks %d exceptions the run counted but did not store (the cap of a run)\n", left)
	}
	return nil
}

// pageExceptions writes every exception of run id to rep; it returns how
// many, and the run as the first page had it.
func (c *CLI) pageExceptions(ctx context.Context, id string, rep reportWriter) (int64, Run, error) {
	var n int64
	var run Run
	cursor := ""
	for first := true; ; first = false {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p, err := c.api.get(ctx, id, q)
		if err != nil {
			return n, run, err
		}
		if first {
			run = p.Run
			if err := rep.begin(&p.Run); err != nil {
				return n, run, err
			}
		}
		for i := range p.Exceptions {
			if err := rep.exception(&p.Exceptions[i]); err != nil {
				return n, run, err
			}
		}
		n += int64(len(p.Exceptions))
		if p.NextCursor == "" {
			return n, run, rep.end()
		}
		cursor = p.NextCursor
	}
}

// reportWriter streams a run's exceptions in a format.
type reportWriter interface {
	begin(run *Run) error
	exception(x *Exception) error
	end() error
}

func newReportWriter(w io.Writer, asJSON bool) reportWriter {
	if asJSON {
		return &jsonReport{w: w}
	}
	return &csvReport{w: csv.NewWriter(w)}
}

// csvReport writes one row per exception; absent values are empty cells.
type csvReport struct {
	w   *csv.Writer
	row [8]string
}

func (c *csvReport) begin(*Run) error {
	return c.w.Write([]string{"line", "sku", "location", "class", "snapshot_quantity", "ledger_quantity", "difference", "detail"})
}

func (c *csvReport) exception(x *Exception) error {
	c.row = [8]string{"", x.SKU, x.Location, x.Class, FormatQuantity(x.SnapshotQuantity),
		FormatQuantity(x.LedgerQuantity), "", x.Detail}
	if x.Line > 0 {
		c.row[0] = strconv.FormatInt(x.Line, 10)
	}
	// Without a ledger quantity (superseded, invalid lines) there is no
	// difference to speak of.
	if x.LedgerQuantity != nil {
		c.row[6] = strconv.FormatInt(x.Difference, 10)
	}
	return c.w.Write(c.row[:])
}

func (c *csvReport) end() error {
	c.w.Flush()
	return c.w.Error()
}

// jsonReport writes {"run":{...},"exceptions":[...]} as it goes.
type jsonReport struct {
	w io.Writer
	n int64
}

func (j *jsonReport) begin(run *Run) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(j.w, "{\"run\":%s,\"exceptions\":[", b)
	return err
}

func (j *jsonReport) exception(x *Exception) error {
	b, err := json.Marshal(x)
	if err != nil {
		return err
	}
	sep := ",\n"
	if j.n == 0 {
		sep = "\n"
	}
	j.n++
	_, err = io.WriteString(j.w, sep+string(b))
	return err
}

func (j *jsonReport) end() error {
	_, err := io.WriteString(j.w, "\n]}\n")
	return err
}
