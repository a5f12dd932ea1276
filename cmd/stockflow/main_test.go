package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/pkg/config"
)

// helpFlags runs `stockflow args... -h` and returns the flags it lists,
// each with its usage.
func helpFlags(t *testing.T, args ...string) map[string]string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "-h"), &stdout, &stderr); code != exitOK {
		t.Fatalf("%v -h: exit code %d\n%s", args, code, stderr.String())
	}
	flags := map[string]string{}
	var name string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if f, ok := strings.CutPrefix(line, "  -"); ok {
			name, _, _ = strings.Cut(f, " ")
		}
		if name != "" {
			flags[name] += line + "\n"
		}
	}
	if len(flags) == 0 {
		t.Fatalf("%v -h lists no flags:\n%s", args, stderr.String())
	}
	return flags
}

// everyOption is the flag of every configuration setting (pkg/config's
// tests check that AllOptions covers them all).
func everyOption() []string {
	var names []string
	config.NewLoader("all", io.Discard, config.AllOptions).FlagSet.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// serverOnly are flags of settings only the service reads.
var serverOnly = []string{
	"api-keys", "http-addr", "groups", "hold-timeout", "lookup-cache", "folder-cache-skus", "shutdown-grace",
	"ready-max-lag", "normalizer-txn-timeout", "kafka-normalizer-group", "kafka-create-topics", "kafka-partitions",
	"reconcile-tolerance", "otlp-endpoint", "jaeger-ui-url", "trace-sample-ratio",
}

func TestHelpListsTheFlagsACommandUses(t *testing.T) {
	kafka := []string{"config", "kafka-brokers", "kafka-client-id", "kafka-tls", "kafka-tls-ca", "kafka-sasl-mechanism", "kafka-sasl-password-file"}
	redis := []string{"redis-addr", "redis-cluster-addrs", "redis-password-file", "redis-tls", "redis-key-prefix"}
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"simulate"}, append([]string{"topic-orders", "schema-registry-url", "max-record-bytes", "log-level", "seed", "rate"}, kafka...),
			append([]string{"redis-addr", "redis-key-prefix"}, serverOnly...)},
		{[]string{"dlq", "list"}, append([]string{"topic-dlq", "log-level", "class", "offsets"}, kafka...),
			append([]string{"redis-addr", "schema-registry-url"}, serverOnly...)},
		{[]string{"dlq", "replay"}, append([]string{"topic-dlq", "topic-orders", "schema-registry-url", "max-record-bytes", "class"}, kafka...),
			append([]string{"redis-addr"}, serverOnly...)},
		{[]string{"tail"}, append([]string{"topic-ledger", "topic-availability", "schema-registry-url", "log-format", "from-beginning", "sku"}, kafka...),
			append([]string{"redis-addr"}, serverOnly...)},
		{[]string{"verify"}, append(append([]string{"topic-ledger", "topic-dlq", "schema-registry-url", "log-level", "timeout"}, kafka...), redis...),
			serverOnly},
		// -http-addr is where reconcile calls the API without -api.
		{[]string{"reconcile"}, append([]string{"http-addr", "topic-snapshots", "schema-registry-url", "max-record-bytes", "file", "api-key"}, kafka...),
			[]string{"redis-addr", "api-keys", "groups", "reconcile-tolerance", "reconcile-max-lines", "log-level", "folder-cache-skus", "otlp-endpoint"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got := helpFlags(t, tc.args...)
			for _, f := range tc.want {
				if got[f] == "" {
					t.Errorf("-%s: not listed", f)
				}
			}
			for _, f := range tc.not {
				if got[f] != "" {
					t.Errorf("-%s: listed, but the command does not use it", f)
				}
			}
		})
	}
}

// TestServeAndBenchTakeEveryOption: they build the whole service.
func TestServeAndBenchTakeEveryOption(t *testing.T) {
	for _, cmd := range []string{"serve", "bench"} {
		got := helpFlags(t, cmd)
		for _, f := range everyOption() {
			if got[f] == "" {
				t.Errorf("%s -h: -%s not listed", cmd, f)
			}
		}
	}
}

func TestHelpShowsDefaults(t *testing.T) {
	serve := helpFlags(t, "serve")
	for f, want := range map[string]string{
		"hold-timeout":          "(default 5s)",
		"shutdown-grace":        "(default 20s)",
		"reconcile-end-timeout": "(default 10m)",
		"http-addr":             "(default 127.0.0.1:8080)",
		"kafka-client-id":       "(default stockflow)",
		"lookup-cache":          "(default true)",
		"embedded-kafka-port":   "(default 19092)",
	} {
		if strings.Count(serve[f], want) != 1 || strings.Count(serve[f], "default") != 1 {
			t.Errorf("serve -h, -%s: want %s once:\n%s", f, want, serve[f])
		}
	}
	for _, f := range []string{"kafka-brokers", "redis-addr", "api-keys", "kafka-tls"} {
		if strings.Contains(serve[f], "(default") {
			t.Errorf("serve -h, -%s: an empty default shown:\n%s", f, serve[f])
		}
	}
	if tail := helpFlags(t, "tail"); !strings.Contains(tail["topic-dlq"], "(default stockflow.dlq.v1)") {
		t.Errorf("tail -h, -topic-dlq:\n%s", tail["topic-dlq"])
	}
}

// TestRefusesAnotherCommandsFlag: a command's flags are those it uses.
func TestRefusesAnotherCommandsFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"simulate", "-api-keys", "0123456789abcdef=read"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr.String(), "flag provided but not defined: -api-keys") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// TestSimulateLoadsTheServiceFile: one file serves every command, so
// simulate loads a file holding settings only the service reads.
func TestSimulateLoadsTheServiceFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stockflow.yaml")
	if err := os.WriteFile(file, []byte(`
kafka:
  brokers: [127.0.0.1:1]
  folder_group: folder-b
  create_topics: false
redis:
  addr: 127.0.0.1:1
  key_prefix: sfx
  lookup_cache: false
http_addr: 127.0.0.1:9000
folder_cache_skus: 1000
shutdown_grace: 3s
api:
  keys: 0123456789abcdef=read,hold
  hold_timeout: 2s
reconcile:
  tolerance: "*=2"
otlp_endpoint: http://127.0.0.1:4318
log_format: text
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// At this rate nothing is due before -duration ends, so nothing goes to
	// the unreachable broker.
	var stdout, stderr bytes.Buffer
	code := run([]string{"simulate", "-config", file, "-skip-catalog", "-rate", "0.001", "-duration", "20ms"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "produced 0 events") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}
