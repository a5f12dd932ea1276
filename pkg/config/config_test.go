package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsAreEmbeddedAndValid(t *testing.T) {
	cfg, err := NewLoader("serve", io.Discard).Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Embedded {
		t.Fatal("no brokers and no Redis should mean embedded mode")
	}
	if cfg.Kafka.Partitions != 12 || cfg.Topics.Ledger != "stockflow.ledger.v1" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestPrecedenceFlagsOverEnvOverFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "stockflow.yaml")
	if err := os.WriteFile(file, []byte(`
kafka:
  brokers: [file:9092]
  partitions: 6
redis:
  addr: file:6379
  db: 2
log_level: warn
http_addr: 127.0.0.1:9000
`), 0o600); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{
		"STOCKFLOW_CONFIG":           file,
		"STOCKFLOW_KAFKA_PARTITIONS": "24",
		"STOCKFLOW_REDIS_ADDR":       "env:6379",
		"STOCKFLOW_SHUTDOWN_GRACE":   "5s",
	})
	cfg, err := NewLoader("serve", io.Discard).Load([]string{"-redis-addr", "flag:6379", "-kafka-brokers", "a:1, b:2"}, e)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Kafka.Brokers, []string{"a:1", "b:2"}) {
		t.Errorf("brokers %v: flag should win", cfg.Kafka.Brokers)
	}
	if cfg.Redis.Addr != "flag:6379" {
		t.Errorf("redis addr %q: flag should win over env and file", cfg.Redis.Addr)
	}
	if cfg.Kafka.Partitions != 24 {
		t.Errorf("partitions %d: env should win over file", cfg.Kafka.Partitions)
	}
	if cfg.Redis.DB != 2 || cfg.LogLevel != "warn" || cfg.HTTPAddr != "127.0.0.1:9000" {
		t.Errorf("file values lost: %+v", cfg)
	}
	if cfg.ShutdownGrace != 5*time.Second {
		t.Errorf("shutdown grace %v", cfg.ShutdownGrace)
	}
	if cfg.Embedded {
		t.Error("brokers and Redis set: not embedded")
	}
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	e := env(map[string]string{
		"STOCKFLOW_KAFKA_PARTITIONS": "many",
		"STOCKFLOW_LOG_LEVEL":        "loud",
	})
	_, err := NewLoader("serve", io.Discard).Load([]string{
		"-kafka-brokers", "nohost", "-redis-db", "99", "-topic-dlq", "orders.v1",
		"-otlp-endpoint", "4318", "-kafka-folder-group", "stockflow-normalizer",
		"-debug-addr", "0.0.0.0:6060",
	}, e)
	if err == nil {
		t.Fatal("accepted an invalid configuration")
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %T is not *config.Error", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"STOCKFLOW_KAFKA_PARTITIONS", "log level", `"nohost" is not host:port`,
		"redis addr: required", "redis db: 99", `topic dlq: "orders.v1" is already the orders topic`,
		"otlp endpoint", "must differ", `debug addr: "0.0.0.0:6060" is not a loopback address`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestUnknownFileKeyIsAnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("kafka:\n  brokerz: [x:1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewLoader("serve", io.Discard).Load([]string{"-config", file}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "brokerz") {
		t.Fatalf("misspelt key not reported: %v", err)
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("schema-registry-url"); got != "STOCKFLOW_SCHEMA_REGISTRY_URL" {
		t.Fatal(got)
	}
	if got := EnvName("otlp-endpoint"); got != "STOCKFLOW_OTLP_ENDPOINT" {
		t.Fatal(got)
	}
}

func TestTrustedProxies(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string // as prefixes
		err  string
	}{
		{"none by default", nil, nil, nil, ""},
		{"addresses and blocks from a flag", []string{"-trusted-proxies", "10.0.0.0/8, 192.168.1.7,fd00::1"}, nil, []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::1/128"}, ""},
		{"from the environment", nil, map[string]string{"STOCKFLOW_TRUSTED_PROXIES": "172.16.0.0/12"}, []string{"172.16.0.0/12"}, ""},
		{"an IPv4-mapped address is IPv4", []string{"-trusted-proxies", "::ffff:10.0.0.1"}, nil, []string{"10.0.0.1/32"}, ""},
		{"not an address", []string{"-trusted-proxies", "proxy.internal"}, nil, nil, `trusted proxies: "proxy.internal" is not an address or a CIDR block`},
		{"host bits set", []string{"-trusted-proxies", "10.1.2.3/8"}, nil, nil, "did you mean 10.0.0.0/8"},
		{"too long a prefix", []string{"-trusted-proxies", "10.0.0.0/33"}, nil, nil, `"10.0.0.0/33" is not an address or a CIDR block`},
		{"a zone", []string{"-trusted-proxies", "fe80::1%eth0"}, nil, nil, "is not an address or a CIDR block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := NewLoader("serve", io.Discard).Load(tc.args, env(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseTrustedProxies(cfg.API.TrustedProxies)
			if err != nil {
				t.Fatal(err)
			}
			var gs []string
			for _, p := range got {
				gs = append(gs, p.String())
			}
			if !reflect.DeepEqual(gs, tc.want) {
				t.Fatalf("proxies %v, want %v", gs, tc.want)
			}
		})
	}
}

func TestDebugAddrMustBeLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:6060": true, "[::1]:6060": true, "localhost:6060": true,
		"0.0.0.0:6060": false, ":6060": false, "10.0.0.5:6060": false, "example.com:6060": false, "6060": false,
	} {
		cfg := Default()
		cfg.DebugAddr = addr
		if err := cfg.Validate(); (err == nil) != ok {
			t.Errorf("debug addr %q: validation error %v, want accepted=%v", addr, err, ok)
		}
	}
}
