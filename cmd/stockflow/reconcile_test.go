package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/reconcile"
)

func TestReconcileUsageErrors(t *testing.T) {
	file := []string{"-file", "s.csv", "-source", "ERP-EAST", "-as-of", "2026-11-27T06:00:00Z"}
	with := func(extra ...string) []string { return append(append([]string{"reconcile"}, file...), extra...) }
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing", []string{"reconcile"}, "give -file to send a snapshot or -run"},
		{"both", with("-run", "R1"), "-file and -run do not go together"},
		{"no source", []string{"reconcile", "-file", "s.csv", "-as-of", "2026-11-27T06:00:00Z"}, "-source is required"},
		{"bad source", []string{"reconcile", "-file", "s.csv", "-source", "ERP EAST", "-as-of", "2026-11-27T06:00:00Z"}, `-source: "ERP EAST" is not an id`},
		{"no as-of", []string{"reconcile", "-file", "s.csv", "-source", "ERP"}, "-as-of is required"},
		{"bad as-of", []string{"reconcile", "-file", "s.csv", "-source", "ERP", "-as-of", "2026-11-27"}, "not an RFC 3339 time"},
		{"bad location", with("-locations", "DC-EAST,DC WEST"), `-locations: "DC WEST" is not an id`},
		{"report extension", with("-report", "out.txt"), `does not end in .csv or .json`},
		{"apply flags without apply", with("-apply-classes", "drift"), "go with -apply"},
		{"class not correctable", with("-apply", "-apply-classes", "drift,match"), `"match" cannot be applied`},
		{"no wait with report", with("-no-wait", "-report", "r.csv"), "do not go with -no-wait"},
		{"run with file flags", []string{"reconcile", "-run", "R1", "-as-of", "2026-11-27T06:00:00Z"}, "-as-of goes with -file"},
		{"bad run id", []string{"reconcile", "-run", "R/1"}, `-run: "R/1" is not an id`},
		{"argument", with("extra"), `unexpected argument "extra"`},
		{"wait", with("-wait", "0s"), "-wait: 0s is not a positive duration"},
		{"api", with("-api", "ftp://host"), `-api: "ftp://host" is not an http or https URL`},
		{"max line bytes", with("-max-line-bytes", "10"), "-max-line-bytes: 10 is outside 64.."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}

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
	runs       map[string]func() reconcile.Run
	exceptions []reconcile.Exception
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
		if run := get(); run.Status != reconcile.StatusCompleted {
			f.problem(w, 409, "run not applicable", "run "+id+" is "+run.Status+"; only a completed run can be applied")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"run_id": id, "applied": reconcile.Applied{At: time.Now(), By: "admin", Classes: []string{"drift"}, Entries: 2}})
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

func (f *fakeRuns) set(id string, get func() reconcile.Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[id] = get
}

func newFakeRuns(t *testing.T) (*fakeRuns, *httptest.Server) {
	f := &fakeRuns{t: t, runs: map[string]func() reconcile.Run{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func q(n int64) *int64 { return &n }

var asOf = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

func completedRun(id string) reconcile.Run {
	return reconcile.Run{ID: id, Source: "ERP-EAST", Locations: []string{"DC-EAST"}, AsOf: asOf, Status: reconcile.StatusCompleted,
		ExpectedLines: 10, Lines: 10, Counts: map[string]int64{reconcile.Match: 7, reconcile.Drift: 2, reconcile.InvalidLine: 1}}
}

var exceptions = []reconcile.Exception{
	{SKU: "A", Location: "DC-EAST", Class: reconcile.Drift, SnapshotQuantity: q(5), LedgerQuantity: q(7), Difference: -2, Line: 2},
	{SKU: "B", Location: "DC-EAST", Class: reconcile.MissingInSnapshot, LedgerQuantity: q(3), Difference: -3},
	{Class: reconcile.InvalidLine, Line: 9, Detail: `quantity "x, y" is not an integer`},
}

// TestReconcileRunReportAndApply shows a run, writes its exceptions as CSV
// and JSON over several pages, and applies it with the key from the
// environment.
func TestReconcileRunReportAndApply(t *testing.T) {
	f, srv := newFakeRuns(t)
	f.set("R1", func() reconcile.Run { return completedRun("R1") })
	f.exceptions = exceptions
	t.Setenv("STOCKFLOW_API_KEY", "secret-key")
	dir := t.TempDir()

	var stdout, stderr bytes.Buffer
	code := run([]string{"reconcile", "-run", "R1", "-api", srv.URL, "-report", filepath.Join(dir, "r.csv"), "-apply"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
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
			t.Errorf("Authorization %q, want the key from STOCKFLOW_API_KEY", a)
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
	if code := run([]string{"reconcile", "-run", "R1", "-api", srv.URL, "-report", filepath.Join(dir, "r.json")}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	b, _ = os.ReadFile(filepath.Join(dir, "r.json"))
	var rep struct {
		Run        reconcile.Run         `json:"run"`
		Exceptions []reconcile.Exception `json:"exceptions"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, b)
	}
	if rep.Run.ID != "R1" || len(rep.Exceptions) != 3 || rep.Exceptions[2].Detail != exceptions[2].Detail {
		t.Errorf("JSON report: %+v", rep)
	}

	// To stdout, the report keeps stdout to itself.
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"reconcile", "-run", "R1", "-api", srv.URL, "-report", "-"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	if stdout.String() != wantCSV || !strings.Contains(stderr.String(), "status     completed") {
		t.Errorf("-report -: stdout\n%s\nstderr\n%s", stdout.String(), stderr.String())
	}
}

func TestReconcileRunFailures(t *testing.T) {
	f, srv := newFakeRuns(t)
	f.set("R2", func() reconcile.Run {
		r := completedRun("R2")
		r.Status, r.Reason, r.Lines = reconcile.StatusIncomplete, "the end record says 10 lines were sent, 8 arrived", 8
		return r
	})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"reconcile", "-run", "R2", "-api", srv.URL, "-apply"}, &stdout, &stderr); code != exitFailed {
		t.Errorf("incomplete run: exit code %d, want %d", code, exitFailed)
	}
	if !strings.Contains(stdout.String(), "reason     the end record says 10 lines were sent, 8 arrived") {
		t.Errorf("stdout does not give the reason:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "apply: HTTP 409 run not applicable: run R2 is incomplete; only a completed run can be applied") {
		t.Errorf("stderr does not give the server's problem:\n%s", stderr.String())
	}

	stderr.Reset()
	if code := run([]string{"reconcile", "-run", "NOPE", "-api", srv.URL}, &stdout, &stderr); code != exitFailed {
		t.Errorf("unknown run: exit code %d, want %d", code, exitFailed)
	}
	if !strings.Contains(stderr.String(), "HTTP 404 run not found: no reconciliation run NOPE") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// A run that stored only some of its exceptions says so in the summary,
// and the report says what it lacks.
func TestReconcileRunTruncated(t *testing.T) {
	f, srv := newFakeRuns(t)
	f.set("R3", func() reconcile.Run {
		r := completedRun("R3")
		r.Counts[reconcile.Drift] = 4
		r.Unstored = map[string]int64{reconcile.Drift: 2}
		r.Truncated = "truncated: 3 of the run's 5 exceptions are stored, the cap of a run"
		return r
	})
	f.exceptions = exceptions
	var stdout, stderr bytes.Buffer
	if code := run([]string{"reconcile", "-run", "R3", "-api", srv.URL, "-report", filepath.Join(t.TempDir(), "r.csv")}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"stored     truncated: 3 of the run's 5 exceptions are stored", "wrote 3 exceptions to",
		"the report lacks 2 exceptions the run counted but did not store"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout does not say %q:\n%s", want, stdout.String())
		}
	}
}

// TestReconcileFile sends a file to an in-process Kafka, follows its run
// to completion, and sends it again: the second time it is the same run,
// and nothing is produced.
func TestReconcileFile(t *testing.T) {
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
	info, err := scanSnapshotFile(path, reconcile.FileLimits{})
	if err != nil {
		t.Fatal(err)
	}
	id := reconcile.SnapshotID("ERP-EAST", asOf, info.SHA256)

	f, srv := newFakeRuns(t)
	args := []string{"reconcile", "-file", path, "-source", "ERP-EAST", "-as-of", "2026-11-27T07:00:00+01:00",
		"-kafka-brokers", broker, "-api", srv.URL, "-no-progress"}

	// The run appears once the snapshot is sent: running, then completed.
	polls := 0
	go func() {
		for range 200 {
			time.Sleep(20 * time.Millisecond)
			if n := countRecords(t, broker, topic); n == 1003 {
				f.set(id, func() reconcile.Run {
					polls++
					r := completedRun(id)
					if polls < 3 {
						r.Status, r.Lines = reconcile.StatusRunning, int64(polls*400)
					}
					r.ExpectedLines = 1001
					return r
				})
				return
			}
		}
	}()
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
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
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("again: exit code %d; stderr:\n%s", code, stderr.String())
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
	args[2] = other
	stderr.Reset()
	if code := run(args, &stdout, &stderr); code != exitFailed || !strings.Contains(stderr.String(), "the API is needed to follow the run") {
		t.Errorf("API down: exit code %d; stderr:\n%s", code, stderr.String())
	}
	stdout.Reset()
	if code := run(append(args, "-no-wait"), &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "follow its run with") {
		t.Errorf("API down, -no-wait: exit code %d; stderr:\n%s", code, stderr.String())
	}
	if n := countRecords(t, broker, topic); n != 1006 {
		t.Errorf("%d records on the topic, want 1006", n)
	}
}

// A file whose record runs past -max-line-bytes (a quote never closed
// makes the rest of the file one record) stops the command before
// anything is sent, naming the line.
func TestReconcileFileRecordLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.csv")
	body := "sku,location,quantity\nA,DC-EAST,1\nB,\"DC-EAST,2\n" + strings.Repeat("C,DC-EAST,3\n", 1000)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"reconcile", "-file", path, "-source", "ERP", "-as-of", "2026-11-27T06:00:00Z", "-api", "http://127.0.0.1:1",
		"-kafka-brokers", "127.0.0.1:1", "-no-progress", "-max-line-bytes", "4096"}
	if code := run(args, &stdout, &stderr); code != exitFailed {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, exitFailed, stderr.String())
	}
	for _, want := range []string{"snap.csv: snapshot file: line 3: the record starting on this line runs on past line", "raise -max-line-bytes from 4096"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
		}
	}
	// Under a larger limit the same file is read to its end: the quote
	// left open is then the error it always was.
	stderr.Reset()
	args[len(args)-1] = "65536"
	if code := run(args, &stdout, &stderr); code != exitFailed || !strings.Contains(stderr.String(), "lines 3 to 1003 were read as one field") {
		t.Errorf("exit code %d; stderr:\n%s", code, stderr.String())
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
