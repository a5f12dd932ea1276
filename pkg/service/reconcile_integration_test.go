//go:build integration

package service

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/testenv"
	"github.com/stockflow/stockflow/processors"
)

// sendRecords produces records keyed by key, in order.
func (s *stack) sendRecords(t *testing.T, topic, key string, recs ...avro.Record) {
	t.Helper()
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		b, err := codec.Encode(context.Background(), topic, r)
		if err != nil {
			t.Fatal(err)
		}
		krs[i] = &kgo.Record{Topic: topic, Key: []byte(key), Value: b}
	}
	if err := s.prod.ProduceSync(context.Background(), krs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// snapshot builds a snapshot's records: its start, one line per spec
// "SKU@LOC=Q[ UOM]" (or "!reason" for a line the sender could not read),
// and an end saying how many lines were sent.
func snapshot(id, source string, asOf time.Time, locs []string, specs ...string) []avro.Record {
	recs := []avro.Record{&events.SnapshotStarted{
		Meta:       events.Meta{EventID: "snap-" + id, EventTime: time.Now().UTC(), Source: source},
		SnapshotID: id, Locations: locs, AsOf: asOf, ExpectedLines: int64(len(specs)),
	}}
	for i, spec := range specs {
		l := &events.SnapshotLine{SnapshotID: id, Line: int64(i + 2), UoM: "EA"}
		if reason, bad := strings.CutPrefix(spec, "!"); bad {
			l.Error = &reason
		} else {
			pos, rest, _ := strings.Cut(spec, "=")
			l.SKU, l.Location, _ = strings.Cut(pos, "@")
			q, uom, hasUoM := strings.Cut(rest, " ")
			if hasUoM {
				l.UoM = uom
			}
			fmt.Sscan(q, &l.Quantity)
		}
		recs = append(recs, l)
	}
	return append(recs, &events.SnapshotEnded{SnapshotID: id, LineCount: int64(len(specs))})
}

// waitRun polls a run until it is no longer running.
func (s *stack) waitRun(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := s.call(t, "GET", "/v1/reconciliations/"+id+"?limit=1000", nil)
		if code == 200 {
			if run := body["run"].(map[string]any); run["status"] != "running" {
				return body
			}
		} else if code != 404 {
			t.Fatalf("GET run %s: %d %v", id, code, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s not finished within 60s (last answer %d %v)", id, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *stack) onHand(t *testing.T, sku, loc string) float64 {
	t.Helper()
	code, body := s.call(t, "GET", "/v1/availability/"+sku+"?location="+loc, nil)
	if code != 200 {
		t.Fatalf("availability %s@%s: %d %v", sku, loc, code, body)
	}
	return body["on_hand"].(float64)
}

func (s *stack) waitOnHand(t *testing.T, sku, loc string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := s.onHand(t, sku, loc)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s@%s: on hand %v, want %v", sku, loc, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exceptionsBySKU indexes a run's exceptions; a SKU listed twice keeps
// every exception under SKU, SKU#2, ...
func exceptionsBySKU(body map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, x := range body["exceptions"].([]any) {
		m := x.(map[string]any)
		k := m["sku"].(string)
		for i := 2; out[k] != nil; i++ {
			k = fmt.Sprintf("%s#%d", m["sku"], i)
		}
		out[k] = m
	}
	return out
}

// Reconciliation on the real stack: a scripted ledger, then a snapshot as
// of T an hour ago that exercises every class, its exceptions over HTTP and
// on the reconciliation topic, its corrections applied (twice), the same
// snapshot sent again, an incomplete and a refused snapshot, and bad
// records dead-lettered.
func TestReconciliationScenarios(t *testing.T) {
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	cfg.Reconcile.Tolerance = "*=0;L2=2"
	cfg.Reconcile.EndTimeout = 2 * time.Second
	s := startStack(t, cfg, Options{})
	tp := cfg.Topics

	T := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	mv := func(id, sku, loc string, q int64, at time.Time) {
		if q >= 0 {
			s.send(t, tp.Inventory, sku, &events.InventoryReceived{Meta: events.Meta{EventID: id, EventTime: at, Source: "WMS"},
				SKU: sku, Location: loc, Quantity: q, UoM: "EA"})
			return
		}
		s.send(t, tp.Inventory, sku, &events.InventoryAdjusted{Meta: events.Meta{EventID: id, EventTime: at, Source: "WMS"},
			SKU: sku, Location: loc, Quantity: q, UoM: "EA", Reason: "damage"})
	}
	mv("a1", "RA", "L1", 100, T.Add(-30*time.Minute)) // drift: the snapshot says 95
	mv("a2", "RA", "L1", 10, T.Add(5*time.Minute))    // after T: not part of the comparison, kept by the correction
	mv("b1", "RB", "L2", 50, T.Add(-30*time.Minute))  // within L2's tolerance of 2: the snapshot says 49
	mv("c1", "RC", "L1", 20, T.Add(-10*time.Minute))  // a movement just before T counts,
	mv("c2", "RC", "L1", 5, T.Add(-time.Millisecond)) // and one just after does not:
	mv("c3", "RC", "L1", -3, T.Add(time.Millisecond)) // on hand 22 now, 25 at T: a match
	mv("d1", "RD", "L1", 30, T.Add(-20*time.Minute))  // counted after T: superseded
	s.send(t, tp.Inventory, "RD", &events.InventoryCounted{Meta: events.Meta{EventID: "d2", EventTime: T.Add(10 * time.Minute), Source: "WMS"},
		SKU: "RD", Location: "L1", CountedQuantity: 28, UoM: "EA", AsOf: T.Add(10 * time.Minute)})
	mv("e1", "RE", "L1", 12, T.Add(-20*time.Minute)) // not listed: missing_in_snapshot
	mv("e2", "RE", "L2", 4, T.Add(-20*time.Minute))  // listed: a match
	mv("g1", "RG", "L1", 5, T.Add(-20*time.Minute))  // listed twice: the second is an invalid line
	mv("h1", "RH", "L9", 8, T.Add(-20*time.Minute))  // at a location the snapshot does not cover: never missing
	mv("k1", "RK", "L1", 9, T.Add(-20*time.Minute))  // listed with a negative quantity: invalid, and not missing
	// RJ's item master packs 6 to a PK: 2 PK in the snapshot are its 12.
	s.send(t, tp.Catalog, "RJ", &events.ItemMaster{Meta: events.Meta{EventID: "im-rj", EventTime: T, Source: "ERP"},
		SKU: "RJ", BaseUoM: "EA", Conversions: map[string]int64{"PK": 6}})
	s.send(t, tp.Inventory, "RJ", &events.InventoryReceived{Meta: events.Meta{EventID: "j1", EventTime: T.Add(-20 * time.Minute), Source: "WMS"},
		SKU: "RJ", Location: "L1", Quantity: 2, UoM: "PK"})
	for _, w := range []struct {
		sku, loc string
		q        float64
	}{{"RA", "L1", 110}, {"RB", "L2", 50}, {"RC", "L1", 22}, {"RD", "L1", 28}, {"RE", "L1", 12}, {"RE", "L2", 4}, {"RG", "L1", 5}, {"RH", "L9", 8}, {"RJ", "L1", 12}, {"RK", "L1", 9}} {
		s.waitOnHand(t, w.sku, w.loc, w.q)
	}

	locs := []string{"L1", "L2"}
	first := snapshot("SNAP-1", "ERP-EAST", T, locs,
		"RA@L1=95", "RB@L2=49", "RC@L1=25", "RD@L1=30", "RF@L1=7", "RG@L1=5", "RG@L1=6",
		"RH@L1=-4", "RJ@L1=2 PK", "RJ@L2=1 CASE", "RZ@L1=0", "RE@L2=4", "RK@L1=-1", "!quantity \"7x\" is not an integer")
	s.sendRecords(t, tp.Snapshots, "SNAP-1", first...)
	body := s.waitRun(t, "SNAP-1")
	run := body["run"].(map[string]any)
	if run["status"] != "completed" || run["lines"].(float64) != 14 {
		t.Fatalf("run: %v", run)
	}
	wantCounts := map[string]float64{"match": 5, "within_tolerance": 1, "drift": 1, "superseded": 1, "unknown_to_ledger": 1,
		"missing_in_snapshot": 1, "invalid_line": 5}
	counts := run["counts"].(map[string]any)
	for c, n := range wantCounts {
		if counts[c] != n {
			t.Errorf("class %s: %v positions, want %v (counts %v)", c, counts[c], n, counts)
		}
	}
	xs := exceptionsBySKU(body)
	check := func(key, class string, snap, led any, diff float64) {
		t.Helper()
		x := xs[key]
		if x == nil {
			t.Errorf("%s: no exception (have %v)", key, xs)
			return
		}
		if x["class"] != class || x["snapshot_quantity"] != snap || x["ledger_quantity"] != led || x["difference"] != diff {
			t.Errorf("%s: %v, want class %s snapshot %v ledger %v difference %v", key, x, class, snap, led, diff)
		}
	}
	check("RA", "drift", 95.0, 100.0, -5)
	check("RB", "within_tolerance", 49.0, 50.0, -1)
	check("RF", "unknown_to_ledger", 7.0, 0.0, 7)
	check("RE", "missing_in_snapshot", nil, 12.0, -12)
	if x := xs["RD"]; x == nil || x["class"] != "superseded" || !strings.Contains(x["detail"].(string), "counted as of") {
		t.Errorf("RD: %v, want superseded by the count after T", x)
	}
	for key, want := range map[string]string{"RG": "duplicate of line 7", "RH": "negative", "RJ": "unknown unit", "RK": "negative", "": "is not an integer"} {
		x := xs[key]
		if key == "" {
			for _, y := range xs {
				if y["line"] == 15.0 {
					x = y
				}
			}
		}
		if x == nil || x["class"] != "invalid_line" || !strings.Contains(x["detail"].(string), want) {
			t.Errorf("%q: %v, want an invalid line saying %q", key, x, want)
		}
	}
	if xs["RG"]["line"] != 8.0 {
		t.Errorf("the duplicate is line 8, the second listing: %v", xs["RG"])
	}
	for _, k := range []string{"RC", "RZ", "RE#2", "RJ#2", "RK#2"} {
		if xs[k] != nil {
			t.Errorf("%s: %v, want no exception", k, xs[k])
		}
	}

	// Filters and paging over HTTP.
	code, page := s.call(t, "GET", "/v1/reconciliations/SNAP-1?class=invalid_line&limit=3", nil)
	if code != 200 || len(page["exceptions"].([]any)) != 3 || page["next_cursor"] == "" {
		t.Fatalf("first page of invalid lines: %d %v", code, page)
	}
	code, page2 := s.call(t, "GET", "/v1/reconciliations/SNAP-1?class=invalid_line&limit=3&cursor="+url.QueryEscape(page["next_cursor"].(string)), nil)
	if code != 200 || len(page2["exceptions"].([]any)) != 2 || page2["next_cursor"] != "" {
		t.Fatalf("second page of invalid lines: %d %v", code, page2)
	}
	code, page = s.call(t, "GET", "/v1/reconciliations/SNAP-1?location=L2", nil)
	if code != 200 || len(page["exceptions"].([]any)) != 2 {
		t.Fatalf("exceptions at L2 (RB within tolerance, RJ's unknown unit): %d %v", code, page)
	}
	if code, p := s.call(t, "GET", "/v1/reconciliations/SNAP-1?class=match", nil); code != 400 || p["field"] != "class" {
		t.Errorf("class=match: %d %v, want a 400 naming class", code, p)
	}
	if code, _ := s.call(t, "GET", "/v1/reconciliations/NOPE", nil); code != 404 {
		t.Errorf("unknown run: %d", code)
	}

	// The topic: every exception of the run, then one summary.
	got := readReconciliationTopic(t, cfg.Kafka.Brokers, tp.Reconciliation, "SNAP-1", 1)
	if got.summaries != 1 || got.exceptions != 10 || got.last != "summary" {
		t.Errorf("reconciliation topic for SNAP-1: %+v, want 10 exceptions then 1 summary", got)
	}

	// Apply the drift: RA held 95 at T, and the 10 received after T stay on
	// top. Then apply again: nothing changes.
	code, ap := s.call(t, "POST", "/v1/reconciliations/SNAP-1/apply", map[string]any{})
	if code != 200 || ap["applied"].(map[string]any)["entries"] != 1.0 {
		t.Fatalf("apply: %d %v", code, ap)
	}
	s.waitOnHand(t, "RA", "L1", 105)
	if code, ap := s.call(t, "POST", "/v1/reconciliations/SNAP-1/apply", map[string]any{"classes": []string{"drift"}}); code != 200 {
		t.Fatalf("apply again: %d %v", code, ap)
	}
	mv("a3", "RA", "L1", 1, time.Now().UTC()) // folded after the second correction (same SKU, same partition)
	s.waitOnHand(t, "RA", "L1", 106)
	if b := s.onHand(t, "RB", "L2"); b != 50 {
		t.Errorf("RB was within tolerance and not applied: on hand %v", b)
	}
	if code, p := s.call(t, "POST", "/v1/reconciliations/SNAP-1/apply", map[string]any{"classes": []string{"superseded"}}); code != 400 || p["field"] != "classes[0]" {
		t.Errorf("apply superseded: %d %v, want a 400 naming classes[0]", code, p)
	}
	code, body = s.call(t, "GET", "/v1/reconciliations/SNAP-1", nil)
	if applies := body["run"].(map[string]any)["applies"].([]any); code != 200 || len(applies) != 2 {
		t.Errorf("the run records its two applications: %v", body["run"])
	}

	// The same snapshot again is the first run, not a second one.
	started := run["started_at"]
	s.sendRecords(t, tp.Snapshots, "SNAP-1", first...)
	marker := snapshot("SNAP-MARK", "ERP-EAST", T, locs, "RA@L1=1") // same key: read after the repeat
	s.sendRecords(t, tp.Snapshots, "SNAP-1", marker...)
	s.waitRun(t, "SNAP-MARK")
	_, body = s.call(t, "GET", "/v1/reconciliations/SNAP-1", nil)
	if r := body["run"].(map[string]any); r["started_at"] != started || r["lines"] != 14.0 {
		t.Errorf("the repeated snapshot changed its run: %v", r)
	}
	got = readReconciliationTopic(t, cfg.Kafka.Brokers, tp.Reconciliation, "SNAP-1", 1)
	if got.summaries != 1 {
		t.Errorf("the repeated snapshot published again: %+v", got)
	}

	// Incomplete: an end that never comes, and an end with another count.
	// Neither can be applied.
	silent := snapshot("SNAP-SILENT", "ERP-EAST", T, locs, "RA@L1=1", "RB@L2=1")
	s.sendRecords(t, tp.Snapshots, "SNAP-SILENT", silent[:2]...)
	short := snapshot("SNAP-SHORT", "ERP-EAST", T, locs, "RA@L1=1", "RB@L2=1")
	s.sendRecords(t, tp.Snapshots, "SNAP-SHORT", append(short[:2:2], short[3])...)
	for id, why := range map[string]string{"SNAP-SILENT": "no end record", "SNAP-SHORT": "1 arrived"} {
		r := s.waitRun(t, id)["run"].(map[string]any)
		if r["status"] != "incomplete" || !strings.Contains(r["reason"].(string), why) {
			t.Errorf("%s: %v, want incomplete: %s", id, r, why)
		}
		if code, p := s.call(t, "POST", "/v1/reconciliations/"+id+"/apply", nil); code != 409 {
			t.Errorf("apply %s: %d %v, want 409", id, code, p)
		}
	}
	if got := readReconciliationTopic(t, cfg.Kafka.Brokers, tp.Reconciliation, "SNAP-SHORT", 1); got.exceptions != 0 || got.summaries != 1 {
		t.Errorf("an incomplete run publishes its summary only: %+v", got)
	}

	// Older than the journal window: refused, not compared.
	s.sendRecords(t, tp.Snapshots, "SNAP-OLD", snapshot("SNAP-OLD", "ERP-EAST", time.Now().Add(-25*time.Hour), locs, "RA@L1=1")...)
	if r := s.waitRun(t, "SNAP-OLD")["run"].(map[string]any); r["status"] != "refused" || !strings.Contains(r["reason"].(string), "journal window") {
		t.Errorf("old snapshot: %v", r)
	}

	// Bad records go to the dead-letter topic and the partition moves on.
	if err := s.prod.ProduceSync(context.Background(),
		&kgo.Record{Topic: tp.Snapshots, Key: []byte("SNAP-BAD"), Value: []byte("not avro")},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s.sendRecords(t, tp.Snapshots, "SNAP-BAD", &events.SnapshotLine{SnapshotID: "SNAP-NEVER", Line: 2, SKU: "RA", Location: "L1", Quantity: 1, UoM: "EA"})
	s.sendRecords(t, tp.Snapshots, "SNAP-BAD", snapshot("SNAP-AFTER", "ERP-EAST", T, locs, "RA@L1=1")...)
	s.waitRun(t, "SNAP-AFTER")
	classes := deadLetterClasses(t, cfg.Kafka.Brokers, tp.DLQ, 2)
	if !classes[processors.ClassOrphanSnapshotRecord] || len(classes) != 2 {
		t.Errorf("dead letters: %v, want an undecodable record and an orphan line", classes)
	}

	code, list := s.call(t, "GET", "/v1/reconciliations?limit=200", nil)
	if code != 200 || len(list["runs"].([]any)) != 6 {
		t.Errorf("runs: %d %v, want 6", code, list)
	}
}

type topicCounts struct {
	exceptions, summaries int
	last                  string
}

// readReconciliationTopic reads the topic until it holds want summaries of
// run, and counts the run's records.
func readReconciliationTopic(t *testing.T, brokers []string, topic, run string, want int) topicCounts {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	codec, _ := events.NewCodec(nil, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var c topicCounts
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			v, err := codec.Decode(ctx, r.Value)
			if err != nil {
				t.Errorf("decode: %v", err)
				return
			}
			switch e := v.(type) {
			case *events.ReconciliationException:
				if e.RunID == run {
					c.exceptions++
					c.last = "exception"
				}
			case *events.ReconciliationSummary:
				if e.RunID == run {
					c.summaries++
					c.last = "summary"
				}
			}
		})
	}
	return c
}

// deadLetterClasses reads the dead-letter topic until it has n records.
func deadLetterClasses(t *testing.T, brokers []string, topic string, n int) map[string]bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out := map[string]bool{}
	seen := 0
	for seen < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			seen++
			c, _ := deadletter.Header(r, deadletter.HeaderErrorClass)
			out[c] = true
		})
	}
	return out
}
