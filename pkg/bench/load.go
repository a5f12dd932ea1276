// Package bench measures Stockflow on the real local stack, each figure
// beside a ceiling measured in the same run: what the machine and the
// dependencies allow for the same work without Stockflow's logic.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Latencies summarises a run.
type Latencies struct {
	Requests       int
	Errors         int
	Elapsed        time.Duration
	P50, P99, P999 time.Duration
}

// RPS is completed requests per second.
func (l Latencies) RPS() float64 { return float64(l.Requests) / l.Elapsed.Seconds() }

func summarise(ds []time.Duration, errs int, elapsed time.Duration) Latencies {
	slices.Sort(ds)
	pct := func(p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[min(len(ds)-1, int(float64(len(ds))*p))]
	}
	return Latencies{Requests: len(ds), Errors: errs, Elapsed: elapsed, P50: pct(.50), P99: pct(.99), P999: pct(.999)}
}

// Request makes the i-th request of a run.
type Request func(i int) (*http.Request, error)

func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
}

// do sends req and reads its answer, into body when it is not nil.
func do(cl *http.Client, req *http.Request, body *bytes.Buffer) bool {
	resp, err := cl.Do(req)
	if err != nil {
		return false
	}
	if body != nil {
		body.Reset()
		_, err = body.ReadFrom(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return err == nil && (resp.StatusCode < 400 || resp.StatusCode == http.StatusConflict)
}

// Check reads the answer to the i-th request of a closed loop, which
// worker w sent at sent; it returns false for an answer it refuses, counted
// as an error. Workers call it concurrently, each with its own w.
type Check func(w, i int, sent time.Time, body []byte) bool

// Closed runs conc workers back to back for d: the most a server gives at
// that concurrency.
func Closed(ctx context.Context, conc int, d time.Duration, mk Request) Latencies {
	return ClosedChecked(ctx, conc, d, mk, nil)
}

// ClosedChecked is Closed with every successful answer's body handed to
// check (nil: not read).
func ClosedChecked(ctx context.Context, conc int, d time.Duration, mk Request, check Check) Latencies {
	cl := newClient(conc)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	var errs atomic.Int64
	var seq atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<16)
			var body *bytes.Buffer
			if check != nil {
				body = new(bytes.Buffer)
			}
			for ctx.Err() == nil {
				i := int(seq.Add(1))
				req, err := mk(i)
				if err != nil {
					errs.Add(1)
					continue
				}
				t0 := time.Now()
				if !do(cl, req, body) {
					errs.Add(1)
					continue
				}
				took := time.Since(t0)
				if check != nil && !check(w, i, t0, body.Bytes()) {
					errs.Add(1)
					continue
				}
				local = append(local, took)
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarise(all, int(errs.Load()), time.Since(start))
}

// Open sends at a constant rate for d, whatever the server's pace, and
// measures each request from when it was due, so a stall shows in the
// latencies instead of slowing the load (no coordinated omission).
func Open(ctx context.Context, rate float64, d time.Duration, maxInFlight int, mk Request) Latencies {
	cl := newClient(maxInFlight)
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, err := mk(i)
			if err != nil {
				return
			}
			if do(cl, req, nil) {
				ok[i] = true
				lat[i] = time.Since(due)
			}
		}()
	}
	wg.Wait()
	var ds []time.Duration
	errs := 0
	for i := range lat {
		if ok[i] {
			ds = append(ds, lat[i])
		} else {
			errs++
		}
	}
	return summarise(ds, errs, time.Since(start))
}

// Row is one line of the results table.
type Row struct {
	Scenario string
	Figure   string
	Ceiling  string
	Ratio    float64
	Note     string
}

// Print writes rows as a Markdown table.
func Print(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| scenario | Stockflow | ceiling (same run) | ratio | note |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range rows {
		ratio := "—"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Figure, r.Ceiling, ratio, r.Note)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
