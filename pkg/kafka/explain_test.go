package kafka_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/kafka"
)

func scramConfig() config.Kafka {
	return config.Kafka{Brokers: []string{"k1:9094", "k2:9094"}, ClientID: "stockflow",
		SASLMechanism: "scram-sha-256", SASLUsername: "stockflow", SASLPassword: "pa55-word"}
}

func TestExplain(t *testing.T) {
	scram := scramConfig()
	for _, tc := range []struct {
		name          string
		cfg           config.Kafka
		err           error
		want          string
		misconfigured bool
	}{
		{"wrong password", scram,
			fmt.Errorf("%w: %s", kerr.SaslAuthenticationFailed, "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"),
			"kafka: SASL authentication failed for user stockflow with mechanism SCRAM-SHA-256 at k1:9094,k2:9094: the broker said Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256",
			true},
		{"a broker that repeats the password", scram,
			fmt.Errorf("%w: %s", kerr.SaslAuthenticationFailed, "bad password pa55-word"),
			"kafka: SASL authentication failed for user stockflow with mechanism SCRAM-SHA-256 at k1:9094,k2:9094: the broker said bad password [redacted]",
			true},
		{"mechanism not enabled", scram, kerr.UnsupportedSaslMechanism,
			"kafka: the listener at k1:9094,k2:9094 does not enable SASL mechanism SCRAM-SHA-256", true},
		{"connection refused", scram,
			fmt.Errorf("unable to dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}),
			"kafka: connection refused at k1:9094,k2:9094 (no broker listening there, or not yet)", false},
		{"unknown host", scram,
			fmt.Errorf("unable to dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "k1"}}),
			"kafka: cannot resolve k1 (a broker of k1:9094,k2:9094): no such host", false},
		{"no answer", scram, context.DeadlineExceeded,
			"kafka: no answer from k1:9094,k2:9094 in time: context deadline exceeded", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kafka.Explain(tc.cfg, tc.err)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
			if kafka.Misconfigured(err) != tc.misconfigured {
				t.Fatalf("misconfigured %v, want %v", kafka.Misconfigured(err), tc.misconfigured)
			}
			if !errors.Is(err, tc.err) {
				t.Fatal("the explained error does not wrap the client's")
			}
			if strings.Contains(err.Error(), "pa55-word") {
				t.Fatalf("the password shows: %v", err)
			}
			if again := kafka.Explain(tc.cfg, err); again != err {
				t.Fatalf("explained twice: %v", again)
			}
		})
	}
	if kafka.Explain(scram, nil) != nil {
		t.Fatal("no error, nothing to explain")
	}
}

// A TLS file that went missing after start fails every connection with
// the reason, a misconfiguration, instead of connecting without TLS.
func TestConnWithTLSFilesGone(t *testing.T) {
	cfg := scramConfig()
	cfg.Brokers = []string{"127.0.0.1:1"}
	cfg.TLSCA = filepath.Join(t.TempDir(), "gone.crt")
	cl, err := kgo.NewClient(kafka.Conn(cfg)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = kafka.Ping(ctx, cl, cfg)
	if err == nil || !strings.Contains(err.Error(), "kafka tls: ca "+cfg.TLSCA+": open") || !kafka.Misconfigured(err) {
		t.Fatalf("got %v (misconfigured %v)", err, kafka.Misconfigured(err))
	}
}

// ConnOf gives a second client what the first connects with: the same
// brokers, client id, TLS configuration and SASL mechanism.
func TestConnOf(t *testing.T) {
	cfg := scramConfig()
	cfg.TLS = true
	cl, err := kgo.NewClient(append(kafka.Conn(cfg), kgo.ProducerLinger(0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	other, err := kgo.NewClient(kafka.ConnOf(cl)...)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got := other.OptValue(kgo.SeedBrokers).([]string); strings.Join(got, ",") != "k1:9094,k2:9094" {
		t.Errorf("seeds %v", got)
	}
	if id := other.OptValues(kgo.ClientID); id[0] != "stockflow" {
		t.Errorf("client id %v", id)
	}
	if tc := other.OptValue(kgo.DialTLSConfig).(*tls.Config); tc == nil || tc != cl.OptValue(kgo.DialTLSConfig).(*tls.Config) {
		t.Errorf("tls config %v", tc)
	}
	ms := other.OptValue(kgo.SASL).([]sasl.Mechanism)
	if len(ms) != 1 || ms[0].Name() != "SCRAM-SHA-256" {
		t.Errorf("sasl %v", ms)
	}

	plain, err := kgo.NewClient(kafka.Conn(config.Kafka{Brokers: []string{"k:9092"}, ClientID: "x"})...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	again, err := kgo.NewClient(kafka.ConnOf(plain)...)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if tc, _ := again.OptValue(kgo.DialTLSConfig).(*tls.Config); tc != nil {
		t.Error("TLS out of nowhere")
	}
	if ms, _ := again.OptValue(kgo.SASL).([]sasl.Mechanism); len(ms) != 0 {
		t.Error("SASL out of nowhere")
	}
}
