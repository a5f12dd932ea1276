package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/reconcile"
)

const reconcileUsage = `usage: stockflow reconcile -file FILE -source SYSTEM -as-of TIME [flags]
       stockflow reconcile -run ID [flags]

Send a stock snapshot exported as CSV to be compared with the ledger as it
stood at -as-of, follow its run and print the positions by class; or show an
existing run. The file's header names the columns sku, location, quantity
and optionally uom (default EA), in any order; a line that cannot be read is
sent as an invalid line with its reason. The file is read twice and never
held in memory.

The snapshot id (default: source, as-of and the file's digest) names the
run: sending the same file for the same source and time again shows the
first run instead of comparing again.

  stockflow reconcile -file erp.csv -source ERP-EAST -as-of 2026-11-27T06:00:00Z -report drift.csv
  stockflow reconcile -run ERP-EAST-20261127T060000Z-0123456789ab -apply -apply-classes drift

Exit status: 0 when the run completed (drift or not), 1 when it is
incomplete or refused or something failed, 2 for a usage error.

flags:
`

// reconcileFlags are the command's own flags.
type reconcileFlags struct {
	file, source, asOf, snapshotID, locations string
	run                                       string
	report                                    string
	apply                                     bool
	applyClasses, applyLocations              string
	api, apiKey                               string
	wait                                      time.Duration
	noWait, noProgress                        bool
	maxLineBytes                              int
}

// reconcileJob is what the flags ask for, checked.
type reconcileJob struct {
	reconcileFlags
	asOfTime  time.Time
	locs      []string
	classes   []string
	applyLocs []string
}

func reconcileCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	l := config.NewLoader("reconcile", stderr)
	l.Stores = false
	var f reconcileFlags
	fs := l.FlagSet
	fs.StringVar(&f.file, "file", "", "the snapshot, a CSV file with the columns sku, location, quantity and optionally uom")
	fs.StringVar(&f.source, "source", "", "the system whose balances the file holds, e.g. ERP-EAST (required with -file)")
	fs.StringVar(&f.asOf, "as-of", "", "when the balances were taken, RFC 3339 (required with -file)")
	fs.StringVar(&f.snapshotID, "snapshot-id", "", "the snapshot's id (default: source, as-of and the start of the file's SHA-256)")
	fs.StringVar(&f.locations, "locations", "", "the locations the snapshot covers, comma-separated (default: those in the file)")
	fs.StringVar(&f.run, "run", "", "show the run of this snapshot id instead of sending a file")
	fs.StringVar(&f.report, "report", "", "write the run's exceptions to this .csv or .json file (- for CSV on stdout)")
	fs.BoolVar(&f.apply, "apply", false, "apply the run's corrections to the ledger (needs an admin API key)")
	fs.StringVar(&f.applyClasses, "apply-classes", "", "classes to correct with -apply, comma-separated: "+strings.Join(reconcile.Correctable, ", ")+" (default drift)")
	fs.StringVar(&f.applyLocations, "apply-locations", "", "correct only these locations with -apply, comma-separated (default all)")
	fs.StringVar(&f.api, "api", "", "the service's HTTP API (default http:// and -http-addr)")
	fs.StringVar(&f.apiKey, "api-key", "", "API key for the HTTP API (default env STOCKFLOW_API_KEY)")
	fs.DurationVar(&f.wait, "wait", 10*time.Minute, "how long to wait for the run to finish")
	fs.BoolVar(&f.noWait, "no-wait", false, "send the snapshot and return without following its run")
	fs.BoolVar(&f.noProgress, "no-progress", false, "show no progress")
	fs.IntVar(&f.maxLineBytes, "max-line-bytes", reconcile.DefaultMaxRecordBytes,
		"the longest record the file may hold, in bytes (a line, or the lines of a quoted field): a longer one stops the command")
	fs.Usage = func() {
		fmt.Fprint(stderr, reconcileUsage)
		fs.PrintDefaults()
	}
	cfg, code, ok := load(l, args, stderr)
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stockflow reconcile: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	job, err := checkReconcileFlags(f, cfg.HTTPAddr)
	if err != nil {
		fmt.Fprintf(stderr, "stockflow reconcile: %v\n", err)
		return exitUsage
	}
	if job.apiKey == "" {
		job.apiKey = os.Getenv("STOCKFLOW_API_KEY")
	}
	if len(cfg.Kafka.Brokers) == 0 {
		cfg.Kafka.Brokers = []string{"127.0.0.1:19092"}
	}
	r := &reconciler{job: job, cfg: cfg, stdout: stdout, stderr: stderr,
		api: &reconAPI{base: job.api, key: job.apiKey, hc: &http.Client{Timeout: 30 * time.Second}}}
	if job.report == "-" {
		r.summary = stderr // stdout carries the report
	} else {
		r.summary = stdout
	}
	return r.do(ctx)
}

var idRule = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// checkReconcileFlags validates the flags; its error is a usage error.
func checkReconcileFlags(f reconcileFlags, httpAddr string) (reconcileJob, error) {
	j := reconcileJob{reconcileFlags: f}
	switch {
	case f.file == "" && f.run == "":
		return j, errors.New("give -file to send a snapshot or -run to show a run")
	case f.file != "" && f.run != "":
		return j, errors.New("-file and -run do not go together: -file sends a snapshot, -run shows one already sent")
	}
	var err error
	if f.file != "" {
		if err := checkID("-source", f.source, true); err != nil {
			return j, err
		}
		if f.asOf == "" {
			return j, errors.New("-as-of is required with -file: when the balances were taken, e.g. 2026-11-27T06:00:00Z")
		}
		if j.asOfTime, err = time.Parse(time.RFC3339, f.asOf); err != nil {
			return j, fmt.Errorf("-as-of: %q is not an RFC 3339 time such as 2026-11-27T06:00:00Z", f.asOf)
		}
		if err := checkID("-snapshot-id", f.snapshotID, false); err != nil {
			return j, err
		}
		if j.locs, err = idList("-locations", f.locations); err != nil {
			return j, err
		}
		if f.noWait && (f.report != "" || f.apply) {
			return j, errors.New("-report and -apply need the run finished: they do not go with -no-wait")
		}
	} else {
		for name, v := range map[string]string{"-source": f.source, "-as-of": f.asOf, "-snapshot-id": f.snapshotID, "-locations": f.locations} {
			if v != "" {
				return j, fmt.Errorf("%s goes with -file, not -run", name)
			}
		}
		if err := checkID("-run", f.run, true); err != nil {
			return j, err
		}
	}
	if f.report != "" && f.report != "-" {
		if ext := strings.ToLower(filepath.Ext(f.report)); ext != ".csv" && ext != ".json" {
			return j, fmt.Errorf("-report: %q does not end in .csv or .json (- writes CSV to stdout)", f.report)
		}
	}
	if !f.apply && (f.applyClasses != "" || f.applyLocations != "") {
		return j, errors.New("-apply-classes and -apply-locations go with -apply")
	}
	if j.classes, err = idList("-apply-classes", f.applyClasses); err != nil {
		return j, err
	}
	for _, c := range j.classes {
		if !slices.Contains(reconcile.Correctable, c) {
			return j, fmt.Errorf("-apply-classes: %q cannot be applied (correctable: %s)", c, strings.Join(reconcile.Correctable, ", "))
		}
	}
	if j.applyLocs, err = idList("-apply-locations", f.applyLocations); err != nil {
		return j, err
	}
	if f.wait <= 0 {
		return j, fmt.Errorf("-wait: %v is not a positive duration", f.wait)
	}
	if f.maxLineBytes < 64 || f.maxLineBytes > 64<<20 {
		return j, fmt.Errorf("-max-line-bytes: %d is outside 64..%d", f.maxLineBytes, 64<<20)
	}
	if j.api, err = apiBase(f.api, httpAddr); err != nil {
		return j, err
	}
	return j, nil
}

func checkID(flag, v string, required bool) error {
	switch {
	case v == "" && required:
		return fmt.Errorf("%s is required", flag)
	case v != "" && !idRule.MatchString(v):
		return fmt.Errorf("%s: %q is not an id (1 to 64 of A-Z a-z 0-9 . _ -)", flag, v)
	}
	return nil
}

// idList splits a comma-separated list of ids, dropping repeats.
func idList(flag, s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if err := checkID(flag, part, false); err != nil {
			return nil, err
		}
		if !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return out, nil
}

// apiBase is the API's base URL: -api, or the service's listen address
// (an unspecified host there means this machine).
func apiBase(api, httpAddr string) (string, error) {
	if api == "" {
		host, port, err := net.SplitHostPort(httpAddr)
		if err != nil {
			return "", fmt.Errorf("-api: none given, and the HTTP address %q is not host:port", httpAddr)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		api = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("-api: %q is not an http or https URL", api)
	}
	return strings.TrimRight(api, "/"), nil
}

// reconciler carries out one reconcile command.
type reconciler struct {
	job     reconcileJob
	cfg     config.Config
	api     *reconAPI
	stdout  io.Writer
	stderr  io.Writer
	summary io.Writer
}

func (r *reconciler) do(ctx context.Context) int {
	id := r.job.run
	if r.job.file != "" {
		var code int
		var done bool
		if id, code, done = r.send(ctx); done {
			return code
		}
	}
	run, err := r.follow(ctx, id)
	if err != nil {
		r.fail(err)
		return exitFailed
	}
	r.printSummary(&run)
	code := exitOK
	if run.Status != reconcile.StatusCompleted {
		code = exitFailed
	}
	if r.job.report != "" {
		if err := r.writeReport(ctx, id); err != nil {
			r.fail(fmt.Errorf("report: %w", err))
			code = exitFailed
		}
	}
	if r.job.apply {
		if err := r.applyRun(ctx, id); err != nil {
			r.fail(fmt.Errorf("apply: %w", err))
			code = exitFailed
		}
	}
	return code
}

func (r *reconciler) fail(err error) {
	fmt.Fprintf(r.stderr, "stockflow reconcile: %v\n", err)
}

// send reads the file, and sends it unless its run exists. It returns the
// snapshot id; done says the command is over, with code.
func (r *reconciler) send(ctx context.Context) (id string, code int, done bool) {
	info, err := scanSnapshotFile(r.job.file, r.limits())
	if err != nil {
		r.fail(err)
		return "", exitFailed, true
	}
	locs := r.job.locs
	if len(locs) == 0 {
		locs = info.Locations
	}
	fmt.Fprintf(r.stderr, "%s: %d lines, %s, sha256 %s\n", r.job.file, info.Lines, countedList("location", info.Locations), info.SHA256)
	if len(locs) == 0 {
		r.fail(fmt.Errorf("%s has no line with a valid location: nothing to compare (give -locations to say which locations it covers)", r.job.file))
		return "", exitFailed, true
	}
	id = r.job.snapshotID
	if id == "" {
		id = reconcile.SnapshotID(r.job.source, r.job.asOfTime, info.SHA256)
	}
	prev, err := r.api.get(ctx, id, url.Values{"limit": {"1"}})
	var ae *apiError
	switch {
	case err == nil:
		fmt.Fprintf(r.stderr, "snapshot %s was reconciled before (%s); the same snapshot is one run — showing that run\n", id, prev.Run.Status)
		return id, 0, false
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
	case errors.As(err, &ae):
		r.fail(err)
		return id, exitFailed, true
	case r.job.noWait:
		fmt.Fprintf(r.stderr, "the API is not reachable (%v): sending without checking whether snapshot %s was reconciled before\n", err, id)
	default:
		r.fail(fmt.Errorf("%v: the API is needed to follow the run (start the service, give -api, or send with -no-wait)", err))
		return id, exitFailed, true
	}
	sent, err := r.produce(ctx, id, locs, info.Lines)
	if err != nil {
		r.fail(err)
		return id, exitFailed, true
	}
	fmt.Fprintf(r.stderr, "sent snapshot %s: %d lines to %s\n", id, sent, r.cfg.Topics.Snapshots)
	if sent != info.Lines {
		r.fail(fmt.Errorf("%s changed while it was read: %d lines at first, %d the second time; the run will be incomplete", r.job.file, info.Lines, sent))
		return id, exitFailed, true
	}
	if r.job.noWait {
		fmt.Fprintf(r.stdout, "snapshot %s sent; follow its run with: stockflow reconcile -run %s\n", id, id)
		return id, exitOK, true
	}
	return id, 0, false
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
func (r *reconciler) limits() reconcile.FileLimits {
	return reconcile.FileLimits{RecordBytes: r.job.maxLineBytes}
}

func scanSnapshotFile(path string, lim reconcile.FileLimits) (reconcile.FileInfo, error) {
	fh, err := os.Open(path)
	if err != nil {
		return reconcile.FileInfo{}, err
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
	var long *reconcile.RecordTooLongError
	if !errors.As(err, &long) {
		return ""
	}
	return fmt.Sprintf(" (if its records are that long, raise -max-line-bytes from %d)", long.Limit)
}

// produce sends the file as snapshot id.
func (r *reconciler) produce(ctx context.Context, id string, locs []string, lines int64) (int64, error) {
	codec, err := events.OpenCodec(r.cfg.SchemaRegistry, r.cfg.MaxRecordBytes)
	if err != nil {
		return 0, fmt.Errorf("codec: %w", err)
	}
	// A snapshot sent halfway is no use: give up on a broker that does not
	// take records for a minute rather than wait for ever.
	cl, err := kgo.NewClient(kafka.ClientOpts(r.cfg.Kafka, kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(50_000), kgo.RecordDeliveryTimeout(time.Minute))...)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	fh, err := os.Open(r.job.file)
	if err != nil {
		return 0, err
	}
	defer func() { _ = fh.Close() }() // only read: Send reports any read error
	start := &events.SnapshotStarted{
		Meta:       events.Meta{EventID: "snapshot:" + id, EventTime: time.Now().UTC(), Source: r.job.source},
		SnapshotID: id, Locations: locs, AsOf: r.job.asOfTime.UTC(), ExpectedLines: lines,
	}
	m := newMeter(r.stderr, !r.job.noProgress, lines, "sending", "lines sent")
	sent, err := reconcile.Send(ctx, cl, codec, r.cfg.Topics.Snapshots, start, func(emit func(*events.SnapshotLine) error) error {
		return r.limits().Read(fh, id, emit)
	}, m.set)
	m.done()
	if err != nil {
		return sent, fmt.Errorf("send %s: %w%s", r.job.file, err, limitHint(err))
	}
	return sent, nil
}

// follow polls run id until it is not running, showing the lines compared.
func (r *reconciler) follow(ctx context.Context, id string) (reconcile.Run, error) {
	ctx, cancel := context.WithTimeout(ctx, r.job.wait)
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
	reached := r.job.file != ""
	for {
		p, err := r.api.get(ctx, id, url.Values{"limit": {"1"}})
		var ae *apiError
		switch {
		case err == nil:
			lastErr, reached = nil, true
			run := p.Run
			if run.Status != reconcile.StatusRunning || r.job.noWait {
				if m != nil {
					m.set(run.Lines)
				}
				return run, nil
			}
			if m == nil {
				m = newMeter(r.stderr, !r.job.noProgress, run.ExpectedLines, "comparing", "lines compared")
			}
			m.set(run.Lines)
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound && r.job.file != "":
			lastErr = err // the reconciler has not read the start yet
		case errors.As(err, &ae), !reached:
			return reconcile.Run{}, err
		case ctx.Err() == nil:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				if lastErr != nil {
					return reconcile.Run{}, fmt.Errorf("run %s: not finished after %v (last answer: %v); follow it with stockflow reconcile -run %s", id, r.job.wait, lastErr, id)
				}
				return reconcile.Run{}, fmt.Errorf("run %s is still running after %v; follow it with stockflow reconcile -run %s", id, r.job.wait, id)
			}
			return reconcile.Run{}, ctx.Err()
		case <-time.After(400 * time.Millisecond):
		}
	}
}

// printSummary writes the run and its counts by class.
func (r *reconciler) printSummary(run *reconcile.Run) {
	tw := tabwriter.NewWriter(r.summary, 2, 4, 2, ' ', 0)
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
	fmt.Fprintf(r.summary, "\n%-20s %12s\n", "class", "positions")
	for _, c := range reconcile.AllClasses {
		fmt.Fprintf(r.summary, "%-20s %12d\n", c, run.Counts[c])
	}
	fmt.Fprintf(r.summary, "%-20s %12d\n", "exceptions", run.Exceptions())
	for _, a := range run.Applies {
		fmt.Fprintf(r.summary, "\napplied %s by %s: %d entries (%s%s)\n", a.At.UTC().Format(time.RFC3339), a.By, a.Entries,
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
func (r *reconciler) applyRun(ctx context.Context, id string) error {
	classes := r.job.classes
	if len(classes) == 0 {
		classes = []string{reconcile.Drift}
	}
	res, err := r.api.apply(ctx, id, classes, r.job.applyLocs)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.summary, "\napplied run %s: %d correction entries produced to the ledger (%s%s)\n",
		res.RunID, res.Applied.Entries, strings.Join(res.Applied.Classes, ","), locationsNote(res.Applied.Locations))
	return nil
}

// writeReport pages through the run's exceptions into the report file.
func (r *reconciler) writeReport(ctx context.Context, id string) (err error) {
	w := r.stdout
	path := r.job.report
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
	n, run, err := r.pageExceptions(ctx, id, rep)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if path != "-" {
		fmt.Fprintf(r.summary, "\nwrote %d exceptions to %s\n", n, path)
	}
	var left int64
	for _, k := range run.Unstored {
		left += k
	}
	if left > 0 {
		fmt.Fprintf(r.summary, "the report lacks %d exceptions the run counted but did not store (the cap of a run)\n", left)
	}
	return nil
}

// pageExceptions writes every exception of run id to rep; it returns how
// many, and the run as the first page had it.
func (r *reconciler) pageExceptions(ctx context.Context, id string, rep reportWriter) (int64, reconcile.Run, error) {
	var n int64
	var run reconcile.Run
	cursor := ""
	for first := true; ; first = false {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p, err := r.api.get(ctx, id, q)
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
	begin(run *reconcile.Run) error
	exception(x *reconcile.Exception) error
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

func (c *csvReport) begin(*reconcile.Run) error {
	return c.w.Write([]string{"line", "sku", "location", "class", "snapshot_quantity", "ledger_quantity", "difference", "detail"})
}

func (c *csvReport) exception(x *reconcile.Exception) error {
	c.row = [8]string{"", x.SKU, x.Location, x.Class, reconcile.FormatQuantity(x.SnapshotQuantity),
		reconcile.FormatQuantity(x.LedgerQuantity), "", x.Detail}
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

func (j *jsonReport) begin(run *reconcile.Run) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(j.w, "{\"run\":%s,\"exceptions\":[", b)
	return err
}

func (j *jsonReport) exception(x *reconcile.Exception) error {
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

// meter shows how far a count has come: a bar on a terminal, a line per
// tenth elsewhere (logs keep a trace without a line per update), nothing
// when turned off or when there is nothing to count.
type meter struct {
	bar    *progressbar.ProgressBar
	w      io.Writer
	label  string
	max    int64
	tenths int64
	off    bool
}

func newMeter(w io.Writer, on bool, max int64, desc, label string) *meter {
	m := &meter{w: w, label: label, max: max, off: !on || max <= 0}
	if m.off || !isTerminalWriter(w) {
		return m
	}
	m.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("lines"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	return m
}

func (m *meter) set(n int64) {
	switch {
	case m.off:
	case m.bar != nil:
		_ = m.bar.Set64(n)
	default:
		if t := n * 10 / m.max; t > m.tenths && t < 10 {
			m.tenths = t
			fmt.Fprintf(m.w, "%d%%: %d of %d %s\n", t*10, n, m.max, m.label)
		}
	}
}

// done ends the display, leaving what it reached.
func (m *meter) done() {
	if m.bar != nil && !m.bar.IsFinished() {
		_ = m.bar.Exit()
	}
	m.bar, m.off = nil, true
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// reconAPI calls the service's reconciliation endpoints.
type reconAPI struct {
	base string
	key  string
	hc   *http.Client
}

// runPage is one answer of GET /v1/reconciliations/{id}.
type runPage struct {
	Run        reconcile.Run         `json:"run"`
	Exceptions []reconcile.Exception `json:"exceptions"`
	NextCursor string                `json:"next_cursor"`
}

// applyResult is the answer of POST /v1/reconciliations/{id}/apply.
type applyResult struct {
	RunID   string            `json:"run_id"`
	Applied reconcile.Applied `json:"applied"`
}

// apiError is an answer other than 200, with its problem details.
type apiError struct {
	Status int
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.Status, e.Title)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

func (a *reconAPI) get(ctx context.Context, id string, q url.Values) (runPage, error) {
	var p runPage
	err := a.call(ctx, http.MethodGet, "/v1/reconciliations/"+url.PathEscape(id)+"?"+q.Encode(), nil, &p)
	return p, err
}

func (a *reconAPI) apply(ctx context.Context, id string, classes, locs []string) (applyResult, error) {
	body := struct {
		Classes   []string `json:"classes,omitempty"`
		Locations []string `json:"locations,omitempty"`
	}{classes, locs}
	var res applyResult
	err := a.call(ctx, http.MethodPost, "/v1/reconciliations/"+url.PathEscape(id)+"/apply", body, &res)
	return res, err
}

// call sends a request and decodes a 200 into out; any other status comes
// back as *apiError, a failure to reach the API as a plain error.
func (a *reconAPI) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said below, without the query
		}
		return fmt.Errorf("API %s is not reachable: %w", a.base, err)
	}
	defer func() { _ = resp.Body.Close() }() // read to its end or given up on: nothing to do on failure
	if resp.StatusCode != http.StatusOK {
		return problemOf(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
	}
	return nil
}

// problemOf reads an error answer's problem details, or says what came.
func problemOf(resp *http.Response) *apiError {
	e := &apiError{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, e) != nil || e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
		if e.Detail == "" {
			e.Detail = strings.TrimSpace(string(b))
			if len(e.Detail) > 200 {
				e.Detail = e.Detail[:200] + "…"
			}
		}
	}
	return e
}
