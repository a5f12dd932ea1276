package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/events"
)

func TestAPIBase(t *testing.T) {
	for _, tc := range []struct{ api, addr, want string }{
		{"", "127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"", ":9090", "http://127.0.0.1:9090"},
		{"", "0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"", "[::]:8080", "http://127.0.0.1:8080"},
		{"https://stock.example/", "127.0.0.1:8080", "https://stock.example"},
	} {
		if got, err := apiBase(tc.api, tc.addr); err != nil || got != tc.want {
			t.Errorf("apiBase(%q, %q) = %q, %v; want %q", tc.api, tc.addr, got, err, tc.want)
		}
	}
}

// fakeRuns answers the reconciliation endpoints from runs in memory,
// two exceptions a page.
type fakeRuns struct {
	t  *testing.T
	mu sync.Mutex
	// runs by id; a function so a test can make a run progress.
	runs       map[string]func() Run
	exceptions []Exception
	auth       []string
	applied    []string // request bodies
}

func (f *fakeRuns) problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "status": status, "detail": detail})
}

func (f *fakeRuns) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/reconciliations/")
	id, apply := strings.CutSuffix(rest, "/apply")
	get := f.runs[id]
	switch {
	case !ok:
		f.problem(w, 404, "Not Found", "")
	case get == nil:
		f.problem(w, 404, "run not found", "no reconciliation run "+id)
	case apply && r.Method == http.MethodPost:
		var body bytes.Buffer
		body.ReadFrom(r.Body)
		f.applied = append(f.applied, body.String())
		if run := get(); run.Status != StatusCompleted {
			f.problem(w, 409, "run not applicable", "run "+id+" is "+run.Status+"; only a completed run can be applied")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"run_id": id, "applied": Applied{At: time.Now(), By: "admin", Classes: []string{"drift"}, Entries: 2}})
	case r.Method == http.MethodGet:
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit < 1 || limit > 1000 {
			f.problem(w, 400, "invalid request", "limit")
			return
		}
		cur, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		end := min(cur+2, len(f.exceptions))
		next := ""
		if end < len(f.exceptions) {
			next = strconv.Itoa(end)
		}
		json.NewEncoder(w).Encode(map[string]any{"run": get(), "exceptions": f.exceptions[cur:end], "next_cursor": next})
	default:
		f.problem(w, 405, "Method Not Allowed", "")
	}
}

func (f *fakeRuns) set(id string, get func() Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[id] = get
}

func newFakeRuns(t *testing.T) (*fakeRuns, *httptest.Server) {
	f := &fakeRuns{t: t, runs: map[string]func() Run{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func q(n int64) *int64 { return &n }

var cliAsOf = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

func completedRun(id string) Run {
	return Run{ID: id, Source: "ERP-EAST", Locations: []string{"DC-EAST"}, AsOf: cliAsOf, Status: StatusCompleted,
		ExpectedLines: 10, Lines: 10, Counts: map[string]int64{Match: 7, Drift: 2, InvalidLine: 1}}
}

var cliExceptions = []Exception{
	{SKU: "A", Location: "DC-EAST", Class: Drift, SnapshotQuantity: q(5), LedgerQuantity: q(7), Difference: -2, Line: 2},
	{SKU: "B", Location: "DC-EAST", Class: MissingInSnapshot, LedgerQuantity: q(3), Difference: -3},
	{Class: InvalidLine, Line: 9, Detail: `quantity "x, y" is not an integer`},
}

// runCLI carries out the command the flags ask for, the defaults of
// -wait and -max-line-bytes filled in, producing to brokers, and says
// whether it succeeded.
func runCLI(t *testing.T, f CLIFlags, stdout, stderr io.Writer, brokers ...string) bool {
	t.Helper()
	if f.Wait == 0 {
		f.Wait = 10 * time.Minute
	}
	if f.MaxLineBytes == 0 {
		f.MaxLineBytes = DefaultMaxRecordBytes
	}
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cli, err := NewCLI(f, cfg, stdout, stderr)
	if err != nil {
		t.Fatalf("flags %+v: %v", f, err)
	}
	return cli.Do(context.Background())
}

// TestCLIRunReportAndApply shows a run, writes its exceptions as CSV and
// JSON over several pages, and applies it with the key given.
func TestCLIRunReportAndApply(t *testing.T) {
	f, srv := newFakeRuns(t)
	f.set("R1", func() Run { return completedRun("R1") })
	f.exceptions = cliExceptions
	dir := t.TempDir()

	var stdout, stderr bytes.Buffer
	if !runCLI(t, CLIFlags{Run: "R1", API: srv.URL, APIKey: "secret-key", Report: filepath.Join(dir, "r.csv"), Apply: true}, &stdout, &stderr) {
		t.Fatalf("failed; stderr:\n%s", stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"run        R1", "status     completed", "as of      2026-11-27T06:00:00Z", "lines      10 of 10 expected",
		"match                           7\nwithin_tolerance                0\ndrift                           2\nmissing_in_snapshot             0\n" +
			"unknown_to_ledger               0\nsuperseded                      0\ninvalid_line                    1\nexceptions                      3\n",
		"wrote 3 exceptions to", "applied run R1: 2 correction entries"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(stdout.String()+stderr.String(), "secret-key") {
		t.Error("the API key was printed")
	}
	for _, a := range f.auth {
		if a != "Bearer secret-key" {
			t.Errorf("Authorization %q, want the key given", a)
		}
	}
	if len(f.applied) != 1 || f.applied[0] != `{"classes":["drift"]}` {
		t.Errorf("apply requests %q, want the default class", f.applied)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "r.csv"))
	wantCSV := "line,sku,location,class,snapshot_quantity,ledger_quantity,difference,detail\n" +
		"2,A,DC-EAST,drift,5,7,-2,\n" +
		",B,DC-EAST,missing_in_snapshot,,3,-3,\n" +
		"9,,,invalid_line,,,,\"quantity \"\"x, y\"\" is not an integer\"\n"
	if string(b) != wantCSV {
		t.Errorf("CSV report:\n%s\nwant:\n%s", b, wantCSV)
	}

	stdout.Reset()
	if !runCLI(t, CLIFlags{Run: "R1", API: srv.URL, Report: filepath.Join(dir, "r.json")}, &stdout, &stderr) {
		t.Fatalf("failed; stderr:\n%s", stderr.String())
	}
	b, _ = os.ReadFile(filepath.Join(dir, "r.json"))
	var rep struct {
		Run        Run         `json:"run"`
		Exceptions []Exception `json:"exceptions"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, b)
	}
	if rep.Run.ID != "R1" || len(rep.Exceptions) != 3 || rep.Exceptions[2].Detail != cliExceptions[2].Detail {
		t.Errorf("JSON report: %+v", rep)
	}

	// To stdout, the report keeps stdout to itself.
	stdout.Reset()
	stderr.Reset()
	if !runCLI(t, CLIFlags{Run: "R1", API: srv.URL, Report: "-"}, &stdout, &stderr) {
		t.Fatalf("failed; stderr:\n%s", stderr.String())
	}
	if stdout.String() != wantCSV || !strings.Contains(stderr.String(), "status     completed") {
		t.Errorf("-report -: stdout\n%s\nstderr\n%s", stdout.String(), stderr.String())
	}
}

func TestCLIRunFailures(t *testing.T) {
	f, srv := newFakeRuns(t)
	f.set("R2", func() Run {
		r := completedRun("R2")
		r.Status, r.Reason, r.Lines = StatusIncomplete, "the end record says 10 lines were sent, 8 arrived", 8
		return r
	})
	var stdout, stderr bytes.Buffer
	if runCLI(t, CLIFlags{Run: "R2", API: srv.URL, Apply: true}, &stdout, &stderr) {
		t.Error("incomplete run: succeeded")
	}
	if !strings.Contains(stdout.String(), "reason     the end record says 10 lines were sent, 8 arrived") {
		t.Errorf("stdout does not give the reason:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "apply: HTTP 409 run not applicable: run R2 is incomplete; only a completed run can be applied") {
		t.Errorf("stderr does not give the server's problem:\n%s", stderr.String())
	}

	stderr.Reset()
	if runCLI(t, CLIFlags{Run: "NOPE", API: srv.URL}, &stdout, &stderr) {
		t.Error("unknown run: succeeded")
	}
	if !strings.Contains(stderr.String(), "HTTP 404 run not found: no reconciliation run NOPE") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// A run that stored only some of its exceptions says so in the summary,
// and the report says what it lacks.
func TestCLIRunTruncated(t *testing.T) {
	f, srv := newFakeRuns(t)
	f.set("R3", func() Run {
		r := completedRun("R3")
		r.Counts[Drift] = 4
		r.Unstored = map[string]int64{Drift: 2}
		r.Truncated = "truncated: 3 of the run's 5 exceptions are stored, the cap of a run"
		return r
	})
	f.exceptions = cliExceptions
	var stdout, stderr bytes.Buffer
	if !runCLI(t, CLIFlags{Run: "R3", API: srv.URL, Report: filepath.Join(t.TempDir(), "r.csv")}, &stdout, &stderr) {
		t.Fatalf("failed; stderr:\n%s", stderr.String())
	}
	for _, want := range []string{"stored     truncated: 3 of the run's 5 exceptions are stored", "wrote 3 exceptions to",
		"the report lacks 2 exceptions the run counted but did not store"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout does not say %q:\n%s", want, stdout.String())
		}
	}
}

// TestCLIFile sends a file to an in-process Kafka, follows its run
// to completion, and sends it again: the second time it is the same run,
// and nothing is produced.
func TestCLIFile(t *testing.T) {
	const topic = "wms.snapshots.v1"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	broker := c.ListenAddrs()[0]
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.csv")
	var file strings.Builder
	file.WriteString("\uFEFFSKU,Location,Quantity\n")
	for i := range 1000 {
		fmt.Fprintf(&file, "SKU-%d,DC-EAST,%d\n", i, i)
	}
	file.WriteString("SKU-X,DC-WEST,12x\n")
	if err := os.WriteFile(path, []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := scanSnapshotFile(path, FileLimits{})
	if err != nil {
		t.Fatal(err)
	}
	id := SnapshotID("ERP-EAST", cliAsOf, info.SHA256)

	f, srv := newFakeRuns(t)
	flags := CLIFlags{File: path, Source: "ERP-EAST", AsOf: "2026-11-27T07:00:00+01:00", API: srv.URL, NoProgress: true}

	// The run appears once the snapshot is sent: running, then completed.
	polls := 0
	go func() {
		for range 200 {
			time.Sleep(20 * time.Millisecond)
			if n := countRecords(t, broker, topic); n == 1003 {
				f.set(id, func() Run {
					polls++
					r := completedRun(id)
					if polls < 3 {
						r.Status, r.Lines = StatusRunning, int64(polls*400)
					}
					r.ExpectedLines = 1001
					return r
				})
				return
			}
		}
	}()
	var stdout, stderr bytes.Buffer
	if !runCLI(t, flags, &stdout, &stderr, broker) {
		t.Fatalf("failed; stderr:\n%s", stderr.String())
	}
	for _, want := range []string{"1001 lines, 1 location (DC-EAST)", "sent snapshot " + id + ": 1001 lines"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "run        "+id) || !strings.Contains(stdout.String(), "status     completed") {
		t.Errorf("stdout:\n%s", stdout.String())
	}

	stdout.Reset()
	stderr.Reset()
	if !runCLI(t, flags, &stdout, &stderr, broker) {
		t.Fatalf("again: failed; stderr:\n%s", stderr.String())
	}
	if want := "snapshot " + id + " was reconciled before (completed)"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
	}
	if n := countRecords(t, broker, topic); n != 1003 {
		t.Errorf("%d records on the topic after sending the same file again, want 1003", n)
	}

	// Without the API the run cannot be followed: nothing is sent, unless
	// told not to wait.
	srv.Close()
	other := filepath.Join(dir, "other.csv")
	os.WriteFile(other, []byte("sku,location,quantity\nA,DC-EAST,1\n"), 0o644)
	flags.File = other
	stderr.Reset()
	if ok := runCLI(t, flags, &stdout, &stderr, broker); ok || !strings.Contains(stderr.String(), "the API is needed to follow the run") {
		t.Errorf("API down: ok %v; stderr:\n%s", ok, stderr.String())
	}
	stdout.Reset()
	flags.NoWait = true
	if ok := runCLI(t, flags, &stdout, &stderr, broker); !ok || !strings.Contains(stdout.String(), "follow its run with") {
		t.Errorf("API down, -no-wait: ok %v; stderr:\n%s", ok, stderr.String())
	}
	if n := countRecords(t, broker, topic); n != 1006 {
		t.Errorf("%d records on the topic, want 1006", n)
	}
}

// A file whose record runs past -max-line-bytes (a quote never closed
// makes the rest of the file one record) stops the command before
// anything is sent, naming the line.
func TestCLIFileRecordLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.csv")
	body := "sku,location,quantity\nA,DC-EAST,1\nB,\"DC-EAST,2\n" + strings.Repeat("C,DC-EAST,3\n", 1000)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	flags := CLIFlags{File: path, Source: "ERP", AsOf: "2026-11-27T06:00:00Z", API: "http://127.0.0.1:1", NoProgress: true, MaxLineBytes: 4096}
	if runCLI(t, flags, &stdout, &stderr, "127.0.0.1:1") {
		t.Fatalf("succeeded; stderr:\n%s", stderr.String())
	}
	for _, want := range []string{"snap.csv: snapshot file: line 3: the record starting on this line runs on past line", "raise -max-line-bytes from 4096"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
		}
	}
	// Under a larger limit the same file is read to its end: the quote
	// left open is then the error it always was.
	stderr.Reset()
	flags.MaxLineBytes = 65536
	if ok := runCLI(t, flags, &stdout, &stderr, "127.0.0.1:1"); ok || !strings.Contains(stderr.String(), "lines 3 to 1003 were read as one field") {
		t.Errorf("ok %v; stderr:\n%s", ok, stderr.String())
	}
}

// countRecords reads the topic from the start and counts its records,
// checking each decodes.
func countRecords(t *testing.T, broker, topic string) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Error(err)
		return 0
	}
	defer cl.Close()
	codec, _ := events.NewCodec(nil, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	n := 0
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return n
		}
		fs.EachRecord(func(r *kgo.Record) {
			if _, err := codec.Decode(ctx, r.Value); err != nil {
				t.Errorf("record %d: %v", n, err)
			}
			n++
		})
	}
}
