package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

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

// TestReconcileExitCodes runs the command against an API that knows a
// completed and an incomplete run: 0 for the completed one, 1 for the
// incomplete one and for a run the API does not know, the key taken from
// the environment.
func TestReconcileExitCodes(t *testing.T) {
	runs := map[string]reconcile.Run{
		"R1": {ID: "R1", Status: reconcile.StatusCompleted, Counts: map[string]int64{reconcile.Match: 3}},
		"R2": {ID: "R2", Status: reconcile.StatusIncomplete, Reason: "the end never came"},
	}
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		run, ok := runs[strings.TrimPrefix(r.URL.Path, "/v1/reconciliations/")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"title": "run not found", "status": 404})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"run": run, "exceptions": []reconcile.Exception{}})
	}))
	t.Cleanup(srv.Close)
	t.Setenv("STOCKFLOW_API_KEY", "secret-key")

	for _, tc := range []struct {
		run         string
		code        int
		out, errOut string
	}{
		{"R1", exitOK, "status     completed", ""},
		{"R2", exitFailed, "reason     the end never came", ""},
		{"NOPE", exitFailed, "", "stockflow reconcile: HTTP 404 run not found"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"reconcile", "-run", tc.run, "-api", srv.URL}, &stdout, &stderr); code != tc.code {
			t.Errorf("run %s: exit code %d, want %d; stderr:\n%s", tc.run, code, tc.code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.errOut) {
			t.Errorf("run %s: stdout\n%s\nstderr\n%s", tc.run, stdout.String(), stderr.String())
		}
	}
	for _, a := range auth {
		if a != "Bearer secret-key" {
			t.Errorf("Authorization %q, want the key from STOCKFLOW_API_KEY", a)
		}
	}
}
