package config

import (
	"errors"
	"flag"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEveryOptionInOneGroup: an option outside every group would be no
// command's flag.
func TestEveryOptionInOneGroup(t *testing.T) {
	var c Config
	seen := map[string]bool{}
	for _, o := range c.options() {
		if bits.OnesCount(uint(o.group)) != 1 || o.group&AllOptions == 0 {
			t.Errorf("-%s: group %b is not one of the groups", o.flag, o.group)
		}
		if seen[o.flag] {
			t.Errorf("-%s: listed twice", o.flag)
		}
		seen[o.flag] = true
	}
}

func flagNames(fs *flag.FlagSet) map[string]bool {
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

func TestLoaderRegistersTheFlagsOfItsGroups(t *testing.T) {
	var c Config
	all := NewLoader("serve", io.Discard)
	every := NewLoader("serve", io.Discard, AllOptions)
	for _, o := range c.options() {
		for _, l := range []*Loader{all, every} {
			if l.FlagSet.Lookup(o.flag) == nil {
				t.Errorf("-%s: not registered for every group", o.flag)
			}
		}
	}
	if !all.Stores || !every.Stores {
		t.Error("a command with the Redis options should need both stores")
	}

	l := NewLoader("simulate", io.Discard, KafkaOptions, TopicOptions|RecordOptions, LogOptions)
	got := flagNames(l.FlagSet)
	for _, want := range []string{"config", "kafka-brokers", "kafka-tls-ca", "kafka-sasl-mechanism", "topic-orders", "schema-registry-url", "max-record-bytes", "log-level"} {
		if !got[want] {
			t.Errorf("-%s: not registered", want)
		}
	}
	for _, not := range []string{"kafka-normalizer-group", "kafka-partitions", "redis-addr", "redis-tls", "http-addr", "api-keys", "lookup-cache", "folder-cache-skus", "reconcile-tolerance", "otlp-endpoint", "jaeger-ui-url"} {
		if got[not] {
			t.Errorf("-%s: registered, but in none of the groups given", not)
		}
	}
	if l.Stores {
		t.Error("a command without the Redis options should not need Redis")
	}
}

// TestSettingsOutsideTheGroups: a command refuses the flag of a setting it
// does not take, but its file and environment may still set it, since one
// file and one environment serve every command.
func TestSettingsOutsideTheGroups(t *testing.T) {
	groups := []OptionGroup{KafkaOptions, TopicOptions, RecordOptions, LogOptions}
	_, err := NewLoader("simulate", io.Discard, groups...).Load([]string{"-api-keys", "0123456789abcdef=read"}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -api-keys") {
		t.Fatalf("error %v, want the flag refused", err)
	}

	file := filepath.Join(t.TempDir(), "stockflow.yaml")
	if err := os.WriteFile(file, []byte(`
kafka:
  brokers: [127.0.0.1:9092]
  folder_group: folder-b
redis:
  addr: 127.0.0.1:6379
  lookup_cache: false
http_addr: 127.0.0.1:9000
folder_cache_skus: 1000
api:
  keys: 0123456789abcdef=read,hold
  hold_timeout: 2s
reconcile:
  tolerance: "*=2"
otlp_endpoint: http://127.0.0.1:4318
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := NewLoader("simulate", io.Discard, groups...).Load([]string{"-config", file, "-log-level", "debug"},
		env(map[string]string{"STOCKFLOW_SHUTDOWN_GRACE": "3s", "STOCKFLOW_RATE_LIMIT": "10"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:9000" || cfg.API.HoldTimeout != 2*time.Second || cfg.ShutdownGrace != 3*time.Second || cfg.API.RateLimit != 10 {
		t.Errorf("settings of other commands lost: %+v", cfg)
	}
	if cfg.LogLevel != "debug" || cfg.Kafka.Brokers[0] != "127.0.0.1:9092" {
		t.Errorf("own settings lost: %+v", cfg)
	}

	// Without the Redis options, brokers alone are no problem.
	if _, err := NewLoader("simulate", io.Discard, groups...).Load([]string{"-kafka-brokers", "127.0.0.1:9092"}, env(nil)); err != nil {
		t.Fatal(err)
	}
	// With them, Kafka and Redis go together.
	_, err = NewLoader("verify", io.Discard, KafkaOptions, RedisOptions).Load([]string{"-kafka-brokers", "127.0.0.1:9092"}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "redis addr: required") {
		t.Fatalf("error %v, want Redis required", err)
	}
}

func TestUsageShowsDefaults(t *testing.T) {
	var out strings.Builder
	l := NewLoader("serve", &out)
	if _, err := l.Load([]string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("error %v, want flag.ErrHelp", err)
	}
	usage := map[string]string{} // flag name → its usage lines
	var name string
	for _, line := range strings.Split(out.String(), "\n") {
		if f, ok := strings.CutPrefix(line, "  -"); ok {
			name, _, _ = strings.Cut(f, " ")
		}
		usage[name] += line + "\n"
	}
	for flag, want := range map[string]string{
		"hold-timeout":          "(env STOCKFLOW_HOLD_TIMEOUT) (default 5s)\n",
		"reconcile-end-timeout": "(default 10m)\n",
		"reconcile-retention":   "(default 720h)\n",
		"kafka-partitions":      "(default 12)\n",
		"kafka-create-topics":   "(default true)\n",
		"trace-sample-ratio":    "(default 1)\n",
		"rate-limit":            "(0: off) (env STOCKFLOW_RATE_LIMIT) (default 5000)\n",
		"http-addr":             "(default 127.0.0.1:8080)\n",
		"supply-policy":         "(default asn,acknowledged,released)\n",
	} {
		if !strings.HasSuffix(usage[flag], want) {
			t.Errorf("-%s: usage does not end in %q:\n%s", flag, want, usage[flag])
		}
	}
	// A zero default is not shown.
	for _, flag := range []string{"kafka-brokers", "kafka-tls", "redis-addr", "redis-db", "api-keys", "reconcile-auto-apply-units", "trusted-proxies"} {
		if strings.Contains(usage[flag], "(default") {
			t.Errorf("-%s: shows a default:\n%s", flag, usage[flag])
		}
	}

	// Every default comes from Default(), and a usage text does not say it again.
	d := Default()
	for _, o := range d.options() {
		def := l.FlagSet.Lookup(o.flag).DefValue
		if def != defaultText(o.ptr) {
			t.Errorf("-%s: default %q, Default() has %q", o.flag, def, defaultText(o.ptr))
		}
		if def != "" && strings.Contains(o.usage, "default") {
			t.Errorf("-%s: usage %q speaks of a default, and -h shows %q after it", o.flag, o.usage, def)
		}
	}
}

func TestDefaultText(t *testing.T) {
	for _, tc := range []struct {
		ptr  any
		want string
	}{
		{ptrTo("x"), "x"}, {new(string), ""},
		{ptrTo(3), "3"}, {new(int), ""},
		{ptrTo(true), "true"}, {new(bool), ""},
		{ptrTo(0.5), "0.5"}, {ptrTo(5000.0), "5000"}, {new(float64), ""},
		{ptrTo([]string{"a", "b"}), "a,b"}, {new([]string), ""},
		{ptrTo(20 * time.Second), "20s"},
		{ptrTo(10 * time.Minute), "10m"},
		{ptrTo(90 * time.Minute), "1h30m"},
		{ptrTo(30 * 24 * time.Hour), "720h"},
		{ptrTo(1500 * time.Millisecond), "1.5s"},
		{ptrTo(time.Duration(0)), ""},
	} {
		if got := defaultText(tc.ptr); got != tc.want {
			t.Errorf("defaultText(%T %v) = %q, want %q", tc.ptr, tc.ptr, got, tc.want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestEnvStartsTheSameConfiguration: a process given Env() loads the
// configuration it came from, settings turned off included.
func TestEnvStartsTheSameConfiguration(t *testing.T) {
	cfg := Default()
	cfg.Kafka.Brokers = []string{"10.0.0.1:9092", "10.0.0.2:9092"}
	cfg.Redis.Addr = "10.0.0.3:6379"
	cfg.Topics.Ledger = "bench.ledger.x"
	cfg.Commitments = false           // true by default
	cfg.Kafka.CreateTopics = false    // true by default
	cfg.Redis.LookupCacheEntries = 17 // 200000 by default
	cfg.API.RateLimit = 0             // 5000 by default
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.ShutdownGrace = 3 * time.Second
	cfg.TraceSampleRatio = 0.25
	env := map[string]string{}
	for _, kv := range cfg.Env() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "STOCKFLOW_") {
			t.Fatalf("%q is not STOCKFLOW_NAME=value", kv)
		}
		env[k] = v
	}
	got, err := NewLoader("serve", io.Discard).Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := cfg
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	wantText := map[string]string{}
	for _, o := range want.options() {
		wantText[o.flag] = defaultText(o.ptr)
	}
	for _, o := range got.options() {
		if v := defaultText(o.ptr); v != wantText[o.flag] {
			t.Errorf("-%s: loaded %q, want %q", o.flag, v, wantText[o.flag])
		}
	}
	if got.Commitments || got.Kafka.CreateTopics || got.API.RateLimit != 0 {
		t.Errorf("settings turned off came back on: commitments %v, create topics %v, rate limit %v", got.Commitments, got.Kafka.CreateTopics, got.API.RateLimit)
	}
}
