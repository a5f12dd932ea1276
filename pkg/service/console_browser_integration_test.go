//go:build integration

package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/testenv"
	"github.com/stockflow/stockflow/processors"
)

const (
	adminKey = "console-admin-0123456789abcdef"
	readKey  = "console-read-0123456789abcdef"
)

// chromiumPath finds the headless browser deploy/local/chromium.sh installs.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STOCKFLOW_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatal("no chromium: run deploy/local/chromium.sh install (make stack-up does)")
	return ""
}

// keyed calls the API with a key and decodes its JSON.
func (s *stack) keyed(t *testing.T, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (s *stack) waitKeyed(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
	}
}

// number reads a number as the console formats it: 1,234 and −5.
func number(s string) (float64, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	s = strings.ReplaceAll(s, "−", "-")
	return strconv.ParseFloat(s, 64)
}

// The console in headless Chromium, end to end on the real stack: sign in,
// the overview's charts, a SKU's numbers against the API's JSON, a dead
// letter replayed from the exception queue once its item master arrives, a
// reconciliation run, and what a read key may not do. Screenshots of each
// page at 1280×800 and 390×844 go to $STOCKFLOW_SCREENSHOTS (make
// screenshots: docs/console), else to a temporary directory.
func TestConsoleInBrowser(t *testing.T) {
	cfg := testenv.Config(t, 0)
	testenv.SharedRedis(t, &cfg)
	cfg.API.Keys = adminKey + "=admin;" + readKey + "=read"
	cfg.JaegerUIURL = "http://127.0.0.1:16686"
	s := startStack(t, cfg, Options{Normalizer: processors.NormalizerConfig{UoMWait: 500 * time.Millisecond}})
	s.key = adminKey
	tp := cfg.Topics
	shots := os.Getenv("STOCKFLOW_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	// A little ledger: stock at two locations, supply on the way, a hold.
	now := time.Now().UTC()
	s.send(t, tp.Inventory, "WEB-1", &events.InventoryReceived{Meta: events.Meta{EventID: "w1", EventTime: now.Add(-time.Hour), Source: "WMS"}, SKU: "WEB-1", Location: "L1", Quantity: 1200, UoM: "EA"})
	s.send(t, tp.Inventory, "WEB-1", &events.InventoryReceived{Meta: events.Meta{EventID: "w2", EventTime: now.Add(-time.Hour), Source: "WMS"}, SKU: "WEB-1", Location: "L2", Quantity: 35, UoM: "EA"})
	s.send(t, tp.Supplier, "PO-1", &events.PurchaseOrderReleased{Meta: events.Meta{EventID: "po1", EventTime: now, Source: "ERP"}, PONumber: "PO-1", SupplierID: "SUP-1",
		Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: "WEB-1", Location: "L1", Quantity: 300, UoM: "EA", ExpectedDate: now.AddDate(0, 0, 3).Truncate(24 * time.Hour)}}})
	s.waitKeyed(t, "WEB-1 in the ledger", func() bool {
		code, b := s.keyed(t, readKey, "GET", "/v1/availability/WEB-1?location=L1", nil)
		code2, b2 := s.keyed(t, readKey, "GET", "/v1/availability/WEB-1?location=L2", nil)
		return code == 200 && b["on_hand"] == 1200.0 && len(b["inbound"].([]any)) == 1 && code2 == 200 && b2["on_hand"] == 35.0
	})
	if code, b := s.keyed(t, adminKey, "POST", "/v1/holds", hold("cart-1", 600, line("WEB-1", "L1", 7))); code != 201 {
		t.Fatalf("hold: %d %v", code, b)
	}
	// A receipt in cases before the item master says what a case is.
	s.send(t, tp.Inventory, "WEB-2", &events.InventoryReceived{Meta: events.Meta{EventID: "w3", EventTime: now, Source: "WMS"}, SKU: "WEB-2", Location: "L1", Quantity: 3, UoM: "CS"})
	// A reconciliation run to show.
	s.sendRecords(t, tp.Snapshots, "SNAP-C", snapshot("SNAP-C", "ERP-EAST", now.Add(-time.Minute), []string{"L1"}, "WEB-1@L1=1190", "NEW-9@L1=4")...)
	s.waitRun(t, "SNAP-C")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.Flag("lang", "en-US"))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()
	// Confirmations are accepted, as an operator would.
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev.(type) {
		case *page.EventJavascriptDialogOpening, page.EventJavascriptDialogOpening:
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}); err != nil {
		t.Fatal(err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	location := func() string {
		t.Helper()
		l, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	shoot := func(name string) {
		t.Helper()
		for _, v := range []struct {
			w, h int64
			tag  string
		}{{1280, 800, "1280"}, {390, 844, "390"}} {
			do("viewport "+v.tag, chromedp.EmulateViewport(v.w, v.h), chromedp.Sleep(150*time.Millisecond))
			png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil || len(png) < 1000 {
				t.Fatalf("screenshot %s at %s: %d bytes, %v", name, v.tag, len(png), err)
			}
			if err := os.WriteFile(filepath.Join(shots, name+"-"+v.tag+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		do("viewport back", chromedp.EmulateViewport(1280, 800))
	}
	base := s.base
	h1 := chromedp.WaitVisible(chromedp.CSS("main h1"))

	// Sign in: the console sends an anonymous visitor to the sign-in page.
	do("open", chromedp.Navigate(base+"/console/sku?sku=WEB-1"), chromedp.WaitVisible(chromedp.ID("key")))
	if l := location(); !strings.Contains(l, "/console/login") {
		t.Fatalf("not sent to sign in: %s", l)
	}
	shoot("login")
	do("a wrong key", chromedp.SendKeys(chromedp.ID("key"), "not-a-key"), chromedp.Submit(chromedp.ID("key")), chromedp.WaitVisible(chromedp.CSS("p.error")))
	do("sign in", chromedp.SetValue(chromedp.ID("key"), adminKey), chromedp.Submit(chromedp.ID("key")), chromedp.WaitVisible(chromedp.ID("positions")))
	if l := location(); !strings.HasSuffix(l, "/console/sku?sku=WEB-1") {
		t.Errorf("after sign-in: %s, want back at the SKU page", l)
	}
	if c, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); strings.Contains(c, "stockflow_console") {
		t.Errorf("the session cookie is readable by scripts: %q", c)
	}
	if html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, adminKey) {
		t.Error("the page renders the API key")
	}

	// The SKU's numbers are the API's.
	fields := []string{"on_hand", "reserved", "picked", "held", "safety_stock", "atp", "shortfall", "version"}
	for _, l := range []string{"L1", "L2"} {
		_, api := s.keyed(t, readKey, "GET", "/v1/availability/WEB-1?location="+l, nil)
		for _, f := range fields {
			v := text(fmt.Sprintf(`tr[data-location=%q] td[data-field=%q]`, l, f))
			if got, err := number(v); err != nil || got != api[f] {
				t.Errorf("%s %s: the console says %q, the API %v", l, f, v, api[f])
			}
		}
	}
	if _, api := s.keyed(t, readKey, "GET", "/v1/availability/WEB-1?location=L1", nil); api["held"] != 7.0 || api["on_hand"] != 1200.0 {
		t.Errorf("the compared position is not the scripted one: %v", api)
	}
	_, g := s.keyed(t, readKey, "GET", "/v1/availability/WEB-1?group=G1", nil)
	if v := text(`tr[data-group="G1"] td[data-field="group_atp"]`); func() bool { n, _ := number(v); return n != g["atp"] }() {
		t.Errorf("group G1 atp: console %q, API %v", v, g["atp"])
	}
	if count("section svg.chart rect") < 1 {
		t.Error("no inbound chart on the SKU page")
	}
	shoot("sku")

	// The overview loads with its charts: its history samples every 10 s,
	// and a rate needs two samples.
	do("overview", chromedp.Navigate(base+"/console"), h1)
	for _, id := range []string{"pipeline", "kpis", "chart-ingest", "chart-lag", "chart-freshness", "chart-dead-letters", "chart-holds", "chart-reservation"} {
		if count("#"+id) != 1 {
			t.Errorf("the overview has no #%s", id)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); count("#chart-ingest svg.chart") == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the overview drew no ingest chart within 30 s (%d charts)", count("svg.chart"))
		}
		time.Sleep(time.Second)
		do("reload", chromedp.Reload(), h1)
	}
	if n := count("svg.chart"); n < 3 {
		t.Errorf("the overview has %d charts", n)
	}
	shoot("overview")

	// Holds and reconciliation.
	do("holds", chromedp.Navigate(base+"/console/holds?sku=WEB-1"), h1)
	if count(`form[action="/console/holds/release"]`) != 1 {
		t.Error("an admin sees no release button for the open hold")
	}
	shoot("holds")
	do("runs", chromedp.Navigate(base+"/console/reconciliations"), h1)
	shoot("reconciliations")
	do("run", chromedp.Navigate(base+"/console/reconciliations/SNAP-C"), h1)
	if st := strings.TrimSpace(text("#run-status")); st != "completed" {
		t.Errorf("run status %q", st)
	}
	shoot("reconciliation-run")

	// The exception queue: the case receipt is dead-lettered; once the item
	// master says a case is 12, replaying it from the console books 36.
	dl := `[data-class="unknown_uom"][data-state="open"]`
	do("exceptions", chromedp.Navigate(base+"/console/exceptions?state=open"), h1)
	for deadline := time.Now().Add(30 * time.Second); count(dl) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the unknown_uom dead letter never showed in the exception queue")
		}
		time.Sleep(500 * time.Millisecond)
		do("reload", chromedp.Reload(), h1)
	}
	shoot("exceptions")
	s.send(t, tp.Catalog, "WEB-2", &events.ItemMaster{Meta: events.Meta{EventID: "im-web2", EventTime: now, Source: "ERP"}, SKU: "WEB-2", BaseUoM: "EA", Conversions: map[string]int64{"CS": 12}})
	time.Sleep(time.Second) // the catalog reader takes it in
	do("replay", chromedp.Click(chromedp.CSS(dl+` form.replay-one button`)), chromedp.WaitVisible(chromedp.CSS("p.flash")))
	s.waitKeyed(t, "WEB-2 booked after the replay", func() bool {
		code, b := s.keyed(t, readKey, "GET", "/v1/availability/WEB-2?location=L1", nil)
		return code == 200 && b["on_hand"] == 36.0
	})
	do("all states", chromedp.Navigate(base+"/console/exceptions?state=all"), h1)
	if n := count(`[data-class="unknown_uom"][data-state="replayed"]`); n != 1 {
		t.Errorf("%d unknown_uom dead letters marked replayed, want 1", n)
	}

	// A forged POST: the admin's session, but no CSRF token.
	forged, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/console/exceptions/discard", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "dlq=0:0&reason=x"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || forged != http.StatusForbidden {
		t.Errorf("a POST without the form's token: %d %v, want 403", forged, err)
	}
	req, _ := http.NewRequest("POST", base+"/console/holds/release", strings.NewReader(url.Values{"hold_id": {"cart-1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site POST without a session: %v %v, want 403", resp, err)
	}

	// A read key sees, but has no action buttons.
	do("sign out", chromedp.Click(chromedp.CSS("header form button")), chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SetValue(chromedp.ID("key"), readKey), chromedp.Submit(chromedp.ID("key")), h1)
	for _, p := range []string{"/console/exceptions?state=all", "/console/holds?sku=WEB-1", "/console/reconciliations/SNAP-C"} {
		do("read key "+p, chromedp.Navigate(base+p), h1)
		if n := count(`main form[method="post"]`); n != 0 {
			t.Errorf("%s: a read key sees %d action forms", p, n)
		}
	}
}
