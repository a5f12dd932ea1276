package config

import (
	"io"
	"strings"
	"testing"
)

// The per-run caps on a snapshot's lines and a run's stored exceptions
// default to 1,000,000 and 100,000, take flags and the environment, and
// refuse what would switch them off.
func TestReconcileCaps(t *testing.T) {
	for _, tc := range []struct {
		name            string
		args            []string
		env             map[string]string
		lines, excepted int
		bad             string
	}{
		{name: "defaults", lines: 1_000_000, excepted: 100_000},
		{name: "flags", args: []string{"-reconcile-max-lines", "5000", "-reconcile-max-exceptions", "200"}, lines: 5000, excepted: 200},
		{name: "env", env: map[string]string{"STOCKFLOW_RECONCILE_MAX_EXCEPTIONS": "7"}, lines: 1_000_000, excepted: 7},
		{name: "a line cap a run could not hold in memory", args: []string{"-reconcile-max-lines", "20000000"}, bad: "reconcile max lines"},
		{name: "no line cap", args: []string{"-reconcile-max-lines", "0"}, bad: "reconcile max lines"},
		{name: "no exception cap", args: []string{"-reconcile-max-exceptions", "-1"}, bad: "reconcile max exceptions"},
		{name: "an exception cap Redis would not hold", args: []string{"-reconcile-max-exceptions", "50000000"}, bad: "reconcile max exceptions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := NewLoader("serve", io.Discard).Load(tc.args, env(tc.env))
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("got %v, want an error naming %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Reconcile.MaxLines != tc.lines || cfg.Reconcile.MaxExceptions != tc.excepted {
				t.Fatalf("max lines %d, max exceptions %d; want %d, %d", cfg.Reconcile.MaxLines, cfg.Reconcile.MaxExceptions, tc.lines, tc.excepted)
			}
		})
	}
}
