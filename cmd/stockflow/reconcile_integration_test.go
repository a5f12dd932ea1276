//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/service"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// `stockflow reconcile -file` against a running service on the real stack:
// a CSV export with a drift and a malformed line is sent, followed, reported
// and applied; sent again, it shows the first run.
func TestReconcileFileCommand(t *testing.T) {
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Serve(ctx, cfg, service.Options{}, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	api := "http://" + cfg.HTTPAddr
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(api + path)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 60s", what)
			}
		}
	}
	waitFor("ready", func() bool { code, _ := get("/readyz"); return code == 200 })
	onHand := func() float64 {
		_, m := get("/v1/availability/CLI-A?location=L1")
		q, _ := m["on_hand"].(float64)
		return q
	}

	T := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	prod, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka)...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	codec, _ := events.NewCodec(nil, 0)
	b, _ := codec.Encode(ctx, cfg.Topics.Inventory, &events.InventoryReceived{Meta: events.Meta{EventID: "cli-r1", EventTime: T.Add(-10 * time.Minute), Source: "WMS"},
		SKU: "CLI-A", Location: "L1", Quantity: 10, UoM: "EA"})
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: cfg.Topics.Inventory, Key: []byte("CLI-A"), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor("CLI-A received", func() bool { return onHand() == 10 })

	dir := t.TempDir()
	file := filepath.Join(dir, "erp.csv")
	if err := os.WriteFile(file, []byte("Location,SKU,Quantity\nL1,CLI-A,8\nL1,CLI-B,12x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.csv")
	args := []string{"reconcile", "-file", file, "-source", "ERP-T", "-as-of", T.Format(time.RFC3339), "-api", api, "-no-progress",
		"-kafka-brokers", strings.Join(cfg.Kafka.Brokers, ","), "-topic-snapshots", cfg.Topics.Snapshots, "-report", report, "-apply"}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"completed", "drift", "invalid_line"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary does not say %q:\n%s", want, out)
		}
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	rep := string(raw)
	if !strings.Contains(rep, "2,CLI-A,L1,drift,8,10,-2,") || !strings.Contains(rep, "3,CLI-B,L1,invalid_line,,,,") {
		t.Errorf("report:\n%s", rep)
	}
	waitFor("the correction applied (on hand 8)", func() bool { return onHand() == 8 })

	// The same file again: the first run, nothing sent.
	stdout.Reset()
	stderr.Reset()
	if code := run(args[:len(args)-3], &stdout, &stderr); code != exitOK {
		t.Fatalf("again: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String()+stderr.String(), "reconciled before") {
		t.Errorf("sent again, it does not say it was reconciled before:\n%s\n%s", stdout.String(), stderr.String())
	}
	_, m := get("/v1/reconciliations")
	if runs, _ := m["runs"].([]any); len(runs) != 1 {
		t.Errorf("runs after sending the same file twice: %v", m)
	}
}
