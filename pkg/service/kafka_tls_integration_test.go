//go:build integration

package service

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// The whole pipeline runs over SASL_SSL with SCRAM-SHA-512: a receipt goes
// through the normalizer's transactions and the folder into Redis, and a
// hold placed through the API is decided by the folder, every client of
// the service connecting to the secured listener only.
func TestServePipelineOverSASLSSL(t *testing.T) {
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	testenv.KafkaSASL(t, &cfg.Kafka, config.SASLScramSHA512)
	s := startStack(t, cfg, Options{})
	s.send(t, s.cfg.Topics.Inventory, "SEC", receiptEv("r-sec", "SEC", "L1", 7))
	s.waitATP(t, "SEC", "L1", 7)
	if c, body := s.call(t, "POST", "/v1/holds", hold("sec-1", 300, line("SEC", "L1", 3))); c != 201 {
		t.Fatalf("hold: %d %v", c, body)
	}
	s.waitATP(t, "SEC", "L1", 4)
}

// Wrong Kafka credentials or a wrong CA never heal: serve stops at start
// with an error naming the cause, instead of running unready for ever.
func TestServeStopsOnWrongKafkaCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		wrong      func(k *config.Kafka)
	}{
		{"password", "kafka: SASL authentication failed for user stockflow with mechanism SCRAM-SHA-512 at ",
			func(k *config.Kafka) { k.SASLPassword = "wrong-" + testenv.Suffix() }},
		{"ca", "the broker's certificate is signed by an unknown authority, not by a CA in ",
			func(k *config.Kafka) { k.TLSCA = testenv.KafkaTLSFile(t, "other-ca.crt") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testenv.Config(t, 0)
			testenv.SharedRedis(t, &cfg)
			testenv.KafkaSASL(t, &cfg.Kafka, config.SASLScramSHA512)
			tc.wrong(&cfg.Kafka)
			cfg.HTTPAddr = freeAddr(t)
			// A bound on the test only: serve must stop by itself, for
			// the cause, long before it.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := Serve(ctx, cfg, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if ctx.Err() != nil {
				t.Fatalf("serve kept waiting for a misconfigured Kafka until stopped after a minute (returned %v)", err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve returned %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), cfg.Kafka.SASLPassword) {
				t.Fatalf("the error shows the password: %v", err)
			}
			t.Log(err)
		})
	}
}

// A broker that is not there (yet) is waited for: serve keeps running and
// /readyz names the cause, as it does for Redis.
func TestServeWaitsForUnreachableKafka(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kafkaAddr := ln.Addr().String()
	ln.Close()
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	testenv.KafkaSASL(t, &cfg.Kafka, config.SASLScramSHA512)
	cfg.Kafka.Brokers = []string{kafkaAddr}
	cfg.HTTPAddr = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s")
		}
	}()
	want := "kafka: connection refused at " + kafkaAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve stopped while Kafka was merely unreachable: %v", err)
		default:
		}
		if got := readyCheck(cfg.HTTPAddr, "kafka"); strings.HasPrefix(got, want) {
			t.Log(got)
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("/readyz kafka check says %q, want %q", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Still waiting a while later.
	select {
	case err := <-done:
		t.Fatalf("serve stopped while Kafka was merely unreachable: %v", err)
	case <-time.After(3 * time.Second):
	}
}

// readyCheck returns the error /readyz gives for check name ("" when it
// passes or /readyz does not answer).
func readyCheck(addr, name string) string {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		Checks []struct {
			Name  string `json:"name"`
			Error string `json:"error"`
		} `json:"checks"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	for _, c := range body.Checks {
		if c.Name == name {
			return c.Error
		}
	}
	return ""
}
